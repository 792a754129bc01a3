"""Delivery of one digest: e-mail over SMTP with STARTTLS (certificate verified), or a
webhook POST of the digest JSON signed with HMAC-SHA256 over ``<timestamp>.<body>``:

    X-Auditagent-Timestamp: 1764576000
    X-Auditagent-Signature: sha256=<hex HMAC-SHA256(secret, "1764576000." + body)>

A receiver recomputes the HMAC with the subscription's secret, compares in constant
time, and refuses a timestamp more than a few minutes old (replays).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import ssl
import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import requests

from server.notify.config import NotifyConfig
from server.notify.messages import render_text

SIGNATURE_HEADER = "X-Auditagent-Signature"
TIMESTAMP_HEADER = "X-Auditagent-Timestamp"
WEBHOOK_TIMEOUT = 15


class DeliveryError(Exception):
    """A failed attempt; ``str()`` is safe to store (no secrets, no message text)."""


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode("utf-8"), str(timestamp).encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def send_email(config: NotifyConfig, to: str, digest: dict[str, Any]) -> None:
    smtp = config.smtp
    if smtp is None:
        raise DeliveryError("no smtp configured")
    subject, body = render_text(digest)
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = smtp.sender, to, subject
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(domain=smtp.sender.rpartition("@")[2] or None)
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(body)
    context = ssl.create_default_context(cafile=smtp.ca_file)
    try:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout) as s:
            s.ehlo()
            s.starttls(context=context)  # raises if the server offers no STARTTLS
            s.ehlo()
            if smtp.username:
                s.login(smtp.username, smtp.password or "")
            s.send_message(msg)
    except (OSError, smtplib.SMTPException, ssl.SSLError) as exc:
        raise DeliveryError(f"smtp: {type(exc).__name__}") from None


def send_webhook(config: NotifyConfig, url: str, secret: str, digest: dict[str, Any], *,
                 now: float | None = None) -> None:
    body = json.dumps(digest, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    ts = int(now if now is not None else time.time())
    headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: str(ts),
               SIGNATURE_HEADER: signature(secret, ts, body), "User-Agent": "auditagent-collector"}
    try:
        r = requests.post(url, data=body, headers=headers, timeout=WEBHOOK_TIMEOUT,
                          verify=config.webhook_ca_file or True, allow_redirects=False)
    except requests.RequestException as exc:
        raise DeliveryError(f"webhook: {type(exc).__name__}") from None
    if not 200 <= r.status_code < 300:
        raise DeliveryError(f"webhook: HTTP {r.status_code}")
