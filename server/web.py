"""The dashboard: server-rendered HTML (Jinja2, autoescape on for every template), no
JavaScript needed for anything.

    GET  /login, POST /login, POST /logout
    GET  /                     unit tree with readiness bars
    GET  /units/{id}           summary, trend (inline SVG), sub-units, failing checks,
                               stale devices, filtered and paged device table, CSV link
    GET  /devices/{id}         latest results with exceptions, report timeline with a
                               signed-envelope download per report, the device's key
    GET  /exceptions, POST /exceptions, POST /exceptions/{id}/revoke
    GET  /static/dashboard.css

Every page except /login needs a session (cookie ``aa_session``); without one the
answer is 303 to ``/login?next=<local path>``. Every form carries the session's CSRF
token (``csrf_token``); the login form a pre-session token bound to a cookie
(double submit). Pages are sent with a strict Content-Security-Policy (no script at
all), X-Frame-Options DENY and no referrer.

The data comes from :mod:`server.readiness` (the same functions as the JSON API);
sessions, users and roles from :mod:`server.auth`.
"""
from __future__ import annotations

import datetime as dt
import hmac
import json
import math
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response, StreamingResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from auditagent.textsafe import neutralise
from server import audit_trail
from server import readiness as rd
from server import web_auth, web_subscriptions
from server.auth import cookies_secure
from server.db import devices, units
from server.i18n_web import LANG_NAMES, LANGS, Translator, choose_language
from server.local_time import DEFAULT_ZONE, local_midnight_after, local_today, time_zone
from server.name_breaks import breakable
from server.report_trend import trend_sentence
from server.store import ApiError
from server.trend_svg import trend_chart
from server.web_common import SECURITY_HEADERS, safe_next

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
LANG_COOKIE = "aa_lang"
LOGIN_CSRF_COOKIE = "aa_login_csrf"
TREND_DAYS = 90
PER_PAGE = 50
REPORT_DAYS = (30, 90, 180, 365)  # the committee report's periods, in days ending today
PLATFORMS = ("windows", "macos", "linux")

def _shown(value: Any) -> Any:
    """Jinja ``finalize``: plain strings neutralised (markup we built ourselves is left alone).
    It runs for every value a page prints, so the two commonest cases come first: a plain
    printable string (which neutralise would return as it is) and a number (its text, as
    escape would write it, minus escape's look for ``__html__``)."""
    kind = type(value)
    if kind is str:
        return value if value.isprintable() else neutralise(value)
    if kind is int:
        return str(value)
    if isinstance(value, str) and not isinstance(value, Markup):
        return neutralise(value)
    return value


def bar_widths(counts: Any, total: int) -> list[tuple[str, str]]:
    """A readiness bar's segments: (state, width in % of ``total``) for each state with
    devices, in the order every page shows the states in (the bar macro's filter)."""
    out = []
    for s in rd.STATES:
        n = getattr(counts, s) if not isinstance(counts, dict) else counts[s]
        if n:
            out.append((s, f"{(100.0 * n / total) if total else 0:.2f}"))
    return out


class Row:
    """One row of a page's table (a unit of the tree, a device): its fields as attributes,
    which is how a template reads them (``u.id``) and what Jinja tries first; on a dict
    each such read fails as an attribute before it finds the key (a few µs a field, tens
    of thousands of fields on the overview). Python code reads and sets ``row["id"]``."""

    def __init__(self, fields: dict[str, Any] | None = None, **more: Any) -> None:
        self.__dict__.update(fields or (), **more)

    def __getitem__(self, key: str) -> Any:
        return self.__dict__[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.__dict__[key] = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Row) and other.__dict__ == self.__dict__

    def __repr__(self) -> str:
        return f"Row({self.__dict__!r})"


def make_env() -> Environment:
    # Autoescape for every template, whatever its name; nothing from an agent is ever |safe.
    # Every value a template prints passes finalize first: control, bidi-override and
    # invisible characters (a device's hostname, check id, evidence …) are made visible.
    # The templates ship with the code: compiled once, never checked for changes on disk.
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(default=True,
                                                                                           default_for_string=True),
                      trim_blocks=False, lstrip_blocks=False, finalize=_shown, auto_reload=False)
    env.globals["STATES"] = rd.STATES  # the order every page shows the states in
    env.filters["bar_widths"] = bar_widths
    env.filters["breakable"] = breakable  # a long name breaks at its own separators
    return env


@lru_cache(maxsize=1)
def _policy_titles() -> dict[str, dict[str, str]]:
    """Check titles by id from the shipped policies (casework first, then baseline)."""
    titles: dict[str, dict[str, str]] = {}
    try:
        from auditagent.policy import load_policy, shipped_policy_dir

        for name in ("baseline.yaml", "casework-confidential.yaml"):
            try:
                pol = load_policy(shipped_policy_dir() / name)
            except Exception:  # noqa: BLE001 - titles are a nicety
                continue
            for c in pol.checks:
                titles[c.id] = dict(c.title)
    except Exception:  # noqa: BLE001
        pass
    return titles


def check_title(check_id: str, lang: str) -> str:
    t = _policy_titles().get(check_id)
    if not t:
        return check_id
    return t.get(lang) or t.get("en") or check_id


