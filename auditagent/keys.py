"""Device and policy keys (Ed25519), and keeping them owner-only on disk.

* The device key signs reports. It lives in ``<state>/keys/device.key`` (PKCS#8 PEM,
  mode 0600, folder 0700; on Windows an owner-only ACL set with ``icacls``). Enrolling
  again makes a new key beside it (``device.key.new``) and swaps it in only after the
  collector has accepted it, so a refused re-enrolment leaves the old key working.
* The organisation's policy key signs policies (``auditagent policy keygen/sign``);
  agents hold only its public half (``policy_public_key`` in agent.yaml).

Private key bytes are never logged or printed.
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from auditagent.durable import atomic_write, ensure_dir, fsync_dir

DEVICE_KEY = "device.key"
PENDING_SUFFIX = ".new"
POLICY_PRIVATE = "policy-signing.key"
POLICY_PUBLIC = "policy-signing.pub.pem"


class KeyProblem(Exception):
    """A key that cannot be read or used; the message says which file and what to do."""


def is_windows() -> bool:
    return sys.platform.startswith("win")


# ------------------------------------------------------------------ permissions


def icacls_argv(path: Path, user: str, directory: bool = False) -> list[str]:
    """icacls command giving ``user`` (and nobody else) full control of ``path``:
    inheritance removed, existing grants replaced."""
    grant = f"{user}:(OI)(CI)F" if directory else f"{user}:F"
    return ["icacls", str(path), "/inheritance:r", "/grant:r", grant]


def _windows_user() -> str:
    domain, name = os.environ.get("USERDOMAIN"), os.environ.get("USERNAME")
    if name:
        return f"{domain}\\{name}" if domain else name
    import getpass

    return getpass.getuser()


def restrict_to_owner(path: Path, directory: bool = False) -> None:
    """0600 (files) / 0700 (folders) on POSIX; an owner-only ACL on Windows."""
    if is_windows():  # pragma: no cover - exercised on Windows
        proc = subprocess.run(icacls_argv(path, _windows_user(), directory), capture_output=True, text=True,
                              timeout=30)
        if proc.returncode != 0:
            raise KeyProblem(f"cannot restrict access to {path} with icacls: "
                             f"{(proc.stderr or proc.stdout).strip()[:200]}")
        return
    os.chmod(path, 0o700 if directory else 0o600)


def check_owner_only(path: Path) -> str | None:
    """A problem if ``path`` can be read by others (POSIX only), else None."""
    if is_windows():
        return None
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        return f"{path} is readable by others (mode {mode:o}); it must be 0600"
    return None


# ------------------------------------------------------------------ encodings


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def public_key_pem(key: Ed25519PublicKey) -> str:
    from auditagent.report import public_key_pem as pem

    return pem(key)


def keyid(key: Ed25519PublicKey) -> str:
    from auditagent.report import keyid as kid

    return kid(key)


def load_private_key_file(path: Path) -> Ed25519PrivateKey:
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise KeyProblem(f"no key at {path}") from None
    except OSError as exc:
        raise KeyProblem(f"cannot read the key {path}: {exc.strerror or exc}") from None
    from auditagent.report import ed25519_from_pem

    key = ed25519_from_pem(data, private=True)
    if key is not None:
        return key  # type: ignore[return-value]
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyProblem(f"{path} is not a PEM private key ({str(exc).splitlines()[0][:80]})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyProblem(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def load_public_key(value: str, base: Path | None = None, where: str = "policy_public_key") -> Ed25519PublicKey:
    """An Ed25519 public key from PEM text, or from a PEM file named by ``value``
    (relative to ``base``)."""
    from auditagent.report import ReportError, load_public_key_pem

    text = value.strip()
    source = where
    if "-----BEGIN" not in text:
        path = Path(text)
        if not path.is_absolute() and base is not None:
            path = base / path
        try:
            text = path.read_text(encoding="ascii")
        except OSError as exc:
            raise KeyProblem(f"{where}: cannot read {path}: {exc.strerror or exc}") from None
        source = str(path)
    if "PRIVATE KEY" in text:
        raise KeyProblem(f"{source}: holds a PRIVATE key — give agents only the public key "
                         f"({POLICY_PUBLIC} from `auditagent policy keygen`)")
    try:
        return load_public_key_pem(text)
    except ReportError as exc:
        raise KeyProblem(f"{source}: {exc.message}") from None


# ------------------------------------------------------------------ device key


@dataclass(frozen=True)
class DeviceKeyStore:
    """Where the device's Ed25519 signing key is kept (0600)."""

    directory: Path  # <state>/keys

    @property
    def path(self) -> Path:
        return self.directory / DEVICE_KEY

    @property
    def pending_path(self) -> Path:
        return self.directory / (DEVICE_KEY + PENDING_SUFFIX)

    def exists(self) -> bool:
        return self.path.is_file()

    def load(self) -> Ed25519PrivateKey:
        if not self.path.is_file():
            raise KeyProblem(f"this device has no key yet ({self.path}); enrol it first: "
                             "auditagent enroll --server URL --token TOKEN")
        return load_private_key_file(self.path)

    def _write_private(self, path: Path, key: Ed25519PrivateKey) -> None:
        ensure_dir(self.directory, 0o700)
        if is_windows():  # pragma: no cover
            restrict_to_owner(self.directory, directory=True)
        atomic_write(path, private_key_pem(key), mode=0o600)
        restrict_to_owner(path)

    def create_pending(self) -> Ed25519PrivateKey:
        """A new key written beside the current one; becomes current on :meth:`commit_pending`."""
        key = Ed25519PrivateKey.generate()
        self._write_private(self.pending_path, key)
        return key

    def commit_pending(self) -> None:
        os.replace(self.pending_path, self.path)
        fsync_dir(self.directory)

    def discard_pending(self) -> None:
        try:
            self.pending_path.unlink()
        except FileNotFoundError:
            pass


# ------------------------------------------------------------------ organisation policy key


def generate_policy_keypair(out_dir: Path, force: bool = False) -> tuple[Path, Path, str]:
    """Write ``policy-signing.key`` (0600) and ``policy-signing.pub.pem`` into ``out_dir``;
    returns (private path, public path, keyid). Refuses to overwrite a key unless ``force``."""
    out_dir = Path(out_dir)
    priv_path, pub_path = out_dir / POLICY_PRIVATE, out_dir / POLICY_PUBLIC
    if not force:
        for p in (priv_path, pub_path):
            if p.exists():
                raise KeyProblem(f"{p} already exists; move it away first (a new key means every agent's "
                                 "policy_public_key must change), or pass --force")
    ensure_dir(out_dir, 0o700)
    key = Ed25519PrivateKey.generate()
    atomic_write(priv_path, private_key_pem(key), mode=0o600)
    restrict_to_owner(priv_path)
    atomic_write(pub_path, public_key_pem(key.public_key()).encode("ascii"), mode=0o644)
    return priv_path, pub_path, keyid(key.public_key())
