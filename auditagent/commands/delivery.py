"""Agent commands that talk to the collector, or keep what it will receive:

* ``auditagent enroll --server URL --token T``  register this device (new key pair)
* ``auditagent run [--dry-run]``                 what the scheduler calls: fetch policy → check → sign → spool → send
* ``auditagent status [--json]``                 enrolment, last report sent, spool depth, reports set aside
* ``auditagent resend [--report ID ...]``        put reports the collector refused back in the outbox and send
* ``auditagent report --out FILE``               the signed report of a fresh check, not sent (offline, auditors)
* ``auditagent keys show``                       this device's public key (PEM)

Exit codes: 0 ok; 1 done, but something needs attention (a report is still waiting,
was refused, or the policy failed its integrity check); 2 error.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Iterator

from auditagent.commands import CommandError, add_common, agent_paths, host_from_args
from auditagent.textsafe import neutralise


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("enroll", help="register this device with the collector (makes a new key pair)",
                       description="Register this device with a unit's enrolment token. Enrolling again "
                                   "rotates the device key; the old key stops being accepted.")
    add_common(p)
    p.add_argument("--server", metavar="URL", help="collector URL (default: server in agent.yaml)")
    tok = p.add_mutually_exclusive_group()
    tok.add_argument("--token", metavar="TOKEN", help="enrolment token from IT (or set AUDITAGENT_ENROLL_TOKEN)")
    tok.add_argument("--token-file", metavar="FILE", help="read the enrolment token from FILE")
    p.add_argument("--ca-bundle", metavar="FILE", help="trust this CA bundle for the collector")
    p.add_argument("--pin", metavar="SHA256", help="trust exactly the collector certificate with this sha256")
    p.add_argument("--insecure-http", action="store_true", help="allow plain http to a non-loopback collector")
    p.add_argument("--unit", metavar="UNIT", help="unit hint (the token decides the unit)")
    p.set_defaults(func=cmd_enroll)

    p = sub.add_parser("run", help="check, sign, spool and send a report (what the scheduler runs)",
                       description="Fetch the organisation's signed policy, check this computer, sign the report, "
                                   "keep it in the outbox and send the outbox to the collector.")
    add_common(p)
    p.add_argument("--dry-run", action="store_true",
                   help="show the exact report that would be sent; spool and send nothing")
    p.add_argument("--no-send", action="store_true", help="spool the report but do not send")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("status", help="enrolment, last report sent, reports waiting")
    add_common(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("resend", help="send again the reports the collector refused or could not take",
                       description="Move reports set aside under spool/rejected (refused, or undeliverable) back "
                                   "into the outbox, re-sign them if the device key changed, and send the outbox.")
    add_common(p)
    p.add_argument("--report", dest="report_ids", action="append", default=[], metavar="REPORT_ID",
                   help="only this one (repeat for several; default: all set aside)")
    p.set_defaults(func=cmd_resend)

    p = sub.add_parser("report", help="write the signed report of a fresh check to a file, without sending it")
    add_common(p)
    p.add_argument("--out", metavar="FILE", required=True, help="where to write the signed envelope ('-': stdout)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("keys", help="this device's keys")
    ksub = p.add_subparsers(dest="keys_command", metavar="ACTION")
    ksub.required = True
    k = ksub.add_parser("show", help="print the device's public key as PEM")
    add_common(k)
    k.add_argument("--keyid", action="store_true", help="print the key id (hex sha256 of the raw key) instead")
    k.set_defaults(func=cmd_keys_show)


# ------------------------------------------------------------------ shared set-up


class Agent:
    """Paths, config and log for one command."""

    def __init__(self, args: argparse.Namespace) -> None:
        from auditagent.config import ConfigError, load_config
        from auditagent.log import configure, get_logger

        self.args = args
        self.paths = agent_paths(args)
        try:
            self.config = load_config(self.paths.config, required=bool(getattr(args, "config", None)),
                                      keep_in=self.paths.cache)
        except ConfigError as exc:
            raise CommandError("the agent config cannot be used:\n" + "\n".join(f"  {p}" for p in exc.problems)) \
                from None
        configure(fmt=self.config.log_format)
        self.log = get_logger(command=args.command)

    def enrollment(self, required: bool = True):
        from auditagent.enrollment import EnrollmentProblem, load_enrollment

        try:
            enrollment = load_enrollment(self.paths.state)
        except EnrollmentProblem as exc:
            raise CommandError(str(exc)) from None
        if enrollment is None and required:
            raise CommandError(f"this device is not enrolled (no {self.paths.state / 'enrollment.json'}). "
                               "Enrol it first: auditagent enroll --server URL --token TOKEN")
        return enrollment

    def private_key(self, enrollment: Any):
        from auditagent.enrollment import repair_pending_key
        from auditagent.keys import DeviceKeyStore, KeyProblem, keyid

        store = DeviceKeyStore(self.paths.keys)
        try:
            repair_pending_key(self.paths.state, store)
            key = store.load()
        except KeyProblem as exc:
            raise CommandError(str(exc)) from None
        if enrollment is not None and keyid(key.public_key()) != enrollment.keyid:
            raise CommandError(f"the device key {store.path} is not the one enrolled (key id "
                               f"{enrollment.keyid[:16]}…); enrol again to register it")
        return key

    def transport(self, enrollment: Any, server: str | None = None):
        from auditagent.send import TransportSettings

        e = enrollment
        ca = self.config.ca_bundle or (e.ca_bundle if e else None)
        pin = self.config.pinned_sha256 or (e.pinned_sha256 if e and not self.config.ca_bundle else None)
        return TransportSettings(server=server or e.server, ca_bundle=str(ca) if ca else None, pinned_sha256=pin,
                                 insecure_http=self.config.insecure_http or bool(e and e.insecure_http),
                                 timeout=self.config.send_timeout)

    def lock(self):
        from auditagent.durable import StateLocked, state_lock

        class _Lock:
            def __enter__(s):  # noqa: N805
                s.cm = state_lock(self.paths.state)
                try:
                    return s.cm.__enter__()
                except StateLocked as exc:
                    raise CommandError(str(exc)) from None

            def __exit__(s, *exc):  # noqa: N805
                return s.cm.__exit__(*exc)

        return _Lock()


# ------------------------------------------------------------------ enroll


def _read_token(args: argparse.Namespace) -> str:
    if args.token_file:
        try:
            token = Path(args.token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise CommandError(f"cannot read the token file {args.token_file}: {exc.strerror or exc}") from None
    else:
        token = (args.token or os.environ.get("AUDITAGENT_ENROLL_TOKEN") or "").strip()
    if not token:
        raise CommandError("no enrolment token: pass --token TOKEN, --token-file FILE or set AUDITAGENT_ENROLL_TOKEN")
    return token


ENROLL_ADVICE = {
    "invalid_token": "the token is not known to the collector; check it was copied whole, or ask IT for a new one",
    "expired_token": "the token has expired; ask IT for a new one",
    "token_exhausted": "the token has been used as many times as allowed; ask IT for a new one",
    "rekey_needs_proof": "this device is already enrolled and its current key is missing; ask IT for a re-enrol "
                         "token for this device (auditagent-collector token create --device ID)",
    "bad_rekey_proof": "the collector did not accept this device's signature on its new key; check the clock, or ask "
                       "IT for a re-enrol token for this device",
}


def cmd_enroll(args: argparse.Namespace) -> int:
    from auditagent.config import normalise_pin
    from auditagent.enrollment import EnrollmentProblem, device_identity, enroll
    from auditagent.send import Client, ConnectionProblem, ServerError, TransportError, TransportSettings

    agent = Agent(args)
    server = (args.server or agent.config.server or "").rstrip("/")
    if not server:
        raise CommandError("no collector URL: pass --server URL or set server in agent.yaml")
    token = _read_token(args)
    ca = args.ca_bundle or (str(agent.config.ca_bundle) if agent.config.ca_bundle else None)
    if ca:
        ca = str(Path(ca).resolve())
        if not Path(ca).is_file():
            raise CommandError(f"--ca-bundle: no such file: {ca}")
    pin = normalise_pin(args.pin) if args.pin else agent.config.pinned_sha256
    if pin and (len(pin) != 64 or any(c not in "0123456789abcdef" for c in pin)):
        raise CommandError("--pin: expected the sha256 of the server's DER certificate (64 hex digits)")
    insecure = bool(args.insecure_http or agent.config.insecure_http)
    settings = TransportSettings(server=server, ca_bundle=ca, pinned_sha256=pin, insecure_http=insecure,
                                 timeout=agent.config.send_timeout)
    try:
        client = Client(settings)
    except TransportError as exc:
        raise CommandError(str(exc)) from None
    identity = device_identity(host_from_args(args))
    with agent.lock():
        try:
            record = enroll(state=agent.paths.state, client=client, token=token, identity=identity, server=server,
                            ca_bundle=ca, pinned_sha256=pin, insecure_http=insecure,
                            unit_hint=args.unit or agent.config.unit, log=agent.log)
        except ServerError as exc:
            agent.log.error("enroll_refused", http_status=exc.status, code=exc.code)
            advice = ENROLL_ADVICE.get(exc.code, exc.message or "see the collector's log")
            raise CommandError(f"the collector refused the enrolment ({exc.status} {exc.code}): {advice}") from None
        except (ConnectionProblem, TransportError, EnrollmentProblem) as exc:
            raise CommandError(f"enrolment failed: {exc}") from None
        finally:
            client.close()
        # Reports still waiting were signed with the old key: re-sign them so none is refused.
        from auditagent.delivery import make_spool, resign_spooled

        resign_spooled(make_spool(agent.paths, agent.config, agent.log), agent.private_key(record),
                       record.device_id, agent.log)
    print(f"enrolled: device {record.device_id}" + (f" in unit {record.unit}" if record.unit else "")
          + f" at {record.server} (key id {record.keyid[:16]}…)")
    return 0


# ------------------------------------------------------------------ run / report


def _check(agent: Agent, policy_outcome: Any):
    from auditagent.audit import run_check
    from auditagent.policy import PolicyError, default_policy_path, load_policy

    policy = policy_outcome.policy
    if policy is None:
        try:
            policy = load_policy(default_policy_path())
        except PolicyError as exc:
            raise CommandError("the shipped policy cannot be used:\n" +
                               "\n".join(f"  {p}" for p in exc.problems)) from None
    host = host_from_args(agent.args)
    cache = None if getattr(agent.args, "replay_host", None) else agent.paths.cache
    facts, evaluation = run_check(policy, host, cache)
    return policy, facts, evaluation


def _policy_for_run(agent: Agent, enrollment: Any, client: Any, fetch: bool, key: Any = None):
    from auditagent.config import ConfigError
    from auditagent.policy import PolicyError
    from auditagent.policy_cache import PolicyOutcome, load_local_policy, refresh
    from auditagent.report import now_iso

    try:
        if fetch:
            outcome = refresh(paths=agent.paths, config=agent.config, enrollment=enrollment, client=client,
                              log=agent.log, now=now_iso(), device_key=key)
        else:
            from auditagent.policy_cache import load_cached

            key = agent.config.policy_key()
            if agent.config.policy is not None:
                outcome = PolicyOutcome(load_local_policy(agent.config.policy, key), "local")
            else:
                cached = load_cached(agent.paths, key)
                outcome = PolicyOutcome(cached, "cache" if cached else "shipped")
    except (PolicyError, ConfigError) as exc:
        raise CommandError("the policy cannot be used:\n" + "\n".join(f"  {p}" for p in exc.problems)) from None
    for note in outcome.notes:
        agent.log.info("policy", source=outcome.source, note=note)
    if outcome.integrity:
        print("auditagent: WARNING: the organisation's policy failed its integrity check "
              f"({outcome.integrity.get('code') or outcome.integrity.get('policy', 'invalid')}): "
              f"{outcome.integrity.get('detail', '')}\n  This is reported to the collector; the report is judged by "
              f"the {JUDGED_BY.get(outcome.source, 'shipped policy')}.", file=sys.stderr)
    return outcome


JUDGED_BY = {"cache": "last verified policy (cached)", "collector": "verified policy just fetched from the collector",
             "local": "local policy from agent.yaml", "shipped": "policy shipped with the agent"}


def _make_client(agent: Agent, enrollment: Any):
    from auditagent.send import Client, TransportError

    try:
        return Client(agent.transport(enrollment)), None
    except TransportError as exc:
        return None, str(exc)


def _access_run(agent: Agent, enrollment: Any, key: Any):
    from auditagent.access_cert import AccessRun

    return AccessRun(state=agent.paths.state, keys=agent.paths.keys, device_id=enrollment.device_id, device_key=key,
                     host=host_from_args(agent.args), log=agent.log)


def _record_runs(state: Any, evaluation: Any, generated_at: str) -> None:
    """The failing runs (and grace deadlines) as of the report just spooled, for the self-check."""
    import datetime as dt

    from auditagent.grace import load_runs, next_runs, save_runs

    at = dt.datetime.fromisoformat(generated_at.replace("Z", "+00:00"))
    save_runs(state, next_runs(load_runs(state), evaluation.results, at))


@contextlib.contextmanager
def _outbox(args: argparse.Namespace) -> Iterator[tuple[Agent, Any, Any, Any]]:
    """(agent, enrollment, device key, spool) with the agent's lock held: what sending
    reports (run, resend) sets up first."""
    from auditagent.delivery import make_spool

    agent = Agent(args)
    enrollment = agent.enrollment()
    with agent.lock():
        yield agent, enrollment, agent.private_key(enrollment), make_spool(agent.paths, agent.config, agent.log)


def _deliver(agent: Agent, spool: Any, send: Any) -> Any:
    """Deliver the outbox with the configured retries (a DeliverySummary)."""
    from auditagent.send import deliver_spool

    return deliver_spool(spool, send, attempts=agent.config.send_attempts, max_delay=agent.config.send_max_delay,
                         log=agent.log)


def cmd_run(args: argparse.Namespace) -> int:
    from auditagent.delivery import build_report, save_delivery_state, sequence_counter
    from auditagent.report import now_iso

    with _outbox(args) as (agent, enrollment, key, spool):
        spool.recover()
        counter = sequence_counter(agent.paths.state)
        counter.advance_to(spool.highest_sequence())
        client, transport_error = _make_client(agent, enrollment)
        if transport_error:
            agent.log.error("transport_refused", error=transport_error)
        try:
            outcome = _policy_for_run(agent, enrollment, client, fetch=client is not None, key=key)
            policy, facts, evaluation = _check(agent, outcome)
            note = spool.eviction_note()
            too_large = spool.too_large_note()  # said by every report while such a one is kept
            spool_info = {**note, "pending": spool.depth(), **({"too_large": too_large} if too_large else {})}
            sequence = counter.peek_next() if args.dry_run else counter.take()
            built = build_report(policy=policy, facts=facts, evaluation=evaluation, enrollment=enrollment,
                                 private_key=key, sequence=sequence, spool_note=spool_info,
                                 integrity=outcome.integrity)
            if args.dry_run:
                from auditagent.view import report_text

                sys.stdout.write(report_text(built.statement) + "\n")
                print(f"(dry run: report {built.sequence} was not spooled or sent; policy {policy.id} "
                      f"{policy.version} from {outcome.source})", file=sys.stderr)
                return 0
            from auditagent.send import oversize_reason
            from auditagent.spool import TOO_LARGE

            oversize = oversize_reason(built.data)
            if oversize:
                spool.set_aside(built.data, built.sequence, built.report_id, TOO_LARGE, oversize)
                agent.log.error("report_too_large", report_id=built.report_id, sequence=built.sequence,
                                bytes=len(built.data), kept_in=str(spool.directory / "rejected"))
            else:
                spool.add(built.data, built.sequence, built.report_id)
            _record_runs(agent.paths.state, evaluation, built.statement["predicate"]["generated_at"])
            agent.log.info("report_spooled", report_id=built.report_id, sequence=built.sequence,
                           verdict=built.verdict, policy_id=policy.id, policy_source=outcome.source)
            state_update: dict[str, Any] = {"last_report": {"report_id": built.report_id, "sequence": built.sequence,
                                                            "verdict": built.verdict, "generated_at":
                                                                built.statement["predicate"]["generated_at"]},
                                            "policy": {"id": policy.id, "version": policy.version,
                                                       "sha256": policy.digest, "source": outcome.source},
                                            "policy_integrity": outcome.integrity}
            summary = None
            if client is not None and not args.no_send:
                gate = _access_run(agent, enrollment, key)
                gate.register_if_needed(client)
                summary = _deliver(agent, spool, gate.capture(client.send_report))
                gate.finish()
                state_update["last_attempt_at"] = now_iso()
                state_update["last_run"] = summary.to_dict()
                if summary.last_delivered:
                    state_update["last_sent"] = {**summary.last_delivered, "at": now_iso()}
                # A retry that later succeeded is not worth showing in `status`.
                state_update["last_error"] = summary.last_error if (summary.stopped or summary.rejected) else None
                # A collector that has seen higher sequence numbers (state restored from a backup):
                # jump past them so the next reports are accepted.
                seen = [int(r["last_sequence"]) for r in summary.rejected
                        if r.get("code") == "replayed_sequence" and str(r.get("last_sequence", "")).isdigit()]
                if seen:
                    counter.advance_to(max(seen))
            elif transport_error:
                state_update["last_error"] = {"code": "transport", "message": transport_error}
            if oversize:
                state_update["last_error"] = {"code": TOO_LARGE, "message": oversize}
            save_delivery_state(agent.paths.state, state_update)
        finally:
            if client is not None:
                client.close()
    waiting = spool.depth()
    result = {"report_id": built.report_id, "sequence": built.sequence, "verdict": built.verdict,
              "policy": {"id": policy.id, "version": policy.version, "source": outcome.source},
              "integrity": outcome.integrity, "delivery": summary.to_dict() if summary else None,
              "spool_depth": waiting, "error": transport_error}
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        line = (f"report {built.sequence} ({built.verdict}) " +
                ("NOT spooled: too large, kept in " + str(spool.directory / "rejected") if oversize else "spooled"))
        if summary is not None:
            line += f"; sent {summary.delivered}" + (f", already there {summary.duplicates}" if summary.duplicates
                                                     else "")
            if summary.rejected:
                line += f", refused {len(summary.rejected)} (kept in {spool.directory / 'rejected'})"
        line += f"; {waiting} waiting in the spool"
        print(line)
        if summary is not None and summary.stopped:
            print(f"auditagent: {summary.stopped}", file=sys.stderr)
        if transport_error:
            print(f"auditagent: not sent: {transport_error}", file=sys.stderr)
    if transport_error:
        return 2
    if oversize:
        print(f"auditagent: report {built.sequence} not sent: {oversize}", file=sys.stderr)
    attention = waiting > 0 or bool(summary and summary.rejected) or bool(outcome.integrity) or bool(oversize)
    return 1 if attention else 0


def cmd_report(args: argparse.Namespace) -> int:
    from auditagent.delivery import build_report, make_spool, sequence_counter

    agent = Agent(args)
    enrollment = agent.enrollment()
    with agent.lock():
        key = agent.private_key(enrollment)
        outcome = _policy_for_run(agent, enrollment, None, fetch=False)
        policy, facts, evaluation = _check(agent, outcome)
        counter = sequence_counter(agent.paths.state)
        counter.advance_to(make_spool(agent.paths, agent.config).highest_sequence())
        built = build_report(policy=policy, facts=facts, evaluation=evaluation, enrollment=enrollment,
                             private_key=key, sequence=counter.take(), spool_note=None, integrity=outcome.integrity)
    text = json.dumps(built.envelope, indent=2) + "\n"
    if args.out == "-":
        sys.stdout.write(text)
    else:
        out = Path(args.out)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"cannot write {out}: {exc.strerror or exc}") from None
        print(f"signed report {built.report_id} (sequence {built.sequence}, {built.verdict}) written to {out}; "
              f"not sent", file=sys.stderr)
    agent.log.info("report_written", report_id=built.report_id, sequence=built.sequence, out=args.out)
    return 0


# ------------------------------------------------------------------ status, keys


def status_dict(agent: Agent) -> dict[str, Any]:
    from auditagent.delivery import load_delivery_state, make_spool
    from auditagent.policy_cache import cached_meta

    enrollment = agent.enrollment(required=False)
    spool = make_spool(agent.paths, agent.config)
    entries = spool.entries()
    delivery = load_delivery_state(agent.paths.state)
    return {
        "config": str(agent.paths.config) if agent.paths.config.is_file() else None,
        "state": str(agent.paths.state),
        "enrolled": enrollment is not None,
        "enrollment": None if enrollment is None else {
            "device_id": enrollment.device_id, "unit": enrollment.unit, "server": enrollment.server,
            "keyid": enrollment.keyid, "enrolled_at": enrollment.enrolled_at,
            "tls": "pinned" if (agent.config.pinned_sha256 or enrollment.pinned_sha256) else
                   ("ca_bundle" if (agent.config.ca_bundle or enrollment.ca_bundle) else "system")},
        "last_sent": delivery.get("last_sent"),
        "last_report": delivery.get("last_report"),
        "last_attempt_at": delivery.get("last_attempt_at"),
        "last_error": delivery.get("last_error"),
        "policy": delivery.get("policy") or (cached_meta(agent.paths) or None),
        "policy_integrity": delivery.get("policy_integrity"),
        "access": _access_status(agent.paths.state),
        "spool": {"depth": len(entries), "bytes": sum(e.size for e in entries),
                  "oldest_sequence": entries[0].sequence if entries else None,
                  "rejected": len(spool.rejected()), "evicted_untold": spool.eviction_note()["evicted"],
                  "set_aside": [{"report_id": e.report_id, "sequence": e.sequence, **{
                      k: v for k, v in spool.reason(e).items() if k in ("code", "message", "http_status")}}
                      for e in spool.rejected()],
                  "max_reports": agent.config.spool_max_reports, "max_bytes": agent.config.spool_max_bytes},
    }


def _access_status(state: Path) -> dict[str, Any] | None:
    """The readiness certificate and the collector's last answer (auditagent.access_cert)."""
    from auditagent.access_cert import load_state

    st = load_state(state)
    if not st:
        return None
    cert, last = st.get("certificate") or {}, st.get("last") or {}
    return {"not_after": cert.get("not_after"), "installed": cert.get("installed"), "granted": last.get("granted"),
            "reason": last.get("reason"), "error": st.get("error")}


