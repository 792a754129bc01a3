"""A small declarative schema for YAML documents, validated on the YAML *nodes* so every
error can name file, line and field — and suggest the nearest valid key.

Kept tiny on purpose: the agent ships to every laptop, so no jsonschema/pydantic.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import yaml

# yaml is imported where a document is read, not here: kinds.py builds its parameter
# schemas at import, and the hourly run (whose parsed policy and config are kept) reads no YAML.


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input, at file:line and field."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class SchemaError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@functools.lru_cache(maxsize=1)
def _constructor() -> Any:
    import yaml

    return yaml.SafeLoader("")


# A PyYAML node names its kind in ``id`` ('scalar', 'sequence', 'mapping'); testing that
# rather than the node's class keeps yaml unimported until a document is read.
def is_scalar(node: Any) -> bool:
    return getattr(node, "id", None) == "scalar"


def is_sequence(node: Any) -> bool:
    return getattr(node, "id", None) == "sequence"


def is_mapping(node: Any) -> bool:
    return getattr(node, "id", None) == "mapping"


def scalar_value(node: yaml.Node) -> Any:
    return _constructor().construct_object(node, deep=True)


def node_line(node: yaml.Node | None) -> int | None:
    return node.start_mark.line + 1 if node is not None else None


def compose(text: str, filename: str) -> yaml.Node | None:
    import yaml

    # libyaml's parser is ~15x faster and keeps line marks; the self-check parses policies on every run.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.compose(text, Loader=loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise SchemaError([Problem(filename, line, "", f"not valid YAML: {exc.problem or exc}")]) from None
    except yaml.YAMLError as exc:
        raise SchemaError([Problem(filename, None, "", f"not valid YAML: {exc}")]) from None


class Ctx:
    """Collects problems while walking; ``path`` is the dotted field name."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.problems: list[Problem] = []

    def error(self, node: yaml.Node | None, path: str, message: str) -> None:
        self.problems.append(Problem(self.filename, node_line(node), path, message))


# ---------------------------------------------------------------- types

class T:
    """A schema type: ``check(node, path, ctx)`` returns the Python value (or None after an error)."""

    name = "value"

    def check(self, node: yaml.Node, path: str, ctx: Ctx) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


def _type_of(node: yaml.Node) -> str:
    if is_mapping(node):
        return "a mapping"
    if is_sequence(node):
        return "a list"
    value = scalar_value(node)
    if value is None:
        return "empty"
    return {bool: "a boolean", int: "a number", float: "a number", str: "text"}.get(type(value), type(value).__name__)


class Scalar(T):
    def __init__(self, kinds: tuple[type, ...], name: str, validator: Callable[[Any], str | None] | None = None):
        self.kinds, self.name, self.validator = kinds, name, validator

    def check(self, node, path, ctx):
        if not is_scalar(node):
            ctx.error(node, path, f"expected {self.name}, got {_type_of(node)}")
            return None
        value = scalar_value(node)
        if isinstance(value, bool) and bool not in self.kinds:
            ctx.error(node, path, f"expected {self.name}, got a boolean")
            return None
        if not isinstance(value, self.kinds):
            ctx.error(node, path, f"expected {self.name}, got {_type_of(node)} ({value!r})")
            return None
        if self.validator:
            msg = self.validator(value)
            if msg:
                ctx.error(node, path, msg)
                return None
        return value


def _nonempty(v: Any) -> str | None:
    return "must not be empty" if isinstance(v, str) and not v.strip() else None


Str = Scalar((str,), "text", _nonempty)
Int = Scalar((int,), "a whole number")
NonNegInt = Scalar((int,), "a whole number ≥ 0", lambda v: "must be ≥ 0" if v < 0 else None)
Number = Scalar((int, float), "a number")
Bool = Scalar((bool,), "true or false")
AnyScalar = Scalar((str, int, float, bool), "a single value")


def _version(v: Any) -> str | None:
    return None if re.fullmatch(r"[0-9A-Za-z][0-9A-Za-z.+\-_]*", str(v)) else "expected a version such as 1.2.0"


Version = Scalar((str, int, float), "a version", _version)


def _identifier(v: Any) -> str | None:
    return None if re.fullmatch(r"[a-z0-9][a-z0-9_.\-]*", v) else \
        "use lower-case letters, digits, '-', '_' or '.' (e.g. disk-encryption)"


Identifier = Scalar((str,), "an identifier", _identifier)


def _regex(v: Any) -> str | None:
    try:
        re.compile(v)
    except re.error as exc:
        return f"not a valid regular expression: {exc}"
    return None


Regex = Scalar((str,), "a regular expression", _regex)


class Enum(T):
    def __init__(self, *choices: str):
        self.choices = choices
        self.name = " | ".join(choices)

    def check(self, node, path, ctx):
        value = Scalar((str,), "text").check(node, path, ctx)
        if value is None:
            return None
        if value not in self.choices:
            ctx.error(node, path, f"{value!r} is not one of {', '.join(self.choices)}" + suggest(value, self.choices))
            return None
        return value


