"""Linux ``firewall`` section: does a ruleset actually filter inbound traffic?

Frontends (ufw, firewalld) only say what they intend; the kernel ruleset is what
is. So the nftables ruleset (JSON, not prose) is judged first, iptables-save where
nft is missing (or legacy iptables tables hide beside it), and the frontends name
the backend. An empty ruleset is *off*, not unknown.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from auditagent.host import CommandResult
from auditagent.probes import ProbeContext
from auditagent.reasons import reason

C_ENV = {"LC_ALL": "C", "LANG": "C", "LANGUAGE": ""}
DROP_VERDICTS = ("drop", "reject")


@dataclass
class RulesetVerdict:
    """What a ruleset does to inbound packets, per IP version."""

    filters: bool = False  # some inbound traffic is dropped/rejected
    default_drop_v4: bool = False
    default_drop_v6: bool = False
    rules: int = 0
    input_chains: int = 0

    def default_inbound(self, ipv6_enabled: bool = True) -> str:
        # A host closed on IPv4 but open on IPv6 is open.
        closed = self.default_drop_v4 and (self.default_drop_v6 or not ipv6_enabled)
        return "drop" if closed else "accept"


# --------------------------------------------------------------------------- nftables


def _verdict_of(expr: list[dict[str, Any]]) -> tuple[str | None, str | None, bool]:
    """(verdict, jump target, unconditional) of one nft rule's expression list."""
    verdict = target = None
    conditional = False
    for stmt in expr:
        if not isinstance(stmt, dict):
            continue
        key = next(iter(stmt), None)
        if key in ("match", "lookup"):
            conditional = True
        elif key in ("accept", "drop", "reject", "return"):
            verdict = key
        elif key in ("jump", "goto"):
            verdict, target = key, (stmt[key] or {}).get("target")
        elif key == "vmap":
            verdict, conditional = "vmap", True
    return verdict, target, not conditional


def analyse_nft_ruleset(data: dict[str, Any]) -> RulesetVerdict:
    """Judge ``nft -j list ruleset``: input-hook base chains of ip/ip6/inet, their policy
    and the drop/reject rules reachable from them through jump/goto."""
    items = data.get("nftables", []) if isinstance(data, dict) else []
    chains: dict[tuple[str, str, str], dict[str, Any]] = {}
    rules: dict[tuple[str, str, str], list[list[dict[str, Any]]]] = {}
    for item in items:
        if "chain" in item:
            c = item["chain"]
            chains[(c.get("family"), c.get("table"), c.get("name"))] = c
        elif "rule" in item:
            r = item["rule"]
            rules.setdefault((r.get("family"), r.get("table"), r.get("chain")), []).append(r.get("expr") or [])
    out = RulesetVerdict(rules=sum(len(v) for v in rules.values()))

    def reaches_drop(key: tuple[str, str, str], seen: set) -> tuple[bool, bool]:
        """(some rule drops, an unconditional drop ends the chain)."""
        if key in seen:
            return False, False
        seen.add(key)
        some = final = False
        for expr in rules.get(key, []):
            verdict, target, unconditional = _verdict_of(expr)
            if verdict in DROP_VERDICTS or verdict == "vmap" and '"drop"' in json.dumps(expr):
                some = True
                if unconditional and verdict in DROP_VERDICTS:
                    final = True
            elif verdict in ("jump", "goto") and target:
                sub_some, sub_final = reaches_drop((key[0], key[1], target), seen)
                some = some or sub_some
                if unconditional and sub_final:
                    final = True
            elif verdict == "accept" and unconditional:
                break  # everything after an unconditional accept is dead
        return some, final

    for key, chain in chains.items():
        family = chain.get("family")
        if chain.get("hook") != "input" or family not in ("ip", "ip6", "inet") or chain.get("type", "filter") != "filter":
            continue
        out.input_chains += 1
        some, final = reaches_drop(key, set())
        drops = chain.get("policy") == "drop" or final
        out.filters = out.filters or some or chain.get("policy") == "drop"
        if drops and family in ("ip", "inet"):
            out.default_drop_v4 = True
        if drops and family in ("ip6", "inet"):
            out.default_drop_v6 = True
    return out


# --------------------------------------------------------------------------- iptables


