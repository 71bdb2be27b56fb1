"""IPv4 fragment reassembly (RFC 791/815 with Linux's post-FragmentSmack rules): queues, limits, timeouts.

Rules, per datagram key (src, dst, proto, ident):

* A non-last fragment must carry a multiple of 8 bytes (`bad_length`). An empty fragment (`empty`), or
  one whose end would make the datagram exceed 65535 bytes (20-byte header assumed until the offset-0
  fragment gives the real one; `oversize`, "ping of death"), is refused before anything is copied and
  discards the whole queue it belongs to, as Linux's ip_frag_queue does.
* ECN (RFC 3168 5.3, Linux's ip_frag_ecn_table): fragments mixing Not-ECT with ECT or CE discard the
  datagram when it completes (`ecn_mix`); CE on any fragment marks the reassembled datagram CE.
* Same offset and same length as a held fragment: an exact duplicate, dropped alone (`duplicates`); the
  first copy wins and contents are not compared, as in Linux. ANY other overlap -- partial, or a fragment
  contained in held data, or containing it -- discards the whole datagram (`overlaps`), as Linux does since
  CVE-2018-5391: overlapping data has no legitimate source and is the basis of evasion attacks.
* A second last fragment with another end, or data beyond the known end, discards it (`inconsistent`).
  A fragment beyond `max_fragments` discards it (`too_many_fragments`).
* The deadline is `timeout` after the FIRST fragment and is never extended. Since the timeout is constant
  and `now` never decreases, the insertion order of the queue dict is the deadline order: expiry and
  eviction pop from its front in O(1). `process` expires due queues lazily but keeps their ICMP quotes
  for `expire`, so no Time Exceeded is lost. A fragment arriving after its datagram completed (a late
  duplicate) opens a new queue that times out, as in Linux: completed keys are not remembered.

Memory: each held fragment costs its payload bytes + `fragment_overhead` (metadata). Two limits:

1. Per source, `per_source_memory` (default max(max_memory // 16, cost of one maximum datagram)): a
   fragment that would push its source over it is dropped (`source_limit`). One source can never occupy
   more than its share, so it cannot flush the others through (2).
2. Globally, `max_memory`: a fragment that does not fit evicts the OLDEST queues (never its own) until it
   does (`evicted`). Linux instead refuses new fragments above ipfrag_high_thresh and relies on the 30 s
   timeout: a flood of never-completed datagrams from many sources then stalls ALL reassembly for up to
   30 s. Evicting the oldest keeps memory bounded and lets a source whose fragments arrive promptly
   complete, unless the flood pushes more than `max_memory` bytes between two of its fragments; the
   price is that an attacker at that rate can evict slow legitimate datagrams (which Linux would
   have refused anyway). Oldest queues are the most likely to be dead, and eviction is O(1) per queue.
   `max_datagrams` bounds the number of queues the same way (`datagram_limit`). Evicted queues produce
   no ICMP quote (the sender is not at fault for our pressure).
"""

from __future__ import annotations

import struct
from bisect import bisect_left
from collections import OrderedDict
from dataclasses import dataclass

from tcpip.wire.ipv4 import FLAG_MF, OFFSET_MASK, fill_checksum

MAX_DATAGRAM = 65535
MIN_HEADER = 20
_HDR = struct.Struct("!B3xHHxB2xII")  # ver_ihl, ident, flags+offset, proto, src, dst
_U16 = struct.Struct("!H")
_KEEP_FLAGS = 0xC000  # reserved bit and DF survive reassembly; MF and offset are cleared