def message_text(msg: Any, lang: str) -> str:
    """A result message from a report as text: a known code in the reader's language with
    its arguments filled in as data; an unknown code (or anything else) as plain text.
    Never a template (see :mod:`auditagent.textsafe`); the page escapes and neutralises it."""
    from auditagent.i18n import known, translate

    if isinstance(msg, dict) and isinstance(msg.get("code"), str):
        args = msg.get("args") if isinstance(msg.get("args"), dict) else {}
        if known(msg["code"]):
            return translate(msg["code"], args, lang)
        return f"{msg['code']} {json.dumps(args, ensure_ascii=False)}" if args else msg["code"]
    return str(msg)


def error_text(t: Translator, exc: ApiError) -> str:
    """An API error in the reader's language: by its code, else by the field it names,
    else the English message inside a translated frame."""
    field = exc.extra.get("field") if isinstance(exc.extra, dict) else None
    for key in ("error." + exc.code, f"invalid.{field}" if exc.code == "invalid" and field else ""):
        if key and t.has(key):
            return t(key, days=rd.MAX_EXCEPTION_DAYS) if key == "invalid.expires_at" else t(key)
    if exc.status == 404:
        return t("not_found")
    if exc.status == 403:
        return t("forbidden")
    return t("error.generic", message=exc.message)


@dataclass
class Ctx:
    """What every page needs: the request's language, the user and their session's CSRF token."""

    request: Request
    lang: str
    t: Translator
    user: Any = None
    csrf: str = ""
    set_lang_cookie: bool = False


