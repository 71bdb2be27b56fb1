"""TCP through asyncio protocols over two stacks on a Hub: callback order, close/abort, flow control."""

from __future__ import annotations

import asyncio
import errno
from ipaddress import IPv4Address
from typing import Any

import pytest
from tcp_support import A, B, blob, two_stacks

from tcpip.core.tcp.config import TcpConfig

pytestmark = pytest.mark.timeout(30)


class Recording(asyncio.Protocol):
    """Logs every callback; asserts callbacks never nest (no re-entry while inside the protocol)."""

    def __init__(self, echo: bool = False, keep_open: bool = False, buffer_size: int = 0,
                 pause_on_made: bool = False) -> None:
        self.echo, self.keep_open, self.pause_on_made = echo, keep_open, pause_on_made
        self.log: list[Any] = []
        self.data = bytearray()
        self.buf = bytearray(buffer_size)
        self.biggest = 0
        self.depth = 0
        self.transport: Any = None
        self.lost: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
        self.writing = asyncio.Event()
        self.writing.set()

    def _enter(self, ev: Any) -> None:
        assert self.depth == 0, f"{ev} re-entered the protocol"
        self.log.append(ev)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._enter("made")
        self.transport = transport
        if self.pause_on_made:
            transport.pause_reading()  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self._data(data)

    def _data(self, data: bytes) -> None:
        self._enter("data")
        self.depth += 1
        try:
            self.data += data
            self.biggest = max(self.biggest, len(data))
            if self.echo:
                self.transport.write(data)
        finally:
            self.depth -= 1

    def eof_received(self) -> bool | None:
        self._enter("eof")
        return self.keep_open

    def connection_lost(self, exc: Exception | None) -> None:
        self._enter(("lost", type(exc).__name__ if exc else None))
        self.lost.set_result(exc)

    def pause_writing(self) -> None:
        self.log.append("pause_writing")
        self.writing.clear()

    def resume_writing(self) -> None:
        self.log.append("resume_writing")
        self.writing.set()

    def summary(self) -> list[Any]:
        """The log with runs of "data" collapsed (how bytes are cut into callbacks is not observable),
        without the write flow-control calls."""
        out: list[Any] = []
        for ev in self.log:
            if ev in ("pause_writing", "resume_writing") or (ev == "data" and out and out[-1] == "data"):
                continue
            out.append(ev)
        return out


class BufferedRecording(Recording, asyncio.BufferedProtocol):
    """The same as a BufferedProtocol: the transport fills our (small) buffer."""

    def get_buffer(self, sizehint: int) -> memoryview:
        return memoryview(self.buf)

    def buffer_updated(self, nbytes: int) -> None:
        self._data(bytes(self.buf[:nbytes]))


def recording_buffered(**kw: Any) -> Recording:
    return BufferedRecording(**kw)


@pytest.mark.parametrize("buffered", [False, True], ids=["Protocol", "BufferedProtocol"])
async def test_echo_callback_order_both_sides(buffered: bool) -> None:
    servers: list[Recording] = []

    def factory() -> Recording:
        servers.append(recording_buffered(echo=True, buffer_size=7) if buffered else Recording(echo=True))
        return servers[-1]

    async with two_stacks() as (a, b, _):
        server = await b.create_server(factory, B, 7)
        client = recording_buffered(buffer_size=1000) if buffered else Recording()
        t, p = await a.create_connection(lambda: client, IPv4Address(B), 7)
        assert p is client
        assert isinstance(t, asyncio.Transport)
        assert isinstance(servers[0], asyncio.BufferedProtocol) if buffered else True
        assert (t.is_closing(), t.is_reading(), t.can_write_eof()) == (False, True, True)
        assert t.get_write_buffer_limits() == (16384, 65536)
        assert t.get_extra_info("peername") == (B, 7)
        assert t.get_extra_info("sslcontext") is None
        assert t.get_extra_info("socket").getpeername() == (B, 7)
        assert t.get_extra_info("nope", "dflt") == "dflt"
        msg = bytearray(b"copied by write() " * 100)
        t.write(msg)
        msg[:] = b"X" * len(msg)  # the transport copied it
        t.writelines([b"one", bytearray(b"two"), memoryview(b"three")])
        big = blob(100_000)
        t.write(big)
        t.write_eof()
        # 100 KB echoed through a 7-byte BufferedProtocol buffer is ~30,000 callbacks: seconds on a loaded machine
        assert await asyncio.wait_for(client.lost, 30) is None
        assert await asyncio.wait_for(servers[0].lost, 30) is None
        want = b"copied by write() " * 100 + b"onetwothree" + big
        assert bytes(client.data) == want
        assert bytes(servers[0].data) == want
        assert client.summary() == ["made", "data", "eof", ("lost", None)]
        assert servers[0].summary() == ["made", "data", "eof", ("lost", None)]
        if buffered:
            assert servers[0].biggest <= 7
        assert t.is_closing()
        t.close()  # no-op after connection_lost
        server.close()
        await server.wait_closed()
        assert len(servers) == 1


