"""``auditagent verify``: check a signed report (or signed policy) offline, as an auditor would.

    auditagent verify REPORT.json --key DEVICE.pem
    auditagent verify REPORT.json --key DEVICE.pem --policy POLICY.signed.json --policy-key ORG.pub.pem
    auditagent verify POLICY.signed.json --policy-key ORG.pub.pem

For a report: the DSSE signature (Ed25519 over the DSSE pre-authentication encoding)
by the device key, the in-toto Statement v1 and its readiness predicate, and that the
subject's digest is the sha256 of that same key; then what the report says. With a
signed policy and the organisation's key: that the policy is the organisation's and is
the one the report was judged against. Exit 0 verified, 1 does not verify, 2 cannot be
read. Needs nothing but this package (no collector, no network).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from auditagent.commands import CommandError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="verify a signed report (or signed policy) offline",
                       description="Verify a signed readiness report with the device's public key and print what "
                                   "it says. Exit 0 verified, 1 does not verify, 2 a file cannot be read.")
    p.add_argument("file", metavar="FILE", help="signed report (DSSE envelope, JSON), or a signed policy")
    p.add_argument("--key", metavar="DEVICE.pem", help="the device's public key (PEM), from the dashboard or "
                                                        "`auditagent keys show`")
    p.add_argument("--policy", metavar="POLICY.signed.json",
                   help="the signed policy the report should have been judged against")
    p.add_argument("--policy-key", metavar="ORG.pub.pem", help="the organisation's policy public key (PEM)")
    p.add_argument("--json", action="store_true", help="print the verified Statement as JSON")
    p.set_defaults(func=cmd_verify)


def _read_envelope(path: str) -> dict[str, Any]:
    from auditagent.report import ReportError, parse_envelope

    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return parse_envelope(raw)
    except ReportError as exc:
        raise CommandError(f"{path}: not a signed report or policy: {exc.message}") from None


def _key(path: str, option: str):
    from auditagent.keys import KeyProblem, load_public_key

    try:
        return load_public_key(path, where=option)
    except KeyProblem as exc:
        raise CommandError(str(exc)) from None


class NotVerified(Exception):
    pass


def verify_policy_file(path: str, key_path: str) -> Any:
    from auditagent.policy import PolicyError
    from auditagent.policy_cache import verify_policy_envelope

    try:
        policy, _ = verify_policy_envelope(_read_envelope(path), _key(key_path, "--policy-key"), path)
    except PolicyError as exc:
        raise NotVerified("; ".join(p.message for p in exc.problems)) from None
    return policy


def summary_lines(statement: dict[str, Any]) -> list[str]:
    """What a verified report says, for a person."""
    pred = statement["predicate"]
    dev, pol = pred.get("device") or {}, pred.get("policy") or {}
    results = pred.get("results") or []
    counts: dict[str, int] = {}
    for r in results:
        counts[r.get("status")] = counts.get(r.get("status"), 0) + 1
    lines = [
        f"  device:     {dev.get('id')} ({dev.get('hostname') or '-'}, {dev.get('os') or dev.get('platform') or '-'})",
        f"  generated:  {pred.get('generated_at')}   sequence {pred.get('sequence')}   report {pred.get('report_id')}",
        f"  agent:      {pred.get('agent_version')}",
        f"  policy:     {pol.get('id')} {pol.get('version')} (sha256 {pol.get('sha256')})",
        f"  verdict:    {'ready' if pred.get('verdict') == 'ready' else 'NOT READY'}",
        "  results:    " + ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in sorted(counts.items())),
    ]
    for r in results:
        if r.get("status") in ("fail", "unknown"):
            lines.append(f"    {'✘' if r['status'] == 'fail' else '?'} {r.get('check_id')} ({r.get('severity')})")
    lines.append(f"  facts:      {', '.join(sorted(pred.get('facts') or {})) or '(none)'}")
    return lines


def cmd_verify(args: argparse.Namespace) -> int:
    from auditagent.report import POLICY_PAYLOAD_TYPE, ReportError, keyid, verify_envelope

    envelope = _read_envelope(args.file)
    if (args.policy is None) != (args.policy_key is None) and envelope.get("payloadType") != POLICY_PAYLOAD_TYPE:
        raise CommandError("--policy and --policy-key go together (the signed policy and the organisation's key)")
    try:
        if envelope.get("payloadType") == POLICY_PAYLOAD_TYPE:
            if not args.policy_key:
                raise CommandError(f"{args.file} is a signed policy: give the organisation's key with --policy-key")
            policy = verify_policy_file(args.file, args.policy_key)
            print(f"✔ {args.file}: signed policy {policy.id} {policy.version}, signature by the organisation's key "
                  f"valid, sha256 {policy.digest}")
            return 0
        if not args.key:
            raise CommandError("give the device's public key: --key DEVICE.pem (the dashboard offers it beside "
                               "each report; on the device: auditagent keys show)")
        key = _key(args.key, "--key")
        try:
            statement = verify_envelope(envelope, key)
        except ReportError as exc:
            raise NotVerified(f"{exc.code}: {exc.message}") from None
        lines = [f"✔ {args.file}: signature valid (DSSE, Ed25519, key id {keyid(key)[:16]}…)",
                 "✔ in-toto Statement v1, predicate https://auditagent.dev/readiness-report/v1, schema valid",
                 "✔ subject device:" + statement["subject"][0]["name"].split(":", 1)[1]
                 + ", digest = sha256 of the signing key"]
        if args.policy:
            policy = verify_policy_file(args.policy, args.policy_key)
            reported = statement["predicate"]["policy"]
            if reported.get("sha256") != policy.digest:
                raise NotVerified(f"the report was judged against policy {reported.get('id')} {reported.get('version')} "
                                  f"(sha256 {reported.get('sha256')}), not {args.policy} ({policy.id} "
                                  f"{policy.version}, sha256 {policy.digest})")
            lines.append(f"✔ judged against {args.policy}: {policy.id} {policy.version}, signed by the "
                         f"organisation's key")
    except NotVerified as exc:
        print(f"✘ NOT VERIFIED: {exc}")
        return 1
    from auditagent.textsafe import json_shown, neutralise

    # What a device signed is shown, never obeyed: no escape sequence or bidi override reaches the terminal.
    if args.json:
        print(json_shown(json.dumps(statement, indent=2, ensure_ascii=False)))
        return 0
    print(neutralise("\n".join(lines + summary_lines(statement))))
    return 0
