"""Dashboard queries at scale on PostgreSQL: 10,000 and 100,000 devices in 200 units with
30 days of history; the overview, unit and device pages against the 50 ms target and a
25,000-device unit's export against 1 s (median, server side), and how each grows from
the small fleet to the large one (linear: 10x).

    eval "$(bash .ci/start-postgres.sh)"      # or: --pg postgresql+psycopg://…
    python bench/bench_dashboard.py [--devices 10000,100000] [--units 200] [--days 30] [--runs 30]
    python bench/bench_dashboard.py --exports-only --baseline /tmp/before [--rounds 2]   # old code vs this

What it generates (in a fresh database, dropped at the end), in bulk SQL
(INSERT … SELECT generate_series), not through ingest:

* 200 units in a 3-level tree (4 administrations × 7 departments × 6–7 teams), devices
  on the 168 leaf teams;
* 100,000 devices with their latest state (``device_state``: 4 % stale, 1 % never
  reported) and latest results (``device_checks``: 7 checks each → 700,000 rows,
  ~30 % of devices failing at least one required check), with what ingest keeps of each
  failing run: since when (0–20 days) and, for os-updates (72 h of grace), its deadline —
  so some devices are *due* and the pages show failing-since;
* 30 days of history in ``device_days`` (one row per device and day: 3,000,000 rows) —
  the table the trend reads;
* a few hundred active exceptions (device- and unit-level), which every state
  computation has to consult.

Not generated: the signed ``reports`` rows themselves. At "hourly-ish" reporting,
30 days × 100,000 devices is ~72 million envelopes (~150 GB with 2 KB envelopes) —
too big for this machine, and no unit page reads them: the overview and drill-down
read ``device_state`` / ``device_checks``, the trend reads ``device_days`` (which ingest
keeps, one row per device and day, whatever the report rate). Ingest throughput is
measured separately in bench/bench_ingest.py.

Measured, each ``--runs`` times after one warm-up:

* direct calls into :mod:`server.readiness` (what the API and the pages run):
  ``unit_tree`` (overview), ``unit_detail`` of the largest administration (~25,000
  devices) and of a leaf team (~600), ``trend`` (90 days) of the administration — warm,
  i.e. its closed days read from the per-unit cache, and (for information) cold;
* the exports of the largest administration (~25,000 devices at 100,000), CSV and XLSX,
  the API's and a Swedish reader's: server side (direct calls, the file written to the
  last byte; wall, and the CPU of this process and of its PostgreSQL backend, with the
  query's plan: read in index order, nothing sorted) at every fleet size, and over HTTP from a collector process (to the last
  byte and to the first: they are streamed), so the growth factor covers them too;
* over HTTP against a real collector process (``auditagent-collector serve``) on
  127.0.0.1, logged in: ``GET /`` (overview page), ``GET /units/{id}`` (drill-down
  page: summary + children + failing checks + stale + 50 devices + 90-day trend SVG),
  ``GET /api/v1/units`` and ``GET /api/v1/units/{id}``. Timed at the client over
  loopback, so they include HTTP and rendering: an upper bound of the server time.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator



def _code_root() -> Path:
    """The checkout whose code is measured: this one, or another given by ``--code DIR``
    (how ``--baseline`` runs the old code's exports in a process of their own)."""
    if "--code" in sys.argv[:-1]:
        return Path(sys.argv[sys.argv.index("--code") + 1]).resolve()
    return Path(__file__).resolve().parents[1]


REPO = _code_root()
sys.path.insert(0, str(REPO))

TARGET_MS = 50.0  # pages (issue 13 item 4)
EXPORT_TARGET_MS = 1000.0  # a 25k-device unit's export
CHECKS = [("disk-encryption-full", 0.04), ("os-updates", 0.10), ("os-supported", 0.08), ("firewall", 0.02),
          ("screen-lock", 0.06), ("antimalware", 0.02), ("cloud-storage", 0.05)]
GRACE_CHECK, GRACE_HOURS = "os-updates", 72  # the policy's one check with a grace period
ADMINS = ["Socialförvaltningen", "Arbetsmarknadsförvaltningen", "Hälso- och sjukvård", "Utbildningsförvaltningen"]


@contextlib.contextmanager
def fresh_database(base_url: str) -> Iterator[str]:
    from server.db import scratch_database

    with scratch_database(base_url, "aa_bench") as url:
        yield url


def unit_paths(n_units: int) -> list[str]:
    """~n_units paths: 4 administrations × 7 departments × the rest as teams."""
    paths = list(ADMINS)
    depts = [f"{a}/Avdelning {j + 1}" for a in ADMINS for j in range(7)]
    paths += depts
    teams_needed = max(n_units - len(paths), 0)
    for k in range(teams_needed):
        paths.append(f"{depts[k % len(depts)]}/Team {k // len(depts) + 1}")
    return paths[:n_units]


def generate(engine: Any, *, n_devices: int, n_units: int, days: int) -> dict[str, Any]:
    from sqlalchemy import text

    from server.db import units

    now = dt.datetime.now(dt.timezone.utc)
    t0 = time.perf_counter()
    paths = unit_paths(n_units)
    with engine.begin() as conn:
        ids: dict[str, int] = {}
        for p in paths:
            parent = p.rsplit("/", 1)[0] if "/" in p else None
            r = conn.execute(units.insert().values(parent_id=ids.get(parent) if parent else None,
                                                   name=p.rsplit("/", 1)[-1], path=p, depth=p.count("/") + 1,
                                                   created_at=now).returning(units.c.id))
            ids[p] = r.scalar_one()
        leaves = [ids[p] for p in paths if not any(q.startswith(p + "/") for q in paths)]
        conn.execute(text("CREATE TEMP TABLE leaf (n int PRIMARY KEY, unit_id int)"))
        conn.execute(text("INSERT INTO leaf VALUES " + ",".join(f"({i},{u})" for i, u in enumerate(leaves))))
        params = {"n": n_devices, "nl": len(leaves), "now": now}
        conn.execute(text("""
            INSERT INTO devices (id, unit_id, hostname, serial, os, platform, agent_version, current_keyid,
                                 public_key, enrolled_at)
            SELECT 'dev-' || lpad(i::text, 7, '0'), leaf.unit_id,
                   'PC-' || lpad(i::text, 7, '0'), 'SN' || i,
                   CASE WHEN i % 20 < 13 THEN 'Microsoft Windows 11 Enterprise' WHEN i % 20 < 17 THEN 'macOS'
                        ELSE 'Ubuntu 24.04.3 LTS' END,
                   CASE WHEN i % 20 < 13 THEN 'windows' WHEN i % 20 < 17 THEN 'macos' ELSE 'linux' END,
                   CASE WHEN i % 17 = 0 THEN '0.0.9' ELSE '0.1.0' END,
                   md5(i::text) || md5((i + 1)::text), decode(md5(i::text) || md5((i + 7)::text), 'hex'),
                   :now - interval '40 days'
            FROM generate_series(1, :n) AS i JOIN leaf ON leaf.n = i % :nl"""), params)
        # Latest state: 1 % never reported, 4 % stale (last report 2–10 days ago).
        conn.execute(text("""
            INSERT INTO device_state (device_id, unit_id, last_sequence, last_report_id, verdict, policy_id,
                                      policy_version, policy_sha256, agent_version, generated_at, received_at)
            SELECT 'dev-' || lpad(i::text, 7, '0'), leaf.unit_id,
                   CASE WHEN i % 100 = 0 THEN 0 ELSE 60 END,
                   CASE WHEN i % 100 = 0 THEN NULL ELSE md5('r' || i)::uuid::text END,
                   CASE WHEN i % 100 = 0 THEN NULL WHEN hashtext(i::text) % 10 < 3 THEN 'not_ready' ELSE 'ready' END,
                   'casework-confidential', '1.0.0', repeat('ab', 32),
                   CASE WHEN i % 17 = 0 THEN '0.0.9' ELSE '0.1.0' END,
                   CASE WHEN i % 100 = 0 THEN NULL
                        WHEN i % 25 = 1 THEN :now - make_interval(hours => 48 + (i % 192))
                        ELSE :now - make_interval(mins => (i % 600)) END,
                   CASE WHEN i % 100 = 0 THEN NULL
                        WHEN i % 25 = 1 THEN :now - make_interval(hours => 48 + (i % 192))
                        ELSE :now - make_interval(mins => (i % 600)) END
            FROM generate_series(1, :n) AS i JOIN leaf ON leaf.n = i % :nl"""), params)
        # Latest results: each check fails on its own share of devices (hash-spread).
        values = ",".join(f"('{c}', {share})" for c, share in CHECKS)
        conn.execute(text(f"""
            INSERT INTO device_checks (device_id, check_id, severity, status)
            SELECT 'dev-' || lpad(i::text, 7, '0'), c.check_id, 'required',
                   CASE WHEN abs(hashtext(i::text || c.check_id)) % 10000 < c.share * 10000 THEN
                        CASE WHEN i % 13 = 0 THEN 'unknown' ELSE 'fail' END
                        WHEN c.check_id = 'antimalware' AND i % 20 >= 13 THEN 'not_applicable'
                        ELSE 'pass' END
            FROM generate_series(1, :n) AS i CROSS JOIN (VALUES {values}) AS c(check_id, share)
            WHERE i % 100 <> 0"""), params)
        # Failing since (runs of 0–20 days) and grace: os-updates has 72 h of grace, so
        # its runs younger than that are due, older ones past their deadline.
        conn.execute(text(f"""
            UPDATE device_checks SET failing_since = ds.generated_at - make_interval(hours => abs(hashtext(
                       device_checks.device_id || device_checks.check_id)) % 480),
                   due_until = CASE WHEN device_checks.check_id = '{GRACE_CHECK}' THEN ds.generated_at
                       - make_interval(hours => abs(hashtext(device_checks.device_id || device_checks.check_id)) % 480)
                       + interval '{GRACE_HOURS} hours' END
            FROM device_state ds WHERE ds.device_id = device_checks.device_id
              AND device_checks.status IN ('fail', 'unknown')"""))
        # What ingest keeps on device_state with the checks: the required ones not met, the
        # earliest run and deadline among them, and those without grace.
        conn.execute(text("""
            UPDATE device_state SET failing_required = f.ids, failing_since = f.since, due_until = f.due,
                   failing_hard = f.hard
            FROM (SELECT device_id, string_agg(check_id, ',' ORDER BY check_id) AS ids,
                         min(failing_since) AS since, min(due_until) AS due,
                         coalesce(string_agg(check_id, ',' ORDER BY check_id) FILTER (WHERE due_until IS NULL), '')
                         AS hard
                  FROM device_checks WHERE severity = 'required' AND status IN ('fail', 'unknown')
                  GROUP BY device_id) AS f
            WHERE f.device_id = device_state.device_id"""))
        # History: one row per device and day (what ingest keeps for the trend); readiness
        # improves slowly over the month.
        conn.execute(text("""
            INSERT INTO device_days (device_id, unit_id, day, ready_strict, failing_required)
            SELECT dv.id, dv.unit_id, (:now)::date - d,
                   abs(hashtext(i::text || ':' || d)) % 100 >= 30 + d / 2,
                   CASE WHEN abs(hashtext(i::text || ':' || d)) % 100 >= 30 + d / 2 THEN ''
                        WHEN i % 3 = 0 THEN 'os-updates' WHEN i % 3 = 1 THEN 'screen-lock'
                        ELSE 'cloud-storage,os-updates' END
            FROM generate_series(1, :n) AS i JOIN devices dv ON dv.id = 'dev-' || lpad(i::text, 7, '0')
            CROSS JOIN generate_series(0, :days - 1) AS d
            WHERE i % 100 <> 0 AND NOT (i % 7 = 0 AND d % 7 IN (5, 6))"""), {**params, "days": days})
        # A security officer, and a few hundred active exceptions.
        uid = conn.execute(text("""INSERT INTO users (username, password_hash, role, lang, failed_logins, created_at)
                                   VALUES ('bench-seed', 'x', 'security_officer', 'en', 0, :now) RETURNING id"""),
                           params).scalar_one()
        conn.execute(text("""
            INSERT INTO exceptions (check_id, device_id, justification, granted_by, granted_at, expires_at)
            SELECT 'screen-lock', 'dev-' || lpad((i * 331)::text, 7, '0'), 'bench: kiosk laptop', :uid,
                   :now - interval '3 days', :now + interval '30 days'
            FROM generate_series(1, LEAST(300, :n / 331)) AS i"""), {**params, "uid": uid})
        conn.execute(text("""
            INSERT INTO exceptions (check_id, unit_id, justification, granted_by, granted_at, expires_at)
            SELECT 'cloud-storage', unit_id, 'bench: approved pilot of a sync service', :uid,
                   :now - interval '5 days', :now + interval '20 days'
            FROM leaf WHERE n % 12 = 0"""), {**params, "uid": uid})
    # The rows above bypass ingest, which judges each device's stale and within-grace
    # inputs and the moment that judgement runs out (server/readiness/judged.py): the
    # sweep judges them all at the generation's moment, as a served collector would have.
    from server.readiness.judged import sweep

    sweep(engine, now, default_max_age_hours=24)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    with engine.connect() as conn:
        counts = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
                  for t in ("units", "devices", "device_state", "device_checks", "device_days", "exceptions")}
        admin_id = conn.execute(text("SELECT id FROM units WHERE path = :p"), {"p": ADMINS[0]}).scalar_one()
        leaf_id = conn.execute(text("SELECT unit_id FROM leaf WHERE n = 5")).scalar_one() if False else \
            conn.execute(text("SELECT u.id FROM units u WHERE u.depth = 3 ORDER BY u.path LIMIT 1")).scalar_one()
    return {"counts": counts, "seconds": time.perf_counter() - t0, "admin_id": admin_id, "leaf_id": leaf_id}


