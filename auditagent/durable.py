"""Writing agent state so that a crash (kill -9, power loss) at any instant leaves
either the old file or the new one — never half of one.

``atomic_write``: write a temporary file beside the target, fsync it, rename it over
the target, fsync the directory. ``SequenceCounter``: the per-device report
sequence, persisted *before* a report that uses it exists, so a number is never
reused. ``state_lock``: one agent process at a time works on the state folder
(a scheduled ``run`` and a person's ``report`` must not interleave).
"""
from __future__ import annotations

import contextlib
import errno
import os
import sys
import time
from pathlib import Path
from typing import Iterator

TMP_PREFIX = ".tmp-"


def fsync_dir(directory: Path) -> None:
    """Make a rename/unlink in ``directory`` durable (a no-op where the OS cannot, i.e. Windows)."""
    if sys.platform.startswith("win"):
        return
    fd = os.open(str(directory), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_dir(directory: Path, mode: int = 0o700) -> Path:
    """Create ``directory`` (and parents) owner-only; tighten an existing one."""
    directory.mkdir(parents=True, exist_ok=True, mode=mode)
    if not sys.platform.startswith("win"):
        try:
            if (directory.stat().st_mode & 0o777) != mode:
                os.chmod(directory, mode)
        except OSError:
            pass
    return directory


def atomic_write(path: Path, data: bytes, mode: int = 0o600, crash_hook: str | None = None) -> None:
    """Replace ``path`` with ``data`` atomically and durably, created with ``mode``."""
    path = Path(path)
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f"{TMP_PREFIX}{path.name}.{os.urandom(6).hex()}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(str(tmp), flags, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            half = len(data) // 2
            fh.write(data[:half])
            if crash_hook:
                fh.flush()
                crash_point(crash_hook)  # test hook: die with half a temp file on disk
            fh.write(data[half:])
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(directory)


def remove_durably(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fsync_dir(path.parent)


def clean_temp_files(directory: Path, older_than: float = 0.0) -> int:
    """Remove temp files a crash left behind (they were never renamed, so never valid)."""
    removed = 0
    if not directory.is_dir():
        return 0
    now = time.time()
    for tmp in directory.glob(f"{TMP_PREFIX}*"):
        try:
            if now - tmp.stat().st_mtime >= older_than:
                tmp.unlink()
                removed += 1
        except OSError:
            continue
    return removed


def crash_point(name: str) -> None:
    """Test hook: ``AUDITAGENT_TEST_CRASH_AT=<name>`` kills this process with SIGKILL here
    (the crash-safety tests restart the agent and count what reached the collector).
    ``<name>:<n>`` dies at the n-th time the point is reached."""
    want = os.environ.get("AUDITAGENT_TEST_CRASH_AT")
    if not want:
        return
    point, _, nth = want.partition(":")
    if point != name:
        return
    if nth:
        key = f"_AUDITAGENT_CRASH_COUNT_{name}"
        count = int(os.environ.get(key, "0")) + 1
        os.environ[key] = str(count)
        if count < int(nth):
            return
    import signal

    sys.stderr.flush()
    os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))
    time.sleep(5)  # pragma: no cover - the signal arrives first


class SequenceCounter:
    """The device's report sequence: an integer ≥ 1, strictly increasing, never reused —
    including across restarts, crashes and re-enrolment."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def current(self) -> int:
        try:
            text = self.path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise OSError(f"cannot read the report sequence {self.path}: {exc}") from None
        if not text.isdigit():
            raise ValueError(f"{self.path}: the report sequence is damaged ({text[:20]!r}); "
                             "restore it or delete it only if the device will re-enrol")
        return int(text)

    def peek_next(self) -> int:
        return self.current() + 1

    def take(self) -> int:
        """Persist and return the next number. Persisted first: a crash after this
        skips a number (the collector accepts gaps) but never reuses one."""
        value = self.current() + 1
        atomic_write(self.path, f"{value}\n".encode("ascii"))
        return value

    def advance_to(self, minimum: int) -> None:
        """Never go below ``minimum`` (e.g. the highest sequence already spooled)."""
        if self.current() < minimum:
            atomic_write(self.path, f"{minimum}\n".encode("ascii"))


class StateLocked(Exception):
    pass


@contextlib.contextmanager
def state_lock(state_dir: Path, timeout: float = 60.0) -> Iterator[None]:
    """An exclusive advisory lock on ``state_dir/lock`` (released by the OS if we die)."""
    ensure_dir(state_dir)
    path = state_dir / "lock"
    fd = os.open(str(path), os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                _lock(fd)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK, errno.EDEADLK):
                    raise
                if time.monotonic() >= deadline:
                    raise StateLocked(f"another auditagent process is using {state_dir} (lock {path}); "
                                      "try again when it has finished") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            _unlock(fd)
    finally:
        os.close(fd)


if sys.platform.startswith("win"):  # pragma: no cover - exercised on Windows CI
    import msvcrt

    def _lock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        with contextlib.suppress(OSError):
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
else:
    import fcntl

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
