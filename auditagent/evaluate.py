"""Policy × Facts → Results. Pure: no I/O, no clock (ages are measured from
``facts.collected_at``), so the collector can re-judge stored facts and get the
same answer the laptop got.

Each result is pass | fail | unknown | not_applicable with messages (code + args,
translated by the view), the evidence (the facts used) and the remediation. The
verdict is *ready* only if every required check passes (a check that does not apply
to this OS does not block).
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from auditagent.isotime import parse_iso_moment
from auditagent.policy import Check, Policy

PASS, FAIL, UNKNOWN, NA = "pass", "fail", "unknown", "not_applicable"
STATUSES = (PASS, FAIL, UNKNOWN, NA)


@dataclass(frozen=True)
class Message:
    """A translatable message: catalog code and its arguments."""

    code: str
    args: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "args": self.args}


@dataclass(frozen=True)
class Result:
    """One check judged against the facts."""

    check_id: str
    kind: str
    severity: str
    status: str
    messages: tuple[Message, ...]
    evidence: dict[str, Any]
    remediation: dict[str, list[str]]  # language → steps, for this OS (distribution and version if given)
    # The platform's other entries (e.g. other Linux distributions): policy key → language → steps.
    other_remediation: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    remediation_key: str | None = None  # the policy's entry ``remediation`` came from (linux.debian …)
    grace_hours: int | None = None  # the policy's grace period for this check (sent, like the severity)

    def to_dict(self, with_remediation: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {"check_id": self.check_id, "kind": self.kind, "severity": self.severity,
                             "status": self.status, "messages": [m.to_dict() for m in self.messages],
                             "evidence": self.evidence}
        if self.grace_hours:
            d["grace_hours"] = self.grace_hours
        if with_remediation:
            d["remediation"] = self.remediation
            if self.other_remediation:
                d["other_remediation"] = self.other_remediation
        return d


@dataclass(frozen=True)
class Evaluation:
    """Every check of a policy judged, and the verdict."""

    policy_id: str
    policy_version: str
    policy_digest: str
    platform: str
    collected_at: str
    verdict: str  # ready | not_ready
    results: tuple[Result, ...]

    @property
    def counts(self) -> dict[str, int]:
        return {s: sum(1 for r in self.results if r.status == s) for s in STATUSES}

    def to_dict(self, with_remediation: bool = True) -> dict[str, Any]:
        return {"policy": {"id": self.policy_id, "version": self.policy_version, "sha256": self.policy_digest},
                "platform": self.platform, "collected_at": self.collected_at, "verdict": self.verdict,
                "counts": self.counts, "results": [r.to_dict(with_remediation) for r in self.results]}


Outcome = tuple[str, list[Message], dict[str, Any]]


def evaluate(policy: Policy, facts: dict[str, Any]) -> Evaluation:
    platform = str(facts.get("platform") or "")
    results = tuple(evaluate_check(check, facts) for check in policy.checks)
    ready = all(r.status in (PASS, NA) for r in results if r.severity == "required")
    return Evaluation(policy.id, policy.version, policy.digest, platform, str(facts.get("collected_at") or ""),
                      "ready" if ready else "not_ready", results)


def evaluate_check(check: Check, facts: dict[str, Any]) -> Result:
    platform = str(facts.get("platform") or "")
    if check.platforms and platform not in check.platforms:
        outcome: Outcome = (NA, [Message("na.platform", {"platform": platform})], {})
    else:
        outcome = _gate(check, facts) or EVALUATORS[check.kind](check.parameters, facts)
    status, messages, evidence = outcome
    os_facts = facts.get("os") if isinstance(facts.get("os"), dict) else None
    key, steps, others = check.remediation_choice(platform, os_facts)
    return Result(check.id, check.kind, check.severity, status, tuple(messages), evidence, steps, others, key,
                  check.grace_hours)


def _gate(check: Check, facts: dict[str, Any]) -> Outcome | None:
    """A section the probe could not see at all, or that does not apply, decides alone."""
    if check.kind == "fact":
        return None
    for name in check.reads():
        section = facts.get(name)
        if not isinstance(section, dict):
            return UNKNOWN, [Message("section.missing", {"section": name})], {}
        status = section.get("status")
        reasons = list(section.get("reasons") or [])  # coded: translated when shown (i18n.reason_text)
        if status == "unknown":
            return UNKNOWN, [Message("section.unknown", {"section": name, "reasons": reasons})], \
                {name: {"status": status, "reasons": section.get("reasons") or []}}
        if status == "not_applicable":
            return NA, [Message("section.not_applicable", {"section": name, "reasons": reasons})], {}
    return None


def combine(statuses: list[str]) -> str:
    """fail beats unknown beats pass: one unseen volume never lets a check pass."""
    if FAIL in statuses:
        return FAIL
    if UNKNOWN in statuses or not statuses:
        return UNKNOWN
    return PASS


_parse_time = parse_iso_moment


def _days_between(earlier: Any, facts: dict[str, Any]) -> float | None:
    then, now = _parse_time(earlier), _parse_time(facts.get("collected_at"))
    if then is None or now is None:
        return None
    return round((now - then).total_seconds() / 86400, 1)


# ------------------------------------------------------------------ kinds


def eval_disk_encryption(p: dict[str, Any], facts: dict[str, Any]) -> Outcome:
    volumes = facts["disk"].get("volumes") or []
    chosen = [v for v in volumes
              if (v.get("role") == "system" and p["system"])
              or (v.get("role") in ("home", "data") and p["fixed"] and v.get("fixed", True))
              or (v.get("role") == "swap" and p["swap"])]
    statuses, messages = [], []
    if p["system"] and not any(v.get("role") == "system" for v in volumes):
        statuses.append(UNKNOWN)
        messages.append(Message("disk.no_system_volume"))
    for v in chosen:
        args = {"mount": v.get("mount") or "?", "device": v.get("device") or "?", "method": v.get("method") or "-",
                "percent": v.get("percent")}
        state = v.get("state")
        if v.get("encrypted") is True:
            statuses.append(PASS)
        elif state == "encrypting" and p["allow_in_progress"]:
            statuses.append(PASS)
            messages.append(Message("disk.in_progress_allowed", args))
        elif state in ("suspended", "clear_key", "waiting_activation", "deferred", "pending_restart"):
            # Each has its own cause and fix (docs/facts.md disk.volumes[].state).
            statuses.append(FAIL)
            messages.append(Message(f"disk.{state}", args))
        elif state == "encrypting":
            statuses.append(FAIL)
            messages.append(Message("disk.in_progress", args))
        elif v.get("encrypted") is False:
            statuses.append(FAIL)
            messages.append(Message("disk.not_encrypted", args))
        else:
            statuses.append(UNKNOWN)
            messages.append(Message("disk.volume_unknown", {**args, "reason": v.get("reason") or []}))
    status = combine(statuses)
    if status == PASS:
        messages.insert(0, Message("disk.all_encrypted", {"count": len(chosen)}))
    evidence = {"disk.volumes": [{k: v.get(k) for k in ("mount", "device", "role", "fixed", "encrypted", "method",
                                                         "state", "percent") if k in v} for v in chosen]}
    return status, messages, evidence


def eval_os_patches(p: dict[str, Any], facts: dict[str, Any]) -> Outcome:
    sec = facts["patches"]
    statuses, messages = [], []
    days = _days_between(sec.get("last_update"), facts)
    if days is None:
        statuses.append(UNKNOWN)
        messages.append(Message("patches.last_update_unknown"))
    elif days > p["max_days_since_update"]:
        statuses.append(FAIL)
        messages.append(Message("patches.last_update_old", {"days": days, "max": p["max_days_since_update"]}))
    else:
        statuses.append(PASS)
        messages.append(Message("patches.last_update_ok", {"days": days}))
    pending = sec.get("pending_security")
    if pending is None:
        statuses.append(UNKNOWN)
        messages.append(Message("patches.pending_unknown"))
    elif pending > p["max_pending_security"]:
        statuses.append(FAIL)
        messages.append(Message("patches.pending_security", {"count": pending, "max": p["max_pending_security"]}))
    max_age = p.get("max_pending_security_age_days")
    oldest = sec.get("pending_security_oldest_days")
    if max_age is not None and pending:
        if oldest is None:
            statuses.append(UNKNOWN)
            messages.append(Message("patches.pending_age_unknown"))
        elif oldest > max_age:
            statuses.append(FAIL)
            messages.append(Message("patches.pending_security_old", {"days": oldest, "max": max_age}))
    if not p["allow_reboot_pending"]:
        reboot = sec.get("reboot_required")
        if reboot is True:
            statuses.append(FAIL)
            messages.append(Message("patches.reboot_required"))
        elif reboot is None:
            statuses.append(UNKNOWN)
            messages.append(Message("patches.reboot_unknown"))
    evidence = {f"patches.{k}": sec.get(k) for k in ("manager", "last_update", "pending", "pending_security",
                                                      "pending_security_oldest_days", "reboot_required",
                                                      "cached_at") if k in sec}
    if days is not None:
        evidence["days_since_update"] = days
    return combine(statuses), messages, evidence


def version_tuple(value: Any) -> tuple[int, ...] | None:
    """'10.0.22631.3447' → (10, 0, 22631, 3447); '14.4.1' → (14, 4, 1); None if not numeric."""
    parts = re.findall(r"\d+", str(value)) if value is not None else []
    if not parts or not re.match(r"\s*\d", str(value)):
        return None
    return tuple(int(x) for x in parts)


def compare_versions(a: Any, b: Any) -> int | None:
    ta, tb = version_tuple(a), version_tuple(b)
    if ta is None or tb is None:
        return None
    n = max(len(ta), len(tb))
    ta, tb = ta + (0,) * (n - len(ta)), tb + (0,) * (n - len(tb))
    return (ta > tb) - (ta < tb)


def _full_os_version(os_facts: dict[str, Any]) -> str | None:
    version = os_facts.get("version")
    build = str(os_facts.get("build") or "")
    # Windows: version 10.0.22631 and build 22631.3447 → 10.0.22631.3447 (UBR counts: monthly patches).
    if os_facts.get("id") == "windows" and version and "." in build and build.split(".")[0] == str(version).split(".")[-1]:
        return f"{version}.{build.split('.', 1)[1]}"
    return version


def eval_os_supported(p: dict[str, Any], facts: dict[str, Any]) -> Outcome:
    osf = facts["os"]
    os_id, version = osf.get("id"), _full_os_version(osf)
    args = {"id": os_id or "?", "name": osf.get("name") or os_id or "?", "version": version or "?"}
    evidence = {f"os.{k}": osf.get(k) for k in ("id", "name", "version", "build", "edition") if k in osf}
    minimum = p["minimum"].get(os_id) if os_id else None
    if isinstance(minimum, dict):
        edition = str(osf.get("edition") or "").lower()
        chosen = next((v for k, v in minimum.items() if k != "default" and k.lower() in edition), None)
        minimum = chosen if chosen is not None else minimum.get("default")
    if minimum is None:
        verdict = p["unlisted"]
        return {"pass": PASS, "fail": FAIL}.get(verdict, UNKNOWN), [Message("os.unlisted", args)], evidence
    args["minimum"] = str(minimum)
    cmp = compare_versions(version, minimum)
    if cmp is None:
        return UNKNOWN, [Message("os.version_unknown", args)], evidence
    if cmp < 0:
        return FAIL, [Message("os.unsupported", args)], evidence
    return PASS, [Message("os.supported", args)], evidence


def _norm_server(url: Any) -> str:
    s = str(url or "").strip().lower().rstrip("/")
    return s if "://" in s else f"https://{s}"


def account_matches(rule: dict[str, Any], account: dict[str, Any]) -> bool | None:
    """True/False, or None when the account lacks a fact the rule needs."""
    for key in ("kind", "tenant", "email_domain"):
        want = rule.get(key)
        if want is None:
            continue
        have = account.get(key)
        if have is None:
            return None
        if str(have).lower() != str(want).lower():
            return False
    if rule.get("server") is not None:
        have = account.get("server")
        if have is None:
            return None
        want, got = _norm_server(rule["server"]), _norm_server(have)
        if not (got == want or got.startswith(want + "/")):
            return False
    return True


def _describe_account(a: dict[str, Any]) -> str:
    parts = [str(a[k]) for k in ("kind", "email_domain", "tenant", "server") if a.get(k)]
    return ", ".join(parts) or "?"


def eval_cloud_storage(p: dict[str, Any], facts: dict[str, Any]) -> Outcome:
    clients = facts["cloud"].get("clients") or []
    approved = p["approved"]
    statuses, messages, evidence = [], [], []
    for c in clients:
        name = c.get("name") or "?"
        rules = [r for r in approved if r.get("client") == name]
        accounts = c.get("accounts") or []
        evidence.append({"name": name, "installed": c.get("installed"), "running": c.get("running"),
                         "accounts": accounts})
        how = "running" if c.get("running") else ("signed_in" if accounts else "installed")
        if not rules:
            if c.get("running") or accounts or p["flag_installed"]:
                statuses.append(FAIL)
                messages.append(Message("cloud.unapproved_client", {"client": name, "how": how}))
            continue
        for a in accounts:
            verdicts = [account_matches(r, a) for r in rules]
            if True in verdicts:
                statuses.append(PASS)
            elif None in verdicts:
                statuses.append(UNKNOWN)
                messages.append(Message("cloud.account_unknown", {"client": name, "account": _describe_account(a)}))
            else:
                statuses.append(FAIL)
                messages.append(Message("cloud.unapproved_account", {"client": name,
                                                                    "account": _describe_account(a)}))
        if not accounts:
            statuses.append(PASS)  # an approved client with no account signed in syncs nothing
    status = combine(statuses) if statuses else PASS
    if facts["cloud"].get("status") == "partial" and status == PASS:
        status = UNKNOWN
        messages.append(Message("section.partial", {"section": "cloud",
                                                    "reasons": list(facts["cloud"].get("reasons") or [])}))
    if status == PASS:
        names = sorted({c.get("name") for c in clients})
        messages.insert(0, Message("cloud.ok" if names else "cloud.none", {"clients": ", ".join(names)}))
    return status, messages, {"cloud.clients": evidence}


def eval_firewall(p: dict[str, Any], facts: dict[str, Any]) -> Outcome:
    fw = facts["firewall"]
    evidence = {f"firewall.{k}": fw.get(k) for k in ("enabled", "backend", "default_inbound", "profiles", "rules")
                if k in fw}
    profiles = fw.get("profiles")
    if p["all_profiles"] and isinstance(profiles, dict) and profiles:
        off = sorted(k for k, v in profiles.items() if v is False)
        if off:
            return FAIL, [Message("firewall.profiles_off", {"profiles": ", ".join(off)})], evidence
        if any(v is None for v in profiles.values()):
            return UNKNOWN, [Message("firewall.unknown")], evidence
        return PASS, [Message("firewall.on", {"backend": fw.get("backend") or "-"})], evidence
    enabled = fw.get("enabled")
    if enabled is True:
        return PASS, [Message("firewall.on", {"backend": fw.get("backend") or "-"})], evidence
    if enabled is False:
        return FAIL, [Message("firewall.off", {"backend": fw.get("backend") or "-"})], evidence
    return UNKNOWN, [Message("firewall.unknown")], evidence


def eval_screen_lock(p: dict[str, Any], facts: dict[str, Any]) -> Outcome:
    sl = facts["screen_lock"]
    evidence = {f"screen_lock.{k}": sl.get(k) for k in ("enabled", "idle_seconds", "desktop") if k in sl}
    if sl.get("enabled") is False:
        return FAIL, [Message("screen.disabled")], evidence
    seconds = sl.get("idle_seconds")
    if sl.get("enabled") is None or seconds is None:
        return UNKNOWN, [Message("screen.unknown")], evidence
    if seconds > p["max_idle_seconds"]:
        return FAIL, [Message("screen.too_long", {"seconds": seconds, "max": p["max_idle_seconds"]})], evidence
    return PASS, [Message("screen.ok", {"seconds": seconds})], evidence


def eval_antimalware(p: dict[str, Any], facts: dict[str, Any]) -> Outcome:
    av = facts["antimalware"]
    evidence = {f"antimalware.{k}": av.get(k) for k in ("product", "realtime", "signature_age_days") if k in av}
    statuses, messages = [], []
    if p["realtime"]:
        rt = av.get("realtime")
        statuses.append({True: PASS, False: FAIL}.get(rt, UNKNOWN))
        if rt is not True:
            messages.append(Message("av.realtime_off" if rt is False else "av.unknown"))
    age = av.get("signature_age_days")
    if age is None:
        statuses.append(UNKNOWN)
        messages.append(Message("av.unknown"))
    elif age > p["max_signature_age_days"]:
        statuses.append(FAIL)
        messages.append(Message("av.signatures_old", {"days": age, "max": p["max_signature_age_days"]}))
    else:
        statuses.append(PASS)
    status = combine(statuses)
    if status == PASS:
        messages.insert(0, Message("av.ok", {"product": av.get("product") or "-"}))
    return status, messages, evidence


_MISSING = object()


def resolve_path(facts: Any, path: str) -> list[Any]:
    """Values at a fact path; ``[]`` fans out over a list. Missing → [] (not seen)."""
    values = [facts]
    for token in re.findall(r"\[\]|[a-z_][a-z0-9_]*", path):
        nxt: list[Any] = []
        for v in values:
            if token == "[]":
                if isinstance(v, list):
                    nxt.extend(v)
            elif isinstance(v, dict) and token in v:
                nxt.append(v[token])
        values = nxt
    return values


def _compare(op: str, actual: Any, expected: Any) -> bool | None:
    if op == "exists":
        return actual is not None
    if actual is None:
        return None
    if op == "equals":
        return actual == expected or str(actual).lower() == str(expected).lower() \
            if isinstance(actual, str) or isinstance(expected, str) else actual == expected
    if op == "not_equals":
        return not _compare("equals", actual, expected)
    if op in ("in", "not_in"):
        hit = any(_compare("equals", actual, e) for e in expected)
        return hit if op == "in" else not hit
    if op in ("at_least", "at_most"):
        if isinstance(actual, (int, float)) and not isinstance(actual, bool) and isinstance(expected, (int, float)):
            cmp = (actual > expected) - (actual < expected)
        else:
            cmp = compare_versions(actual, expected)
            if cmp is None:
                return None
        return cmp >= 0 if op == "at_least" else cmp <= 0
    if op == "matches":
        return re.search(str(expected), str(actual)) is not None
    raise ValueError(op)


def eval_fact(p: dict[str, Any], facts: dict[str, Any]) -> Outcome:
    path, op, expected = p["path"], p["op"], p.get("value")
    values = resolve_path(facts, path)
    evidence = {path: values if "[]" in path else (values[0] if values else None)}
    args = {"path": path, "op": op, "expected": expected, "actual": evidence[path]}
    if not values or (op != "exists" and all(v is None for v in values)):
        verdict = p["missing"]
        return {"pass": PASS, "fail": FAIL}.get(verdict, UNKNOWN), [Message("fact.missing", args)], evidence
    outcomes = [_compare(op, v, expected) for v in values]
    if p["quantifier"] == "any":
        status = PASS if True in outcomes else (UNKNOWN if None in outcomes else FAIL)
    else:
        status = FAIL if False in outcomes else (UNKNOWN if None in outcomes else PASS)
    return status, [Message("fact.ok" if status == PASS else "fact.failed" if status == FAIL else "fact.missing",
                            args)], evidence


EVALUATORS: dict[str, Callable[[dict[str, Any], dict[str, Any]], Outcome]] = {
    "disk_encryption": eval_disk_encryption,
    "os_patches": eval_os_patches,
    "os_supported": eval_os_supported,
    "cloud_storage": eval_cloud_storage,
    "firewall": eval_firewall,
    "screen_lock": eval_screen_lock,
    "antimalware": eval_antimalware,
    "fact": eval_fact,
}