def timed(fn: Callable[[], Any], runs: int) -> list[float]:
    fn()  # warm-up (plans, caches)
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def line(name: str, ms: list[float]) -> str:
    med = statistics.median(ms)
    p95 = sorted(ms)[max(0, int(len(ms) * 0.95) - 1)]
    verdict = "   "
    return f"  {verdict} {name:<58} median {med:7.1f} ms   p95 {p95:7.1f} ms   (n={len(ms)})"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def backend_cpu_ms(conn: Any) -> Callable[[], float] | None:
    """A reader of the CPU time (user + system, ms) the PostgreSQL backend serving ``conn``
    has used, from /proc (PostgreSQL on this machine); None where it cannot be read."""
    from sqlalchemy import text

    pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    tick = os.sysconf("SC_CLK_TCK")

    def read() -> float:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * 1000 / tick
    try:
        read()
    except OSError:
        return None
    return read


def timed_cpu(fn: Callable[[], Any], runs: int, backend: Callable[[], float] | None) -> tuple[list[float], list[float]]:
    """Wall ms and CPU ms (this process + the PostgreSQL backend) of each run after a
    warm-up: on a shared machine the CPU time is the steadier figure."""
    fn()
    wall, cpu = [], []
    for _ in range(runs):
        c, b, t = time.process_time(), backend() if backend else 0.0, time.perf_counter()
        fn()
        wall.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000 + ((backend() - b) if backend else 0.0))
    return wall, cpu


