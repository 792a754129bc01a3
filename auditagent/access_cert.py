"""The agent's side of readiness-gated remote access: its TLS key, the readiness
certificate the collector returns while this device is ready, and putting both where
VPN clients look.

* The TLS key (ECDSA P-256) lives beside the signing key: ``<state>/keys/tls.key``
  (PKCS#8 PEM, 0600). It is registered once with the collector (a certificate request
  signed with the device key, auditagent.tls_request) and never leaves the machine
  except into the OS certificate store below.
* Each accepted report's answer carries ``access``: a certificate (ready) or the reason
  there is none. A certificate is checked (our key, our device id, not expired) before
  it is kept in ``<state>/access/client.crt``; ``<state>/access/state.json`` says what
  happened last, for ``auditagent status``.
* Installing, per OS, through the Host seam:

  - Linux: the files are the installation. Point NetworkManager, OpenVPN or strongSwan
    at ``client.crt`` and ``keys/tls.key`` (docs/remote-access.md); they read them at
    each connection.
  - Windows: a PKCS#12 file (one-time password, removed afterwards) imported into the
    machine store ``Cert:\\LocalMachine\\My`` with ``Import-PfxCertificate`` (key not
    exportable); older readiness certificates of this device are removed from the store.
  - macOS: the same PKCS#12 imported into the System keychain with ``security import``,
    usable by the built-in VPN agent; the previous identity is deleted.

  The Windows and macOS commands cannot run here: tests check the exact commands on a
  recording Host with synthetic outputs.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

# cryptography's serialization, ec and x509 are imported where used: the hourly run of a
# device whose TLS key is registered (or whose collector issues no certificates) needs none.

from auditagent.durable import atomic_write, ensure_dir
from auditagent.keys import KeyProblem, restrict_to_owner

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

TLS_KEY = "tls.key"
ACCESS_DIR = "access"
CERT_FILE = "client.crt"
CA_FILE = "readiness-ca.pem"
STATE_FILE = "state.json"
DEVICE_URI = "urn:auditagent:device:"  # the SAN the collector names the device with (server/readiness_ca.py)
RETRY_UNAVAILABLE = dt.timedelta(hours=24)  # a collector without a readiness CA is asked again after this

WINDOWS_STORE = "Cert:\\LocalMachine\\My"
MACOS_KEYCHAIN = "/Library/Keychains/System.keychain"
MACOS_TRUSTED_APPS = ("/usr/libexec/neagent",)  # the built-in VPN (IKEv2) may use the key

# A constant script: every value reaches it through the environment, none is spliced in.
WINDOWS_IMPORT_SCRIPT = (
    "$ErrorActionPreference = 'Stop'; "
    "$pw = ConvertTo-SecureString -String $env:AUDITAGENT_PFX_PASSWORD -AsPlainText -Force; "
    "$new = Import-PfxCertificate -FilePath $env:AUDITAGENT_PFX -CertStoreLocation '" + WINDOWS_STORE + "' "
    "-Password $pw; "
    "Get-ChildItem -Path '" + WINDOWS_STORE + "' | Where-Object { $_.Subject -eq $new.Subject -and "
    "$_.Issuer -like 'CN=auditagent readiness CA*' -and $_.Thumbprint -ne $new.Thumbprint } | Remove-Item; "
    "Write-Output $new.Thumbprint"
)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


# ------------------------------------------------------------------ the TLS key


@dataclass(frozen=True)
class TlsKeyStore:
    """Where the readiness certificate's TLS key is kept."""

    directory: Path  # <state>/keys, beside the signing key

    @property
    def path(self) -> Path:
        return self.directory / TLS_KEY

    def load_or_create(self) -> ec.EllipticCurvePrivateKey:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        if self.path.is_file():
            key = serialization.load_pem_private_key(self.path.read_bytes(), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise KeyProblem(f"{self.path} holds a {type(key).__name__}, not an EC key; move it away")
            return key
        key = ec.generate_private_key(ec.SECP256R1())
        ensure_dir(self.directory, 0o700)
        atomic_write(self.path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()), mode=0o600)
        restrict_to_owner(self.path)
        return key


def public_sha256(key: ec.EllipticCurvePrivateKey) -> str:
    from cryptography.hazmat.primitives import serialization

    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


# ------------------------------------------------------------------ state


def access_dir(state: Path) -> Path:
    return Path(state) / ACCESS_DIR