@dataclass(slots=True)
class ReassemblyConfig:
    """Limits of a Reassembler; fields left at 0 are derived in __post_init__."""

    timeout: float = 30.0  # from the first fragment, never extended (RFC 1122 suggests 60..120; Linux 30)
    max_memory: int = 4 * 1024 * 1024  # payload bytes + fragment_overhead per held fragment, all queues
    max_fragments: int = 64  # per datagram
    fragment_overhead: int = 128  # accounted per held fragment: the metadata it costs us
    # 0: max(max_memory // 16, 65535 + max_fragments * fragment_overhead), so that one maximum datagram
    # from a source with nothing else pending always fits.
    per_source_memory: int = 0
    # 0: max_memory // fragment_overhead, the bound the memory limit already implies.
    max_datagrams: int = 0

    def __post_init__(self) -> None:
        if self.timeout <= 0 or self.max_fragments < 1 or self.fragment_overhead < 0:
            raise ValueError("timeout, max_fragments must be positive, fragment_overhead >= 0")
        if not self.per_source_memory:
            self.per_source_memory = max(self.max_memory // 16, self.max_datagram_cost())
        if not self.max_datagrams:
            self.max_datagrams = max(1, self.max_memory // max(1, self.fragment_overhead))
        if not 0 < self.per_source_memory <= self.max_memory:
            raise ValueError("per_source_memory must be in 1..max_memory")

    def max_datagram_cost(self) -> int:
        """Accounted cost of one 65535-byte datagram in max_fragments fragments (an upper bound)."""
        return MAX_DATAGRAM + self.max_fragments * self.fragment_overhead


@dataclass(slots=True)
class ReassemblyStats:
    """One counter per outcome. Fragment counts except `timeouts`, `evicted`, `datagram_limit` (queues)."""

    fragments: int = 0  # every call of process()
    accepted: int = 0  # fragments copied into a queue
    reassembled: int = 0  # datagrams delivered
    duplicates: int = 0  # same offset and length as a held fragment: dropped alone
    overlaps: int = 0  # any other overlap: datagram discarded
    oversize: int = 0  # would end beyond 65535 bytes: refused before copying, its queue discarded
    ecn_mix: int = 0  # Not-ECT mixed with ECT/CE (RFC 3168 5.3): datagram discarded
    bad_length: int = 0  # non-last fragment not a multiple of 8
    empty: int = 0  # no payload: its queue discarded
    inconsistent: int = 0  # second last fragment with another end / data beyond the end: datagram discarded
    too_many_fragments: int = 0  # more than max_fragments: datagram discarded
    source_limit: int = 0  # source over its per_source_memory share: fragment dropped
    memory_limit: int = 0  # could not fit even after eviction: fragment dropped
    timeouts: int = 0  # queues expired
    evicted: int = 0  # queues evicted to make room under max_memory
    datagram_limit: int = 0  # queues evicted to stay under max_datagrams


class _Queue:
    """Fragments of one datagram, sorted by offset, never overlapping."""

    __slots__ = ("datas", "deadline", "ecn", "end", "ends", "head", "max_end", "mem", "received", "src",
                 "starts")

    def __init__(self, deadline: float, src: int) -> None:
        self.deadline = deadline
        self.src = src
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.datas: list[bytes] = []
        self.received = 0  # payload bytes held; == end with no overlap means no hole
        self.end: int | None = None  # payload length, once the last fragment arrived
        self.max_end = 0
        self.head: bytes | None = None  # header of the offset-0 fragment, as received
        self.mem = 0
        self.ecn = 0  # bit 1 << (ECN field) for every fragment received


class Reassembler:
    """Reassembles IPv4 fragments; `now` must never decrease between calls."""

    __slots__ = ("_memory", "_queues", "_quotes", "_quotes_at", "_src_mem", "config", "stats")

    def __init__(self, config: ReassemblyConfig | None = None) -> None:
        self.config = config if config is not None else ReassemblyConfig()
        self.stats = ReassemblyStats()
        self._queues: OrderedDict[int, _Queue] = OrderedDict()  # deadline order
        self._src_mem: dict[int, int] = {}
        self._memory = 0
        self._quotes: list[bytes] = []  # ICMP quotes of queues expired lazily, for expire()
        self._quotes_at = 0.0  # deadline of the first of them

    @property
    def memory(self) -> int:
        """Accounted bytes held (payload + fragment_overhead per fragment)."""
        return self._memory

    def __len__(self) -> int:
        return len(self._queues)

    def source_memory(self, src: int) -> int:
        """Accounted bytes held for source address `src` (an int)."""
        return self._src_mem.get(src, 0)

    def process(self, header: memoryview, payload: memoryview, now: float) -> bytearray | None:  # noqa: PLR0911, PLR0912, PLR0915 - the RFC 815 hole algorithm with Linux's overlap/limit rules, one outcome per return
        """One fragment in (header validated, payload trimmed); the whole datagram when it completes."""
        st = self.stats
        st.fragments += 1
        queues = self._queues
        if queues and next(iter(queues.values())).deadline <= now:
            self._expire_due(now)
        vihl, ident, ff, proto, src, dst = _HDR.unpack_from(header)
        hl = (vihl & 15) << 2
        off = (ff & OFFSET_MASK) << 3
        n = len(payload)
        end = off + n
        last = not ff & FLAG_MF
        key = (src << 64) | (dst << 32) | (proto << 16) | ident
        q = queues.get(key)
        if n == 0:
            st.empty += 1
            if q is not None:
                self._discard(key, q)
            return None
        if not last and n & 7:
            st.bad_length += 1
            return None
        if end > MAX_DATAGRAM - MIN_HEADER:
            st.oversize += 1
            if q is not None:
                self._discard(key, q)
            return None
        cfg = self.config
        # The datagram's header is the offset-0 one: until it is known assume the minimum.
        if off == 0:
            hlen = hl
        elif q is not None and q.head is not None:
            hlen = len(q.head)
        else:
            hlen = MIN_HEADER
        if (end if q is None or q.max_end < end else q.max_end) + hlen > MAX_DATAGRAM:
            st.oversize += 1
            if q is not None:
                self._discard(key, q)
            return None
        i = 0  # insertion index in the queue's sorted fragments
        if q is not None:
            qend = q.end
            if (qend is not None and (end > qend or (last and end != qend))) or (
                    last and q.max_end > end):
                st.inconsistent += 1
                self._discard(key, q)
                return None
            starts = q.starts
            i = bisect_left(starts, off)
            if i < len(starts) and starts[i] == off and q.ends[i] == end:
                st.duplicates += 1
                return None
            if (i and q.ends[i - 1] > off) or (i < len(starts) and starts[i] < end):
                st.overlaps += 1
                self._discard(key, q)
                return None
            if len(starts) >= cfg.max_fragments:
                st.too_many_fragments += 1
                self._discard(key, q)
                return None

        cost = n + cfg.fragment_overhead
        if self._src_mem.get(src, 0) + cost > cfg.per_source_memory:
            st.source_limit += 1
            return None
        if self._memory + cost > cfg.max_memory and not self._evict(cost, q):
            st.memory_limit += 1
            return None
        if q is None:
            if len(queues) >= cfg.max_datagrams:
                k, victim = next(iter(queues.items()))
                self._discard(k, victim)
                st.datagram_limit += 1
            q = queues[key] = _Queue(now + cfg.timeout, src)

        # The caller's views die with the call: the only copy of the payload happens here. Eviction
        # never touches q, so i is still right.
        q.starts.insert(i, off)
        q.ends.insert(i, end)
        q.datas.insert(i, bytes(payload))
        st.accepted += 1
        q.received += n
        q.mem += cost
        self._memory += cost
        self._src_mem[src] = self._src_mem.get(src, 0) + cost
        q.max_end = max(q.max_end, end)
        q.ecn |= 1 << (header[1] & 3)
        if last:
            q.end = end
        if off == 0:
            q.head = bytes(header[:hl])
        head = q.head
        # No overlaps, so received == end means [0, end) is covered.
        if q.received != q.end or head is None:
            return None

        ecn = q.ecn
        if ecn & 1 and ecn != 1:  # Not-ECT mixed with ECT or CE
            st.ecn_mix += 1
            self._discard(key, q)
            return None
        out = bytearray().join((head, *q.datas))
        if ecn & 8:
            out[1] |= 3  # CE on any fragment: the datagram experienced congestion
        _U16.pack_into(out, 2, len(out))
        out[6] &= _KEEP_FLAGS >> 8  # MF and offset cleared
        out[7] = 0
        fill_checksum(out)
        self._discard(key, q)
        st.reassembled += 1
        return out

    def expire(self, now: float) -> list[bytes]:
        """Drop every queue whose deadline <= now; return the ICMP Time Exceeded quotes (offset-0 header +
        data up to 548 bytes in all, as received) of those that had their first fragment, oldest first."""
        self._expire_due(now)
        quotes = self._quotes
        self._quotes = []
        return quotes

    def poll_at(self) -> float | None:
        """Earliest deadline (in the past when lazily expired quotes wait for expire()), or None."""
        if self._quotes:
            return self._quotes_at
        if self._queues:
            return next(iter(self._queues.values())).deadline
        return None

    def _expire_due(self, now: float) -> None:
        queues = self._queues
        while queues:
            key, q = next(iter(queues.items()))
            if q.deadline > now:
                return
            self._discard(key, q)
            self.stats.timeouts += 1
            if q.head is not None:
                if not self._quotes:
                    self._quotes_at = q.deadline
                # As much of the first fragment as fits in a 576-byte ICMP error (RFC 1812 4.3.2.3, Linux).
                self._quotes.append(q.head + q.datas[0][:max(8, 548 - len(q.head))])

    def _evict(self, need: int, keep: _Queue | None) -> bool:
        """Evict the oldest queues but `keep` until `need` bytes fit; evict nothing if they never would."""
        target = self.config.max_memory - need
        mem = self._memory
        victims: list[tuple[int, _Queue]] = []
        for key, q in self._queues.items():
            if mem <= target:
                break
            if q is not keep:
                victims.append((key, q))
                mem -= q.mem
        if mem > target:
            return False
        for key, q in victims:
            self._discard(key, q)
        self.stats.evicted += len(victims)
        return True

    def _discard(self, key: int, q: _Queue) -> None:
        del self._queues[key]
        self._memory -= q.mem
        left = self._src_mem.get(q.src, 0) - q.mem
        if left:
            self._src_mem[q.src] = left
        else:
            self._src_mem.pop(q.src, None)
