"""Property-based fuzzing (hypothesis) of what strangers and devices can send the
collector, against a real collector over HTTP on SQLite and PostgreSQL:
``POST /v1/reports`` (mutated valid envelopes signed by an enrolled device, random JSON,
random bytes), ``POST /v1/enroll``, the signed ``GET /v1/devices/{id}/policy`` request
and the collector's policy loader (``policy set``).

Invariant: every answer is 2xx or 4xx, never 5xx, and a 4xx changes nothing stored.

CI runs a short profile (``AUDITAGENT_FUZZ_EXAMPLES``, default 25 per property); the
long run is the same tests with more examples, as the README says::

    eval "$(bash .ci/start-postgres.sh)" && AUDITAGENT_FUZZ_EXAMPLES=2000 nice .venv/bin/python -m pytest -q -s tests/test_fuzz_collector.py

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
from auditagent import signed_request
from server.store import ApiError

EXAMPLES = int(os.environ.get("AUDITAGENT_FUZZ_EXAMPLES", "25"))
# The suite's 300 s per test would cut a long run short: up to a second a case (a busy machine).
pytestmark = pytest.mark.timeout(max(900, 60 + EXAMPLES))
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


# What is stored after the last case of the running test: a case's "before" is the
# previous case's "after" (only check() changes anything while a test runs), so each
# case reads the database once. Cleared when a test starts.
_last: dict[str, dict[str, str]] = {}


@pytest.fixture(autouse=True)
def _fresh_snapshot(request):
    _last.clear()
    yield
    if counts:  # so far, after each property (a long run interrupted still says what it ran)
        print(f"\n  after {request.node.name}: " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))


def check(collector, send):
    """Send; a 5xx fails; a 4xx must leave everything stored as it was."""
    before = _last.get("stored") or stored(collector)
    r = send()
    assert r.status_code < 500, r.text
    after = stored(collector)
    if r.status_code >= 400:
        assert after == before, f"a {r.status_code} changed what is stored"
    _last["stored"] = after
    return r


@pytest.fixture(scope="module")
def http(collector):
    with collector.client() as c:  # one keep-alive connection for all cases
        yield c


def _post(http, path, body: bytes, source="10.9.9.9"):
    return http.post(path, content=body, headers={"content-type": "application/json", "X-Forwarded-For": source})


@pytest.fixture(scope="module")
def device(collector):
    return collector.enroll(unit="Fuzz-Unit")


@FUZZ
@given(field=st.sampled_from(PREDICATE_FIELDS), value=json_values)
def test_fuzz_reports_mutated_and_signed(collector, http, device, field, value):
    statement = device.statement()
    statement["predicate"][field] = value
    payload = json.dumps(statement, allow_nan=True).encode("utf-8", "surrogatepass")
    sig = wire.b64encode(device.key.sign(wire.pae(wire.PAYLOAD_TYPE, payload)))
    body = json.dumps({"payloadType": wire.PAYLOAD_TYPE, "payload": wire.b64encode(payload),
                       "signatures": [{"keyid": device.keyid, "sig": sig}]}).encode()
    r = check(collector, lambda: _post(http, "/v1/reports", body))
    counts[f"reports mutated ({r.status_code // 100}xx)"] += 1


@FUZZ
@given(body=st.one_of(st.binary(max_size=300), json_values.map(lambda v: json.dumps(v, allow_nan=True).encode(
    "utf-8", "surrogatepass")), st.builds(lambda p, s: json.dumps(
        {"payloadType": wire.PAYLOAD_TYPE, "payload": base64.b64encode(p).decode(), "signatures": s}).encode(),
        st.binary(max_size=200), json_values)))
def test_fuzz_reports_random(collector, http, body):
    r = check(collector, lambda: _post(http, "/v1/reports", body))
    assert r.status_code >= 400
    counts["reports random"] += 1


@FUZZ
@given(field=st.sampled_from(["token", "public_key", "device", "device_id", "rekey_proof", "unit"]),
       value=json_values, raw=st.one_of(st.none(), st.binary(max_size=200)),
       source=st.integers(min_value=1, max_value=2**24))
def test_fuzz_enroll(collector, http, device, field, value, raw, source):
    if raw is not None:
        body = raw
    else:
        doc = {"token": "aaenr_fuzz", "public_key": wire.public_key_pem(device.key.public_key()),
               "device": {"hostname": "fuzz"}, "device_id": device.id, field: value}
        body = json.dumps(doc, allow_nan=True).encode("utf-8", "surrogatepass")
    addr = f"10.{source >> 16 & 255}.{source >> 8 & 255}.{source & 255}"
    r = check(collector, lambda: _post(http, "/v1/enroll", body, addr))
    assert r.status_code >= 400  # no valid token: nothing may be enrolled
    counts["enroll"] += 1


def _token(raw: bytes) -> str:
    return signed_request.SCHEME + " " + base64.urlsafe_b64encode(raw).decode().rstrip("=")


CLAIM_FIELDS = ["device_id", "method", "path", "issued_at", "extra_field"]


@FUZZ
@given(kind=st.sampled_from(["text", "bytes", "json", "signed"]),
       text=st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=300),
       raw=st.binary(max_size=300), value=json_values, field=st.sampled_from(CLAIM_FIELDS))
def test_fuzz_policy_request(collector, http, device, kind, text, raw, value, field):
    """GET /v1/devices/{id}/policy with any Authorization header: random text, random
    bytes or JSON as the token, or a claim with one field replaced, signed by the device's
    real key. Never 5xx, never the policy."""
    if kind == "text":
        header = text
    elif kind == "bytes":
        header = _token(raw)
    elif kind == "json":
        header = _token(json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass"))
    else:
        claim = {"device_id": device.id, "method": "GET", "path": signed_request.policy_path(device.id),
                 "issued_at": wire.now_iso(), field: value}
        payload = json.dumps(claim, allow_nan=True).encode("utf-8", "surrogatepass")
        sig = wire.b64encode(device.key.sign(wire.pae(signed_request.PAYLOAD_TYPE, payload)))
        header = _token(json.dumps({"payloadType": signed_request.PAYLOAD_TYPE, "payload": wire.b64encode(payload),
                                    "signatures": [{"keyid": device.keyid, "sig": sig}]}).encode())

    # HTTP drops a header value's outer white space; httpx refuses to send it.
    r = check(collector, lambda: http.get(signed_request.policy_path(device.id),
                                          headers={"Authorization": header.strip(" \t")}))
    assert r.status_code in (400, 401, 404), r.text  # 404 no_policy: a claim that stayed valid
    counts[f"policy request ({r.status_code})"] += 1


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
