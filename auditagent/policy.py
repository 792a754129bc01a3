"""Policies: YAML a security officer can read (Wazuh SCA's way) → a typed Policy.

Every problem names file, line and field; a misspelt key suggests the nearest valid
one. Nothing is silently ignored.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import yaml

from auditagent.kinds import FACT_VALUE_SHAPE, KINDS, PLATFORMS
from auditagent.schema import (F, Ctx, Either, Raw, Enum, Identifier, ListOf, Map, MapOf, NonNegInt, Problem, Scalar,
                               SchemaError, Str, Version, compose, find_node, is_mapping, is_scalar, is_sequence, join,
                               mapping_items, node_line, scalar_value, suggest)

LANGS = ("sv", "da", "en")
SEVERITIES = ("required", "recommended")

Text = MapOf(Str, keys=LANGS, required_keys=LANGS, what="language")
Steps = MapOf(ListOf(Str, min_items=1), keys=LANGS, required_keys=LANGS, what="language")
Reference = Either(Str, Map({
    "standard": F(Str, required=True, doc="e.g. ISO/IEC 27001:2022, CIS Controls v8"),
    "control": F(Str, required=True, doc="e.g. A.8.24, 3.6"),
    "url": F(Str),
}))

class RemediationMap(MapOf):
    """Steps per platform, or per distribution of a platform (``linux.debian``, ``linux.ubuntu.24``)."""

    KEY = re.compile(r"^(?P<platform>[a-z]+)(?:\.(?P<id>[a-z0-9][a-z0-9._-]*?)(?:\.(?P<major>\d+))?)?$")

    def __init__(self, value: Any) -> None:
        super().__init__(value, keys=None, what="platform")

    def check(self, node, path, ctx):
        out = super().check(node, path, ctx)
        if out is None:
            return None
        valid = PLATFORMS + ("any",)
        for key in list(out):
            m = self.KEY.match(key)
            if not m or m.group("platform") not in valid or (m.group("id") and m.group("platform") == "any"):
                ctx.error(find_node(node, key) or node, join(path, key), "unknown platform" + suggest(key, valid)
                          + f" (valid: {', '.join(valid)}, or <platform>.<os id>[.<major version>])")
                del out[key]
        return out


MAX_GRACE_HOURS = 24 * 365
GraceHours = Scalar((int,), f"a whole number of hours (1 to {MAX_GRACE_HOURS})",
                    lambda v: None if 1 <= v <= MAX_GRACE_HOURS else f"must be from 1 to {MAX_GRACE_HOURS} hours")

CHECK_FIELDS = {
    "id": F(Identifier, required=True),
    "kind": F(Enum(*KINDS), required=True),
    "severity": F(Enum(*SEVERITIES), required=True),
    "title": F(Text, required=True),
    "rationale": F(Text, required=True),
    "parameters": F(Raw("parameters"), doc="depends on kind"),  # validated per kind below
    "remediation": F(RemediationMap(Steps), required=True,
                     doc="per platform (linux, windows, macos, any); linux.<os id>[.<major version>] for one "
                         "distribution, e.g. linux.debian, linux.fedora.40 (matched on os.id, then os.id_like)"),
    "references": F(ListOf(Reference)),
    "platforms": F(ListOf(Enum(*PLATFORMS), min_items=1), doc="only on these OSes; not_applicable elsewhere"),
    "grace_hours": F(GraceHours, doc="a required check that newly fails leaves the device *due* (counted as "
                                     "ready, shown apart) for this many hours before it is not ready; a check "
                                     "already failing when grace is added gets none"),
}
# In a policy that extends another, a check with a known id may restate only what changes.
OVERRIDE_FIELDS = {k: F(v.type) for k, v in CHECK_FIELDS.items()}

POLICY_FIELDS = {
    "id": F(Identifier, required=True),
    "version": F(Version, required=True),
    "extends": F(Either(Str, ListOf(Str, min_items=1)), doc="policy id or file this one builds on"),
    "title": F(Text, required=True),
    "description": F(Text, required=True),
    "settings": F(Map({
        "max_report_age_hours": F(NonNegInt, default=24, doc="a device whose last report is older is stale"),
    })),
    "checks": F(ListOf(Raw("a check")), required=True),  # validated check by check
    "remove_checks": F(ListOf(Identifier), doc="ids of inherited checks this policy drops"),
}


@dataclass(frozen=True)
class Check:
    """One check of a policy, resolved (defaults and extends applied)."""

    id: str
    kind: str
    severity: str
    title: dict[str, str]
    rationale: dict[str, str]
    parameters: dict[str, Any]
    remediation: dict[str, dict[str, list[str]]]
    references: tuple[Any, ...] = ()
    platforms: tuple[str, ...] | None = None
    source: str = ""  # file:line
    grace_hours: int | None = None  # hours a newly failing run stays *due* before it blocks

    def remediation_for(self, platform: str, os_facts: dict[str, Any] | None = None) -> dict[str, list[str]]:
        return self.remediation_choice(platform, os_facts)[1]

    def remediation_choice(self, platform: str, os_facts: dict[str, Any] | None = None
                           ) -> tuple[str | None, dict[str, list[str]], dict[str, dict[str, list[str]]]]:
        """(key, steps, others): the steps for this OS — its distribution and major version,
        else a distribution it derives from (os.id_like), else the platform's — and the other
        entries of the same platform (shown folded, for people on other systems)."""
        osf = os_facts or {}
        os_id = str(osf.get("id") or "")
        major = str(osf.get("version") or "").split(".")[0]
        likes = osf.get("id_like") if isinstance(osf.get("id_like"), list) else []
        candidates = [f"{platform}.{os_id}.{major}", f"{platform}.{os_id}"] if os_id else []
        candidates += [f"{platform}.{like}" for like in likes] + [platform, "any"]
        key = next((c for c in candidates if c in self.remediation), None)
        others = {k: v for k, v in self.remediation.items()
                  if k != key and (k == platform or k.startswith(platform + "."))}
        return key, (self.remediation.get(key) if key else None) or {}, others

    def reads(self) -> tuple[str, ...]:
        if self.kind == "fact":
            return (fact_section(self.parameters["path"]),)
        return KINDS[self.kind].reads

    def to_dict(self) -> dict[str, Any]:
        d = {"id": self.id, "kind": self.kind, "severity": self.severity, "title": self.title,
             "rationale": self.rationale, "parameters": self.parameters, "remediation": self.remediation}
        if self.references:
            d["references"] = list(self.references)
        if self.platforms:
            d["platforms"] = list(self.platforms)
        if self.grace_hours:
            d["grace_hours"] = self.grace_hours
        return d


@dataclass(frozen=True)
class Policy:
    """A validated policy: its identity, settings and checks."""

    id: str
    version: str
    title: dict[str, str]
    description: dict[str, str]
    checks: tuple[Check, ...]
    settings: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    extends: tuple[str, ...] = ()

    def sections(self) -> list[str]:
        """Fact sections this policy needs — the only probes that run, the only facts reported."""
        seen: list[str] = []
        for check in self.checks:
            for section in check.reads():
                if section not in seen:
                    seen.append(section)
        return seen

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "version": self.version, "title": self.title, "description": self.description,
                "settings": self.settings, "checks": [c.to_dict() for c in self.checks]}

    @property
    def digest(self) -> str:
        """sha256 of the resolved policy in canonical JSON: the same policy gives the same
        digest wherever it was loaded from, and any change to a check changes it."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class PolicyError(SchemaError):
    """A policy that cannot be used; ``problems`` each name file, line and field."""


