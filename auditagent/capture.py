"""``auditagent capture``: record what the probes read on this machine, for replay.

A ``RecordingHost`` wraps the real Host and remembers every answer it gives (command
outputs, files, directory listings, links, registry values, processes, environment,
``which``). ``write_capture`` turns that into a replay-host folder that
``load_replay_host`` (``auditagent check --replay-host DIR/host.yaml``) answers from, so
the probes see the same machine again.

Personal data is replaced consistently before anything is written: user names, the host
name, e-mail local parts, serial numbers and, if asked, tenant ids become placeholders
(``user1``, ``host1``, ``person1@…``, ``SERIAL1``, a fixed GUID), in contents, paths,
argv, registry and process lists alike, so the replay still agrees with itself.
``REDACTED.md`` lists each placeholder, its kind and the files it appears in — never the
original value.
"""
from __future__ import annotations

import datetime as _dt
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Callable, Mapping, Sequence

import yaml

from auditagent.host import CommandResult, Host, ProcessInfo, RegistryError

# Account names that name no person, and would wreck text if replaced ("rootfs").
NOT_PERSONAL = {"root", "admin", "administrator", "system", "user", "users", "guest", "public", "default",
                "shared", "nobody", "daemon", "local service", "network service", "runner", "all users"}
_EMAIL = re.compile(rb"(?<![\w.+-])([A-Za-z0-9][A-Za-z0-9._%+-]{0,63})@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})")
_SERIAL = re.compile(rb"(?i)(serial[ _-]?(?:number)?(?:\s*\([^)]*\))?\s*[:=]\s*\"?)([A-Za-z0-9-]{5,})")
_TENANT = re.compile(rb"(?i)(tenant[ _-]?id\"?\s*[:=]?\s*\"?)([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")
FAKE_TENANT = "00000000-0000-4000-8000-000000000001"


class RecordingHost:
    """The real Host, remembered. Every probe call goes through here unchanged."""

    def __init__(self, inner: Host) -> None:
        self.inner = inner
        self.platform = inner.platform
        self._memo: dict[str, Any] = {}
        self.commands: dict[tuple[str, ...], CommandResult] = {}
        self.files: dict[str, bytes | str] = {}  # path → content, or the error's name
        self.dirs: dict[str, list[str] | None] = {}
        self.is_dirs: dict[str, bool] = {}
        self.links: dict[str, str] = {}
        self.mtimes: dict[str, float] = {}
        self.which_paths: dict[str, str | None] = {}
        self.registry: dict[str, dict[str, Any]] = {}
        self.subkeys: dict[str, list[str]] = {}
        self.env: dict[str, str] = {}
        self.process_list: list[ProcessInfo] | None = None
        self.homes: list[str] | None = None
        self.clock: _dt.datetime | None = None

    def memo(self, key: str, compute: Callable[[], Any]) -> Any:
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def run(self, argv: Sequence[str], timeout: float = 10.0, env: Mapping[str, str] | None = None,
            input: bytes | None = None) -> CommandResult:
        result = self.inner.run(argv, timeout=timeout, env=env, input=input)
        self.commands.setdefault(tuple(argv), result)
        return result

    def read_bytes(self, path: str) -> bytes:
        try:
            data = self.inner.read_bytes(path)
        except OSError as exc:
            self.files.setdefault(path, type(exc).__name__)
            raise
        self.files[path] = data
        return data

    def read_text(self, path: str, encoding: str = "utf-8") -> str:
        from auditagent.host import decode_bytes

        return decode_bytes(self.read_bytes(path), encoding)

    def exists(self, path: str) -> bool:
        found = self.inner.exists(path)
        if found and path not in self.files:
            self.is_dirs.setdefault(path, self.inner.is_dir(path))
        return found

    def is_dir(self, path: str) -> bool:
        found = self.inner.is_dir(path)
        self.is_dirs[path] = found
        return found

    def listdir(self, path: str) -> list[str]:
        try:
            names = self.inner.listdir(path)
        except OSError:
            self.dirs[path] = None
            raise
        self.dirs[path] = list(names)
        sep = "\\" if self.platform == "windows" else "/"
        for name in names:  # so the replay tree knows files from folders
            child = path.rstrip("/\\") + sep + name
            self.is_dirs.setdefault(child, self.inner.is_dir(child))
        return names

    def readlink(self, path: str) -> str:
        target = self.inner.readlink(path)
        self.links[path] = target
        self.is_dirs.setdefault(path, self.inner.is_dir(path))
        return target

    def glob(self, pattern: str) -> list[str]:
        found = self.inner.glob(pattern)
        for path in found:
            self.is_dirs.setdefault(path, self.inner.is_dir(path))
        return found

    def stat_mtime(self, path: str) -> float:
        mtime = self.inner.stat_mtime(path)
        self.mtimes[path] = mtime
        self.is_dirs.setdefault(path, self.inner.is_dir(path))
        return mtime

    def which(self, name: str) -> str | None:
        found = self.inner.which(name)
        self.which_paths[name] = found
        return found

    def processes(self) -> list[ProcessInfo]:
        if self.process_list is None:
            self.process_list = list(self.inner.processes())
        return list(self.process_list)

    def registry_values(self, key: str) -> dict[str, Any]:
        values = self.inner.registry_values(key)  # RegistryError: not recorded, absent in replay too
        self.registry[key] = dict(values)
        return values

    def registry_subkeys(self, key: str) -> list[str]:
        names = self.inner.registry_subkeys(key)
        self.subkeys[key] = list(names)
        return names

    def getenv(self, name: str) -> str | None:
        value = self.inner.getenv(name)
        if value is not None:
            self.env[name] = value
        return value

    def home_dirs(self) -> list[str]:
        if self.homes is None:
            self.homes = list(self.inner.home_dirs())
        return list(self.homes)

    def now(self) -> _dt.datetime:
        if self.clock is None:
            self.clock = self.inner.now().replace(microsecond=0)
        return self.clock


