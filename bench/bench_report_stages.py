"""Where one report's collector CPU goes before the database: each stage of POST
/v1/reports' pure work (what :meth:`server.store.Store.verify` does with the device's key
cached), timed alone on one core over real-size reports (bench/real_reports.py: this
machine's, the Windows and the macOS replay, signed as the agent signs them).

    python bench/bench_report_stages.py                    # 600 reports, 5 interleaved rounds, best of each
    python bench/bench_report_stages.py --baseline /tmp/base-verify5   # the same stages of another checkout

Stages: envelope JSON parse (strict), base64 decode (payload, signature), signature
verify (the collector's verifier), payload JSON parse (strict), schema validation,
pack + compress of the body (server/report_pack.py), check rows (device_checks rows,
their JSON), then the whole of ``Store.verify`` (cached key, no database read, segments
stored already) as it runs them together; apart, compressing the facts and results
segments, which the steady state does once a month per device. Prints µs per stage and reports/s on one core, and the ratio to the
single-core verify limit (the bare signature check) measured in the same run. With
``--baseline`` the same stages and the whole ``Store.verify`` of the other checkout run
in a child process in turn with this one's, round by round, over the same reports
(ratios within one run).
Prints figures; asserts nothing.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
STAGES = ("envelope JSON parse", "base64 decode", "signature verify", "payload JSON parse",
          "schema validation", "pack + compress", "check rows")
# Not in the sum: a segment is compressed only when this process has not stored it this
# month (an hourly report repeats its device's facts and results: once a month per device).
NEW_SEGMENTS = "compress new segments"


def _reports(n: int) -> tuple[list[bytes], bytes, str]:
    """``n`` real-size signed reports of one device (templates in turn), its raw key, its keyid."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from auditagent import report as wire
    from real_reports import agent_predicates, signed_report

    templates = list(agent_predicates().values())
    key = Ed25519PrivateKey.generate()
    did = "bench-stages-device"
    bodies = [signed_report(templates[i % len(templates)], did, i + 1, key) for i in range(n)]
    return bodies, wire.raw_public_bytes(key.public_key()), wire.keyid(key.public_key())


def _stage_functions(bodies: list[bytes], raw_key: bytes, kid: str) -> dict[str, Callable[[], None]]:
    """One function per stage, each over every body, fed the previous stage's outputs
    (computed here, outside the clock). Only the collector's own functions are called."""
    from auditagent import report as wire
    from server import report_pack, store
    from server.report_read import signed_refs

    verifier = store._public_key(raw_key)
    envelopes = [wire.parse_envelope(b) for b in bodies]
    payloads = [wire.b64decode(e["payload"], "envelope.payload") for e in envelopes]
    decoded = [wire.decode_envelope(e) for e in envelopes]
    statements = [d.statement for d in decoded]
    generated = [wire.parse_time(s["predicate"]["generated_at"]) for s in statements]
    sigs = [d.signatures for d in decoded]

    def envelope_parse() -> None:
        for b in bodies:
            wire.parse_envelope(b)

    def base64_decode() -> None:
        for e in envelopes:
            wire.b64decode(e["payload"], "envelope.payload")
            for s in e["signatures"]:
                wire.b64decode(s["sig"], "sig")

    def signature_verify() -> None:
        for p, s in zip(payloads, sigs):
            verifier.verify(s[0][1], wire.pae(wire.PAYLOAD_TYPE, p))

    def payload_parse() -> None:
        for p in payloads:
            wire.strict_loads(p, "envelope.payload")

    def schema() -> None:
        for s in statements:
            wire.subject_device_id(s)
            wire.validate_statement(s)

    def pack() -> None:
        for p, s in zip(payloads, statements):
            pr = s["predicate"]
            report_pack.pack(p, refs=signed_refs(pr["report_id"], pr["device"]["id"]))

    segments = [report_pack.pack(p).segments for p in payloads]

    def new_segments() -> None:
        for segs in segments:
            for seg in segs.values():
                report_pack.compress_segment(seg)

    def check_rows() -> None:
        for s, g in zip(statements, generated):
            rows = store.check_runs(s["predicate"]["results"], g)
            store.failing_required(rows)
            json.dumps(rows, separators=(",", ":"), default=store._iso)

    return {**dict(zip(STAGES, (envelope_parse, base64_decode, signature_verify, payload_parse, schema, pack,
                                check_rows))), NEW_SEGMENTS: new_segments}


