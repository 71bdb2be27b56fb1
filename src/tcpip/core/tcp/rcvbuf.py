"""TCP receive buffer: in-order readable bytes plus a bounded out-of-order assembler with SACK blocks.

Every byte held lies in [rcv_nxt, rcv_nxt + capacity - readable), so readable + out-of-order bytes never
exceed `capacity`, and the advertised right edge (rcv_nxt + window()) never moves left as data arrives:
out-of-order bytes sit inside the window the peer was offered, they do not shrink it (RFC 9293 3.8.6).
"""

from __future__ import annotations

from collections import deque

from tcpip.core.tcp.seq import MASK, seq_sub

Buffer = bytes | bytearray | memoryview


def _held(data: Buffer) -> bytes | memoryview:
    """What the buffer keeps of a payload: a view when it lies in an immutable frame (a TAP read is a fresh
    `bytes`) and is at least half of it, so the only copy is the one `read` makes; otherwise a copy (a
    caller's reusable buffer; or tiny segments, whose frames would pin many times the bytes the window
    accounts for: a peer sending 1-byte segments must not make us hold a frame per byte)."""
    if type(data) is memoryview and type(data.obj) is bytes and len(data) << 1 >= len(data.obj):
        return data
    return bytes(data)


class _Range:
    """An out-of-order range [start, start + len(data)) and when it last changed (for SACK order)."""

    __slots__ = ("data", "stamp", "start")

    def __init__(self, start: int, data: bytearray, stamp: int) -> None:
        self.start = start
        self.data = data
        self.stamp = stamp


