"""The JSON error body every endpoint answers with, for the OpenAPI document: one
definition shared by the collector app and the readiness API."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route that may answer these statuses with an ErrorBody."""
    return {s: {"model": ErrorBody} for s in statuses}
