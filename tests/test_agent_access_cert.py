"""The agent's readiness certificate (auditagent/access_cert.py): its TLS key 0600 beside
the signing key; a certificate from the collector kept only if it is for this key and
this device and not expired; installed per OS through the Host seam.

Windows (Import-PfxCertificate into the machine store) and macOS (``security import``
into the System keychain) cannot run here: these tests check the exact commands on a
recording Host — the PKCS#12 handed over is opened with the password the command got and
must hold exactly this certificate and key, and is gone afterwards — with synthetic
outputs (what those commands print is a thumbprint / a count, no capture is needed to
parse it). Linux is the files themselves (tests/test_access_nginx.py uses them for real).
"""
from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12

from auditagent import access_cert
from auditagent.host import CommandResult
from server.readiness_ca import init_ca

NOW = dt.datetime.now(dt.timezone.utc)


class RecordingHost:
    """A Host that records each command, looks at the PKCS#12 it names, and answers as told."""

    def __init__(self, platform: str, answer=None) -> None:
        self.platform = platform
        self.calls: list[dict] = []
        self.answer = answer or (lambda argv, env: CommandResult(tuple(argv), 0, b""))

    def run(self, argv, timeout=10.0, env=None, input=None):
        argv = list(argv)
        p12 = (env or {}).get("AUDITAGENT_PFX") or next((a for a in argv if a.endswith(".p12")), None)
        self.calls.append({"argv": argv, "env": dict(env or {}), "p12": Path(p12).read_bytes() if p12 else None,
                           "p12_mode": stat.S_IMODE(Path(p12).stat().st_mode) if p12 else None})
        return self.answer(argv, env or {})


@pytest.fixture()
def issued(tmp_path):
    ca = init_ca(tmp_path / "ca", now=NOW - dt.timedelta(minutes=10))
    key = access_cert.TlsKeyStore(tmp_path / "state" / "keys").load_or_create()

    def issue(device_id="dev-1", *, public_key=None, not_after=None):
        return ca.issue(public_key or key.public_key(), device_id=device_id, unit="U/A", policy_sha256="cd" * 32,
                        not_after=not_after or NOW + dt.timedelta(hours=1), now=NOW - dt.timedelta(minutes=5))
    return tmp_path / "state", key, issue


def test_tls_key_is_owner_only_beside_the_signing_key_and_stable(tmp_path):
    store = access_cert.TlsKeyStore(tmp_path / "keys")
    key = store.load_or_create()
    assert store.path == tmp_path / "keys" / "tls.key"
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert isinstance(key.curve, ec.SECP256R1)
    assert store.load_or_create().public_key() == key.public_key()


def test_certificate_checks(issued):
    from cryptography.hazmat.primitives import serialization

    _state, key, issue = issued
    pem = lambda c: c.public_bytes(serialization.Encoding.PEM).decode()  # noqa: E731
    assert access_cert.check_certificate(pem(issue()), key, "dev-1", NOW).serial_number
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(access_cert.CertificateRefused, match="another key"):
        access_cert.check_certificate(pem(issue(public_key=other.public_key())), key, "dev-1", NOW)
    with pytest.raises(access_cert.CertificateRefused, match="does not name device dev-1"):
        access_cert.check_certificate(pem(issue("dev-2")), key, "dev-1", NOW)
    with pytest.raises(access_cert.CertificateRefused, match="expired"):
        access_cert.check_certificate(pem(issue(not_after=NOW - dt.timedelta(minutes=1))), key, "dev-1", NOW)
    with pytest.raises(access_cert.CertificateRefused, match="not a PEM"):
        access_cert.check_certificate("garbage", key, "dev-1", NOW)


def _opened(call, password_of) -> tuple:
    key, cert, extra = pkcs12.load_key_and_certificates(call["p12"], password_of(call).encode())
    return key, cert, extra


def test_windows_imports_into_the_machine_store_with_a_constant_script(issued):
    state, key, issue = issued
    cert = issue()
    host = RecordingHost("windows", lambda argv, env: CommandResult(
        tuple(argv), 0, (access_cert.thumbprint(cert) + "\r\n").encode("utf-16")))  # PowerShell redirected: UTF-16
    done = access_cert.install(host, state, cert, key, previous_thumbprint="AA" * 20)
    assert done.ok and done.where == "windows-machine-store"
    [call] = host.calls
    assert call["argv"][:6] == ["powershell.exe", "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass",
                                "-Command"]
    script = call["argv"][6]
    assert script == access_cert.WINDOWS_IMPORT_SCRIPT  # nothing spliced in: values come by environment
    assert "Import-PfxCertificate" in script and "Cert:\\LocalMachine\\My" in script and "-Exportable" not in script
    password = call["env"]["AUDITAGENT_PFX_PASSWORD"]
    assert password not in " ".join(call["argv"])
    got_key, got_cert, extra = _opened(call, lambda c: password)
    assert got_cert == cert and got_key.public_key() == key.public_key() and extra == []
    assert call["p12_mode"] == 0o600
    assert not Path(call["env"]["AUDITAGENT_PFX"]).exists()  # removed after the import


