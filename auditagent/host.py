"""The Host seam: the only way probes reach the operating system.

Probes never call subprocess, open or winreg themselves. They ask a Host to run a
command (with a timeout), read a file, list a directory, read a registry value or
list processes. ``RealHost`` talks to this machine; ``ReplayHost`` answers from
captured outputs and fixture trees, so every probe is testable on any OS
(node_exporter's way: /sys and /proc fixture trees instead of the live machine).
"""
from __future__ import annotations

import datetime as _dt
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

PLATFORMS = ("linux", "windows", "macos")


def current_platform() -> str:
    if sys.platform.startswith("win"):
        return "windows"
    if sys.platform == "darwin":
        return "macos"
    return "linux"


@dataclass(frozen=True)
class CommandResult:
    """Outcome of running a command. ``error`` is set when it did not run to completion:
    ``not_found`` (no such program), ``timeout``, ``permission`` or ``failed:<text>``."""

    argv: tuple[str, ...]
    returncode: int | None
    stdout: bytes = b""
    stderr: bytes = b""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.returncode == 0

    def text(self, encoding: str = "utf-8") -> str:
        """stdout decoded; a UTF-16 BOM (Windows redirects) is honoured whatever ``encoding`` says."""
        return decode_bytes(self.stdout, encoding)

    def why_not(self) -> str:
        """A one-line reason this result cannot be used, for a probe's ``reasons``
        (auditagent/reasons.py: a code, the command as subject, its own words as detail)."""
        from auditagent.reasons import reason

        name = self.argv[0] if self.argv else "?"
        if self.error == "not_found":
            return reason("tool.not_found", name)
        if self.error == "timeout":
            return reason("tool.timeout", name)
        if self.error == "permission":
            return reason("tool.denied", name)
        if self.error:
            return reason("tool.failed", name, self.error)
        err = decode_bytes(self.stderr).strip().splitlines()
        return reason("tool.failed", name, f"exit {self.returncode}" + (f": {err[-1][:160]}" if err else ""))


def decode_bytes(data: bytes, encoding: str = "utf-8") -> str:
    if data.startswith(b"\xff\xfe") or data.startswith(b"\xfe\xff"):
        return data.decode("utf-16")
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace")
    return data.decode(encoding, errors="replace")


@dataclass(frozen=True)
class ProcessInfo:
    """One running process, as the Host lists it."""

    pid: int
    name: str
    exe: str | None = None
    cmdline: tuple[str, ...] = ()
    username: str | None = None


class RegistryError(LookupError):
    """A registry key or value does not exist (or the registry is not there)."""


class Host(Protocol):
    """What a probe may ask of the machine it describes."""

    platform: str  # "linux" | "windows" | "macos"

    def run(self, argv: Sequence[str], timeout: float = 10.0, env: Mapping[str, str] | None = None,
            input: bytes | None = None) -> CommandResult: ...
    def read_bytes(self, path: str) -> bytes: ...  # raises FileNotFoundError / PermissionError
    def read_text(self, path: str, encoding: str = "utf-8") -> str: ...
    def exists(self, path: str) -> bool: ...
    def is_dir(self, path: str) -> bool: ...
    def listdir(self, path: str) -> list[str]: ...  # raises FileNotFoundError
    def readlink(self, path: str) -> str: ...
    def glob(self, pattern: str) -> list[str]: ...
    def stat_mtime(self, path: str) -> float: ...
    def which(self, name: str) -> str | None: ...
    def processes(self) -> list[ProcessInfo]: ...
    def registry_values(self, key: str) -> dict[str, Any]: ...  # "HKLM\\Software\\..."; raises RegistryError
    def registry_subkeys(self, key: str) -> list[str]: ...
    def getenv(self, name: str) -> str | None: ...
    def home_dirs(self) -> list[str]: ...
    def now(self) -> _dt.datetime: ...  # timezone-aware UTC
    def memo(self, key: str, compute: Callable[[], Any]) -> Any: ...


class _MemoMixin:
    """Per-run memo, so several probes can share one expensive call (one PowerShell per run)."""

    _memo: dict[str, Any]

    def memo(self, key: str, compute: Callable[[], Any]) -> Any:
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]


def _split_cmdline(data: str) -> tuple[str, ...]:
    """/proc/PID/cmdline as psutil splits it: NUL-separated, or (a process that rewrote its
    title, as postgres and chromium do) one string to split at spaces."""
    if not data:
        return ()
    sep = "\0" if data.endswith("\0") else " "
    if data.endswith(sep):
        data = data[:-1]
    parts = data.split(sep)
    if sep == "\0" and len(parts) == 1 and " " in data:
        parts = data.split(" ")
    return tuple(parts)


