"""Where a collector worker's CPU went during ``bench_ingest.py --profile DIR``: the
share of each thread (from ``perf record``'s samples, which count CPU time whoever holds
the GIL) and, inside the threads, the share of each stage of a report's way through the
collector (from py-spy's samples of the thread holding the GIL).

    python bench/profile_summary.py DIR [--us-per-report 2900]

Prints figures; with ``--us-per-report`` (the run's collector CPU per report) also µs."""
from __future__ import annotations

import argparse
import collections
import re
import subprocess
from pathlib import Path

# (stage, a frame that puts a sample in it); the first that matches wins.
STAGES = [
    ("writer thread: the batch's statements (SQLAlchemy, psycopg)", "GroupCommit._run"),
    ("worker threads: Store.ingest (key not cached yet)", "WorkerThread.run"),
    ("Store.verify: parse, signature, schema, pack", "Store.verify"),
    ("Store.settle: the answer", "Store.settle"),
    ("after_report (readiness certificate)", "after_report"),
    ("writing the answer (uvicorn's send, the socket)", "RequestResponseCycle.send"),
    ("waking on the writer's outcome", "_call_set_state"),
    ("waking on the writer's outcome", "wrap_future"),
    ("waking on the writer's outcome", "_resolve"),
    ("queueing for the writer (GroupCommit.submit)", "_queue_up"),
    ("queueing for the writer (GroupCommit.submit)", "GroupCommit.submit"),
    ("reading the body", "RequestResponseCycle.receive"),
    ("HTTP parsing, request set-up (httptools protocol)", "HttpToolsProtocol"),
    ("the ASGI app and its middleware (their own frames)", "run_asgi"),
]


def stage_of(stack: str) -> str:
    for label, frame in STAGES:
        if frame in stack:
            return label
    leaf = stack.rsplit(";", 1)[-1]
    return "the event loop itself (uvloop, asyncio)" if leaf.startswith("Runner.run") else "other"


def py_spy_stages(paths: list[Path]) -> collections.Counter:
    out: collections.Counter = collections.Counter()
    for path in paths:
        for line in path.read_text().splitlines():
            stack, _, n = line.rpartition(" ")
            if stack:
                out[stage_of(stack)] += int(n)
    return out


def perf_threads(path: Path) -> list[tuple[float, str]]:
    """(share, thread) of one perf file's samples."""
    text = subprocess.run(["perf", "report", "-i", str(path), "--no-children", "-g", "none", "--sort", "pid",
                           "--stdio"], capture_output=True, text=True).stdout
    return [(float(m.group(1)), m.group(2)) for m in re.finditer(r"^\s*([\d.]+)%\s+(\S+)", text, re.M)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", type=Path)
    ap.add_argument("--us-per-report", type=float)
    args = ap.parse_args()
    for perf in sorted(args.dir.glob("*.perf.data")):
        shares = perf_threads(perf)
        if shares and sum(s for s, _ in shares) > 0:
            print(f"{perf.name}: CPU by thread " + ", ".join(f"{tid} {s:.1f} %" for s, tid in shares[:4]))
    stages = py_spy_stages(sorted(args.dir.glob("*.pyspy.txt")))
    total = sum(stages.values()) or 1
    print(f"py-spy samples holding the GIL: {total}")
    for label, n in stages.most_common():
        us = f"  ~{n / total * args.us_per_report:6.0f} µs/report" if args.us_per_report else ""
        print(f"  {100 * n / total:5.1f} %{us}  {label}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
