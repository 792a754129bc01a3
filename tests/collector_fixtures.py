"""A real collector for tests: ``python -m server.cli serve`` as a subprocess bound to
127.0.0.1 on a free port, over HTTP or HTTPS (a test CA made with cryptography), on
SQLite or on a real PostgreSQL.

Fixtures (module-scoped; loaded by tests/conftest.py through ``pytest_plugins``):

* ``collector_db_url`` — parametrised ``sqlite`` / ``postgresql``; PostgreSQL gets a
  freshly created database per test module (dropped afterwards) from
  ``$AUDITAGENT_TEST_PG_URL`` (skipped only when that is unset; CI sets it).
* ``collector`` — a running collector: ``.url``, ``.db_url``, ``.cli(*args)``,
  ``.client()``, ``.enroll()``, ``.token()``, ``.count(table)``.
* ``tls_files`` — ``.ca``, ``.cert``, ``.key`` (PEM paths; cert for 127.0.0.1/localhost).
* ``tls_collector`` — the same collector API over HTTPS; ``.ca`` is the CA file.

All traffic goes to 127.0.0.1.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest

REPO = Path(__file__).resolve().parents[1]
PG_ENV = "AUDITAGENT_TEST_PG_URL"
DEFAULT_UNIT = "Testförvaltningen/IFO/Ekonomiskt bistånd"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("AUDITAGENT_COLLECTOR_DB", None)
    return env


# ------------------------------------------------------------------ PostgreSQL databases


@contextlib.contextmanager
def fresh_pg_database(base_url: str, prefix: str = "aa_test") -> Iterator[str]:
    """CREATE DATABASE <unique>, yield its URL, DROP it (WITH FORCE) afterwards."""
    from server.db import scratch_database

    with scratch_database(base_url, prefix) as url:
        yield url


def pg_base_url() -> str | None:
    return os.environ.get(PG_ENV) or None


# ------------------------------------------------------------------ TLS


@dataclass(frozen=True)
class TLSFiles:
    ca: Path
    cert: Path
    key: Path


def make_test_ca(directory: Path) -> TLSFiles:
    """A throwaway CA and a server certificate for 127.0.0.1 and localhost."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "auditagent test CA")])
    ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                            content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False, encipher_only=False,
                                            decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
               .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    files = TLSFiles(directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    files.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
    files.key.chmod(0o600)
    return files


# ------------------------------------------------------------------ devices and reports


@dataclass
class EnrolledDevice:
    """A device enrolled through the API, with its private key; ``sign()`` makes reports."""

    id: str
    key: Any  # Ed25519PrivateKey
    unit: str
    keyid: str
    hostname: str = "test-laptop"
    next_sequence: int = 1

    def predicate(self, sequence: int | None = None, **overrides: Any) -> dict[str, Any]:
        from auditagent import report as wire

        if sequence is None:
            sequence = self.next_sequence
            self.next_sequence += 1
        pred = wire.build_predicate(
            device={"id": self.id, "hostname": self.hostname, "serial": "SN-TEST", "os": "Debian GNU/Linux 12",
                    "platform": "linux"},
            agent_version="0.1.0",
            policy={"id": "baseline", "version": "1.0.0", "sha256": "ab" * 32},
            facts={"disk": {"status": "ok", "volumes": [{"mount": "/", "role": "system", "encrypted": True}]}},
            results=[{"check_id": "disk-encrypted", "status": "pass"}],
            verdict="ready", sequence=sequence, generated_at=wire.now_iso())
        pred.update(overrides)
        return pred

    def statement(self, sequence: int | None = None, **overrides: Any) -> dict[str, Any]:
        from auditagent import report as wire

        return wire.build_statement(device_id=self.id, public_key=self.key.public_key(),
                                    predicate=self.predicate(sequence, **overrides))

    def sign(self, sequence: int | None = None, **overrides: Any) -> dict[str, Any]:
        """A signed report envelope (next sequence unless given)."""
        from auditagent import report as wire

        return wire.sign_envelope(self.statement(sequence, **overrides), self.key)

    def policy_headers(self, *, key: Any = None, issued_at: str | None = None) -> dict[str, str]:
        """The headers the agent sends for this device's policy, signed with ``key``
        (default: the device's own)."""
        from auditagent import signed_request

        return {"Authorization": signed_request.authorization(
            device_id=self.id, method="GET", path=signed_request.policy_path(self.id), device_key=key or self.key,
            issued_at=issued_at)}


# ------------------------------------------------------------------ the collector process


@dataclass
class Collector:
    db_url: str
    workdir: Path
    host: str = "127.0.0.1"
    port: int = 0
    tls: TLSFiles | None = None
    extra_args: tuple[str, ...] = ()
    proc: subprocess.Popen | None = None
    _store: Any = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    @property
    def ca(self) -> Path | None:
        return self.tls.ca if self.tls else None

    @property
    def verify(self) -> Any:
        """httpx ``verify=``: an SSL context trusting the test CA, or True for plain HTTP."""
        if not self.tls:
            return True
        import ssl

        return ssl.create_default_context(cafile=str(self.tls.ca))

    @property
    def log_path(self) -> Path:
        return self.workdir / f"collector-{self.port}.log"

    def start(self, timeout: float = 300.0, port: int | None = None) -> "Collector":
        """Start on a free port (or on ``port``, which the caller chose first because
        something else must know it in advance, e.g. an OpenID provider's redirect URI).

        ``timeout`` only bounds a start that hangs: a collector that exits fails at once
        (the loop polls the process). At load 15+ on a 2-core machine a single-worker
        collector was seen to need more than 60 s to import, migrate and answer."""
        import httpx

        last_err = ""
        for _attempt in range(1 if port else 3):
            self.port = port or free_port()
            args = [sys.executable, "-m", "server.cli", "serve", "--db", self.db_url, "--host", self.host,
                    "--port", str(self.port), "--log-level", "warning", *self.extra_args]
            if self.tls:
                args += ["--tls-cert", str(self.tls.cert), "--tls-key", str(self.tls.key)]
            log = open(self.log_path, "wb")
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=_env(), cwd=self.workdir)
            log.close()
            deadline = time.monotonic() + timeout
            verify = self.verify
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    # Each try may wait long: at load 20+ a collector still warming up took more
                    # than 2 s per answer, and a 2 s client gave up on every one of them.
                    r = httpx.get(self.url + "/healthz", verify=verify, timeout=30)
                    if r.status_code == 200:
                        return self
                except httpx.HTTPError as exc:
                    last_err = repr(exc)
                time.sleep(0.1)
            self.stop()
            out = self.log_path.read_text(errors="replace")[-4000:]
            # Taken between free_port() and the bind: serve's own check says "the port is in
            # use"; uvicorn, if it lost the race after that check, "address already in use".
            if not any(says in out.lower() for says in ("address already in use", "the port is in use")):
                raise RuntimeError(f"collector did not become healthy ({last_err}); log:\n{out}")
        raise RuntimeError("collector could not bind a free port")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self._store is not None:
            self._store.engine.dispose()
            self._store = None

    # -- administration

    def cli(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
        """Run ``auditagent-collector ARGS --db <this db>``; stdout/stderr as text."""
        proc = subprocess.run([sys.executable, "-m", "server.cli", *args, "--db", self.db_url], capture_output=True,
                              text=True, env=_env(), cwd=self.workdir, input=input, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"collector CLI {args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    @property
    def store(self) -> Any:
        """An in-process Store on the same database (fast set-up and inspection)."""
        if self._store is None:
            from server.db import make_engine
            from server.store import Store

            self._store = Store(make_engine(self.db_url, pool_size=2, max_overflow=5))
        return self._store

    @property
    def engine(self) -> Any:
        return self.store.engine

    def count(self, table: str, **where: Any) -> int:
        from sqlalchemy import text

        clause = " AND ".join(f"{k} = :{k}" for k in where)
        with self.engine.connect() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {table}" + (f" WHERE {clause}" if clause else "")),
                                    where).scalar_one())

    def counts(self) -> dict[str, int]:
        return {t: self.count(t) for t in ("reports", "devices", "device_keys", "enrolment_tokens")}

    def token(self, unit: str = DEFAULT_UNIT, *, uses: int = 1, expires_in: dt.timedelta = dt.timedelta(hours=1)) -> str:
        self.store.add_unit(unit)
        token, _ = self.store.create_token(unit, expires_in=expires_in, uses=uses)
        return token

    # -- HTTP

    def client(self, **kwargs: Any) -> Any:
        import httpx

        kwargs.setdefault("timeout", 30)
        return httpx.Client(base_url=self.url, verify=self.verify, **kwargs)

    def enroll(self, unit: str = DEFAULT_UNIT, *, token: str | None = None, key: Any = None,
               device_id: str | None = None, hostname: str = "test-laptop",
               current_key: Any = None) -> EnrolledDevice:
        """Enrol a new device; with ``device_id`` and ``current_key``, re-key that device
        (the request carries a rekey proof signed with ``current_key``)."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        from auditagent import report as wire

        key = key or Ed25519PrivateKey.generate()
        body = {"token": token or self.token(unit), "public_key": wire.public_key_pem(key.public_key()),
                "device": {"hostname": hostname, "serial": "SN-TEST", "os": "Debian GNU/Linux 12",
                           "platform": "linux"}}
        if device_id:
            body["device_id"] = device_id
            if current_key is not None:
                body["rekey_proof"] = wire.sign_rekey(device_id, key.public_key(), current_key)
        with self.client() as c:
            r = c.post("/v1/enroll", json=body)
        assert r.status_code == 201, r.text
        data = r.json()
        return EnrolledDevice(id=data["device_id"], key=key, unit=data["unit"], keyid=data["keyid"],
                              hostname=hostname, next_sequence=data["next_sequence"])


def start_collector(db_url: str, workdir: Path, *, tls: TLSFiles | None = None,
                    extra_args: tuple[str, ...] = ()) -> Collector:
    workdir.mkdir(parents=True, exist_ok=True)
    return Collector(db_url=db_url, workdir=workdir, tls=tls, extra_args=extra_args).start()


def migrated_app(db_url: str, *, max_overflow: int = 4) -> Any:
    """The collector's FastAPI app on a database brought to the newest schema first."""
    from server import migrate
    from server.app import Settings, create_app
    from server.db import make_engine

    engine = make_engine(db_url, pool_size=1, max_overflow=0)
    migrate.upgrade(engine)
    engine.dispose()
    return create_app(Settings(db_url=db_url, pool_size=2, max_overflow=max_overflow))


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def collector_db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('collector-sqlite') / 'collector.db'}"
        return
    base = pg_base_url()
    if not base:
        pytest.skip(f"{PG_ENV} is not set (CI sets it with .ci/start-postgres.sh)")
    with fresh_pg_database(base) as url:
        yield url


