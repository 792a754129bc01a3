"""Ingest benchmark: signed reports accepted per second by the collector
(``auditagent-collector serve``, ``--workers`` processes) over loopback, on SQLite and
PostgreSQL, with several concurrent senders; plus the agent-side cost of building and
signing one report.

    python bench/bench_ingest.py                       # SQLite, and PostgreSQL if $AUDITAGENT_TEST_PG_URL
    python bench/bench_ingest.py --db postgresql --senders 16 --reports 8000 --workers 2
    git worktree add --detach /tmp/before main && \
      python bench/bench_ingest.py --db postgresql --senders 16 --workers 2 --baseline /tmp/before --rounds 3

Reports are real-size: built by the agent from this machine's facts and from a Windows
and a macOS laptop replayed through the Host seam (bench/real_reports.py), mixed one
third each. Devices are enrolled up front through the collector's store (as POST
/v1/enroll would), reports are pre-signed; each sender process posts its devices'
reports in sequence order over one raw keep-alive socket, the requests built before
the clock starts (so the senders cost little of the CPU the collector needs).

Per run it prints the rate, the CPU time per accepted report of the collector
processes, of PostgreSQL (this database's backends plus the WAL writer, checkpointer
and background writer) and of the senders, separately, the ratio of the rate to the
single-core parse+verify+validate limit measured in the same run, and the storage the
run left behind, measured in the database. Prints figures; asserts nothing. Loopback
(127.0.0.1) only. Where the collector's pure work per report goes, stage by stage on one
core: bench/bench_report_stages.py.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import json
import multiprocessing as mp
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Iterator

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import psutil  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from auditagent import report as wire  # noqa: E402
from real_reports import agent_predicates, signed_report  # noqa: E402

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


def sign_cost(templates: list[dict[str, Any]], n: int = 3000) -> tuple[float, float, float]:
    """µs per real-size report to build+sign (agent side) and to parse+verify+validate on
    one core (collector side, as Store.ingest does it); mean bytes on the wire."""
    from server.store import _public_key  # the collector's verifier (libsodium when PyNaCl is there)

    key = Ed25519PrivateKey.generate()
    did = str(uuid.uuid4())
    t0 = time.process_time()
    bodies = [signed_report(templates[i % len(templates)], did, i + 1, key) for i in range(n)]
    sign_us = (time.process_time() - t0) / n * 1e6
    pub = _public_key(wire.raw_public_bytes(key.public_key()))
    kid = wire.keyid(key.public_key())
    t0 = time.process_time()
    for body in bodies:
        wire.verify_decoded(wire.decode_envelope(wire.parse_envelope(body)), pub, expected_keyid=kid)
    verify_us = (time.process_time() - t0) / n * 1e6
    return sign_us, verify_us, sum(map(len, bodies)) / n


def strict_parse_cost(bodies: list[bytes], rounds: int = 5) -> dict[str, float]:
    """µs per report to strictly parse its envelope and payload: the reference that walks
    every value after decoding, and the single decoder pass with text scans that
    strict_loads uses; interleaved rounds, best of each (ratio within one run)."""
    def parse(body: bytes, decode: Any) -> None:
        envelope = wire.strict_loads(body, "body", _decode=decode)
        wire.strict_loads(wire.b64decode(envelope["payload"], "payload"), "envelope.payload", _decode=decode)

    best = {"walked": float("inf"), "scanned": float("inf")}
    for _ in range(rounds):
        for name, decode in (("walked", wire._decode_walked), ("scanned", wire._decode_scanned)):
            t0 = time.process_time()
            for body in bodies:
                parse(body, decode)
            best[name] = min(best[name], (time.process_time() - t0) / len(bodies) * 1e6)
    return best


def enrol_and_sign(db_url: str, templates: list[dict[str, Any]], devices: int, per_device: int) -> list[list[bytes]]:
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
        template = templates[i % len(templates)]
        info = store.enroll(token=token, public_key_pem=wire.public_key_pem(key.public_key()),
                            device={"hostname": f"lap-{i}", "os": "bench", "platform": template["device"]["platform"]})
        did = info["device_id"]
        out.append([signed_report(template, did, s, key) for s in range(1, per_device + 1)])
    store.engine.dispose()
    return out


# enrol_and_sign run by another checkout's code (its schema may differ from this one's):
# its ``server`` imported before this module, which puts this checkout first on sys.path.
# (The result goes to a file: the store logs to stdout.)
_ENROL_CHILD = ("import pickle, sys; out, args = pickle.load(sys.stdin.buffer); import server.store; "
                "import bench_ingest; open(out, 'wb').write(pickle.dumps(bench_ingest.enrol_and_sign(*args)))")


def enrol_and_sign_with(src: Path, db_url: str, templates: list[dict[str, Any]], devices: int,
                        per_device: int) -> list[list[bytes]]:
    """:func:`enrol_and_sign` with the collector code of checkout ``src``."""
    if src.resolve() == REPO:
        return enrol_and_sign(db_url, templates, devices, per_device)
    import pickle

    env = {**os.environ, "PYTHONPATH": f"{src}:{REPO / 'bench'}"}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "signed.pickle"
        subprocess.run([sys.executable, "-c", _ENROL_CHILD], env=env, cwd=src, check=True, stdout=subprocess.DEVNULL,
                       input=pickle.dumps((str(out), (db_url, templates, devices, per_device))))
        return pickle.loads(out.read_bytes())


def post_report(conn: http.client.HTTPConnection, body: bytes, statuses: dict[int, int], lat: list[float]) -> None:
    """POST one report on a keep-alive http.client connection (bench/bench_million.py);
    count its status, note its latency (s)."""
    t = time.perf_counter()
    conn.request("POST", "/v1/reports", body=body, headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    r.read()
    lat.append(time.perf_counter() - t)
    statuses[r.status] = statuses.get(r.status, 0) + 1


def http_request(body: bytes) -> bytes:
    """The whole POST /v1/reports request, built before the clock starts."""
    return (b"POST /v1/reports HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)) + body


def _read_response(sock: socket.socket, buf: bytearray) -> int:
    """Read one HTTP/1.1 response (Content-Length framed, as the collector answers) off
    ``sock``, leaving what follows in ``buf``; its status."""
    while (end := buf.find(b"\r\n\r\n")) < 0:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the collector closed the connection")
        buf += chunk
    lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = next((int(line.split(":", 1)[1]) for line in lines[1:] if line.lower().startswith("content-length:")), 0)
    while len(buf) < end + 4 + length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the collector closed the connection")
        buf += chunk
    del buf[:end + 4 + length]
    return status


def sender(port: int, bodies: list[bytes], start: mp.Event, queue: mp.Queue) -> None:
    """Pre-built requests over one raw keep-alive socket, each answer read before the next
    request (a device's reports arrive in order): a load generator that costs the
    collector's machine as little CPU as one in C would, measured and printed apart."""
    requests = [http_request(b) for b in bodies]
    sock = socket.create_connection(("127.0.0.1", port), timeout=120)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = bytearray()
    statuses: dict[int, int] = {}
    lat = []
    start.wait()
    cpu0 = time.process_time()
    for request in requests:
        t = time.perf_counter()
        sock.sendall(request)
        status = _read_response(sock, buf)
        lat.append(time.perf_counter() - t)
        statuses[status] = statuses.get(status, 0) + 1
    sock.close()
    queue.put((statuses, lat, time.process_time() - cpu0))


def _wal_lsn(url: str, *, reset_statements: bool = False) -> int:
    """The cluster's WAL position in bytes (cluster-wide: another database's writes count
    too), having reset pg_stat_statements where asked and installed."""
    from server.db import make_engine

    engine = make_engine(url, pool_size=1, max_overflow=0)
    try:
        with engine.connect() as conn:
            if reset_statements and conn.exec_driver_sql(
                    "SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'").first():
                conn.exec_driver_sql("SELECT pg_stat_statements_reset()")
                conn.commit()
            return int(conn.exec_driver_sql("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").scalar())
    finally:
        engine.dispose()


def _top_statements(url: str, n: int = 6) -> list[tuple[str, int, float]]:
    """This database's costliest statements since :func:`_wal_lsn` (where pg_stat_statements
    is installed in it): (text, calls, total µs of planning + execution)."""
    from server.db import make_engine

    engine = make_engine(url, pool_size=1, max_overflow=0)
    try:
        with engine.connect() as conn:
            if not conn.exec_driver_sql("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'").first():
                return []
            rows = conn.exec_driver_sql(
                "SELECT query, calls, (total_plan_time + total_exec_time) * 1000 FROM pg_stat_statements "
                "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                "ORDER BY 3 DESC LIMIT %(n)s", {"n": n}).all()
            return [(" ".join(q.split())[:90], int(c), float(us)) for q, c, us in rows]
    finally:
        engine.dispose()


def _cpu(procs: list[psutil.Process]) -> dict[int, float]:
    out = {}
    for p in procs:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
    return out


def collector_procs(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def postgres_procs(db_name: str) -> list[psutil.Process]:
    """This database's backends and the cluster's shared writers (WAL, checkpoints)."""
    out = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or ())
        if not cmd.startswith("postgres: "):
            continue
        if f" {db_name} " in cmd or any(w in cmd for w in ("walwriter", "checkpointer", "background writer")):
            out.append(p)
    return out


def storage(url: str, kind: str) -> dict[str, int]:
    """Bytes on disk per table (with indexes and TOAST; all partitions of a partitioned
    table), measured in the database, and the row counts the per-unit figures divide by."""
    from sqlalchemy import inspect, text

    from server.db import make_engine

    engine = make_engine(url, pool_size=1, max_overflow=0)
    tables = ("reports", "report_blobs", "device_state", "device_checks", "device_days")
    out = {}
    with engine.connect() as conn:
        present = set(inspect(conn).get_table_names())
        if kind == "postgresql":
            for t in tables:
                if t not in present:
                    out[t] = 0
                    continue
                parts = conn.execute(text("SELECT sum(pg_total_relation_size(relid))::bigint "
                                          "FROM pg_partition_tree(:t)"), {"t": t}).scalar()  # NULL: not partitioned
                out[t] = parts if parts is not None else conn.execute(
                    text("SELECT pg_total_relation_size(:t)"), {"t": t}).scalar()
        else:
            for t in tables:
                out[t] = _sqlite_table_size(conn, t)
        out["_reports"] = conn.exec_driver_sql("SELECT COUNT(*) FROM reports").scalar()
        out["_devices"] = conn.exec_driver_sql("SELECT COUNT(*) FROM device_state").scalar()
        out["_days"] = conn.exec_driver_sql("SELECT COUNT(*) FROM device_days").scalar()
        out.update(_blob_reuse(conn))
    out["device_days_as_left"] = out["device_days"]
    out["device_days"] = _compacted_size(engine, kind, "device_days")
    engine.dispose()
    return out


def _compacted_size(engine: Any, kind: str, table: str) -> int:
    """``table``'s bytes (with indexes) after VACUUM FULL: its live rows only. A device's
    row of a day is rewritten by each of that day's reports (24 an hour apart) and then
    never again, so the days held are live rows; the benchmark's devices send all their
    reports within one day, which leaves each day row's dead versions behind, as no
    held year of days has them."""
    with engine.connect() as conn:
        if kind != "postgresql":
            return _sqlite_table_size(conn, table)  # SQLite rewrites a row in place
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")  # VACUUM runs outside a transaction
        conn.exec_driver_sql(f"VACUUM FULL {table}")
        return conn.exec_driver_sql(f"SELECT pg_total_relation_size('{table}')").scalar()


def _sqlite_table_size(conn: Any, table: str) -> int:
    rows = conn.exec_driver_sql("SELECT name, tbl_name FROM sqlite_master WHERE type IN ('table','index')").all()
    sizes = dict(conn.exec_driver_sql("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").all())
    return sum(sizes.get(name, 0) for name, tbl in rows if tbl == table)


def _blob_reuse(conn: Any) -> dict[str, float]:
    """How much blob storage each device's reports bring, counted per device (as if no two
    devices shared a blob: the benchmark's devices share three templates, a real fleet's
    rarely share facts): segments a device's first report brings are stored once a month;
    a segment new in a later report is a cost of that report, and hourly reports that
    repeat the previous one's add nothing. In stored (compressed) bytes of the blobs,
    without the table's page and index overhead, which a few shared rows would inflate."""
    from server import report_pack

    sizes = dict(conn.exec_driver_sql("SELECT sha256, length(data) FROM report_blobs").all())
    first = later = later_reports = 0
    device, seen = None, set()
    for dev, body in conn.exec_driver_sql("SELECT device_id, body FROM reports ORDER BY device_id, sequence"):
        is_first = dev != device
        if is_first:
            device, seen = dev, set()
        else:
            later_reports += 1
        for sha in report_pack.segment_ids(bytes(body)):
            if bytes(sha) in seen:
                continue
            seen.add(bytes(sha))
            n = sizes.get(bytes(sha), 0)
            first, later = (first + n, later) if is_first else (first, later + n)
    return {"_blobs_first": first, "_blobs_later": later, "_later_reports": later_reports}


def per_device_year(st: dict[str, int], *, reports_months: int = 13, days_years: int = 3) -> dict[str, float]:
    """Bytes per device from the measured sizes, at one report an hour: per year of
    reports, and held at steady state under the default retention. The run's devices
    are all in one month: the blobs a device's first report brings are that month's and
    each month of receipt stores them once again; the blobs its later reports add are a
    cost of each report (see :func:`_blob_reuse`)."""
    n, d, days = max(st["_reports"], 1), max(st["_devices"], 1), max(st["_days"], 1)
    per_report = st["reports"] / n
    blobs_month = st["_blobs_first"] / d
    blobs_per_report = st["_blobs_later"] / max(st["_later_reports"], 1)
    day_row = st["device_days"] / days
    state = (st["device_state"] + st["device_checks"]) / d
    year_of_reports = (per_report + blobs_per_report) * 24 * 365 + blobs_month * 12
    return {"per_report": per_report, "blobs_per_device_month": blobs_month, "blobs_per_report": blobs_per_report,
            "day_row": day_row, "state": state,
            "year": year_of_reports + day_row * 365 + state,
            "retained": year_of_reports * reports_months / 12 + day_row * 365 * days_years + state}


def wait_healthy(port: int, proc: subprocess.Popen) -> None:
    for _ in range(1200):  # a loaded machine starts N workers slowly
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(proc.stderr.read().decode() if proc.poll() is not None else "not healthy")


def stop_collector(proc: subprocess.Popen) -> None:
    """SIGTERM (uvicorn's graceful shutdown), SIGKILL if it has not ended within a minute."""
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@contextlib.contextmanager
def sampling(procs: list[psutil.Process], out: Path | None, label: str) -> Iterator[None]:
    """With ``out``: py-spy (Python frames, running threads only, so its
    samples are CPU time) and ``perf record -g`` (kernel and native frames) on each
    collector process that serves requests, for the measured window only. Their files go
    to ``out``; bench/profile_summary.py tables them."""
    if out is None:
        yield
        return
    py_spy = Path(sys.executable).with_name("py-spy")
    if not py_spy.exists() or shutil.which("perf") is None:
        raise SystemExit("--profile needs py-spy in this venv (pip install py-spy) and perf (apt-get install linux-perf)")
    out.mkdir(parents=True, exist_ok=True)
    spies = []
    serving = [p for p in procs if not p.children()] or procs  # uvicorn's workers, not its supervisor
    for p in serving:
        stem = out / f"{label}-{p.pid}"
        spies.append(subprocess.Popen([str(py_spy), "record", "--pid", str(p.pid),
                                       "--rate", "250", "--nonblocking", "--gil", "--format", "raw",
                                       "--output", f"{stem}.pyspy.txt"], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
        spies.append(subprocess.Popen(["perf", "record", "-F", "499", "-g", "--inherit", "-p", str(p.pid), "-o",
                                       f"{stem}.perf.data"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    time.sleep(1.0)  # both attached before the clock starts
    try:
        yield
    finally:
        for s in spies:
            s.send_signal(2)  # SIGINT: each writes its file and ends
        for s in spies:
            s.wait(timeout=120)


def run(kind: str, pg_url: str | None, templates: list[dict[str, Any]], devices: int, reports: int, senders: int,
        workers: int, collector_src: Path = REPO, profile: Path | None = None, label: str = "this") -> dict[str, Any]:
    """One measured run; the collector served from ``collector_src`` (this checkout, or
    another for a before/after comparison on the same database server); sampled into
    ``profile`` where given (:func:`sampling`)."""
    per_device = max(1, reports // devices)
    with database(kind, pg_url) as url:
        port = free_port()
        env = {**os.environ, "PYTHONPATH": str(collector_src)}
        serve = [sys.executable, "-m", "server.cli", "serve", "--db", url, "--host", "127.0.0.1",
                 "--port", str(port), "--log-level", "error"]
        if workers > 1:
            serve += ["--workers", str(workers)]
        proc = subprocess.Popen(serve, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=collector_src)
        try:
            wait_healthy(port, proc)
            per_dev = enrol_and_sign_with(collector_src, url, templates, devices, per_device)
            # Each sender owns whole devices and interleaves them, so every report is in order.
            shares: list[list[list[bytes]]] = [[] for _ in range(senders)]
            for d, bodies in enumerate(per_dev):
                shares[d % senders].append(bodies)
            work = [[b for row in zip(*share) for b in row] for share in shares if share]
            ctx = mp.get_context("fork")
            start, queue = ctx.Event(), ctx.Queue()
            procs = [ctx.Process(target=sender, args=(port, w, start, queue)) for w in work]
            for p in procs:
                p.start()
            time.sleep(0.3)
            db_name = url.rsplit("/", 1)[-1].split("?")[0] if kind == "postgresql" else None
            coll = collector_procs(proc.pid)
            pg = postgres_procs(db_name) if db_name else []
            with sampling(coll, profile, f"{kind}-{label}-s{senders}-w{workers}"):
                c0, g0 = _cpu(coll), _cpu(pg)
                w0 = _wal_lsn(url, reset_statements=True) if db_name else 0
                t0 = time.perf_counter()
                start.set()
                results = [queue.get() for _ in procs]
                elapsed = time.perf_counter() - t0
                c1, g1 = _cpu(coll), _cpu(postgres_procs(db_name) if db_name else [])
            wal = _wal_lsn(url) - w0 if db_name else 0
            statements = _top_statements(url) if db_name else []
            for p in procs:
                p.join()
        finally:
            stop_collector(proc)
        stored = storage(url, kind)
    statuses: dict[int, int] = {}
    lat: list[float] = []
    sender_cpu = 0.0
    for s, l, cpu in results:
        for k, v in s.items():
            statuses[k] = statuses.get(k, 0) + v
        lat.extend(l)
        sender_cpu += cpu
    accepted = statuses.get(201, 0)
    lat.sort()
    per = max(accepted, 1)
    return {"db": kind, "senders": senders, "workers": workers, "devices": devices, "sent": sum(statuses.values()),
            "accepted": accepted, "statuses": statuses, "seconds": elapsed, "per_second": accepted / elapsed,
            "p50_ms": statistics.median(lat) * 1000, "p99_ms": lat[int(len(lat) * 0.99) - 1] * 1000,
            "collector_cpu_us": (sum(c1.values()) - sum(c0.values())) / per * 1e6,
            "postgres_cpu_us": sum(v - g0.get(pid, 0.0) for pid, v in g1.items()) / per * 1e6,
            "sender_cpu_us": sender_cpu / per * 1e6, "wal_bytes": wal / per,
            "statements": [(q, calls, us / per) for q, calls, us in statements], "storage": stored}


def storage_line(st: dict[str, int]) -> str:
    y = per_device_year(st)
    return (f"storage: reports {y['per_report']:,.0f} B/report, facts/results blobs {y['blobs_per_device_month']:,.0f} "
            f"B/device/month + {y['blobs_per_report']:,.0f} B/report, device_days {y['day_row']:,.0f} B/day "
            f"({st.get('device_days_as_left', 0) / max(st['_days'], 1):,.0f} with the run's dead row versions), device_state+checks {y['state']:,.0f} B/device "
            f"-> {y['year'] / 1e6:,.1f} MB/device/year at one report an hour; {y['retained'] / 1e6:,.1f} MB/device "
            f"held with 13 months of reports and 3 years of days ({st['_reports']} reports, {st['_devices']} devices)")


def baseline_summary(rows: list[dict[str, Any]]) -> str:
    """Medians per collector over the alternated runs of each setting, and this/baseline."""
    out = ["before/after (medians of the alternated runs):"]
    keys = ("per_second", "collector_cpu_us", "postgres_cpu_us", "sender_cpu_us", "wal_bytes")
    for setting in dict.fromkeys((r["db"], r["workers"], r["senders"]) for r in rows):
        med = {label: {k: statistics.median(r[k] for r in rows if (r["db"], r["workers"], r["senders"]) == setting
                                            and r["collector"] == label) for k in keys}
               for label in ("baseline", "this")}
        b, t = med["baseline"], med["this"]
        out.append(f"  {setting[0]} workers={setting[1]} senders={setting[2]}: rate {b['per_second']:,.0f} -> "
                   f"{t['per_second']:,.0f} reports/s ({t['per_second'] / b['per_second']:.2f}x); CPU per report: "
                   f"collector {b['collector_cpu_us']:,.0f} -> {t['collector_cpu_us']:,.0f} µs "
                   f"({t['collector_cpu_us'] / b['collector_cpu_us']:.2f}x), PostgreSQL {b['postgres_cpu_us']:,.0f} -> "
                   f"{t['postgres_cpu_us']:,.0f} µs ({t['postgres_cpu_us'] / b['postgres_cpu_us']:.2f}x), "
                   f"senders {b['sender_cpu_us']:,.0f} -> {t['sender_cpu_us']:,.0f} µs; WAL {b['wal_bytes']:,.0f} -> "
                   f"{t['wal_bytes']:,.0f} B/report ({t['wal_bytes'] / max(b['wal_bytes'], 1):.2f}x)")
    return "\n".join(out)


def main() -> int:
    from server.logs import configure_logging

    configure_logging("warning")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    ap.add_argument("--pg-url", default=os.environ.get(PG_ENV))
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--reports", type=int, default=4000)
    ap.add_argument("--senders", type=int, nargs="+", default=[4, 16])
    ap.add_argument("--workers", type=int, nargs="+", default=[2])
    ap.add_argument("--baseline", type=Path, metavar="DIR",
                    help="another checkout (e.g. a git worktree of the previous commit) whose collector is "
                         "measured in turn with this one's, same reports and database server: before/after")
    ap.add_argument("--rounds", type=int, default=1, help="with --baseline: alternations (baseline, this) per setting")
    ap.add_argument("--profile", type=Path, metavar="DIR",
                    help="sample each collector worker with py-spy and perf during the measured window, files "
                         "into DIR (the samplers' own CPU loads the machine: rates of such a run are not comparable)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    predicates = agent_predicates()
    templates = list(predicates.values())
    sign_us, verify_us, size = sign_cost(templates)
    limit = 1e6 / verify_us
    key = Ed25519PrivateKey.generate()
    parse = strict_parse_cost([signed_report(templates[i % len(templates)], "dev-parse", i + 1, key)
                               for i in range(600)])
    print("reports: built by the agent on " + ", ".join(predicates) + f"; {size:,.0f} bytes on the wire on average")
    print(f"agent: build+sign one report  {sign_us:7.1f} µs CPU (spool cost: bench/bench_spool.py)")
    print(f"collector: parse+verify+schema {verify_us:7.1f} µs CPU per report on one core "
          f"= single-core verify limit {limit:,.0f} reports/s")
    print(f"collector: strict JSON parse of envelope+payload {parse['scanned']:6.1f} µs per report "
          f"(walking every value instead: {parse['walked']:6.1f} µs; {parse['walked'] / parse['scanned']:.2f}x)")
    print(f"load average {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)")
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    if "postgresql" in kinds and not args.pg_url:
        print(f"postgresql: skipped ({PG_ENV} not set)")
        kinds.remove("postgresql")
    rows = []
    sources = [("this", REPO)] if args.baseline is None else \
        [("baseline", args.baseline.resolve()), ("this", REPO)] * max(1, args.rounds)
    for kind in kinds:
        for w in args.workers:
            for n, (label, src) in ((n, source) for n in args.senders for source in sources):
                r = run(kind, args.pg_url, templates, args.devices, args.reports, n, w, src, args.profile, label)
                r["collector"] = label
                rows.append(r)
                if args.baseline is not None:
                    print(f"{'':10} collector served from {label} ({src}), load average {os.getloadavg()[0]:.1f}")
                print(f"{kind:10} workers={w} senders={n:3} accepted {r['accepted']:6}/{r['sent']:<6} in "
                      f"{r['seconds']:6.2f} s = {r['per_second']:7.0f} reports/s = {r['per_second'] / limit:.2f} x "
                      f"verify limit  (p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms)  statuses={r['statuses']}")
                print(f"{'':10} (3,000 reports/s would be {3000 / limit:.2f} x the verify limit measured in this run)")
                print(f"{'':10} CPU per report: collector {r['collector_cpu_us']:6.0f} µs, PostgreSQL "
                      f"{r['postgres_cpu_us']:6.0f} µs, senders {r['sender_cpu_us']:6.0f} µs; "
                      f"WAL {r['wal_bytes']:,.0f} B per report")
                for q, calls, us in r["statements"]:
                    print(f"{'':10}   pg_stat_statements {us:7.0f} µs/report  {calls:6} calls  {q}")
                print(f"{'':10} {storage_line(r['storage'])}")
    if args.baseline is not None:
        print(baseline_summary(rows))
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    if args.json:
        print(json.dumps({"sign_us": sign_us, "parse_us": parse, "verify_us": verify_us, "verify_limit": limit, "bytes": size,
                          "runs": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
