"""Signed policies and TLS, end to end against a real collector on 127.0.0.1.

* The organisation signs a policy (``auditagent policy keygen/sign``), IT sets it for a
  unit on the collector; ``auditagent run`` fetches it, verifies it against
  ``policy_public_key``, caches it (ETag, 304) and judges by it; ``check`` uses the
  cached copy without the network. A policy signed by another key, altered after
  signing, or unsigned is refused and reported as a failed integrity check — the
  report is still sent, judged by the last good policy.
* HTTPS: verified by default (an unknown CA is refused with a clear error), a CA
  bundle works, a pinned certificate works and a wrong pin is refused.
"""
from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from test_e2e_delivery import HOST, POLICY, AgentHome, predicate_of, stored, unique_unit



def org_keys(agent: AgentHome, tmp_path: Path, name: str = "org") -> tuple[Path, Path]:
    out = tmp_path / name
    r = agent("policy", "keygen", "--out", str(out), replay=False)
    assert "key id:" in r.stdout
    return out / "policy-signing.key", out / "policy-signing.pub.pem"


def sign(agent: AgentHome, key: Path, policy: Path, out: Path) -> Path:
    agent("policy", "sign", "--key", str(key), str(policy), "--out", str(out), replay=False)
    return out


def modified_policy(tmp_path: Path, version: str) -> Path:
    p = tmp_path / f"policy-{version}.yaml"
    p.write_text(POLICY.read_text().replace('version: "1.0"', f'version: "{version}"'))
    return p


@pytest.fixture
def signed_setup(collector, tmp_path):
    """An enrolled agent whose unit has a signed policy on the collector."""
    agent = AgentHome(tmp_path / "home")
    priv, pub = org_keys(agent, tmp_path)
    agent.write_config({"policy_public_key": str(pub), "send_attempts": 2, "send_timeout": 5})
    unit = unique_unit()
    signed = sign(agent, priv, POLICY, tmp_path / "e2e-os.signed.json")
    collector.cli("unit", "add", unit)
    collector.cli("policy", "set", "--unit", unit, str(signed), "--public-key", str(pub))
    agent.enroll(collector, unit)
    return agent, unit, priv, pub


def test_signed_policy_fetched_verified_cached_and_used_offline(collector, signed_setup, tmp_path):
    agent, unit, priv, pub = signed_setup
    r = agent("run")
    assert "report 1 (ready)" in r.stdout
    pred = predicate_of(stored(collector, agent.device_id)[-1]["envelope"])
    assert pred["policy"]["id"] == "e2e-os" and "integrity" not in pred
    assert (agent.home / "policy" / "current.signed.json").is_file()
    assert json.loads((agent.home / "policy" / "meta.json").read_text())["etag"]

    r = agent("run")  # If-None-Match → 304: the cached copy is used
    assert "304" in r.stderr
    assert predicate_of(stored(collector, agent.device_id)[-1]["envelope"])["policy"]["id"] == "e2e-os"

    # The self-check needs no network and no requests: it uses the verified cache.
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "auditagent.cli", "check", "--json",
                           "--replay-host", str(HOST)], env=agent.env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["policy"]["id"] == "e2e-os"
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "requests" not in imported and "urllib3" not in imported

    # A new version signed by the organisation replaces it.
    v2 = sign(agent, priv, modified_policy(tmp_path, "2.0"), tmp_path / "v2.signed.json")
    collector.cli("policy", "set", "--unit", unit, str(v2))
    agent("run")
    assert predicate_of(stored(collector, agent.device_id)[-1]["envelope"])["policy"]["version"] == "2.0"


def _wrong_key(agent, tmp_path, signed):
    other_priv, _ = org_keys(agent, tmp_path, "intruder")
    return sign(agent, other_priv, modified_policy(tmp_path, "6.6.6"), tmp_path / "evil.signed.json")


def _altered(agent, tmp_path, signed):
    envelope = json.loads(signed.read_text())
    yaml_text = base64.b64decode(envelope["payload"]).decode().replace("severity: required", "severity: recommended")
    envelope["payload"] = base64.b64encode(yaml_text.encode()).decode()
    out = tmp_path / "altered.signed.json"
    out.write_text(json.dumps(envelope))
    return out


