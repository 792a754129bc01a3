"""The readiness CA: a small certificate authority that signs short-lived TLS client
certificates for devices that are ready, so a VPN or reverse proxy can let in only
those (see docs/remote-access.md).

On disk (``auditagent-collector ca init --dir DIR``; the folder 0700, keys 0600)::

    DIR/ca.json      the generations: number, created_at, activate_at
    DIR/ca-N.key     generation N's private key (ECDSA P-256, PKCS#8 PEM), 0600
    DIR/ca-N.pem     generation N's self-signed CA certificate

Rotation with overlap (``ca rotate``): a new generation is written at once and goes into
the trust bundle gateways fetch (``GET /v1/readiness-ca.pem`` or ``ca bundle``), but it
signs only from ``activate_at`` (default: 24 h later), giving gateways a day to pick it
up. The generation it replaces keeps signing until then and stays in the bundle until
every certificate it signed has expired (``MAX_LIFETIME`` after its successor took over).

Certificates are built with ``cryptography``'s builders only; key bytes never reach a log.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

MAX_LIFETIME = dt.timedelta(hours=24)  # a readiness certificate never lives longer
MIN_LIFETIME = dt.timedelta(seconds=1)
DEFAULT_OVERLAP = dt.timedelta(hours=24)
CA_VALIDITY = dt.timedelta(days=5 * 365)
BACKDATE = dt.timedelta(minutes=1)  # clock differences between collector and gateway
CA_COMMON_NAME = "auditagent readiness CA"
CA_ENV = "AUDITAGENT_READINESS_CA"

# The SAN URIs a readiness certificate carries (the first names the device; gateways match it).
DEVICE_URI = "urn:auditagent:device:"
UNIT_URI = "urn:auditagent:unit:"
POLICY_URI = "urn:auditagent:policy:sha256:"


class CAProblem(Exception):
    """The CA folder cannot be used; the message names the file and what to do."""


@dataclass(frozen=True)
class Generation:
    number: int
    created_at: dt.datetime
    activate_at: dt.datetime
    certificate: x509.Certificate
    key_path: Path

    def private_key(self) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise CAProblem(f"{self.key_path}: not an EC private key")
        return key


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _parse(t: str) -> dt.datetime:
    return dt.datetime.fromisoformat(t.replace("Z", "+00:00"))


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)


def _write_public(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _ca_certificate(key: ec.EllipticCurvePrivateKey, number: int, organisation: str | None,
                    now: dt.datetime) -> x509.Certificate:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, f"{CA_COMMON_NAME} {number}")]
    if organisation:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation[:64]))
    name = x509.Name(attrs)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE).not_valid_after(now + CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))


def _manifest(directory: Path) -> dict[str, Any]:
    try:
        return json.loads((directory / "ca.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CAProblem(f"{directory}: no readiness CA here; create one with "
                        f"`auditagent-collector ca init --dir {directory}`") from None
    except (OSError, ValueError) as exc:
        raise CAProblem(f"{directory / 'ca.json'}: cannot be read ({exc})") from None


def _add_generation(directory: Path, organisation: str | None, activate_at: dt.datetime | None,
                    now: dt.datetime) -> int:
    manifest = _manifest(directory) if (directory / "ca.json").exists() else {"organisation": organisation,
                                                                             "generations": []}
    gens = manifest["generations"]
    number = max((g["number"] for g in gens), default=0) + 1
    key = ec.generate_private_key(ec.SECP256R1())
    _write_private(directory / f"ca-{number}.key",
                   key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))
    cert = _ca_certificate(key, number, manifest.get("organisation"), now)
    _write_public(directory / f"ca-{number}.pem", cert.public_bytes(serialization.Encoding.PEM))
    # The first generation signs at once (from its backdated start, like its certificate).
    gens.append({"number": number, "created_at": _iso(now), "activate_at": _iso(activate_at or now - BACKDATE)})
    _write_public(directory / "ca.json", json.dumps(manifest, indent=2).encode("utf-8"))
    return number


def init_ca(directory: Path, organisation: str | None = None, *, now: dt.datetime | None = None) -> "ReadinessCA":
    """Create the CA (generation 1, signing at once). Refuses a folder that already has one."""
    directory = Path(directory)
    if (directory / "ca.json").exists():
        raise CAProblem(f"{directory}: a readiness CA already exists; use `ca rotate` for a new key")
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    _add_generation(directory, organisation, None, now or _now())
    return ReadinessCA(directory)


def rotate_ca(directory: Path, overlap: dt.timedelta = DEFAULT_OVERLAP, *,
              now: dt.datetime | None = None) -> Generation:
    """A new generation, in the trust bundle now and signing after ``overlap``."""
    now = now or _now()
    if overlap < dt.timedelta(0):
        raise CAProblem("the overlap cannot be negative")
    number = _add_generation(Path(directory), None, now + overlap, now)
    return next(g for g in ReadinessCA(Path(directory)).generations() if g.number == number)


class ReadinessCA:
    """The CA folder, read when it changes (``ca rotate`` while the collector runs)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._cache: tuple[float, list[Generation]] | None = None
        self._keys: dict[int, ec.EllipticCurvePrivateKey] = {}
        self.generations()  # fail at start-up, not at the first report
        self.check_permissions()

    def check_permissions(self) -> None:
        for g in self.generations():
            mode = g.key_path.stat().st_mode & 0o777
            if mode & 0o077:
                raise CAProblem(f"{g.key_path} is readable by others (mode {mode:o}); chmod 600 it")

    def generations(self) -> list[Generation]:
        try:
            mtime = (self.directory / "ca.json").stat().st_mtime
        except FileNotFoundError:
            mtime = -1.0
        if self._cache is not None and self._cache[0] == mtime:
            return self._cache[1]
        gens = []
        for g in _manifest(self.directory)["generations"]:
            n = int(g["number"])
            pem = self.directory / f"ca-{n}.pem"
            try:
                cert = x509.load_pem_x509_certificate(pem.read_bytes())
            except (OSError, ValueError) as exc:
                raise CAProblem(f"{pem}: cannot be read ({exc})") from None
            gens.append(Generation(n, _parse(g["created_at"]), _parse(g["activate_at"]), cert,
                                   self.directory / f"ca-{n}.key"))
        gens.sort(key=lambda g: g.number)
        self._cache = (mtime, gens)
        return gens

    def signer(self, now: dt.datetime) -> Generation:
        """The newest generation whose activation time has come."""
        active = [g for g in self.generations() if g.activate_at <= now]
        if not active:
            raise CAProblem(f"{self.directory}: no CA generation is active yet")
        return active[-1]

    def trusted(self, now: dt.datetime) -> list[Generation]:
        """What gateways must trust now: the signer, every generation still to come, and
        older ones until the certificates they signed have all expired."""
        gens = self.generations()
        signer = self.signer(now)
        out = []
        for i, g in enumerate(gens):
            if g.number >= signer.number:
                out.append(g)
                continue
            successor = gens[i + 1]
            if now < successor.activate_at + MAX_LIFETIME:
                out.append(g)
        return [g for g in out if g.certificate.not_valid_after_utc > now]

    def bundle_pem(self, now: dt.datetime | None = None) -> bytes:
        return b"".join(g.certificate.public_bytes(serialization.Encoding.PEM) for g in self.trusted(now or _now()))

    def _key(self, g: Generation) -> ec.EllipticCurvePrivateKey:
        if g.number not in self._keys:
            self._keys[g.number] = g.private_key()
        return self._keys[g.number]

    def issue(self, public_key: Any, *, device_id: str, unit: str, policy_sha256: str | None,
              not_after: dt.datetime, now: dt.datetime) -> x509.Certificate:
        """A TLS client certificate for ``public_key`` naming the device, its unit and the
        policy digest it was judged by (subject and SAN URIs)."""
        g = self.signer(now)
        return build_client_certificate(public_key, issuer=g.certificate, issuer_key=self._key(g),
                                        device_id=device_id, unit=unit, policy_sha256=policy_sha256,
                                        not_before=now - BACKDATE, not_after=not_after)

    def issued_by_us(self, cert: x509.Certificate, now: dt.datetime) -> bool:
        """True if a generation gateways trust now signed ``cert``."""
        for g in self.trusted(now):
            if cert.issuer != g.certificate.subject:
                continue
            try:
                cert.verify_directly_issued_by(g.certificate)
                return True
            except (InvalidSignature, ValueError, TypeError):
                continue
        return False