def fact_section(path: str) -> str:
    return re.split(r"[.\[]", path, maxsplit=1)[0]


def _check_fact_parameters(params: dict, pnode: yaml.Node | None, path: str, ctx: Ctx) -> None:
    op = params.get("op")
    shape = FACT_VALUE_SHAPE.get(op or "")
    value = params.get("value")
    vnode = find_node(pnode, "value") or pnode
    fpath = params.get("path")
    if isinstance(fpath, str) and not re.fullmatch(r"[a-z_][a-z0-9_]*(\[\]|\.[a-z_][a-z0-9_]*)*", fpath):
        ctx.error(find_node(pnode, "path") or pnode, f"{path}.path",
                  "expected a fact path such as os.id or disk.volumes[].encrypted")
    if shape is None:
        return
    if shape == "none":
        if "value" in params:
            ctx.error(vnode, f"{path}.value", f"'{op}' takes no value")
        return
    if "value" not in params:
        ctx.error(pnode, f"{path}.value", f"is required for op '{op}'")
    elif shape == "list" and not isinstance(value, list):
        ctx.error(vnode, f"{path}.value", f"'{op}' needs a list of values")
    elif shape in ("scalar", "regex", "number_or_version") and isinstance(value, list):
        ctx.error(vnode, f"{path}.value", f"'{op}' needs a single value, not a list")
    elif shape == "regex":
        try:
            re.compile(str(value))
        except re.error as exc:
            ctx.error(vnode, f"{path}.value", f"not a valid regular expression: {exc}")


