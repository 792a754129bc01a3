"""``auditagent-collector preview``: the whole thing on one machine, in one command.

First start (an empty data folder, default ``./.auditagent-preview``):

1. creates and migrates the embedded SQLite database (``DIR/collector.db``);
2. simulates a fleet (:mod:`server.simulate`: ~300 devices in a municipal unit tree,
   each with its own key and a month of signed reports);
3. creates a security-officer login with a random password, kept in ``DIR/login.txt``
   (mode 0600);
4. starts the collector on 127.0.0.1 and enrols THIS machine's agent into the unit
   ``Kommunledningsförvaltningen/IT`` (``auditagent enroll`` + ``auditagent run`` with
   ``AUDITAGENT_HOME=DIR/agent``, over loopback http);
5. prints the dashboard URL and the login.

Later starts keep everything (no new simulation, same login) and send a fresh report
from this machine. Ctrl-C or SIGTERM stops it.
"""
from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

DEFAULT_DIR = ".auditagent-preview"
PREVIEW_USER = "preview"
THIS_MACHINE_UNIT = "Kommunledningsförvaltningen/IT"


def _say(msg: str) -> None:
    print(msg, flush=True)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, 0o600)


def ensure_login(engine: Any, data_dir: Path) -> tuple[str, str]:
    """The preview's security-officer login: read from DIR/login.txt, or created."""
    from server import auth

    path = data_dir / "login.txt"
    if path.is_file():
        lines = path.read_text(encoding="utf-8").splitlines()
        if len(lines) >= 2:
            return lines[0].strip(), lines[1].strip()
    password = auth.generate_password()
    from sqlalchemy import select, update

    from server.db import users

    with engine.begin() as conn:
        if conn.execute(select(users.c.id).where(users.c.username == PREVIEW_USER)).first() is not None:
            # login.txt was lost: give the existing preview user a new password.
            conn.execute(update(users).where(users.c.username == PREVIEW_USER)
                         .values(password_hash=auth.hash_password(password), failed_logins=0, locked_until=None))
        else:
            auth.create_user(conn, username=PREVIEW_USER, role="security_officer", password=password, lang="sv")
    _write_private(path, f"{PREVIEW_USER}\n{password}\n")
    return PREVIEW_USER, password