class ListOf(T):
    def __init__(self, item: T, min_items: int = 0, unique_key: str | None = None):
        self.item, self.min_items, self.unique_key = item, min_items, unique_key
        self.name = f"a list of {item.name}"

    def check(self, node, path, ctx):
        if not is_sequence(node):
            ctx.error(node, path, f"expected a list, got {_type_of(node)}")
            return None
        if len(node.value) < self.min_items:
            ctx.error(node, path, f"needs at least {self.min_items} item(s)")
        out = [self.item.check(child, f"{path}[{i}]", ctx) for i, child in enumerate(node.value)]
        return out


class Either(T):
    """The first type whose shape (scalar/list/mapping) fits decides; its errors are reported."""

    def __init__(self, *options: T):
        self.options = options
        self.name = " or ".join(o.name for o in options)

    def check(self, node, path, ctx):
        for opt in self.options:
            probe = Ctx(ctx.filename)
            value = opt.check(node, path, probe)
            if not probe.problems:
                return value
        # Report against the option whose node kind matches, else a summary.
        for opt in self.options:
            if (isinstance(opt, (Map, MapOf)) and is_mapping(node)) or \
               (isinstance(opt, ListOf) and is_sequence(node)) or \
               (isinstance(opt, (Scalar, Enum)) and is_scalar(node)):
                return opt.check(node, path, ctx)
        ctx.error(node, path, f"expected {self.name}, got {_type_of(node)}")
        return None


class Raw(T):
    """Accepted as it is here; validated elsewhere (where more context is known)."""

    def __init__(self, name: str = "value") -> None:
        self.name = name

    def check(self, node, path, ctx):
        return node


@dataclass
class F:
    """A field of a mapping."""

    type: T
    required: bool = False
    default: Any = None
    doc: str = ""


def mapping_items(node: yaml.MappingNode, path: str, ctx: Ctx) -> list[tuple[str, yaml.Node, yaml.Node]]:
    """(key, key node, value node) with duplicate and non-text keys reported."""
    seen: dict[str, yaml.Node] = {}
    items = []
    for knode, vnode in node.value:
        key = scalar_value(knode) if is_scalar(knode) else None
        if not isinstance(key, str):
            ctx.error(knode, path, f"keys must be text, got {_type_of(knode)}")
            continue
        if key in seen:
            ctx.error(knode, join(path, key), f"appears twice (first at line {node_line(seen[key])})")
            continue
        seen[key] = knode
        items.append((key, knode, vnode))
    return items


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def suggest(word: str, choices: Any) -> str:
    import difflib  # only for a mistyped key

    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" — did you mean {close[0]!r}?" if close else ""


class Map(T):
    """A mapping with known fields. Unknown keys are errors, with the nearest valid key."""

    name = "a mapping"

    def __init__(self, fields: dict[str, F], extra: Callable[[dict, yaml.MappingNode, str, Ctx], None] | None = None):
        self.fields, self.extra = fields, extra

    def check(self, node, path, ctx):
        if not is_mapping(node):
            ctx.error(node, path, f"expected a mapping with keys {', '.join(self.fields)}, got {_type_of(node)}")
            return None
        out: dict[str, Any] = {}
        for key, knode, vnode in mapping_items(node, path, ctx):
            spec = self.fields.get(key)
            if spec is None:
                ctx.error(knode, join(path, key), "unknown key" + suggest(key, self.fields)
                          + f" (valid keys: {', '.join(self.fields)})")
                continue
            out[key] = spec.type.check(vnode, join(path, key), ctx)
        for key, spec in self.fields.items():
            if key not in out:
                if spec.required:
                    ctx.error(node, join(path, key), "is required")
                elif spec.default is not None:
                    out[key] = spec.default
        if self.extra:
            self.extra(out, node, path, ctx)
        return out


class MapOf(T):
    """A mapping whose keys come from a set (or any text) and whose values share one type."""

    def __init__(self, value: T, keys: tuple[str, ...] | None = None, required_keys: tuple[str, ...] = (),
                 what: str = "key"):
        self.value, self.keys, self.required_keys, self.what = value, keys, required_keys, what
        self.name = f"a mapping of {what} to {value.name}"

    def check(self, node, path, ctx):
        if not is_mapping(node):
            ctx.error(node, path, f"expected {self.name}, got {_type_of(node)}")
            return None
        out: dict[str, Any] = {}
        for key, knode, vnode in mapping_items(node, path, ctx):
            if self.keys is not None and key not in self.keys:
                ctx.error(knode, join(path, key), f"unknown {self.what}" + suggest(key, self.keys)
                          + f" (valid: {', '.join(self.keys)})")
                continue
            out[key] = self.value.check(vnode, join(path, key), ctx)
        for key in self.required_keys:
            if key not in out:
                ctx.error(node, join(path, key), "is required")
        return out


def find_node(node: yaml.Node | None, key: str) -> yaml.Node | None:
    """The value node under ``key`` in a mapping node (for errors raised after validation)."""
    if is_mapping(node):
        for knode, vnode in node.value:
            if is_scalar(knode) and knode.value == key:
                return vnode
    return None

