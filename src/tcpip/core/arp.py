"""ARP cache and resolver (RFC 826, RFC 5227, Linux arp_accept=0 rules): bounded, LRU, with retries and queues."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tcpip.core.stats import ArpStats
from tcpip.wire import arp as warp

Buffer = bytes | bytearray | memoryview
Frame = Sequence[Buffer]
FailHook = Callable[[int], None]

PENDING = 0
REACHABLE = 1
STATIC = 2
_ZERO_MAC = b"\x00" * 6
_BCAST_MAC = b"\xff" * 6


@dataclass(slots=True)
class ArpEntry:
    ip: int
    mac: bytes | None
    state: int
    expires: float  # reachable: when it needs refreshing; pending: when the next try is due
    tries: int = 0  # requests sent for the current resolution or refresh
    # frames (IPv4 packets as parts, Ethernet header missing) waiting for the MAC, with failure hooks
    queue: list[tuple[Frame, FailHook | None]] | None = None
    refreshing: bool = False
    queued_bytes: int = 0
    updated: float = float("-inf")  # when the MAC last changed or was confirmed (Linux locktime)
    # Set by the fast paths that read `entries` directly (cheaper than reordering per frame); eviction
    # gives such an entry a second chance, so the order approximates least recently used (CLOCK).
    used: bool = False


class ArpCache:
    """The neighbour table. `emit(frame_parts)` is how it sends; `on_resolved`/`on_failed` report outcomes.

    Entries are created only by requests addressed to us and by replies to our own queries; anything else may
    refresh an existing entry (Linux arp_accept=0), so an unsolicited reply cannot poison the cache.
    """

    def __init__(self, stats: ArpStats, emit: Callable[[Frame], None], *, size: int, tries: int,
                 interval: float, reachable: float, queue_len: int, queue_bytes: int = 212992,
                 locktime: float = 1.0, defend_interval: float = 10.0) -> None:
        self.stats = stats
        self._emit = emit
        self.size = size
        self.tries = tries
        self.interval = interval
        self.reachable = reachable
        self.queue_len = queue_len
        self.queue_bytes = queue_bytes
        self.locktime = locktime
        self.defend_interval = defend_interval
        self._defended = float("-inf")
        self.entries: OrderedDict[int, ArpEntry] = OrderedDict()
        # The neighbour generation: bumped by every change of `entries` (membership) or of an entry's `mac`,
        # `state` or `expires`, and by `invalidate()`. A route resolved under generation g (routing.Path)
        # is unchanged while `gen == g`: its fast test is this one comparison and its expiry time.
        self.gen = 0
        self.pending: dict[int, ArpEntry] = {}
        self.mac = _ZERO_MAC
        self.ip = 0
        self.others: frozenset[int] | set[int] = frozenset()  # secondary addresses: answered too
        self.mask = 0  # our subnet's, for the sender-address rules
        self.on_resolved: Callable[[int, bytes], None] | None = None
        self.on_failed: Callable[[int], None] | None = None
        # (our ip, the other MAC): another host claims our address (defended once per interval)
        self.on_conflict: Callable[[int, bytes], None] | None = None

    def invalidate(self) -> None:
        """Something a resolved route depends on changed outside the table (routes, our MAC, the MTU)."""
        self.gen += 1

    # -- lookups -------------------------------------------------------------------------------
    def lookup(self, ip: int, now: float) -> bytes | None:
        """The MAC for `ip` if known (stale entries still answer while a refresh runs)."""
        e = self.entries.get(ip)
        if e is None or e.mac is None:
            return None
        if e.state == REACHABLE and now >= e.expires and not e.refreshing:
            # Past its reachable time: keep using it, but confirm with a fresh request (like STALE->PROBE).
            e.refreshing = True
            e.tries = 1
            e.expires = now + self.interval
            self.gen += 1
            self.pending[ip] = e
            self._request(ip)
        self.entries.move_to_end(ip)
        return e.mac

    def resolve(self, ip: int, frame: Frame | None, now: float, on_fail: FailHook | None = None) -> None:
        """Start (or join) resolution of `ip`, queueing `frame` (IPv4 parts without Ethernet header)."""
        e = self.entries.get(ip)
        if e is None:
            e = ArpEntry(ip, None, PENDING, now + self.interval, 1, [])
            self._insert(ip, e)
            self.pending[ip] = e
            self._request(ip)
        elif e.mac is not None:  # raced with a reply: nothing to queue
            if frame is not None:
                self._emit_queued(e.mac, [(frame, on_fail)])
            return
        if frame is not None:
            q = e.queue
            if q is None:
                q = e.queue = []
                e.queued_bytes = 0
            size = sum(map(len, frame))
            if size > self.queue_bytes:
                self.stats.queue_dropped += 1
                return
            # Bounded in frames and in bytes (Linux unres_qlen_bytes): the oldest are dropped first.
            while q and (len(q) >= self.queue_len or e.queued_bytes + size > self.queue_bytes):
                old, _hook = q.pop(0)
                e.queued_bytes -= sum(map(len, old))
                self.stats.queue_dropped += 1
            q.append((frame, on_fail))
            e.queued_bytes += size

    def add_static(self, ip: int, mac: bytes) -> None:
        e = self.entries.get(ip)
        self._insert(ip, ArpEntry(ip, mac, STATIC, float("inf")))
        self.pending.pop(ip, None)
        if e is not None and e.queue:
            self._emit_queued(mac, e.queue)

    def remove(self, ip: int) -> None:
        self.gen += 1
        self.entries.pop(ip, None)
        self.pending.pop(ip, None)

    def _insert(self, ip: int, e: ArpEntry) -> None:
        # (Covers the eviction loop below too: the entries it drops, and the `used` bits it clears, which
        # routing.path() sets again on the next use of a route because the generation moved.)
        self.gen += 1
        self.entries[ip] = e
        self.entries.move_to_end(ip)
        spared = False
        while len(self.entries) > self.size:
            old_ip, old = next(iter(self.entries.items()))
            if old is e and not spared:  # every other entry had its second chance: the newcomer is not the
                spared = True  # victim (it would be learnt into a deleted entry); the loop goes round once more
                self.entries.move_to_end(old_ip)
                continue
            if old.used and old is not e:  # used by a fast path since it was last ordered: second chance
                old.used = False
                self.entries.move_to_end(old_ip)
                continue
            if old.state == STATIC and any(x.state != STATIC for x in self.entries.values()):
                self.entries.move_to_end(old_ip)  # statics are never evicted while others exist
                continue
            del self.entries[old_ip]
            self.stats.evictions += 1
            if self.pending.pop(old_ip, None) is not None and old.mac is None:
                self._fail(old)

    # -- timers --------------------------------------------------------------------------------
    def poll_at(self) -> float | None:
        # `pending` is ordered by `expires`: every deadline is set to now + interval (the latest yet) and its
        # entry (re)inserted at the end, so the first entry is due first. O(1): this runs after every frame.
        for e in self.pending.values():
            return e.expires
        return None

    def handle_timeout(self, now: float) -> None:
        for ip, e in list(self.pending.items()):
            if e.expires > now:
                break  # ordered by deadline: nothing later is due
            self.gen += 1  # an entry dropped or its deadline moved
            if e.tries >= self.tries:
                del self.pending[ip]
                if e.mac is None:
                    self.entries.pop(ip, None)
                    self.stats.resolve_failures += 1
                    self._fail(e)
                else:  # a refresh went unanswered: forget the neighbour
                    self.entries.pop(ip, None)
                    self.stats.expired += 1
                continue
            e.tries += 1
            e.expires = now + self.interval
            del self.pending[ip]
            self.pending[ip] = e  # to the end: keeps `pending` ordered by deadline
            self._request(ip)

    def _fail(self, e: ArpEntry) -> None:
        q, e.queue = e.queue, None
        # Each hook once: by equality, not id(), since `obj.method` is a new bound-method object per access.
        seen: list[FailHook] = []
        if q:
            self.stats.queue_dropped += len(q)
            for _frame, hook in q:
                if hook is not None and hook not in seen:
                    seen.append(hook)
                    hook(e.ip)
        if self.on_failed is not None:
            self.on_failed(e.ip)

    # -- input ---------------------------------------------------------------------------------
    def input(self, pkt: memoryview, now: float) -> None:  # noqa: PLR0911, PLR0912, PLR0915 - RFC 826/5227 rules in order, one return per counted outcome
        """One ARP packet (Ethernet payload). Answers, learns and counts."""
        st = self.stats
        st.rx_packets += 1
        if len(pkt) < warp.LEN:
            st.rx_truncated += 1
            return
        htype, ptype, hlen, plen, op, sha, spa_b, _tha, tpa_b = warp.unpack_from(pkt, 0)
        if (htype != 1 and htype != 6) or ptype != 0x0800:  # 6 (IEEE 802) answered like 1, as Linux
            st.rx_bad_type += 1
            return
        if hlen != 6 or plen != 4:
            st.rx_bad_length += 1
            return
        if op not in (1, 2):
            st.rx_bad_op += 1
            return
        if sha == self.mac:
            st.rx_from_self += 1
            return
        if sha[0] & 1 or sha == _ZERO_MAC:  # broadcast, multicast or no sender MAC: never believable
            st.rx_bad_sender_mac += 1
            return
        spa = int.from_bytes(spa_b, "big")
        tpa = int.from_bytes(tpa_b, "big")
        mask = self.mask
        if spa == 0xFFFFFFFF or spa >> 28 == 0xE or spa >> 24 == 127 or (
                spa and mask < 0xFFFFFFFE and (spa ^ self.ip) & mask == 0
                and (spa & ~mask & 0xFFFFFFFF in (0, ~mask & 0xFFFFFFFF))):
            st.rx_bad_sender_ip += 1  # a broadcast, multicast, loopback, or our subnet's network address
            return
        if tpa == 0xFFFFFFFF or tpa >> 28 == 0xE:  # Linux: a multicast target never refreshes anything
            st.rx_bad_target_ip += 1
            return
        ours = self.ip != 0
        if op == 1:
            st.requests_received += 1
        else:
            st.replies_received += 1
        if ours and spa == self.ip:
            st.conflicts += 1  # someone else claims our address; never cache it
            # RFC 5227 2.4 (b): defend once with an announcement, then not again within the interval.
            if now - self._defended >= self.defend_interval:
                self._defended = now
                st.conflicts_defended += 1
                self.announce()
            if self.on_conflict is not None:  # every one: the driver logs each other MAC once
                self.on_conflict(spa, sha)
            return
        e = self.entries.get(spa) if spa else None
        if ours and (tpa == self.ip or (tpa in self.others and tpa)):
            if op == 1:
                self._reply(sha, spa_b, tpa_b)
                if spa == 0:
                    st.probes_answered += 1  # RFC 5227 probe: answer, never cache 0.0.0.0
                    return
                if e is None:  # a request addressed to us may create an entry (RFC 826)
                    e = ArpEntry(spa, None, PENDING, 0.0)
                    self._insert(spa, e)
                    st.entries_created += 1
                self._learn(e, sha, now)
                return
            if e is None:
                st.unsolicited_ignored += 1
                return
            self._learn(e, sha, now, locked=True)
            return
        # Not addressed to us (gratuitous announcements, others' requests): refresh only.
        if e is None:
            if op == 2:
                st.unsolicited_ignored += 1
            else:
                st.rx_not_for_us += 1
            return
        self._learn(e, sha, now, locked=spa != tpa)  # a gratuitous announcement overrides, as in Linux

    def _learn(self, e: ArpEntry, mac: bytes, now: float, locked: bool = False) -> None:
        if e.state == STATIC:
            return
        was = e.mac
        if locked and was is not None and was != mac and now - e.updated < self.locktime:
            # Linux locktime: within 1 s of an update another MAC does not replace it (first reply wins).
            self.stats.locktime_ignored += 1
            return
        self.gen += 1
        e.updated = now
        e.mac = mac
        e.state = REACHABLE
        e.expires = now + self.reachable
        e.tries = 0
        e.refreshing = False
        self.pending.pop(e.ip, None)
        if self.entries.get(e.ip) is e:  # (evicted on insertion only when every other entry is static)
            self.entries.move_to_end(e.ip)
        if was is not None:
            self.stats.entries_refreshed += 1
        q, e.queue = e.queue, None
        if q:
            self._emit_queued(mac, q)
        if was is None and self.on_resolved is not None:
            self.on_resolved(e.ip, mac)

    def _emit_queued(self, mac: bytes, q: list[tuple[Frame, FailHook | None]]) -> None:
        eth = mac + self.mac + b"\x08\x00"
        for frame, _hook in q:
            self._emit((eth, *frame))

    # -- output --------------------------------------------------------------------------------
    def _request(self, ip: int) -> None:
        self.stats.requests_sent += 1
        self._emit((_BCAST_MAC + self.mac + b"\x08\x06",
                    warp.pack(1, self.mac, self.ip.to_bytes(4, "big"), _ZERO_MAC,
                              ip.to_bytes(4, "big"))))

    def _reply(self, mac: bytes, ip_b: bytes, ours: bytes) -> None:
        self.stats.replies_sent += 1
        self._emit((mac + self.mac + b"\x08\x06", warp.pack(2, self.mac, ours, mac, ip_b)))

    def announce(self, address: int | None = None) -> None:
        """Gratuitous ARP (RFC 5227 announcement): a request with sender IP = target IP = ours."""
        self.stats.announcements_sent += 1
        ip = (self.ip if address is None else address).to_bytes(4, "big")
        self._emit((_BCAST_MAC + self.mac + b"\x08\x06", warp.pack(1, self.mac, ip, _ZERO_MAC, ip)))
