"""HTTP side of readiness-gated access (server/access.py):

* ``PUT /v1/devices/{id}/tls-key`` — a device registers the TLS key to be certified
  (signed request, auditagent.tls_request); answers with a certificate at once if ready.
* ``GET /v1/readiness-ca.pem`` — the CA certificates gateways must trust now (public).
* :func:`after_report` — the hook ``POST /v1/reports`` calls after a report is accepted:
  adds ``access`` (the certificate, or why there is none) to the answer.

All of it is off (404 ``access_disabled``) unless the collector runs with a readiness CA
(``serve --readiness-ca DIR``).
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from auditagent import report as wire
from server import access
from server.db import now
from server.readiness_ca import ReadinessCA
from server.store import ApiError

router = APIRouter(tags=["access"])


def _ca(request: Request) -> ReadinessCA:
    ca = getattr(request.app.state, "readiness_ca", None)
    if ca is None:
        raise ApiError(404, "access_disabled", "this collector issues no readiness certificates "
                                               "(it runs without --readiness-ca)")
    return ca


def _issue(app: Any, device_id: str) -> dict[str, Any]:
    settings = app.state.settings
    store = app.state.store
    with store.engine.connect() as conn:
        return access.issue_for(conn, app.state.readiness_ca, device_id, now(), lifetime=settings.certificate_lifetime,
                                default_max_age_hours=settings.default_max_report_age_hours)


async def after_report(app: Any, body: bytes, status: int, result: dict[str, Any]) -> dict[str, Any]:
    """``result`` of an accepted report, with ``access`` when a readiness CA is configured."""
    if getattr(app.state, "readiness_ca", None) is None or status not in (200, 201):
        return result
    device_id = wire.decode_envelope(wire.parse_envelope(body)).device_id  # verified and stored already
    return {**result, "access": await run_in_threadpool(_issue, app, device_id)}


async def _body(request: Request, limit: int = 64 * 1024) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "payload_too_large", f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@router.put("/v1/devices/{device_id}/tls-key", status_code=201)
async def put_tls_key(device_id: str, request: Request) -> JSONResponse:
    """Register the device's TLS public key (a PKCS#10 request in a DSSE envelope of type
    ``application/vnd.auditagent.tls-key-request+json`` signed with the device key)."""
    _ca(request)
    body = await _body(request)
    status, sha = await run_in_threadpool(access.register_tls_key, request.app.state.store.engine, device_id, body,
                                          now(), request.app.state.settings.limits)
    granted = await run_in_threadpool(_issue, request.app, device_id)
    return JSONResponse({"device_id": device_id, "key_sha256": sha, "access": granted}, status_code=status)


@router.get("/v1/readiness-ca.pem", response_class=Response)
def readiness_ca_bundle(request: Request) -> Response:
    """The readiness CA certificates a gateway must trust now (PEM), including a new
    generation before it starts signing and an old one until its certificates expire."""
    return Response(_ca(request).bundle_pem(now()), media_type="application/x-pem-file",
                    headers={"Cache-Control": "max-age=300"})
