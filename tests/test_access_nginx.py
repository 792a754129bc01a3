"""Readiness opens the door, for real: nginx (Debian's, unprivileged, on 127.0.0.1) runs
the shipped packaging/gateway/nginx-readiness-gate.conf — ``ssl_verify_client on``
trusting the collector's readiness CA — in front of a stand-in case system; real agents
(``python -m auditagent.cli``) enrol with a real collector and run on a replayed laptop.

* A ready agent reaches the case system with the certificate its run received.
* The same laptop, its disk no longer encrypted: its next run gets no renewal; the
  gateway that asks (auth_request → /v1/gateway/check) refuses it at once, the one that
  trusts the certificate alone once it has expired (lifetime 8 s here).
* A certificate from another CA (even under the same name), an expired one, none at all,
  and one of a device IT revoked: refused, with a page telling staff what to do.

The config is used as shipped, with only ports, file paths, upstream addresses and the
token swapped for the test's (each swap must hit).
"""
from __future__ import annotations

import datetime as dt
import http.server
import json
import os
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from collector_fixtures import free_port, make_test_ca, start_collector
from conftest import REPO
from nginx_harness import adapt, needs_nginx, running_nginx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from server.readiness_ca import ReadinessCA, build_client_certificate, init_ca

CONF = REPO / "packaging" / "gateway" / "nginx-readiness-gate.conf"
GATE = REPO / "tests" / "fixtures" / "hosts" / "linux-gate"
# Long enough for what each test does while its laptop's certificate must still be valid
# (an agent run, requests through nginx, a collector CLI call): at load 15 on 2 cores that
# took up to 30 s, and with 8 s the later steps met an expired certificate instead. The
# tests then wait out the rest of it, from the certificate's own not-after.
LIFETIME_S = 60

pytestmark = [needs_nginx]


def adapt_gate(conf: str, *, port: int, ask_port: int, case_port: int, collector_port: int, tls, ca_bundle: Path,
               token: str) -> str:
    return adapt(conf, [
        (r"listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;"),
        (r"listen 8443 ssl;", f"listen 127.0.0.1:{ask_port} ssl;"),
        (r"server 127\.0\.0\.1:9000;", f"server 127.0.0.1:{case_port};"),
        (r"ssl_certificate +/etc/ssl/case/fullchain\.pem;", f"ssl_certificate {tls.cert};"),
        (r"ssl_certificate_key +/etc/ssl/case/privkey\.pem;", f"ssl_certificate_key {tls.key};"),
        (r"ssl_client_certificate /etc/nginx/readiness-ca\.pem;", f"ssl_client_certificate {ca_bundle};"),
        (r"proxy_pass https://audit\.example\.org/v1/gateway/check;",
         f"proxy_pass http://127.0.0.1:{collector_port}/v1/gateway/check;"),
        (r"Bearer GATEWAY_API_TOKEN", f"Bearer {token}"),
    ], CONF.name, exactly_once=False)


