"""The notifications page (``/subscriptions``): each signed-in user lists, adds and removes
their own daily digests — a unit within their scope, the events, the digest's language,
e-mail or (where the collector allows webhook hosts) a signed webhook.

The rules are :mod:`server.notify.subscriptions`' own, the same as the API's: a unit out
of the user's scope is refused as missing and nothing is stored; a webhook's secret is
shown once, on the page that confirms it. Forms carry the session's CSRF token (checked by
:mod:`server.web` before these handlers run).
"""
from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from server.db import units
from server.notify import subscriptions
from server.notify.events import BELOW_TARGET, CHANNELS, EVENTS, EXCEPTION_EXPIRING
from server.notify.messages import LANGS
from server.store import ApiError
from server.web_common import SECURITY_HEADERS

BLANK_FORM = {"unit_id": "", "channel": "email", "target": "", "exception_days": "14", "target_pct": "",
              "lang": ""}


def _number(form: dict[str, str], field: str, digits: int = 3) -> int | None:
    text = (form.get(field) or "").strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or len(text) > digits:
        raise ApiError(422, "invalid", f"{field}: a whole number", field=field)
    return int(text)


def _error(t: Any, exc: ApiError) -> str:
    """The refusal in the reader's words: by its code, else by the field it names."""
    from server.web import error_text

    field = exc.extra.get("field") if isinstance(exc.extra, dict) else None
    for key in (f"subscriptions.error.{exc.code}", f"subscriptions.invalid.{field}"):
        if t.has(key):
            return t(key)
    if exc.status == 404:  # a unit out of scope reads as one that does not exist
        return t("subscriptions.unit_unknown")
    return error_text(t, exc)


def page(web: Any, ctx: Any, *, status: int = 200, notice: str | None = None, error: str | None = None,
         form: dict[str, str] | None = None, secret: str | None = None) -> Response:
    scope = web.scope(ctx.user)
    config = getattr(web.settings, "notify", None)
    with web.engine.connect() as conn:
        mine = subscriptions.list_subscriptions(conn, ctx.user.id)
        unit_options = [{"id": r.id, "label": r.path} for r in conn.execute(
            select(units.c.id, units.c.path).where(scope.clause(units.c.path)).order_by(units.c.path))]
    channels = [c for c in CHANNELS if c != "webhook" or (config and config.webhook_allowed_hosts)]
    # Below target needs a target %: not ticked until the officer gives one.
    form = form or dict(BLANK_FORM, lang=getattr(ctx.user, "lang", None) or ctx.lang,
                        events=",".join(e for e in EVENTS if e != BELOW_TARGET))
    return web.render(ctx, "subscriptions.html", status=status, nav="subscriptions", rows=mine, notice=notice,
                      error=error, form=form, wanted=set((form.get("events") or "").split(",")), secret=secret,
                      unit_options=unit_options, channels=channels, events=EVENTS, langs=LANGS,
                      delivery_configured=bool(config and (config.smtp or config.webhook_allowed_hosts)),
                      needs_days=EXCEPTION_EXPIRING, needs_target=BELOW_TARGET)


def subscribe(web: Any, ctx: Any, form: dict[str, str]) -> Response:
    events = [e for e in EVENTS if form.get(f"event_{e}")]
    kept = {k: (form.get(k) or "")[:500] for k in BLANK_FORM} | {"events": ",".join(events)}
    try:
        unit_id = _number(form, "unit_id", digits=18)
        if unit_id is None:
            raise ApiError(422, "invalid", "unit_id: choose a unit", field="unit_id")
        days = _number(form, "exception_days")
        with web.engine.begin() as conn:
            info, secret = subscriptions.subscribe(
                conn, ctx.user, unit_id=unit_id, channel=form.get("channel", ""), target=form.get("target", ""),
                events=events, exception_days=14 if days is None else days,
                target_pct=_number(form, "target_pct"), lang=form.get("lang") or None,
                config=getattr(web.settings, "notify", None), now=web.now())
    except ApiError as exc:
        return page(web, ctx, status=exc.status if exc.status in (403, 404, 422) else 400,
                    error=_error(ctx.t, exc), form=kept)
    if secret:  # shown once, never again: not in a redirect's URL
        return page(web, ctx, status=201, notice=ctx.t("subscriptions.created", unit=info.unit), secret=secret)
    return RedirectResponse("/subscriptions?created=1", status_code=303, headers=SECURITY_HEADERS)


def unsubscribe(web: Any, ctx: Any, subscription_id: int, form: dict[str, str]) -> Response:
    try:
        with web.engine.begin() as conn:
            subscriptions.unsubscribe(conn, ctx.user, subscription_id, web.now())
    except ApiError as exc:  # another user's subscription: not found, nothing deleted
        return page(web, ctx, status=exc.status, error=ctx.t("subscriptions.not_found"))
    return RedirectResponse("/subscriptions?deleted=1", status_code=303, headers=SECURITY_HEADERS)


def add_routes(router: Any, web: Any, posted: Any) -> None:
    @router.get("/subscriptions")
    async def subscriptions_page(request: Request) -> Response:
        def show(ctx: Any) -> Response:
            q = ctx.request.query_params
            notice = ctx.t("subscriptions.saved") if q.get("created") else (
                ctx.t("subscriptions.deleted") if q.get("deleted") else None)
            return page(web, ctx, notice=notice)

        return await web.page(request, show)

    @router.post("/subscriptions")
    async def subscribe_post(request: Request) -> Response:
        return await posted(request, lambda ctx, form: subscribe(web, ctx, form))

    @router.post("/subscriptions/{subscription_id}/delete")
    async def unsubscribe_post(request: Request, subscription_id: str) -> Response:
        if not subscription_id.isdigit() or len(subscription_id) > 18:
            return await web.page(request, lambda ctx: web.error_page(ctx, 404, ctx.t("not_found")))
        return await posted(request, lambda ctx, form: unsubscribe(web, ctx, int(subscription_id), form))
