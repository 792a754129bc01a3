"""Agent delivery benchmark: what one report costs between "checked" and "on disk,
signed, in the outbox" — and how fast a full outbox drains into a real collector.

    python bench/bench_spool.py                 # 300 reports, SQLite collector on 127.0.0.1
    python bench/bench_spool.py -n 1000 --drain 500

Per report (median and p95 over N, in µs):
  * sequence — persist the next sequence number (temp file, fsync, rename, fsync dir)
  * sign     — build predicate + in-toto Statement, canonical JSON, Ed25519 DSSE signature
  * spool    — atomic durable write of the envelope into the spool (same fsync dance)
  * total    — sequence + sign + spool, i.e. the agent's sign-and-spool cost per report

Facts are those of the shipped casework-confidential policy on the replayed laptop
tests/fixtures/hosts/linux-e2e (so the envelope has a realistic size). The drain rate
is `deliver_spool` against the real collector (uvicorn + SQLite) over loopback, one
request per report, removing each from the spool on acknowledgement.
Prints figures; asserts nothing.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from auditagent.audit import run_check  # noqa: E402
from auditagent.delivery import build_report  # noqa: E402
from auditagent.durable import SequenceCounter  # noqa: E402
from auditagent.enrollment import Enrollment  # noqa: E402
from auditagent.host import load_replay_host  # noqa: E402
from auditagent.policy import default_policy_path, load_policy  # noqa: E402
from auditagent.spool import Spool  # noqa: E402

HOST = REPO / "tests" / "fixtures" / "hosts" / "linux-e2e" / "host.yaml"


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def sign_and_spool(n: int, workdir: Path) -> None:
    policy = load_policy(default_policy_path())
    facts, evaluation = run_check(policy, load_replay_host(HOST), None)
    key = Ed25519PrivateKey.generate()
    from auditagent.report import keyid

    enrollment = Enrollment(device_id="bench-device", server="https://127.0.0.1", keyid=keyid(key.public_key()),
                            enrolled_at="2026-01-01T00:00:00Z", serial="PF3E2E42", os="Ubuntu 22.04.4 LTS",
                            platform="linux")
    counter = SequenceCounter(workdir / "sequence")
    spool = Spool(workdir / "spool", max_reports=n + 10, max_bytes=1 << 30)
    t_seq, t_sign, t_spool, t_total, sizes = [], [], [], [], []
    for _ in range(n):
        t0 = time.perf_counter()
        seq = counter.take()
        t1 = time.perf_counter()
        built = build_report(policy=policy, facts=facts, evaluation=evaluation, enrollment=enrollment,
                             private_key=key, sequence=seq, spool_note={"evicted": 0, "evicted_sequences": [],
                                                                         "pending": 0}, integrity=None)
        t2 = time.perf_counter()
        spool.add(built.data, built.sequence, built.report_id)
        t3 = time.perf_counter()
        t_seq.append((t1 - t0) * 1e6)
        t_sign.append((t2 - t1) * 1e6)
        t_spool.append((t3 - t2) * 1e6)
        t_total.append((t3 - t0) * 1e6)
        sizes.append(len(built.data))
    print(f"sign-and-spool, {n} reports of {statistics.median(sizes) / 1024:.1f} KiB "
          f"({policy.id}: {len(policy.checks)} checks, facts {sorted(k for k in facts if isinstance(facts[k], dict))})")
    print(f"  {'step':<10}{'median µs':>12}{'p95 µs':>12}")
    for name, values in (("sequence", t_seq), ("sign", t_sign), ("spool", t_spool), ("total", t_total)):
        print(f"  {name:<10}{statistics.median(values):>12.0f}{pct(values, 0.95):>12.0f}")
    print(f"  → {1e6 / statistics.median(t_total):.0f} reports/s signed and durably spooled (one process)")


def drain(n: int, workdir: Path) -> None:
    try:
        import collector_fixtures as cf
    except ImportError as exc:  # pragma: no cover
        print(f"drain: skipped ({exc})")
        return
    from auditagent import report as wire
    from auditagent.send import Client, TransportSettings, deliver_spool

    collector = cf.start_collector(f"sqlite:///{workdir / 'collector.db'}", workdir / "collector")
    try:
        device = collector.enroll()
        spool = Spool(workdir / "drain-spool", max_reports=n + 10, max_bytes=1 << 30)
        for _ in range(n):
            envelope = device.sign()
            pred = wire.decode_envelope(envelope).statement["predicate"]
            spool.add(wire.envelope_bytes(envelope), pred["sequence"], pred["report_id"])
        client = Client(TransportSettings(server=collector.url))
        t0 = time.perf_counter()
        summary = deliver_spool(spool, client.send_report, attempts=3, base_delay=0.05)
        elapsed = time.perf_counter() - t0
        client.close()
        print(f"drain: {summary.delivered} reports delivered in {elapsed:.2f} s → {summary.delivered / elapsed:.0f} "
              f"reports/s (one agent, keep-alive HTTP, SQLite collector on 127.0.0.1); "
              f"{summary.remaining} left, stored {collector.count('reports')}")
    finally:
        collector.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=300, help="reports signed and spooled")
    ap.add_argument("--drain", type=int, default=300, help="reports drained into a real collector (0: skip)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-spool-") as tmp:
        sign_and_spool(args.n, Path(tmp))
        if args.drain:
            drain(args.drain, Path(tmp))


if __name__ == "__main__":
    main()
