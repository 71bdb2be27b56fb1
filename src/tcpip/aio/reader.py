"""ChunkReader: asyncio's StreamReader keeping received `bytes` whole, so read(n) hands them on uncopied."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from typing import Any, SupportsIndex

# A piece this small is appended to a small last chunk (a bounded copy) rather than queued, so a peer
# trickling bytes cannot make read(n) return them one at a time or pile up per-object overhead.
_SMALL = 512
_SMALL_JOIN = 4096


class ChunkReader(asyncio.StreamReader):
    """A StreamReader (isinstance holds; the public API and its semantics are asyncio's) whose received
    data is a queue of the `bytes` objects feed_data() got, behind asyncio's own `_buffer`.

    asyncio's reader copies every byte twice more: feed_data() extends a bytearray, read() copies out and
    moves the rest down. Here read(n) returns the first queued chunk itself when it is at most n bytes
    (fewer than n is what read(n) promises anyway), and a slice of it otherwise. The line and exact-size
    readers (readline, readuntil, readexactly, async for) first join the queue into `_buffer` and then run
    asyncio's code unchanged, so their results, limits and errors are asyncio's to the byte.

    The stream is `_buffer` followed by the queued chunks; `_buffer` is only non-empty after a joining
    reader left bytes there, and read() drains it before the queue."""

    # asyncio's private state this class works with (typeshed does not declare it)
    _buffer: bytearray
    _eof: bool
    _limit: int
    _exception: BaseException | None
    _transport: Any
    _paused: bool
    _waiter: asyncio.Future[None] | None

    def __init__(self, limit: int = 2**16, loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(limit=limit, loop=loop)
        self._chunks: deque[bytes | memoryview] = deque()
        self._queued = 0  # bytes in _chunks

    def __repr__(self) -> str:
        info = ["StreamReader"]
        n = len(self._buffer) + self._queued
        if n:
            info.append(f"{n} bytes")
        if self._eof:
            info.append("eof")
        if self._limit != 2**16:
            info.append(f"limit={self._limit}")
        for name in ("waiter", "exception", "transport"):
            value = getattr(self, "_" + name)
            if value:
                info.append(f"{name}={value!r}")
        if self._paused:
            info.append("paused")
        return "<{}>".format(" ".join(info))

    def _join(self) -> None:
        """Move the queued chunks into `_buffer` (for the readers that search or count across chunks)."""
        chunks = self._chunks
        if chunks:
            buf = self._buffer
            for c in chunks:
                buf += c
            chunks.clear()
            self._queued = 0

    def at_eof(self) -> bool:
        return self._eof and not self._buffer and not self._queued

    def feed_data(self, data: Iterable[SupportsIndex]) -> None:
        assert not self._eof, "feed_data after feed_eof"
        if not data:
            return
        # the caller may reuse its buffer: anything but bytes is copied (asyncio copies everything)
        chunk = data if type(data) is bytes else bytes(data)
        n = len(chunk)
        chunks = self._chunks
        if n < _SMALL and chunks and len(chunks[-1]) < _SMALL_JOIN:
            chunks[-1] = bytes(chunks[-1]) + chunk
        else:
            chunks.append(chunk)
        self._queued += n
        w = self._waiter
        if w is not None:  # asyncio's _wakeup_waiter, inlined (per chunk)
            self._waiter = None
            if not w.cancelled():
                w.set_result(None)
        if self._transport is not None and not self._paused and \
                len(self._buffer) + self._queued > 2 * self._limit:
            try:
                self._transport.pause_reading()
            except NotImplementedError:
                self._transport = None  # cannot be paused: buffer everything (as asyncio does)
            else:
                self._paused = True

    def _maybe_resume_transport(self) -> None:
        if self._paused and len(self._buffer) + self._queued <= self._limit:
            self._paused = False
            self._transport.resume_reading()

    async def _wait_for_data(self, func_name: str) -> None:
        await super()._wait_for_data(func_name)  # type: ignore[misc]
        if func_name != "read":
            self._join()  # asyncio's own readers look for the new bytes in _buffer

    async def read(self, n: int = -1) -> bytes:
        if n <= 0 or self._buffer:  # read all (loops over read(limit)), n == 0, or _buffer first
            return await super().read(n)
        if self._exception is not None:
            raise self._exception
        if not self._queued and not self._eof:
            await self._wait_for_data("read")
        chunks = self._chunks
        if not chunks:
            return b""  # EOF
        c = chunks[0]
        k = len(c)
        if k <= n:
            chunks.popleft()
            self._queued -= k
            data = c if type(c) is bytes else bytes(c)
        else:
            v = memoryview(c)
            data = bytes(v[:n])
            chunks[0] = v[n:]  # the rest stays where it is: no move
            self._queued -= n
        if self._paused:
            self._maybe_resume_transport()
        return data

    async def readexactly(self, n: int) -> bytes:
        if n > 0 and self._exception is None and not self._buffer:
            chunks = self._chunks
            if chunks and len(chunks[0]) == n and type(chunks[0]) is bytes:  # one whole chunk: no copy
                self._queued -= n
                data = chunks.popleft()
                self._maybe_resume_transport()
                return bytes(data) if type(data) is not bytes else data
        self._join()
        return await super().readexactly(n)

    async def readuntil(self, separator: Any = b"\n") -> bytes:  # (3.13 also takes a tuple of them)
        self._join()
        return await super().readuntil(separator)

    async def readline(self) -> bytes:
        self._join()
        return await super().readline()


__all__ = ["ChunkReader"]
