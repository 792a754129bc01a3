"""What a stranger probing ``GET /v1/devices/{id}/policy`` can measure: the time of the
one 401 for an id nobody enrolled, a revoked device and an enrolled one (a request
signed with the stranger's key), beside the enrolled device's own fetch. The app runs
in-process (FastAPI's TestClient) on a scratch SQLite database, or on PostgreSQL with
``--pg``; the probes are interleaved so load on the machine falls on all alike.

    python bench/bench_policy_probe.py [--runs 500] [--pg URL]

Prints the median and p95 per probe, and each refusal's median as a ratio of the
unknown id's (1.00 means a stranger learns nothing from timing at this resolution).
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=500)
    ap.add_argument("--pg", default=None, help="a PostgreSQL URL (scratch database made under it)")
    args = ap.parse_args()

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from fastapi.testclient import TestClient

    from auditagent import report as wire
    from auditagent import signed_request
    from server import migrate
    from server.app import Settings, create_app
    from server.db import make_engine

    with tempfile.TemporaryDirectory() as tmp:
        url = args.pg or f"sqlite:///{Path(tmp) / 'probe.db'}"
        engine = make_engine(url, pool_size=1, max_overflow=0)
        migrate.upgrade(engine)
        engine.dispose()
        app = create_app(Settings(db_url=url, pool_size=2, max_overflow=2))
        store = app.state.store
        store.add_unit("Bench-Probe")
        org = Ed25519PrivateKey.generate()
        store.set_policy("Bench-Probe", wire.sign_policy(b"id: probe\nversion: 1.0.0\n", org))
        keys, ids = {}, {}
        for name in ("enrolled", "revoked"):
            key = Ed25519PrivateKey.generate()
            token, _ = store.create_token("Bench-Probe", uses=1)
            ids[name] = store.enroll(token=token, public_key_pem=wire.public_key_pem(key.public_key()),
                                     device={"hostname": f"bench-{name}"})["device_id"]
            keys[name] = key
        store.revoke_device(ids["revoked"])
        ids["unknown"] = "00000000-0000-4000-8000-000000000000"
        stranger = Ed25519PrivateKey.generate()

        def headers(device_id: str, key) -> dict[str, str]:
            return {"Authorization": signed_request.authorization(
                device_id=device_id, method="GET", path=signed_request.policy_path(device_id), device_key=key)}

        probes = {"unknown id (stranger's key)": (ids["unknown"], stranger, 401),
                  "revoked device (stranger's key)": (ids["revoked"], stranger, 401),
                  "revoked device (its own key)": (ids["revoked"], keys["revoked"], 401),
                  "enrolled device (stranger's key)": (ids["enrolled"], stranger, 401),
                  "enrolled device (its own key): the policy": (ids["enrolled"], keys["enrolled"], 200)}
        times: dict[str, list[float]] = {name: [] for name in probes}
        with TestClient(app) as client:
            for i in range(args.runs + 1):
                for name, (device_id, key, status) in probes.items():
                    h = headers(device_id, key)
                    t0 = time.perf_counter()
                    r = client.get(signed_request.policy_path(device_id), headers=h)
                    elapsed = (time.perf_counter() - t0) * 1000
                    assert r.status_code == status, (name, r.text)
                    if i:  # the first round warms up
                        times[name].append(elapsed)
        app.state.store.engine.dispose()
    base = statistics.median(times["unknown id (stranger's key)"])
    print(f"GET /v1/devices/{{id}}/policy on {url.split(':')[0]}, {args.runs} rounds, probes interleaved")
    for name, ms in times.items():
        p95 = sorted(ms)[max(0, int(len(ms) * 0.95) - 1)]
        med = statistics.median(ms)
        print(f"  {name:<46} median {med:6.2f} ms   p95 {p95:6.2f} ms   ratio to unknown {med / base:4.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