async def test_close_sends_everything_queued_then_fin_and_loses_once() -> None:
    got: list[Recording] = []

    def factory() -> Recording:
        got.append(Recording())
        return got[-1]

    async with two_stacks() as (a, b, _):
        server = await b.create_server(factory, B, 9)
        client = Recording()
        t, _p = await a.create_connection(lambda: client, B, 9)
        payload = blob(600_000)  # beyond the 256 KiB send buffer: the rest waits in the transport
        t.write(payload)
        assert t.get_write_buffer_size() > 0
        t.close()
        assert t.is_closing()
        assert not t.is_reading()
        # as asyncio's selector transport: while bytes still wait, a write after close() joins them
        t.write(b"sent after close")
        t.close()
        assert await asyncio.wait_for(client.lost, 5) is None
        t.write(b"dropped after close")  # nothing waits any more: dropped silently
        await asyncio.wait_for(got[0].lost, 5)
        assert bytes(got[0].data) == payload + b"sent after close"
        assert got[0].summary() == ["made", "data", "eof", ("lost", None)]
        assert client.summary() == ["made", ("lost", None)]
        await asyncio.sleep(0.01)
        assert client.log.count(("lost", None)) == 1
        server.close()
        await server.wait_closed()


async def test_abort_resets_the_peer_at_once() -> None:
    got: list[Recording] = []

    def factory() -> Recording:
        got.append(Recording())
        return got[-1]

    async with two_stacks(sniff=True) as (a, b, sn):
        await b.create_server(factory, B, 9)
        client = Recording()
        t, _p = await a.create_connection(lambda: client, B, 9)
        t.write(blob(600_000))
        t.abort()
        assert t.is_closing()
        assert await asyncio.wait_for(client.lost, 5) is None
        exc = await asyncio.wait_for(got[0].lost, 5)
        assert isinstance(exc, ConnectionResetError)
        assert exc.errno == errno.ECONNRESET
        assert client.summary() == ["made", ("lost", None)]
        assert got[0].log[0] == "made"
        assert got[0].log[-1] == ("lost", "ConnectionResetError")
        assert "eof" not in got[0].log
        assert sn is not None
        rsts = sn.flags(A, 0x04)
        assert rsts[0].flags == 0x14  # RST|ACK; later RSTs answer the server's in-flight segments
        assert sn.flags(B, 0x04) == []  # never an RST in answer to an RST
        assert a.stats()["tcp"]["OutRsts"] == len(rsts)
        assert b.stats()["tcp"]["EstabResets"] == 1