class CaseSystem(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        body = f"case files; subject {self.headers.get('X-Readiness-Subject')}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    work = tmp_path_factory.mktemp("gate-nginx")
    init_ca(work / "ca", "Testkommunen")
    collector = start_collector(f"sqlite:///{work / 'collector.db'}", work / "collector",
                                extra_args=("--readiness-ca", str(work / "ca"), "--certificate-lifetime",
                                            f"{LIFETIME_S}s"))
    # The gateway's API token (server/api_tokens.py).
    token = collector.cli("api-token", "create", "case-gateway", "--role", "security_officer").stdout.split()[-1]
    case = http.server.ThreadingHTTPServer(("127.0.0.1", 0), CaseSystem)
    threading.Thread(target=case.serve_forever, daemon=True).start()
    tls = make_test_ca(work / "tls")
    bundle = work / "readiness-ca.pem"
    with httpx.Client(timeout=30) as h:  # what a gateway's timer fetches
        bundle.write_bytes(h.get(collector.url + "/v1/readiness-ca.pem").raise_for_status().content)
    port, ask_port = free_port(), free_port()
    site = adapt_gate(CONF.read_text(), port=port, ask_port=ask_port, case_port=case.server_address[1],
                      collector_port=collector.port, tls=tls, ca_bundle=bundle, token=token)
    try:
        with running_nginx(work / "prefix", site, wait_port=ask_port, site_name="gate.conf"):
            yield {"gate": f"https://127.0.0.1:{port}", "ask": f"https://127.0.0.1:{ask_port}", "tls": tls,
                   "collector": collector, "ca": ReadinessCA(work / "ca"), "work": work, "token": token}
    finally:
        case.shutdown()
        collector.stop()


class Laptop:
    """A real agent installation (AUDITAGENT_HOME) judging a replayed laptop."""

    def __init__(self, home: Path) -> None:
        self.home = home
        home.mkdir(parents=True)
        (home / "agent.yaml").write_text(f"policy: {GATE / 'policy.yaml'}\nsend_attempts: 2\nsend_timeout: 15\n")

    def __call__(self, *args: str, host: str = "ready", expect=(0,)) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITAGENT_")}
        env.update(AUDITAGENT_HOME=str(self.home), PYTHONPATH=str(REPO))
        proc = subprocess.run([sys.executable, "-m", "auditagent.cli", *args, "--replay-host",
                               str(GATE / f"host-{host}.yaml")], env=env, capture_output=True, text=True,
                              timeout=180, check=False)
        assert proc.returncode in expect, f"auditagent {args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        return proc

    @property
    def device_id(self) -> str:
        return json.loads((self.home / "enrollment.json").read_text())["device_id"]

    @property
    def cert_path(self) -> Path:
        return self.home / "access" / "client.crt"  # the documented Linux paths (docs/remote-access.md)

    @property
    def key_path(self) -> Path:
        return self.home / "keys" / "tls.key"

    def cert(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_path.read_bytes())

    def access_state(self) -> dict:
        return json.loads((self.home / "access" / "state.json").read_text())


def enrolled_laptop(stack, tmp_path, name: str) -> Laptop:
    unit = f"Testförvaltningen/Gate/{name}"
    c = stack["collector"]
    laptop = Laptop(tmp_path / name)
    laptop("enroll", "--server", c.url, "--token", c.token(unit))
    return laptop


def get(url: str, stack, cert: Path | None = None, key: Path | None = None) -> httpx.Response:
    """One request on a fresh TLS connection (no session resumption) to the gateway."""
    ctx = ssl.create_default_context(cafile=str(stack["tls"].ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key))
    with httpx.Client(verify=ctx, timeout=30) as h:
        return h.get(url + "/case/42")


def wait_until_expired(cert: x509.Certificate) -> None:
    delay = (cert.not_valid_after_utc - dt.datetime.now(dt.timezone.utc)).total_seconds() + 1.5
    time.sleep(max(0.0, delay))


def test_ready_laptop_gets_in_and_loses_access_when_its_disk_check_fails(stack, tmp_path):
    laptop = enrolled_laptop(stack, tmp_path, "Ready")
    r = laptop("run")
    assert "(ready)" in r.stdout
    cert = laptop.cert()
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds() <= LIFETIME_S + 61
    for url in (stack["gate"], stack["ask"]):
        r = get(url, stack, laptop.cert_path, laptop.key_path)
        assert r.status_code == 200, r.text
        assert r.text.startswith("case files") and laptop.device_id in r.text
    # The disk is no longer encrypted: the next run is not ready and brings no renewal.
    r = laptop("run", host="disk-failing", expect=(0, 1))
    assert "(not_ready)" in r.stdout
    assert laptop.cert().serial_number == cert.serial_number
    last = laptop.access_state()["last"]
    assert last["granted"] is False and "disk-encryption" in last["reason"]
    status = laptop("status").stdout
    assert "access:       certificate until" in status and "required checks not met: disk-encryption" in status
    # The gateway that asks refuses at once, and says why.
    r = get(stack["ask"], stack, laptop.cert_path, laptop.key_path)
    assert r.status_code == 403 and "disk-encryption" in r.text and "auditagent check" in r.text, r.text
    # The certificate alone: refused once it has expired.
    wait_until_expired(cert)
    for url in (stack["gate"], stack["ask"]):
        r = get(url, stack, laptop.cert_path, laptop.key_path)
        assert r.status_code == 403 and "expired" in r.text and "auditagent check" in r.text, r.text
    # Fixed: the next run brings a new certificate and the door opens again.
    laptop("run")
    assert laptop.cert().serial_number != cert.serial_number
    assert get(stack["gate"], stack, laptop.cert_path, laptop.key_path).status_code == 200


def test_other_ca_none_and_expired_are_refused(stack, tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    key_path = tmp_path / "k.pem"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    now = dt.datetime.now(dt.timezone.utc)
    # Another CA with the very same name as ours.
    other = init_ca(tmp_path / "other", "Testkommunen")
    forged = other.issue(key.public_key(), device_id="any", unit="Testförvaltningen/Gate", policy_sha256=None,
                         not_after=now + dt.timedelta(hours=1), now=now)
    assert forged.issuer == stack["ca"].signer(now).certificate.subject
    # Ours, but expired.
    signer = stack["ca"].signer(now)
    expired = build_client_certificate(key.public_key(), issuer=signer.certificate, issuer_key=signer.private_key(),
                                       device_id="any", unit="Testförvaltningen/Gate", policy_sha256=None,
                                       not_before=now - dt.timedelta(minutes=10), not_after=now - dt.timedelta(seconds=30))
    for name, c in (("forged", forged), ("expired", expired)):
        (tmp_path / f"{name}.crt").write_bytes(c.public_bytes(serialization.Encoding.PEM))
    for url in (stack["gate"], stack["ask"]):
        r = get(url, stack, tmp_path / "forged.crt", key_path)
        assert r.status_code == 403 and "not issued by the readiness CA" in r.text, r.text
        r = get(url, stack, tmp_path / "expired.crt", key_path)
        assert r.status_code == 403 and "expired" in r.text
        r = get(url, stack)
        assert r.status_code == 403 and "missing" in r.text


def test_revoked_device_is_refused(stack, tmp_path):
    laptop = enrolled_laptop(stack, tmp_path, "Revoked")
    laptop("run")
    assert get(stack["ask"], stack, laptop.cert_path, laptop.key_path).status_code == 200
    stack["collector"].cli("device", "revoke", laptop.device_id, "--reason", "stolen")
    # Asked: refused at once.
    r = get(stack["ask"], stack, laptop.cert_path, laptop.key_path)
    assert r.status_code == 403 and "revoked" in r.text
    # Its next run is refused by the collector, so no renewal; the certificate alone lets it
    # in no longer than its lifetime.
    laptop("run", expect=(0, 1))
    cert = laptop.cert()
    wait_until_expired(cert)
    r = get(stack["gate"], stack, laptop.cert_path, laptop.key_path)
    assert r.status_code == 403 and "expired" in r.text


def test_gateway_endpoint_needs_its_token(stack):
    url = stack["collector"].url + "/v1/gateway/check"
    with httpx.Client(timeout=30) as h:
        assert h.get(url, headers={"X-Device-Id": "x"}).status_code == 401
        assert h.get(url, headers={"X-Device-Id": "x", "Authorization": "Bearer wrong"}).status_code == 401
        r = h.get(url, headers={"X-Device-Id": "no-such", "Authorization": f"Bearer {stack['token']}"})
        assert r.status_code == 403 and r.headers["x-readiness-state"] == "unknown_device"
        r = h.get(url, headers={"Authorization": f"Bearer {stack['token']}"})
        assert r.status_code == 400
