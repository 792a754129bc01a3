"""JSON request bodies read strictly, for every route of the collector's API."""
from __future__ import annotations

import json
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from auditagent import report as wire


class StrictJsonRequest(Request):
    """A request whose JSON body is read by :func:`auditagent.report.strict_loads`: no
    duplicate keys, NaN/Infinity/1e400, NUL, lone surrogates or deep nesting reaches a
    route (refused as 400 malformed_json, with what and where)."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = wire.strict_loads(body, "body")
            except wire.ReportError as exc:
                raise json.JSONDecodeError(exc.message, body.decode("utf-8", "replace")[:0], 0) from None
        return self._json


class StrictJsonRoute(APIRoute):
    def get_route_handler(self) -> Any:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(StrictJsonRequest(request.scope, request.receive))

        return strict_handler
