"""HTTPS delivery to the collector, with retry.

* TLS is verified by default (the system's CAs). ``ca_bundle`` trusts a private CA
  instead; ``pinned_sha256`` trusts exactly one server certificate (sha256 of its DER
  form) — hostname and CA are then not consulted, the pin is the identity.
* Plain ``http://`` is refused before any connection is made, unless the host is
  loopback (127.0.0.0/8, ::1, localhost) or the config says ``insecure_http: true``.
* Sending is idempotent: the collector acknowledges by report id, and a resend of a
  report it already has is answered ``200 duplicate`` — so a crash between "sent" and
  "removed from the spool" costs one resend, never a second stored copy.
* 2xx removes the report from the spool; another 4xx (except 408/429) is a permanent
  refusal: the report moves to ``spool/rejected/`` with the reason; 5xx, 408, 429 and
  connection errors are retried with exponential backoff and full jitter, honouring
  ``Retry-After`` (seconds or an HTTP date), a bounded number of times per run.

``http.client`` and ``ssl`` are imported here only, lazily: ``auditagent check`` never loads them.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import random
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlsplit

from auditagent.durable import crash_point

DELIVERED, DUPLICATE, REJECTED, RETRY, FATAL = "delivered", "duplicate", "rejected", "retry", "fatal"
RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}
# Retryable answers about the collector as a whole (down, overloaded, asking to slow down):
# the run stops and keeps the order. Any other 5xx may be about this one report.
COLLECTOR_WIDE_STATUS = {408, 425, 429, 502, 503, 504}
MAX_FAILED_RUNS = 3  # runs failing on one report while the collector takes others: then set aside
USER_AGENT = "auditagent"


class TransportError(Exception):
    """Delivery cannot even be attempted (an insecure URL, a TLS failure): the message says what to change."""


class ServerError(Exception):
    """The collector answered with an error ``code``; ``status`` is the HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.status, self.code, self.message = status, code, message


