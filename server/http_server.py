"""How ``auditagent-collector serve`` runs its HTTP server: uvicorn on httptools and uvloop
(both declared by the server extra), with a lingering close on every connection, and
the start-up heap frozen before traffic.

Lingering close (as nginx's ``lingering_close``, Apache's ``lingering_close``): when
the server ends a connection whose client may still be sending (a body refused on its
declared size before it was read, a body longer than its Content-Length), closing the
socket with unread bytes in it makes the kernel send a reset, and the reset can destroy
the answer in the client's receive queue before the client reads it. So instead of
closing at once, the server sends its FIN after the answer (half-close), then reads and
discards what still arrives until the client closes too, up to :data:`LINGER_BYTES`
or :data:`LINGER_SECONDS`, whichever comes first, and only then closes. Over TLS (no
half-close) the connection is closed at once, as before."""
from __future__ import annotations

import asyncio
import gc
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

LINGER_BYTES = 4 * 1024 * 1024  # read out at most this much after the answer...
LINGER_SECONDS = 2.0  # ...for at most this long (below serve's 5 s graceful shutdown)


class _LingeringTransport:
    """The connection's transport as uvicorn's protocol and request cycle see it: the
    same, but ``close()`` is the protocol's lingering close."""

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
            self._protocol.linger()


class LingeringHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a lingering close (see the module's docstring)."""

    _raw: asyncio.Transport
    _left: int | None = None  # bytes still to read out while lingering; None: not lingering
    _timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._raw = transport
        super().connection_made(_LingeringTransport(transport, self))  # type: ignore[arg-type]

    def linger(self) -> None:
        raw = self._raw
        if raw.is_closing():
            return
        if not raw.can_write_eof():  # TLS: no half-close
            raw.close()
            return
        raw.write_eof()  # the FIN goes after everything written so far: the answer is whole
        raw.resume_reading()
        self._left = LINGER_BYTES
        self._timer = self.loop.call_later(LINGER_SECONDS, raw.close)

    def data_received(self, data: bytes) -> None:
        if self._left is None:
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
    """uvicorn's settings for ``serve``: the lingering httptools protocol, uvloop where it is
    installed (not on Windows), no
    access log (a request line per report costs CPU and says nothing the metrics don't)."""
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
