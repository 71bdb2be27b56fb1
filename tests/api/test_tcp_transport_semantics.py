"""TCP transports where asyncio's selector transport over a Linux socket sets the rules (checked against it):
errors met while not reading wait for the next write, a reset in CLOSE_WAIT is EPIPE, writes after close(),
and the keyword arguments of asyncio's four entry points."""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
from typing import Any

import pytest
from tcp_support import B, two_stacks

from tcpip import Stack

pytestmark = pytest.mark.timeout(30)


class Log(asyncio.Protocol):
    """Records callbacks; optionally pauses on connection_made or keeps the transport open after EOF."""

    def __init__(self, paused: bool = False, keep_open: bool = False) -> None:
        self.paused, self.keep_open = paused, keep_open
        self.log: list[Any] = []
        self.transport: Any = None
        self.made: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.log.append("made")
        if self.paused:
            transport.pause_reading()  # type: ignore[attr-defined]
        self.made.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self.log and isinstance(self.log[-1], tuple) and self.log[-1][0] == "data":
            self.log[-1] = ("data", self.log[-1][1] + len(data))
        else:
            self.log.append(("data", len(data)))

    def eof_received(self) -> bool:
        self.log.append("eof")
        return self.keep_open

    def connection_lost(self, exc: Exception | None) -> None:
        self.log.append(("lost", None if exc is None else (type(exc).__name__, getattr(exc, "errno", None))))
        self.lost.set_result(None)


async def reset_while_unwatched(a: Stack, b: Stack, keep_open: bool) -> Log:
    """The server's transport stops reading (paused, or an EOF kept open); then the client resets."""
    srv: list[Log] = []

    def factory() -> Log:
        srv.append(Log(paused=not keep_open, keep_open=keep_open))
        return srv[-1]

    await b.create_server(factory, B, 9)
    t, _ = await a.create_connection(asyncio.Protocol, B, 9)
    t.write(b"x" * 1000)
    if keep_open:
        t.write_eof()
    for _ in range(100):
        await asyncio.sleep(0.005)
        if srv and srv[0].made.done() and (not keep_open or "eof" in srv[0].log):
            break
    await asyncio.sleep(0.02)
    t.abort()  # RST
    await asyncio.sleep(0.05)
    return srv[0]


async def test_reset_while_paused_waits_for_resume_then_data_first() -> None:
    async with two_stacks() as (a, b, _):
        s = await reset_while_unwatched(a, b, keep_open=False)
        assert s.log == ["made"]  # asyncio does not look at the socket
        assert not s.transport.is_closing()
        s.transport.resume_reading()
        await asyncio.wait_for(s.lost, 5)
        assert s.log == ["made", ("data", 1000), ("lost", ("ConnectionResetError", errno.ECONNRESET))]


async def test_reset_while_paused_is_reported_by_the_next_write() -> None:
    async with two_stacks() as (a, b, _):
        s = await reset_while_unwatched(a, b, keep_open=False)
        s.transport.write(b"hello")
        assert s.transport.is_closing()
        await asyncio.wait_for(s.lost, 5)
        assert s.log == ["made", ("lost", ("ConnectionResetError", errno.ECONNRESET))]


async def test_reset_in_close_wait_is_broken_pipe_on_the_next_write() -> None:
    async with two_stacks() as (a, b, _):
        s = await reset_while_unwatched(a, b, keep_open=True)
        assert s.log == ["made", ("data", 1000), "eof"]
        assert not s.transport.is_closing()
        s.transport.write(b"answer")
        s.transport.write(b"dropped")
        await asyncio.wait_for(s.lost, 5)
        assert s.log[-1] == ("lost", ("BrokenPipeError", errno.EPIPE))  # Linux's tcp_reset() in CLOSE_WAIT


async def test_write_eof_after_an_unnoticed_reset_is_enotconn_and_close_loses_with_none() -> None:
    async with two_stacks() as (a, b, _):
        s = await reset_while_unwatched(a, b, keep_open=True)
        with pytest.raises(OSError, match="not connected") as e:
            s.transport.write_eof()  # shutdown(2) of a reset socket
        assert e.value.errno == errno.ENOTCONN
        with pytest.raises(RuntimeError):
            s.transport.write(b"x")
        s.transport.close()
        await asyncio.wait_for(s.lost, 5)
        assert s.log[-1] == ("lost", None)


