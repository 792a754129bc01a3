"""Device and policy keys on disk (owner-only, rotation that survives a crash) and
the agent config (every mistake named by file:line:field, with a suggestion)."""
from __future__ import annotations

import stat
from pathlib import Path

import pytest

from auditagent.config import ConfigError, load_config, parse_config
from auditagent.enrollment import Enrollment, repair_pending_key, save_enrollment
from auditagent.keys import (DeviceKeyStore, KeyProblem, generate_policy_keypair, icacls_argv, keyid,
                             load_private_key_file, load_public_key, public_key_pem)


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


# ------------------------------------------------------------------ keys


def test_device_key_is_owner_only_and_replaced_only_on_commit(tmp_path):
    store = DeviceKeyStore(tmp_path / "keys")
    first = store.create_pending()
    assert not store.exists()  # not current until the collector accepted it
    store.commit_pending()
    assert store.exists() and mode(store.path) == 0o600 and mode(tmp_path / "keys") == 0o700
    assert keyid(store.load().public_key()) == keyid(first.public_key())
    assert b"PRIVATE KEY" in store.path.read_bytes()

    second = store.create_pending()
    assert mode(store.pending_path) == 0o600
    store.discard_pending()  # a refused re-enrolment: the old key stays
    assert keyid(store.load().public_key()) == keyid(first.public_key())
    assert keyid(second.public_key()) != keyid(first.public_key())


def _enrollment(kid: str) -> Enrollment:
    return Enrollment(device_id="dev-1", server="https://c.example", keyid=kid, enrolled_at="2026-01-01T00:00:00Z")


def test_crash_during_rotation_is_repaired_from_the_enrolment_record(tmp_path):
    store = DeviceKeyStore(tmp_path / "keys")
    old = store.create_pending()
    store.commit_pending()
    new = store.create_pending()
    # Crash after the collector accepted the new key and the record was written, before the swap:
    save_enrollment(tmp_path, _enrollment(keyid(new.public_key())))
    repair_pending_key(tmp_path, store)
    assert keyid(store.load().public_key()) == keyid(new.public_key())
    # Crash before the collector answered: the record still names the old key → the new one is dropped.
    newer = store.create_pending()
    repair_pending_key(tmp_path, store)
    assert not store.pending_path.exists()
    assert keyid(store.load().public_key()) == keyid(new.public_key()) != keyid(newer.public_key())
    assert keyid(old.public_key()) != keyid(new.public_key())


def test_icacls_gives_only_the_owner_access():
    argv = icacls_argv(Path(r"C:\ProgramData\auditagent\state\keys\device.key"), r"CORP\anna")
    assert argv == ["icacls", r"C:\ProgramData\auditagent\state\keys\device.key", "/inheritance:r", "/grant:r",
                    r"CORP\anna:F"]
    assert icacls_argv(Path("k"), "SYSTEM", directory=True)[-1] == "SYSTEM:(OI)(CI)F"


def test_policy_keypair(tmp_path):
    priv, pub, kid = generate_policy_keypair(tmp_path / "org")
    assert mode(priv) == 0o600
    key = load_private_key_file(priv)
    assert keyid(key.public_key()) == kid
    assert keyid(load_public_key(str(pub))) == kid  # from a path …
    assert keyid(load_public_key(pub.read_text())) == kid  # … or PEM text
    with pytest.raises(KeyProblem, match="already exists"):
        generate_policy_keypair(tmp_path / "org")
    with pytest.raises(KeyProblem, match="PRIVATE key"):
        load_public_key(str(priv))
    with pytest.raises(KeyProblem, match="cannot read"):
        load_public_key(str(tmp_path / "missing.pem"))
    assert public_key_pem(key.public_key()).startswith("-----BEGIN PUBLIC KEY-----")


def test_private_key_errors_name_the_file(tmp_path):
    bad = tmp_path / "device.key"
    bad.write_text("not a key")
    with pytest.raises(KeyProblem, match=str(bad)):
        load_private_key_file(bad)
    with pytest.raises(KeyProblem, match="enrol it first"):
        DeviceKeyStore(tmp_path / "nokeys").load()


# ------------------------------------------------------------------ config


def test_config_defaults_without_a_file(tmp_path):
    cfg = load_config(tmp_path / "agent.yaml")
    assert cfg.server is None and cfg.insecure_http is False
    assert cfg.spool_max_reports == 500 and cfg.spool_max_bytes == 50 * 1024 * 1024
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "agent.yaml", required=True)


def test_config_values_and_relative_paths(tmp_path):
    (tmp_path / "ca.pem").write_text("x")
    cfg = parse_config("server: https://audit.example.org/\nca_bundle: ca.pem\nspool_max_bytes: 2 MiB\n"
                       "spool_max_reports: 20\nsend_attempts: 3\nsend_timeout: 5\npolicy: p.yaml\n",
                       str(tmp_path / "agent.yaml"))
    assert cfg.server == "https://audit.example.org"
    assert cfg.ca_bundle == tmp_path / "ca.pem" and cfg.policy == tmp_path / "p.yaml"
    assert cfg.spool_max_bytes == 2 * 1024 * 1024 and cfg.spool_max_reports == 20
    assert cfg.send_attempts == 3 and cfg.send_timeout == 5.0
    pin = parse_config("pinned_sha256: " + ":".join(["AB"] * 32) + "\n", "a.yaml", base=tmp_path)
    assert pin.pinned_sha256 == "ab" * 32


