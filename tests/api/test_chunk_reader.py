"""ChunkReader against asyncio's own StreamReader: same results, limits, errors and flow control; fewer copies."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tcp_support import B, two_stacks

from tcpip.aio.reader import ChunkReader

pytestmark = pytest.mark.timeout(30)
Op = Callable[[asyncio.StreamReader], Awaitable[Any]]


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def pause_reading(self) -> None:
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.calls.append("resume")


def _outcome(fut: asyncio.Future[Any]) -> tuple[Any, ...]:
    """A read's result, or its exception with every field asyncio's readers put in it."""
    exc = fut.exception()
    if exc is None:
        return ("ok", fut.result())
    if isinstance(exc, asyncio.IncompleteReadError):
        return ("incomplete", exc.partial, exc.expected)
    if isinstance(exc, asyncio.LimitOverrunError):
        return ("overrun", exc.consumed, str(exc))
    return (type(exc).__name__, str(exc))


async def _drive(reader: asyncio.StreamReader, pieces: list[bytes], ops: list[Op], eof: bool,
                 exc: Exception | None = None) -> list[Any]:
    """Run `ops` one after another in a task while `pieces` are fed one per loop turn, then EOF or an
    exception; the outcome of each op and the reader's at_eof() after it."""
    out: list[Any] = []

    async def consume() -> None:
        for op in ops:
            fut: asyncio.Future[Any] = asyncio.ensure_future(op(reader))
            await asyncio.wait([fut])
            out.append((_outcome(fut), reader.at_eof()))

    task = asyncio.ensure_future(consume())
    for p in pieces:
        await asyncio.sleep(0)
        reader.feed_data(p)
    await asyncio.sleep(0)
    if exc is not None:
        reader.set_exception(exc)
    elif eof:
        reader.feed_eof()
    await asyncio.wait_for(task, 5)
    return out


def _joining_op(kind: int, arg: int) -> Op:
    if kind == 0:
        return lambda r: r.readline()
    if kind == 1:
        return lambda r: r.readuntil(b"XY")
    return lambda r: r.readexactly(arg)


def _reader_of(n: int) -> Op:
    return lambda r: r.read(n)


_piece = st.one_of(st.binary(max_size=40), st.sampled_from([b"\n", b"X", b"Y", b"XY", b"ab\ncd"]),
                   st.binary(min_size=600, max_size=700))


@settings(max_examples=100, deadline=None)
@given(pieces=st.lists(_piece, max_size=12), ops=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 90)),
                                                        min_size=1, max_size=8),
       limit=st.sampled_from([8, 64, 2**16]), end=st.sampled_from(["eof", "exc"]))
def test_joining_readers_match_asyncio(pieces: list[bytes], ops: list[tuple[int, int]], limit: int,
                                       end: str) -> None:
    """readline / readuntil / readexactly: identical results, partials, overruns, errors and at_eof()."""
    async def run(cls: type[asyncio.StreamReader]) -> list[Any]:
        r = cls(limit=limit)
        return await _drive(r, pieces, [_joining_op(k, a) for k, a in ops], True,
                            ConnectionResetError("gone") if end == "exc" else None)

    want = asyncio.run(run(asyncio.StreamReader))
    got = asyncio.run(run(ChunkReader))
    assert got == want


@settings(max_examples=60, deadline=None)
@given(pieces=st.lists(_piece, max_size=12), sizes=st.lists(st.integers(1, 800), min_size=1, max_size=30),
       line_first=st.booleans())
def test_read_delivers_the_stream_in_order(pieces: list[bytes], sizes: list[int], line_first: bool) -> None:
    """read(n) may return fewer bytes than asyncio's (one chunk at a time) but never more than n, never
    empty before EOF, and every byte in order, also after a joining reader left bytes in the buffer."""
    async def run() -> tuple[list[bytes], bool]:
        r = ChunkReader(limit=2**16)
        ops: list[Op] = [lambda r: r.readline()] if line_first else []
        ops += [_reader_of(n) for n in sizes]
        ops.append(lambda r: r.read())
        out = await _drive(r, pieces, ops, True)
        return [o[0][1] for o in out], r.at_eof()

    got, at_eof = asyncio.run(run())
    assert b"".join(got) == b"".join(pieces)
    assert at_eof
    reads = got[1:] if line_first else got
    for data, n in zip(reads, sizes, strict=False):
        assert len(data) <= n
        if not data:
            assert b"".join(got[got.index(data):]) == b""  # empty only once everything was read


async def test_read_hands_on_the_fed_bytes_object() -> None:
    r = ChunkReader()
    a, b = random.Random(1).randbytes(1448), random.Random(2).randbytes(65536)
    r.feed_data(a)
    r.feed_data(b)
    assert await r.read(4096) is a  # no copy at all
    part = await r.read(1000)
    assert part == b[:1000]
    assert await r.read(1 << 18) == b[1000:]
    exact = random.Random(3).randbytes(3000)
    r.feed_data(exact)
    assert await r.readexactly(3000) is exact  # one whole chunk: no copy either
    r.feed_eof()
    assert await r.read(10) == b""
    assert r.at_eof()