def _whole_verify(bodies: list[bytes], raw_key: bytes, kid: str) -> Callable[[], None]:
    """``Store.verify`` as the lean path calls it (``cached_only``), on a store whose key
    cache holds the device and whose partitions are checked: no database read. Each
    verified report's segments are then remembered as stored (as ``Store.settle`` does),
    so from the second round on they are the steady state's: stored already."""
    from sqlalchemy import create_engine

    from server import partitions
    from server.db import now
    from server.store import Store, VerifiedReport

    st = Store(create_engine("sqlite://"))
    did = "bench-stages-device"
    st._keys.put(did, (kid, raw_key))
    st._partitions_month = partitions.month_of(now())
    st._partitions_ahead = lambda: None  # type: ignore[method-assign]

    def whole() -> None:
        for b in bodies:
            v = st.verify(b, cached_only=True)
            if isinstance(v, VerifiedReport):
                st._remember_blobs(v.params)

    return whole


def measure(n: int, rounds: int, reports_file: str | None = None) -> dict[str, float]:
    """Best-of-``rounds`` µs per report for each stage, the sum, the whole Store.verify;
    over the reports in ``reports_file`` (:func:`_save_reports`) if given."""
    if reports_file is None:
        bodies, raw_key, kid = _reports(n)
    else:
        saved = json.loads(Path(reports_file).read_text())
        bodies = [b.encode("latin-1") for b in saved["bodies"]]
        raw_key, kid, n = bytes.fromhex(saved["raw_key"]), saved["kid"], len(bodies)
    funcs = {**_stage_functions(bodies, raw_key, kid), "Store.verify (whole)": _whole_verify(bodies, raw_key, kid)}
    best = {name: float("inf") for name in funcs}
    for _ in range(rounds):
        for name, f in funcs.items():
            t0 = time.process_time()
            f()
            best[name] = min(best[name], (time.process_time() - t0) / n * 1e6)
    best["sum of stages"] = sum(best[s] for s in STAGES)
    best["bytes"] = sum(map(len, bodies)) / n
    return best


def _save_reports(n: int, path: Path) -> None:
    """The same reports for both checkouts."""
    bodies, raw_key, kid = _reports(n)
    path.write_text(json.dumps({"bodies": [b.decode("latin-1") for b in bodies], "raw_key": raw_key.hex(),
                                "kid": kid}))


def _child(src: Path, n: int, rounds: int, reports_file: Path) -> dict[str, float]:
    """The stages of checkout ``src`` (this very file's functions, that checkout's code)."""
    code = (f"import sys, json; sys.path.insert(0, {str(src)!r}); sys.path.insert(0, {str(src / 'bench')!r}); "
            f"sys.path.insert(1, {str(REPO / 'bench')!r}); "
            f"import importlib.util as u; s = u.spec_from_file_location('stages', {str(Path(__file__).resolve())!r}); "
            f"m = u.module_from_spec(s); s.loader.exec_module(m); print(json.dumps(m.measure({n}, {rounds}, {str(reports_file)!r})))")
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=src, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _print(label: str, t: dict[str, float]) -> None:
    limit = t["signature verify"]
    print(f"{label}: {t['bytes']:,.0f} bytes on the wire on average")
    for name in (*STAGES, "sum of stages", "Store.verify (whole)", NEW_SEGMENTS):
        print(f"  {name:22} {t[name]:7.1f} µs  {1e6 / t[name]:9,.0f} reports/s on one core  "
              f"{t[name] / limit:5.2f} x the signature check")
    print(f"  ({NEW_SEGMENTS}: not in the sum; once a month per device and process, when its facts repeat)")
    print(f"  single-core verify limit (the signature check alone): {1e6 / limit:,.0f} reports/s; "
          f"Store.verify reaches {limit / t['Store.verify (whole)']:.2f} of it")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reports", type=int, default=600)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--baseline", type=Path, metavar="DIR", help="another checkout measured in turn with this one")
    ap.add_argument("--alternations", type=int, default=2, help="with --baseline: (baseline, this) pairs")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    print(f"load average {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores), {dt.datetime.now():%H:%M}")
    if args.baseline is None:
        _print("this checkout", measure(args.reports, args.rounds))
    else:
        runs: dict[str, list[dict[str, float]]] = {"baseline": [], "this": []}
        with tempfile.TemporaryDirectory() as tmp:
            reports_file = Path(tmp) / "reports.json"
            _save_reports(args.reports, reports_file)
            for _ in range(args.alternations):
                runs["baseline"].append(_child(args.baseline.resolve(), args.reports, args.rounds, reports_file))
                runs["this"].append(_child(REPO, args.reports, args.rounds, reports_file))
        best = {k: {name: min(r[name] for r in v) for name in v[0]} for k, v in runs.items()}
        _print(f"baseline ({args.baseline})", best["baseline"])
        _print("this checkout", best["this"])
        print("this / baseline, per stage (best of each):")
        for name in (*STAGES, "sum of stages", "Store.verify (whole)", NEW_SEGMENTS):
            b, t = best["baseline"][name], best["this"][name]
            print(f"  {name:22} {b:7.1f} -> {t:7.1f} µs  ({t / b:.2f}x)")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
