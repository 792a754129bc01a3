"""The pages' direct calls on an existing 100k database, this code against a baseline
checkout in the same run (issue 13 item 4, the stored judged state):

    python bench/bench_pages_judged.py --db URL --baseline /tmp/base --baseline-db URL2 [--runs 15] [--rounds 2]

Each database is judged at one fixed moment (``--at``; default: an hour after its newest
report, the moment bench_dashboard.py generated it for), so both codes see the same
fleet state. This code's database is swept first at that moment (what ``serve`` does
every minute; ``--no-sweep`` measures pages whose stored judgement has run out). Prints
the median wall, collector CPU and PostgreSQL backend CPU per page of each code, in
alternating rounds, and the ratio new/old. The databases are not changed otherwise (each
call is its own transaction, rolled back as the server does).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

PAGES = ["overview", "unit_tree", "unit_detail administration", "unit_detail team", "device_detail"]


def measure(code: Path, url: str, at: dt.datetime | None, runs: int, sweep: bool) -> dict[str, list[float]]:
    """In this process, from ``code``'s server package: each page ``runs`` times."""
    sys.path.insert(0, str(code))
    sys.path.insert(0, str(code / "bench"))
    from sqlalchemy import func, select

    import bench_dashboard as bd  # the helpers of the checkout measured
    from server import readiness as rd
    from server.db import device_state, make_engine

    engine = make_engine(url, pool_size=2, max_overflow=0)
    with engine.connect() as conn:
        newest = conn.execute(select(func.max(device_state.c.generated_at))).scalar_one()
        conn.rollback()
    now = at or newest + dt.timedelta(hours=1)
    if sweep:
        from server.readiness.judged import sweep as run_sweep

        t = time.perf_counter()
        n = run_sweep(engine, now, default_max_age_hours=rd.DEFAULT_MAX_REPORT_AGE_HOURS)
        print(f"  swept {n:,} devices in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    scope = rd.Scope.all()
    out: dict[str, list[float]] = {}
    with engine.connect() as conn:
        tree = rd.unit_tree(conn, scope, now)
        admin = max((u for u in tree if u.depth == 1), key=lambda u: u.total)
        team = max((u for u in tree if not any(v.path.startswith(u.path + "/") for v in tree)), key=lambda u: u.total)
        device = conn.execute(select(device_state.c.device_id).where(device_state.c.last_report_id.is_not(None))
                              .order_by(device_state.c.device_id).limit(1)).scalar_one()
        by_state = {s: sum(getattr(u.counts, s) for u in tree if u.depth == 1) for s in rd.STATES}
        print(f"  at {now.isoformat()}: " + ", ".join(f"{s} {n:,}" for s, n in by_state.items()), file=sys.stderr)
        conn.rollback()
        backend = bd.backend_cpu_ms(conn)
        calls = {"overview": lambda: rd.overview(conn, scope, now),
                 "unit_tree": lambda: rd.unit_tree(conn, scope, now),
                 "unit_detail administration": lambda: rd.unit_detail(conn, scope, admin.id, now),
                 "unit_detail team": lambda: rd.unit_detail(conn, scope, team.id, now),
                 "device_detail": lambda: rd.device_detail(conn, scope, device, now)}
        for name in PAGES:
            conn.rollback()
            fn = bd.as_request(conn, calls[name])
            fn()  # warm-up
            for key in (name, name + " proc", name + " pg"):
                out[key] = []
            for _ in range(runs):
                c, b, t = time.process_time(), backend(), time.perf_counter()
                fn()
                out[name].append((time.perf_counter() - t) * 1000)
                out[name + " proc"].append((time.process_time() - c) * 1000)
                out[name + " pg"].append(backend() - b)
    engine.dispose()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", required=True)
    ap.add_argument("--baseline", type=Path)
    ap.add_argument("--baseline-db")
    ap.add_argument("--at", type=dt.datetime.fromisoformat)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--no-sweep", action="store_true")
    ap.add_argument("--code", type=Path, help=argparse.SUPPRESS)  # child: measure this checkout, print JSON
    args = ap.parse_args()
    if args.code:
        print("FIGURES " + json.dumps(measure(args.code, args.db, args.at, args.runs,
                                              not args.no_sweep and (args.code / "server/readiness/judged.py").exists())))
        return 0
    here = Path(__file__).resolve().parent.parent
    sides = [("new", here, args.db)]
    if args.baseline:
        sides.insert(0, ("old", args.baseline.resolve(), args.baseline_db or args.db))
    got: dict[str, dict[str, list[float]]] = {s: {} for s, _c, _u in sides}
    for r in range(args.rounds):
        for side, code, url in sides:
            cmd = [sys.executable, __file__, "--code", str(code), "--db", url, "--runs", str(args.runs)]
            if args.at:
                cmd += ["--at", args.at.isoformat()]
            if args.no_sweep or r > 0:
                cmd.append("--no-sweep")
            res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(code)})
            sys.stderr.write(f"[{side} round {r + 1}]\n" + res.stderr)
            line = next((ln for ln in res.stdout.splitlines() if ln.startswith("FIGURES ")), None)
            if line is None:
                print(res.stdout, res.stderr, file=sys.stderr)
                return 1
            for k, v in json.loads(line[8:]).items():
                got[side].setdefault(k, []).extend(v)
    print(f"load average {os.getloadavg()[0]:.1f} / {os.getloadavg()[1]:.1f} (1 / 5 min)")
    print(f"{'page':<30}" + "".join(f"{s + ' ' + m:>14}" for s, _c, _u in sides for m in ("wall", "proc", "pg"))
          + ("   new/old wall" if len(sides) > 1 else ""))
    for name in PAGES:
        cells = []
        med = {}
        for side, _c, _u in sides:
            g = got[side]
            med[side] = statistics.median(g[name])
            cells += [med[side], statistics.median(g[name + " proc"]), statistics.median(g[name + " pg"])]
        ratio = f"   x{med['new'] / med['old']:.2f}" if len(sides) > 1 else ""
        print(f"{name:<30}" + "".join(f"{c:14.1f}" for c in cells) + ratio)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