def cmd_status(args: argparse.Namespace) -> int:
    agent = Agent(args)
    s = status_dict(agent)
    if args.json:
        json.dump(s, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    e = s["enrollment"]
    lines = []
    if e:
        lines.append(f"enrolled:     yes — device {e['device_id']}" + (f", unit {e['unit']}" if e["unit"] else ""))
        lines.append(f"collector:    {e['server']} (TLS trust: {e['tls']})")
        lines.append(f"key id:       {e['keyid']}  (enrolled {e['enrolled_at']})")
    else:
        lines.append("enrolled:     no — run: auditagent enroll --server URL --token TOKEN")
    sent = s["last_sent"]
    lines.append("last sent:    " + (f"report {sent['sequence']} ({sent['report_id']}) at {sent['at']}" if sent
                                     else "never"))
    if s["last_error"]:
        err = s["last_error"]
        lines.append(f"last error:   {err.get('code')}: {err.get('message') or ''}".rstrip(": "))
    sp = s["spool"]
    lines.append(f"spool:        {sp['depth']} report(s) waiting ({sp['bytes']} bytes)"
                 + (f", oldest sequence {sp['oldest_sequence']}" if sp["oldest_sequence"] else "")
                 + (f"; {sp['rejected']} refused by the collector (kept in spool/rejected)" if sp["rejected"] else ""))
    for r in sp["set_aside"]:
        lines.append(f"  set aside:  report {r['sequence']} ({r['report_id']}): {r.get('http_status') or '-'} "
                     f"{r.get('code') or '?'}: {neutralise(r.get('message') or '')}"[:300])
    if any(r.get("code") != "too_large" for r in sp["set_aside"]):
        lines.append("              send them again with: auditagent resend")
    pol = s["policy"]
    if pol:
        lines.append(f"policy:       {pol.get('id') or pol.get('policy_id')} {pol.get('version')}"
                     + (f" (from {pol['source']})" if pol.get("source") else ""))
    if s["policy_integrity"]:
        lines.append(f"INTEGRITY:    the last policy from the collector was refused: "
                     f"{s['policy_integrity'].get('detail', '')}")
    acc = s["access"]
    if acc:
        lines.append("access:       " + (f"certificate until {acc['not_after']}" if acc.get("not_after") else "none")
                     + (f"; last answer: {acc['reason']}" if acc.get("reason") else ""))
    lines.append(f"state folder: {s['state']}")
    print("\n".join(lines))
    return 0


def cmd_resend(args: argparse.Namespace) -> int:
    from auditagent.delivery import resign_spooled, save_delivery_state
    from auditagent.report import now_iso

    with _outbox(args) as (agent, enrollment, key, spool):
        chosen = [e for e in spool.rejected() if not args.report_ids or e.report_id in args.report_ids]
        missing = set(args.report_ids) - {e.report_id for e in chosen}
        if missing:
            raise CommandError(f"not among the reports set aside: {', '.join(sorted(missing))} "
                               "(see auditagent status)")
        for entry in chosen:
            spool.requeue(entry)
        resign_spooled(spool, key, enrollment.device_id, agent.log)
        client, transport_error = _make_client(agent, enrollment)
        if client is None:
            raise CommandError(f"{len(chosen)} report(s) back in the outbox, not sent: {transport_error}")
        try:
            summary = _deliver(agent, spool, client.send_report)
        finally:
            client.close()
        save_delivery_state(agent.paths.state, {"last_attempt_at": now_iso(), "last_run": summary.to_dict()})
    print(f"resent {len(chosen)} report(s): delivered {summary.delivered + summary.duplicates}, "
          f"refused {len(summary.rejected)}, {spool.depth()} waiting")
    return 0 if not summary.rejected and spool.depth() == 0 else 1


def cmd_keys_show(args: argparse.Namespace) -> int:
    from auditagent.keys import DeviceKeyStore, KeyProblem, keyid, public_key_pem

    agent = Agent(args)
    try:
        key = DeviceKeyStore(agent.paths.keys).load()
    except KeyProblem as exc:
        raise CommandError(str(exc)) from None
    if args.keyid:
        print(keyid(key.public_key()))
    else:
        sys.stdout.write(public_key_pem(key.public_key()))
    return 0