def load_state(state: Path) -> dict[str, Any]:
    try:
        data = json.loads((access_dir(state) / STATE_FILE).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def save_state(state: Path, data: dict[str, Any]) -> None:
    ensure_dir(access_dir(state), 0o700)
    atomic_write(access_dir(state) / STATE_FILE, json.dumps(data, indent=2, sort_keys=True).encode("utf-8"),
                 mode=0o600)


# ------------------------------------------------------------------ checking what the collector sent


class CertificateRefused(Exception):
    """The certificate the collector sent does not belong to this device's key."""


def check_certificate(pem: str, tls_key: ec.EllipticCurvePrivateKey, device_id: str,
                      now: dt.datetime) -> x509.Certificate:
    from cryptography import x509  # only when a certificate arrives: the hourly run seldom needs it

    try:
        cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise CertificateRefused("not a PEM certificate") from None
    if cert.public_key() != tls_key.public_key():
        raise CertificateRefused("it certifies another key than this device's TLS key")
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        uris = []
    if DEVICE_URI + device_id not in uris:
        raise CertificateRefused(f"it does not name device {device_id}")
    if cert.not_valid_after_utc <= now:
        raise CertificateRefused(f"it expired at {cert.not_valid_after_utc.isoformat()}")
    return cert


def thumbprint(cert: x509.Certificate) -> str:
    """SHA-1 of the DER certificate, upper-case hex: how Windows and macOS name it."""
    from cryptography.hazmat.primitives import hashes

    return cert.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - an identifier, not a security use


# ------------------------------------------------------------------ installing (through the Host seam)


@dataclass
class Installed:
    """Where a readiness certificate was installed, and whether that worked."""

    where: str  # "files" | "windows-machine-store" | "macos-system-keychain"
    ok: bool
    detail: str = ""


def pkcs12_bytes(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, password: bytes) -> bytes:
    # SHA1/3DES PBE: what Import-PfxCertificate on older Windows and macOS `security import` read.
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    encryption = (serialization.PrivateFormat.PKCS12.encryption_builder().kdf_rounds(50000)
                  .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC).hmac_hash(hashes.SHA1())
                  .build(password))
    return pkcs12.serialize_key_and_certificates(b"auditagent readiness", key, cert, None, encryption)


def windows_import(pfx: Path, password: str) -> tuple[list[str], dict[str, str]]:
    return (["powershell.exe", "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-Command",
             WINDOWS_IMPORT_SCRIPT], {"AUDITAGENT_PFX": str(pfx), "AUDITAGENT_PFX_PASSWORD": password})


def macos_import(p12: Path, password: str) -> list[str]:
    argv = ["/usr/bin/security", "import", str(p12), "-k", MACOS_KEYCHAIN, "-f", "pkcs12", "-P", password]
    for app in MACOS_TRUSTED_APPS:
        argv += ["-T", app]
    return argv


def macos_delete(old_thumbprint: str) -> list[str]:
    return ["/usr/bin/security", "delete-identity", "-Z", old_thumbprint, MACOS_KEYCHAIN]


def install(host: Any, state: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey,
            previous_thumbprint: str | None) -> Installed:
    """Put the certificate where this OS's VPN clients look (Linux: the files already are)."""
    if host.platform == "linux":
        return Installed("files", True, str(access_dir(state) / CERT_FILE))
    password = secrets.token_urlsafe(24)
    bundle = access_dir(state) / "import.p12"
    atomic_write(bundle, pkcs12_bytes(cert, key, password.encode("ascii")), mode=0o600)
    try:
        if host.platform == "windows":
            argv, env = windows_import(bundle, password)
            res = host.run(argv, timeout=60, env=env)
            printed = res.text().strip().splitlines()
            ok = res.ok and bool(printed) and printed[-1].strip().upper() == thumbprint(cert)
            return Installed("windows-machine-store", ok, "" if ok else res.why_not())
        if host.platform == "macos":
            res = host.run(macos_import(bundle, password), timeout=60)
            if not res.ok:
                return Installed("macos-system-keychain", False, res.why_not())
            if previous_thumbprint and previous_thumbprint != thumbprint(cert):
                host.run(macos_delete(previous_thumbprint), timeout=60)  # gone already is fine
            return Installed("macos-system-keychain", True)
        return Installed("files", False, f"no certificate store known for {host.platform}")
    finally:
        try:
            bundle.unlink()
        except FileNotFoundError:
            pass


# ------------------------------------------------------------------ one run


