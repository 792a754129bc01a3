"""server/http_server.py: the lingering close of ``serve``'s uvicorn protocol, on a real
uvicorn server over 127.0.0.1 (in this process, so its connections can be seen): a
refused client still sending gets its whole answer, an idle keep-alive connection is
closed at once (no lingering), and ``serve`` refuses to start on a uvicorn whose private
httptools protocol no longer has the methods the lingering close overrides."""
from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Any, Iterator

import pytest
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from server import http_server
from server.http_server import LingeringHttpToolsProtocol, UvicornChanged, check_uvicorn_hooks


async def refusing_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers every request at once, without reading its body: a 413 for a POST (a
    refusal on the declared size), 200 "ok" otherwise."""
    if scope["type"] != "http":
        return
    status, body = (413, b"too large") if scope["method"] == "POST" else (200, b"ok")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


@contextlib.contextmanager
def serving(**config: Any) -> Iterator[tuple[uvicorn.Server, int]]:
    """A uvicorn server with the lingering protocol on 127.0.0.1 in a thread of this process."""
    server = uvicorn.Server(uvicorn.Config(refusing_app, host="127.0.0.1", port=0, http=LingeringHttpToolsProtocol,
                                           lifespan="off", log_level="warning", **config))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield server, server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(30)


def read_response(s: socket.socket) -> bytes:
    """One response with a Content-Length, whole."""
    out = b""
    while b"\r\n\r\n" not in out:
        chunk = s.recv(65536)
        assert chunk, out
        out += chunk
    head, body = out.split(b"\r\n\r\n", 1)
    length = int(next(v for k, v in (line.split(b":", 1) for line in head.split(b"\r\n")[1:])
                      if k.strip().lower() == b"content-length"))
    while len(body) < length:
        chunk = s.recv(65536)
        assert chunk, out
        body += chunk
    return head + b"\r\n\r\n" + body


def test_a_refusal_reaches_a_client_still_sending():
    """The refusal case keeps its lingering close: the answer is sent before the body was
    read, the client goes on sending 2 MiB of its declared 10, and still reads all of the 413."""
    with serving() as (_server, port):
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                s.sendall(b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10485760\r\n"
                          b"Connection: close\r\n\r\n"
                          + b"x" * (2 * 1024 * 1024))
                s.shutdown(socket.SHUT_WR)
                out = read_response(s)
            assert out.startswith(b"HTTP/1.1 413 ") and out.endswith(b"too large"), out


def test_an_idle_keep_alive_connection_is_closed_at_once(monkeypatch):
    """uvicorn's keep-alive time-out on a connection with nothing unread closes it outright:
    no half-close and read-out. Seen from the client, as a client sees it: after the
    server's FIN, bytes the client still sends are answered with a reset (the server's
    socket is gone). A lingering server would read them out and drop them in silence until
    its window ends, made 10 minutes long here. (Observing behaviour, not uvicorn's
    attributes, also catches a uvicorn whose keep-alive timer the idle test no longer finds.)"""
    monkeypatch.setattr(http_server, "LINGER_SECONDS", 600.0)
    with serving(timeout_keep_alive=1) as (_server, port):
        with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
            # Two requests at once: the second answered on the same connection shows it was
            # kept alive after the first (no race with the 1 s time-out, nothing sent between).
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 2)
            out = b""
            while out.count(b"\r\n\r\nok") < 2:
                chunk = s.recv(65536)
                assert chunk, out
                out += chunk
            assert out.count(b"HTTP/1.1 200 ") == 2 and out.endswith(b"\r\n\r\nok"), out
            assert s.recv(1) == b""  # the keep-alive time-out: the server's FIN
            deadline = time.monotonic() + 60  # far beyond the ~1 s time-out, far inside the 600 s window
            reset = None
            while reset is None and time.monotonic() < deadline:
                try:
                    s.sendall(b"x")  # a few hundred bytes at most: far below LINGER_BYTES
                except (ConnectionResetError, BrokenPipeError) as exc:
                    reset = exc
                else:
                    time.sleep(0.05)
            assert reset is not None, "the idle connection lingered: bytes sent after its close were read out"


def test_the_installed_uvicorn_has_the_hooks_the_lingering_close_overrides():
    check_uvicorn_hooks()
    for name in http_server.HOOKS:
        assert name in vars(LingeringHttpToolsProtocol), name  # each overridden method is checked, and only those


class _Renamed(HttpToolsProtocol):
    def data_received(self, chunk: bytes) -> None:  # type: ignore[override]
        super().data_received(chunk)


class _Gone:
    connection_made = HttpToolsProtocol.connection_made
    data_received = HttpToolsProtocol.data_received
    eof_received = HttpToolsProtocol.eof_received
    connection_lost = HttpToolsProtocol.connection_lost


@pytest.mark.parametrize("protocol, says", [
    (_Renamed, "data_received(chunk) instead of data_received(data)"),
    (_Gone, "on_response_complete is missing"),
])
def test_a_changed_uvicorn_protocol_is_refused(protocol, says):
    with pytest.raises(UvicornChanged) as err:
        check_uvicorn_hooks(protocol)
    assert says in str(err.value) and "pyproject.toml" in str(err.value)


def test_serve_does_not_start_on_a_changed_uvicorn(monkeypatch, tmp_path, capsys):
    """The check runs first: serve stops in one line, exit 2, before it creates the database
    or listens."""
    from server import cli

    def data_received(self: Any, chunk: bytes) -> None:
        raise AssertionError("not called")

    monkeypatch.setattr(HttpToolsProtocol, "data_received", data_received)
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("uvicorn.run was reached"))
    db = tmp_path / "collector.db"
    assert cli.main(["serve", "--db", f"sqlite:///{db}", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "data_received(chunk) instead of data_received(data)" in err, err
    assert not db.exists()
