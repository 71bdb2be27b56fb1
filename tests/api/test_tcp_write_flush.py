"""The transport's write(): the writes of one loop turn are queued, then sent by one output (not one per write)."""

from __future__ import annotations

import asyncio

import pytest
from tcp_support import B, blob, two_stacks

from tcpip.core.tcp.conn import Connection


async def test_writes_of_one_turn_share_one_output(monkeypatch: pytest.MonkeyPatch) -> None:
    async with two_stacks() as (a, b, _):
        got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            got.set_result(await r.read(-1))
            w.close()

        server = await b.start_server(handle, B, 7001)
        reader, writer = await a.open_connection(B, 7001)
        conn = writer.transport._conn  # type: ignore[attr-defined]
        calls: list[int] = []
        flush = Connection.flush

        def counted(c: Connection, now: float) -> None:
            calls.append(c.snd_nxt)
            flush(c, now)

        monkeypatch.setattr(Connection, "flush", counted)
        chunks = [blob(3000, seed=i) for i in range(4)]
        nxt = conn.snd_nxt
        for c in chunks:  # a write + drain() loop that is never paused: no turn between the writes
            writer.write(c)
            await writer.drain()
        assert calls == []  # queued only
        assert conn.snd_nxt == nxt
        assert conn.send_queued == 12000
        await asyncio.sleep(0)  # the turn's flush, then its drain
        assert calls == [nxt]  # one output for the four writes
        assert conn.snd_nxt != nxt  # and it sent on that turn
        writer.write_eof()
        assert await asyncio.wait_for(got, 20) == b"".join(chunks)
        writer.close()
        server.close()
        await reader.read()


async def test_a_write_then_abort_sends_nothing_after_the_abort(monkeypatch: pytest.MonkeyPatch) -> None:
    async with two_stacks() as (a, b, _):
        server = await b.start_server(lambda r, w: None, B, 7002)
        _reader, writer = await a.open_connection(B, 7002)
        calls: list[object] = []
        flush = Connection.flush
        monkeypatch.setattr(Connection, "flush", lambda c, now: (calls.append(c), flush(c, now))[1])
        writer.write(blob(1000))
        writer.transport.abort()
        await asyncio.sleep(0)
        assert calls == []  # the queued flush found the transport gone
        server.close()
