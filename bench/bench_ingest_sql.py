"""PostgreSQL's side of ingest alone: the group commit's batch statements run straight on
one connection (no HTTP, no collector processes), so the database's CPU per stored
report, its WAL bytes and each statement's share can be compared between two checkouts
in one run without the noise of the request path.

    python bench/bench_ingest_sql.py --pg-url URL                       # this checkout
    python bench/bench_ingest_sql.py --pg-url URL --baseline /tmp/before --rounds 2

Reports are real-size (bench/real_reports.py), verified by the collector's own
``Store.verify``, ``--batch`` of them per transaction (each device's reports in order,
one per device per batch, as the group commit takes them). The figures are the CPU time
of the one PostgreSQL backend (from /proc, via psutil), the cluster's WAL bytes, and, where
pg_stat_statements is installed, its top statements. Prints figures; asserts nothing.
``--months N`` creates N past monthly partitions first (retention holds 13), to show
what a check that probes every partition costs.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def measure(src: Path, pg_url: str, devices: int, reports: int, batch: int, months: int, hot: bool = False) -> dict:
    """One run, the collector's code taken from checkout ``src`` (in a child process)."""
    code = _CHILD.format(devices=devices, reports=reports, batch=batch, months=months, hot=hot)
    env = {**os.environ, "PYTHONPATH": f"{src}:{src / 'bench'}", "BENCH_PG_URL": pg_url}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=src, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-4000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


_CHILD = r'''
import datetime as dt, json, os, time
import psutil
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from auditagent import report as wire
from real_reports import agent_predicates, signed_report
from server import partitions
from server.db import make_engine, scratch_database
from server.migrate import upgrade
from server.store import Store, VerifiedReport
from server.report_write import store_batch_for

with scratch_database(os.environ["BENCH_PG_URL"], "aa_benchsql") as url:
    engine = make_engine(url, pool_size=2, max_overflow=0)
    upgrade(engine)
    if {months}:
        with engine.begin() as conn:
            for n in range(1, {months} + 1):
                partitions.create_month(conn, "reports", partitions.add_months(partitions.month_of(dt.date.today()), -n))
                partitions.create_month(conn, "report_blobs", partitions.add_months(partitions.month_of(dt.date.today()), -n))
    if {hot}:  # what HOT updates of device_state would save: no index on a column every report changes
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP INDEX ix_device_state_generated")
            conn.exec_driver_sql("DROP INDEX ix_device_state_due")
            conn.exec_driver_sql("ALTER TABLE device_state SET (fillfactor = 80)")
    store = Store(engine)
    store.add_unit("Bench/Unit")
    token, _ = store.create_token("Bench/Unit", uses={devices}, expires_in=dt.timedelta(hours=1))
    templates = list(agent_predicates().values())
    per_device = max(1, {reports} // {devices})
    verified = []  # [sequence round][device]
    keys = []
    for i in range({devices}):
        key = Ed25519PrivateKey.generate()
        info = store.enroll(token=token, public_key_pem=wire.public_key_pem(key.public_key()),
                            device={{"hostname": f"lap-{{i}}", "os": "bench",
                                     "platform": templates[i % 3]["device"]["platform"]}})
        keys.append((info["device_id"], key, templates[i % 3]))
    for s in range(1, per_device + 1):
        row = []
        for did, key, template in keys:
            v = store.verify(signed_report(template, did, s, key))
            assert isinstance(v, VerifiedReport)
            store._remember_blobs(v.params)  # as settle() does: a segment travels once a month
            row.append(v)
        verified.append(row)
    items = [v.params for row in verified for v in row]
    store_batch = store_batch_for("postgresql")
    with engine.connect() as conn:
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        stats = conn.exec_driver_sql("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'").first()
        if stats:
            conn.exec_driver_sql("SELECT pg_stat_statements_reset()")
        wal0 = conn.exec_driver_sql("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").scalar()
        conn.commit()
        proc = psutil.Process(pid)
        t = proc.cpu_times(); cpu0 = t.user + t.system
        w0 = time.perf_counter()
        stored = 0
        for i in range(0, len(items), {batch}):
            with conn.begin():
                stored += sum(store_batch(conn, items[i:i + {batch}]))
        wall = time.perf_counter() - w0
        t = proc.cpu_times(); cpu = t.user + t.system - cpu0
        wal = int(conn.exec_driver_sql("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").scalar() - wal0)
        top = []
        if stats:
            top = [(" ".join(q.split())[:80], int(c), float(p) * 1000 / max(stored, 1), float(e) * 1000 / max(stored, 1))
                   for q, c, p, e in conn.exec_driver_sql(
                       "SELECT query, calls, total_plan_time, total_exec_time FROM pg_stat_statements "
                       "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                       "AND query NOT LIKE 'SELECT pg_%%' ORDER BY total_plan_time + total_exec_time DESC LIMIT 5")]
        conn.rollback()
    engine.dispose()
print(json.dumps({{"stored": stored, "pg_cpu_us": cpu / max(stored, 1) * 1e6, "wall_us": wall / max(stored, 1) * 1e6,
                  "wal_bytes": wal / max(stored, 1), "top": top}}))
'''


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pg-url", default=os.environ.get("AUDITAGENT_TEST_PG_URL"))
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--reports", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--months", type=int, default=0, help="past monthly partitions to create first")
    ap.add_argument("--hot", action="store_true",
                    help="compare against this checkout with device_state's generated_at and due_until indexes "
                         "dropped (fillfactor 80): what HOT updates would save at ingest (the pages read through them)")
    ap.add_argument("--baseline", type=Path, metavar="DIR")
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    if not args.pg_url:
        print("set AUDITAGENT_TEST_PG_URL or --pg-url")
        return 2
    args.batch = min(args.batch, args.devices)  # one report per device per batch
    sources = [("this", REPO, False)] if args.baseline is None else [("baseline", args.baseline.resolve(), False),
                                                                    ("this", REPO, False)]
    if args.hot:
        sources.append(("this+HOT", REPO, True))
    print(f"load average {os.getloadavg()[0]:.1f}; {args.reports} reports, {args.batch} per transaction, "
          f"{args.months} past months of partitions")
    runs: dict[str, list[dict]] = {}
    for _ in range(args.rounds):
        for label, src, hot in sources:
            r = measure(src, args.pg_url, args.devices, args.reports, args.batch, args.months, hot)
            runs.setdefault(label, []).append(r)
            print(f"{label:9} stored {r['stored']}: PostgreSQL CPU {r['pg_cpu_us']:6.0f} µs/report, wall "
                  f"{r['wall_us']:6.0f} µs/report, WAL {r['wal_bytes']:,.0f} B/report")
            for q, calls, plan, ex in r["top"]:
                print(f"{'':9}   plan {plan:5.0f} + exec {ex:5.0f} µs/report  {calls:5} calls  {q}")
    def best(label: str, key: str) -> float:
        return min(r[key] for r in runs[label])
    for ref, other in (("baseline", "this"), ("this", "this+HOT")):
        if ref in runs and other in runs:
            for key in ("pg_cpu_us", "wal_bytes"):
                print(f"{key}: {ref} {best(ref, key):,.0f} -> {other} {best(other, key):,.0f} "
                      f"({best(other, key) / best(ref, key):.2f}x, best of {args.rounds})")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
