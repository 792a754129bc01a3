"""Two collector processes on one database receive reports of the same devices at
once — identical resends to both, and sequences interleaved out of order. Each report
is stored exactly once (an older one as history) and, per device, the latest state only
ever goes up (the database decides: conditional UPDATE of device_state under its row
lock, UNIQUE constraints on reports). Runs on PostgreSQL (the production scale-out path) and on
SQLite."""
from __future__ import annotations

import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
from sqlalchemy import text

from auditagent import report as wire
from collector_fixtures import start_collector

DEVICES = 4
REPORTS_PER_DEVICE = 30
THREADS = 8


def test_two_collectors_store_each_report_once(collector, tmp_path):
    first = collector
    second = start_collector(first.db_url, tmp_path / "second")
    try:
        devices = [first.enroll(hostname=f"lap-{i}") for i in range(DEVICES)]
        envelopes = {d.id: [d.sign(seq) for seq in range(1, REPORTS_PER_DEVICE + 1)] for d in devices}
        jobs = []
        rng = random.Random(4)
        for device_id, envs in envelopes.items():
            for env in envs:
                body = wire.envelope_bytes(env)
                jobs.append((first.url, device_id, body))   # the same report to both collectors…
                jobs.append((second.url, device_id, body))
                if rng.random() < 0.3:
                    jobs.append((rng.choice([first.url, second.url]), device_id, body))  # …and a third resend
        # Roughly in order, locally shuffled: older and newer sequences race each other.
        jobs = [j for _, j in sorted(enumerate(jobs), key=lambda p: p[0] + rng.uniform(-12, 12))]

        local = threading.local()

        def send(job):
            url, device_id, body = job
            if not hasattr(local, "clients"):
                local.clients = {}
            client = local.clients.setdefault(url, httpx.Client(base_url=url, timeout=60))
            r = client.post("/v1/reports", content=body, headers={"content-type": "application/json"})
            rid = r.json().get("report_id") if r.status_code in (200, 201) else None
            code = r.json()["error"]["code"] if r.status_code >= 400 else None
            return device_id, r.status_code, rid, code

        with ThreadPoolExecutor(THREADS) as pool:
            results = list(pool.map(send, jobs))

        statuses = Counter(s for _, s, _, _ in results)
        assert set(statuses) <= {200, 201, 409}, statuses
        assert {c for _, s, _, c in results if s == 409} <= {"replayed_sequence"}
        stored_ids = [rid for _, s, rid, _ in results if s == 201]
        assert len(stored_ids) == len(set(stored_ids)), "a report was acknowledged as stored twice"

        with first.engine.connect() as conn:
            rows = conn.execute(text("SELECT id, device_id, sequence, report_id FROM reports "
                                     "WHERE device_id IN :ids ORDER BY id").bindparams(
                                         __import__("sqlalchemy").bindparam("ids", expanding=True)),
                                {"ids": [d.id for d in devices]}).all()
            states = dict(conn.execute(text("SELECT device_id, last_sequence FROM device_state")).all())
        assert sorted(r.report_id for r in rows) == sorted(stored_ids)  # every 201 is exactly one row
        assert len({r.report_id for r in rows}) == len(rows)
        for d in devices:
            seqs = [r.sequence for r in rows if r.device_id == d.id]
            # Every report stored once: the late ones as history, none lost, none twice.
            assert sorted(seqs) == list(range(1, REPORTS_PER_DEVICE + 1)), f"device {d.id}: {seqs}"
            assert states[d.id] == REPORTS_PER_DEVICE  # the latest state is the newest report
    finally:
        second.stop()