def as_request(conn: Any, fn: Callable[[], Any], *, keep: bool = False) -> Callable[[], Any]:
    """``fn`` run as the collector serves a page: in a transaction of its own, ended by a
    rollback (which also empties psycopg's prepared statements), or with ``keep`` by a
    commit (the trend keeps the closed days it counted, as server/web.py and api.py do)."""
    def run() -> Any:
        try:
            return fn()
        finally:
            conn.commit() if keep else conn.rollback()
    return run


def measure_direct(engine: Any, info: dict[str, Any], runs: int) -> dict[str, float]:
    """Median ms of each direct call into server.readiness (what the pages and the API run),
    wall and CPU (collector process + PostgreSQL backend; the backend's in clock ticks,
    so a median over many runs)."""
    from sqlalchemy import delete, select

    from server import readiness as rd
    from server.db import device_state, unit_day_ready

    scope = rd.Scope.all()
    admin_id, leaf_id = info["admin_id"], info["leaf_id"]
    out: dict[str, float] = {}
    with engine.connect() as conn:
        now = dt.datetime.now(dt.timezone.utc)
        tree = rd.unit_tree(conn, scope, now)
        sizes = {u.id: u.total for u in tree}
        by_state = {st: sum(getattr(u.counts, st) for u in tree if u.depth == 1) for st in rd.STATES}
        print("  devices by state: " + ", ".join(f"{st} {n:,}" for st, n in by_state.items()))
        backend = backend_cpu_ms(conn)
        device = conn.execute(select(device_state.c.device_id).where(device_state.c.last_report_id.is_not(None))
                              .order_by(device_state.c.device_id).limit(1)).scalar_one()
        print(f"  drill-down units: administration #{admin_id} ({sizes[admin_id]:,} devices), "
              f"team #{leaf_id} ({sizes[leaf_id]:,} devices); device page {device}")

        for name, fn, n in [
            ("overview (all units, with blocking checks)", lambda: rd.overview(conn, scope, now), runs),
            ("unit_tree (API /units)", lambda: rd.unit_tree(conn, scope, now), runs),
            ("unit_detail administration", lambda: rd.unit_detail(conn, scope, admin_id, now), runs),
            ("unit_detail administration, state=not_ready",
             lambda: rd.unit_detail(conn, scope, admin_id, now, state="not_ready"), runs),
            ("unit_detail administration, state=due",
             lambda: rd.unit_detail(conn, scope, admin_id, now, state="due"), runs),
            ("unit_detail administration, page 5", lambda: rd.unit_detail(conn, scope, admin_id, now, page=5), runs),
            ("unit_detail team", lambda: rd.unit_detail(conn, scope, leaf_id, now), runs),
            ("device_detail (device page)", lambda: rd.device_detail(conn, scope, device, now), runs),
            ("trend administration 90 days, warm", lambda: rd.trend(conn, scope, admin_id, now, 90), runs),
        ]:
            conn.rollback()
            ms, cpu = timed_cpu(as_request(conn, fn, keep=name.startswith("trend")), n, backend)
            out[name] = statistics.median(ms)
            out[name + " (cpu)"] = statistics.median(cpu)
            print(line(name, ms) + f"   cpu median {statistics.median(cpu):7.1f} ms", flush=True)

        # The trend's closed days come from its per-unit cache; the first view after
        # something changed a closed day counts them afresh.
        def cold_trend() -> float:
            conn.execute(delete(unit_day_ready))
            t = time.perf_counter()
            rd.trend(conn, scope, admin_id, now, 90)
            return (time.perf_counter() - t) * 1000
        cold = [as_request(conn, cold_trend)() for _ in range(3)]  # rolled back: the cache is kept
        out["trend administration 90 days, cold"] = statistics.median(cold)
        print(line("trend administration 90 days, cold", cold), flush=True)
        conn.rollback()
    return out


