"""The agent's own log lines (structlog's formats, without importing structlog) and the
lean import set of the hourly ``auditagent run`` (issue 13 item 6)."""
from __future__ import annotations

import io
import json
import subprocess
import sys
import time

from conftest import REPO

from auditagent.log import configure, get_logger


def test_keyvalue_lines_in_structlog_order_with_bound_context():
    stream = io.StringIO()
    configure(level="info", fmt="keyvalue", stream=stream)
    get_logger(command="run").bind(device_id="d-1").info("report_sent", sequence=3, status="stored", gone=None)
    line = stream.getvalue().strip()
    assert line.startswith("timestamp='") and line.index("level='info'") < line.index("event='report_sent'")
    assert line.endswith("event='report_sent' command='run' device_id='d-1' sequence=3 status='stored' gone=None")
    ts = line.split("'")[1]
    assert ts.endswith("Z") and "T" in ts


def test_json_lines_and_level_filter():
    stream = io.StringIO()
    configure(level="warning", fmt="json", stream=stream)
    log = get_logger(command="run")
    log.info("policy", note="not shown")
    log.warning("access", error="TLS key not registered", path=REPO)  # not JSON-able: repr, as structlog does
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["event"] == "access" and entry["level"] == "warning" and entry["command"] == "run"
    assert entry["path"] == repr(REPO)
    configure(level="info", fmt="keyvalue")


def test_secrets_redacted_in_bound_context_too():
    stream = io.StringIO()
    configure(level="info", stream=stream)
    get_logger(api_key="k-123").error("enroll", authorization="Bearer abc", detail=b"bytes")
    out = stream.getvalue()
    assert "k-123" not in out and "Bearer abc" not in out and "api_key='[redacted]'" in out
    assert "detail='bytes'" in out
    configure(level="info")


def test_the_hourly_run_path_imports_no_heavy_library():
    # What `auditagent run` imports to check, sign, spool and send (its modules, then the
    # functions it calls import lazily only what they use).
    code = ("import sys\nfrom auditagent.cli import build_parser\nbuild_parser(['run'])\n"
            "import auditagent.delivery, auditagent.send, auditagent.access_cert, auditagent.policy_cache, "
            "auditagent.log, auditagent.audit\n"
            "from auditagent.send import Client, TransportSettings\n"
            "Client(TransportSettings(server='https://collector.example'))\n"
            "heavy = ('requests', 'urllib3', 'structlog', 'asyncio', 'cryptography.x509', 'importlib.resources')\n"
            "print(sorted(m for m in heavy if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_client_reconnects_when_the_collector_closed_the_kept_alive_connection():
    """http.client keeps one connection; a collector (or proxy) that closes it between
    runs' requests must not turn the next send into a connection failure."""
    import socket
    import threading

    from auditagent.send import Client, TransportSettings

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    served = []

    def serve():
        for _ in range(2):
            conn, _ = srv.accept()
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(4096)
                served.append(data.split(b"\r\n", 1)[0])
                # Answers as keep-alive, then closes anyway.
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
                             b"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n{}")
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    client = Client(TransportSettings(server=f"http://127.0.0.1:{srv.getsockname()[1]}", timeout=5))
    try:
        first = client.request("GET", "/v1/one")
        second = client.request("GET", "/v1/two")
    finally:
        client.close()
        t.join(5)
        srv.close()
    assert first.status == 200 and second.status == 200 and first.json() == {}
    assert first.headers["set-cookie"] == "a=1, b=2"
    assert served == [b"GET /v1/one HTTP/1.1", b"GET /v1/two HTTP/1.1"]


def test_proc_process_list_agrees_with_psutil_on_this_machine(tmp_path):
    """The /proc reader (no psutil import in the hourly run) gives what psutil gives, for
    processes that do not change between the two snapshots: a child with a long name and
    several arguments, and this test process itself."""
    import os
    import shutil

    import psutil

    from auditagent.host import linux_proc_processes

    long_name = tmp_path / "a-sleeper-with-a-long-name"
    shutil.copy("/bin/sleep", long_name)
    child = subprocess.Popen([str(long_name), "30", "--"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # Popen returns once close-on-exec fds close, which the kernel does before it sets
        # the new program's comm and arguments: wait until the exec has finished, else the
        # child is caught half-way ("python", new exe, no arguments) and changes under us.
        proc_dir = f"/proc/{child.pid}"
        for _ in range(500):
            with open(f"{proc_dir}/cmdline", "rb") as f, open(f"{proc_dir}/comm", "rb") as g:
                if f.read() and g.read().strip() == long_name.name[:15].encode():
                    break
            time.sleep(0.01)
        else:
            raise AssertionError("the child never finished its exec")
        ours = {p.pid: p for p in linux_proc_processes()}
        for pid in (child.pid, os.getpid()):
            info = psutil.Process(pid).as_dict(["name", "exe", "cmdline", "username"])
            mine = ours[pid]
            assert (mine.name, mine.exe, mine.cmdline, mine.username) == \
                (info["name"], info["exe"] or None, tuple(info["cmdline"]), info["username"])
        assert ours[child.pid].name == "a-sleeper-with-a-long-name"  # beyond comm's 15 characters
    finally:
        child.kill()
        child.wait()


def test_proc_process_list_edge_cases(tmp_path):
    import os

    from auditagent.host import linux_proc_processes

    def fake(pid: str, comm: bytes, cmdline: bytes, uid: int = 0, exe: str | None = None) -> None:
        d = tmp_path / pid
        d.mkdir()
        (d / "comm").write_bytes(comm + b"\n")
        (d / "cmdline").write_bytes(cmdline)
        (d / "status").write_bytes(b"Name:\tx\nUid:\t%d\t%d\t%d\t%d\n" % (uid, uid, uid, uid))
        if exe:
            os.symlink(exe, d / "exe")

    fake("10", b"postgres", b"postgres: 15/main: checkpointer  ", exe="/usr/lib/postgresql/15/bin/postgres")
    fake("11", b"kworker/0:1", b"")
    fake("12", b"onedriver-launc", b"/usr/bin/onedriver-launcher\0--wrapper\0", exe="/gone/x (deleted)")
    (tmp_path / "13").mkdir()  # vanished between listdir and open: skipped
    (tmp_path / "self").mkdir()
    fake("14", b"sync", b"sync\0", uid=4242424)
    procs = {p.pid: p for p in linux_proc_processes(str(tmp_path))}
    assert sorted(procs) == [10, 11, 12, 14]
    assert procs[10].cmdline == ("postgres:", "15/main:", "checkpointer", "") and procs[10].username == "root"
    assert (procs[11].cmdline, procs[11].exe) == ((), None)
    assert procs[12].name == "onedriver-launcher" and procs[12].exe == "/gone/x"
    assert procs[14].username == "4242424"