def parse_iptables_save(text: str) -> dict[str, dict[str, Any]]:
    """``iptables-save``: {table: {policies: {chain: policy}, rules: [(chain, target, conditional)]}}."""
    tables: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("*"):
            current = tables.setdefault(line[1:], {"policies": {}, "rules": []})
        elif current is None or not line or line.startswith("#"):
            continue
        elif line.startswith(":"):
            name, _, rest = line[1:].partition(" ")
            current["policies"][name] = rest.split(" ")[0]
        elif line.startswith("-A "):
            parts = _drop_comments(line.split())
            target = None
            for flag in ("-j", "-g"):
                if flag in parts[2:]:
                    i = parts.index(flag, 2)
                    target = parts[i + 1] if i + 1 < len(parts) else None
            # A rule with nothing before its target matches every packet.
            conditional = len(parts) > 2 and parts[2] not in ("-j", "-g")
            current["rules"].append((parts[1], target, conditional))
    return tables


def _drop_comments(parts: list[str]) -> list[str]:
    out, i = [], 0
    while i < len(parts):
        if parts[i] == "-m" and i + 1 < len(parts) and parts[i + 1] == "comment":
            i += 2
            if i < len(parts) and parts[i] == "--comment":
                i += 2
            continue
        out.append(parts[i])
        i += 1
    return out


def analyse_iptables(v4: dict[str, dict[str, Any]] | None, v6: dict[str, dict[str, Any]] | None) -> RulesetVerdict:
    out = RulesetVerdict()
    for family, tables in (("v4", v4), ("v6", v6)):
        if not tables or "filter" not in tables:
            continue
        filt = tables["filter"]
        out.rules += len(filt["rules"])
        out.input_chains += 1

        def reaches(chain: str, seen: set[str]) -> tuple[bool, bool]:
            if chain in seen:
                return False, False
            seen.add(chain)
            some = final = False
            for rchain, target, conditional in filt["rules"]:
                if rchain != chain:
                    continue
                if target in ("DROP", "REJECT"):
                    some = True
                    final = final or not conditional
                elif target in filt["policies"]:  # a user chain (declared ":name - [0:0]")
                    s, f = reaches(target, seen)
                    some, final = some or s, final or (f and not conditional)
                elif target == "ACCEPT" and not conditional:
                    break
            return some, final

        some, final = reaches("INPUT", set())
        drops = filt["policies"].get("INPUT") == "DROP" or final
        out.filters = out.filters or some or filt["policies"].get("INPUT") == "DROP"
        if drops:
            setattr(out, f"default_drop_{family}", True)
    return out


# --------------------------------------------------------------------------- frontends


def parse_ufw_status(text: str) -> dict[str, Any]:
    """``ufw status verbose`` (run with LC_ALL=C: ufw's prose is gettext-translated)."""
    out: dict[str, Any] = {"active": None, "default_incoming": None, "rules": 0, "rules_in": 0}
    in_table = False
    for line in text.splitlines():
        if line.startswith("Status:"):
            out["active"] = line.split(":", 1)[1].strip() == "active"
        elif line.startswith("Default:"):
            m = re.search(r"(\w+) \(incoming\)", line)
            if m:
                out["default_incoming"] = {"deny": "drop", "reject": "drop", "allow": "accept"}.get(m.group(1))
        elif line.startswith("--"):
            in_table = True
        elif in_table and line.strip():
            out["rules"] += 1
            if re.search(r"\b(ALLOW|DENY|REJECT|LIMIT) IN\b", line) or not re.search(r"\b(OUT|FWD)\b", line):
                out["rules_in"] += 1
    return out


def parse_firewalld_state(text: str) -> bool | None:
    state = text.strip()
    return True if state == "running" else False if state == "not running" else None


# --------------------------------------------------------------------------- glue


def _permission(res: CommandResult) -> bool:
    err = (res.stderr or b"").decode(errors="replace").lower()
    return res.error == "permission" or "permission denied" in err or "operation not permitted" in err \
        or "must be root" in err or "need to be root" in err


def _ipv6_enabled(ctx: ProbeContext) -> bool:
    try:
        return ctx.host.read_text("/proc/sys/net/ipv6/conf/all/disable_ipv6").strip() != "1" \
            and ctx.host.exists("/proc/net/if_inet6")
    except OSError:
        return ctx.host.exists("/proc/net/if_inet6")