def _parse_check(node: yaml.Node, path: str, ctx: Ctx, override: bool) -> dict[str, Any] | None:
    """Validate one check node. With ``override`` (id already inherited) fields are optional."""
    if not is_mapping(node):
        ctx.error(node, path, "expected a mapping (a check with id, kind, severity …)")
        return None
    fields = dict(OVERRIDE_FIELDS if override else CHECK_FIELDS)
    out: dict[str, Any] = {}
    pnode = None
    for key, knode, vnode in mapping_items(node, path, ctx):
        if key not in fields:
            ctx.error(knode, f"{path}.{key}", "unknown key" + suggest(key, fields) + f" (valid keys: {', '.join(fields)})")
            continue
        if key == "parameters":
            pnode = vnode
            continue
        out[key] = fields[key].type.check(vnode, f"{path}.{key}", ctx)
    if not override:
        for key, spec in CHECK_FIELDS.items():
            if spec.required and key not in out:
                ctx.error(node, f"{path}.{key}", "is required")
    if out.get("grace_hours") is not None and out.get("severity") == "recommended":
        ctx.error(find_node(node, "grace_hours"), f"{path}.grace_hours",
                  "only a required check can block, so only it can have a grace period; remove grace_hours "
                  "or make the check required")
    out["_line"] = node_line(node)
    out["_pnode"] = pnode
    return out


def _validate_parameters(check: dict[str, Any], given: dict[str, Any] | None, path: str, ctx: Ctx) -> dict[str, Any]:
    kind = KINDS.get(check.get("kind") or "")
    if kind is None:
        return {}
    pnode = check.get("_pnode")
    ppath = f"{path}.parameters"
    if pnode is None:
        # No parameters given: the kind's defaults, and any required ones are missing.
        params = dict(given or {})
        for key, spec in kind.parameters.fields.items():
            if key not in params:
                if spec.required:
                    ctx.error(None if check.get("_line") is None else _LineNode(check["_line"]), f"{ppath}.{key}",
                              f"is required for kind '{kind.name}'")
                elif spec.default is not None:
                    params[key] = spec.default
        return params
    params = kind.parameters.check(pnode, ppath, ctx) or {}
    if given:  # override: inherited parameters, then the new ones
        merged = dict(given)
        merged.update({k: v for k, v in params.items()
                       if k in _explicit_keys(pnode) or k not in given})
        params = merged
    if kind.name == "fact":
        _check_fact_parameters(params, pnode, ppath, ctx)
    return params


def _explicit_keys(node: yaml.Node | None) -> set[str]:
    if is_mapping(node):
        return {k.value for k, _ in node.value if is_scalar(k)}
    return set()


class _LineNode:
    """Stands in for a node where only the line is known."""

    def __init__(self, line: int) -> None:
        class _M:
            pass

        self.start_mark = _M()
        self.start_mark.line = line - 1  # type: ignore[attr-defined]


def shipped_policy_dir() -> Path:
    """The policies that ship with the agent: installed into the package as
    ``shipped_policies`` (see pyproject.toml), or the repository's ``policies/`` when
    running from a checkout or an editable install."""
    here = Path(__file__).resolve().parent
    installed = here / "shipped_policies"
    return installed if installed.is_dir() else here.parent / "policies"


def _resolve_extends(ref: str, base: Path) -> Path | None:
    candidates = [base / ref, base / f"{ref}.yaml", shipped_policy_dir() / f"{ref}.yaml", shipped_policy_dir() / ref]
    for cand in candidates:
        if cand.is_file():
            return cand
    return None


def load_policy(path: str | Path, *, text: str | None = None, _chain: tuple[str, ...] = ()) -> Policy:
    """Load and validate a policy file (resolving ``extends``). Raises PolicyError."""
    path = Path(path)
    filename = str(path)
    if text is None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise PolicyError([Problem(filename, None, "", "no such policy file")]) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyError([Problem(filename, None, "", f"cannot read policy: {exc}")]) from None
    return parse_policy(text, filename, base=path.parent, _chain=_chain)


