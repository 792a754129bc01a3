"""POST /v1/reports as a plain ASGI endpoint: the body is read, handed to
:meth:`server.store.Store.ingest` in a worker thread, and the JSON answer sent, without
FastAPI's per-request machinery (request object, dependency solving, response model),
which cost more CPU per report than verifying it. It is a route of the app, so the app's
middleware (body limit, headers) and exception handlers apply unchanged: an ApiError or
a database error raised here is answered exactly as on every other route. The FastAPI
route of the same path stays for the OpenAPI document."""
from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

from starlette.concurrency import run_in_threadpool

from server.store import ApiError, Store

_JSON = (b"content-type", b"application/json")


# What may add to an accepted report's answer (the readiness certificate, server/access_api.py).
AfterReport = Callable[[bytes, int, dict[str, Any]], Awaitable[dict[str, Any]]]


class ReportEndpoint:
    def __init__(self, store: Store, max_body: int, after: AfterReport | None = None) -> None:
        self.store = store
        self.max_body = max_body
        self.after = after

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = await self._body(scope, receive)
        status, result = await run_in_threadpool(self.store.ingest, body)
        if self.after is not None:
            result = await self.after(body, status, result)
        payload = json.dumps(result, separators=(",", ":")).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [_JSON, (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})

    async def _body(self, scope: dict[str, Any], receive: Any) -> bytes:
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    raise ApiError(400, "malformed_request", "Content-Length is not a number") from None
                if declared > self.max_body:
                    raise ApiError(413, "payload_too_large", f"body of {declared} bytes exceeds the limit of "
                                                             f"{self.max_body} bytes")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ApiError(400, "malformed_request", "the client went away before the body was complete")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise ApiError(413, "payload_too_large", f"body exceeds the limit of {self.max_body} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)