@dataclass
class AccessRun:
    """What ``auditagent run`` does for access: register the TLS key when needed, catch the
    ``access`` part of the collector's answers, then keep and install the certificate."""

    state: Path
    keys: Path
    device_id: str
    device_key: Any
    host: Any
    log: Any = None
    now: Callable[[], dt.datetime] = _now
    latest: dict[str, Any] | None = field(default=None, init=False)
    _tls_key: Any = field(default=None, init=False, repr=False)

    @property
    def tls_key(self) -> Any:
        """The TLS key, loaded (or made) on first use."""
        if self._tls_key is None:
            self._tls_key = TlsKeyStore(self.keys).load_or_create()
        return self._tls_key

    def _key_file_sha256(self) -> str | None:
        try:
            return hashlib.sha256(TlsKeyStore(self.keys).path.read_bytes()).hexdigest()
        except OSError:
            return None

    def register_if_needed(self, client: Any) -> None:
        from auditagent import report as wire

        st = load_state(self.state)
        # The same key file as when it was registered: registered (no need to load the key).
        file_sha = self._key_file_sha256()
        if file_sha and st.get("registered_key_sha256") and st.get("registered_key_file_sha256") == file_sha:
            return
        until = st.get("unavailable_until")
        if until and wire.parse_time(until) and wire.parse_time(until) > self.now():  # type: ignore[operator]
            return
        sha = public_sha256(self.tls_key)
        if st.get("registered_key_sha256") == sha:
            st["registered_key_file_sha256"] = self._key_file_sha256()
            save_state(self.state, st)
            return
        from auditagent import tls_request  # x509: only when the key is (re-)registered

        envelope = tls_request.sign_request(device_id=self.device_id, device_key=self.device_key, tls_key=self.tls_key)
        try:
            r = client.request("PUT", f"/v1/devices/{self.device_id}/tls-key",
                               body=json.dumps(envelope, separators=(",", ":")).encode("utf-8"))
        except Exception as exc:  # noqa: BLE001 - access is extra: the report run goes on
            self._note(st, error=f"TLS key not registered: {exc}")
            return
        body = r.json() if isinstance(r.json(), dict) else {}
        if r.status in (200, 201):
            st.update(registered_key_sha256=sha, registered_key_file_sha256=self._key_file_sha256(),
                      unavailable_until=None)
            save_state(self.state, st)
            if isinstance(body.get("access"), dict):
                self.latest = body["access"]
            return
        code, message = r.error()
        if code in ("access_disabled", "not_found"):
            st["unavailable_until"] = (self.now() + RETRY_UNAVAILABLE).isoformat()
        self._note(st, error=f"TLS key not registered ({r.status} {code}): {message}")

    def capture(self, send: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
        """``send`` for deliver_spool that keeps the latest ``access`` answer."""
        def sending(data: bytes) -> Any:
            outcome = send(data)
            got = (getattr(outcome, "extra", None) or {}).get("access")
            if isinstance(got, dict):
                self.latest = got
            return outcome
        return sending

    def finish(self) -> dict[str, Any]:
        """Keep and install the certificate of the latest answer; returns the access state."""
        st = load_state(self.state)
        got = self.latest
        if got is None:
            return st
        now = self.now()
        st["last"] = {"granted": bool(got.get("granted")), "state": got.get("state"), "reason": got.get("reason"),
                      "at": now.isoformat()}
        pem = got.get("certificate")
        if got.get("granted") and isinstance(pem, str):
            try:
                cert = check_certificate(pem, self.tls_key, self.device_id, now)
            except CertificateRefused as exc:
                self._note(st, error=f"certificate from the collector not used: {exc}")
                return st
            from cryptography.hazmat.primitives import serialization

            ensure_dir(access_dir(self.state), 0o700)
            atomic_write(access_dir(self.state) / CERT_FILE, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
            if isinstance(got.get("ca_bundle"), str):
                atomic_write(access_dir(self.state) / CA_FILE, got["ca_bundle"].encode("ascii"), mode=0o644)
            previous = (st.get("certificate") or {}).get("thumbprint")
            done = install(self.host, self.state, cert, self.tls_key, previous)
            st["certificate"] = {"serial": format(cert.serial_number, "x"), "thumbprint": thumbprint(cert),
                                 "not_after": cert.not_valid_after_utc.isoformat(), "installed": done.where,
                                 "install_ok": done.ok, "install_detail": done.detail}
            st["error"] = None
            if self.log is not None:
                self.log.info("access_certificate", serial=st["certificate"]["serial"],
                              not_after=st["certificate"]["not_after"], installed=done.where, ok=done.ok)
        elif self.log is not None:
            self.log.info("access_refused", state=got.get("state"), reason=got.get("reason"))
        save_state(self.state, st)
        return st

    def _note(self, st: dict[str, Any], *, error: str) -> None:
        st["error"] = error
        save_state(self.state, st)
        if self.log is not None:
            self.log.warning("access", error=error)
