"""What every dashboard response shares, used by the pages (:mod:`server.web`) and the
log-in handlers (:mod:`server.web_auth`) alike: the security headers and the check of
where to go after log-in."""
from __future__ import annotations

from urllib.parse import urlsplit

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; "
                               "form-action 'self'; frame-ancestors 'none'; img-src 'self' data:; "
                               "style-src 'self' 'unsafe-inline'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def safe_next(value: str | None) -> str:
    """A local path to go to after login: '/…' only — no scheme, no host, no '//' or '/\\'."""
    if not value or not isinstance(value, str) or len(value) > 2000:
        return "/"
    if not value.startswith("/") or value.startswith("//") or value.startswith("/\\"):
        return "/"
    if any(c in value for c in "\r\n\t\\") or any(ord(c) < 32 for c in value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value
