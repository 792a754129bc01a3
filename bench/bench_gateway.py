"""The gateway question at scale on PostgreSQL: how long does "may this device in?"
take — :func:`server.access.device_access` directly, and ``GET /v1/gateway/check`` over
HTTP against a real collector process on 127.0.0.1 — with a fleet of 100,000 devices in
200 units (generated as in bench/bench_dashboard.py), and how long issuing one
readiness certificate takes.

    eval "$(bash .ci/start-postgres.sh)"
    python bench/bench_gateway.py [--devices 100000] [--units 200] [--runs 300]

Prints median and p95 in milliseconds (random devices, one warm-up).
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))


def figures(name: str, ms: list[float]) -> str:
    p95 = sorted(ms)[max(0, int(len(ms) * 0.95) - 1)]
    return f"  {name:<60} median {statistics.median(ms):6.2f} ms   p95 {p95:6.2f} ms   (n={len(ms)})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pg", default=os.environ.get("AUDITAGENT_TEST_PG_URL"))
    ap.add_argument("--devices", type=int, default=100_000)
    ap.add_argument("--units", type=int, default=200)
    ap.add_argument("--runs", type=int, default=300)
    args = ap.parse_args()
    if not args.pg:
        print("bench_gateway: needs PostgreSQL: eval \"$(bash .ci/start-postgres.sh)\" or --pg URL", file=sys.stderr)
        return 2
    import httpx
    from cryptography.hazmat.primitives.asymmetric import ec

    from bench_dashboard import free_port, fresh_database, generate
    from server import access, migrate
    from server.db import make_engine
    from server.readiness_ca import init_ca

    rng = random.Random(16)
    with fresh_database(args.pg) as url, tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(url, pool_size=2, max_overflow=2)
        migrate.upgrade(engine)
        info = generate(engine, n_devices=args.devices, n_units=args.units, days=1)
        print(f"generated {info['counts']['devices']:,} devices in {info['counts']['units']} units "
              f"({info['seconds']:.0f} s)")
        ids = [f"dev-{i:07d}" for i in range(1, args.devices + 1)]
        now = dt.datetime.now(dt.timezone.utc)
        with engine.connect() as conn:
            cache = access.CoverCache()
            print("direct (one connection):")
            for name, call in [
                ("device_access as issuance does (with freshness, own cover)",
                 lambda d: access.device_access(conn, d, now)),
                ("device_access as the gateway does (cover cached 5 s)",
                 lambda d: access.device_access(conn, d, now, cover=cache.get(conn, now), freshness=False)),
            ]:
                call(ids[0])
                ms = []
                for _ in range(args.runs):
                    d = rng.choice(ids)
                    t = time.perf_counter()
                    call(d)
                    ms.append((time.perf_counter() - t) * 1000)
                print(figures(name, ms))
        ca = init_ca(Path(tmp) / "ca")
        key = ec.generate_private_key(ec.SECP256R1())
        ms = []
        for _ in range(args.runs):
            t = time.perf_counter()
            ca.issue(key.public_key(), device_id="dev-1", unit="A/B", policy_sha256="ab" * 32,
                     not_after=now + dt.timedelta(hours=8), now=now)
            ms.append((time.perf_counter() - t) * 1000)
        print(figures("ReadinessCA.issue (ECDSA P-256 certificate)", ms))
        from server.api_tokens import create_api_token

        with engine.begin() as conn:
            token = create_api_token(conn, name="bench-gateway", role="security_officer").token
        port = free_port()
        env = dict(os.environ, PYTHONPATH=str(REPO))
        proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--db", url, "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30,
                              headers={"Authorization": f"Bearer {token}"}) as h:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    try:
                        if h.get("/healthz").status_code == 200:
                            break
                    except httpx.HTTPError:
                        time.sleep(0.2)
                h.get("/v1/gateway/check", headers={"X-Device-Id": ids[0]})
                ms, codes = [], {}
                for _ in range(args.runs):
                    d = rng.choice(ids)
                    t = time.perf_counter()
                    r = h.get("/v1/gateway/check", headers={"X-Device-Id": d})
                    ms.append((time.perf_counter() - t) * 1000)
                    codes[r.status_code] = codes.get(r.status_code, 0) + 1
            print("over HTTP (keep-alive, loopback, client-side time):")
            print(figures(f"GET /v1/gateway/check (answers {dict(sorted(codes.items()))})", ms))
        finally:
            proc.terminate()
            proc.wait(timeout=20)
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
