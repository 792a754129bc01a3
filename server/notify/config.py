"""``serve --notify-config FILE`` (YAML)::

    smtp:
      host: smtp.office365.com
      port: 587
      from: auditagent@kommun.se
      username: auditagent@kommun.se        # optional
      password_file: /etc/auditagent/smtp-password
      ca_file: null                          # a private CA; default: the system's
    webhook_allowed_hosts: [siem.kommun.se]  # webhooks only to these hosts (none: no webhooks)
    webhook_ca_file: null
    digest_hour_utc: 6                       # the daily digest is made from this hour on
    max_attempts: 12

STARTTLS is always used and the server's certificate verified; there is no switch
to send mail in the clear.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml


class NotifyConfigError(ValueError):
    pass


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int = 587
    sender: str = "auditagent@localhost"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    timeout: float = 20.0


@dataclass(frozen=True)
class NotifyConfig:
    smtp: SmtpConfig | None = None
    webhook_allowed_hosts: tuple[str, ...] = ()
    webhook_ca_file: str | None = None
    digest_hour_utc: int = 6
    max_attempts: int = 12


def load_config(path: str | Path) -> NotifyConfig:
    where = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise NotifyConfigError(f"{where}: cannot read the notification config: {exc}") from None
    if not isinstance(data, dict):
        raise NotifyConfigError(f"{where}: must be a mapping of fields")
    smtp = None
    s = data.get("smtp")
    if s is not None:
        if not isinstance(s, dict) or not isinstance(s.get("host"), str):
            raise NotifyConfigError(f"{where}: smtp.host: required text")
        password = s.get("password")
        if s.get("password_file"):
            password = Path(str(s["password_file"])).read_text(encoding="utf-8").strip()
        try:
            port = int(s.get("port", 587))
        except (TypeError, ValueError):
            raise NotifyConfigError(f"{where}: smtp.port: a number") from None
        smtp = SmtpConfig(host=s["host"], port=port, sender=str(s.get("from") or "auditagent@localhost"),
                          username=s.get("username"), password=password, ca_file=s.get("ca_file"))
    hosts = data.get("webhook_allowed_hosts") or []
    if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
        raise NotifyConfigError(f"{where}: webhook_allowed_hosts: a list of host names")
    hour = data.get("digest_hour_utc", 6)
    if not isinstance(hour, int) or not 0 <= hour <= 23:
        raise NotifyConfigError(f"{where}: digest_hour_utc: 0 to 23")
    attempts = data.get("max_attempts", 12)
    if not isinstance(attempts, int) or not 1 <= attempts <= 100:
        raise NotifyConfigError(f"{where}: max_attempts: 1 to 100")
    return NotifyConfig(smtp=smtp, webhook_allowed_hosts=tuple(h.lower() for h in hosts),
                        webhook_ca_file=data.get("webhook_ca_file"), digest_hour_utc=hour, max_attempts=attempts)
