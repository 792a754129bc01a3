"""``auditagent-collector``: run and administer the collector.

    auditagent-collector serve [--db URL] [--host H] [--port P] [--tls-cert F --tls-key F] [--workers N]
    auditagent-collector db upgrade
    auditagent-collector unit add "Socialförvaltningen/IFO/Ekonomiskt bistånd"
    auditagent-collector unit list
    auditagent-collector token create --unit PATH [--expires-in 7d] [--uses 1]   (token on the LAST line)
    auditagent-collector token create --device ID [--expires-in 1d]    (re-enrol one device, audited)
    auditagent-collector token list | token revoke ID
    auditagent-collector device list [--unit PATH] [--json] | device revoke ID
    auditagent-collector policy set --unit PATH FILE.signed.json [--public-key ORG.pub.pem]
    auditagent-collector unit set-max-age PATH HOURS|inherit
    auditagent-collector user add USERNAME --role admin|security_officer|unit_manager [--unit PATH] [--lang sv|da|en]
                                  [--password-file F | --password-stdin]   (else one is generated and printed)
    auditagent-collector user list | user disable USERNAME
    auditagent-collector api-token create NAME --role ROLE [--unit PATH] [--expires-in 90d]   (token on the LAST line)
    auditagent-collector api-token list | api-token revoke ID

The database URL comes from --db, else $AUDITAGENT_COLLECTOR_DB, else
sqlite:///./auditagent-collector.db; every command creates or migrates it first, so
``db upgrade`` is only needed to migrate without doing anything else. Exit codes: 0 ok,
1 refused (a signed policy that does not verify, nothing to revoke), 2 usage or error
(a wrong argument, an unknown unit, a database that cannot be used) — always one line
saying what was wrong, never a traceback (``AUDITAGENT_DEBUG=1`` shows one).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from server.cli_parsers import action, command_group
from server.db import DB_ENV, DEFAULT_DB_URL, make_engine, resolve_db_url
from server.local_time import DEFAULT_ZONE
from server.store import ApiError, Limits, Store, parse_duration

# How long uvicorn's supervisor (serve --workers N) waits for a worker's health-check
# answer. A new worker answers only once its interpreter has started and unpickled its
# settings: at load 20+ on two cores that took longer than uvicorn's default 5 s, and the
# supervisor killed workers still starting ("collector did not become healthy").
WORKER_HEALTHCHECK_SECONDS = 30


def _engine(args: argparse.Namespace):
    """The database engine, created and migrated to the newest schema first: a command on a
    fresh database works instead of failing on missing tables."""
    from server import migrate
    from server.db_errors import check_sqlite_folder

    url = resolve_db_url(args.db)
    check_sqlite_folder(url)
    engine = make_engine(url, pool_size=2, max_overflow=2)
    migrate.upgrade(engine)
    return engine


def _store(args: argparse.Namespace) -> Store:
    return Store(_engine(args))


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dt.datetime):
        return value.replace(microsecond=0).isoformat()
    from auditagent.textsafe import neutralise

    return neutralise(value)  # device-supplied hostnames etc.: no terminal escapes or bidi tricks


def _table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    if not rows:
        print("(none)")
        return
    cells = [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip())
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def refuse_bad_serve_arguments(args: argparse.Namespace) -> None:
    """Raise ValueError for a ``serve`` command line that cannot work, judged from the
    arguments alone (nothing read, imported, migrated or bound yet)."""
    if args.worker_healthcheck_timeout < 1:
        raise ValueError("--worker-healthcheck-timeout must be at least 1 (seconds)")
    if (args.tls_cert is None) != (args.tls_key is None):
        raise ValueError("--tls-cert and --tls-key go together: give both, or neither for plain http")
    if args.insecure_cookies and (args.tls_cert or not _is_loopback(args.host)):
        raise ValueError("--insecure-cookies is only for plain http on a loopback address "
                         "(127.0.0.1, ::1): session cookies must never travel unencrypted over a network")
    if args.workers > 1 and (args.metrics_listen or args.metrics_token_file):
        # Each worker would count only its own requests; one scrape would see one worker.
        raise ValueError("--metrics-listen/--metrics-token-file need --workers 1 (run one collector process "
                         "per core behind nginx instead, each with its own metrics)")


def cmd_serve(args: argparse.Namespace) -> int:
    refuse_bad_serve_arguments(args)  # a wrong command line is refused before any work
    import uvicorn

    from server.ca_cli import certificate_lifetime

    from server import migrate
    from server.app import Settings, create_app
    from server.logs import configure_logging

    configure_logging(args.log_level)
    from server.http_server import freeze_start_up_heap, uvicorn_options

    # Next, so that a uvicorn the lingering close does not fit stops serve before anything is done.
    options = uvicorn_options(host=args.host, port=args.port, ssl_certfile=args.tls_cert, ssl_keyfile=args.tls_key,
                              log_level=args.log_level, server_header=False, timeout_graceful_shutdown=5,
                              timeout_worker_healthcheck=args.worker_healthcheck_timeout)
    url = resolve_db_url(args.db)
    from server.ports import port_unavailable

    port_problem = port_unavailable(args.host, args.port)
    if port_problem:
        raise ValueError(f"cannot listen on {args.host}:{args.port}: {port_problem}; pass another --port")
    from server.db_errors import check_sqlite_folder

    check_sqlite_folder(url)
    engine = make_engine(url, pool_size=1, max_overflow=0)
    migrate.upgrade(engine)
    engine.dispose()
    from server.local_time import time_zone

    try:
        time_zone(args.timezone)
    except ValueError as exc:
        raise SystemExit(f"auditagent-collector: --timezone: {exc}") from None
    limits = Limits(max_body_bytes=args.max_body_bytes, max_future_skew=parse_duration(args.max_future_skew))
    from server import metrics, oidc
    from server.notify import config as notify_config

    settings = Settings(db_url=url, limits=limits, pool_size=args.pool_size, max_overflow=args.pool_overflow,
                        insecure_cookies=args.insecure_cookies,
                        default_max_report_age_hours=args.max_report_age_hours,
                        min_agent_version=args.min_agent_version,
                        readiness_target=args.readiness_target, time_zone=args.timezone,
                        readiness_ca=args.readiness_ca,
                        certificate_lifetime=certificate_lifetime(args.certificate_lifetime),
                        metrics_token_sha256=metrics.read_token_file(args.metrics_token_file),
                        oidc=oidc.load_config(args.oidc_config) if args.oidc_config else None,
                        notify=notify_config.load_config(args.notify_config) if args.notify_config else None)
    if args.notify_config:
        # One notification worker per collector host, whatever the number of HTTP workers
        # (the outbox in the database keeps several hosts from sending twice).
        from server.notify.worker import Worker  # make_engine: imported at the top (a local import here
        # would make the name local to cmd_serve and break its first use above)

        Worker(make_engine(url, pool_size=2, max_overflow=0), settings.notify,
               default_max_age_hours=args.max_report_age_hours).start()
    if args.sweep_every > 0:
        # The stored judgement's sweep, once per collector host (server/readiness/judged.py).
        from server.readiness.judged import sweeper

        sweeper(make_engine(url, pool_size=1, max_overflow=0), default_max_age_hours=args.max_report_age_hours,
                every=args.sweep_every).start()
    if args.workers > 1:
        # uvicorn's supervisor: N processes on one listening socket, each built from the
        # settings handed over in the environment (server/asgi.py); a dead worker is replaced.
        from server.asgi import SETTINGS_ENV, settings_to_env

        os.environ[SETTINGS_ENV] = settings_to_env(settings, oidc_config=args.oidc_config)
        os.environ["AUDITAGENT_COLLECTOR_LOG_LEVEL"] = args.log_level
        uvicorn.run("server.asgi:app_from_environment", factory=True, workers=args.workers, **options)
        return 0
    app = create_app(settings)
    if args.metrics_listen:
        app.state.metrics.serve_separately(*metrics.parse_listen(args.metrics_listen))
    freeze_start_up_heap()
    uvicorn.run(app, workers=1, **options)
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from server.readiness.judged import sweep

    engine = _engine(args)
    try:
        n = sweep(engine, default_max_age_hours=args.max_report_age_hours)
    finally:
        engine.dispose()
    print(f"judged again: {n} devices")
    return 0


def _is_loopback(host: str) -> bool:
    from server.oidc import is_loopback_host

    return is_loopback_host(host)


def cmd_unit_set_max_age(args: argparse.Namespace) -> int:
    hours = None if args.hours == "inherit" else args.hours
    unit = _store(args).set_unit_max_age(args.path, hours)
    print(f"{unit['path']}: max report age {hours if hours is not None else 'inherited'}"
          + (" hours" if hours is not None else ""))
    return 0


def cmd_user_add(args: argparse.Namespace) -> int:
    from server import auth

    generated = False
    if args.password_file:
        password = Path(args.password_file).read_text(encoding="utf-8").rstrip("\r\n")
    elif args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password, generated = auth.generate_password(), True
    store = _store(args)
    with store.engine.begin() as conn:
        user = auth.create_user(conn, username=args.username, role=args.role, password=password,
                                unit_path=args.unit, lang=args.lang)
    print(f"# user {user.username}: {user.role}, "
          f"{'unit ' + user.scope_path if user.scope_path else 'all units'}", file=sys.stderr)
    if generated:
        print("# generated password (shown once):", file=sys.stderr)
        print(password)
    return 0


def cmd_user_list(args: argparse.Namespace) -> int:
    from server import auth

    with _store(args).engine.connect() as conn:
        rows = [vars(u) if not hasattr(u, "__dataclass_fields__") else {k: getattr(u, k) for k in u.__dataclass_fields__}
                for u in auth.list_users(conn)]
    for r in rows:
        r["state"] = "disabled" if r["disabled_at"] else ("locked" if r["locked_until"] and r["locked_until"] >
                                                          dt.datetime.now(dt.timezone.utc) else "active")
    _table(rows, ["username", "role", "unit", "lang", "state", "created_at"])
    return 0


def cmd_user_disable(args: argparse.Namespace) -> int:
    from server import auth

    with _store(args).engine.begin() as conn:
        done = auth.disable_user(conn, args.username)
    if done:
        print(f"user {args.username} disabled; their sessions are ended")
        return 0
    print(f"user {args.username}: not found or already disabled", file=sys.stderr)
    return 1


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from server import migrate

    engine = _engine(args)
    print(f"database at revision {migrate.current_revision(engine)}")
    return 0


def cmd_unit_add(args: argparse.Namespace) -> int:
    unit = _store(args).add_unit(args.path)
    print(unit["path"])
    return 0


def cmd_unit_list(args: argparse.Namespace) -> int:
    rows = _store(args).list_units()
    if args.json:
        print(json.dumps(rows, default=_json_default, ensure_ascii=False, indent=1))
    else:
        _table(rows, ["path", "devices", "created_at"])
    return 0


def cmd_token_create(args: argparse.Namespace) -> int:
    token, row = _store(args).create_token(args.unit, expires_in=parse_duration(args.expires_in), uses=args.uses,
                                           note=args.note, device_id=args.device)
    what = f"re-enrol token for device {args.device}" if args.device else "enrolment token"
    print(f"# {what} for unit {row['unit']}: {row['max_uses']} use(s), expires "
          f"{row['expires_at'].replace(microsecond=0).isoformat()}; shown once, stored only as a hash",
          file=sys.stderr)
    print(token)
    return 0


def cmd_token_list(args: argparse.Namespace) -> int:
    _table(_store(args).list_tokens(), ["id", "unit", "uses", "max_uses", "expires_at", "revoked_at", "note"])
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    if _store(args).revoke_token(args.id):
        print(f"token {args.id} revoked")
        return 0
    print(f"token {args.id}: not found or already revoked", file=sys.stderr)
    return 1


def cmd_api_token_create(args: argparse.Namespace) -> int:
    from server import api_tokens

    with _store(args).engine.begin() as conn:
        new = api_tokens.create_api_token(conn, name=args.name, role=args.role, unit_path=args.unit,
                                          expires_in=parse_duration(args.expires_in), note=args.note)
    i = new.info
    print(f"# API token {i.id} {i.name}: {i.role}, {'unit ' + i.unit if i.unit else 'all units'}, expires "
          f"{_fmt(i.expires_at)}; shown once, stored only as a hash. Send it as 'Authorization: Bearer <token>'.",
          file=sys.stderr)
    print(new.token)
    return 0


def cmd_api_token_list(args: argparse.Namespace) -> int:
    from server import api_tokens

    with _store(args).engine.connect() as conn:
        rows = [vars(t) for t in api_tokens.list_api_tokens(conn)]
    _table(rows, ["id", "name", "prefix", "role", "unit", "state", "expires_at", "last_used_at", "created_by"])
    return 0


def cmd_api_token_revoke(args: argparse.Namespace) -> int:
    from server import api_tokens

    with _store(args).engine.begin() as conn:
        info = api_tokens.revoke_api_token(conn, args.id)
    if info is None:
        print(f"API token {args.id}: not found or already revoked", file=sys.stderr)
        return 1
    print(f"API token {info.id} ({info.name}) revoked; it is refused from now on")
    return 0


def cmd_device_list(args: argparse.Namespace) -> int:
    rows = _store(args).list_devices(args.unit, include_revoked=not args.active)
    if args.json:
        print(json.dumps(rows, default=_json_default, ensure_ascii=False, indent=1))
    else:
        for r in rows:
            r["keyid"] = (r.pop("current_keyid") or "")[:16]
            r["state"] = "revoked" if r["revoked_at"] else "active"
        _table(rows, ["id", "unit", "hostname", "platform", "state", "keyid", "last_sequence", "verdict",
                      "last_report_at"])
    return 0


def cmd_device_revoke(args: argparse.Namespace) -> int:
    if _store(args).revoke_device(args.id, args.reason):
        print(f"device {args.id} revoked; its reports are refused from now on")
        return 0
    print(f"device {args.id}: already revoked", file=sys.stderr)
    return 1


def cmd_policy_set(args: argparse.Namespace) -> int:
    from auditagent import report as wire

    try:
        envelope = json.loads(Path(args.file).read_bytes())
    except (OSError, ValueError) as exc:
        print(f"auditagent-collector: {args.file}: cannot read a signed policy (JSON DSSE envelope): {exc}",
              file=sys.stderr)
        return 2
    if args.public_key:
        try:
            wire.verify_policy(envelope, wire.load_public_key_pem(Path(args.public_key).read_bytes()))
        except wire.ReportError as exc:
            print(f"auditagent-collector: {args.file}: does not verify with {args.public_key}: {exc.message}",
                  file=sys.stderr)
            return 1
    info = _store(args).set_policy(args.unit, envelope)
    print(f"policy {info['policy_id'] or '?'} {info['policy_version'] or '?'} set for unit {info['unit']} "
          f"(sha256 {info['sha256']})")
    return 0


def _hours_or_inherit(value: str) -> int | str:
    if value == "inherit":
        return value
    try:
        hours = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: expected a whole number of hours, or 'inherit'") from None
    if hours < 1:
        raise argparse.ArgumentTypeError(f"{value!r}: at least 1 hour")
    return hours


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="auditagent-collector",
                                     description="Collector for auditagent readiness reports.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", default=None,
                        help=f"database URL (default: ${DB_ENV} or {DEFAULT_DB_URL}); "
                             "PostgreSQL: postgresql+psycopg://user:pw@host/db")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = action(sub, "serve", cmd_serve, "run the HTTP(S) collector (migrates the database first)", [common])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8443)
    p.add_argument("--tls-cert", default=None, help="PEM certificate (chain) for HTTPS")
    p.add_argument("--tls-key", default=None, help="PEM private key for HTTPS")
    p.add_argument("--max-body-bytes", type=int, default=Limits.max_body_bytes,
                   help="largest report body accepted (default 262144 = 256 KiB)")
    p.add_argument("--max-future-skew", default="10m", help="how far ahead a report's generated_at may be (10m)")
    p.add_argument("--pool-size", type=int, default=10, help="database connections kept open")
    p.add_argument("--pool-overflow", type=int, default=30, help="extra connections under load")
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    p.add_argument("--workers", type=int, default=1,
                   help="collector processes on the one port (default 1; about one per core: each is a full "
                        "collector on the same database)")
    p.add_argument("--worker-healthcheck-timeout", type=int, default=WORKER_HEALTHCHECK_SECONDS, metavar="SECONDS",
                   help="with --workers N: how long uvicorn's supervisor waits for a worker, starting or running, "
                        f"to answer its health check before it kills and replaces it (default "
                        f"{WORKER_HEALTHCHECK_SECONDS}; uvicorn's own 5 s killed workers still starting on a busy host)")
    p.add_argument("--max-report-age-hours", type=int, default=24,
                   help="a device whose last report is older is stale, unless its unit (or a parent) sets "
                        "its own, e.g. from the signed policy (default 24)")
    p.add_argument("--sweep-every", type=float, default=60.0, metavar="SECONDS",
                   help="judge again, this often, the devices whose stored state has run out (stale, grace "
                        "ended); 0: never (then run `sweep` from cron; pages are right either way) (default 60)")
    p.add_argument("--readiness-target", type=float, default=95.0, metavar="PERCENT",
                   help="the share of ready devices a unit should reach; the overview marks units below it "
                        "(default 95)")
    p.add_argument("--min-agent-version", default=None,
                   help="flag agents older than this as outdated (default: older than the newest reported)")
    p.add_argument("--timezone", default=os.environ.get("AUDITAGENT_TIMEZONE") or DEFAULT_ZONE,
                   help="the organisation's time zone for the dashboard's times and dates (IANA name; "
                        "Europe/Copenhagen for Danish installs; default $AUDITAGENT_TIMEZONE or Europe/Stockholm)")
    p.add_argument("--insecure-cookies", action="store_true",
                   help="session cookie without the Secure flag; refused unless serving plain http on a loopback "
                        "address (tests and local preview over http://127.0.0.1)")
    p.add_argument("--metrics-token-file", default=None,
                   help="serve Prometheus metrics at /metrics to a scraper sending this file's token as "
                        "'Authorization: Bearer' (file mode 0600); without it or --metrics-listen, no metrics")
    p.add_argument("--metrics-listen", default=None, metavar="HOST:PORT",
                   help="serve Prometheus metrics, without a token, on a listener of their own (e.g. 127.0.0.1:9464)")
    p.add_argument("--notify-config", default=None, metavar="FILE",
                   help="notifications: YAML with SMTP (STARTTLS) and webhook settings; starts the daily digest "
                        "and delivery worker (docs/notifications.md)")
    p.add_argument("--oidc-config", default=None, metavar="FILE",
                   help="single sign-on with OpenID Connect (Entra ID): YAML with issuer, client, claim → role/unit "
                        "mappings; see docs/entra-id.md")
    p.add_argument("--readiness-ca", default=None, metavar="DIR",
                   help="issue readiness certificates from the CA in DIR (`ca init`; default $AUDITAGENT_READINESS_CA)")
    p.add_argument("--certificate-lifetime", default=None, metavar="DURATION",
                   help="lifetime of readiness certificates, e.g. 8h (default: the unit's max report age; at most 24h)")

    p = action(sub, "sweep", cmd_sweep, "judge again the devices whose stored state has run out "
               "(what `serve` does every minute; for cron when it runs with --sweep-every 0)", [common])
    p.add_argument("--max-report-age-hours", type=int, default=24,
                   help="the default max report age, as `serve` is given it (default 24)")

    db = command_group(sub, "db", "database schema")
    action(db, "upgrade", cmd_db_upgrade, "apply the migrations (Alembic) up to the newest", [common])

    unit = command_group(sub, "unit", "organisational units (a tree: A/B/C)")
    p = action(unit, "add", cmd_unit_add, "create a unit and any missing parents", [common])
    p.add_argument("path", help='e.g. "Socialförvaltningen/IFO/Ekonomiskt bistånd"')
    p = action(unit, "list", cmd_unit_list, "list units", [common])
    p.add_argument("--json", action="store_true")

    p = action(unit, "set-max-age", cmd_unit_set_max_age, "hours after which a unit's devices are stale", [common])
    p.add_argument("path")
    p.add_argument("hours", type=_hours_or_inherit, help="a number of hours, or 'inherit'")

    usr = command_group(sub, "user", "dashboard users")
    p = action(usr, "add", cmd_user_add, "add a user (password from a file, stdin, or generated)", [common])
    p.add_argument("username")
    p.add_argument("--role", required=True, choices=["admin", "security_officer", "unit_manager"])
    p.add_argument("--unit", default=None, help="limit the user to this unit's subtree (unit managers: required)")
    p.add_argument("--lang", default="sv", choices=["sv", "da", "en"])
    g = p.add_mutually_exclusive_group()
    g.add_argument("--password-file", default=None, help="read the password from the first line of this file")
    g.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    action(usr, "list", cmd_user_list, "list users", [common])
    p = action(usr, "disable", cmd_user_disable, "disable a user and end their sessions", [common])
    p.add_argument("username")

    tok = command_group(sub, "token", "enrolment tokens")
    p = action(tok, "create", cmd_token_create, "create a token (printed once, on the last line)", [common])
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--unit", help="a unit's install token: enrols new devices")
    which.add_argument("--device", metavar="ID", help="a single-use re-enrol token for this one device (a lost or "
                                                      "replaced key); written to the audit log")
    p.add_argument("--expires-in", default="7d", help="e.g. 30m, 12h, 7d, 2w (default 7d)")
    p.add_argument("--uses", type=int, default=1, help="how many enrolments it allows (default 1)")
    p.add_argument("--note", default=None)
    action(tok, "list", cmd_token_list, "list tokens (never their values)", [common])
    p = action(tok, "revoke", cmd_token_revoke, "revoke a token by id", [common])
    p.add_argument("id", type=int)

    dev = command_group(sub, "device", "enrolled devices")
    p = action(dev, "list", cmd_device_list, "list devices (of a unit and its sub-units)", [common])
    p.add_argument("--unit", default=None)
    p.add_argument("--active", action="store_true", help="leave out revoked devices")
    p.add_argument("--json", action="store_true")
    p = action(dev, "revoke", cmd_device_revoke, "revoke a device: its key stops being accepted", [common])
    p.add_argument("id")
    p.add_argument("--reason", default=None)

    pol = command_group(sub, "policy", "signed policies per unit")
    p = action(pol, "set", cmd_policy_set, "store a signed policy (from `auditagent policy sign`) for a unit",
               [common])
    p.add_argument("--unit", required=True)
    p.add_argument("file", help="FILE.signed.json (a DSSE envelope)")
    p.add_argument("--public-key", default=None, help="organisation's policy public key (PEM) to check it first")

    tok = command_group(sub, "api-token", "API tokens for scripts and SIEM (Authorization: Bearer)")
    p = action(tok, "create", cmd_api_token_create, "create a token (printed once, on the last line)", [common])
    p.add_argument("name", help="e.g. siem-export")
    p.add_argument("--role", required=True, choices=["admin", "security_officer", "unit_manager"])
    p.add_argument("--unit", default=None, help="limit the token to this unit's subtree (unit_manager: required)")
    p.add_argument("--expires-in", default="90d", help="e.g. 12h, 30d, 52w (default 90d, at most 366d)")
    p.add_argument("--note", default=None)
    action(tok, "list", cmd_api_token_list, "list tokens (never their values)", [common])
    p = action(tok, "revoke", cmd_api_token_revoke, "revoke a token by id", [common])
    p.add_argument("id", type=int)

    from server.ca_cli import add_parser as add_ca_parser
    from server.preview import add_parser as add_preview_parser
    from server.retention_cli import add_parser as add_retention_parser

    add_ca_parser(sub, common)
    add_retention_parser(sub, common, _engine)

    add_preview_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import os

    from sqlalchemy.exc import SQLAlchemyError

    from server.db_errors import DatabaseUnusable, explain
    from server.logs import configure_logging

    args = build_parser().parse_args(argv)
    configure_logging("warning")  # JSON on stderr; `serve` sets its own level
    try:
        return int(args.func(args) or 0)
    except ApiError as exc:
        print(f"auditagent-collector: {exc.message}", file=sys.stderr)
        return 2
    except (DatabaseUnusable, SQLAlchemyError) as exc:
        print(f"auditagent-collector: {explain(exc, resolve_db_url(getattr(args, 'db', None)))}", file=sys.stderr)
        return 2
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"auditagent-collector: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"auditagent-collector: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - a person gets one line; AUDITAGENT_DEBUG=1 shows the traceback
        if os.environ.get("AUDITAGENT_DEBUG"):
            raise
        print(f"auditagent-collector: internal error: {type(exc).__name__}: {exc} "
              "(run again with AUDITAGENT_DEBUG=1 for details)", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