@contextlib.contextmanager
def collector_client(url: str) -> Iterator[Any]:
    """A collector process (``auditagent-collector serve``) on 127.0.0.1 over ``url``, and
    an httpx client logged in to it as a security officer."""
    import httpx

    from server import auth
    from server.db import make_engine

    password = auth.generate_password()
    username = f"bench-officer-{os.urandom(4).hex()}"  # one per process started on the database
    e2 = make_engine(url, pool_size=1, max_overflow=0)
    with e2.begin() as conn:
        auth.create_user(conn, username=username, role="security_officer", password=password)
    e2.dispose()
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--db", url, "--port", str(port),
                             "--insecure-cookies", "--log-level", "warning"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        with httpx.Client(base_url=base, timeout=300) as client:
            client.collector_pid = proc.pid  # type: ignore[attr-defined]  # for the CPU it uses
            r = client.get("/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', r.text).group(1)
            r = client.post("/login", data={"username": username, "password": password,
                                            "csrf_token": token, "next": "/"})
            assert r.status_code in (200, 303), r.text
            yield client
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def backend_cpu_seconds(conn: Any) -> Callable[[], float]:
    """The CPU time (user + system) so far of the PostgreSQL backend serving ``conn``, read
    from /proc (the database runs on this machine): the database's share of a call."""
    from sqlalchemy import text

    cpu_ms = process_cpu_ms(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())

    def read() -> float:
        try:
            return cpu_ms() / 1000
        except OSError:  # a database on another host: its CPU is not seen from here
            return float("nan")
    return read


def export_plan(conn: Any, scope: Any, unit_id: int, now: dt.datetime) -> str:
    """EXPLAIN of the export's one query as its server-side cursor runs it (DECLARE: the
    planner favours the first rows): how device_state is read, and whether devices are sorted."""
    from server.readiness.export import ExportFilters, _export_query
    from server.readiness.state import DEFAULT_MAX_REPORT_AGE_HOURS

    q, _c, _n = _export_query(conn, scope, unit_id, now, filters=ExportFilters(), min_agent_version=None,
                              default_max_age_hours=DEFAULT_MAX_REPORT_AGE_HOURS)
    compiled = q.compile(conn, compile_kwargs={"render_postcompile": True})
    plan = [r[0].strip() for r in conn.exec_driver_sql("EXPLAIN DECLARE export_plan CURSOR FOR " + str(compiled),
                                                       compiled.params)]
    scan = next((p.split("  (")[0].lstrip("-> ") for p in plan if " on device_state" in p), "?")
    sorts = [p for p in plan if p.startswith("Sort Key:") and "device_state." in p]  # not the units' cut-offs
    return f"{scan}; devices sorted: {'; '.join(sorts) or 'no'}"


def measure_exports(engine: Any, url: str, info: dict[str, Any], runs: int, *, http: bool) -> dict[str, float]:
    """Median ms of the largest administration's export (~25,000 devices at 100,000): the
    direct calls (server side: the rows streamed from their query and written, CSV and
    XLSX, for the API and for a Swedish reader; wall, this process's CPU and the
    PostgreSQL backend's CPU), then over HTTP from a collector process (client-timed to
    the last byte, and to the first: the file is streamed)."""
    from server import readiness as rd
    from server.i18n_web import Translator
    from server.web import check_title

    scope = rd.Scope.all()
    admin_id = info["admin_id"]
    out: dict[str, float] = {}
    with engine.connect() as conn:
        now = dt.datetime.now(dt.timezone.utc)
        n = sum(1 for _ in rd.export_records(conn, scope, admin_id, now))
        print(f"exports of administration #{admin_id} ({n:,} devices), server side (direct calls):")
        print("  query plan: " + export_plan(conn, scope, admin_id, now))
        labels = rd.Labels(Translator("sv"), lambda c: check_title(c, "sv"))
        pg_cpu = backend_cpu_seconds(conn)

        def drain(chunks: Iterator[Any]) -> None:
            for _chunk in chunks:
                pass

        def machine_xlsx(*args: Any) -> Iterator[bytes]:  # what the API's route runs (older code: without the name)
            if hasattr(rd, "export_machine_xlsx"):
                return rd.export_machine_xlsx(*args)
            return rd.export_xlsx(rd.export_records(*args))

        # What the API's and the page's routes run (server/api.py, server/web.py), to the last byte.
        for name, fn in [
            ("export rows only (query + rows)", lambda: drain(rd.export_records(conn, scope, admin_id, now))),
            ("export CSV administration (API)", lambda: drain(rd.export_csv(conn, scope, admin_id, now))),
            ("export CSV administration (page, sv)",
             lambda: drain(rd.export_for(conn, scope, admin_id, now, labels, "sv", "csv", sheet="x"))),
            ("export XLSX administration (API)", lambda: drain(machine_xlsx(conn, scope, admin_id, now))),
            ("export XLSX administration (page, sv)",
             lambda: drain(rd.export_for(conn, scope, admin_id, now, labels, "sv", "xlsx", sheet="x"))),
        ]:
            cpu: list[float] = []
            db_cpu: list[float] = []

            def measured(fn: Callable[[], None] = fn) -> None:
                c, d = time.process_time(), pg_cpu()
                fn()
                cpu.append((time.process_time() - c) * 1000)
                db_cpu.append((pg_cpu() - d) * 1000)
            ms = timed(measured, runs)
            out[name] = statistics.median(ms)
            out[name + ", collector CPU"] = statistics.median(cpu[1:])
            out[name + ", PostgreSQL CPU"] = statistics.median(db_cpu[1:])
            print(line(name, ms) + f"   CPU: collector {out[name + ', collector CPU']:6.0f} ms, "
                  f"PostgreSQL {out[name + ', PostgreSQL CPU']:6.0f} ms", flush=True)
        conn.rollback()
    print(f"  (the target: each export of the {n:,}-device unit in <= {EXPORT_TARGET_MS:.0f} ms server side; "
          "on a loaded machine the CPU figures are the steadier ones)")
    if not http:
        return out
    print("exports over HTTP (a collector process on 127.0.0.1; client-timed, loopback; CPU of that process "
          "and of the database's backends):")
    with collector_client(url) as client, engine.connect() as watch:
        collector_cpu = process_cpu_ms(client.collector_pid)
        database_cpu = database_cpu_ms(watch)
        for name, path in [("GET export.csv (API)", f"/api/v1/units/{admin_id}/export.csv"),
                           ("GET export.xlsx (API)", f"/api/v1/units/{admin_id}/export.xlsx"),
                           ("GET export.csv (page, sv)", f"/units/{admin_id}/export.csv?lang=sv"),
                           ("GET export.xlsx (page, sv)", f"/units/{admin_id}/export.xlsx?lang=sv")]:
            first: list[float] = []
            served: list[float] = []
            queried: list[float] = []

            def fetch() -> None:
                c, d, t = collector_cpu(), database_cpu(), time.perf_counter()
                with client.stream("GET", path) as resp:
                    assert resp.status_code == 200, (path, resp.status_code)
                    for i, _chunk in enumerate(resp.iter_raw()):
                        if i == 0:
                            first.append((time.perf_counter() - t) * 1000)
                served.append(collector_cpu() - c)
                queried.append(database_cpu() - d)
            ms = timed(fetch, runs)
            key = "export " + name
            out[key] = statistics.median(ms)
            out[key + ", first byte"] = statistics.median(first[1:])
            out[key + ", collector CPU"] = statistics.median(served[1:])
            out[key + ", PostgreSQL CPU"] = statistics.median(queried[1:])
            print(line(name, ms) + f"   first byte median {statistics.median(first[1:]):7.1f} ms   CPU: collector "
                  f"{out[key + ', collector CPU']:6.0f} ms, PostgreSQL {out[key + ', PostgreSQL CPU']:6.0f} ms",
                  flush=True)
    return out


def exports_elsewhere(code: Path, url: str, info: dict[str, Any], runs: int, *, http: bool) -> dict[str, float]:
    """:func:`measure_exports` of the code in ``code`` (another checkout: the baseline) on
    the same database, in a process of its own (this bench file, run with ``--code``)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--code", str(code), "--exports-in", url,
           "--admin", str(info["admin_id"]), "--runs", str(runs)] + ([] if http else ["--no-http"])
    done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
    figures: dict[str, float] = {}
    for out in done.stdout.splitlines():
        if out.startswith("FIGURES "):
            figures = json.loads(out.removeprefix("FIGURES "))
        else:
            print(out, flush=True)
    return figures


def measure_exports_against(baseline: Path, url: str, engine: Any, info: dict[str, Any], runs: int, rounds: int, *,
                            http: bool) -> dict[str, float]:
    """The exports measured with the baseline's code and this code in turn, ``rounds``
    times, on one database; prints each figure's medians and this/baseline (on a shared
    machine, ratios within one run are what holds). Returns this code's medians."""
    sides: dict[str, list[dict[str, float]]] = {"baseline": [], "this": []}
    for r in range(1, rounds + 1):
        print(f"-- exports round {r}/{rounds}: baseline ({baseline})", flush=True)
        sides["baseline"].append(exports_elsewhere(baseline, url, info, runs, http=http))
        print(f"-- exports round {r}/{rounds}: this code ({REPO})", flush=True)
        sides["this"].append(measure_exports(engine, url, info, runs, http=http))
    med = {side: {k: statistics.median(f[k] for f in figs if k in f) for k in figs[-1]} for side, figs in sides.items()}
    print(f"exports, baseline → this code (medians of {rounds} round(s); load average now "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}):")
    for k, ms in med["this"].items():
        base = med["baseline"].get(k)
        ratio = f"x{ms / base:5.2f}" if base else "   (new)"
        print(f"  {k:<70} {base or 0.0:8.1f} ms → {ms:8.1f} ms   {ratio}")
    return med["this"]


