"""A million devices reporting hourly, in slices this machine can run: the sustained
ingest rate one collector host carries with the dashboard answering meanwhile, the CPU
each report costs the collector and PostgreSQL, the dashboard medians while ingest runs,
and the storage per device, measured in the database, over several monthly partitions.

    eval "$(bash .ci/start-postgres.sh)"
    python bench/bench_million.py                         # 3,000 devices × 4 hourly rounds in ~5 minutes
    python bench/bench_million.py --devices 1000000       # the full fleet (4 M reports: ~4 h at 278/s)

1,000,000 devices reporting once an hour send 1e6 / 3600 ≈ 278 reports/s. A slice of N
devices is sent at ``--rate`` (default: the pace that sends it in 5 minutes, at most
278/s; ``--rate 278`` gives any slice the full fleet's work per second): each slice
device reports every N/rate wall seconds instead of every hour. A report costs the same whichever device sends it,
so the rate and CPU per report carry over to the full fleet; what depends on N (the
dashboard's queries, the tables' sizes) is measured at N and compared with
bench/bench_dashboard.py's 10k/100k figures.

How it runs, in a fresh PostgreSQL database (dropped at the end):

* set-up (not measured): the schema (Alembic), ~200 units in a 3-level tree
  (bench/bench_dashboard.py's), and N devices enrolled in bulk: the rows
  :meth:`server.store.Store.enroll` writes (``devices``, ``device_keys``, an empty
  ``device_state``), inserted in batches, without the enrolment token and the audit
  entry per device (a benchmark set-up, not an enrolment). Each device's Ed25519 key is
  derived from its number, so every sender process rebuilds its own devices' keys;
* the collector: ``serve``'s own app factory (server/asgi.py, ``--workers``
  processes) with a simulated clock for the store (bench/million_collector.py): the run
  is cut into ``--rounds`` rounds, each one simulated hour in which every device
  reports once; the rounds' hours are spread over the ``--months`` before now, so the
  reports fill that many monthly partitions as a collector that had run for months
  would (ingest makes each month's partitions as its clock enters it);
* ``--senders`` processes post real-size signed reports (built by the agent:
  bench/real_reports.py, with the device's id and host name, and ``generated_at`` and
  ``facts.collected_at`` at the simulated time, as the agent stamps them) over
  keep-alive HTTP to ``POST /v1/reports``, paced to ``--rate``; a report is signed when
  it is due;
* meanwhile a logged-in client requests the overview (``/``), the largest unit's
  page, a device page and the API summary (``/api/v1/units``) every
  ``--probe-every`` seconds, from a second collector process on the same database
  (dashboards served apart from ingest, so each process's CPU is its own).

Prints the achieved rate against the target, collector and PostgreSQL CPU per report
(this database's backends plus the WAL writer, checkpointer and background writer),
the dashboard medians during ingest and once idle, the partitions filled and the
storage per device. Prints figures; asserts nothing. Loopback (127.0.0.1) only.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import multiprocessing as mp
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_dashboard import unit_paths  # noqa: E402
from bench_ingest import (PG_ENV, _cpu, collector_procs, database, free_port, post_report,  # noqa: E402
                          postgres_procs, stop_collector, storage, wait_healthy)
from million_collector import CLOCK_ENV, SimClock, round_hours  # noqa: E402

FULL_FLEET = 1_000_000
FULL_RATE = FULL_FLEET / 3600  # ≈ 278 reports/s: a million devices, once an hour
PAGES = ("overview /", "unit page (largest unit)", "device page", "API summary /api/v1/units")


def device_id(i: int) -> str:
    return f"00000000-0000-4000-8000-{i:012d}"


def device_key(i: int) -> Any:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"bench-million:%d" % i).digest())


def hostname(i: int) -> str:
    return f"PC-{i:07d}"


# ------------------------------------------------------------------ set-up

def enrol_bulk(engine: Any, n: int, leaf_ids: list[int], platforms: list[str], batch: int = 5000) -> float:
    """Insert the rows Store.enroll writes for a new device, for devices 0..n-1, in
    batches (no token use and no audit entry per device: a set-up, not an enrolment)."""
    from sqlalchemy import insert

    from auditagent import report as wire
    from server.db import device_keys, device_state, devices

    t0 = time.perf_counter()
    at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=400)  # enrolled before the run's months
    for start in range(0, n, batch):
        devs, keys, states = [], [], []
        for i in range(start, min(start + batch, n)):
            pub = device_key(i).public_key()
            did, unit, kid = device_id(i), leaf_ids[i % len(leaf_ids)], wire.keyid(pub)
            platform = platforms[i % len(platforms)]
            devs.append(dict(id=did, unit_id=unit, current_keyid=kid, public_key=wire.raw_public_bytes(pub),
                             enrolled_at=at, hostname=hostname(i), serial=f"SN{i:07d}", os=None,
                             platform=platform, agent_version=None))
            keys.append(dict(device_id=did, keyid=kid, public_key_pem=wire.public_key_pem(pub), created_at=at))
            states.append(dict(device_id=did, last_sequence=0, unit_id=unit, agent_version=None))
        with engine.begin() as conn:
            conn.execute(insert(devices), devs)
            conn.execute(insert(device_keys), keys)
            conn.execute(insert(device_state), states)
    return time.perf_counter() - t0


def set_up(url: str, n: int, n_units: int, platforms: list[str]) -> dict[str, Any]:
    from sqlalchemy import select

    from server import auth, migrate
    from server.db import make_engine, units
    from server.store import Store

    engine = make_engine(url, pool_size=2, max_overflow=0)
    migrate.upgrade(engine)
    store = Store(engine)
    paths = unit_paths(n_units)
    for p in paths:
        store.add_unit(p)
    with engine.connect() as conn:
        ids = dict(conn.execute(select(units.c.path, units.c.id)).all())
    leaves = [ids[p] for p in paths if not any(q.startswith(p + "/") for q in paths)]
    seconds = enrol_bulk(engine, n, leaves, platforms)
    password = auth.generate_password()
    with engine.begin() as conn:
        auth.create_user(conn, username="bench-officer", role="security_officer", password=password, lang="en")
    with engine.connect() as conn:
        from sqlalchemy import text

        conn.execute(text("ANALYZE"))
    engine.dispose()
    # The largest unit: the first administration (a quarter of the devices).
    return {"password": password, "admin_id": ids[paths[0]], "units": len(paths), "leaves": len(leaves),
            "enrol_seconds": seconds}


# ------------------------------------------------------------------ the senders

def device_predicate(template: dict[str, Any], i: int, sequence: int, generated: dt.datetime) -> dict[str, Any]:
    """What device i sends in the round of ``sequence``: the agent-built template with the
    device's id and host name, and the simulated times (the agent stamps its facts with
    the time they were collected, so no two reports' facts are the same bytes)."""
    from real_reports import predicate_for

    p = predicate_for(template, device_id(i), sequence)
    p["device"]["hostname"] = hostname(i)
    p["device"]["serial"] = f"SN{i:07d}"
    p["facts"]["collected_at"] = (generated - dt.timedelta(seconds=5)).replace(microsecond=0).isoformat()
    p["generated_at"] = generated.replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return p


