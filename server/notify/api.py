"""``/api/v1/subscriptions``: each user manages their own (any role, within their
scope; API tokens too)."""
from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from server import auth
from server.error_models import error_responses as _errors
from server.notify import subscriptions
from server.notify.events import EVENTS
from server.notify.subscriptions import SubscriptionInfo

router = APIRouter(prefix="/api/v1/subscriptions", tags=["notifications"])


class SubscriptionCreate(BaseModel):
    unit_id: int
    channel: str = Field(description="email | webhook")
    target: str = Field(min_length=3, max_length=500, description="e-mail address, or https URL of the webhook")
    events: list[str] = Field(min_length=1, max_length=len(EVENTS), description=" | ".join(EVENTS))
    exception_days: int = Field(default=14, description="exception_expiring: ends within this many days (1–90)")
    target_pct: int | None = Field(default=None, description="below_target: the unit's readiness target %")
    lang: str | None = Field(default=None, description="sv | da | en (default: the user's)")


@dataclass(frozen=True)
class SubscriptionCreated:
    subscription: SubscriptionInfo
    webhook_secret: str | None  # shown once: verify X-Auditagent-Signature with it


def _tx(request: Request):  # type: ignore[no-untyped-def]
    return request.app.state.store.engine.begin()


@router.get("", response_model=list[SubscriptionInfo], responses=_errors(401))
def api_list(request: Request, user: auth.User = Depends(auth.current_user)) -> list[SubscriptionInfo]:
    with _tx(request) as conn:
        return subscriptions.list_subscriptions(conn, user.id)


@router.post("", status_code=201, response_model=SubscriptionCreated, responses=_errors(401, 403, 404, 422))
def api_create(body: SubscriptionCreate, request: Request,
               user: auth.User = Depends(auth.current_user)) -> SubscriptionCreated:
    """Subscribe to a unit's daily digest (the unit must be one you can see)."""
    config = getattr(request.app.state.settings, "notify", None)
    with _tx(request) as conn:
        info, secret = subscriptions.subscribe(conn, user, unit_id=body.unit_id, channel=body.channel,
                                               target=body.target, events=body.events,
                                               exception_days=body.exception_days, target_pct=body.target_pct,
                                               lang=body.lang, config=config)
    return SubscriptionCreated(subscription=info, webhook_secret=secret)


@router.delete("/{subscription_id}", status_code=204, responses=_errors(401, 403, 404))
def api_delete(subscription_id: int, request: Request, user: auth.User = Depends(auth.current_user)) -> Response:
    with _tx(request) as conn:
        subscriptions.unsubscribe(conn, user, subscription_id)
    return Response(status_code=204)