def process_cpu_ms(pid: int) -> Callable[[], float]:
    """The CPU time (user + system, ms) process ``pid`` has used so far, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")

    def read() -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * 1000 / tick
    return read


def database_cpu_ms(conn: Any) -> Callable[[], float]:
    """The CPU time (ms) used so far by every backend of ``conn``'s database but ``conn``'s
    own (a collector's pooled connections; one that has ended is no longer counted, so
    take the difference around a request that keeps its connection)."""
    from sqlalchemy import text

    own = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()

    def read() -> float:
        pids = conn.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                                 "AND pid <> :own"), {"own": own}).scalars().all()
        conn.rollback()
        total = 0.0
        for pid in pids:
            with contextlib.suppress(OSError, ValueError):
                total += process_cpu_ms(pid)()
        return total
    return read


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pg", default=os.environ.get("AUDITAGENT_TEST_PG_URL"),
                    help="PostgreSQL URL of a role that may CREATE DATABASE (default $AUDITAGENT_TEST_PG_URL)")
    ap.add_argument("--devices", default="10000,100000",
                    help="fleet sizes, comma-separated (each in its own database); the growth factor "
                         "is printed from the smallest to the largest")
    ap.add_argument("--units", type=int, default=200)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--no-http", action="store_true")
    ap.add_argument("--exports-only", action="store_true", help="measure the exports only (no pages)")
    ap.add_argument("--baseline", type=Path, metavar="DIR",
                    help="also measure the exports with the code of DIR (a worktree of the old code: "
                         "git worktree add --detach /tmp/before main) on the same database, in turn with this code")
    ap.add_argument("--rounds", type=int, default=2, help="with --baseline: alternations (baseline, this)")
    ap.add_argument("--code", type=Path, help=argparse.SUPPRESS)  # read before the imports (_code_root)
    ap.add_argument("--exports-in", metavar="URL", help=argparse.SUPPRESS)  # --baseline's process: one database's
    ap.add_argument("--admin", type=int, help=argparse.SUPPRESS)  # exports, of this unit, figures as JSON
    args = ap.parse_args()
    if args.exports_in:
        from server.db import make_engine

        engine = make_engine(args.exports_in, pool_size=4, max_overflow=4)
        figures_json = measure_exports(engine, args.exports_in, {"admin_id": args.admin}, args.runs,
                                       http=not args.no_http)
        engine.dispose()
        print("FIGURES " + json.dumps(figures_json))
        return 0
    if not args.pg:
        print("bench_dashboard: needs PostgreSQL: eval \"$(bash .ci/start-postgres.sh)\" or --pg URL", file=sys.stderr)
        return 2

    from server import migrate
    from server.db import make_engine

    fleet_sizes = sorted(int(n) for n in args.devices.split(","))
    figures: dict[int, dict[str, float]] = {}
    for n_devices in fleet_sizes:
        with fresh_database(args.pg) as url:  # one database per size
            engine = make_engine(url, pool_size=4, max_overflow=4)
            migrate.upgrade(engine)
            info = generate(engine, n_devices=n_devices, n_units=args.units, days=args.days)
            c = info["counts"]
            print(f"{n_devices:,} devices — generated in {info['seconds']:.0f} s: {c['units']} units, "
                  f"{c['devices']:,} devices, {c['device_state']:,} device_state, {c['device_checks']:,} device_checks, "
                  f"{c['device_days']:,} device_days ({args.days} days), {c['exceptions']} exceptions; "
                  "no report envelopes (see the docstring)")
            admin_id, leaf_id = info["admin_id"], info["leaf_id"]
            results: list[str] = []
            figures[n_devices] = {}
            if not args.exports_only:
                print("direct calls (server/readiness/, one connection, each call its own transaction as served):")
                figures[n_devices] = measure_direct(engine, info, args.runs)
            export_runs = max(3, args.runs // 5)
            if args.baseline is not None:
                figures[n_devices].update(measure_exports_against(args.baseline.resolve(), url, engine, info, export_runs,
                                                                  args.rounds, http=not args.no_http))
            else:
                figures[n_devices].update(measure_exports(engine, url, info, export_runs, http=not args.no_http))
            engine.dispose()

            if not args.no_http and not args.exports_only and n_devices == fleet_sizes[-1]:
                print("over HTTP (a collector process on 127.0.0.1, logged in; client-timed, loopback):")
                with collector_client(url) as client:
                    def get(path: str) -> Callable[[], Any]:
                        def fn() -> None:
                            resp = client.get(path)
                            assert resp.status_code == 200, (path, resp.status_code, resp.text[:300])
                        return fn

                    for name, path in [("GET / (overview page)", "/"),
                                       (f"GET /units/{admin_id} (drill-down page, administration)",
                                        f"/units/{admin_id}"),
                                       (f"GET /units/{leaf_id} (drill-down page, team)", f"/units/{leaf_id}"),
                                       ("GET /api/v1/units (JSON)", "/api/v1/units"),
                                       (f"GET /api/v1/units/{admin_id} (JSON)", f"/api/v1/units/{admin_id}")]:
                        results.append(line(name, timed(get(path), args.runs)))
                        print(results[-1], flush=True)
    if len(fleet_sizes) > 1:
        lo, hi = fleet_sizes[0], fleet_sizes[-1]
        print(f"growth from {lo:,} to {hi:,} devices ({hi / lo:.0f}x the devices; linear = {hi / lo:.0f}x):")
        for name, ms in figures[hi].items():
            base = figures[lo].get(name)
            factor = f"x{ms / base:5.1f}" if base else "  (no figure to divide by)"
            print(f"  {name:<58} {base or 0.0:8.1f} ms → {ms:8.1f} ms   {factor}")
    slow = [name for name, ms in figures[fleet_sizes[-1]].items() if ms >= TARGET_MS and "export" not in name
            and "cold" not in name and "(cpu)" not in name]
    exports_met = all(ms < EXPORT_TARGET_MS for k, ms in figures[fleet_sizes[-1]].items()
                      if "export" in k and "GET" not in k and "CPU" not in k)  # the target: server side, wall
    print(f"target: pages median < {TARGET_MS:.0f} ms at {fleet_sizes[-1]:,} devices — "
          f"{'met' if not slow else f'{len(slow)} over'}; exports < {EXPORT_TARGET_MS:.0f} ms — "
          f"{'met' if exports_met else 'over'}; "
          "databases dropped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
