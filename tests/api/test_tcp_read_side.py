"""TcpTransport's read side: pieces of at most 64 KiB to data_received / a BufferedProtocol, and one window
update check per delivery, after all its pieces (not one per piece)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from tcp_support import B, two_stacks

from tcpip.core.tcp.conn import Connection

pytestmark = pytest.mark.timeout(30)


def _pause_once(proto: Any) -> None:
    """Stop reading at the first data for 50 ms: the delivery after that has many pieces to hand over."""
    if not proto.paused_once:
        proto.paused_once = True
        proto.transport.pause_reading()
        asyncio.get_running_loop().call_later(0.05, proto.transport.resume_reading)


class Sink(asyncio.Protocol):
    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.paused_once = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.pieces.append(data)
        _pause_once(self)

    def eof_received(self) -> bool:
        self.done.set_result(None)
        return False


class BufSink(asyncio.BufferedProtocol):
    def __init__(self) -> None:
        self.buf = bytearray(5000)
        self.got = bytearray()
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.paused_once = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def get_buffer(self, sizehint: int) -> bytearray:
        return self.buf

    def buffer_updated(self, nbytes: int) -> None:
        self.got += self.buf[:nbytes]
        _pause_once(self)

    def eof_received(self) -> bool:
        self.done.set_result(None)
        return False


@pytest.mark.parametrize("buffered", [False, True])
async def test_one_window_update_per_delivery(monkeypatch: pytest.MonkeyPatch, buffered: bool) -> None:
    blob = random.Random(3).randbytes(3 << 20)
    calls: list[Any] = []
    real_recv, real_update, real_piece = Connection.recv, Connection.window_update, Connection.recv_piece

    def recv(self: Connection, now: float, n: int | None = None, update: bool = True) -> bytes:
        data = real_recv(self, now, n, update)
        if self.local_port != 9100:  # the client's side only
            calls.append(("recv", len(data), update))
        return data

    def recv_piece(self: Connection, n: int) -> bytes:  # the data_received path's recv(now, n, False)
        data = real_piece(self, n)
        if self.local_port != 9100:
            calls.append(("recv", len(data), False))
        return data

    def window_update(self: Connection, now: float) -> None:
        if self.local_port != 9100:
            calls.append(("update",))
        real_update(self, now)

    monkeypatch.setattr(Connection, "recv", recv)
    monkeypatch.setattr(Connection, "window_update", window_update)
    monkeypatch.setattr(Connection, "recv_piece", recv_piece)

    async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(blob)
        await w.drain()
        w.close()

    async with two_stacks() as (a, b, _):
        server = await b.start_server(serve, B, 9100)
        sink: Sink | BufSink = BufSink() if buffered else Sink()
        transport, _ = await a.create_connection(lambda: sink, B, 9100)
        await asyncio.wait_for(sink.done, 20)
        got = bytes(sink.got) if isinstance(sink, BufSink) else b"".join(sink.pieces)
        assert got == blob
        transport.close()
        server.close()
    reads = [c for c in calls if c[0] == "recv"]
    assert reads
    assert all(not c[2] for c in reads)  # never an update per piece
    assert all(0 < c[1] <= (5000 if buffered else 65536) for c in reads)
    # every run of pieces (one delivery) is followed by exactly one update check
    runs = "".join("r" if c[0] == "recv" else "u" for c in calls)
    assert runs.endswith("u")
    assert "uu" not in runs
    assert "rrr" in runs  # the delivery after the pause took several pieces, then one update