def _read_proc_file(path: str, limit: int | None = None) -> bytes:
    """A /proc file's bytes through os.open/os.read: a third of the syscalls and objects of
    ``open()`` (no fstat, no buffer), which the hourly scan of every process does four
    times per process. ``limit``: one read of that many bytes is enough (comm; status's
    first lines)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        if limit is not None:
            return os.read(fd, limit)
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def linux_proc_processes(proc: str = "/proc") -> list[ProcessInfo]:
    """The process list straight from /proc, as psutil's process_iter would give it (name
    from ``comm``, lengthened from the command line when the kernel cut it at 15 characters;
    exe from the ``exe`` link, None where it may not be read; the real uid's user name), at
    a fraction of psutil's cost: on Linux the hourly run spent a third of its CPU here."""
    import pwd

    users: dict[int, str | None] = {}
    out = []
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        base = f"{proc}/{entry}"
        try:
            name = os.fsdecode(_read_proc_file(f"{base}/comm", 4096).rstrip(b"\n"))
            raw = _read_proc_file(f"{base}/cmdline")
            status = _read_proc_file(f"{base}/status", 4096)  # Uid: is the ninth line
        except OSError:
            continue  # gone meanwhile, or not ours to read
        cmdline = _split_cmdline(os.fsdecode(raw))
        if len(name) >= 15 and cmdline:
            longer = os.path.basename(cmdline[0])
            if longer.startswith(name):
                name = longer
        try:
            exe: str | None = os.readlink(f"{base}/exe")
            if exe.endswith(" (deleted)") and not os.path.exists(exe):
                exe = exe[:-len(" (deleted)")]
        except OSError:
            exe = None
        uid = None
        for line in status.splitlines():
            if line.startswith(b"Uid:"):
                uid = int(line.split()[1])
                break
        if uid is not None and uid not in users:
            try:
                users[uid] = pwd.getpwuid(uid).pw_name
            except KeyError:
                users[uid] = str(uid)
        out.append(ProcessInfo(int(entry), name, exe or None, cmdline, users.get(uid) if uid is not None else None))
    return out