def _unsigned(agent, tmp_path, signed):
    envelope = json.loads(signed.read_text())
    yaml_text = modified_policy(tmp_path, "9.9").read_text()
    envelope["payload"] = base64.b64encode(yaml_text.encode()).decode()
    envelope["signatures"] = [{"keyid": "", "sig": ""}]
    out = tmp_path / "unsigned.signed.json"
    out.write_text(json.dumps(envelope))
    return out


@pytest.mark.parametrize("make,code", [(_wrong_key, "unknown_keyid"), (_altered, "bad_signature"),
                                       (_unsigned, "unknown_keyid")])
def test_bad_policy_refused_and_reported_as_integrity_failure(collector, signed_setup, tmp_path, make, code):
    agent, unit, priv, pub = signed_setup
    agent("run")  # the good policy is cached
    bad = make(agent, tmp_path, tmp_path / "e2e-os.signed.json")
    collector.cli("policy", "set", "--unit", unit, str(bad))  # the collector does not hold the key: it serves it
    r = agent("run", expect=1)
    assert "failed its integrity check" in r.stderr and code in r.stderr
    assert "last verified policy (cached)" in r.stderr
    pred = predicate_of(stored(collector, agent.device_id)[-1]["envelope"])
    assert pred["integrity"]["policy_signature"] == "invalid" and pred["integrity"]["code"] == code
    assert pred["policy"]["id"] == "e2e-os" and pred["policy"]["version"] == "1.0"  # judged by the good one
    # The refused policy never replaced the cache.
    cached = json.loads((agent.home / "policy" / "current.signed.json").read_text())
    assert cached == json.loads((tmp_path / "e2e-os.signed.json").read_text())
    status = agent("status").stdout
    assert "INTEGRITY" in status


def test_cache_edited_on_disk_is_refused_by_check_and_reported_by_run(collector, signed_setup, tmp_path):
    agent, unit, priv, pub = signed_setup
    agent("run")
    cache = agent.home / "policy" / "current.signed.json"
    envelope = json.loads(cache.read_text())
    text = base64.b64decode(envelope["payload"]).decode().replace('"22.04"', '"4.10"')
    envelope["payload"] = base64.b64encode(text.encode()).decode()
    cache.write_text(json.dumps(envelope))
    r = agent("check", expect=2)
    assert "refused: the policy is not signed by the organisation's policy key" in r.stderr
    assert str(cache) in r.stderr
    r = agent("run", expect=1)  # fetched anew, and the tampering is reported
    pred = predicate_of(stored(collector, agent.device_id)[-1]["envelope"])
    assert pred["integrity"]["source"] == "cache" and pred["policy"]["id"] == "e2e-os"
    agent("check")  # the fresh copy verifies again


def test_policy_cli_keygen_sign_verify(tmp_path):
    agent = AgentHome(tmp_path / "home")
    priv, pub = org_keys(agent, tmp_path)
    assert oct(priv.stat().st_mode & 0o777) == "0o600"
    r = agent("policy", "keygen", "--out", str(tmp_path / "org"), replay=False, expect=2)
    assert "already exists" in r.stderr
    copy = tmp_path / "mine.yaml"
    copy.write_text(POLICY.read_text())
    r = agent("policy", "sign", "--key", str(priv), str(copy), replay=False)
    signed = tmp_path / "mine.signed.json"
    assert signed.is_file() and "e2e-os 1.0" in r.stdout
    assert "✔" in agent("policy", "verify", "--key", str(pub), str(signed), replay=False).stdout
    _, other_pub = org_keys(agent, tmp_path, "other")
    r = agent("policy", "verify", "--key", str(other_pub), str(signed), replay=False, expect=1)
    assert "unknown_keyid" in r.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(POLICY.read_text().replace("kind: os_supported", "kind: os_suported"))
    r = agent("policy", "sign", "--key", str(priv), str(bad), replay=False, expect=2)
    assert "not a valid policy; not signed" in r.stderr and f"{bad}:" in r.stderr and "os_supported" in r.stderr
    assert not (tmp_path / "bad.signed.json").exists()


# ------------------------------------------------------------------ TLS


def cert_sha256(cert_pem: Path) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(cert_pem.read_bytes())
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def test_tls_verified_by_default(tls_collector, tmp_path):
    agent = AgentHome(tmp_path / "home")
    token = tls_collector.token(unique_unit())
    r = agent("enroll", "--server", tls_collector.url, "--token", token, expect=2)
    assert "TLS: cannot verify the certificate of https://127.0.0.1" in r.stderr
    assert "set ca_bundle (or pinned_sha256)" in r.stderr
    assert not (agent.home / "keys" / "device.key").exists()
    assert token not in r.stderr + r.stdout