class RecvBuffer:
    """Bytes received from the peer: `add` segments in any order, `read` them in order."""

    __slots__ = ("_fin_seq", "_ooo", "_q", "_stamp", "capacity", "fin_received", "max_holes",
                 "ooo_bytes", "ooo_dropped", "rcv_nxt", "readable")

    def __init__(self, capacity: int, max_holes: int = 64) -> None:
        if not 0 < capacity < 1 << 30:
            raise ValueError(f"capacity {capacity} out of range")
        self.capacity = capacity
        self.max_holes = max_holes
        self.rcv_nxt = 0
        self.fin_received = False
        self.ooo_bytes = 0        # bytes held out of order
        self.ooo_dropped = 0      # segments refused because max_holes ranges were already held
        # readable bytes, in order, as the segments brought them: no copy on arrival (see _held) and none
        # per append (a growing bytearray reallocates and copies what it holds); `read` joins them once
        self._q: deque[bytes | memoryview] = deque()
        self.readable = 0  # bytes in _q (a plain attribute, not a property: read per segment and per read)
        self._ooo: list[_Range] = []  # disjoint, non-adjacent, in sequence order
        self._fin_seq: int | None = None
        self._stamp = 0

    def init(self, irs_plus_1: int) -> None:
        """Start the stream at sequence number `irs_plus_1` (the peer's ISN + 1)."""
        self.rcv_nxt = irs_plus_1 & MASK

    @property
    def has_holes(self) -> bool:
        return bool(self._ooo)

    def window(self) -> int:
        """Receive window from rcv_nxt: capacity minus unread bytes (out-of-order bytes lie inside it)."""
        return self.capacity - self.readable

    def add(self, seq: int, data: Buffer, fin: bool) -> tuple[int, bool]:
        """Place a segment's payload at `seq` (FIN after it when `fin`).

        Returns (bytes newly made readable, whether the FIN was consumed by this call)."""
        n = len(data)
        if not fin and seq == self.rcv_nxt and not self._ooo and self._fin_seq is None \
                and 0 < n <= self.capacity - self.readable:
            self._q.append(_held(data))  # the common case: next in order, nothing held, fits
            self.readable += n
            self.rcv_nxt = (seq + n) & MASK
            return n, False
        return self._add_slow(seq, data, n, fin)

    def append_next(self, seq: int, data: Buffer) -> bool:
        """add()'s common case alone: data (not empty) is next in order, nothing is held, it fits; else
        nothing changes and False."""
        n = len(data)
        if seq == self.rcv_nxt and not self._ooo and self._fin_seq is None and 0 < n <= self.capacity - self.readable:
            # _held(data), inlined: this runs per segment
            if type(data) is memoryview and type(data.obj) is bytes and n << 1 >= len(data.obj):
                self._q.append(data)
            else:
                self._q.append(bytes(data))
            self.readable += n
            self.rcv_nxt = (seq + n) & MASK
            return True
        return False

    def _add_slow(self, seq: int, data: Buffer, n: int, fin: bool) -> tuple[int, bool]:
        rel = seq_sub(seq, self.rcv_nxt)
        limit = self.capacity - self.readable  # right edge, relative to rcv_nxt
        if self._fin_seq is not None:
            limit = min(limit, seq_sub(self._fin_seq, self.rcv_nxt))  # nothing after the FIN
        elif fin and 0 <= rel + n <= limit:  # its data fits: the FIN is in the window too
            self._fin_seq = (seq + n) & MASK
            limit = rel + n
            if self._ooo:
                self._drop_after(limit)
        start = max(rel, 0)
        end = min(rel + n, limit)
        made = 0
        if start < end:
            chunk = data[start - rel:end - rel] if (start != rel or end != rel + n) else data
            if start == 0:
                made = self._append(chunk, end)
            else:
                self._insert((self.rcv_nxt + start) & MASK, chunk, start, end)
        if self._fin_seq is not None and self._fin_seq == self.rcv_nxt and not self.fin_received:
            self.fin_received = True
            self.rcv_nxt = (self.rcv_nxt + 1) & MASK
            return made, True
        return made, False

    def _append(self, chunk: Buffer, end: int) -> int:
        """In-order bytes [0, end) relative to rcv_nxt; pull in the out-of-order ranges they reach."""
        self._q.append(_held(chunk))
        self.readable += end
        made = end
        nxt = (self.rcv_nxt + end) & MASK
        ooo = self._ooo
        while ooo:
            r = ooo[0]
            off = seq_sub(nxt, r.start)  # how far rcv_nxt already reaches into this range
            if off < 0:
                break
            del ooo[0]
            self.ooo_bytes -= len(r.data)
            extra = len(r.data) - off
            if extra > 0:
                self._q.append(memoryview(r.data)[off:])  # r.data is ours and no longer changes
                self.readable += extra
                made += extra
                nxt = (nxt + extra) & MASK
        self.rcv_nxt = nxt
        return made

    def _insert(self, seq: int, chunk: Buffer, start: int, end: int) -> None:
        """Hold [start, end) (relative to rcv_nxt, start > 0) out of order, merging with what it touches."""
        ooo = self._ooo
        nxt = self.rcv_nxt
        # first range that ends at or after `start` (touching counts: adjacent ranges merge)
        i = 0
        while i < len(ooo) and seq_sub(ooo[i].start, nxt) + len(ooo[i].data) < start:
            i += 1
        j = i  # ranges i..j-1 touch or overlap the new one
        while j < len(ooo) and seq_sub(ooo[j].start, nxt) <= end:
            j += 1
        self._stamp += 1
        if i == j:
            if len(ooo) >= self.max_holes:
                self.ooo_dropped += 1
                return
            ooo.insert(i, _Range(seq, bytearray(chunk), self._stamp))
            self.ooo_bytes += end - start
            return
        first, last = ooo[i], ooo[j - 1]
        f_rel = seq_sub(first.start, nxt)
        l_end = seq_sub(last.start, nxt) + len(last.data)
        if i + 1 == j and f_rel <= start and l_end >= end:
            first.stamp = self._stamp  # a duplicate: already held whole
            return
        # keep what is held, fill the gaps from the new segment (held bytes win, like Linux)
        new_start = min(f_rel, start)
        merged = bytearray(chunk[:f_rel - start]) if start < f_rel else bytearray()
        held = 0
        for k in range(i, j):
            r = ooo[k]
            r_rel = seq_sub(r.start, nxt)
            gap = r_rel - (new_start + len(merged))
            if gap > 0:  # new bytes between the previous range and this one
                base = new_start + len(merged) - start
                merged += chunk[base:base + gap]
            merged += r.data
            held += len(r.data)
        tail = end - (new_start + len(merged))
        if tail > 0:
            merged += chunk[len(chunk) - tail:]
        ooo[i:j] = [_Range((nxt + new_start) & MASK, merged, self._stamp)]
        self.ooo_bytes += len(merged) - held

    def _drop_after(self, edge: int) -> None:
        """Forget out-of-order bytes at or after `edge` (relative to rcv_nxt): a FIN came before them."""
        ooo = self._ooo
        while ooo:
            r = ooo[-1]
            r_rel = seq_sub(r.start, self.rcv_nxt)
            over = r_rel + len(r.data) - edge
            if over <= 0:
                return
            if r_rel >= edge:
                ooo.pop()
                self.ooo_bytes -= len(r.data)
            else:
                del r.data[len(r.data) - over:]
                self.ooo_bytes -= over
                return

    def prune_ooo(self) -> int:
        """Forget every out-of-order byte (memory pressure, like Linux tcp_prune_ofo_queue); the peer
        sends it again. Returns the bytes dropped."""
        n = self.ooo_bytes
        self._ooo.clear()
        self.ooo_bytes = 0
        return n

    def sack_blocks(self, max_blocks: int) -> list[tuple[int, int]]:
        """Out-of-order ranges as (left, right) edges, the most recently changed first (RFC 2018 4)."""
        ooo = self._ooo
        if not ooo:
            return []
        ranked = sorted(ooo, key=lambda r: r.stamp, reverse=True) if len(ooo) > 1 else ooo
        return [(r.start, (r.start + len(r.data)) & MASK) for r in ranked[:max_blocks]]

    def read(self, n: int | None = None) -> bytes:
        """Consume up to n readable bytes (all when None): one copy (none for a single held `bytes`)."""
        q = self._q
        if n is None or n >= self.readable:
            if not q:
                return b""
            out = bytes(q[0]) if len(q) == 1 else b"".join(q)
            q.clear()
            self.readable = 0
            return out
        if n <= 0:
            return b""
        self.readable -= n
        parts: list[bytes | memoryview] = []
        while n:
            c = q[0]
            k = len(c)
            if k <= n:
                parts.append(q.popleft())
                n -= k
            else:
                v = memoryview(c)
                parts.append(v[:n])
                q[0] = v[n:]
                n = 0
        return bytes(parts[0]) if len(parts) == 1 else b"".join(parts)

    def read_piece(self, n: int) -> bytes:
        """`read(n)` for a reader that takes pieces: when the first held payload is more than n/2 and at most
        n bytes (an offloaded super-segment's), that payload alone, copied once and never joined with a slice
        of the next (the next read starts on a payload boundary); otherwise read(n) (small segments are
        joined: one piece for many)."""
        q = self._q
        if q:
            c = q[0]
            k = len(c)
            if n >> 1 < k <= n:
                q.popleft()
                self.readable -= k
                return c if type(c) is bytes else bytes(c)
        return self.read(n)

    def peek_all(self) -> bytes:
        """All readable bytes, not consumed."""
        return b"".join(self._q)
