"""Ingest benchmark: signed reports accepted per second by ONE collector process
(uvicorn, 1 worker) over loopback, on SQLite and PostgreSQL, with several concurrent
senders; plus the agent-side cost of building and signing one report.

    python bench/bench_ingest.py                       # SQLite, and PostgreSQL if $AUDITAGENT_TEST_PG_URL
    python bench/bench_ingest.py --db postgresql --senders 16 --reports 8000

Devices are enrolled up front (directly in the database, as the API would), reports are
pre-signed; each sender process posts its devices' reports in sequence order over one
keep-alive HTTP connection. Prints figures; asserts nothing. Loopback (127.0.0.1) only.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import json
import multiprocessing as mp
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from auditagent import report as wire  # noqa: E402

PG_ENV = "AUDITAGENT_TEST_PG_URL"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def database(kind: str, pg_url: str | None) -> Iterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as d:
            yield f"sqlite:///{d}/bench.db"
        return
    from server.db import scratch_database

    assert pg_url, f"set {PG_ENV} or --pg-url"
    with scratch_database(pg_url, "aa_bench") as url:
        yield url


def sample_predicate(device_id: str, seq: int) -> dict:
    return wire.build_predicate(
        device={"id": device_id, "hostname": f"lap-{device_id[:6]}", "serial": "SN123", "os": "Windows 11 Pro",
                "platform": "windows"},
        agent_version="0.1.0",
        policy={"id": "confidential-casework", "version": "1.0.0", "sha256": "ab" * 32},
        facts={"disk": {"status": "ok", "volumes": [{"mount": "C:", "role": "system", "encrypted": True,
                                                      "method": "bitlocker", "state": "encrypted"}]},
               "os": {"status": "ok", "id": "windows", "version": "10.0.22631", "build": "22631.3447"},
               "firewall": {"status": "ok", "enabled": True, "profiles": {"domain": True, "private": True,
                                                                           "public": True}},
               "screen_lock": {"status": "ok", "enabled": True, "idle_seconds": 300}},
        results=[{"check_id": c, "status": "pass", "severity": "required"}
                 for c in ("disk-encrypted", "os-supported", "firewall-on", "screen-lock")],
        verdict="ready", sequence=seq, generated_at=wire.now_iso())


def sign_cost(n: int = 2000) -> tuple[float, float, int]:
    """µs per report to build+sign (agent side) and to decode+verify (collector side); bytes."""
    key = Ed25519PrivateKey.generate()
    did = str(uuid.uuid4())
    t0 = time.perf_counter()
    for i in range(n):
        st = wire.build_statement(device_id=did, public_key=key.public_key(), predicate=sample_predicate(did, i + 1))
        body = wire.envelope_bytes(wire.sign_envelope(st, key))
    sign_us = (time.perf_counter() - t0) / n * 1e6
    from server.store import _public_key  # the collector's verifier (libsodium when PyNaCl is there)

    pub = _public_key(wire.raw_public_bytes(key.public_key()))
    kid = wire.keyid(key.public_key())
    t0 = time.perf_counter()
    for _ in range(n):
        wire.verify_decoded(wire.decode_envelope(wire.parse_envelope(body)), pub, expected_keyid=kid)
    verify_us = (time.perf_counter() - t0) / n * 1e6
    return sign_us, verify_us, len(body)


def enrol_and_sign(db_url: str, devices: int, per_device: int) -> list[list[bytes]]:
    """Enrol devices through the collector's own store (as POST /v1/enroll would) and
    pre-sign their reports; returns one list of bodies per device, in sequence order."""
    from server.db import make_engine
    from server.store import Store

    store = Store(make_engine(db_url, pool_size=2, max_overflow=0))
    store.add_unit("Bench/Unit")
    token, _ = store.create_token("Bench/Unit", uses=devices, expires_in=dt.timedelta(hours=1))
    out = []
    for i in range(devices):
        key = Ed25519PrivateKey.generate()
        info = store.enroll(token=token, public_key_pem=wire.public_key_pem(key.public_key()),
                            device={"hostname": f"lap-{i}", "os": "Windows 11", "platform": "windows"})
        did = info["device_id"]
        out.append([wire.envelope_bytes(wire.sign_envelope(
            wire.build_statement(device_id=did, public_key=key.public_key(), predicate=sample_predicate(did, s)),
            key)) for s in range(1, per_device + 1)])
    store.engine.dispose()
    return out


def sender(port: int, bodies: list[bytes], start: mp.Event, queue: mp.Queue) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json"}
    statuses: dict[int, int] = {}
    lat = []
    start.wait()
    for body in bodies:
        t = time.perf_counter()
        conn.request("POST", "/v1/reports", body=body, headers=headers)
        r = conn.getresponse()
        r.read()
        lat.append(time.perf_counter() - t)
        statuses[r.status] = statuses.get(r.status, 0) + 1
    conn.close()
    queue.put((statuses, lat))


def run(kind: str, pg_url: str | None, devices: int, reports: int, senders: int) -> dict:
    per_device = max(1, reports // devices)
    with database(kind, pg_url) as url:
        port = free_port()
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--db", url, "--host", "127.0.0.1",
                                 "--port", str(port), "--log-level", "error"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            for _ in range(300):
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    time.sleep(0.1)
            else:
                raise RuntimeError(proc.stderr.read().decode() if proc.poll() is not None else "not healthy")
            per_dev = enrol_and_sign(url, devices, per_device)
            # Each sender owns whole devices and interleaves them, so every report is in order.
            shares: list[list[bytes]] = [[] for _ in range(senders)]
            for d, bodies in enumerate(per_dev):
                shares[d % senders].append(bodies)
            work = []
            for share in shares:
                seq_major = [b for row in zip(*share) for b in row] if share else []
                work.append(seq_major)
            ctx = mp.get_context("fork")
            start, queue = ctx.Event(), ctx.Queue()
            procs = [ctx.Process(target=sender, args=(port, w, start, queue)) for w in work if w]
            for p in procs:
                p.start()
            time.sleep(0.3)
            t0 = time.perf_counter()
            start.set()
            results = [queue.get() for _ in procs]
            elapsed = time.perf_counter() - t0
            for p in procs:
                p.join()
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    statuses: dict[int, int] = {}
    lat: list[float] = []
    for s, l in results:
        for k, v in s.items():
            statuses[k] = statuses.get(k, 0) + v
        lat.extend(l)
    accepted = statuses.get(201, 0)
    lat.sort()
    return {"db": kind, "senders": senders, "devices": devices, "sent": sum(statuses.values()),
            "accepted": accepted, "statuses": statuses, "seconds": elapsed, "per_second": accepted / elapsed,
            "p50_ms": statistics.median(lat) * 1000, "p99_ms": lat[int(len(lat) * 0.99) - 1] * 1000}


def main() -> int:
    from server.logs import configure_logging

    configure_logging("warning")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    ap.add_argument("--pg-url", default=os.environ.get(PG_ENV))
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--reports", type=int, default=4000)
    ap.add_argument("--senders", type=int, nargs="+", default=[4, 16])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    sign_us, verify_us, size = sign_cost()
    print(f"agent: build+sign one report  {sign_us:7.1f} µs   ({size} bytes on the wire; "
          "spool cost: bench/bench_spool.py)")
    print(f"collector: parse+verify+schema {verify_us:7.1f} µs per report (in-process, no HTTP/DB)")
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    if "postgresql" in kinds and not args.pg_url:
        print(f"postgresql: skipped ({PG_ENV} not set)")
        kinds.remove("postgresql")
    rows = []
    for kind in kinds:
        for n in args.senders:
            r = run(kind, args.pg_url, args.devices, args.reports, n)
            rows.append(r)
            print(f"{kind:10} senders={n:3} accepted {r['accepted']:6}/{r['sent']:<6} in {r['seconds']:6.2f} s"
                  f" = {r['per_second']:7.0f} reports/s  (p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms)"
                  f"  statuses={r['statuses']}")
    if args.json:
        print(json.dumps({"sign_us": sign_us, "verify_us": verify_us, "runs": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