def test_tls_with_ca_bundle(tls_collector, tls_files, tmp_path):
    agent = AgentHome(tmp_path / "home")
    agent.enroll(tls_collector, None, "--ca-bundle", str(tls_files.ca))
    assert agent.enrollment["ca_bundle"] == str(tls_files.ca)
    assert "sent 1" in agent("run").stdout
    assert "TLS trust: ca_bundle" in agent("status").stdout
    assert len(stored(tls_collector, agent.device_id)) == 1


def test_tls_with_pinned_certificate_and_wrong_pin(tls_collector, tls_files, tmp_path):
    pin = cert_sha256(tls_files.cert)
    agent = AgentHome(tmp_path / "home")
    agent.enroll(tls_collector, None, "--pin", ":".join(pin[i:i + 2] for i in range(0, 64, 2)).upper())
    assert agent.enrollment["pinned_sha256"] == pin
    assert "sent 1" in agent("run").stdout
    # IT pins a different certificate (e.g. a renewed one): refused, the report stays in the spool.
    agent.write_config({"policy": str(POLICY), "pinned_sha256": "0" * 64, "send_attempts": 2})
    r = agent("run", expect=1)
    assert "does not match pinned_sha256" in r.stderr and "1 waiting in the spool" in r.stdout
    assert len(stored(tls_collector, agent.device_id)) == 1
    other = AgentHome(tmp_path / "other")
    r = other("enroll", "--server", tls_collector.url, "--token", tls_collector.token(unique_unit()),
              "--pin", "ab" * 32, expect=2)
    assert "does not match pinned_sha256" in r.stderr
    # Back to the right pin: the waiting report is delivered.
    agent.write_config({"policy": str(POLICY), "pinned_sha256": pin, "send_attempts": 2})
    assert "sent 2; 0 waiting" in agent("run").stdout


# ------------------------------------------------------------------ behind a proxy (HTTPS_PROXY, NO_PROXY)


class ConnectProxy:
    """A small real HTTP CONNECT proxy on 127.0.0.1, as a municipality's web proxy is to the
    agent: it resolves the collector's name itself (here: every name to 127.0.0.1) and
    relays the TLS bytes it cannot read. Records each CONNECT target."""

    def __init__(self) -> None:
        import socket
        import threading

        self.targets: list[str] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import threading

        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._tunnel, args=(conn,), daemon=True).start()

    def _tunnel(self, client) -> None:
        import socket
        import threading

        with client:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(4096)
                if not chunk:
                    return
                head += chunk
            method, target, _ = head.split(b"\r\n", 1)[0].decode("ascii").split(" ", 2)
            self.targets.append(f"{method} {target}")
            if method != "CONNECT":
                client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                return
            upstream = socket.create_connection(("127.0.0.1", int(target.rsplit(":", 1)[1])), timeout=30)
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")

            def pump(src, dst) -> None:
                try:
                    while data := src.recv(65536):
                        dst.sendall(data)
                except OSError:
                    pass
                finally:
                    try:
                        dst.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass

            with upstream:
                back = threading.Thread(target=pump, args=(upstream, client), daemon=True)
                back.start()
                pump(client, upstream)
                back.join(30)

    def close(self) -> None:
        self.sock.close()


def test_the_agent_reaches_the_collector_through_an_https_proxy(tls_collector, tls_files, tmp_path):
    """HTTPS_PROXY: enrolment, the signed policy request and the report go through CONNECT,
    TLS end to end with the collector (the pin checked through the tunnel)."""
    proxy = ConnectProxy()
    try:
        name = f"audit.kommun.test:{tls_collector.port}"  # resolved by the proxy only
        env = {"HTTPS_PROXY": f"http://127.0.0.1:{proxy.port}", "NO_PROXY": "intranet.kommun.test"}
        agent = AgentHome(tmp_path / "home")
        pin = cert_sha256(tls_files.cert)
        agent("enroll", "--server", f"https://{name}", "--token", tls_collector.token(unique_unit()), "--pin", pin,
              env=env)
        assert "sent 1" in agent("run", env=env).stdout
        assert len(stored(tls_collector, agent.device_id)) == 1
        assert proxy.targets and set(proxy.targets) == {f"CONNECT {name}"}
        # A wrong pin is still refused through the proxy: the tunnel changes nothing about trust.
        agent.write_config({"policy": str(POLICY), "pinned_sha256": "0" * 64, "send_attempts": 2})
        assert "does not match pinned_sha256" in agent("run", env=env, expect=1).stderr
    finally:
        proxy.close()