def sender(port: int, clock: SimClock, n: int, mine: range, templates: list[dict[str, Any]],
           queue: mp.Queue) -> None:
    import http.client

    from auditagent import report as wire

    keys = {i: device_key(i) for i in mine}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    statuses: dict[int, int] = {}
    lat: list[float] = []
    behind = 0.0
    for k in range(len(clock.hours)):
        for i in mine:
            offset = i / n  # each device at its own minute of the hour
            due = clock.wall0 + (k + offset) * clock.round_seconds
            wait = due - time.time()
            if wait > 0:
                time.sleep(wait)
            else:
                behind = max(behind, -wait)
            key = keys[i]
            # Stamped by the device's clock when it is sent, as the agent does: a sender
            # that falls behind sends later in simulated time too, never ahead of the collector.
            p = device_predicate(templates[i % len(templates)], i, k + 1, clock.at(time.time()))
            st = wire.build_statement(device_id=device_id(i), public_key=key.public_key(), predicate=p)
            body = wire.envelope_bytes(wire.sign_envelope(st, key))
            post_report(conn, body, statuses, lat)
    conn.close()
    queue.put(("sender", statuses, lat, behind))


# ------------------------------------------------------------------ the dashboard client

def login(base: str, password: str) -> Any:
    import httpx

    client = httpx.Client(base_url=base, timeout=120)
    r = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', r.text).group(1)
    r = client.post("/login", data={"username": "bench-officer", "password": password, "csrf_token": token,
                                    "next": "/"})
    assert r.status_code in (200, 303), r.status_code
    return client


