"""Sender SACK scoreboard (RFC 6675): one record per transmitted segment with its state (SACKed, lost,
retransmitted) and last transmission time, byte counters for `pipe`, the SACKed ranges, the queue of
segments waiting for retransmission, and D-SACK detection (RFC 2883).

Cost: every operation is proportional to what it changes. ACKs drop records from the front; a SACK block
only walks the records of its part not already SACKed (found against the few SACKed ranges); segments
marked lost wait in a FIFO. Records also live in a transmission-ordered dict (`tsorder`, unSACKed and not
waiting for retransmission only) so RACK (RFC 8985) walks just the oldest ones.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import OrderedDict, deque

from tcpip.core.tcp.seq import HALF, MASK, seq_ge, seq_gt, seq_le, seq_lt, seq_sub

SACKED = 1  # the peer holds it (RFC 2018)
LOST = 2  # deemed lost (RACK or RFC 6675 IsLost); stays set after its retransmission
RETRANS = 4  # a retransmission of it is in flight (counted in pipe)
EVER = 8  # retransmitted at least once (RACK step 1, Karn)
BY_RACK = 16  # marked lost by RACK (counters), else by the duplicate threshold
BY_RTO = 32  # marked lost by a retransmission timeout


class Seg:
    """One transmitted segment [start, end) (end includes a FIN), its state bits and last send time."""

    __slots__ = ("end", "flags", "start", "xmit")

    def __init__(self, start: int, end: int, xmit: float, flags: int = 0) -> None:
        self.start = start
        self.end = end
        self.xmit = xmit
        self.flags = flags

    def __repr__(self) -> str:
        return f"Seg({self.start}, {self.end}, {self.xmit}, {self.flags:#x})"


def _find(segs: list[Seg], x: int) -> int:
    """Index of the record holding sequence x (or the first one): a binary search on offsets from the
    first record, so the 2**32 wrap inside the window does not matter."""
    if not segs:
        return 0
    base = segs[0].start
    i = bisect_right(segs, (x - base) & MASK, key=lambda r: (r.start - base) & MASK) - 1
    return i if i > 0 else 0


class Scoreboard:
    """Outstanding segments from snd_una to snd_max. pipe = flight - sacked - lost + retrans (RFC 6675)."""

    __slots__ = ("d_end", "d_xmit", "fack", "lost_bytes", "lostq", "min_rtt", "now", "ranges", "reordered",
                 "retrans_bytes", "sacked_bytes", "segs", "tsorder")

    def __init__(self) -> None:
        self.segs: list[Seg] = []  # in sequence order
        self.tsorder: OrderedDict[Seg, None] = OrderedDict()  # oldest transmission first
        self.ranges: list[tuple[int, int]] = []  # SACKed ranges above snd_una, sorted, disjoint
        # lost, waiting for retransmission (stale entries skipped); made on the first loss (an empty deque
        # is ~770 bytes: idle connections should not pay for it)
        self.lostq: deque[Seg] | None = None
        self.sacked_bytes = self.lost_bytes = self.retrans_bytes = 0
        # RACK inputs gathered while an ACK is processed (RFC 8985 6.2 steps 1-2)
        self.now = 0.0
        self.min_rtt = 0.0
        self.d_xmit = -1.0  # newest transmission time among segments this ACK delivered
        self.d_end = 0
        self.fack = 0  # highest end sequence delivered
        self.reordered = False

    # -- transmissions ------------------------------------------------------------------------------------
    def sent(self, start: int, end: int, now: float) -> None:
        """A segment of new data (or the FIN) went out."""
        s = Seg(start, end, now)
        self.segs.append(s)
        self.tsorder[s] = None

    def sent_run(self, start: int, size: int, count: int, now: float) -> None:
        """`count` segments of `size` bytes of new data from `start` went out together."""
        add = self.segs.append
        ts = self.tsorder
        new = object.__new__
        for _ in range(count):
            end = (start + size) & MASK
            s = new(Seg)  # Seg(start, end, now) without the Python-level __init__ call (per segment)
            s.start = start
            s.end = end
            s.xmit = now
            s.flags = 0
            add(s)
            ts[s] = None
            start = end

    def resent(self, start: int, end: int, now: float, in_pipe: bool) -> int:
        """[start, end) was retransmitted: returns how many records it covered. `in_pipe` is False for the
        go-back after a timeout (the copy replaces the original in the flight; nothing extra in pipe)."""
        segs = self.segs
        i = _find(segs, start)
        count = 0
        while i < len(segs):
            s = segs[i]
            if seq_ge(s.start, end):
                break
            if seq_le(s.end, start):
                i += 1
                continue
            if seq_lt(s.start, start):
                self._split(i, start)
                i += 1
                continue
            if seq_gt(s.end, end):
                self._split(i, end)
            f = s.flags
            if in_pipe and not f & (RETRANS | SACKED):
                self.retrans_bytes += seq_sub(s.end, s.start)
                f |= RETRANS
            elif not in_pipe and f & (LOST | SACKED) == LOST:  # going back: the copy replaces the loss
                self.lost_bytes -= seq_sub(s.end, s.start)
                f &= ~(LOST | BY_RACK | BY_RTO)
            s.flags = f | EVER
            s.xmit = now
            if not f & SACKED:
                self.tsorder[s] = None
                self.tsorder.move_to_end(s)
            count += 1
            i += 1
        return count

    def _split(self, i: int, at: int) -> None:
        """Cut record i at `at` (a retransmission with another size); counters are per byte: unchanged."""
        s = self.segs[i]
        t = Seg(at, s.end, s.xmit, s.flags)
        s.end = at
        self.segs.insert(i + 1, t)
        if s in self.tsorder:
            self.tsorder[t] = None
        if t.flags & (LOST | RETRANS | SACKED) == LOST:  # the rest still waits for its retransmission
            self._lostq().appendleft(t)

    # -- acknowledgments ----------------------------------------------------------------------------------
    def ack(self, una: int) -> int:
        """Drop records below the cumulative ACK; returns the bytes among them that were SACKed before."""
        segs = self.segs
        n = len(segs)
        k = 0
        was_sacked = 0
        pop = self.tsorder.pop
        fack = self.fack
        while k < n:
            s = segs[k]
            d = (s.end - una) & MASK
            if 0 < d < HALF:  # s.end after una
                if seq_lt(s.start, una):  # partly acknowledged: trim
                    cut = seq_sub(una, s.start)
                    self._uncount(s, cut)
                    if s.flags & SACKED:
                        was_sacked += cut
                    s.start = una
                break
            f = s.flags
            if not f and s.xmit >= self.d_xmit and not 0 < ((fack - s.end) & MASK) < HALF:
                # the common case, inlined: never resent, in order, newest so far
                self.d_xmit, self.d_end = s.xmit, s.end
                pop(s, None)
            else:
                ln = seq_sub(s.end, s.start)
                if f & SACKED:
                    was_sacked += ln
                else:
                    self._deliver(s)
                self._uncount(s, ln)
                pop(s, None)
            s.flags = f | SACKED  # stale in lostq: skipped
            k += 1
        if k:
            del segs[:k]
        r = self.ranges
        while r and seq_le(r[0][1], una):
            del r[0]
        if r and seq_lt(r[0][0], una):
            r[0] = (una, r[0][1])
        if seq_gt(una, self.fack):
            self.fack = una
        return was_sacked

    def _uncount(self, s: Seg, ln: int) -> None:
        f = s.flags
        if f & SACKED:
            self.sacked_bytes -= ln
        else:
            if f & LOST:
                self.lost_bytes -= ln
            if f & RETRANS:
                self.retrans_bytes -= ln

    def _deliver(self, s: Seg) -> None:
        """RACK steps 1-2 for a segment this ACK delivered (acknowledged or SACKed)."""
        if s.flags & EVER and self.now - s.xmit < self.min_rtt:
            return  # the ACK was for the original, not the retransmission: no timing from it
        if s.xmit > self.d_xmit or (s.xmit == self.d_xmit and seq_gt(s.end, self.d_end)):
            self.d_xmit, self.d_end = s.xmit, s.end
        if seq_lt(s.end, self.fack):
            if not s.flags & EVER:
                self.reordered = True
        else:
            self.fack = s.end

    def sack(self, blocks: tuple[tuple[int, int], ...], una: int, top: int,
             ack: int) -> tuple[int, tuple[int, int] | None]:
        """Apply the peer's SACK blocks (from a segment acknowledging `ack`): (bytes newly SACKed, the
        D-SACK block if the first one is one)."""
        dsack = None
        if blocks:
            l0, r0 = blocks[0]
            # RFC 2883 4: below that segment's own ACK (not snd_una: a reordered old ACK's blocks are not
            # duplicates), or inside the second block
            if seq_le(r0, ack) or (len(blocks) > 1 and seq_le(blocks[1][0], l0) and seq_le(r0, blocks[1][1])):
                dsack = blocks[0]  # RFC 2883: below the ACK, or inside the second block
                blocks = blocks[1:]
        newly = 0
        for left, right in blocks:
            if not (seq_lt(left, right) and seq_lt(una, right) and seq_le(right, top)):
                continue  # stale or bogus
            lo = una if seq_lt(left, una) else left
            for a, b in self._uncovered(lo, right):
                newly += self._mark_sacked(a, b)
            self._merge(lo, right)
        return newly, dsack

    def _uncovered(self, lo: int, hi: int) -> list[tuple[int, int]]:
        """Parts of [lo, hi) not in any SACKed range."""
        parts = []
        x = lo
        for a, b in self.ranges:
            if seq_le(b, x):
                continue
            if seq_ge(a, hi):
                break
            if seq_lt(x, a):
                parts.append((x, a))
            x = b
            if seq_ge(x, hi):
                return parts
        if seq_lt(x, hi):
            parts.append((x, hi))
        return parts

    def _merge(self, lo: int, hi: int) -> None:
        merged: list[tuple[int, int]] = []
        placed = False
        for a, b in self.ranges:
            if seq_lt(b, lo):
                merged.append((a, b))
            elif seq_lt(hi, a):
                if not placed:
                    merged.append((lo, hi))
                    placed = True
                merged.append((a, b))
            else:
                lo = a if seq_lt(a, lo) else lo
                hi = b if seq_gt(b, hi) else hi
        if not placed:
            merged.append((lo, hi))
        self.ranges = merged

    def _mark_sacked(self, a: int, b: int) -> int:
        segs = self.segs
        i = _find(segs, a)
        newly = 0
        while i < len(segs):
            s = segs[i]
            if seq_ge(s.start, b):
                break
            if seq_le(s.end, a):
                i += 1
                continue
            if seq_lt(s.start, a):  # the block covers part of this record: split it (RFC 2018 allows it)
                self._split(i, a)
                i += 1
                continue
            if seq_gt(s.end, b):
                self._split(i, b)
            if not s.flags & SACKED:
                ln = seq_sub(s.end, s.start)
                self._deliver(s)
                self._uncount(s, ln)
                s.flags |= SACKED
                self.sacked_bytes += ln
                newly += ln
                self.tsorder.pop(s, None)
            i += 1
        return newly

    # -- loss marking and retransmission ------------------------------------------------------------------
    def mark_lost(self, s: Seg, why: int) -> None:
        """Deem s lost (why: BY_RACK, BY_RTO or 0 for the duplicate threshold) and queue it for resending."""
        f = s.flags
        if f & SACKED:
            return
        ln = seq_sub(s.end, s.start)
        if f & RETRANS:  # the retransmission is lost too
            self.retrans_bytes -= ln
            f &= ~RETRANS
        if not f & LOST:
            self.lost_bytes += ln
            f |= LOST
        s.flags = (f & ~(BY_RACK | BY_RTO)) | why
        self.tsorder.pop(s, None)
        self._lostq().append(s)

    def _lostq(self) -> deque[Seg]:
        q = self.lostq
        if q is None:
            q = self.lostq = deque()
        return q

    def next_lost(self) -> Seg | None:
        """RFC 6675 NextSeg rule 1: the oldest segment deemed lost and not yet retransmitted."""
        q = self.lostq
        while q:  # None or empty: nothing
            s = q[0]
            if s.flags & (LOST | RETRANS | SACKED) == LOST:
                return s
            q.popleft()
        return None

    def head(self) -> Seg | None:
        return self.segs[0] if self.segs else None

    def all_lost(self) -> None:
        """A retransmission timeout (RFC 6675 5.1, Linux tcp_enter_loss): everything unSACKed is lost and
        queued in sequence order; nothing retransmitted is in flight any more (O(n), once per timeout)."""
        self.lost_bytes = self.retrans_bytes = 0
        q = self._lostq()
        q.clear()
        self.tsorder.clear()
        for s in self.segs:
            s.flags &= SACKED | EVER
            if not s.flags & SACKED:
                s.flags |= LOST | BY_RTO
                self.lost_bytes += seq_sub(s.end, s.start)
                q.append(s)

    def forget_sacks(self) -> None:
        """The peer reneged (RFC 2018 8): nothing it SACKed can be trusted."""
        for s in self.segs:
            if s.flags & SACKED:
                s.flags &= ~SACKED
        self.sacked_bytes = 0
        self.ranges = []