async def test_pause_reading_closes_the_window_and_resume_loses_nothing() -> None:
    got: list[Recording] = []

    def factory() -> Recording:
        got.append(Recording(pause_on_made=True))
        return got[-1]

    async with two_stacks(tcp_a=TcpConfig(sndbuf=16384), tcp_b=TcpConfig(rcvbuf=16384),
                          sniff=True) as (a, b, sn):
        assert sn is not None
        await b.create_server(factory, B, 9)
        client = Recording()
        t, _p = await a.create_connection(lambda: client, B, 9)
        t.set_write_buffer_limits(high=8192)
        assert t.get_write_buffer_limits() == (2048, 8192)
        payload = blob(200_000)
        t.write(payload)
        assert client.log[-1] == "pause_writing"  # synchronous, as asyncio's own transports
        for _ in range(200):
            await asyncio.sleep(0.005)
            if any(s.src == B and s.window == 0 for s in sn.segs):
                break
        zero = [s for s in sn.segs if s.src == B and s.window == 0]
        assert zero, "the server never advertised a zero window"
        assert got[0].log == ["made"]  # nothing delivered while paused
        assert not got[0].transport.is_reading()
        got[0].transport.resume_reading()
        assert got[0].transport.is_reading()
        await asyncio.wait_for(client.writing.wait(), 10)
        t.write_eof()
        for _ in range(400):
            await asyncio.sleep(0.005)
            if "eof" in got[0].log:
                break
        assert bytes(got[0].data) == payload
        assert client.log.count("pause_writing") >= 1
        assert "resume_writing" in client.log
        # the window reopened (no data was lost to the zero window: the bytes are identical)
        assert any(s.src == B and s.window > 0 and s.seq for s in sn.segs[sn.segs.index(zero[-1]):])
        t.close()
        got[0].transport.close()
        await asyncio.wait_for(client.lost, 5)


async def test_pause_reading_keeps_eof_and_lost_until_resume() -> None:
    got: list[Recording] = []

    def factory() -> Recording:
        got.append(Recording(pause_on_made=True))
        return got[-1]

    async with two_stacks() as (a, b, _):
        await b.create_server(factory, B, 9)
        client = Recording(keep_open=True)
        t, _p = await a.create_connection(lambda: client, B, 9)
        t.write(b"abc")
        t.write_eof()
        await asyncio.sleep(0.05)
        assert got[0].log == ["made"]
        got[0].transport.resume_reading()
        await asyncio.wait_for(got[0].lost, 5)  # eof_received() returned None: closed
        assert got[0].summary() == ["made", "data", "eof", ("lost", None)]
        assert bytes(got[0].data) == b"abc"
        # eof_received() returned True: both FINs are done, but connection_lost waits for close()
        # (asyncio removes the reader and never looks at the socket again)
        await asyncio.sleep(0.05)
        assert client.summary() == ["made", "eof"]
        assert not t.is_closing()
        t.close()
        assert await asyncio.wait_for(client.lost, 5) is None
        assert client.summary() == ["made", "eof", ("lost", None)]


async def test_eof_received_true_keeps_the_write_side_open() -> None:
    class Answer(Recording):
        def eof_received(self) -> bool | None:
            super().eof_received()
            self.transport.write(b"answer to " + bytes(self.data))
            self.transport.close()
            return True

    srv: list[Answer] = []

    def factory() -> Answer:
        srv.append(Answer())
        return srv[-1]

    async with two_stacks() as (a, b, _):
        await b.create_server(factory, B, 9)
        client = Recording()
        t, _p = await a.create_connection(lambda: client, B, 9)
        t.write(b"question")
        t.write_eof()
        await asyncio.wait_for(client.lost, 5)
        assert bytes(client.data) == b"answer to question"
        assert client.summary() == ["made", "data", "eof", ("lost", None)]


async def test_exception_in_data_received_aborts_and_reports() -> None:
    errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: errors.append(ctx))

    class Broken(Recording):
        def data_received(self, data: bytes) -> None:
            raise ValueError("broken protocol")

    srv: list[Broken] = []

    def factory() -> Broken:
        srv.append(Broken())
        return srv[-1]

    async with two_stacks() as (a, b, _):
        await b.create_server(factory, B, 9)
        client = Recording()
        t, _p = await a.create_connection(lambda: client, B, 9)
        t.write(b"boom")
        exc = await asyncio.wait_for(client.lost, 5)
        assert isinstance(exc, ConnectionResetError)
        assert isinstance(await asyncio.wait_for(srv[0].lost, 5), ValueError)
        assert [type(e.get("exception")) for e in errors] == [ValueError]