def _iptables_verdict(ctx: ProbeContext, v4cmd: str, v6cmd: str, reasons: list[str]) -> RulesetVerdict | None:
    results = {}
    for fam, cmd in (("v4", v4cmd), ("v6", v6cmd)):
        res = ctx.host.run([cmd], timeout=10, env=C_ENV)
        if res.ok:
            results[fam] = parse_iptables_save(res.text())
        elif res.error != "not_found":
            reasons.append(res.why_not() if not _permission(res) else reason("tool.denied", cmd, "needs root"))
    if "v4" not in results:
        return None
    return analyse_iptables(results.get("v4"), results.get("v6"))


def probe(ctx: ProbeContext) -> dict[str, Any]:
    host = ctx.host
    reasons: list[str] = []
    verdict: RulesetVerdict | None = None
    ruleset_backend: str | None = None

    nft = host.run(["nft", "-j", "list", "ruleset"], timeout=15, env=C_ENV)
    if nft.ok:
        try:
            verdict = analyse_nft_ruleset(json.loads(nft.text() or "{}"))
            ruleset_backend = "nftables"
        except ValueError:
            reasons.append(reason("output.unrecognised", "nft"))
    elif nft.error != "not_found":
        reasons.append(reason("tool.denied", "nft", "needs root") if _permission(nft) else nft.why_not())

    # Legacy iptables tables are invisible to nft; look when nft showed nothing filtering.
    if verdict is None or not verdict.filters:
        candidates = [("iptables-legacy-save", "ip6tables-legacy-save")] if host.which("iptables-legacy-save") else []
        if verdict is None:
            candidates.append(("iptables-save", "ip6tables-save"))
        for v4, v6 in candidates:
            ipt = _iptables_verdict(ctx, v4, v6, reasons)
            if ipt is not None and (verdict is None or ipt.filters):
                verdict, ruleset_backend = ipt, "iptables"
                break

    ufw = host.run(["ufw", "status", "verbose"], timeout=15, env=C_ENV)
    ufw_state = parse_ufw_status(ufw.text()) if ufw.ok else None
    if not ufw.ok and ufw.error != "not_found":
        reasons.append(reason("tool.denied", "ufw", "needs root") if _permission(ufw) else ufw.why_not())
    fwd = host.run(["firewall-cmd", "--state"], timeout=15, env=C_ENV)
    firewalld_running = parse_firewalld_state(fwd.text()) if fwd.error is None else None
    trusted_zone = False
    if firewalld_running:
        zone = host.run(["firewall-cmd", "--get-default-zone"], timeout=15, env=C_ENV)
        trusted_zone = zone.ok and zone.text().strip() == "trusted"

    backend = ruleset_backend
    if ufw_state and ufw_state["active"]:
        backend = "ufw"
    elif firewalld_running:
        backend = "firewalld"

    ipv6 = _ipv6_enabled(ctx)
    if verdict is not None:
        enabled: bool | None = verdict.filters
        default = verdict.default_inbound(ipv6) if verdict.input_chains else "accept"
        rules: int | None = verdict.rules
        if ufw_state and ufw_state["active"] and not verdict.filters:
            reasons.append(reason("firewall.ufw_not_filtering"))
    elif ufw_state is not None and ufw_state["active"] is not None:
        # The kernel ruleset was not readable: the frontend's statement is the best seen.
        enabled = bool(ufw_state["active"] and ufw_state["default_incoming"] == "drop" or
                       ufw_state["active"] and ufw_state["rules_in"])
        default = ufw_state["default_incoming"] if ufw_state["active"] else "accept"
        rules = ufw_state["rules"]
    elif firewalld_running is not None:
        rules = None
        if firewalld_running:
            enabled = not trusted_zone
            default = "drop" if enabled else "accept"
        else:  # firewalld off says nothing about rulesets we could not read
            enabled = default = None
            reasons.append(reason("tool.failed", "firewalld", "not running; kernel ruleset not readable"))
    else:
        enabled = default = rules = None
        if not reasons:
            reasons.append(reason("firewall.no_tool"))

    if enabled is None:
        status = "unknown"
    elif reasons and verdict is None:
        status = "partial"
    else:
        status = "ok"
    return {"status": status, "reasons": reasons, "enabled": enabled, "backend": backend,
            "default_inbound": default, "profiles": None, "rules": rules}
