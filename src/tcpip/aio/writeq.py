"""WriteQueue: the bytes a TcpTransport holds beyond its connection's send buffer, immutable ones uncopied."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

Buffer = bytes | bytearray | memoryview
# Written pieces smaller than this join a small last piece (a bounded copy): a trickle of tiny writes does
# not become a queue of tiny objects, each a call into the connection later.
_SMALL = 4096


class WriteQueue:
    """FIFO of written pieces. `bytes` and views of `bytes` are kept by reference (nothing can change
    them); anything else is copied into a new `bytes` (the caller may reuse its buffer at once), which
    then never changes either, so the connection's send buffer can in turn keep every piece by reference:
    one copy at most from write() to the wire. len() is the bytes held (asyncio's write buffer size)."""

    __slots__ = ("_q", "size")

    def __init__(self) -> None:
        self._q: deque[bytes | memoryview] = deque()
        self.size = 0  # bytes held: len(), read as an attribute on the write path (no __len__ call)

    def __len__(self) -> int:
        return self.size

    def clear(self) -> None:
        self._q.clear()
        self.size = 0

    def add(self, data: Buffer) -> None:
        """Queue `data` (by reference when immutable, else a copy)."""
        if not (type(data) is bytes or (type(data) is memoryview and type(data.obj) is bytes
                                        and data.itemsize == 1 and data.ndim == 1 and data.contiguous)):
            data = bytes(data)  # also flattens views of other formats or strides: len() is then bytes
        n = len(data)
        if not n:
            return
        q = self._q
        if n < _SMALL and q and len(q[-1]) < _SMALL:
            q[-1] = bytes(q[-1]) + data
        else:
            q.append(data)
        self.size += n

    def push(self, send: Callable[[bytes | memoryview], int]) -> int:
        """Offer the pieces to `send` in order (it returns how many bytes it took) until it takes less
        than a whole piece; returns the bytes taken."""
        q = self._q
        took = 0
        while q:
            c = q[0]
            k = send(c)
            took += k
            if k < len(c):
                if k:
                    q[0] = memoryview(c)[k:]  # still a view of the same immutable bytes
                break
            q.popleft()
        self.size -= took
        return took