async def test_fed_buffers_are_copied_and_small_pieces_joined() -> None:
    r = ChunkReader()
    buf = bytearray(b"abcdef")
    r.feed_data(buf)
    buf[:] = b"zzzzzz"  # the caller reuses its buffer
    r.feed_data(memoryview(b"gh"))
    for _ in range(100):
        r.feed_data(b"i")
    assert await r.read(1000) == b"abcdefgh" + b"i" * 100  # 1-byte pieces do not come back one by one
    assert repr(r) == "<StreamReader>"
    r.feed_data(b"x" * 10)
    r.feed_eof()
    assert repr(r) == "<StreamReader 10 bytes eof>"
    assert not r.at_eof()
    assert await r.read() == b"x" * 10
    assert r.at_eof()


async def test_exception_and_eof_semantics() -> None:
    r = ChunkReader()
    r.feed_data(b"data")
    err = ConnectionResetError("reset")
    r.set_exception(err)
    assert r.exception() is err
    with pytest.raises(ConnectionResetError):
        await r.read(10)
    with pytest.raises(ConnectionResetError):
        await r.readexactly(1)
    with pytest.raises(ConnectionResetError):
        await r.read(0)  # the exception comes first, as in asyncio
    r2 = ChunkReader()
    r2.feed_eof()
    with pytest.raises(AssertionError, match="feed_data after feed_eof"):
        r2.feed_data(b"x")
    waiting = asyncio.ensure_future(r2.read(5))
    assert await waiting == b""
    r3 = ChunkReader()
    first = asyncio.ensure_future(r3.read(5))
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="already waiting"):
        await r3.read(5)
    r3.feed_data(b"hello world")
    assert await first == b"hello"
    assert await r3.read(100) == b" world"


@pytest.mark.parametrize("cls", [asyncio.StreamReader, ChunkReader])
async def test_flow_control_pauses_and_resumes_the_transport(cls: type[asyncio.StreamReader]) -> None:
    """Paused above 2 * limit buffered, resumed at <= limit, and a reader waiting while paused resumes."""
    r = cls(limit=100)
    t = FakeTransport()
    r.set_transport(t)
    r.feed_data(b"a" * 150)
    r.feed_data(b"b" * 50)
    assert t.calls == []
    r.feed_data(b"c" * 1)  # 201 > 2 * 100
    assert t.calls == ["pause"]
    r.feed_data(b"d" * 99)
    assert t.calls == ["pause"]
    assert await r.readexactly(150) == b"a" * 150  # 150 left > limit
    assert t.calls == ["pause"]
    assert await r.readexactly(50) == b"b" * 50  # 100 left: resume
    assert t.calls == ["pause", "resume"]
    assert await r.readexactly(100) == b"c" + b"d" * 99
    r.feed_data(b"e" * 250)
    assert t.calls == ["pause", "resume", "pause"]
    waiter = asyncio.ensure_future(r.readexactly(300))  # more than is buffered: waiting resumes reading
    await asyncio.sleep(0)
    assert t.calls == ["pause", "resume", "pause", "resume"]
    r.feed_data(b"f" * 50)
    assert await waiter == b"e" * 250 + b"f" * 50


async def test_limit_overrun_leaves_data_then_readline_discards_like_asyncio() -> None:
    for cls in (asyncio.StreamReader, ChunkReader):
        r = cls(limit=4)
        r.feed_data(b"abcdefgh")
        r.feed_data(b"ij\nrest\n")
        with pytest.raises(asyncio.LimitOverrunError) as e:
            await r.readuntil(b"\n")
        assert e.value.consumed == 10
        assert await r.read(3) == b"abc"  # left in the buffer, readable again
        with pytest.raises(ValueError, match="Separator is found, but chunk is longer than limit"):
            await r.readline()
        assert await r.readline() == b"rest\n"


async def test_streams_over_the_stack_use_chunk_readers() -> None:
    """open_connection and start_server hand out ChunkReaders (still asyncio.StreamReaders), and 1 MB
    arrives intact through read(n), readexactly and readline mixed."""
    blob = random.Random(7).randbytes(1 << 20)
    seen: list[asyncio.StreamReader] = []

    async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        seen.append(r)
        w.write(b"hello\n" + blob)
        await w.drain()
        w.close()

    async with two_stacks() as (a, b, _):
        server = await b.start_server(serve, B, 9000)
        reader, writer = await a.open_connection(B, 9000)
        assert type(reader) is ChunkReader
        assert isinstance(reader, asyncio.StreamReader)
        assert await reader.readline() == b"hello\n"
        got = [await reader.readexactly(1000)]
        while data := await reader.read(1 << 18):
            got.append(data)
        assert b"".join(got) == blob
        assert reader.at_eof()
        writer.close()
        server.close()
    assert type(seen[0]) is ChunkReader
