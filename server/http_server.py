"""How ``auditagent-collector serve`` runs its HTTP server: uvicorn on httptools and uvloop
(both declared by the server extra), with a lingering close where a client may still be
sending, and the start-up heap frozen before traffic.

Lingering close (as nginx's ``lingering_close``, Apache's ``lingering_close``): when
the server ends a connection whose client may still be sending (a body refused on its
declared size before it was read, a body longer than its Content-Length), closing the
socket with unread bytes in it makes the kernel send a reset, and the reset can destroy
the answer in the client's receive queue before the client reads it. So instead of
closing at once, the server sends its FIN after the answer (half-close), then reads and
discards what still arrives until the client closes too, up to :data:`LINGER_BYTES`
or :data:`LINGER_SECONDS`, whichever comes first, and only then closes. A connection
closed while idle (uvicorn's keep-alive time-out, a shutdown between requests: the last
answer complete and no byte arrived since) has nothing to read out and closes at once;
so does one over TLS (no half-close).

uvicorn has no public setting for this, so :class:`LingeringHttpToolsProtocol`
subclasses its httptools protocol, a private class: :func:`check_uvicorn_hooks` (run by
``serve`` before it starts) refuses to start if a method it overrides is gone or takes
other arguments, and pyproject allows only the uvicorn versions checked against it.
Behind nginx (the documented deployment) nginx's own lingering close covers clients."""
from __future__ import annotations

import asyncio
import gc
import inspect
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

LINGER_BYTES = 4 * 1024 * 1024  # read out at most this much after the answer...
LINGER_SECONDS = 2.0  # ...for at most this long (below serve's 5 s graceful shutdown)

# The methods of uvicorn's HttpToolsProtocol overridden below, and their parameters after
# self, as in the uvicorn versions pyproject allows (0.37 to 0.54, all the same here).
HOOKS: dict[str, tuple[str, ...]] = {
    "connection_made": ("transport",),
    "data_received": ("data",),
    "eof_received": (),
    "connection_lost": ("exc",),
    "on_response_complete": (),
}


class UvicornChanged(ValueError):
    """The installed uvicorn's httptools protocol is not the one this module was written
    for (a ValueError: ``auditagent-collector`` reports it in one line and exits 2)."""


def check_uvicorn_hooks(protocol: type = HttpToolsProtocol) -> None:
    """Raise :class:`UvicornChanged` naming each overridden method of ``protocol`` that
    is missing or whose parameters changed: a lingering close that silently stopped
    working would lose refusals again, so ``serve`` does not start on such a uvicorn."""
    import uvicorn

    wrong = []
    for name, params in HOOKS.items():
        method = getattr(protocol, name, None)
        if not callable(method):
            wrong.append(f"{name} is missing")
            continue
        got = tuple(inspect.signature(method).parameters)[1:]
        if got != params:
            wrong.append(f"{name}({', '.join(got)}) instead of {name}({', '.join(params)})")
    if wrong:
        raise UvicornChanged(
            f"uvicorn {uvicorn.__version__}'s httptools protocol changed ({'; '.join(wrong)}): the lingering close "
            "of server/http_server.py needs the uvicorn versions pyproject.toml allows; install one of them")


class _LingeringTransport:
    """The connection's transport as uvicorn's protocol and request cycle see it: the
    same, but ``close()`` is the protocol's :meth:`~LingeringHttpToolsProtocol.close_or_linger`."""

    def __init__(self, transport: asyncio.Transport, protocol: LingeringHttpToolsProtocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self._closing = False
        # The calls made per request, bound once (no __getattr__ on the hot path).
        self.write = transport.write
        self.pause_reading = transport.pause_reading
        self.resume_reading = transport.resume_reading
        self.get_extra_info = transport.get_extra_info

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def is_closing(self) -> bool:
        return self._closing or self._transport.is_closing()

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            self._protocol.close_or_linger()


class LingeringHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a lingering close (see the module's docstring)."""

    _raw: asyncio.Transport
    _idle = True  # the last answer is complete (or none was asked) and no byte arrived since
    _left: int | None = None  # bytes still to read out while lingering; None: not lingering
    _timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._raw = transport
        super().connection_made(_LingeringTransport(transport, self))  # type: ignore[arg-type]

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # uvicorn arms its keep-alive timer when it has nothing left to do but wait for the
        # next request (no pipelined one, the connection open). Were the attribute renamed,
        # the connection would count as busy: it would linger, as before, never lose a refusal.
        self._idle = getattr(self, "timeout_keep_alive_task", None) is not None

    def close_or_linger(self) -> None:
        """What closing the connection does: at once when idle or over TLS, else linger."""
        raw = self._raw
        if raw.is_closing():
            return
        if self._idle or not raw.can_write_eof():  # nothing to read out / TLS: no half-close
            raw.close()
            return
        raw.write_eof()  # the FIN goes after everything written so far: the answer is whole
        raw.resume_reading()
        self._left = LINGER_BYTES
        self._timer = asyncio.get_running_loop().call_later(LINGER_SECONDS, raw.close)

    def data_received(self, data: bytes) -> None:
        if self._left is None:
            self._idle = False
            super().data_received(data)
            return
        self._left -= len(data)  # read out and dropped: no request is served after the close
        if self._left < 0:
            self._raw.close()

    def eof_received(self) -> bool | None:
        if self._left is not None:
            self._raw.close()  # the client has closed its side too: nothing left to read out
            return None
        return super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)


def uvicorn_options(**options: Any) -> dict[str, Any]:
    """uvicorn's settings for ``serve``: the lingering httptools protocol (refused, by
    :class:`UvicornChanged`, on a uvicorn it does not fit), uvloop where it is installed
    (not on Windows), no access log (a request line per report costs CPU and says nothing
    the metrics don't)."""
    check_uvicorn_hooks()
    # By name, imported when each worker loads its app: with --workers N the settings are
    # unpickled in each new process before it answers the supervisor's health checks, so
    # nothing is imported there that need not be.
    return dict(http=f"{__name__}:{LingeringHttpToolsProtocol.__name__}", loop="auto", access_log=False, **options)


def freeze_start_up_heap() -> None:
    """Move everything allocated while the app was built (modules, routes, templates,
    the ORM's tables) out of the collector's reach: garbage collections during ingest
    then traverse only what requests allocate (about 5 % less CPU per report measured
    for parse, verify and check rows with the app loaded)."""
    gc.collect()
    gc.freeze()