def dashboard_paths(admin_id: int, device: str) -> dict[str, str]:
    return dict(zip(PAGES, ("/", f"/units/{admin_id}", f"/devices/{device}", "/api/v1/units")))


def probe(base: str, password: str, paths: dict[str, str], every: float, stop: mp.Event, queue: mp.Queue) -> None:
    """Each page once every ``every`` seconds until ``stop``: ms per request."""
    client = login(base, password)
    out: dict[str, list[float]] = {name: [] for name in paths}
    failures = 0
    while not stop.is_set():
        t_round = time.perf_counter()
        for name, path in paths.items():
            t = time.perf_counter()
            r = client.get(path)
            ms = (time.perf_counter() - t) * 1000
            if r.status_code == 200:
                out[name].append(ms)
            else:
                failures += 1
        stop.wait(max(every - (time.perf_counter() - t_round), 0.0))
    client.close()
    queue.put(("probe", out, failures))


def idle_medians(base: str, password: str, paths: dict[str, str], runs: int) -> dict[str, float]:
    with contextlib.closing(login(base, password)) as client:
        out = {}
        for name, path in paths.items():
            client.get(path)  # warm-up
            ms = []
            for _ in range(runs):
                t = time.perf_counter()
                client.get(path)
                ms.append((time.perf_counter() - t) * 1000)
            out[name] = statistics.median(ms)
    return out


# ------------------------------------------------------------------ measured in the database

def partitions_filled(url: str) -> list[tuple[str, int]]:
    from sqlalchemy import text

    from server.db import make_engine

    engine = make_engine(url, pool_size=1, max_overflow=0)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT tableoid::regclass::text AS part, count(*) FROM reports "
                                 "GROUP BY 1 ORDER BY 1")).all()
        total = conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
        enrolment = conn.execute(text("SELECT pg_total_relation_size('devices') + "
                                      "pg_total_relation_size('device_keys')")).scalar_one()
    engine.dispose()
    return [(r[0], r[1]) for r in rows] + [("_database", total), ("_enrolment", enrolment)]


