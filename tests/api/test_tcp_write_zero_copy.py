"""The transport's write path: immutable data is queued (and then sent) by reference, mutable data copied once."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st
from tcp_support import B, blob, two_stacks

from tcpip.aio.writeq import WriteQueue
from tcpip.core.tcp.config import TcpConfig

KINDS = ("bytes", "bytes_view", "bytearray", "bytearray_view", "readonly_bytearray_view")


def _make(kind: str, payload: bytes) -> tuple[bytes | bytearray | memoryview, bytearray | None]:
    if kind == "bytes":
        return payload, None
    if kind == "bytes_view":
        return memoryview(b"." + payload)[1:], None
    ba = bytearray(payload)
    if kind == "bytearray":
        return ba, ba
    return (memoryview(ba) if kind == "bytearray_view" else memoryview(ba).toreadonly()), ba


class _Sink:
    """A connection's send(): takes up to `budget` bytes in all, recording them."""

    def __init__(self, budget: int, sent: bytearray) -> None:
        self.budget, self.sent = budget, sent

    def __call__(self, piece: bytes | memoryview) -> int:
        assert type(piece) is bytes or type(piece.obj) is bytes  # immutable all the way down
        k = min(len(piece), self.budget)
        self.budget -= k
        self.sent.extend(piece[:k])
        return k


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(
    st.tuples(st.just("add"), st.sampled_from(KINDS), st.sampled_from([0, 1, 100, 4095, 4096, 70000])),
    st.tuples(st.just("push"), st.integers(0, 200_000)),
), max_size=25))
def test_write_queue_matches_a_bytes_model(script: list[tuple[object, ...]]) -> None:
    q = WriteQueue()
    model = bytearray()
    sent = bytearray()
    mutables: list[bytearray] = []
    counter = 0
    for op in script:
        if op[0] == "add":
            kind, n = str(op[1]), int(op[2])  # type: ignore[call-overload]
            payload = bytes((counter + i) * 13 % 253 for i in range(n))
            counter += n
            data, m = _make(kind, payload)
            q.add(data)
            model += payload
            if m is not None:
                mutables.append(m)
        else:
            took = q.push(_Sink(int(op[1]), sent))  # type: ignore[call-overload]
            assert took == min(int(op[1]), len(model))  # type: ignore[call-overload]
            del model[:took]
        for m in mutables:  # the caller reuses its buffers: nothing queued changes
            m[:] = b"\xee" * len(m)
        assert len(q) == len(model)
        assert bool(q) == bool(model)
    q.push(lambda piece: (sent.extend(piece), len(piece))[1])
    assert len(q) == 0
    expect = bytearray()
    counter = 0
    for op in script:
        if op[0] == "add":
            n = int(op[2])  # type: ignore[call-overload]
            expect += bytes((counter + i) * 13 % 253 for i in range(n))
            counter += n
    assert sent == expect


def test_large_bytes_are_queued_by_reference() -> None:
    q = WriteQueue()
    data = bytes(100_000)
    q.add(data)
    pieces: list[bytes | memoryview] = []
    assert q.push(lambda p: (pieces.append(p), 60_000)[1]) == 60_000
    assert pieces[0] is data
    assert q.push(lambda p: (pieces.append(p), len(p))[1]) == 40_000
    assert type(pieces[1]) is memoryview
    assert pieces[1].obj is data
    assert len(q) == 0


async def test_a_reused_bytearray_does_not_change_what_is_sent() -> None:
    """The writer fills and rewrites one bytearray faster than the send buffer drains: the peer still
    gets every byte as it was when written (both the send buffer and the transport's queue copy)."""
    small = TcpConfig(sndbuf=16384, timestamps=True, sack=True, window_scaling=True)
    async with two_stacks(tcp_a=small) as (a, b, _):
        chunks = [blob(20_000, seed=i) for i in range(12)]
        got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            got.set_result(await r.read(-1))
            w.close()

        server = await b.start_server(handle, B, 7000)
        reader, writer = await a.open_connection(B, 7000)
        buf = bytearray(20_000)
        for c in chunks:
            buf[:] = c
            writer.write(buf)  # then overwritten at once by the next chunk
            writer.write(memoryview(c))  # a view of bytes: kept by reference
        assert writer.transport.get_write_buffer_size() > 0  # the queue was used, not just the send buffer
        buf[:] = bytes(len(buf))
        writer.write_eof()
        data = await asyncio.wait_for(got, 20)
        assert data == b"".join(c + c for c in chunks)
        writer.close()
        server.close()
        await reader.read()


def test_strided_and_wide_views_of_bytes_are_flattened_to_their_bytes() -> None:
    """A view of `bytes` that is strided or not of bytes (format "I") is copied flat: its len() would not be
    its byte count, and writev cannot take a strided buffer."""
    b = bytes(range(256)) * 64
    q = WriteQueue()
    q.add(memoryview(b)[::2])
    q.add(memoryview(b).cast("I"))
    assert len(q) == len(b) // 2 + len(b)
    sent = bytearray()
    assert q.push(_Sink(1 << 20, sent)) == len(b) // 2 + len(b)
    assert bytes(sent) == b[::2] + b
