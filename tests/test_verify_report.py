"""The auditor's path: a report downloaded from the device page verifies offline with
``auditagent verify`` (the command the page shows beside it), and with securesystemslib,
an independent DSSE implementation, exactly as docs/verifying.md shows. Forged,
altered and mismatched files do not verify (exit 1, saying why)."""
from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auditagent import report as wire
from collector_fixtures import REPO, EnrolledDevice, migrated_app
from readme_blocks import commands, shell_blocks

PASSWORD = "correct horse battery staple 1"


def verify(*args: str) -> tuple[int, str]:
    from auditagent.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(["verify", *args])
    return code, out.getvalue()


def docs_snippet() -> str:
    text = (REPO / "docs" / "verifying.md").read_text(encoding="utf-8")
    m = re.search(r"```python\n(.*?)```", text, re.S)
    assert m, "docs/verifying.md has no python block"
    return m.group(1)


def run_docs_snippet(folder) -> str:
    """docs/verifying.md's securesystemslib code, as written, in ``folder`` (report.json, device.pem)."""
    out = io.StringIO()
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(docs_snippet(), "docs/verifying.md", "exec"), {"__name__": "docs_snippet"})
    finally:
        os.chdir(cwd)
    return out.getvalue()


@pytest.fixture
def signed(tmp_path):
    key = Ed25519PrivateKey.generate()
    device = EnrolledDevice(id="dev-verify-1", key=key, unit="U", keyid=wire.keyid(key.public_key()))
    (tmp_path / "report.json").write_text(json.dumps(device.sign(7), indent=2))
    (tmp_path / "device.pem").write_text(wire.public_key_pem(key.public_key()))
    return tmp_path, device


def test_a_report_verifies_with_the_agent_and_with_securesystemslib(signed):
    folder, device = signed
    code, out = verify(str(folder / "report.json"), "--key", str(folder / "device.pem"))
    assert code == 0, out
    assert "✔" in out and f"device:{device.id}" in out and "sequence 7" in out and "verdict:    ready" in out
    assert run_docs_snippet(folder).startswith("ready ")


def _rewrite(folder, change) -> None:
    env = json.loads((folder / "report.json").read_text())
    change(env)
    (folder / "report.json").write_text(json.dumps(env))