# --------------------------------------------------------------------------- redaction


@dataclass
class Redactor:
    """Consistent replacement of personal values: the same value always gets the same
    placeholder, in bytes (UTF-8 and UTF-16-LE) and in text."""

    redact_tenants: bool = False
    pairs: dict[str, str] = field(default_factory=dict)  # original → placeholder
    kinds: dict[str, str] = field(default_factory=dict)  # placeholder → kind
    seen_in: dict[str, set[str]] = field(default_factory=dict)  # placeholder → files
    _counts: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, value: str | None, placeholder: str | None = None) -> None:
        if not value or len(value) < 3 or value.lower() in NOT_PERSONAL or value in self.pairs:
            return
        if placeholder is None:
            self._counts[kind] = self._counts.get(kind, 0) + 1
            placeholder = {"user": "user{}", "host": "host{}", "email": "person{}", "serial": "SERIAL{}"}[kind] \
                .format(self._counts[kind])
        self.pairs[value] = placeholder
        self.kinds[placeholder] = kind

    def learn(self, data: bytes) -> None:
        """Find e-mail local parts, serial numbers and (if asked) tenant ids in content."""
        for m in _EMAIL.finditer(data):
            self.add("email", m.group(1).decode("ascii", "replace"))
        for m in _SERIAL.finditer(data):
            self.add("serial", m.group(2).decode("ascii", "replace"))
        if self.redact_tenants:
            for m in _TENANT.finditer(data):
                self.add("tenant", m.group(2).decode("ascii"), FAKE_TENANT)

    def _ordered(self) -> list[tuple[str, str]]:
        return sorted(self.pairs.items(), key=lambda kv: -len(kv[0]))  # longest first: "anna.berg" before "anna"

    def text(self, value: str, where: str | None = None) -> str:
        for original, placeholder in self._ordered():
            pattern = re.compile(rf"(?<![A-Za-z0-9]){re.escape(original)}(?![A-Za-z0-9])", re.I)
            value, n = pattern.subn(placeholder, value)
            if n and where:
                self.seen_in.setdefault(placeholder, set()).add(where)
        return value

    def bytes_(self, data: bytes, where: str) -> bytes:
        for original, placeholder in self._ordered():
            for enc in ("utf-8", "utf-16-le"):
                o, p = original.encode(enc), placeholder.encode(enc)
                step = 2 if enc == "utf-16-le" else 1
                alnum = (rb"(?<![A-Za-z0-9])", rb"(?![A-Za-z0-9])") if step == 1 else (b"", b"")
                pattern = re.compile(alnum[0] + re.escape(o) + alnum[1], re.I)
                data, n = pattern.subn(p, data)
                if n:
                    self.seen_in.setdefault(placeholder, set()).add(where)
        return data

    def value(self, v: Any, where: str) -> Any:
        if isinstance(v, str):
            return self.text(v, where)
        if isinstance(v, bytes):
            return self.bytes_(v, where)
        if isinstance(v, list):
            return [self.value(x, where) for x in v]
        if isinstance(v, dict):
            return {self.text(str(k), where): self.value(x, where) for k, x in v.items()}
        return v


