"""``GET /v1/gateway/check``: for gateways that can ask (nginx ``auth_request``, a VPN's
posture hook) — is this device ready now? Called per connection or request.

In: the client certificate the gateway verified (``X-Client-Cert``, PEM, URL-escaped as
nginx's ``$ssl_client_escaped_cert``) or a device id (``X-Device-Id`` header or
``device_id`` query parameter); with both, they must name the same device.
Out: 200 (may enter) or 403 (may not), always with ``X-Readiness-State``,
``X-Readiness-Reason`` and ``X-Readiness-Device`` headers (auth_request passes only
headers on) and the same as JSON. Answered from the device's latest state
(:func:`server.access.device_access`, the one definition of its state).

Who may ask: an API token (server/api_tokens.py), about the devices of its units (:func:`gateway_scope`).
"""
from __future__ import annotations

import urllib.parse
from typing import Any

from cryptography import x509
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from server import access
from server.db import now
from server.api_tokens import require_token
from server.auth import User
from server.readiness import Scope
from server.readiness_ca import certificate_device_id
from server.store import ApiError

router = APIRouter(tags=["access"])
MAX_CERT_CHARS = 16 * 1024


_caller = require_token("admin", "security_officer", "unit_manager")


async def gateway_scope(user: User = Depends(_caller)) -> Scope:
    """The gateway's API token (``auditagent-collector api-token create NAME --role …
    [--unit PATH]``, sent as ``Authorization: Bearer aat_…``; dashboard sessions are
    refused): it may ask about the devices of its unit subtree only."""
    return Scope.for_user(user)


def _answer(status: int, device_id: str | None, state: str, reason: str, unit: str | None = None) -> JSONResponse:
    # Header values: ASCII only, no line breaks (the reason and unit are ours, but be strict).
    def h(v: str | None) -> str:
        return urllib.parse.quote(v or "", safe=" ,:;/()=-_.+@")[:500]
    return JSONResponse({"allowed": status == 200, "device_id": device_id, "state": state, "reason": reason,
                         "unit": unit}, status_code=status,
                        headers={"X-Readiness-State": h(state), "X-Readiness-Reason": h(reason),
                                 "X-Readiness-Device": h(device_id), "Cache-Control": "no-store"})


def _decide(app: Any, scope: Scope, cert_text: str | None, device_hint: str | None) -> JSONResponse:
    t = now()
    device_id = device_hint
    if cert_text is not None:
        pem = urllib.parse.unquote(cert_text) if "%" in cert_text else cert_text
        try:
            cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            return _answer(403, device_hint, "bad_certificate", "the client certificate is not a PEM certificate")
        ca = app.state.readiness_ca
        if ca is None or not ca.issued_by_us(cert, t):
            return _answer(403, device_hint, "bad_certificate", "not issued by this collector's readiness CA")
        if not cert.not_valid_before_utc <= t < cert.not_valid_after_utc:
            return _answer(403, device_hint, "expired_certificate", "the readiness certificate is not valid now")
        device_id = certificate_device_id(cert)
        if device_id is None or (device_hint is not None and device_hint != device_id):
            return _answer(403, device_hint, "bad_certificate", "the certificate does not name this device")
    assert device_id is not None
    settings = app.state.settings
    if not hasattr(app.state, "gateway_cover"):
        app.state.gateway_cover = access.CoverCache()
    with app.state.store.engine.connect() as conn:
        decision = access.device_access(conn, device_id, t, default_max_age_hours=settings.default_max_report_age_hours,
                                        cover=app.state.gateway_cover.get(conn, t), freshness=False)
    if not scope.contains(decision.unit):  # outside the caller's units: indistinguishable from unknown
        return _answer(403, device_id, access.UNKNOWN_DEVICE, "not enrolled at this collector")
    return _answer(200 if decision.granted else 403, device_id, decision.state, decision.reason, decision.unit)


@router.get("/v1/gateway/check", responses={200: {"description": "may enter"}, 403: {"description": "refused"},
                                            400: {}, 401: {}})
async def gateway_check(request: Request, device_id: str | None = None,
                        scope: Scope = Depends(gateway_scope)) -> JSONResponse:
    """May this device have remote access now? 200 or 403, with the reason in
    ``X-Readiness-Reason`` (and the JSON body)."""
    cert = request.headers.get("x-client-cert") or None
    hint = request.headers.get("x-device-id") or device_id or None
    if cert is None and hint is None:
        raise ApiError(400, "missing_device", "send X-Client-Cert (the verified client certificate) or X-Device-Id")
    if cert is not None and len(cert) > MAX_CERT_CHARS:
        raise ApiError(400, "bad_certificate", f"X-Client-Cert: longer than {MAX_CERT_CHARS} characters")
    if hint is not None and (len(hint) > 64 or not hint.isprintable()):
        raise ApiError(400, "bad_device_id", "X-Device-Id: at most 64 printable characters")
    return await run_in_threadpool(_decide, request.app, scope, cert, hint)