async def test_writes_after_close_join_buffered_bytes_else_are_dropped() -> None:
    async with two_stacks() as (a, b, _):
        srv: list[Log] = []

        def factory() -> Log:
            srv.append(Log())
            return srv[-1]

        await b.create_server(factory, B, 9)
        client = Log()
        t, _ = await a.create_connection(lambda: client, B, 9)
        t.write(bytes(300_000))  # 256 KiB fit the send buffer; the rest waits in the transport
        assert t.get_write_buffer_size() > 0
        t.close()
        t.write(b"tail")  # asyncio's selector transport appends it to the bytes still waiting
        t2, _ = await a.create_connection(Log, B, 9)
        t2.close()  # nothing waiting: later writes are dropped
        t2.write(b"lost")
        await asyncio.wait_for(client.lost, 5)
        for _ in range(100):
            if len(srv) == 2 and all(s.lost.done() for s in srv):
                break
            await asyncio.sleep(0.01)
        assert srv[0].log == ["made", ("data", 300_004), "eof", ("lost", None)]
        assert srv[1].log == ["made", "eof", ("lost", None)]


async def test_keyword_arguments_of_asyncio() -> None:
    async with two_stacks() as (a, b, _):
        server = await b.start_server(lambda r, w: w.close(), B, 0, reuse_address=True, reuse_port=True,
                                      family=socket.AF_INET, flags=socket.AI_PASSIVE, start_serving=True)
        port = server.sockets[0].getsockname()[1]
        r, w = await a.open_connection(B, port, family=socket.AF_INET, proto=socket.IPPROTO_TCP, flags=0,
                                       happy_eyeballs_delay=0.25, interleave=1, ssl_handshake_timeout=None)
        assert await r.read() == b""
        w.close()
        await w.wait_closed()
        with pytest.raises(NotImplementedError, match="reuse_port"):
            await b.start_server(lambda r, w: None, B, port, reuse_port=True)
        with pytest.raises(OSError, match="in use") as e:
            await b.start_server(lambda r, w: None, B, port)
        assert e.value.errno == errno.EADDRINUSE
        with pytest.raises(NotImplementedError, match="keep_alive"):
            await b.start_server(lambda r, w: None, B, 0, keep_alive=True)
        with pytest.raises(NotImplementedError, match="sock"):
            await b.create_server(asyncio.Protocol, sock=socket.socket())
        with pytest.raises(NotImplementedError, match="sock"):
            await a.create_connection(asyncio.Protocol, sock=socket.socket())
        with pytest.raises(NotImplementedError, match="IPv4"):
            await b.create_server(asyncio.Protocol, None, 0, family=socket.AF_INET6)
        with pytest.raises(TypeError, match="SSLContext"):
            await b.create_server(asyncio.Protocol, B, 0, ssl=True)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="only meaningful with ssl"):
            await b.create_server(asyncio.Protocol, B, 0, ssl_shutdown_timeout=1.0)
        with pytest.raises(ValueError, match="only meaningful with ssl"):
            await a.open_connection(B, port, ssl_shutdown_timeout=1.0)
        with pytest.raises(ValueError, match="server_hostname"):
            await a.open_connection(None, port, ssl=ssl.create_default_context())
        with pytest.raises(ValueError, match="at the same time"):
            await a.open_connection(B, port, sock=socket.socket())
        with pytest.raises(ValueError, match="not specified"):
            await a.open_connection()
        with pytest.raises(socket.gaierror) as g:
            await a.open_connection(B, port, family=socket.AF_INET6)
        assert g.value.errno == socket.EAI_ADDRFAMILY
        with pytest.raises(ExceptionGroup) as eg:
            await a.open_connection(B, 4444, all_errors=True)  # 3.12: every attempt's error, grouped
        assert [type(x) for x in eg.value.exceptions] == [ConnectionRefusedError]
        server.close()
        await server.wait_closed()