def _agent(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITAGENT_")}
    env["AUDITAGENT_HOME"] = str(data_dir / "agent")
    (data_dir / "agent").mkdir(mode=0o700, exist_ok=True)
    return subprocess.run([sys.executable, "-m", "auditagent.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300)


def enrol_this_machine(store: Any, data_dir: Path, url: str) -> str:
    """Enrol (once) and run the real agent of this machine against the preview collector."""
    import datetime as dt

    enrolled = (data_dir / "agent" / "enrollment.json").is_file()
    if not enrolled:
        store.add_unit(THIS_MACHINE_UNIT)
        token, _ = store.create_token(THIS_MACHINE_UNIT, expires_in=dt.timedelta(minutes=10), uses=1,
                                      note="preview: this machine")
        p = _agent(data_dir, "enroll", "--server", url, "--token", token)
        if p.returncode != 0:
            return f"could not enrol this machine: {(p.stderr or p.stdout).strip()[-400:]}"
    p = _agent(data_dir, "run", "--json")
    try:
        res = json.loads(p.stdout)
        state = json.loads((data_dir / "agent" / "enrollment.json").read_text())
        verdict = {"ready": "ready", "not_ready": "not ready"}.get(res.get("verdict"), "no verdict")
        return f"this machine ({socket.gethostname()}) reported: {verdict} — {url}/devices/{state['device_id']}"
    except (ValueError, OSError, KeyError):
        return f"this machine's agent run: exit {p.returncode}: {(p.stderr or p.stdout).strip()[-400:]}"


def run_preview(data_dir: Path, port: int, *, devices: int = 300, days: int = 30, seed: int = 1,
                host: str = "127.0.0.1", this_machine: bool = True) -> int:
    import uvicorn

    from server import migrate
    from server.app import Settings, create_app
    from server.db import make_engine
    from server.logs import configure_logging
    from server.simulate import FleetSpec, simulate_fleet
    from server.store import Store

    from server.ports import free_port, port_unavailable

    configure_logging("warning")
    busy = port_unavailable(host, port)
    if busy:
        wanted, port = port, free_port(host)
        _say(f"auditagent preview: port {wanted} on {host} cannot be used ({busy}); using port {port} instead")
    data_dir = data_dir.resolve()
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    db_url = f"sqlite:///{data_dir / 'collector.db'}"
    engine = make_engine(db_url, pool_size=2, max_overflow=2)
    migrate.upgrade(engine)
    store = Store(engine)
    marker = data_dir / "simulated.json"
    if not marker.is_file():
        _say(f"auditagent preview: simulating {devices} devices with {days} days of signed reports "
             "(first start only) …")
        t0 = time.monotonic()
        s = simulate_fleet(store, FleetSpec(devices=devices, days=days, seed=seed))
        marker.write_text(json.dumps({"devices": s.devices, "reports": s.reports, "units": s.units,
                                      "seed": seed, "days": days}, ensure_ascii=False, indent=1))
        _say(f"auditagent preview: {s.devices} devices in {len(s.units)} units, {s.reports} reports "
             f"({time.monotonic() - t0:.0f} s)")
    user, password = ensure_login(engine, data_dir)
    engine.dispose()

    kwargs: dict[str, Any] = {"db_url": db_url, "pool_size": 5, "max_overflow": 10}
    names = {f.name for f in dataclasses.fields(Settings)}
    if "insecure_cookies" in names:  # plain http on loopback: the browser would drop a Secure cookie
        kwargs["insecure_cookies"] = True
    app = create_app(Settings(**kwargs))
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, server_header=False,
                            timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    url = f"http://{host}:{port}"

    def announce() -> None:
        while not server.started:
            if server.should_exit:
                return
            time.sleep(0.05)
        for line in announcement(url, user, password, data_dir, db_url):
            _say(line)
        if this_machine:
            _say("auditagent preview: " + enrol_this_machine(app.state.store, data_dir, url))

    threading.Thread(target=announce, name="preview-announce", daemon=True).start()
    server.run()
    return 0


def collector_command() -> str:
    """How to run this same auditagent-collector from another terminal."""
    argv0 = Path(sys.argv[0])
    if argv0.name.startswith("auditagent-collector") and argv0.is_file():
        return str(argv0.resolve())
    return "auditagent-collector"


def announcement(url: str, user: str, password: str, data_dir: Path, db_url: str) -> list[str]:
    cmd = collector_command()
    return [
        "",
        f"  Dashboard:   {url}/",
        f"  Log in:      {user} / {password}   (also in {data_dir / 'login.txt'})",
        f"  API:         {url}/docs",
        f"  Database:    {db_url}",
        f"  Add a user:  {cmd} user add NAME --role security_officer --db {db_url}",
        f"  Data:        {data_dir}   (stop with Ctrl-C; starting again keeps the data)",
        "",
    ]


DESCRIPTION = ("Try it on one machine: a simulated fleet of laptops, this machine's own agent and the dashboard, "
               "on 127.0.0.1 with an embedded SQLite database in --data-dir. Prints the dashboard URL, a login, "
               "the database URL and how to add a user. Starting again keeps the data. Stop with Ctrl-C.")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("preview", help="try it: simulated fleet + this machine + dashboard on 127.0.0.1",
                       description=DESCRIPTION)
    p.add_argument("--data-dir", default=DEFAULT_DIR, help=f"where the preview keeps its data (default {DEFAULT_DIR})")
    p.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1 (default 8080; another free one if taken)")
    p.add_argument("--devices", type=int, default=300, help="size of the simulated fleet on first start (300)")
    p.add_argument("--days", type=int, default=30, help="days of simulated history on first start (30)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-this-machine", action="store_true", help="do not enrol this machine's agent")
    p.set_defaults(func=lambda a: run_preview(Path(a.data_dir), a.port, devices=a.devices, days=a.days, seed=a.seed,
                                              this_machine=not a.no_this_machine))
