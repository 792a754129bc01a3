"""POST /v1/reports as a plain ASGI endpoint: the body is read, verified and handed to
the group commit, and the JSON answer sent, without FastAPI's per-request machinery
(request object, dependency solving, response model), which cost more CPU per report
than verifying it.

The checks run in the event loop's own thread when they need no database read (the
device's key cached): a hop to a worker thread per request, and sixteen threads taking
turns at the GIL, cost several times the work itself. The request then awaits the
group commit's future; only a report that needs a read (a key not cached, a conflict,
a clock ahead) is done in a worker thread, as before, by :meth:`Store.ingest`.

:class:`LeanReports` serves the route ahead of the app's router with the app's own
middleware and exception handlers around it (server/app.py, ``CollectorApp.serve_lean``:
one table, the router's route pointing at the same endpoint, for the OpenAPI document),
so every answer is the one the full stack gives. A refusal is answered at once: a client
still sending what the collector will not read gets the answer whole, by the server's
lingering close (server/http_server.py)."""
from __future__ import annotations

import asyncio
import json
from typing import Any, Awaitable, Callable

from sqlalchemy.exc import IntegrityError
from starlette._utils import is_async_callable
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from server.store import ApiError, NeedsDatabase, Store, VerifiedReport

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
        status, result = await self._ingest(body)
        if self.after is not None:
            result = await self.after(body, status, result)
        payload = json.dumps(result, separators=(",", ":")).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [_JSON, (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})

    async def _ingest(self, body: bytes) -> tuple[int, dict[str, Any]]:
        try:
            verified = self.store.verify(body, cached_only=True)
        except NeedsDatabase:
            return await run_in_threadpool(self.store.ingest, body)
        if not isinstance(verified, VerifiedReport):
            return verified
        try:
            stored = await asyncio.wrap_future(self.store.submit(verified))
        except IntegrityError:
            stored = False
        if stored:
            return self.store.settle(verified, True)
        return await run_in_threadpool(self.store.settle, verified, False)

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


class LeanReports:
    """ASGI: ``endpoint`` through the app's user middleware and exception handlers (built
    on first use, as Starlette builds its stack). Skipped: Starlette's router, FastAPI's
    request wrapping and its exit stacks."""

    def __init__(self, app: Any, endpoint: Any) -> None:
        self.app = app
        self.endpoint = endpoint
        self._stack: Any = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if self._stack is None:
            stack: Any = self._answering_errors
            for cls, args, kwargs in reversed(self.app.user_middleware):
                stack = cls(stack, *args, **kwargs)
            self._stack = stack
        scope["app"] = self.app
        await self._stack(scope, receive, send)

    async def _answering_errors(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """The app's exception handlers, looked up as Starlette's ExceptionMiddleware does
        (by the exception's class hierarchy); an exception without one is raised on, to
        the server's own 500."""
        started = False

        async def sending(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.endpoint(scope, receive, sending)
        except Exception as exc:
            handler = next((self.app.exception_handlers[c] for c in type(exc).__mro__
                            if c in self.app.exception_handlers and c is not Exception), None)
            if handler is None or started:
                raise
            request = Request(scope, receive)
            response = (await handler(request, exc) if is_async_callable(handler)
                        else await run_in_threadpool(handler, request, exc))
            await response(scope, receive, sending)