async def test_tcp_connections_lists_states_and_disconnect_aborts() -> None:
    got: list[Recording] = []

    def factory() -> Recording:
        got.append(Recording())
        return got[-1]

    async with two_stacks() as (a, b, _):
        await b.create_server(factory, None, 9)
        client = Recording()
        t, _p = await a.create_connection(lambda: client, B, 9, local_addr=(A, 40000))
        assert t.get_extra_info("sockname") == (A, 40000)
        await asyncio.sleep(0.01)
        rows = b.tcp_connections()
        states = sorted(r.state for r in rows)
        assert states == ["ESTABLISHED", "LISTEN"]
        est = next(r for r in rows if r.state == "ESTABLISHED")
        assert (est.local_port, est.remote_addr, est.remote_port) == (9, int(IPv4Address(A)), 40000)
        assert est.mss == 1460
        assert est.cwnd > 0
        assert b.stats()["tcp"]["CurrEstab"] == 1
        await b.disconnect()
        exc = await asyncio.wait_for(got[0].lost, 5)
        assert isinstance(exc, ConnectionAbortedError)
        exc = await asyncio.wait_for(client.lost, 5)
        assert isinstance(exc, ConnectionResetError)


async def test_write_buffer_counts_only_bytes_beyond_the_send_buffer() -> None:
    got: list[Recording] = []

    def factory() -> Recording:
        got.append(Recording(pause_on_made=True))
        return got[-1]

    async with two_stacks() as (a, b, _):
        await b.create_server(factory, B, 9)
        client = Recording()
        t, _p = await a.create_connection(lambda: client, B, 9)
        t.write(blob(200_000))  # fits the 256 KiB send buffer: no transport buffering, no pause
        assert t.get_write_buffer_size() == 0
        assert "pause_writing" not in client.log
        t.write(blob(200_000, 1))
        assert t.get_write_buffer_size() == 400_000 - 262144
        assert client.log.count("pause_writing") == 1
        got[0].transport.resume_reading()
        await asyncio.wait_for(client.writing.wait(), 5)
        assert client.log.count("resume_writing") == 1
        t.close()
        await asyncio.wait_for(got[0].lost, 5)
        assert bytes(got[0].data) == blob(200_000) + blob(200_000, 1)


async def test_accept_queue_replays_data_eof_and_reset_on_start_serving() -> None:
    got: list[Recording] = []

    def factory() -> Recording:
        got.append(Recording())
        return got[-1]

    async with two_stacks() as (a, b, _):
        server = await b.create_server(factory, B, 9, start_serving=False)
        c1, c2 = Recording(), Recording()
        t1, _ = await a.create_connection(lambda: c1, B, 9)  # established in the accept queue
        t2, _ = await a.create_connection(lambda: c2, B, 9)
        t1.write(b"sent before accept")
        t1.write_eof()
        t2.abort()
        await asyncio.sleep(0.02)
        assert got == []
        await server.start_serving()
        for _ in range(100):
            await asyncio.sleep(0.005)
            if len(got) == 2 and got[0].lost.done() and got[1].lost.done():
                break
        assert bytes(got[0].data) == b"sent before accept"
        assert got[0].summary() == ["made", "data", "eof", ("lost", None)]
        assert got[1].summary() == ["made", ("lost", "ConnectionResetError")]
        assert await asyncio.wait_for(c1.lost, 5) is None
        server.close()
        await server.wait_closed()


async def test_data_received_gets_at_most_64_kib_at_a_time() -> None:
    """Bytes that piled up while reading was paused reach data_received in pieces of at most 64 KiB
    (see transport._READ_MAX), all of them, in order."""
    got: list[Recording] = []

    def factory() -> Recording:
        got.append(Recording(pause_on_made=True))
        return got[-1]

    async with two_stacks(tcp_b=TcpConfig(rcvbuf=1 << 20)) as (a, b, _sn):
        await b.create_server(factory, B, 9)
        t, _p = await a.create_connection(Recording, B, 9)
        payload = blob(700_000)
        t.write(payload)
        for _ in range(2000):  # generous: a loaded machine
            await asyncio.sleep(0.005)
            if got and got[0].transport._conn.readable == len(payload):
                break
        assert got[0].transport._conn.readable == len(payload)
        got[0].transport.resume_reading()
        for _ in range(2000):
            await asyncio.sleep(0.005)
            if len(got[0].data) == len(payload):
                break
        assert bytes(got[0].data) == payload
        assert got[0].biggest == 64 * 1024
        assert got[0].log.count("data") == 11  # 10 x 64 KiB + the rest
        t.close()
        got[0].transport.close()
