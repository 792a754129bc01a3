"""The replaying Host: a captured machine (outputs, files, registry, processes) that
answers probes as the real one did, so every probe is tested on any OS. Kept apart from
``auditagent.host`` so the hourly run does not define it; ``auditagent.host`` still
offers ``ReplayHost``, ``ReplayCommand`` and ``load_replay_host`` by name."""
from __future__ import annotations

import datetime as _dt
import fnmatch
import os
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from auditagent.host import CommandResult, ProcessInfo, RegistryError, _MemoMixin, decode_bytes


@dataclass
class ReplayCommand:
    """One captured command and its answer."""

    argv: tuple[str, ...]
    stdout: bytes = b""
    stderr: bytes = b""
    returncode: int | None = 0
    error: str | None = None


@dataclass
class ReplayHost(_MemoMixin):
    """A captured machine. Files come from ``files`` (path → bytes, or a Path to read)
    and/or a fixture tree ``root`` that stands in for ``/`` (or ``C:\\``). Commands are
    matched by argv; a ``*`` element matches any one argument. An unknown command
    answers ``not_found``, so a probe meets the same gap a real machine without that
    tool would show."""

    platform: str = "linux"
    root: Path | None = None
    files: dict[str, bytes | Path] = field(default_factory=dict)
    commands: list[ReplayCommand] = field(default_factory=list)
    registry: dict[str, dict[str, Any]] = field(default_factory=dict)
    process_list: list[ProcessInfo] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    homes: list[str] = field(default_factory=list)
    clock: _dt.datetime = field(default_factory=lambda: _dt.datetime(2026, 11, 1, 12, 0, tzinfo=_dt.timezone.utc))
    programs: set[str] = field(default_factory=set)
    # What `which` answered on the captured machine (auditagent capture); else /usr/bin/NAME.
    which_paths: dict[str, str | None] = field(default_factory=dict)
    unreadable: set[str] = field(default_factory=set)  # paths whose read raised PermissionError
    calls: list[tuple[str, ...]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._memo = {}
        # Lookups are case-insensitive (as in Windows), but subkey names keep the case they
        # were captured with, as winreg returns them (evidence strings quote them).
        self._registry_names = {k.lower(): k for k in self.registry}
        self.registry = {k.lower(): v for k, v in self.registry.items()}

    # -- building
    def add_command(self, argv: Sequence[str], stdout: bytes | str | Path = b"", returncode: int | None = 0,
                    stderr: bytes | str = b"", error: str | None = None) -> "ReplayHost":
        if isinstance(stdout, Path):
            stdout = stdout.read_bytes()
        if isinstance(stdout, str):
            stdout = stdout.encode()
        if isinstance(stderr, str):
            stderr = stderr.encode()
        self.commands.append(ReplayCommand(tuple(argv), stdout, stderr, returncode, error))
        if argv:
            self.programs.add(argv[0])
        return self

    def add_file(self, path: str, content: bytes | str | Path) -> "ReplayHost":
        self.files[self._norm(path)] = content.encode() if isinstance(content, str) else content
        return self

    # -- paths
    def _norm(self, path: str) -> str:
        if self.platform == "windows":
            return path.replace("/", "\\").lower()
        return posixpath.normpath(path)

    def _tree_path(self, path: str) -> Path | None:
        if self.root is None:
            return None
        if self.platform == "windows":
            rel = path.replace("\\", "/")
            rel = rel[2:] if len(rel) > 1 and rel[1] == ":" else rel
        else:
            rel = path
        return self.root / rel.lstrip("/")

    def _lookup(self, path: str) -> bytes | Path | None:
        key = self._norm(path)
        if key in self.files:
            return self.files[key]
        tree = self._tree_path(path)
        if tree is not None and (tree.exists() or tree.is_symlink()):
            return tree
        return None

    # -- Host protocol
    def run(self, argv, timeout=10.0, env=None, input=None) -> CommandResult:
        argv = tuple(argv)
        self.calls.append(argv)
        for cmd in self.commands:
            if len(cmd.argv) == len(argv) and all(p == "*" or fnmatch.fnmatchcase(a, p) if "*" in p else p == a
                                                  for p, a in zip(cmd.argv, argv)):
                return CommandResult(argv, cmd.returncode, cmd.stdout, cmd.stderr, cmd.error)
        return CommandResult(argv, None, error="not_found")

    def read_bytes(self, path: str) -> bytes:
        if self._norm(path) in self.unreadable:
            raise PermissionError(path)
        found = self._lookup(path)
        if found is None:
            raise FileNotFoundError(path)
        if isinstance(found, Path):
            if found.is_dir():
                raise IsADirectoryError(path)
            return found.read_bytes()
        return found

    def read_text(self, path: str, encoding: str = "utf-8") -> str:
        return decode_bytes(self.read_bytes(path), encoding)

    def exists(self, path: str) -> bool:
        return self._lookup(path) is not None or self.is_dir(path)

    def is_dir(self, path: str) -> bool:
        tree = self._tree_path(path)
        if tree is not None and tree.is_dir():
            return True
        prefix = self._norm(path).rstrip("/\\") + ("\\" if self.platform == "windows" else "/")
        return any(k.startswith(prefix) for k in self.files)

    def listdir(self, path: str) -> list[str]:
        names: set[str] = set()
        tree = self._tree_path(path)
        found = False
        if tree is not None and tree.is_dir():
            names.update(os.listdir(tree))
            found = True
        sep = "\\" if self.platform == "windows" else "/"
        prefix = self._norm(path).rstrip("/\\") + sep
        for key in self.files:
            if key.startswith(prefix):
                names.add(key[len(prefix):].split(sep)[0])
                found = True
        if not found:
            raise FileNotFoundError(path)
        return sorted(names)

    def readlink(self, path: str) -> str:
        tree = self._tree_path(path)
        if tree is None or not tree.is_symlink():
            raise OSError(f"not a link: {path}")
        return os.readlink(tree)

    def glob(self, pattern: str) -> list[str]:
        sep = "\\" if self.platform == "windows" else "/"
        parts = [p for p in pattern.split(sep) if p]
        results = [sep if self.platform != "windows" else ""]
        for part in parts:
            nxt = []
            for base in results:
                if any(ch in part for ch in "*?["):
                    try:
                        for name in self.listdir(base or sep):
                            if fnmatch.fnmatchcase(name, part):
                                nxt.append(posixpath.join(base, name) if sep == "/" else base + sep + name)
                    except (FileNotFoundError, NotADirectoryError):
                        continue
                else:
                    cand = posixpath.join(base, part) if sep == "/" else (base + sep + part if base else part)
                    if self.exists(cand):
                        nxt.append(cand)
            results = nxt
        return sorted(results)

    def stat_mtime(self, path: str) -> float:
        found = self._lookup(path)
        if found is None:
            raise FileNotFoundError(path)
        if isinstance(found, Path):
            return found.stat().st_mtime
        return self.clock.timestamp()

    def which(self, name: str) -> str | None:
        if name in self.which_paths:
            return self.which_paths[name]
        if name in self.programs:
            return f"/usr/bin/{name}" if self.platform != "windows" else f"C:\\Windows\\System32\\{name}"
        return None

    def processes(self) -> list[ProcessInfo]:
        return list(self.process_list)

    def registry_values(self, key: str) -> dict[str, Any]:
        try:
            return dict(self.registry[key.lower()])
        except KeyError:
            raise RegistryError(key) from None

    def registry_subkeys(self, key: str) -> list[str]:
        prefix = key.lower().rstrip("\\") + "\\"
        subs = {self._registry_names.get(k, k)[len(prefix):].split("\\")[0]
                for k in self.registry if k.startswith(prefix)}
        if not subs and key.lower() not in self.registry:
            raise RegistryError(key)
        return sorted(subs)

    def getenv(self, name: str) -> str | None:
        return self.env.get(name)

    def home_dirs(self) -> list[str]:
        return list(self.homes)

    def now(self) -> _dt.datetime:
        return self.clock


def load_replay_host(manifest: str | Path) -> ReplayHost:
    """Build a ReplayHost from a YAML manifest (used by tests and by the hidden
    ``--replay-host`` option, so ``auditagent check`` can run on a captured machine)::

        platform: windows
        clock: 2024-05-01T10:00:00Z
        root: tree/                  # optional fixture tree standing in for / or C:\\
        files: {"C:\\\\Users\\\\a\\\\x.json": {file: x.json}}   # or {text: "..."}
        commands:
          - argv: [powershell.exe, -NoProfile, ...]
            stdout_file: ../../shared/fixtures/...   # relative to the manifest
            returncode: 0
        registry: {"HKCU\\\\Software\\\\...": {Name: value}}
        processes: [{pid: 1, name: Dropbox.exe, exe: ..., username: ...}]
        homes: [C:\\Users\\anna]
        env: {USERPROFILE: ...}
        which: {lsblk: /usr/bin/lsblk, fscrypt: null}   # optional: what `which` answered
        unreadable: [/etc/shadow]    # optional: reads that were refused
    """
    import yaml

    manifest = Path(manifest)
    base = manifest.parent
    data = yaml.safe_load(manifest.read_text(encoding="utf-8")) or {}

    def content(spec: Any) -> bytes | Path:
        if isinstance(spec, str):
            return spec.encode()
        if "file" in spec:
            return (base / spec["file"]).resolve()
        return str(spec.get("text", "")).encode(spec.get("encoding", "utf-8"))

    clock = data.get("clock")
    if isinstance(clock, str):
        clock = _dt.datetime.fromisoformat(clock.replace("Z", "+00:00"))
    elif isinstance(clock, _dt.datetime) and clock.tzinfo is None:
        clock = clock.replace(tzinfo=_dt.timezone.utc)
    host = ReplayHost(
        platform=data.get("platform", "linux"),
        root=(base / data["root"]).resolve() if data.get("root") else None,
        registry=data.get("registry") or {},
        process_list=[ProcessInfo(int(p.get("pid", 0)), p.get("name", ""), p.get("exe"),
                                  tuple(p.get("cmdline") or ()), p.get("username"))
                      for p in data.get("processes") or []],
        env={str(k): str(v) for k, v in (data.get("env") or {}).items()},
        homes=list(data.get("homes") or []),
        **({"clock": clock} if clock else {}),
    )
    for path, spec in (data.get("files") or {}).items():
        host.add_file(path, content(spec))
    for cmd in data.get("commands") or []:
        if "stdout_file" in cmd:
            out: bytes | Path = (base / cmd["stdout_file"]).resolve()
        else:
            out = str(cmd.get("stdout", "")).encode()
        host.add_command(cmd["argv"], out if isinstance(out, bytes) else Path(out), cmd.get("returncode", 0),
                         str(cmd.get("stderr", "")), cmd.get("error"))
    for prog in data.get("programs") or []:
        host.programs.add(prog)
    host.which_paths.update(data.get("which") or {})
    host.unreadable.update(host._norm(p) for p in data.get("unreadable") or [])
    return host