# ------------------------------------------------------------------ URL policy


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() in ("localhost", "localhost.", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_url(url: str, insecure_http: bool = False) -> None:
    """Raise TransportError unless ``url`` may be used: https, or http to loopback,
    or http anywhere with the explicit insecure flag. Decided before connecting."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname:
        if is_loopback(parts.hostname) or insecure_http:
            return
        raise TransportError(f"refusing plain http to {parts.hostname}: reports would travel unencrypted. "
                             "Use https://, or set insecure_http: true in agent.yaml for a test network only")
    raise TransportError(f"not a collector URL: {url!r} (expected https://host[:port])")


# ------------------------------------------------------------------ retry timing


def parse_retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    import email.utils

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    now = now or dt.datetime.now(dt.timezone.utc)
    return max(0.0, (when - now).total_seconds())


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter: uniform(0, min(cap, base · 2^attempt))."""
    return rng.uniform(0.0, min(cap, base * (2 ** attempt)))


# ------------------------------------------------------------------ HTTP


@dataclass(frozen=True)
class TransportSettings:
    """How to reach the collector: URL, trust and timeout."""

    server: str
    ca_bundle: str | None = None
    pinned_sha256: str | None = None
    insecure_http: bool = False
    timeout: float = 30.0


@dataclass(frozen=True)
class Response:
    """One HTTP answer from the collector."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def error_extra(self) -> dict[str, Any]:
        """Further fields of a collector error body (e.g. last_sequence with replayed_sequence)."""
        data = self.json()
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            return {k: v for k, v in data["error"].items() if k not in ("code", "message")}
        return {}

    def error(self) -> tuple[str, str]:
        """(code, message) of a collector error body {"error": {"code", "message"}}."""
        data = self.json()
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            err = data["error"]
            return str(err.get("code") or f"http_{self.status}"), str(err.get("message") or "")
        if isinstance(data, dict) and "detail" in data:
            return f"http_{self.status}", str(data["detail"])[:300]
        return f"http_{self.status}", self.body[:200].decode("utf-8", "replace")


class Client:
    """The collector over HTTP(S): the standard library's ``http.client`` on one kept-alive
    connection, TLS as configured. (Not ``requests``: importing it and urllib3 cost about a
    third of the hourly run's CPU, and one POST to one host needs none of it.) A proxy
    from the environment (``https_proxy``/``http_proxy``, ``no_proxy``) is used as
    ``requests`` would: CONNECT for https."""

    def __init__(self, settings: TransportSettings) -> None:
        check_url(settings.server, settings.insecure_http)
        self.settings = settings
        self.base = settings.server.rstrip("/")
        parts = urlsplit(self.base)
        self._scheme, self._host, self._port = parts.scheme, parts.hostname or "", parts.port
        self._prefix = parts.path.rstrip("/")
        self._user_agent = f"{USER_AGENT}/{_agent_version()}"
        self._tls: Any = None
        self._tls_eager_later = False  # the lazy system-CA context, with the full one as a second try
        if self._scheme == "https":
            self._tls = _lazy_system_ca_context(settings)
            self._tls_eager_later = self._tls is not None
            self._tls = self._tls or _tls_context(settings)
        self._conn: Any = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connect(self) -> Any:
        import http.client

        port = self._port or (443 if self._scheme == "https" else 80)
        proxy = _proxy_for(self._scheme, self._host)
        timeout = self.settings.timeout
        if self._scheme == "https":
            if proxy:
                conn = http.client.HTTPSConnection(proxy[0], proxy[1], timeout=timeout, context=self._tls)
                conn.set_tunnel(self._host, port)
            else:
                conn = http.client.HTTPSConnection(self._host, port, timeout=timeout, context=self._tls)
        else:
            conn = http.client.HTTPConnection(*(proxy or (self._host, port)), timeout=timeout)
        try:
            conn.connect()
        except OSError as exc:
            import ssl

            if not (self._tls_eager_later and isinstance(exc, ssl.SSLCertVerificationError)):
                raise
            conn.close()
            # The system's CA bundle may hold a CA its hashed folder lacks (added by hand, or
            # SSL_CERT_FILE): verify once more exactly as the default context would.
            self._tls, self._tls_eager_later = _tls_context(self.settings), False
            return self._connect()
        if self.settings.pinned_sha256 and self._scheme == "https":  # as before: the pin is a TLS matter
            _check_pin(conn.sock.getpeercert(binary_form=True), self.settings.pinned_sha256)
        return conn

    def _exchange(self, method: str, path: str, body: bytes | None, hdrs: dict[str, str]) -> Response:
        fresh = self._conn is None
        if fresh:
            self._conn = self._connect()
        target = self._prefix + path
        if self._scheme == "http" and _proxy_for("http", self._host):
            target = self.base + path  # a plain-http proxy takes the absolute URL
        try:
            self._conn.request(method, target, body=body, headers=hdrs)
            resp = self._conn.getresponse()
            data = resp.read()
        except (ConnectionResetError, BrokenPipeError, _remote_disconnected()):
            self.close()
            if fresh:
                raise
            # The kept-alive connection was closed by the collector meanwhile: once more on a new one
            # (sending is idempotent: a report the collector already has is answered "duplicate").
            return self._exchange(method, path, body, hdrs)
        headers: dict[str, str] = {}
        for k, v in resp.getheaders():
            k = k.lower()
            headers[k] = f"{headers[k]}, {v}" if k in headers else v
        if resp.will_close:
            self.close()
        return Response(resp.status, headers, data)

    def request(self, method: str, path: str, *, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> Response:
        """One HTTP exchange. Connection problems raise ConnectionProblem (retryable);
        TLS problems raise TransportError (not retryable: the config must change)."""
        import http.client
        import ssl

        hdrs = {"User-Agent": self._user_agent, "Accept-Encoding": "identity", **(headers or {})}
        if body is not None:
            hdrs.setdefault("Content-Type", "application/json")
        try:
            return self._exchange(method, path, body, hdrs)
        except (ssl.SSLError, ssl.CertificateError, PinMismatch) as exc:
            self.close()
            raise TransportError(tls_advice(self.base, exc, self.settings)) from None
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            what = "cannot reach" if isinstance(exc, OSError) else "request to"
            tail = "" if isinstance(exc, OSError) else " failed"
            raise ConnectionProblem(f"{what} {self.base}{tail}: {_short(exc) or type(exc).__name__}") from None

    # -------------------------------------------------------------- API

    def enroll(self, payload: dict[str, Any]) -> dict[str, Any]:
        r = self.request("POST", "/v1/enroll", body=json.dumps(payload).encode("utf-8"))
        if r.status in (200, 201) and isinstance(r.json(), dict):
            return r.json()
        code, message = r.error()
        raise ServerError(r.status, code, message)

    def send_report(self, data: bytes) -> "Outcome":
        try:
            r = self.request("POST", "/v1/reports", body=data)
        except ConnectionProblem as exc:
            return Outcome(RETRY, None, "connection", str(exc))
        except TransportError as exc:
            return Outcome(FATAL, None, "tls", str(exc))
        return classify(r)

    def get_policy(self, device_id: str, etag: str | None, device_key: Any) -> Response:
        """The unit's signed policy; the request is signed with the device key (the
        collector answers nobody else)."""
        from auditagent import signed_request

        path = signed_request.policy_path(device_id)
        headers = {"Accept": "application/json",
                   "Authorization": signed_request.authorization(device_id=device_id, method="GET", path=path,
                                                                 device_key=device_key)}
        if etag:
            headers["If-None-Match"] = etag
        return self.request("GET", path, headers=headers)


class PinMismatch(Exception):
    """The server's certificate is not the pinned one."""


def _remote_disconnected() -> type[Exception]:
    import http.client

    return http.client.RemoteDisconnected


def _check_pin(der: bytes | None, pin: str) -> None:
    import hashlib
    import hmac

    got = hashlib.sha256(der or b"").hexdigest()
    if not der or not hmac.compare_digest(got, pin.lower()):
        raise PinMismatch(f"Fingerprints did not match. Expected \"{pin.lower()}\", got \"{got}\"")


def _system_ca_dir() -> str | None:
    """The system's hashed CA folder (OpenSSL's ``<subject hash>.<n>`` names), where the
    system keeps one, as Debian, Ubuntu, SUSE and Arch do; else None."""
    import ssl

    capath = ssl.get_default_verify_paths().capath
    try:
        with os.scandir(capath or "") as entries:
            hashed = any(len(e.name) > 9 and e.name[8] == "." and e.name[9:].isdigit()
                         and all(c in "0123456789abcdef" for c in e.name[:8]) for e in entries)
    except OSError:
        return None
    return capath if hashed else None


def _lazy_system_ca_context(settings: TransportSettings) -> Any:
    """Verified TLS against the system's CAs, looked up in its hashed CA folder: OpenSSL reads
    just the issuer a handshake needs, where the default context parses the whole system
    bundle (~150 CAs, tens of ms of CPU) on every hourly run. The folder's CAs are among those
    the default context trusts (it loads the folder too), so this accepts nothing it would
    refuse; Client falls back to the default context if this one cannot verify. None where
    there is no such folder (Windows, macOS, Fedora) or the config names a CA bundle or pin."""
    if settings.pinned_sha256 or settings.ca_bundle:
        return None
    capath = _system_ca_dir()
    if capath is None:
        return None
    import ssl

    return ssl.create_default_context(capath=capath)


def _tls_context(settings: TransportSettings) -> Any:
    """Verified TLS: the system's CAs (certifi's where the system offers none), or the CA
    bundle given; with a pin, no CA or hostname check — the pin is checked on connect."""
    import ssl

    if settings.pinned_sha256:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    if settings.ca_bundle:
        try:
            return ssl.create_default_context(cafile=str(settings.ca_bundle))
        except (OSError, ssl.SSLError) as exc:
            raise TransportError(f"TLS: cannot use ca_bundle {settings.ca_bundle}: {exc}") from None
    ctx = ssl.create_default_context()
    if not ctx.cert_store_stats().get("x509_ca"):
        try:
            import certifi

            ctx.load_verify_locations(cafile=certifi.where())
        except (ImportError, OSError, ssl.SSLError):
            pass  # then every certificate fails to verify: refused, never trusted
    return ctx


def _proxy_for(scheme: str, host: str) -> tuple[str, int] | None:
    """(host, port) of the proxy the environment names for this scheme and host, if any
    (on Windows and macOS also the system's proxy settings, as urllib reads them)."""
    if sys.platform not in ("win32", "darwin") and not any(k.lower().endswith("_proxy") for k in os.environ):
        return None  # what urllib would find here, without importing it on every run
    import urllib.request

    proxies = urllib.request.getproxies()
    url = proxies.get(scheme)
    if not url or is_loopback(host) or urllib.request.proxy_bypass(host):
        return None
    parts = urlsplit(url if "://" in url else f"http://{url}")
    return (parts.hostname, parts.port or 80) if parts.hostname else None


class ConnectionProblem(Exception):
    """The collector could not be reached (retryable)."""


def _short(exc: BaseException) -> str:
    text = str(exc)
    # urllib3 wraps the useful part deep inside; keep the last reason.
    for marker in ("Caused by ", "Failed to establish a new connection: "):
        if marker in text:
            text = text.split(marker)[-1]
    return text.strip(" ()'\"")[:240]


def tls_advice(base: str, exc: BaseException, settings: TransportSettings) -> str:
    text = _short(exc)
    if settings.pinned_sha256 or "Fingerprints did not match" in text:
        return (f"TLS: the certificate of {base} does not match pinned_sha256 in agent.yaml ({text}). "
                "If the collector's certificate was renewed, IT must update the pin")
    if settings.ca_bundle:
        return (f"TLS: cannot verify {base} with ca_bundle {settings.ca_bundle} ({text}). "
                "Check that the bundle holds the CA that issued the collector's certificate")
    return (f"TLS: cannot verify the certificate of {base} ({text}). If the collector uses a private CA, "
            "set ca_bundle (or pinned_sha256) in agent.yaml")


def _agent_version() -> str:
    from auditagent import __version__

    return __version__


# ------------------------------------------------------------------ outcomes


@dataclass(frozen=True)
class Outcome:
    """What became of one delivery attempt."""

    kind: str  # delivered | duplicate | rejected | retry | fatal
    status: int | None
    code: str
    message: str = ""
    retry_after: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def classify(r: Response) -> Outcome:
    if 200 <= r.status < 300:
        data = r.json() if r.body else None
        status = data.get("status") if isinstance(data, dict) else None
        # ``access``: the readiness certificate, or why there is none (auditagent.access_cert).
        extra = {"access": data["access"]} if isinstance(data, dict) and isinstance(data.get("access"), dict) else {}
        return Outcome(DUPLICATE if status == "duplicate" else DELIVERED, r.status, status or "stored", extra=extra)
    if 300 <= r.status < 400:
        return Outcome(FATAL, r.status, "redirect",
                       f"the collector answered {r.status} with a redirect to {r.headers.get('location', '?')}; "
                       "set the collector URL to the final address (reports are not sent to a redirected URL)")
    code, message = r.error()
    if r.status == 404 and code in ("not_found", f"http_{r.status}"):
        # Not a refusal of this report: there is no collector API at that address.
        return Outcome(FATAL, r.status, "not_found", f"no collector API at this address ({message[:120]}); "
                       "check the collector URL")
    if r.status in RETRYABLE_STATUS or r.status >= 500:
        return Outcome(RETRY, r.status, code, message, parse_retry_after(r.headers.get("retry-after")))
    if r.status == 409 and code == "report_id_conflict":
        # The collector already holds this report id from this device (e.g. delivered, then
        # re-signed after re-enrolment before the spool noticed): it is delivered.
        return Outcome(DUPLICATE, r.status, code, message)
    return Outcome(REJECTED, r.status, code, message, extra=r.error_extra())


@dataclass
class DeliverySummary:
    """What one delivery of the outbox achieved."""

    delivered: int = 0
    duplicates: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    deferred: list[dict[str, Any]] = field(default_factory=list)  # failed this run, left for the next
    remaining: int = 0
    attempts: int = 0
    last_error: dict[str, Any] | None = None
    last_delivered: dict[str, Any] | None = None
    stopped: str | None = None  # why sending stopped early (collector down, TLS, Retry-After too long)

    def to_dict(self) -> dict[str, Any]:
        return {"delivered": self.delivered, "duplicates": self.duplicates, "rejected": self.rejected,
                "deferred": self.deferred, "remaining": self.remaining, "attempts": self.attempts, "last_error": self.last_error,
                "stopped": self.stopped}


def oversize_reason(data: bytes) -> str | None:
    """Why ``data`` must not be sent (None if it may): bigger than a collector accepts."""
    from auditagent.report import MAX_REPORT_BYTES

    if len(data) <= MAX_REPORT_BYTES:
        return None
    return (f"the signed report is {len(data)} bytes, more than the {MAX_REPORT_BYTES} bytes (256 KiB) a collector "
            "accepts, so it is kept here and not sent; tell IT: the facts this policy reads make the report too big")


def deliver_spool(spool: Any, send: Callable[[bytes], Outcome], *, attempts: int = 5, base_delay: float = 1.0,
                  max_delay: float = 300.0, sleep: Callable[[float], None] = time.sleep,
                  rng: random.Random | None = None, log: Any = None) -> DeliverySummary:
    """Send the spooled reports oldest first. A refusal (4xx) sets the report aside under
    rejected/ and goes on. When the collector as a whole is unavailable (connection, 502,
    503, 504, 408, 425, 429) after ``attempts`` tries, the run stops and the rest keep
    their order. A report that still fails with another 5xx is left in the spool and the
    next ones are sent; if they get through, that report's failed run is counted, and
    after :data:`MAX_FAILED_RUNS` such runs it is set aside as ``undeliverable``."""
    rng = rng or random.Random()
    summary = DeliverySummary()
    deferred: list[tuple[Any, Outcome]] = []
    for entry in spool.entries():
        try:
            data = spool.read(entry)
        except FileNotFoundError:
            continue
        oversize = oversize_reason(data)
        if oversize:  # e.g. put back by `resend`: refused for its size every time, so never sent
            from auditagent.spool import TOO_LARGE

            spool.reject(entry, TOO_LARGE, oversize, None)
            summary.rejected.append({"report_id": entry.report_id, "sequence": entry.sequence, "code": TOO_LARGE,
                                     "message": oversize, "http_status": None})
            summary.last_error = {"code": TOO_LARGE, "message": oversize, "http_status": None}
            continue
        attempt = 0
        while True:
            summary.attempts += 1
            crash_point("before_send")
            outcome = send(data)
            if outcome.kind in (DELIVERED, DUPLICATE):
                crash_point("mid_send")  # delivered, not yet removed: the resend must be a duplicate
                if hasattr(spool, "acknowledge_delivered"):
                    spool.acknowledge_delivered(data)
                spool.remove(entry)
                if outcome.kind == DELIVERED:
                    summary.delivered += 1
                else:
                    summary.duplicates += 1
                summary.last_delivered = {"report_id": entry.report_id, "sequence": entry.sequence,
                                          "status": outcome.code}
                if log is not None:
                    log.info("report_sent", report_id=entry.report_id, sequence=entry.sequence, status=outcome.code)
                break
            if outcome.kind == REJECTED:
                spool.reject(entry, outcome.code, outcome.message, outcome.status)
                summary.rejected.append({"report_id": entry.report_id, "sequence": entry.sequence,
                                         "code": outcome.code, "message": outcome.message,
                                         "http_status": outcome.status, **outcome.extra})
                summary.last_error = {"code": outcome.code, "message": outcome.message, "http_status": outcome.status}
                if log is not None:
                    log.error("report_rejected", report_id=entry.report_id, sequence=entry.sequence,
                              http_status=outcome.status, code=outcome.code, message=outcome.message,
                              kept_in=str(spool.directory / "rejected"))
                break
            summary.last_error = {"code": outcome.code, "message": outcome.message, "http_status": outcome.status}
            if outcome.kind == FATAL:
                summary.stopped = outcome.message
                if log is not None:
                    log.error("send_failed", code=outcome.code, message=outcome.message)
                break
            attempt += 1
            if attempt >= attempts and _about_this_report(outcome) and not (deferred and not _got_through(summary)):
                deferred.append((entry, outcome))
                summary.deferred.append({"report_id": entry.report_id, "sequence": entry.sequence,
                                         "code": outcome.code, "http_status": outcome.status})
                if log is not None:
                    log.warning("send_deferred_report", report_id=entry.report_id, sequence=entry.sequence,
                                tries=attempts, code=outcome.code, http_status=outcome.status)
                break
            if attempt >= attempts:
                summary.stopped = (f"collector unavailable after {attempts} tries "
                                   f"({outcome.code}{': ' + outcome.message if outcome.message else ''}); "
                                   "the report stays in the spool for the next run")
                if log is not None:
                    log.warning("send_gave_up", report_id=entry.report_id, tries=attempts, code=outcome.code,
                                http_status=outcome.status)
                break
            delay = backoff_delay(attempt - 1, base_delay, max_delay, rng)
            if outcome.retry_after is not None:
                if outcome.retry_after > max_delay:
                    summary.stopped = (f"collector asked to wait {outcome.retry_after:.0f} s (Retry-After); "
                                       "the report stays in the spool for the next run")
                    if log is not None:
                        log.warning("send_deferred", retry_after=outcome.retry_after, http_status=outcome.status)
                    break
                delay = max(delay, outcome.retry_after)
            if log is not None:
                log.info("send_retry", report_id=entry.report_id, attempt=attempt, wait_seconds=round(delay, 2),
                         code=outcome.code, http_status=outcome.status)
            sleep(delay)
        if summary.stopped:
            break
    if deferred and _got_through(summary):
        # The collector took reports after them: the failures are about these reports.
        for entry, outcome in deferred:
            if spool.note_failed_run(entry) >= MAX_FAILED_RUNS:
                message = (f"the collector failed on this report in {MAX_FAILED_RUNS} runs while accepting others "
                           f"({outcome.status} {outcome.code}{': ' + outcome.message if outcome.message else ''})")
                spool.reject(entry, "undeliverable", message, outcome.status)
                summary.rejected.append({"report_id": entry.report_id, "sequence": entry.sequence,
                                         "code": "undeliverable", "message": message, "http_status": outcome.status})
                if log is not None:
                    log.error("report_undeliverable", report_id=entry.report_id, sequence=entry.sequence,
                              kept_in=str(spool.directory / "rejected"))
    summary.remaining = spool.depth()
    return summary


def _about_this_report(outcome: Outcome) -> bool:
    return outcome.kind == RETRY and outcome.status is not None and outcome.status >= 500 \
        and outcome.status not in COLLECTOR_WIDE_STATUS


def _got_through(summary: DeliverySummary) -> bool:
    return summary.delivered + summary.duplicates > 0