class Web:
    def __init__(self, app: FastAPI, store: Any, settings: Any) -> None:
        self.app = app
        self.store = store
        self.settings = settings
        self.env = make_env()
        self.default_max_age = int(getattr(settings, "default_max_report_age_hours", None)
                                   or rd.DEFAULT_MAX_REPORT_AGE_HOURS)
        self.min_agent = getattr(settings, "min_agent_version", None)
        self.zone = getattr(settings, "time_zone", None) or DEFAULT_ZONE
        self.target = float(getattr(settings, "readiness_target", None) or 95.0)
        # Dates that are dates (an exception's last day) are in the organisation's time zone.
        self.tz = time_zone(self.zone)
        # Side queries of a page that need not wait for its main one (the unit page's trend).
        self.side_jobs = ThreadPoolExecutor(max_workers=4, thread_name_prefix="page-side")

    # ------------------------------------------------------------------ plumbing

    @property
    def engine(self) -> Any:
        return self.store.engine

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc)

    def ctx(self, request: Request, user: Any = None, csrf: str = "") -> Ctx:
        q = request.query_params.get("lang")
        lang = choose_language(q, request.cookies.get(LANG_COOKIE), getattr(user, "lang", None),
                               request.headers.get("accept-language"))
        return Ctx(request, lang, Translator(lang, self.zone), user, csrf, set_lang_cookie=q in LANGS)

    def render(self, ctx: Ctx, template: str, status: int = 200, **data: Any) -> HTMLResponse:
        req = ctx.request

        def lang_url(code: str) -> str:
            params = [(k, v) for k, v in req.query_params.multi_items() if k != "lang"] + [("lang", code)]
            return req.url.path + "?" + urlencode(params)

        html = self.env.get_template(template).render(
            t=ctx.t, lang=ctx.lang, user=ctx.user, csrf_token=ctx.csrf, lang_url=lang_url, lang_names=LANG_NAMES,
            pct_text=ctx.t.pct, **data)
        resp = HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
        if ctx.set_lang_cookie:
            resp.set_cookie(LANG_COOKIE, ctx.lang, max_age=365 * 86400, httponly=True, samesite="lax",
                            secure=cookies_secure(req), path="/")
        return resp

    def error_page(self, ctx: Ctx, status: int, message: str) -> HTMLResponse:
        return self.render(ctx, "error.html", status=status, status_code=status, message=message)

    def to_login(self, request: Request) -> RedirectResponse:
        target = request.url.path + (("?" + request.url.query) if request.url.query else "")
        return RedirectResponse("/login?" + urlencode({"next": safe_next(target)}), status_code=303,
                                headers=SECURITY_HEADERS)

    def session(self, request: Request) -> tuple[Any, str] | None:
        return web_auth.session_user(self, request)

    async def page(self, request: Request, fn: Any, *args: Any) -> Response:
        """Run a page handler in a thread with the signed-in user, or redirect to /login."""
        sess = await run_in_threadpool(self.session, request)
        if sess is None:
            return self.to_login(request)
        user, csrf = sess
        ctx = self.ctx(request, user, csrf)
        try:
            return await run_in_threadpool(fn, ctx, *args)
        except ApiError as exc:
            return self.error_page(ctx, exc.status, error_text(ctx.t, exc))

    def scope(self, user: Any) -> rd.Scope:
        return rd.Scope.for_user(user)

    # ------------------------------------------------------------------ view models

    def unit_row(self, u: rd.UnitSummary, outdated: int = 0, **changes: Any) -> Row:
        return Row({"id": u.id, "name": u.name, "label": u.name, "path": u.path, "depth": u.depth, "total": u.total,
                    "counts": u.counts, "pct": u.ready_pct, "outdated": outdated, "blocking": None,
                    "below_target": False}, **changes)

    def overview(self, ctx: Ctx) -> Response:
        """Every unit with its roll-up, the check blocking most of its devices and whether
        it reaches the target; in tree order, or worst first (``?sort=readiness``)."""
        scope = self.scope(ctx.user)
        now = self.now()
        lang = ctx.lang
        worst_first = ctx.request.query_params.get("sort") == "readiness"
        with self.engine.connect() as conn:
            ov = rd.overview(conn, scope, now, minimum=self.min_agent, default_max_age_hours=self.default_max_age)
        tree, versions = ov.units, ov.agent_versions
        # Depth relative to the user's scope root, so a unit manager's tree starts at 1.
        base = min((u.depth for u in tree), default=1) - 1
        rows = []
        for u in tree:
            r = self.unit_row(u, ov.outdated.get(u.id, 0))
            r["depth"] = 1 if worst_first else u.depth - base
            blocking = ov.blocking.get(u.id)
            r["blocking"] = None if blocking is None else Row(check_id=blocking[0], devices=blocking[1],
                                                              title=check_title(blocking[0], lang))
            r["below_target"] = u.ready_pct is not None and u.ready_pct < self.target
            r["label"] = u.path if worst_first else u.name
            rows.append(r)
        if worst_first:  # units with devices, least ready first; then those without
            rows.sort(key=lambda r: (r["pct"] is None, r["pct"] if r["pct"] is not None else 0, r["path"]))
        roots = [u for u in tree if u.depth - base == 1]
        counts = rd.StateCounts(**{s: sum(getattr(u.counts, s) for u in roots) for s in rd.STATES})
        total_n = sum(u.total for u in roots)
        total = {"total": total_n, "counts": counts, "pct": rd.ready_share(counts.__dict__),
                 "outdated": versions.outdated}
        return self.render(ctx, "overview.html", nav="overview", rows=rows, total=total,
                           stale_hours=self.default_max_age, worst_first=worst_first, target=self.target,
                           below_target=sum(1 for r in rows if r["below_target"]))

    def unit_page(self, ctx: Ctx, unit_id: int) -> Response:
        req = ctx.request
        q = req.query_params
        state = q.get("state") or None
        if state not in rd.STATES:
            state = None
        check = (q.get("check") or "").strip()[:200] or None
        os_ = q.get("os") or None
        sub = q.get("unit") or ""
        try:
            page = max(1, int(q.get("page") or 1))
        except ValueError:
            page = 1
        scope = self.scope(ctx.user)
        now = self.now()
        lang = ctx.lang
        # The 90-day trend does not depend on the rest of the page: on PostgreSQL it is
        # counted on a second connection while the drill-down runs. (SQLite runs one
        # transaction at a time, so there it comes after.)
        trend_job = (self.side_jobs.submit(self._trend_points, scope, unit_id, now)
                     if self.engine.dialect.name != "sqlite" else None)
        with self.engine.connect() as conn:
            detail = rd.unit_detail(conn, scope, unit_id, now, state=state, check=check, os=os_, page=page,
                                    per_page=PER_PAGE, default_max_age_hours=self.default_max_age,
                                    min_agent_version=self.min_agent)
            unit = rd.visible_unit(conn, scope, unit_id)
            devices_page = detail.devices
            sub_id = None
            sub_number = row_id(sub)
            if sub_number is not None and sub_number != unit_id:
                sub_unit = rd.visible_unit(conn, scope, sub_number)
                if sub_unit["path"].startswith(unit["path"] + "/"):
                    sub_id = sub_number
                    devices_page = rd.unit_detail(conn, scope, sub_id, now, state=state, check=check, os=os_,
                                                  page=page, per_page=PER_PAGE, min_agent_version=self.min_agent,
                                                  default_max_age_hours=self.default_max_age).devices
            subunits = [dict(r) for r in conn.execute(
                select(units.c.id, units.c.path, units.c.depth)
                .where(rd.in_subtree(units.c.path, unit["path"]), units.c.id != unit_id)
                .order_by(units.c.path)).mappings()]
            child_outdated = detail.children_outdated_agents
            crumbs = self._crumbs(conn, scope, unit["path"])
        points = trend_job.result() if trend_job is not None else self._trend_points(scope, unit_id, now)
        s = detail.summary
        chart = trend_chart(points, rd.BANDS, ctx.t, title=ctx.t("trend", days=TREND_DAYS))
        check_ids = sorted(set(_policy_titles()) | {f.check_id for f in detail.failing_checks})
        if check and check not in check_ids:
            check_ids.append(check)
        filters = {"state": state or "", "check": check or "", "os": os_ or "", "unit": str(sub_id or "")}

        def filter_url(**changes: Any) -> str:
            params = {k: v for k, v in filters.items() if v}
            params["page"] = str(page)
            for k, v in changes.items():
                if v in ("", None):
                    params.pop(k, None)
                else:
                    params[k] = str(v)
            if "page" not in changes:
                params.pop("page", None)
            if params.get("page") == "1":
                params.pop("page")
            return f"/units/{unit_id}" + ("?" + urlencode(params) if params else "") + "#devices"

        pages = max(1, math.ceil(devices_page.total / devices_page.per_page))
        base_depth = unit["depth"]
        export_query = urlencode({k: v for k, v in (("state", state), ("check", check), ("os", os_)) if v})
        export_base = f"/units/{sub_id or unit_id}/export"
        return self.render(
            ctx, "unit.html", nav="overview",
            unit={"id": unit_id, "name": unit["name"], "path": unit["path"], "crumbs": crumbs[:-1]},
            summary={"total": s.total, "counts": s.counts, "pct": s.ready_pct,
                     "outdated": detail.agent_versions.outdated},
            children=[self.unit_row(c, child_outdated.get(c.id, 0), depth=1) for c in detail.children],
            failing=[Row(check_id=f.check_id, title=check_title(f.check_id, lang), severity=f.severity,
                         devices=f.devices_failing, excepted=f.devices_excepted, stale=f.devices_stale,
                         since=f.failing_since)
                     for f in detail.failing_checks if f.devices_failing or f.devices_excepted or f.devices_stale],
            failing_longest=[Row(device_id=r.device_id, hostname=r.hostname, title=check_title(r.check_id, lang),
                                 failing_since=r.failing_since, due_until=r.due_until)
                             for r in detail.failing_longest],
            stale=[Row(id=d.id, hostname=d.hostname, last_report=d.last_seen,
                       hours=((now - d.last_seen).total_seconds() / 3600) if d.last_seen else None)
                   for d in detail.stale_longest],
            devices=[Row(id=d.id, hostname=d.hostname, state=d.state, os=d.os or d.platform,
                         unit_name=d.unit_path.split("/")[-1], last_report=d.last_seen,
                         failing=[check_title(c, lang) for c in d.failing_checks],
                         excepted=[check_title(c, lang) for c in d.excepted_checks],
                         failing_since=d.failing_since, due_until=d.due_until)
                     for d in devices_page.items],
            device_total=devices_page.total, page=devices_page.page, pages=pages, filters=filters,
            filter_url=filter_url, trend=chart, trend_days=TREND_DAYS,
            check_options=[{"id": c, "title": check_title(c, lang)} for c in check_ids],
            os_options=PLATFORMS,
            subunit_options=[{"id": u["id"], "label": "\u00a0\u00a0" * (u["depth"] - base_depth - 1)
                              + u["path"].split("/")[-1]} for u in subunits],
            can_export=bool(getattr(ctx.user, "can_export", False)),
            csv_url=export_base + ".csv" + ("?" + export_query if export_query else ""),
            xlsx_url=export_base + ".xlsx" + ("?" + export_query if export_query else ""))

    def unit_export(self, ctx: Ctx, unit_id: int, fmt: str) -> Response:
        """The unit page's devices, with the filters on screen, as a file for the signed-in
        person: their language, their Excel's CSV dialect, or XLSX."""
        if not getattr(ctx.user, "can_export", False):
            return self.error_page(ctx, 403, ctx.t("export.forbidden"))
        q = ctx.request.query_params
        state = q.get("state") or None
        if state not in rd.STATES:
            state = None
        filters = rd.ExportFilters(state=state, check=(q.get("check") or "").strip()[:200] or None,
                                   os=q.get("os") or None)
        scope = self.scope(ctx.user)
        now = self.now()
        kw = dict(filters=filters, min_agent_version=self.min_agent, default_max_age_hours=self.default_max_age)
        with self.engine.connect() as conn:
            path = rd.visible_unit(conn, scope, unit_id)["path"]
            # More devices than an Excel sheet holds: refused before the first byte (with
            # the way to all of them), not a workbook cut off where Excel stops reading.
            if fmt == "xlsx" and not rd.export_fits(conn, scope, unit_id, now, rd.xlsx_max_devices(), **kw):
                return self.error_page(ctx, 422, ctx.t("export.too_many_rows", limit=f"{rd.xlsx_max_devices():,}"))
            labels = rd.Labels(ctx.t, lambda c: check_title(c, ctx.lang))
            headers = dict(SECURITY_HEADERS)
            headers["Content-Disposition"] = f'attachment; filename="{rd.export_filename(path, now, fmt)}"'

        def body() -> Any:  # streamed on its own connection: memory stays flat for any fleet
            with self.engine.connect() as conn:
                yield from rd.export_for(conn, scope, unit_id, now, labels, ctx.lang, fmt, sheet=path.split("/")[-1],
                                         **kw)

        return StreamingResponse(body(), headers=headers, media_type=rd.XLSX_TYPE if fmt == "xlsx"
                                 else "text/csv; charset=utf-8")

    def _trend_points(self, scope: rd.Scope, unit_id: int, now: dt.datetime,
                      days: int = TREND_DAYS) -> list[rd.TrendPoint]:
        with self.engine.connect() as conn:
            points = rd.trend(conn, scope, unit_id, now, days=days, default_max_age_hours=self.default_max_age,
                              zone=self.zone)
            conn.commit()  # keeps the closed days the trend counted (its cache)
        return points

    def _crumbs(self, conn: Any, scope: rd.Scope, path: str) -> list[dict[str, Any]]:
        parts = path.split("/")
        paths = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        rows = {r.path: r for r in conn.execute(select(units.c.id, units.c.name, units.c.path)
                                                .where(units.c.path.in_(paths)))}
        return [{"id": rows[p].id, "name": rows[p].name} for p in paths if p in rows and scope.contains(p)]

    def device_page(self, ctx: Ctx, device_id: str) -> Response:
        scope = self.scope(ctx.user)
        now = self.now()
        lang = ctx.lang
        with self.engine.connect() as conn:
            d = rd.device_detail(conn, scope, device_id, now, per_page=100, min_agent_version=self.min_agent,
                                 default_max_age_hours=self.default_max_age)
            keyid, pem = rd.device_public_key(conn, scope, device_id)
            crumbs = self._crumbs(conn, scope, d.device.unit_path)
        exc_by_id = {e.id: e for e in d.exceptions}
        can_grant = getattr(ctx.user, "role", None) == "security_officer"
        results = []
        for r in d.results:
            e = exc_by_id.get(r.excepted_by) if r.excepted_by else None
            results.append({
                "check_id": r.check_id, "title": check_title(r.check_id, lang), "severity": r.severity,
                "status": r.status, "messages": [message_text(m, lang) for m in r.messages],
                "evidence": json.dumps(r.evidence, indent=1, ensure_ascii=False, sort_keys=True)
                if r.evidence else "",
                "exception": None if e is None else {"valid_through": e.valid_through,
                                                     "granted_by": e.granted_by or "–",
                                                     "justification": e.justification},
                "can_grant": can_grant and e is None and r.severity == "required"
                and r.status in ("fail", "unknown"),
                "failing_since": r.failing_since, "due_until": r.due_until})
        order = {"fail": 0, "unknown": 1, "pass": 2, "not_applicable": 3}
        results.sort(key=lambda r: (r["exception"] is not None, order.get(r["status"], 9), r["severity"] != "required"))
        dev = d.device
        policy = f"{d.policy.get('id')} {d.policy.get('version')}" if d.policy else None
        granted = next((e for e in d.exceptions if str(e.id) == ctx.request.query_params.get("granted")), None)
        notice = None if granted is None else ctx.t("exceptions.granted.named", check=check_title(granted.check_id, lang),
                                                    target=dev.hostname, until=ctx.t.day(granted.valid_through))
        latest_verdict = d.timeline.items[0].verdict if d.timeline.items else None
        return self.render(
            ctx, "device.html", nav="overview",
            device={"id": dev.id, "hostname": dev.hostname, "state": dev.state, "os": dev.os,
                    "platform": dev.platform, "serial": d.serial, "agent_version": dev.agent_version,
                    "enrolled_at": d.enrolled_at, "last_report": dev.last_seen, "policy": policy,
                    "agent_verdict": latest_verdict, "crumbs": crumbs, "keyid": keyid, "public_key_pem": pem,
                    "failing_since": dev.failing_since, "due_until": dev.due_until},
            results=results, notice=notice, now=now,
            reports=[{"report_id": i.report_id, "sequence": i.sequence, "generated_at": i.generated_at,
                      "received_at": i.received_at, "verdict": i.verdict,
                      "policy": f"{i.policy_id} {i.policy_version}"} for i in d.timeline.items])

    def exceptions_page(self, ctx: Ctx, *, status: int = 200, notice: str | None = None, error: str | None = None,
                        form: dict[str, str] | None = None) -> Response:
        q = ctx.request.query_params
        show_all = q.get("all") == "1"
        scope = self.scope(ctx.user)
        now = self.now()
        lang = ctx.lang
        form_device = None  # the device the form is for, named by its host name
        with self.engine.connect() as conn:
            items = rd.list_exceptions(conn, scope, now, include_expired=show_all)
            wanted = (form or {}).get("device") or (q.get("device") or "")
            if wanted:
                try:
                    dev = rd.visible_device(conn, scope, wanted[:64])
                    form_device = {"id": dev["id"], "hostname": dev["hostname"]}
                except rd.NotFound:
                    pass
            unit_rows = [dict(r) for r in conn.execute(
                select(units.c.id, units.c.path).where(scope.clause(units.c.path))
                .order_by(units.c.path)).mappings()]
        form = form or {"check_id": (q.get("check") or "")[:200], "device": (q.get("device") or "")[:255],
                        "unit_id": (q.get("unit") or "")[:20], "justification": "",
                        "expires": (now.astimezone(self.tz) + dt.timedelta(days=30)).date().isoformat()}
        rows = [{"id": e.id, "check_id": e.check_id, "check_title": check_title(e.check_id, lang),
                 "device_id": e.device_id, "device_label": e.device_hostname or e.device_id,
                 "unit_id": e.unit_id, "unit_label": e.unit_path or "(…)", "valid_through": e.valid_through,
                 "justification": e.justification, "granted_by": e.granted_by or "–", "granted_at": e.granted_at,
                 "revoke_reason": e.revoke_reason, "state": e.status if e.status != "pending" else "active",
                 "inherited": e.inherited} for e in items]
        check_ids = sorted(set(_policy_titles()) | ({form["check_id"]} if form.get("check_id") else set()))
        current = [r for r in rows if r["state"] == "active"]
        ended = [r for r in rows if r["state"] != "active"]  # revoked or expired: never under "current"
        return self.render(
            ctx, "exceptions.html", status=status, nav="exceptions", rows=current, ended=ended,
            show_inactive=show_all, form_device=form_device,
            can_grant=getattr(ctx.user, "role", None) == "security_officer", notice=notice, error=error, form=form,
            check_options=[{"id": c, "title": check_title(c, lang)} for c in check_ids],
            unit_options=[{"id": u["id"], "label": u["path"]} for u in unit_rows],
            today=now.astimezone(self.tz).date().isoformat())

    def granted_notice(self, ctx: Ctx, exception_id: str | None) -> str:
        """'Exception for <check> on <target> granted, valid through <date>', or the plain notice."""
        number = row_id(exception_id or "")
        if number is None:
            return ctx.t("exceptions.granted")
        try:
            with self.engine.connect() as conn:
                e = rd.get_exception(conn, self.scope(ctx.user), number, self.now())
        except rd.NotFound:
            return ctx.t("exceptions.granted")
        return ctx.t("exceptions.granted.named", check=check_title(e.check_id, ctx.lang),
                     target=e.device_hostname or e.unit_path or "–", until=ctx.t.day(e.valid_through))

    def grant(self, ctx: Ctx, form: dict[str, str]) -> Response:
        t = ctx.t
        now = self.now()
        check_id = form.get("check_id", "").strip()
        device = form.get("device", "").strip()
        unit_id = form.get("unit_id", "").strip()
        try:
            try:
                day = dt.date.fromisoformat(form.get("expires", "").strip())
            except ValueError:
                raise rd.Invalid("expires_at", "a date (YYYY-MM-DD)") from None
            with self.engine.begin() as conn:
                device_id = None
                if device:
                    device_id = self._resolve_device(conn, self.scope(ctx.user), device)
                info = rd.grant_exception(conn, ctx.user, check_id=check_id, device_id=device_id,
                                          unit_id=None if device else row_id(unit_id),
                                          expires_on=day, tz=self.tz, justification=form.get("justification", ""),
                                          now=now)
        except ApiError as exc:
            return self.exceptions_page(ctx, status=exc.status if exc.status in (403, 404, 409, 422) else 400,
                                        error=error_text(t, exc), form=form)
        # The grant confirms itself: where the officer lands, a notice names what was granted.
        target = (f"/devices/{info.device_id}?granted={info.id}" if info.device_id
                  else f"/exceptions?granted={info.id}")
        return RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)

    def _resolve_device(self, conn: Any, scope: rd.Scope, text_: str) -> str:
        """A device id, or a host name that names exactly one device in scope."""
        try:
            return rd.visible_device(conn, scope, text_)["id"]
        except rd.NotFound:
            pass
        ids = [r.id for r in conn.execute(select(devices.c.id, units.c.path)
                                          .join(units, units.c.id == devices.c.unit_id)
                                          .where(devices.c.hostname == text_, devices.c.revoked_at.is_(None),
                                                 scope.clause(units.c.path)).limit(2))]
        if not ids:
            raise ApiError(422, "device_not_found", "device: no device with that id or host name", field="device")
        if len(ids) > 1:
            raise ApiError(422, "device_ambiguous", "device: several devices have that host name; use the device id",
                           field="device")
        return ids[0]

    # ------------------------------------------------------------------ committee report

    def report_page(self, ctx: Ctx, unit_id: int) -> Response:
        """A unit's readiness for its committee, on paper: now and over the period, its
        sub-units, the checks blocking most devices, the exceptions in force, the devices
        silent longest, and how an auditor verifies the signed reports behind it."""
        t, lang = ctx.t, ctx.lang
        try:
            days = int(ctx.request.query_params.get("days") or REPORT_DAYS[1])
        except ValueError:
            days = REPORT_DAYS[1]
        if days not in REPORT_DAYS:
            days = REPORT_DAYS[1]
        scope = self.scope(ctx.user)
        now = self.now()
        with self.engine.connect() as conn:
            detail = rd.unit_detail(conn, scope, unit_id, now, per_page=1, stale_limit=10, failing_limit=10,
                                    default_max_age_hours=self.default_max_age, min_agent_version=self.min_agent)
            unit = rd.visible_unit(conn, scope, unit_id)
            # In force on the unit: its own, its sub-units' and its devices', and those above it.
            in_force = rd.list_exceptions(conn, scope, now, unit_id=unit_id)
        points = self._trend_points(scope, unit_id, now, days)
        s = detail.summary
        trend_text = trend_sentence(points, t)
        # One row a week, ending today: what a committee reads, not 90 numbers.
        weekly = [p for i, p in enumerate(reversed(points)) if i % 7 == 0 and p.devices][::-1]
        chart = trend_chart(points, rd.BANDS, t, title=t("report.trend"))
        blocking = sorted((f for f in detail.failing_checks if f.severity == "required" and f.devices_failing),
                          key=lambda f: (-f.devices_failing, f.check_id))[:10]
        return self.render(
            ctx, "report.html", nav="overview", days=days, day_options=REPORT_DAYS,
            unit={"id": unit_id, "name": unit["name"], "path": unit["path"]},
            period={"start": points[0].day if points else local_today(now, self.zone),
                    "end": points[-1].day if points else local_today(now, self.zone)},
            now=now, summary={"total": s.total, "counts": s.counts, "pct": s.ready_pct},
            trend=chart, trend_text=trend_text,
            weekly=[{"day": p.day, "pct": p.ready_pct, "ready": p.ready, "devices": p.devices} for p in weekly],
            children=[self.unit_row(c) for c in detail.children],
            blocking=[{"check_id": f.check_id, "title": check_title(f.check_id, lang), "devices": f.devices_failing,
                       "excepted": f.devices_excepted} for f in blocking],
            exceptions=[{"check": check_title(e.check_id, lang), "target": e.device_hostname or e.unit_path or "–",
                         "justification": e.justification, "expires_at": e.expires_at,
                         "granted_by": e.granted_by or "–"} for e in in_force],
            silent=[{"hostname": d.hostname, "unit": d.unit_path, "last_report": d.last_seen,
                     "hours": ((now - d.last_seen).total_seconds() / 3600) if d.last_seen else None}
                    for d in detail.stale_longest])

    # ------------------------------------------------------------------ audit log

    def _audit_filter(self, ctx: Ctx) -> tuple[audit_trail.AuditFilter, dict[str, str], bool]:
        """The audit page's filters from the query: (filter, the form's values, all valid)."""
        q = ctx.request.query_params
        values = {k: (q.get(k) or "").strip()[:40] for k in ("unit", "from", "to", "action")}
        ok = True
        unit_path = None
        if values["unit"]:
            number = row_id(values["unit"])
            if number is None:
                raise rd.NotFound("unit", values["unit"])
            with self.engine.connect() as conn:
                unit_path = rd.visible_unit(conn, self.scope(ctx.user), number)["path"]
        bounds: dict[str, dt.datetime | None] = {"from": None, "to": None}
        for key in ("from", "to"):
            if values[key]:
                try:
                    day = dt.date.fromisoformat(values[key])
                except ValueError:
                    ok, values[key] = False, ""
                    continue
                # Local days: 'from 1 March' starts at midnight in the organisation's zone.
                bounds[key] = local_midnight_after(day - dt.timedelta(days=1) if key == "from" else day, self.zone)
        action = values["action"] if values["action"] in audit_trail.ACTIONS else None
        values["action"] = action or ""
        return audit_trail.AuditFilter(unit_path, bounds["from"], bounds["to"], action), values, ok

    def _audit_refused(self, ctx: Ctx) -> Response | None:
        if getattr(ctx.user, "role", None) in ("security_officer", "admin"):
            return None
        return self.error_page(ctx, 403, ctx.t("audit.only_officers"))

    def audit_page(self, ctx: Ctx) -> Response:
        if (refused := self._audit_refused(ctx)) is not None:
            return refused
        t = ctx.t
        flt, values, ok = self._audit_filter(ctx)
        scope = self.scope(ctx.user)
        with self.engine.connect() as conn:
            entries = audit_trail.audit_trail(conn, scope, flt, limit=audit_trail.PAGE_LIMIT)
            unit_rows = [dict(r) for r in conn.execute(
                select(units.c.id, units.c.path).where(scope.clause(units.c.path))
                .order_by(units.c.path)).mappings()]
        rows = [{"at": e.at, "user": e.user, "action": audit_trail.action_label(t, e.action), "action_code": e.action,
                 "unit": e.unit_path, "object": f"{e.object_type} {e.object_id or ''}",
                 "detail": audit_trail.detail_pairs(e)} for e in entries]
        export = "?" + urlencode({k: v for k, v in values.items() if v}) if any(values.values()) else ""
        return self.render(
            ctx, "audit.html", status=200 if ok else 422, nav="audit", rows=rows, filters=values,
            error=None if ok else t("invalid.since"), full=len(rows) >= audit_trail.PAGE_LIMIT,
            limit=audit_trail.PAGE_LIMIT, unit_options=[{"id": u["id"], "label": u["path"]} for u in unit_rows],
            action_options=[{"id": a, "label": t("action." + a)} for a in audit_trail.ACTIONS],
            csv_url="/audit/export.csv" + export, xlsx_url="/audit/export.xlsx" + export)

    def audit_export(self, ctx: Ctx, fmt: str) -> Response:
        """The audit page's entries, with its filters, as the reader's CSV or XLSX."""
        if (refused := self._audit_refused(ctx)) is not None:
            return refused
        flt, _, ok = self._audit_filter(ctx)
        if not ok:
            return self.error_page(ctx, 422, ctx.t("invalid.since"))
        with self.engine.connect() as conn:
            body = audit_trail.audit_export(conn, self.scope(ctx.user), flt, ctx.t, fmt)
        name = f"audit-log-{local_today(self.now(), self.zone).isoformat()}.{fmt}"
        return Response(body, media_type=rd.XLSX_TYPE if fmt == "xlsx" else "text/csv; charset=utf-8",
                        headers={**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{name}"'})

    def revoke(self, ctx: Ctx, exception_id: int, form: dict[str, str]) -> Response:
        try:
            with self.engine.begin() as conn:
                rd.revoke_exception(conn, ctx.user, exception_id, form.get("reason", ""), self.now())
        except ApiError as exc:
            return self.exceptions_page(ctx, status=exc.status if exc.status in (403, 404, 409, 422) else 400,
                                        error=error_text(ctx.t, exc))
        return RedirectResponse("/exceptions?revoked=1", status_code=303, headers=SECURITY_HEADERS)


def _check_csrf(expected: str, given: str | None) -> bool:
    return bool(expected) and isinstance(given, str) and hmac.compare_digest(expected.encode(), given.encode())


def mount(app: FastAPI, store: Any, settings: Any) -> Web:
    """Add the dashboard's routes to ``app``."""
    web = Web(app, store, settings)
    router = APIRouter(include_in_schema=False)

    async def form_data(request: Request) -> dict[str, str]:
        form = await request.form()
        return {k: (v if isinstance(v, str) else "") for k, v in form.items()}

    @router.get("/static/dashboard.css")
    def css() -> Response:
        return FileResponse(STATIC / "dashboard.css", media_type="text/css",
                            headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"})

    @router.get("/login")
    async def login_form(request: Request) -> Response:
        sess = await run_in_threadpool(web.session, request)
        nxt = safe_next(request.query_params.get("next"))
        if sess is not None:
            return RedirectResponse(nxt, status_code=303, headers=SECURITY_HEADERS)
        return web_auth.login_page(web, web.ctx(request), nxt)

    @router.post("/login")
    async def login_post(request: Request) -> Response:
        form = await form_data(request)
        return await run_in_threadpool(web_auth.login_post, web, request, form)

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        form = await form_data(request)
        return await run_in_threadpool(web_auth.logout_post, web, request, form)

    @router.get("/")
    async def overview(request: Request) -> Response:
        return await web.page(request, web.overview)

    async def not_found(request: Request) -> Response:
        return await web.page(request, lambda ctx: web.error_page(ctx, 404, ctx.t("not_found")))

    async def numbered(request: Request, raw_id: str, handler: Any, *args: Any) -> Response:
        """The page of a unit's numeric id in the path; anything else — letters, a sign,
        non-ASCII digits, a number no row can have — is a 404."""
        number = row_id(raw_id)
        if number is None:
            return await not_found(request)
        return await web.page(request, handler, number, *args)

    @router.get("/units/{unit_id}")
    async def unit_page(request: Request, unit_id: str) -> Response:
        return await numbered(request, unit_id, web.unit_page)

    @router.get("/units/{unit_id}/export.{fmt}")
    async def unit_export(request: Request, unit_id: str, fmt: str) -> Response:
        if fmt not in ("csv", "xlsx"):
            return await not_found(request)
        return await numbered(request, unit_id, web.unit_export, fmt)

    @router.get("/devices/{device_id}")
    async def device_page(request: Request, device_id: str) -> Response:
        return await web.page(request, web.device_page, device_id[:64])

    @router.get("/exceptions")
    async def exceptions_page(request: Request) -> Response:
        def show(ctx: Ctx) -> Response:
            q = ctx.request.query_params
            notice = web.granted_notice(ctx, q.get("granted")) if q.get("granted") else (
                ctx.t("exceptions.revoked") if q.get("revoked") else None)
            return web.exceptions_page(ctx, notice=notice)

        return await web.page(request, show)

    @router.get("/units/{unit_id}/report")
    async def report_page(request: Request, unit_id: str) -> Response:
        return await numbered(request, unit_id, web.report_page)

    @router.get("/audit")
    async def audit_page(request: Request) -> Response:
        return await web.page(request, web.audit_page)

    @router.get("/audit/export.{fmt}")
    async def audit_export(request: Request, fmt: str) -> Response:
        if fmt not in ("csv", "xlsx"):
            return await not_found(request)
        return await web.page(request, web.audit_export, fmt)

    async def posted(request: Request, handler: Any, *args: Any) -> Response:
        form = await form_data(request)

        def run(ctx: Ctx) -> Response:
            if not _check_csrf(ctx.csrf, form.get("csrf_token")):
                return web.error_page(ctx, 403, ctx.t("csrf.failed"))
            return handler(ctx, *args, form)

        return await web.page(request, run)

    web_subscriptions.add_routes(router, web, posted)

    @router.post("/exceptions")
    async def grant(request: Request) -> Response:
        return await posted(request, web.grant)

    @router.post("/exceptions/{exception_id}/revoke")
    async def revoke(request: Request, exception_id: str) -> Response:
        number = row_id(exception_id)
        if number is None:
            return await not_found(request)
        return await posted(request, web.revoke, number)

    app.include_router(router)
    app.state.web = web
    return web


MAX_ROW_ID = 2**31 - 1  # the largest id an INTEGER key holds (PostgreSQL)


def row_id(raw: str) -> int | None:
    """A path segment as a row id: plain ASCII digits within an INTEGER key's range, else None."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 10:
        return None
    number = int(raw)
    return number if number <= MAX_ROW_ID else None


def new_token() -> str:
    return secrets.token_urlsafe(32)
