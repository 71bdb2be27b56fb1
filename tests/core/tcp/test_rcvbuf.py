"""RecvBuffer against a per-byte model: any delivery order, duplicates, overlaps, reads, window and hole limits."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from tcpip.core.tcp.rcvbuf import RecvBuffer

M = 1 << 32
bases = st.one_of(st.integers(0, M - 1), st.integers(M - 3000, M - 1))


class Model:
    """Byte-per-offset model of what the receive buffer must hold (offsets relative to the stream start)."""

    def __init__(self, stream: bytes, capacity: int, max_holes: int) -> None:
        self.stream = stream
        self.capacity = capacity
        self.max_holes = max_holes
        self.have = [False] * len(stream)
        self.stamp = [0] * len(stream)
        self.prefix = 0       # bytes received in order
        self.consumed = 0     # bytes read
        self.fin_known = False
        self.fin_done = False
        self.dropped = 0
        self.t = 0

    def runs(self) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        i = self.prefix
        while i < len(self.have):
            if self.have[i]:
                j = i
                while j < len(self.have) and self.have[j]:
                    j += 1
                out.append((i, j))
                i = j
            else:
                i += 1
        return out

    def add(self, off: int, n: int, fin: bool) -> tuple[int, bool]:
        self.t += 1
        edge = self.consumed + self.capacity
        if fin and not self.fin_known and self.prefix <= off + n <= edge:
            self.fin_known = True
        start, end = max(off, self.prefix), min(off + n, edge)
        before = self.prefix
        if start < end:
            if start > self.prefix:
                runs = self.runs()
                touching = [r for r in runs if r[1] >= start and r[0] <= end]
                if not touching and len(runs) >= self.max_holes:
                    self.dropped += 1
                    return self._fin(before)
                lo = min([start] + [r[0] for r in touching])
                hi = max([end] + [r[1] for r in touching])
                for i in range(start, end):
                    self.have[i] = True
                for i in range(lo, hi):
                    self.stamp[i] = self.t
            else:
                for i in range(start, end):
                    self.have[i] = True
            while self.prefix < len(self.have) and self.have[self.prefix]:
                self.prefix += 1
        return self._fin(before)

    def _fin(self, before: int) -> tuple[int, bool]:
        now = self.fin_known and not self.fin_done and self.prefix == len(self.stream)
        self.fin_done |= now
        return self.prefix - before, now


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[bytes, list[tuple[int, int]]]:
    """A stream and segments covering it (a partition plus duplicates and overlapping extras), shuffled."""
    stream = draw(st.binary(min_size=1, max_size=1500))
    cuts = sorted(set(draw(st.lists(st.integers(1, len(stream) - 1), max_size=30)) if len(stream) > 1 else []))
    edges = [0, *cuts, len(stream)]
    segs = [(a, b - a) for a, b in pairwise(edges)]
    extra = draw(st.lists(st.tuples(st.integers(0, len(stream) - 1), st.integers(0, 400)), max_size=15))
    segs += [(a, min(n, len(stream) - a)) for a, n in extra]
    segs += draw(st.lists(st.sampled_from(segs), max_size=5))  # exact duplicates
    return stream, draw(st.permutations(segs))


def check(rb: RecvBuffer, m: Model, base: int, got: bytes) -> None:
    assert got == m.stream[:m.consumed]
    assert rb.readable == m.prefix - m.consumed
    assert rb.peek_all() == m.stream[m.consumed:m.prefix]
    expect_nxt = base + m.prefix + (1 if m.fin_done else 0)
    assert rb.rcv_nxt == expect_nxt % M
    runs = m.runs()
    assert rb.ooo_bytes == sum(b - a for a, b in runs)
    assert rb.readable + rb.ooo_bytes <= rb.capacity
    assert len(runs) <= m.max_holes
    assert rb.has_holes == bool(runs)
    assert rb.window() == m.capacity - rb.readable
    ranked = sorted(runs, key=lambda r: m.stamp[r[0]], reverse=True)
    assert rb.sack_blocks(64) == [((base + a) % M, (base + b) % M) for a, b in ranked]
    assert rb.sack_blocks(3) == rb.sack_blocks(64)[:3]
    assert rb.ooo_dropped == m.dropped
    assert rb.fin_received == m.fin_done


@given(deliveries(), bases, st.booleans())
def test_any_order_reassembles_exactly(d: tuple[bytes, list[tuple[int, int]]], base: int, fin: bool) -> None:
    stream, segs = d
    rb = RecvBuffer(capacity=len(stream), max_holes=64)
    rb.init(base)
    m = Model(stream, len(stream), 64)
    fins = 0
    for off, n in segs:
        is_fin = fin and off + n == len(stream)
        made, fin_now = rb.add((base + off) % M, memoryview(stream)[off:off + n], is_fin)
        assert (made, fin_now) == m.add(off, n, is_fin)
        fins += fin_now
        check(rb, m, base, b"")
    assert rb.read() == stream
    assert not rb.has_holes
    assert rb.rcv_nxt == (base + len(stream) + (1 if fin else 0)) % M
    assert fins == (1 if fin else 0)
    assert rb.fin_received == fin


@given(deliveries(), bases, st.integers(1, 600), st.integers(1, 6), st.lists(st.integers(0, 300), max_size=40),
       st.booleans())
def test_small_buffer_reads_and_hole_limit(d: tuple[bytes, list[tuple[int, int]]], base: int, capacity: int,
                                           max_holes: int, reads: list[int], fin: bool) -> None:
    stream, segs = d
    rb = RecvBuffer(capacity, max_holes)
    rb.init(base)
    m = Model(stream, capacity, max_holes)
    got = b""
    for k, (off, n) in enumerate(segs * 3):  # replays, as retransmissions would
        is_fin = fin and off + n == len(stream)
        assert rb.add((base + off) % M, stream[off:off + n], is_fin) == m.add(off, n, is_fin)
        if reads:
            want = reads[k % len(reads)]
            chunk = rb.read(want)
            assert len(chunk) == min(want, m.prefix - m.consumed)
            got += chunk
            m.consumed += len(chunk)
        check(rb, m, base, got)
    got += rb.read()
    assert stream.startswith(got)


def test_in_order_fast_path_and_reads() -> None:
    rb = RecvBuffer(100)
    rb.init(M - 3)
    assert rb.add(M - 3, memoryview(b"abcdef"), False) == (6, False)
    assert rb.rcv_nxt == 3
    assert rb.window() == 94
    assert rb.add(3, b"gh", True) == (2, True)
    assert rb.rcv_nxt == 6
    assert rb.fin_received
    assert rb.read(3) == b"abc"
    assert rb.read(0) == b""
    assert rb.read() == b"defgh"
    assert rb.add(6, b"late", False) == (0, False)  # nothing after the FIN
    assert rb.add(5, b"", True) == (0, False)       # retransmitted FIN
    assert rb.readable == 0


def test_window_trims_right_edge_and_fin_beyond_is_ignored() -> None:
    rb = RecvBuffer(10)
    rb.init(1000)
    assert rb.add(1000, b"0123456789XYZ", True) == (10, False)  # 3 bytes and the FIN do not fit
    assert rb.window() == 0
    assert not rb.fin_received
    assert rb.add(1010, b"XYZ", True) == (0, False)
    assert rb.read(4) == b"0123"
    assert rb.add(1010, b"XYZ", True) == (3, True)
    assert rb.read() == b"456789XYZ"


def test_hole_limit_drops_new_ranges_but_extends_existing() -> None:
    rb = RecvBuffer(1000, max_holes=2)
    rb.init(0)
    assert rb.add(10, b"a", False) == (0, False)
    assert rb.add(20, b"b", False) == (0, False)
    assert rb.add(30, b"c", False) == (0, False)
    assert rb.ooo_dropped == 1
    assert rb.add(21, b"b", False) == (0, False)   # adjacent: merges, not a new hole
    assert rb.sack_blocks(4) == [(20, 22), (10, 11)]
    assert rb.add(11, b"x" * 9, False) == (0, False)  # bridges both ranges into one
    assert rb.sack_blocks(4) == [(10, 22)]
    assert rb.add(0, b"y" * 10, False) == (22, False)
    assert rb.read() == b"y" * 10 + b"a" + b"x" * 9 + b"bb"


def test_fin_before_held_data_trims_it() -> None:
    rb = RecvBuffer(100)
    rb.init(0)
    rb.add(20, b"tail", False)
    assert rb.add(5, b"", True) == (0, False)  # a FIN at 5 (misbehaving peer): nothing held after it
    assert rb.ooo_bytes == 0
    assert rb.add(0, b"01234", False) == (5, True)


def test_interleaved_small_reads_and_appends_keep_data_exact() -> None:
    rb = RecvBuffer(1 << 16)
    rb.init(0)
    data = bytes(range(256)) * 1024
    out = bytearray()
    sent = 0
    while len(out) < len(data):
        n = min(rb.window(), 1460, len(data) - sent)
        if n:
            assert rb.add(sent, memoryview(data)[sent:sent + n], False) == (n, False)
            sent += n
        out += rb.read(7)
    assert out == data


def test_held_payload_copied_only_when_its_buffer_can_change() -> None:
    # A view into an immutable frame is kept as it is (read makes the one copy); a reusable buffer is
    # copied on arrival, so changing it afterwards changes nothing read.
    rb = RecvBuffer(1 << 16)
    rb.init(100)
    frame = bytes(range(200))
    reusable = bytearray(b"x" * 50)
    assert rb.add(100, memoryview(frame)[10:110], False) == (100, False)
    assert rb.append_next(200, memoryview(reusable))
    assert rb.add(250, bytearray(b"tail"), False) == (4, False)
    reusable[:] = b"y" * 50
    assert rb._q[0].obj is frame  # no copy on arrival
    assert rb.readable == 154
    assert rb.window() == (1 << 16) - 154
    assert rb.read(30) == frame[10:40]
    assert rb.read(100) == frame[40:110] + b"x" * 30
    assert rb.peek_all() == b"x" * 20 + b"tail"
    assert rb.read() == b"x" * 20 + b"tail"
    assert rb.readable == 0
    assert rb.read() == b""
    assert rb.rcv_nxt == 254


def test_single_held_bytes_read_without_copy() -> None:
    rb = RecvBuffer(4096)
    rb.init(0)
    data = b"abc" * 100
    rb.add(0, data, False)
    out = rb.read()
    assert out is data
    assert rb.readable == 0


def test_tiny_segments_are_copied_not_pinned() -> None:
    # A 1-byte segment in a 60-byte frame: holding a view would pin 60 bytes per byte the window counts
    # (a peer could make us hold ~60x the receive buffer); small payloads are copied, large ones viewed.
    rb = RecvBuffer(1 << 16)
    rb.init(0)
    frames = [bytes(59) + bytes([i]) for i in range(100)]
    for i, f in enumerate(frames):
        assert rb.append_next(i, memoryview(f)[59:])
    rb.add(100, memoryview(bytes(54) + b"z")[54:], False)
    assert all(type(p) is bytes for p in rb._q)
    big = bytes(54) + bytes(range(256)) * 5
    assert rb.append_next(101, memoryview(big)[54:])
    assert rb._q[-1].obj is big  # payload most of its frame: kept as a view
    assert rb.read() == bytes(range(100)) + b"z" + bytes(range(256)) * 5


def test_read_piece_takes_a_big_payload_whole_and_joins_small_ones() -> None:
    rb = RecvBuffer(1000)
    frame = bytes(range(200)) * 2  # 400 bytes, as a TAP read gives them: held as a view, not copied
    big = memoryview(frame)[10:370]  # 360 bytes
    assert rb.append_next(0, big)
    for i in range(3):
        assert rb.append_next(360 + 10 * i, bytes([i]) * 10)
    assert rb.readable == 390
    got = rb.read_piece(400)  # 360 is more than half of 400: that payload alone
    assert type(got) is bytes
    assert got == frame[10:370]
    assert rb.readable == 30
    assert rb.read_piece(25) == bytes(10) + b"\x01" * 10 + b"\x02" * 5  # 10 <= 12: read(25), joined
    assert rb.readable == 5
    assert rb.read_piece(400) == b"\x02" * 5  # less than half: read(400), all that is left
    assert rb.readable == 0
    assert rb.read_piece(400) == b""
    assert rb.append_next(390, memoryview(frame)[:300])
    assert rb.read_piece(200) == frame[:200]  # bigger than n: read(n)'s slice
    assert rb.read_piece(200) == frame[200:300]
    assert rb.readable == 0
