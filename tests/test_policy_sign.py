"""``auditagent policy sign`` signs the resolved policy, so the signature covers every check."""
from __future__ import annotations

import json

import yaml

from conftest import REPO
from test_cli_check import agent


def test_signed_policy_is_self_contained_and_keeps_its_digest(tmp_path):
    from auditagent.keys import load_public_key
    from auditagent.policy import load_policy, parse_policy
    from auditagent.report import verify_policy

    keys = tmp_path / "keys"
    assert agent("policy", "keygen", "--out", str(keys), home=tmp_path).returncode == 0
    out = tmp_path / "casework.signed.json"
    source = REPO / "policies" / "casework-confidential.yaml"
    r = agent("policy", "sign", "--key", str(keys / "policy-signing.key"), str(source), "--out", str(out),
              home=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "signing the resolved policy" in r.stderr
    payload = verify_policy(json.loads(out.read_text()), load_public_key(str(keys / "policy-signing.pub.pem")))
    doc = yaml.safe_load(payload)
    assert "extends" not in doc  # nothing left for an agent to fill in from unsigned files
    resolved = parse_policy(payload.decode("utf-8"), "signed")
    original = load_policy(source)
    assert resolved.digest == original.digest
    assert [c.id for c in resolved.checks] == [c.id for c in original.checks]