def test_an_altered_report_does_not_verify(signed):
    from securesystemslib.exceptions import VerificationError

    folder, device = signed

    def tamper(env):
        statement = json.loads(base64.b64decode(env["payload"]))
        statement["predicate"]["verdict"] = "not_ready"
        env["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()

    _rewrite(folder, tamper)
    code, out = verify(str(folder / "report.json"), "--key", str(folder / "device.pem"))
    assert code == 1 and "NOT VERIFIED: bad_signature" in out
    with pytest.raises(VerificationError):
        run_docs_snippet(folder)


def test_a_report_signed_by_another_key_or_naming_another_device_key_does_not_verify(signed):
    folder, device = signed
    other = Ed25519PrivateKey.generate()
    (folder / "other.pem").write_text(wire.public_key_pem(other.public_key()))
    code, out = verify(str(folder / "report.json"), "--key", str(folder / "other.pem"))
    assert code == 1 and "unknown_keyid" in out
    # Signed by the device key, but its subject names another key: the signature alone is not enough.
    statement = device.statement(8)
    statement["subject"][0]["digest"]["sha256"] = wire.keyid(other.public_key())
    (folder / "report.json").write_text(json.dumps(wire.sign_envelope(statement, device.key)))
    code, out = verify(str(folder / "report.json"), "--key", str(folder / "device.pem"))
    assert code == 1 and "subject[0].digest.sha256" in out


def test_the_report_names_the_signed_policy_it_was_judged_against(signed, tmp_path):
    from auditagent.policy import load_policy

    folder, device = signed
    org = Ed25519PrivateKey.generate()
    (folder / "org.pub.pem").write_text(wire.public_key_pem(org.public_key()))
    yaml_bytes = (REPO / "policies" / "baseline.yaml").read_bytes()
    (folder / "baseline.signed.json").write_text(json.dumps(wire.sign_policy(yaml_bytes, org)))
    policy = load_policy(REPO / "policies" / "baseline.yaml")
    common = ["--key", str(folder / "device.pem"), "--policy", str(folder / "baseline.signed.json"),
              "--policy-key", str(folder / "org.pub.pem")]
    # The fixture's report names another policy digest: refused, saying which.
    code, out = verify(str(folder / "report.json"), *common)
    assert code == 1 and "was judged against policy baseline 1.0.0" in out
    (folder / "report.json").write_text(json.dumps(wire.sign_envelope(device.statement(
        9, policy={"id": policy.id, "version": policy.version, "sha256": policy.digest}), device.key)))
    code, out = verify(str(folder / "report.json"), *common)
    assert code == 0 and "✔ judged against" in out, out
    # The signed policy alone, and one signed by someone else.
    assert verify(str(folder / "baseline.signed.json"), "--policy-key", str(folder / "org.pub.pem"))[0] == 0
    (folder / "forged.signed.json").write_text(json.dumps(wire.sign_policy(yaml_bytes, Ed25519PrivateKey.generate())))
    code, out = verify(str(folder / "forged.signed.json"), "--policy-key", str(folder / "org.pub.pem"))
    assert code == 1 and "not signed by the organisation's policy key" in out


def test_verify_usage_errors_say_what_to_give(signed):
    folder, _ = signed
    code, out = verify(str(folder / "report.json"))
    assert code == 2 and "--key DEVICE.pem" in out
    code, out = verify(str(folder / "missing.json"), "--key", str(folder / "device.pem"))
    assert code == 2 and "cannot read" in out and "missing.json" in out
    (folder / "junk.json").write_text("not json")
    code, out = verify(str(folder / "junk.json"), "--key", str(folder / "device.pem"))
    assert code == 2 and "not a signed report" in out


def test_readme_shows_the_verify_command():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    cmds = [c for b in shell_blocks(text) for c in commands(b)]
    assert "auditagent verify report.json --key device.pem" in cmds


def test_the_device_page_offers_each_report_with_the_command_that_verifies_it(collector_db_url, tmp_path):
    from fastapi.testclient import TestClient

    from server import auth

    app = migrated_app(collector_db_url)
    store = app.state.store
    try:
        store.add_unit("Revision/IFO")
        token, _ = store.create_token("Revision/IFO", expires_in=__import__("datetime").timedelta(hours=1), uses=1)
        key = Ed25519PrivateKey.generate()
        with store.engine.begin() as conn:
            auth.create_user(conn, username="revisor", role="security_officer", password=PASSWORD, lang="en")
        with TestClient(app, base_url="https://testserver") as c:
            r = c.post("/v1/enroll", json={"token": token, "public_key": wire.public_key_pem(key.public_key()),
                                           "device": {"hostname": "lap-v", "serial": "S", "os": "Debian GNU/Linux 12",
                                                      "platform": "linux"}})
            assert r.status_code == 201, r.text
            device = EnrolledDevice(id=r.json()["device_id"], key=key, unit="Revision/IFO",
                                    keyid=wire.keyid(key.public_key()), next_sequence=r.json()["next_sequence"])
            envelope = device.sign()
            r = c.post("/v1/reports", content=wire.envelope_bytes(envelope), headers={"content-type": "application/json"})
            assert r.status_code == 201, r.text
            assert c.post("/api/v1/login", json={"username": "revisor", "password": PASSWORD}).status_code == 200
            page = c.get(f"/devices/{device.id}")
            assert page.status_code == 200
            report_id = wire.report_id_of(wire.decode_envelope(envelope).statement)
            command = f"auditagent verify report-{report_id}.dsse.json --key device-{device.id}.pub.pem"
            assert command in page.text
            # The files the page offers, under the names the command uses, verify with it.
            (tmp_path / f"report-{report_id}.dsse.json").write_bytes(
                c.get(f"/api/v1/reports/{report_id}/envelope").content)
            (tmp_path / f"device-{device.id}.pub.pem").write_bytes(
                c.get(f"/api/v1/devices/{device.id}/public-key").content)
            assert f'download="report-{report_id}.dsse.json"' in page.text
            assert f'download="device-{device.id}.pub.pem"' in page.text
        words = command.split()[2:]
        code, out = verify(*(str(tmp_path / w) if w.endswith((".json", ".pem")) else w for w in words))
        assert code == 0, out
    finally:
        store.engine.dispose()