@pytest.fixture(scope="module")
def collector(collector_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    c = start_collector(collector_db_url, tmp_path_factory.mktemp("collector"))
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return make_test_ca(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls_collector(collector_db_url: str, tls_files: TLSFiles,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    c = start_collector(collector_db_url, tmp_path_factory.mktemp("collector-tls"), tls=tls_files)
    try:
        yield c
    finally:
        c.stop()


# ------------------------------------------------------------------ raw HTTP


def raw_http(collector: Collector, head: bytes, body: bytes) -> bytes:
    """Send ``head + body`` on a raw socket, half-close, and read until the server closes
    (a reset ends the reading; what arrived before it is returned)."""
    from urllib.parse import urlsplit

    u = urlsplit(collector.url)
    with socket.create_connection((u.hostname, u.port), timeout=10) as s:
        s.sendall(head + body)
        s.shutdown(socket.SHUT_WR)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    return out


def refused_while_sending(collector: Collector, declared: int, sent: int) -> tuple[int, str]:
    """POST /v1/reports declaring ``declared`` bytes and sending ``sent`` bytes of a body the
    collector refuses, all of it before reading: the (status, error code) of the first
    answer. A server that closes on the unread rest resets the connection, and the
    answer is lost (an empty read, or the send fails)."""
    import json

    head = (f"POST /v1/reports HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {declared}\r\nConnection: close\r\n\r\n").encode()
    out = raw_http(collector, head, b"{" + b"x" * (sent - 1))
    assert out.startswith(b"HTTP/1.1 "), out[:300]
    head_out, rest = out.split(b"\r\n\r\n", 1)
    length = int(next(line.split(b":", 1)[1] for line in head_out.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    return int(out.split(b" ", 2)[1]), json.loads(rest[:length])["error"]["code"]
