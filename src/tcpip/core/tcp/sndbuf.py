"""TCP send buffer: bytes the application queued, from snd_una on, with zero-copy views for segments.

Bytes live in fixed-size blocks that never resize: a written byte never changes or moves, so a memoryview
handed out for a segment stays valid after later writes and after `ack` drops its block (the view keeps the
block alive). A block is a bytearray the buffer copied into, or (zero copy) the application's own immutable
data: a write of at least MIN_BLOCK bytes of `bytes` (or a view of `bytes`) is kept by reference, since
nothing can change it; anything mutable is copied, as the caller may reuse it at once. Copying writes fill
the last bytearray block before starting another, so small writes coalesce and most segments are one slice
of one block; a reference first seals a partly filled block as a view of its filled part.
"""

from __future__ import annotations

from typing import cast

Buffer = bytes | bytearray | memoryview

MIN_BLOCK = 4096
MAX_BLOCK = 65536


class SendBuffer:
    """Queued bytes from snd_una: `write` appends, `view` reads at an offset, `ack` drops from the front."""

    __slots__ = ("_blocks", "_fill", "_head", "_hint", "capacity", "queued")

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError(f"capacity {capacity} must be positive")
        self.capacity = capacity
        self.queued = 0               # bytes from snd_una (unacknowledged + unsent)
        self._blocks: list[Buffer] = []  # bytearrays, `bytes` and read-only views (see the module doc)
        self._head = 0                # offset of snd_una in _blocks[0]
        self._fill = 0                # bytes used in _blocks[-1]; every other block is full
        self._hint = (0, 0)           # (block index, its start counted from _blocks[0]): views run forward

    @property
    def free(self) -> int:
        return self.capacity - self.queued

    def write(self, data: Buffer) -> int:
        """Take as much of `data` as fits (by reference when immutable and large, else a copy); returns
        the number of bytes accepted."""
        q = self.queued
        free = self.capacity - q
        if free <= 0:
            return 0
        size = len(data)
        blocks = self._blocks
        if type(data) is bytes and MIN_BLOCK <= size <= free:  # the bulk writer's piece, whole: by reference
            if blocks and self._fill != len(blocks[-1]):  # seal the partly filled block: its filled part
                blocks[-1] = memoryview(blocks[-1])[:self._fill]
            blocks.append(data)
            self._fill = size
            self.queued = q + size
            return size
        n = size if size < free else free
        if n <= 0:
            return 0
        if n >= MIN_BLOCK and (type(data) is bytes or (
                type(data) is memoryview and type(data.obj) is bytes and data.itemsize == 1 and data.ndim == 1
                and data.contiguous)):
            if blocks and self._fill != len(blocks[-1]):  # seal the partly filled block: its filled part
                blocks[-1] = memoryview(blocks[-1])[:self._fill]
            blocks.append(data if n == len(data) and type(data) is bytes else memoryview(data)[:n])
            self._fill = n
            self.queued += n
            return n
        src = data if isinstance(data, memoryview) else memoryview(data)
        done = 0
        while done < n:
            if not blocks or self._fill == len(blocks[-1]):
                left = n - done
                if left >= MIN_BLOCK:  # a full block built from the data (one pass, no zero-fill first)
                    take = left if left < MAX_BLOCK else MAX_BLOCK
                    blocks.append(bytearray(src[done:done + take]))
                    self._fill = take
                    done += take
                    continue
                blocks.append(bytearray(max(MIN_BLOCK, left)))
                self._fill = 0
            block = cast(bytearray, blocks[-1])  # every other kind of block is full
            k = min(len(block) - self._fill, n - done)
            block[self._fill:self._fill + k] = src[done:done + k]  # same size: allowed while views exist
            self._fill += k
            done += k
        self.queued += n
        return n

    def view(self, offset: int, n: int) -> memoryview:
        """Bytes [offset, offset + n) counted from snd_una: one block's slice, or a copy across blocks."""
        i, pos = self._locate(offset, n)
        if n == 0:
            return memoryview(b"")
        block = self._blocks[i]
        if pos + n <= len(block):
            return memoryview(block)[pos:pos + n]
        return memoryview(b"".join(self._parts(i, pos, n)))

    def view_parts(self, offset: int, n: int) -> list[memoryview]:
        """The same bytes as `view` without the copy: one slice per block they span (for writev). `_locate`
        and `_parts` in one pass (a TSO super-segment per call: each block's length read once)."""
        if offset < 0 or n <= 0 or offset + n > self.queued:
            self._locate(offset, n)  # raises unless n == 0 within bounds
            return []
        blocks = self._blocks
        i, base = self._hint
        pos = self._head + offset
        if pos >= base and i < len(blocks):  # from where the last view was, as _locate
            pos -= base
        else:
            i = base = 0
        block = blocks[i]
        size = len(block)
        while pos >= size:  # the byte at `offset` exists (n > 0): no bounds check needed
            pos -= size
            base += size
            i += 1
            block = blocks[i]
            size = len(block)
        end = pos + n
        if end <= size:
            self._hint = (i, base)
            return [memoryview(block)[pos:end]]
        parts = [memoryview(block)[pos:]]
        left = end - size
        while True:
            i += 1
            base += size
            block = blocks[i]
            size = len(block)
            if left <= size:
                parts.append(memoryview(block)[:left])
                # the hint at the last block: the next super-segment starts in it (no walk from the first)
                self._hint = (i, base)
                return parts
            parts.append(memoryview(block)[:])
            left -= size

    def _locate(self, offset: int, n: int) -> tuple[int, int]:
        """(block index, offset in it) of byte `offset`; moves the hint there (views run forward)."""
        if offset < 0 or n < 0 or offset + n > self.queued:
            raise ValueError(f"view({offset}, {n}) outside the {self.queued} queued bytes")
        pos = self._head + offset
        blocks = self._blocks
        i, base = self._hint
        if pos >= base and i < len(blocks):  # start where the last view was (a large buffer has many blocks)
            pos -= base
        else:
            i = base = 0
        while i < len(blocks) and pos >= len(blocks[i]):
            pos -= len(blocks[i])
            base += len(blocks[i])
            i += 1
        self._hint = (i, base)
        return i, pos

    def _parts(self, i: int, pos: int, n: int) -> list[memoryview]:
        blocks = self._blocks
        block = blocks[i]
        if pos + n <= len(block):
            return [memoryview(block)[pos:pos + n]]
        parts = [memoryview(block)[pos:]]
        left = n - (len(block) - pos)
        while left > 0:
            i += 1
            take = min(left, len(blocks[i]))
            parts.append(memoryview(blocks[i])[:take])
            left -= take
        return parts

    def views(self, offset: int, size: int, count: int) -> list[memoryview]:
        """`count` consecutive views of `size` bytes from `offset`: `view` for each, in one call (a burst of
        segments; one join where one crosses a block boundary)."""
        if size <= 0 or count < 0:
            raise ValueError(f"views({offset}, {size}, {count}): no such run")
        i, base = self._hint
        blocks = self._blocks
        pos = self._head + offset - base
        n = size * count
        if offset >= 0 and pos >= 0 and i < len(blocks) and n > 0 and offset + n <= self.queued:
            block = blocks[i]
            if pos + n <= len(block):  # the whole run in the hint's block (most runs): _locate would stay there
                mv = memoryview(block)
                if count == 2:  # the ACK-clocked sender's run (an ACK of two segments): no list comprehension
                    return [mv[pos:pos + size], mv[pos + size:pos + n]]
                return [mv[k:k + size] for k in range(pos, pos + n, size)]
        i, pos = self._locate(offset, n)
        out: list[memoryview] = []
        if not count:
            return out
        add = out.append
        base = self._hint[1]
        blocks = self._blocks
        for _ in range(count):
            block = blocks[i]
            while pos >= len(block):  # starts in a later block
                pos -= len(block)
                base += len(block)
                i += 1
                block = blocks[i]
            if pos + size <= len(block):
                add(memoryview(block)[pos:pos + size])
            else:  # across a boundary: one copy
                add(memoryview(b"".join(self._parts(i, pos, size))))
            pos += size
        self._hint = (i, base)
        return out

    def ack(self, n: int) -> None:
        """Drop n acknowledged bytes from the front."""
        head = self._head + n
        left = self.queued - n
        if n >= 0 and left > 0 and head < len(self._blocks[0]):  # within the first block (most ACKs)
            self.queued = left
            self._head = head
            return
        if n < 0 or n > self.queued:
            raise ValueError(f"ack({n}) with {self.queued} queued bytes")
        self.queued -= n
        if not self.queued:  # all acknowledged: free every block (idle connections hold no memory)
            self._blocks.clear()
            self._head = self._fill = 0
            self._hint = (0, 0)
            return
        head = self._head + n
        blocks = self._blocks
        drop = gone = 0
        last = len(blocks) - 1
        while drop < last:  # whole blocks acknowledged (the last one always stays: bytes are queued)
            size = len(blocks[drop])
            if head < size:
                break
            head -= size
            gone += size
            drop += 1
        if drop:
            del blocks[:drop]
            i, base = self._hint
            self._hint = (i - drop, base - gone) if i >= drop else (0, 0)
        self._head = head
