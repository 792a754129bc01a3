"""Property-based fuzzing (hypothesis) of what strangers and devices can send the
collector, against a real collector over HTTP on SQLite and PostgreSQL:
``POST /v1/reports`` (mutated valid envelopes signed by an enrolled device, random JSON,
random bytes), ``POST /v1/enroll`` and the collector's policy loader (``policy set``).

Invariant: every answer is 2xx or 4xx, never 5xx, and a 4xx changes nothing stored.

CI runs a short profile (``AUDITAGENT_FUZZ_EXAMPLES``, default 25 per property); the
long run is the same tests with more examples, e.g.::

    AUDITAGENT_FUZZ_EXAMPLES=2000 .venv/bin/python -m pytest -q -s tests/test_fuzz_collector.py

which prints how many cases each property ran.
"""
from __future__ import annotations

import base64
import json
import os
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attacks import stored
from auditagent import report as wire
from server.store import ApiError

EXAMPLES = int(os.environ.get("AUDITAGENT_FUZZ_EXAMPLES", "25"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])

# JSON values, including what strict parsing must refuse (NaN, huge floats, NUL, surrogates).
scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=40))
json_values = st.recursive(scalars, lambda kids: st.lists(kids, max_size=4)
                           | st.dictionaries(st.text(max_size=10), kids, max_size=4), max_leaves=25)
PREDICATE_FIELDS = ["report_id", "device", "agent_version", "policy", "facts", "results", "verdict", "sequence",
                    "generated_at", "spool", "integrity", "extra_field"]

counts: Counter[str] = Counter()


def check(collector, send):
    """Send; a 5xx fails; a 4xx must leave everything stored as it was."""
    before = stored(collector)
    r = send()
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        assert stored(collector) == before, f"a {r.status_code} changed what is stored"
    return r


def _post(collector, path, body: bytes, source="10.9.9.9"):
    with collector.client() as c:
        return c.post(path, content=body, headers={"content-type": "application/json", "X-Forwarded-For": source})


@pytest.fixture(scope="module")
def device(collector):
    return collector.enroll(unit="Fuzz-Unit")


@FUZZ
@given(field=st.sampled_from(PREDICATE_FIELDS), value=json_values)
def test_fuzz_reports_mutated_and_signed(collector, device, field, value):
    statement = device.statement()
    statement["predicate"][field] = value
    payload = json.dumps(statement, allow_nan=True).encode("utf-8", "surrogatepass")
    sig = wire.b64encode(device.key.sign(wire.pae(wire.PAYLOAD_TYPE, payload)))
    body = json.dumps({"payloadType": wire.PAYLOAD_TYPE, "payload": wire.b64encode(payload),
                       "signatures": [{"keyid": device.keyid, "sig": sig}]}).encode()
    r = check(collector, lambda: _post(collector, "/v1/reports", body))
    counts[f"reports mutated ({r.status_code // 100}xx)"] += 1


@FUZZ
@given(body=st.one_of(st.binary(max_size=300), json_values.map(lambda v: json.dumps(v, allow_nan=True).encode(
    "utf-8", "surrogatepass")), st.builds(lambda p, s: json.dumps(
        {"payloadType": wire.PAYLOAD_TYPE, "payload": base64.b64encode(p).decode(), "signatures": s}).encode(),
        st.binary(max_size=200), json_values)))
def test_fuzz_reports_random(collector, body):
    r = check(collector, lambda: _post(collector, "/v1/reports", body))
    assert r.status_code >= 400
    counts["reports random"] += 1


@FUZZ
@given(field=st.sampled_from(["token", "public_key", "device", "device_id", "rekey_proof", "unit"]),
       value=json_values, raw=st.one_of(st.none(), st.binary(max_size=200)),
       source=st.integers(min_value=1, max_value=2**24))
def test_fuzz_enroll(collector, device, field, value, raw, source):
    if raw is not None:
        body = raw
    else:
        doc = {"token": "aaenr_fuzz", "public_key": wire.public_key_pem(device.key.public_key()),
               "device": {"hostname": "fuzz"}, "device_id": device.id, field: value}
        body = json.dumps(doc, allow_nan=True).encode("utf-8", "surrogatepass")
    addr = f"10.{source >> 16 & 255}.{source >> 8 & 255}.{source & 255}"
    r = check(collector, lambda: _post(collector, "/v1/enroll", body, addr))
    assert r.status_code >= 400  # no valid token: nothing may be enrolled
    counts["enroll"] += 1


@FUZZ
@given(envelope=st.one_of(json_values, st.fixed_dictionaries(
    {"payloadType": st.sampled_from([wire.POLICY_PAYLOAD_TYPE, "x"]) | st.text(max_size=5),
     "payload": st.binary(max_size=200).map(lambda b: base64.b64encode(b).decode()) | json_values,
     "signatures": st.lists(st.fixed_dictionaries({"keyid": st.text(max_size=8), "sig": st.text(max_size=8)}),
                            max_size=6) | json_values})))
def test_fuzz_policy_loader(collector, envelope):
    """The collector's policy loader (what `policy set` calls): stored, or a 4xx ApiError, nothing else."""
    collector.store.add_unit("Fuzz-Unit")
    before = collector.count("unit_policies")
    try:
        collector.store.set_policy("Fuzz-Unit", envelope)
        counts["policy stored"] += 1
    except ApiError as exc:
        assert 400 <= exc.status < 500
        assert collector.count("unit_policies") == before
        counts["policy refused"] += 1


def test_fuzz_case_counts(collector):
    """Runs last in the module: prints how many cases ran (with -s)."""
    print(f"\nfuzz cases on {collector.db_url.split(':')[0]} ({EXAMPLES} per property): "
          + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    assert sum(counts.values()) >= 4
    counts.clear()