def acceptable_public_key(key: Any) -> str | None:
    """None if a device's TLS key may be certified, else why not (P-256, or RSA 2048-4096
    for gateways that need RSA)."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        return None if isinstance(key.curve, ec.SECP256R1) else f"EC curve {key.curve.name}: use P-256"
    if isinstance(key, rsa.RSAPublicKey):
        return None if 2048 <= key.key_size <= 4096 else f"RSA {key.key_size} bits: use 2048-4096"
    return f"{type(key).__name__}: use an ECDSA P-256 (or RSA) key"


def device_uris(device_id: str, unit: str, policy_sha256: str | None) -> list[str]:
    uris = [DEVICE_URI + device_id, UNIT_URI + urllib.parse.quote(unit, safe="/")]
    if policy_sha256:
        uris.append(POLICY_URI + policy_sha256)
    return uris


def build_client_certificate(public_key: Any, *, issuer: x509.Certificate, issuer_key: ec.EllipticCurvePrivateKey,
                             device_id: str, unit: str, policy_sha256: str | None, not_before: dt.datetime,
                             not_after: dt.datetime) -> x509.Certificate:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, device_id),
             x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit[:64])]
    if policy_sha256:
        # dnQualifier: "disambiguating information" — the policy this readiness was judged by.
        attrs.append(x509.NameAttribute(NameOID.DN_QUALIFIER, "policy-sha256:" + policy_sha256))
    return (x509.CertificateBuilder().subject_name(x509.Name(attrs)).issuer_name(issuer.subject)
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(u) for u in
                                                        device_uris(device_id, unit, policy_sha256)]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=isinstance(public_key, rsa.RSAPublicKey),
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key()),  # type: ignore[arg-type]
                           critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .sign(issuer_key, hashes.SHA256()))


def certificate_device_id(cert: x509.Certificate) -> str | None:
    """The device id a readiness certificate names (its SAN device URI), or None."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    for uri in san.get_values_for_type(x509.UniformResourceIdentifier):
        if uri.startswith(DEVICE_URI):
            return uri[len(DEVICE_URI):] or None
    return None


def load_ca_from_env(path: str | None) -> ReadinessCA | None:
    """The CA at ``path`` (or $AUDITAGENT_READINESS_CA), None when neither is set."""
    path = path or os.environ.get(CA_ENV)
    return ReadinessCA(Path(path)) if path else None