class RealHost(_MemoMixin):
    """This machine."""

    def __init__(self, platform: str | None = None) -> None:
        self.platform = platform or current_platform()
        self._memo = {}

    def run(self, argv, timeout=10.0, env=None, input=None) -> CommandResult:
        argv = tuple(argv)
        full_env = None
        if env is not None:
            full_env = dict(os.environ)
            full_env.update(env)
        try:
            proc = subprocess.run(argv, capture_output=True, timeout=timeout, env=full_env,
                                  input=input, stdin=None if input is not None else subprocess.DEVNULL)
        except FileNotFoundError:
            return CommandResult(argv, None, error="not_found")
        except PermissionError:
            return CommandResult(argv, None, error="permission")
        except subprocess.TimeoutExpired as exc:
            return CommandResult(argv, None, exc.stdout or b"", exc.stderr or b"", error="timeout")
        except OSError as exc:
            return CommandResult(argv, None, error=f"failed:{exc.strerror or exc}")
        return CommandResult(argv, proc.returncode, proc.stdout, proc.stderr)

    def read_bytes(self, path: str) -> bytes:
        with open(path, "rb") as fh:
            return fh.read()

    def read_text(self, path: str, encoding: str = "utf-8") -> str:
        return decode_bytes(self.read_bytes(path), encoding)

    def exists(self, path: str) -> bool:
        return os.path.lexists(path)

    def is_dir(self, path: str) -> bool:
        return os.path.isdir(path)

    def listdir(self, path: str) -> list[str]:
        return sorted(os.listdir(path))

    def readlink(self, path: str) -> str:
        return os.readlink(path)

    def glob(self, pattern: str) -> list[str]:
        import glob as _glob

        return sorted(_glob.glob(pattern))

    def stat_mtime(self, path: str) -> float:
        return os.stat(path).st_mtime

    def which(self, name: str) -> str | None:
        # Several probes ask for the same tools; PATH does not change during a run.
        return self.memo(f"which:{name}", lambda: self._which(name))

    def _which(self, name: str) -> str | None:
        # Daemons and admin tools live in sbin, which a user's PATH may lack.
        extra = os.pathsep.join(["/usr/sbin", "/sbin", "/usr/local/sbin"]) if self.platform != "windows" else ""
        return shutil.which(name, path=os.environ.get("PATH", "") + (os.pathsep + extra if extra else ""))

    def processes(self) -> list[ProcessInfo]:
        # One snapshot per run: several probes (cloud, screen lock) look at the same list.
        return self.memo("processes", self._processes)

    def _processes(self) -> list[ProcessInfo]:
        if self.platform == "linux" and os.path.isdir("/proc/self"):
            return linux_proc_processes()
        import psutil

        out = []
        for p in psutil.process_iter(["pid", "name", "exe", "cmdline", "username"]):
            info = p.info
            out.append(ProcessInfo(info["pid"], info.get("name") or "", info.get("exe"),
                                   tuple(info.get("cmdline") or ()), info.get("username")))
        return out

    def _winreg_open(self, key: str):
        import winreg  # type: ignore[import-not-found]

        hive_name, _, sub = key.partition("\\")
        hives = {"HKLM": winreg.HKEY_LOCAL_MACHINE, "HKEY_LOCAL_MACHINE": winreg.HKEY_LOCAL_MACHINE,
                 "HKCU": winreg.HKEY_CURRENT_USER, "HKEY_CURRENT_USER": winreg.HKEY_CURRENT_USER,
                 "HKU": winreg.HKEY_USERS, "HKEY_USERS": winreg.HKEY_USERS}
        try:
            return winreg, winreg.OpenKey(hives[hive_name.upper()], sub, 0,
                                          winreg.KEY_READ | winreg.KEY_WOW64_64KEY)
        except (KeyError, OSError) as exc:
            raise RegistryError(key) from exc

    def registry_values(self, key: str) -> dict[str, Any]:
        if self.platform != "windows":
            raise RegistryError(key)
        winreg, handle = self._winreg_open(key)
        values: dict[str, Any] = {}
        with handle:
            i = 0
            while True:
                try:
                    name, data, _type = winreg.EnumValue(handle, i)
                except OSError:
                    break
                values[name] = data
                i += 1
        return values

    def registry_subkeys(self, key: str) -> list[str]:
        if self.platform != "windows":
            raise RegistryError(key)
        winreg, handle = self._winreg_open(key)
        names = []
        with handle:
            i = 0
            while True:
                try:
                    names.append(winreg.EnumKey(handle, i))
                except OSError:
                    break
                i += 1
        return names

    def getenv(self, name: str) -> str | None:
        return os.environ.get(name)

    def home_dirs(self) -> list[str]:
        """Home folders of people who use this machine: the agent may run as root/SYSTEM
        from a scheduler, and the sync clients live in the users' profiles. Read once a run
        (the user database can be large; several probes ask)."""
        return list(self.memo("home_dirs", self._home_dirs))

    def _home_dirs(self) -> list[str]:
        homes: list[str] = []
        if self.platform == "linux":
            try:
                import pwd

                for entry in pwd.getpwall():
                    if (entry.pw_uid >= 1000 or entry.pw_uid == 0) and entry.pw_dir not in ("/", "/nonexistent") \
                            and os.path.isdir(entry.pw_dir) and not entry.pw_shell.endswith(("nologin", "false")):
                        homes.append(entry.pw_dir)
            except ImportError:  # pragma: no cover
                pass
        elif self.platform == "macos":
            homes = [str(p) for p in Path("/Users").iterdir() if p.is_dir() and p.name not in ("Shared", "Guest")] \
                if Path("/Users").is_dir() else []
        else:
            root = Path(os.environ.get("SystemDrive", "C:") + "\\Users")
            if root.is_dir():
                homes = [str(p) for p in root.iterdir() if p.is_dir()
                         and p.name not in ("Public", "Default", "Default User", "All Users")]
        own = os.path.expanduser("~")
        if os.path.isdir(own) and own not in homes:
            homes.append(own)
        return sorted(set(homes))

    def now(self) -> _dt.datetime:
        return _dt.datetime.now(_dt.timezone.utc)


# --------------------------------------------------------------------------- replay

REPLAY_NAMES = frozenset({"ReplayCommand", "ReplayHost", "load_replay_host"})


def __getattr__(name: str) -> Any:
    """The replaying Host (auditagent.host_replay), loaded only when asked for by name: tests
    and ``--replay-host`` use it, the hourly run never does."""
    if name in REPLAY_NAMES:
        from auditagent import host_replay

        return getattr(host_replay, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def iter_lines(text: str) -> Iterable[str]:
    for line in text.splitlines():
        yield line.rstrip("\r")