def start_collector(url: str, port: int, workers: int, clock: SimClock | None) -> subprocess.Popen:
    """``serve``'s app factory (server/asgi.py) under uvicorn with serve's options, on
    loopback; with ``clock``, bench/million_collector.py's (the store's clock simulated)."""
    from server.app import Settings
    from server.asgi import SETTINGS_ENV, settings_to_env

    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'bench'}",
           SETTINGS_ENV: settings_to_env(Settings(db_url=url, insecure_cookies=True)),
           "AUDITAGENT_COLLECTOR_LOG_LEVEL": "error"}
    factory = "server.asgi:app_from_environment"
    if clock is not None:
        env[CLOCK_ENV] = clock.to_env()
        factory = "million_collector:app"
    code = (f"import uvicorn; uvicorn.run({factory!r}, factory=True, host='127.0.0.1', port={port}, "
            f"workers={workers}, access_log=False, log_level='error', server_header=False, "
            "timeout_graceful_shutdown=5)")
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from real_reports import agent_predicates

    predicates = agent_predicates()
    templates = list(predicates.values())
    platforms = [t["device"]["platform"] for t in templates]
    n, rounds = args.devices, args.rounds
    round_seconds = n / args.rate
    out: dict[str, Any] = {"devices": n, "rounds": rounds, "rate_target": args.rate, "templates": list(predicates)}
    with database("postgresql", args.pg_url) as url:
        info = set_up(url, n, args.units, platforms)
        out["setup"] = info
        print(f"set-up: {n:,} devices enrolled in bulk in {info['enrol_seconds']:.0f} s, {info['units']} units "
              f"({info['leaves']} teams); reports built by the agent on {', '.join(predicates)}", flush=True)
        port = free_port()
        # Round 0 starts once the collector is surely up (before, the clock stands at the
        # first hour); the rounds' hours end at the real hour.
        hours = round_hours(dt.datetime.now(dt.timezone.utc), rounds, args.months)
        clock = SimClock(time.time() + 20.0 + 10.0 * args.workers, round_seconds, hours)
        proc = start_collector(url, port, args.workers, clock)
        # The dashboard from its own collector process on the same database (as dashboards
        # would be served apart from ingest), so each one's CPU is measured on its own.
        dash_port = free_port()
        dash = start_collector(url, dash_port, 1, None)
        try:
            wait_healthy(port, proc)
            wait_healthy(dash_port, dash)
            base = f"http://127.0.0.1:{dash_port}"
            paths = dashboard_paths(info["admin_id"], device_id(0))
            ctx = mp.get_context("fork")
            queue, stop = ctx.Queue(), ctx.Event()
            senders = [ctx.Process(target=sender, args=(port, clock, n, range(s, n, args.senders), templates, queue))
                       for s in range(min(args.senders, n))]
            prober = ctx.Process(target=probe, args=(base, info["password"], paths, args.probe_every, stop, queue))
            db_name = url.rsplit("/", 1)[-1].split("?")[0]
            for p in senders:
                p.start()
            coll = collector_procs(proc.pid)
            c0, g0, d0 = _cpu(coll), _cpu(postgres_procs(db_name)), _cpu(collector_procs(dash.pid))
            load0 = os.getloadavg()
            wait = clock.wall0 - time.time()
            if wait > 0:
                time.sleep(wait)
            t0 = time.perf_counter()
            prober.start()
            results = [queue.get() for _ in senders]
            elapsed = time.perf_counter() - t0
            c1, g1, d1 = _cpu(collector_procs(proc.pid)), _cpu(postgres_procs(db_name)), _cpu(collector_procs(dash.pid))
            load1 = os.getloadavg()
            stop.set()
            probed = queue.get()
            for p in [*senders, prober]:
                p.join()
            out["idle_ms"] = idle_medians(base, info["password"], paths, args.idle_runs)
        finally:
            for p in (proc, dash):
                stop_collector(p)
        out["storage"] = storage(url, "postgresql")
        out["partitions"] = partitions_filled(url)
    statuses: dict[int, int] = {}
    lat: list[float] = []
    behind = 0.0
    for _, s, l, b in results:
        for code, count in s.items():
            statuses[code] = statuses.get(code, 0) + count
        lat.extend(l)
        behind = max(behind, b)
    accepted = statuses.get(201, 0)
    per = max(accepted, 1)
    lat.sort()
    out.update(statuses=statuses, accepted=accepted, seconds=elapsed, rate=accepted / elapsed,
               behind_s=behind, p50_ms=statistics.median(lat) * 1000, p99_ms=lat[int(len(lat) * 0.99) - 1] * 1000,
               collector_cpu_us=(sum(c1.values()) - sum(c0.values())) / per * 1e6,
               postgres_cpu_us=sum(v - g0.get(pid, 0.0) for pid, v in g1.items()) / per * 1e6,
               dashboard_cpu_s=sum(d1.values()) - sum(d0.values()),
               load=(load0, load1), probe={k: v for k, v in probed[1].items()}, probe_failures=probed[2])
    return out


def report(r: dict[str, Any], months: int) -> None:
    n = r["devices"]
    print(f"ingest: {r['accepted']:,} of {sum(r['statuses'].values()):,} reports accepted in {r['seconds']:.0f} s "
          f"= {r['rate']:.0f} reports/s sustained, target {r['rate_target']:.0f}/s "
          f"({r['rate'] / r['rate_target']:.2f} x target; the full fleet needs {FULL_RATE:.0f}/s = "
          f"{r['rate'] / FULL_RATE:.2f} x); statuses {r['statuses']}; latency p50 {r['p50_ms']:.1f} ms, "
          f"p99 {r['p99_ms']:.1f} ms; senders at most {r['behind_s']:.1f} s behind schedule")
    cpu = r["collector_cpu_us"] + r["postgres_cpu_us"]
    print(f"CPU per report: collector {r['collector_cpu_us']:.0f} µs, PostgreSQL {r['postgres_cpu_us']:.0f} µs "
          f"(together {cpu:.0f} µs: {1e6 / cpu:,.0f} reports/s per fully used core; "
          f"{FULL_RATE * cpu / 1e6:.2f} cores for a million devices)")
    requests = sum(len(v) for v in r["probe"].values())
    print(f"dashboard collector: {r['dashboard_cpu_s']:.1f} s CPU for {requests} page requests "
          f"({r['dashboard_cpu_s'] / max(requests, 1) * 1000:.0f} ms each; their queries' PostgreSQL CPU is in the "
          "figure above)")
    print(f"load average: {r['load'][0][0]:.1f} at the start, {r['load'][1][0]:.1f} at the end (1 min)")
    print(f"dashboard at {n:,} devices, medians during ingest (n per page) / idle after:")
    for name, ms in r["probe"].items():
        med = f"{statistics.median(ms):8.1f} ms (n={len(ms)})" if ms else "   -"
        print(f"  {name:<32} {med}   idle {r['idle_ms'][name]:8.1f} ms")
    if r["probe_failures"]:
        print(f"  {r['probe_failures']} dashboard requests failed")
    parts = [(p, c) for p, c in r["partitions"] if not p.startswith("_")]
    print("partitions filled: " + ", ".join(f"{p} {c:,}" for p, c in parts))
    st, db = r["storage"], dict(r["partitions"])
    y = storage_per_device(st, db, n)
    print(f"storage measured: database {db['_database'] / 1e6:,.0f} MB = {db['_database'] / n / 1e3:,.1f} KB per "
          f"device after {r['rounds']} reports each; per report {y['per_report']:,.0f} B in reports + "
          f"{y['blobs_per_report']:,.0f} B of facts/results blobs; per device: enrolment {y['enrolment']:,.0f} B, "
          f"device_state+checks {y['state']:,.0f} B, {y['day_row']:,.0f} B per day of history")
    print(f"  -> {y['year'] / 1e6:,.1f} MB per device per year at one report an hour; {y['retained'] / 1e6:,.1f} MB "
          f"held per device under the default retention (13 months of reports, 3 years of days): "
          f"{y['retained'] * FULL_FLEET / 1e12:,.1f} TB for a million devices")