def _personal_names(rec: RecordingHost) -> tuple[set[str], set[str]]:
    users: set[str] = set()
    for home in rec.homes or []:
        name = (PureWindowsPath(home) if rec.platform == "windows" else PurePosixPath(home)).name
        users.add(name)
    for key in ("USER", "USERNAME", "LOGNAME"):
        if rec.env.get(key):
            users.add(rec.env[key])
    for proc in rec.process_list or []:
        if proc.username:
            users.add(proc.username.split("\\")[-1])
    try:
        import getpass

        users.add(getpass.getuser())
    except Exception:  # noqa: BLE001 - no user name is fine
        pass
    hosts = {socket.gethostname(), socket.gethostname().split(".")[0]}
    if rec.env.get("COMPUTERNAME"):
        hosts.add(rec.env["COMPUTERNAME"])
    return users, hosts


# --------------------------------------------------------------------------- writing


def _safe_name(argv: tuple[str, ...], i: int) -> str:
    stem = re.sub(r"[^A-Za-z0-9]+", "-", " ".join(PurePosixPath(a.replace("\\", "/")).name for a in argv[:3]))
    return f"{i:03d}-{stem.strip('-')[:40] or 'cmd'}"


def write_capture(rec: RecordingHost, out: Path, redact_tenants: bool = False,
                  extra_personal: Sequence[str] = ()) -> Redactor:
    """The replay-host folder for what ``rec`` saw: ``host.yaml``, ``commands/``, ``tree/``,
    ``REDACTED.md``. Returns the redactor (what was replaced)."""
    red = Redactor(redact_tenants=redact_tenants)
    users, hosts = _personal_names(rec)
    for u in sorted(users):
        red.add("user", u)
    for h in sorted(hosts):
        red.add("host", h)
    for v in extra_personal:
        red.add("user", v)
    blobs = [r.stdout for r in rec.commands.values()] + [r.stderr for r in rec.commands.values()]
    blobs += [c for c in rec.files.values() if isinstance(c, bytes)]
    blobs += [f"{k}: {v}".encode() for vals in rec.registry.values() for k, v in vals.items()]
    blobs += [v.encode() for v in rec.env.values()]
    for blob in blobs:
        red.learn(blob)

    out.mkdir(parents=True, exist_ok=True)
    (out / "commands").mkdir(exist_ok=True)
    tree = out / "tree"
    tree.mkdir(exist_ok=True)
    windows = rec.platform == "windows"

    def tree_path(path: str) -> Path:
        rel = path.replace("\\", "/")
        if windows and len(rel) > 1 and rel[1] == ":":
            rel = rel[2:]
        return tree / red.text(rel, "tree/").lstrip("/")

    # Links first (so files below them land in their targets), then folders, then files.
    for path, target in sorted(rec.links.items()):
        link = tree_path(path)
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            os.symlink(red.text(target), link)
        if rec.is_dirs.get(path):
            resolved = (link.parent / red.text(target)).resolve()
            if str(resolved).startswith(str(tree.resolve())):
                resolved.mkdir(parents=True, exist_ok=True)
    for path, is_dir in sorted(rec.is_dirs.items()):
        p = tree_path(path)
        if is_dir:
            p.mkdir(parents=True, exist_ok=True)
    for path, names in sorted(rec.dirs.items()):
        if names is None:
            continue
        d = tree_path(path)
        d.mkdir(parents=True, exist_ok=True)
        sep = "\\" if windows else "/"
        for name in names:
            child = path.rstrip("/\\") + sep + name
            c = tree_path(child)
            if rec.is_dirs.get(child):
                c.mkdir(parents=True, exist_ok=True)
            elif not c.exists() and not c.is_symlink() and child not in rec.files:
                c.touch()
    unreadable = []
    for path, content in sorted(rec.files.items()):
        p = tree_path(path)
        if isinstance(content, str):  # the read failed: FileNotFoundError stays absent
            if content != "FileNotFoundError":
                unreadable.append(red.text(path))
            continue
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.is_dir():
            continue
        p.write_bytes(red.bytes_(content, f"tree{red.text(path)}"))
    for path, mtime in rec.mtimes.items():
        p = tree_path(path)
        if p.exists() and not p.is_symlink():
            os.utime(p, (mtime, mtime))

    commands = []
    for i, (argv, res) in enumerate(rec.commands.items()):
        red_argv = [red.text(a, "host.yaml") for a in argv]
        entry: dict[str, Any] = {"argv": red_argv}
        if res.stdout:
            name = _safe_name(tuple(red_argv), i) + ".out"
            (out / "commands" / name).write_bytes(red.bytes_(res.stdout, f"commands/{name}"))
            entry["stdout_file"] = f"commands/{name}"
        if res.stderr:
            entry["stderr"] = red.bytes_(res.stderr, "host.yaml").decode("utf-8", "replace")
        entry["returncode"] = res.returncode
        if res.error:
            entry["error"] = res.error
        commands.append(entry)

    registry = {red.text(k, "host.yaml"): red.value(v, "host.yaml") for k, v in rec.registry.items()}
    for key, names in rec.subkeys.items():  # the replay lists subkeys from the keys it holds
        key = red.text(key, "host.yaml")
        registry.setdefault(key, {})
        for name in names:
            registry.setdefault(key + "\\" + red.text(name, "host.yaml"), {})
    manifest: dict[str, Any] = {
        "platform": rec.platform,
        "clock": (rec.clock or _dt.datetime.now(_dt.timezone.utc)).isoformat(),
        "root": "tree/",
        "homes": [red.text(h, "host.yaml") for h in rec.homes or []],
        "env": {k: red.text(v, "host.yaml") for k, v in sorted(rec.env.items())},
        "which": {k: (red.text(v, "host.yaml") if v else None) for k, v in sorted(rec.which_paths.items())},
        "processes": [{"pid": p.pid, "name": red.text(p.name, "host.yaml"),
                       "exe": red.text(p.exe, "host.yaml") if p.exe else None,
                       "cmdline": [red.text(a, "host.yaml") for a in p.cmdline],
                       "username": red.text(p.username, "host.yaml") if p.username else None}
                      for p in rec.process_list or []],
        "registry": registry,
        "commands": commands,
    }
    if unreadable:
        manifest["unreadable"] = unreadable
    header = ("# Captured by `auditagent capture` through the Host seam; personal data replaced\n"
              "# (REDACTED.md). Replay: auditagent check --replay-host host.yaml\n")
    (out / "host.yaml").write_text(header + yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True),
                                   encoding="utf-8")
    rows = [f"| `{ph}` | {red.kinds[ph]} | {', '.join(sorted(red.seen_in.get(ph, [])) or ['-'])} |"
            for ph in sorted(red.kinds)]
    (out / "REDACTED.md").write_text(
        "# What was redacted\n\nEach personal value was replaced by the placeholder below, the same one "
        "everywhere. The original values are not kept anywhere in this folder.\n\n"
        "| placeholder | kind | found in |\n| --- | --- | --- |\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return red


def capture(host: Host, out: Path, sections: list[str] | None = None, redact_tenants: bool = False,
            extra_personal: Sequence[str] = ()) -> tuple[dict[str, Any], Redactor]:
    """Run every probe through a recording host, write the folder; (facts seen, redactor)."""
    from auditagent.probes import ProbeContext, collect

    rec = RecordingHost(host)
    facts = collect(ProbeContext(rec), sections)  # no cache: every query really runs
    red = write_capture(rec, out, redact_tenants=redact_tenants, extra_personal=extra_personal)
    return facts, red