def parse_policy(text: str, filename: str = "<policy>", *, base: Path | None = None,
                 _chain: tuple[str, ...] = ()) -> Policy:
    ctx = Ctx(filename)
    try:
        root = compose(text, filename)
    except SchemaError as exc:
        raise PolicyError(exc.problems) from None
    if root is None:
        raise PolicyError([Problem(filename, 1, "", "the policy is empty")])
    top = Map(POLICY_FIELDS).check(root, "", ctx)
    if top is None:
        raise PolicyError(ctx.problems)

    # Inherited policy (resolved first, so overrides can be checked against it).
    parents: list[Policy] = []
    extends = top.get("extends")
    refs = [extends] if isinstance(extends, str) else list(extends or [])
    enode = find_node(root, "extends")
    for ref in refs:
        if not isinstance(ref, str):
            continue
        target = _resolve_extends(ref, base or Path("."))
        if target is None:
            ctx.error(enode, "extends", f"no policy {ref!r} found beside {filename} or among the shipped policies")
            continue
        key = str(target.resolve())
        if key in _chain or key == str(Path(filename).resolve()):
            ctx.error(enode, "extends", f"{ref!r} extends itself (cycle: {' → '.join(_chain + (key,))})")
            continue
        try:
            parents.append(load_policy(target, _chain=_chain + (str(Path(filename).resolve()),)))
        except PolicyError as exc:
            ctx.problems.extend(exc.problems)

    inherited: dict[str, Check] = {}
    for parent in parents:
        for check in parent.checks:
            inherited[check.id] = check

    checks_node = find_node(root, "checks")
    own: list[Check] = []
    ids: dict[str, int | None] = {}
    if is_sequence(checks_node):
        for i, cnode in enumerate(checks_node.value):
            idnode = find_node(cnode, "id")
            cid = scalar_value(idnode) if is_scalar(idnode) else None
            override = isinstance(cid, str) and cid in inherited
            cpath = f"checks[{i}]" + (f" ({cid})" if isinstance(cid, str) else "")
            raw = _parse_check(cnode, cpath, ctx, override)
            if raw is None:
                continue
            if isinstance(cid, str):
                if cid in ids:
                    ctx.error(idnode, f"{cpath}.id", f"duplicate check id (first at line {ids[cid]})")
                ids[cid] = node_line(cnode)
            base_check = inherited.get(cid) if override else None
            if base_check is not None:
                if raw.get("kind") not in (None, base_check.kind):
                    ctx.error(find_node(cnode, "kind"), f"{cpath}.kind",
                              f"changes the kind of inherited check {cid!r} ({base_check.kind}); give it a new id")
                    continue
                raw.setdefault("kind", base_check.kind)
                raw["parameters"] = _validate_parameters(raw, base_check.parameters, cpath, ctx)
                merged = {**base_check.__dict__, **{k: v for k, v in raw.items() if not k.startswith("_")}}
                merged["source"] = f"{filename}:{raw['_line']}"
                merged["references"] = tuple(merged.get("references") or ())
                merged["platforms"] = tuple(merged["platforms"]) if merged.get("platforms") else None
                own.append(Check(**merged))
            else:
                params = _validate_parameters(raw, None, cpath, ctx)
                if any(k not in raw or raw[k] is None for k in ("id", "kind", "severity", "title", "rationale",
                                                                "remediation")):
                    continue
                own.append(Check(id=raw["id"], kind=raw["kind"], severity=raw["severity"], title=raw["title"],
                                 rationale=raw["rationale"], parameters=params, remediation=raw["remediation"],
                                 references=tuple(raw.get("references") or ()),
                                 platforms=tuple(raw["platforms"]) if raw.get("platforms") else None,
                                 source=f"{filename}:{raw['_line']}", grace_hours=raw.get("grace_hours")))
        if not checks_node.value and not parents:
            ctx.error(checks_node, "checks", "a policy needs at least one check")

    removed = set(top.get("remove_checks") or [])
    rnode = find_node(root, "remove_checks")
    for rid in removed:
        if rid not in inherited:
            ctx.error(rnode, "remove_checks", f"{rid!r} is not an inherited check" +
                      (f" (inherited: {', '.join(inherited)})" if inherited else " (this policy extends nothing)"))

    if ctx.problems:
        raise PolicyError(ctx.problems)

    # Order: inherited checks first (as their policy orders them, overrides in place), then new ones.
    own_by_id = {c.id: c for c in own}
    checks: list[Check] = []
    for cid, check in inherited.items():
        if cid in removed:
            continue
        checks.append(own_by_id.pop(cid, check))
    checks.extend(c for c in own if c.id in own_by_id)

    settings = dict(parents[-1].settings) if parents else {}
    settings.update(top.get("settings") or {})
    settings.setdefault("max_report_age_hours", 24)
    return Policy(id=top["id"], version=str(top["version"]), title=top["title"], description=top["description"],
                  checks=tuple(checks), settings=settings, source=filename,
                  extends=tuple(p.id for p in parents))


def validate_files(paths: list[str]) -> list[tuple[str, Policy | PolicyError]]:
    out: list[tuple[str, Policy | PolicyError]] = []
    for p in paths:
        try:
            out.append((p, load_policy(p)))
        except PolicyError as exc:
            out.append((p, exc))
    return out


def default_policy_path() -> Path:
    return shipped_policy_dir() / "casework-confidential.yaml"