def storage_per_device(st: dict[str, int], db: dict[str, int], n: int) -> dict[str, float]:
    """Bytes per report and per device from the sizes measured, and a year of hourly
    reports from them. The blobs a device's first report brings are stored once a month
    (each month of receipt stores them again); what its later reports add is a cost of
    each report (bench_ingest's split, counted per device)."""
    reports, days = max(st["_reports"], 1), max(st["_days"], 1)
    per_report = st["reports"] / reports
    blobs = st["_blobs_later"] / max(st["_later_reports"], 1)
    day_row, state = st["device_days"] / days, (st["device_state"] + st["device_checks"]) / n
    fixed = db["_enrolment"] / n + state
    year = (per_report + blobs) * 24 * 365 + st["_blobs_first"] / n * 12
    return {"per_report": per_report, "blobs_per_report": blobs, "day_row": day_row, "state": state,
            "enrolment": db["_enrolment"] / n, "year": year + day_row * 365 + fixed,
            "retained": year * 13 / 12 + day_row * 365 * 3 + fixed}


def main() -> int:
    from server.logs import configure_logging

    configure_logging("warning")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pg-url", default=os.environ.get(PG_ENV), help=f"default ${PG_ENV}")
    ap.add_argument("--devices", type=int, default=3000, help="enrolled devices (the slice); 1000000 for the full fleet")
    ap.add_argument("--rounds", type=int, default=4, help="hourly rounds: reports per device")
    ap.add_argument("--months", type=int, default=3, help="months the rounds' simulated hours are spread over")
    ap.add_argument("--rate", type=float, default=None,
                    help="target reports/s (default: the pace that sends the slice in 5 minutes, at most "
                         f"{FULL_RATE:.0f}/s, a million devices' rate)")
    ap.add_argument("--senders", type=int, default=8)
    ap.add_argument("--workers", type=int, default=1, help="collector processes (serve --workers)")
    ap.add_argument("--units", type=int, default=200)
    ap.add_argument("--probe-every", type=float, default=5.0, help="seconds between dashboard rounds")
    ap.add_argument("--idle-runs", type=int, default=10)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.rate is None:
        args.rate = min(FULL_RATE, args.devices * args.rounds / 300)
    if not args.pg_url:
        print(f"bench_million: needs PostgreSQL: eval \"$(bash .ci/start-postgres.sh)\" or --pg-url", file=sys.stderr)
        return 2
    print(f"{args.devices:,} devices, {args.rounds} hourly rounds over {args.months} months, target {args.rate:.0f} "
          f"reports/s ({args.devices * args.rounds:,} reports, ~{args.devices * args.rounds / args.rate / 60:.0f} min); "
          f"{args.senders} senders, {args.workers} collector process(es); {os.cpu_count()} CPUs", flush=True)
    r = run(args)
    report(r, args.months)
    if args.json:
        print(json.dumps({k: v for k, v in r.items() if k != "probe"}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