@pytest.mark.parametrize("text,line,field,message", [
    ("server: https://a.example\nspool_max_report: 10\n", 2, "spool_max_report", "did you mean 'spool_max_reports'"),
    ("server: ftp://a.example\n", 1, "server", "expected a URL"),
    ("insecure_http: yes please\n", 1, "insecure_http", "true or false"),
    ("spool_max_reports: 0\n", 1, "spool_max_reports", "must be ≥ 1"),
    ("spool_max_bytes: lots\n", 1, "spool_max_bytes", "size"),
    ("pinned_sha256: abc\n", 1, "pinned_sha256", "64 hex digits"),
    ("\n\nca_bundle: /no/such/ca.pem\n", 3, "ca_bundle", "no such file"),
    ("server: [a, b\n", None, "", "not valid YAML"),
])
def test_config_errors_name_file_line_field(tmp_path, text, line, field, message):
    path = tmp_path / "agent.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    problem = exc.value.problems[0]
    assert problem.file == str(path) and problem.field == field and message in problem.message
    if line is not None:
        assert problem.line == line
        assert str(problem).startswith(f"{path}:{line}: {field}")


def test_kept_config_is_reused_only_for_the_same_file_and_never_hides_a_mistake(tmp_path, monkeypatch):
    """The hourly run keeps agent.yaml's validated values (keep_in): the next load with the
    same text reads no YAML; an edited file, a damaged entry or a missing CA file is seen."""
    from auditagent import config as config_mod

    (tmp_path / "ca.pem").write_text("x")
    path, kept = tmp_path / "agent.yaml", tmp_path / "state" / "cache"
    path.write_text("server: https://audit.example.org/\nca_bundle: ca.pem\nspool_max_bytes: 2 MiB\n")
    first = load_config(path, keep_in=kept)
    assert mode(kept / config_mod.KEPT_FILE) == 0o600
    validations = []
    real = config_mod._validated
    monkeypatch.setattr(config_mod, "_validated", lambda *a: validations.append(a) or real(*a))
    assert load_config(path, keep_in=kept) == first and validations == []  # kept: no YAML read
    path.write_text("server: https://audit.example.org/\nca_bundle: ca.pem\nspool_max_reports: 0\n")
    with pytest.raises(ConfigError, match="must be ≥ 1"):  # edited: validated again, mistake named
        load_config(path, keep_in=kept)
    path.write_text("server: https://other.example.org\nca_bundle: ca.pem\n")
    assert load_config(path, keep_in=kept).server == "https://other.example.org"
    assert len(validations) == 2
    entry = (kept / config_mod.KEPT_FILE).read_text()
    (kept / config_mod.KEPT_FILE).write_text(entry.replace("other.example.org", "evil.example.org"))
    assert load_config(path, keep_in=kept).server == "https://other.example.org"  # damaged: the file decides
    assert len(validations) == 3
    (tmp_path / "ca.pem").unlink()
    with pytest.raises(ConfigError, match="no such file"):  # checked on every load, kept or not
        load_config(path, keep_in=kept)
    assert len(validations) == 3


def test_a_kept_config_load_imports_no_yaml(tmp_path):
    import os
    import subprocess
    import sys

    path, kept = tmp_path / "agent.yaml", tmp_path / "cache"
    path.write_text("server: https://audit.example.org\nspool_max_reports: 20\n")
    code = ("import sys\nfrom pathlib import Path\nfrom auditagent.config import load_config\n"
            f"c = load_config(Path({str(path)!r}), keep_in=Path({str(kept)!r}))\n"
            "print(c.spool_max_reports, 'yaml' in sys.modules)")
    repo = str(Path(__file__).resolve().parents[1])
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONPATH": repo}).stdout.split() for _ in range(2)]
    assert runs == [["20", "True"], ["20", "False"]]


def test_ca_bundle_and_pin_are_exclusive(tmp_path):
    (tmp_path / "ca.pem").write_text("x")
    with pytest.raises(ConfigError, match="either ca_bundle or pinned_sha256"):
        parse_config(f"ca_bundle: ca.pem\npinned_sha256: {'a' * 64}\n", str(tmp_path / "agent.yaml"))


def test_policy_public_key_errors_name_the_line(tmp_path):
    cfg = parse_config("server: https://a.example\npolicy_public_key: nope.pem\n", str(tmp_path / "agent.yaml"))
    with pytest.raises(ConfigError) as exc:
        cfg.policy_key()
    p = exc.value.problems[0]
    assert p.line == 2 and p.field == "policy_public_key" and "nope.pem" in p.message


def test_logs_never_carry_secrets(capsys):
    import io

    from auditagent.log import configure, get_logger

    stream = io.StringIO()
    configure(level="info", stream=stream)
    pem = DeviceKeyStore.__module__  # any text; the real check is below
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from auditagent.keys import private_key_pem

    secret_pem = private_key_pem(Ed25519PrivateKey.generate()).decode()
    get_logger().info("enroll", token="aaenr_SECRET", authorization="Bearer x", note=f"oops {secret_pem}",
                      device_id="dev-1", module=pem)
    out = stream.getvalue()
    assert "aaenr_SECRET" not in out and "Bearer x" not in out and "PRIVATE KEY" not in out
    assert secret_pem.splitlines()[1] not in out
    assert "device_id='dev-1'" in out and "token='[redacted]'" in out