def test_windows_import_that_prints_another_thumbprint_or_fails_is_not_ok(issued):
    state, key, issue = issued
    cert = issue()
    wrong = RecordingHost("windows", lambda argv, env: CommandResult(tuple(argv), 0, b"0123ABCD\r\n"))
    assert not access_cert.install(wrong, state, cert, key, None).ok
    failed = RecordingHost("windows", lambda argv, env: CommandResult(
        tuple(argv), 1, b"", b"Import-PfxCertificate : Access is denied.\r\n"))
    done = access_cert.install(failed, state, cert, key, None)
    assert not done.ok and "Access is denied" in done.detail
    assert not list((state / "access").glob("*.p12"))


def test_macos_imports_into_the_system_keychain_and_deletes_the_previous_identity(issued):
    state, key, issue = issued
    cert = issue()
    host = RecordingHost("macos", lambda argv, env: CommandResult(tuple(argv), 0, b"1 identity imported.\n"))
    done = access_cert.install(host, state, cert, key, previous_thumbprint="AB" * 20)
    assert done.ok and done.where == "macos-system-keychain"
    imp, delete = host.calls
    argv = imp["argv"]
    assert argv[:2] == ["/usr/bin/security", "import"] and argv[3:7] == ["-k", "/Library/Keychains/System.keychain",
                                                                        "-f", "pkcs12"]
    assert argv[argv.index("-T") + 1] == "/usr/libexec/neagent"
    got_key, got_cert, _ = _opened(imp, lambda c: c["argv"][c["argv"].index("-P") + 1])
    assert got_cert == cert and got_key.public_key() == key.public_key()
    assert delete["argv"] == ["/usr/bin/security", "delete-identity", "-Z", "AB" * 20,
                              "/Library/Keychains/System.keychain"]
    assert not Path(argv[2]).exists()
    # The same certificate again: nothing to delete.
    host.calls.clear()
    access_cert.install(host, state, cert, key, previous_thumbprint=access_cert.thumbprint(cert))
    assert [c["argv"][1] for c in host.calls] == ["import"]


def test_linux_is_the_files(issued):
    state, key, issue = issued
    host = RecordingHost("linux")
    done = access_cert.install(host, state, issue(), key, None)
    assert done.ok and done.where == "files" and host.calls == []


def test_a_run_keeps_only_a_good_certificate_and_records_refusals(issued, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    state, key, issue = issued
    run = access_cert.AccessRun(state=state, keys=state / "keys", device_id="dev-1",
                                device_key=Ed25519PrivateKey.generate(), host=RecordingHost("linux"))
    assert run.tls_key.public_key() == key.public_key()
    cert = issue()
    run.latest = {"granted": True, "state": "ready", "reason": "ready",
                  "certificate": cert.public_bytes(serialization.Encoding.PEM).decode(), "ca_bundle": "CA\n"}
    st = run.finish()
    assert (state / "access" / "client.crt").read_bytes() == cert.public_bytes(serialization.Encoding.PEM)
    assert st["certificate"]["thumbprint"] == access_cert.thumbprint(cert)
    # A certificate for another device is not kept; the good one stays.
    run.latest = {"granted": True, "state": "ready", "reason": "ready",
                  "certificate": issue("dev-2").public_bytes(serialization.Encoding.PEM).decode()}
    st = run.finish()
    assert "does not name device dev-1" in st["error"]
    assert (state / "access" / "client.crt").read_bytes() == cert.public_bytes(serialization.Encoding.PEM)
    # Refused: the reason is kept for `auditagent status`.
    run.latest = {"granted": False, "state": "not_ready", "reason": "required checks not met: disk-encryption"}
    st = run.finish()
    assert st["last"]["granted"] is False and "disk-encryption" in st["last"]["reason"]
    assert stat.S_IMODE((state / "access" / "state.json").stat().st_mode) == 0o600