def test_proxy_choice_follows_the_environment(monkeypatch):
    """https_proxy/HTTPS_PROXY and no_proxy/NO_PROXY as curl, requests and urllib read them;
    loopback is never proxied."""
    from auditagent.send import _proxy_for

    for var in ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "all_proxy",
                "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    assert _proxy_for("https", "audit.kommun.se") is None
    monkeypatch.setenv("https_proxy", "http://proxy.kommun.se:3128")
    assert _proxy_for("https", "audit.kommun.se") == ("proxy.kommun.se", 3128)
    assert _proxy_for("http", "audit.kommun.se") is None  # only the scheme's proxy
    assert _proxy_for("https", "127.0.0.1") is None and _proxy_for("https", "localhost") is None
    monkeypatch.setenv("no_proxy", "intern.kommun.se,.lan")
    assert _proxy_for("https", "audit.intern.kommun.se") is None and _proxy_for("https", "c.lan") is None
    assert _proxy_for("https", "audit.kommun.se") == ("proxy.kommun.se", 3128)
    monkeypatch.delenv("https_proxy")
    monkeypatch.delenv("no_proxy")
    monkeypatch.setenv("HTTPS_PROXY", "proxy2.kommun.se:8080")
    monkeypatch.setenv("NO_PROXY", "*")
    assert _proxy_for("https", "audit.kommun.se") is None
    monkeypatch.setenv("NO_PROXY", "")
    assert _proxy_for("https", "audit.kommun.se") == ("proxy2.kommun.se", 8080)


def _hashed_ca_dir(directory: Path, *cas: Path) -> Path:
    """A CA folder as update-ca-certificates / c_rehash leave it: <subject hash>.0 per CA."""
    directory.mkdir()
    for ca in cas:
        h = subprocess.run(["openssl", "x509", "-hash", "-noout", "-in", str(ca)], capture_output=True, text=True,
                           check=True).stdout.strip()
        (directory / f"{h}.0").write_bytes(ca.read_bytes())
    return directory


def test_system_cas_are_looked_up_in_the_hashed_folder_not_loaded_whole(tls_collector, tls_files, tmp_path,
                                                                        monkeypatch):
    """With the system's CAs (no ca_bundle, no pin) the agent verifies against the system's
    hashed CA folder, reading only the issuer it needs, instead of parsing the whole bundle
    every run; the collector's certificate is verified all the same."""
    from auditagent.send import Client, TransportSettings

    monkeypatch.setenv("SSL_CERT_DIR", str(_hashed_ca_dir(tmp_path / "certs", tls_files.ca)))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "no-bundle.pem"))
    client = Client(TransportSettings(server=tls_collector.url, timeout=10))
    assert client._tls.cert_store_stats()["x509_ca"] == 0  # nothing parsed up front
    assert client.request("GET", "/healthz").status == 200
    assert client._tls.cert_store_stats()["x509_ca"] == 1  # just the collector's issuer
    client.close()


def test_a_ca_only_in_the_system_bundle_is_still_trusted_and_an_unknown_one_refused(tls_collector, tls_files,
                                                                                   tmp_path, monkeypatch):
    """The hashed folder lacks the collector's CA, the bundle has it (added by hand, or
    SSL_CERT_FILE): verified as the default context would, so trusted; in neither: refused."""
    from collector_fixtures import make_test_ca

    from auditagent.send import Client, TransportError, TransportSettings

    other = make_test_ca(tmp_path / "other")
    monkeypatch.setenv("SSL_CERT_DIR", str(_hashed_ca_dir(tmp_path / "certs", other.ca)))
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files.ca))
    client = Client(TransportSettings(server=tls_collector.url, timeout=10))
    assert client.request("GET", "/healthz").status == 200
    client.close()
    monkeypatch.setenv("SSL_CERT_FILE", str(other.ca))
    client = Client(TransportSettings(server=tls_collector.url, timeout=10))
    with pytest.raises(TransportError, match="cannot verify the certificate"):
        client.request("GET", "/healthz")
