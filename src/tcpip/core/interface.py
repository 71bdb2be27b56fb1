"""Interface: the sans-I/O host. Ethernet in, ARP, IPv4 checks and demux, ICMP, routing and IPv4 output.

The sans-I/O surface a driver uses: `receive(frame, now)`; `poll_transmit()` -> the frames queued since the
last call (each a sequence of buffers, ready for `os.writev`); `poll_at()` -> when `handle_timeout(now)` is
next due (None: never); loopback datagrams wait in `loopback` for `loopback_input(now)` on a later turn.

Hooks for upper layers (UDP today, TCP next); every callable is synchronous and `now` is always an argument:
- `register(proto, on_input, on_error=None)`: the protocol registry, the only place protocol numbers meet
  handlers. `on_input(src, dst, payload, packet, now, broadcast)` gets each accepted datagram (addresses as
  ints; `payload`/`packet` are views valid during the call only; `broadcast` = sent to a broadcast or
  multicast address); `on_error(icmp_type, code, rest, quote, now)` gets each ICMP error quoting one of our
  datagrams of that protocol (`rest` = the ICMP header's second word, `quote` = the quoted IPv4 header + 8+
  bytes). No handler: ICMP protocol unreachable.
- `add_timer_source(poll_at, handle_timeout)`: `poll_at() -> float | None` is folded into the host's
  `poll_at()`, and `handle_timeout(now)` is called on every host `handle_timeout(now)` (it must do nothing
  when nothing is due). A source whose deadline moves *earlier* calls `timers_changed()` so the driver
  re-reads `poll_at()` (moving it later needs nothing: a timer firing early finds nothing due).
- `send(dst, proto, parts, now)`: the one output path (routing, ARP queueing, fragmentation; a resolved
  next hop takes a fast path). `set_echo_handler(cb)`: echo replies to our requests.
"""

from __future__ import annotations

import random
import struct
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import NamedTuple

from tcpip.core.arp import ArpCache
from tcpip.core.config import InterfaceConfig
from tcpip.core.fragment import fragment
from tcpip.core.ratelimit import PeerLimiter
from tcpip.core.reassembly import Reassembler
from tcpip.core.stats import ArpStats, EthernetStats, IcmpStats, Ipv4Stats
from tcpip.errors import MessageTooLongError, NoRouteError, WouldFragmentError
from tcpip.wire import checksum as ck
from tcpip.wire.ipv4 import ip_str
from tcpip.wire.mac import MacAddress

Buffer = bytes | bytearray | memoryview
Frame = Sequence[Buffer]
# (src, dst, payload, ip packet, now, broadcast) -> None; addresses as ints on the hot path
InputHandler = Callable[[int, int, memoryview, memoryview, float, bool], None]
# (icmp type, code, rest-of-header, quoted datagram, now) -> None
ErrorHandler = Callable[[int, int, int, memoryview, float], None]
# (src, ident, seq, data, now) -> None: an echo reply
EchoHandler = Callable[[int, int, int, memoryview, float], None]
TimerSource = tuple[Callable[[], float | None], Callable[[float], None]]

_HDR = struct.Struct("!BBHHHBBHII")
_FAST = struct.Struct("!6s6xHBBHHHBBHII")  # Ethernet dst, type, then the 20-byte IPv4 header
_ICMP_HDR = struct.Struct("!BBHI")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_LEN_ID = struct.Struct("!HH")
_ETH_IPV4 = b"\x08\x00"
_BCAST = b"\xff" * 6
_PAD = bytes(60)
_from = int.from_bytes

SENT = 0
PENDING = 1
ICMP_ERROR_TYPES = frozenset({3, 4, 5, 11, 12})


class Accepted(NamedTuple):
    """An IPv4 datagram that passed every input check and is addressed to us."""

    src: int
    dst: int
    proto: int
    payload: memoryview
    packet: memoryview
    broadcast: bool  # sent to a broadcast or multicast address (link or IP)


class Interface:
    """One IPv4-over-Ethernet interface. Deterministic: time and randomness are injected."""

    def __init__(self, config: InterfaceConfig, *, now: float, rng: random.Random) -> None:
        config = config.copy()  # ours alone: set_mac, set_address... never write into the caller's
        if config.mac is None:
            config.mac = MacAddress.random_local(rng)
        if not config.mtu:
            config.mtu = 1500
        if not 68 <= config.mtu <= 65535:
            raise ValueError(f"MTU {config.mtu} outside 68..65535")
        self.config = config
        self.rng = rng
        self.tx: list[Frame] = []
        self.loopback: list[bytes] = []  # datagrams to our own address, for loopback_input()
        self.timers_dirty = False  # poll_at() may have moved earlier (ARP sets none: the driver reads pending)
        self.eth_stats = EthernetStats()
        self.ip_stats = Ipv4Stats()
        self.icmp_stats = IcmpStats()
        self.arp = ArpCache(ArpStats(), self._emit, size=config.arp_cache_size,
                            tries=config.arp_tries, interval=config.arp_interval,
                            reachable=config.arp_reachable, queue_len=config.arp_queue_len,
                            queue_bytes=config.arp_queue_bytes)
        self.protocols: dict[int, InputHandler] = {}  # the registry: read once per frame on the fast path
        self.error_handlers: dict[int, ErrorHandler] = {}  # proto -> ICMP errors about it
        self.timer_sources: list[TimerSource] = []
        self.echo_reply_handler: EchoHandler | None = None
        self.ipv6_handler: Callable[[memoryview], None] | None = None
        self.groups: set[int] = {0xE0000001}  # joined multicast groups; 224.0.0.1 always
        self._group_macs: set[bytes] = set()
        self._idents: dict[int, int] = {}  # insertion order = age: the oldest destination goes first
        self.pmtu: OrderedDict[int, tuple[int, float]] = OrderedDict()
        self.icmp_limiter = PeerLimiter(config.icmp_rate_per_dest, config.icmp_burst_per_dest,
                                        config.icmp_rate_global, config.icmp_burst_global,
                                        config.icmp_rate_table_size, now)
        self.reassembler: Reassembler | None = Reassembler(config.reassembly) if config.reassemble else None
        self.max_frame = 14 + config.mtu
        self._verify = config.verify_checksums
        self.routes = 0  # routing generation: bumped by every address, netmask, gateway or MAC change
        self.set_mac(config.mac.packed)
        self._apply_address()
        self.register(1, self._icmp_dispatch)

    # -- hooks for upper layers ----------------------------------------------------------------
    def register(self, proto: int, on_input: InputHandler, on_error: ErrorHandler | None = None) -> None:
        """Deliver protocol `proto`'s datagrams to `on_input` and ICMP errors about it to `on_error`."""
        self.protocols[proto] = on_input
        if on_error is not None:
            self.error_handlers[proto] = on_error
        else:
            self.error_handlers.pop(proto, None)

    def unregister(self, proto: int) -> None:
        self.protocols.pop(proto, None)
        self.error_handlers.pop(proto, None)

    def add_timer_source(self, poll_at: Callable[[], float | None],
                         handle_timeout: Callable[[float], None]) -> None:
        """Fold an upper layer's timers into `poll_at()` / `handle_timeout(now)`."""
        self.timer_sources.append((poll_at, handle_timeout))
        self.timers_dirty = True

    def timers_changed(self) -> None:
        """A deadline may have moved earlier: the driver re-reads `poll_at()` after this batch."""
        self.timers_dirty = True

    def set_echo_handler(self, handler: EchoHandler | None) -> None:
        """`handler(src, ident, seq, data, now)` for each echo reply received."""
        self.echo_reply_handler = handler

    def poll_transmit(self) -> list[Frame]:
        """The frames queued since the last call, oldest first (each a sequence of buffers)."""
        tx = self.tx
        self.tx = []
        return tx

    # -- configuration -------------------------------------------------------------------------
    def set_mac(self, mac: bytes) -> None:
        self.routes += 1
        self.config.mac = MacAddress(mac)
        self.mac = mac
        self.arp.mac = mac
        self._macs = {mac, _BCAST}
        self._refresh_groups()

    def _refresh_groups(self) -> None:
        self._group_macs = {b"\x01\x00\x5e" + (g & 0x7FFFFF).to_bytes(3, "big") for g in self.groups}

    def join(self, group: int) -> None:
        self.groups.add(group)
        self._refresh_groups()

    def leave(self, group: int) -> None:
        if group != 0xE0000001:
            self.groups.discard(group)
            self._refresh_groups()

    def set_address(self, address: int, now: float) -> None:
        self.config.address = address
        self._apply_address()
        if address:
            self.arp.announce()

    def set_netmask(self, netmask: int) -> None:
        self.config.netmask = netmask
        self._apply_address()

    def set_gateways(self, gateways: Sequence[int]) -> None:
        self.config.gateways = list(gateways)
        self.routes += 1

    def _apply_address(self) -> None:
        c = self.config
        self.addr = c.address
        self.mask = c.netmask
        self.net = c.address & c.netmask
        # The subnet broadcast only exists for a real subnet (not /31, /32, nor an unset mask).
        self.bcast = (self.net | (~c.netmask & 0xFFFFFFFF)) if c.address and 0 < c.netmask < 0xFFFFFFFE \
            else -1
        self.arp.ip = c.address
        self.routes += 1  # a generation: next hops cached under an older one are stale
        self._fast_dst = c.address if c.address else -1

    # -- output plumbing -----------------------------------------------------------------------
    def _emit(self, frame: Frame) -> None:
        """Queue one Ethernet frame, padded to the 60-byte minimum."""
        n = 0
        for p in frame:
            n += len(p)
        if n < 60:
            frame = (*frame, _PAD[: 60 - n])
        self.eth_stats.tx_frames += 1
        self.tx.append(frame)

    # -- input ---------------------------------------------------------------------------------
    def receive(self, frame: memoryview, now: float) -> None:
        """One Ethernet frame in: ARP and ICMP answered here, other protocols to their handlers.

        The common case (unicast IPv4 to our MAC and address, no options, not a fragment) is checked in
        one struct unpack and one checksum; everything else takes the general path, which applies the
        same rules one by one with a counter each."""
        try:
            dmac, et, vihl, _tos, total, _id, ff, _ttl, proto, _c, src, dst = _FAST.unpack_from(frame, 0)
        except struct.error:
            self._receive_general(frame, now)
            return
        n = len(frame)
        # `_fast_dst` is our address, or -1 while we have none; `_src_ok` the unicast host ranges.
        if (dst != self._fast_dst or dmac != self.mac or et != 0x0800 or vihl != 0x45 or ff & 0x3FFF
                or total + 14 > n or total < 20 or n > self.max_frame
                or not (0x01000000 <= src < 0x7F000000 or 0x80000000 <= src < 0xE0000000)
                or src == dst or src == self.bcast):
            self._receive_general(frame, now)
            return
        if self._verify:
            x = _from(frame[14:34], "big")
            if x % 0xFFFF or not x:
                self._receive_general(frame, now)
                return
        self.eth_stats.rx_frames += 1
        ist = self.ip_stats
        ist.rx_packets += 1
        if proto == 1 and total >= 28 and frame[34] == 8 and self._fast_echo(frame, total, src, now):
            return
        h = self.protocols.get(proto)
        if h is not None:
            ist.rx_delivered += 1
            h(src, dst, frame[34:14 + total], frame[14:14 + total], now, False)
            return
        self.dispatch(Accepted(src, dst, proto, frame[34:14 + total], frame[14:14 + total], False), now)

    def _receive_general(self, frame: memoryview, now: float) -> None:
        r = self.eth_demux(frame, now)
        if r is None:
            return
        if r[0] == 0x0800:
            a = self.ip_accept(r[1], now, r[2])
            if a is not None:
                self.dispatch(a, now)
        elif self.ipv6_handler is not None:
            self.eth_stats.rx_ipv6 += 1
            self.ipv6_handler(r[1])
        else:
            self.eth_stats.rx_ipv6_no_handler += 1

    def eth_demux(self, frame: memoryview, now: float) -> tuple[int, memoryview, bool] | None:
        """Ethernet demux: ARP is handled here; IPv4 and IPv6 come back as (ethertype, payload,
        link-broadcast-or-multicast). Anything else is counted and dropped (None)."""
        st = self.eth_stats
        st.rx_frames += 1
        n = len(frame)
        if n < 14:
            st.rx_runt += 1
            return None
        if n > self.max_frame:
            st.rx_oversize += 1
            return None
        dst = frame[0:6].tobytes()
        if dst not in self._macs:
            if not (dst[0] & 1 and dst in self._group_macs):
                st.rx_not_for_us += 1
                return None
        t = frame[12:14].tobytes()
        if t == _ETH_IPV4:
            return 0x0800, frame[14:], dst[0] & 1 == 1
        if t == b"\x08\x06":
            self.arp.input(frame[14:], now)
            return None
        if t == b"\x86\xdd":
            return 0x86DD, frame[14:], dst[0] & 1 == 1
        st.rx_unknown_ethertype += 1
        return None

    def ip_accept(self, pkt: memoryview, now: float, l2_bcast: bool = False) -> Accepted | None:
        """Every RFC 791/1122 input check; reassembles fragments. None when dropped or held."""
        st = self.ip_stats
        st.rx_packets += 1
        n = len(pkt)
        if n < 20:
            st.rx_truncated += 1
            return None
        vihl, _tos, total, _ident, ff, _ttl, proto, _c, src, dst = _HDR.unpack_from(pkt, 0)
        hl = 20
        if vihl != 0x45:
            if vihl >> 4 != 4:
                st.rx_bad_version += 1
                return None
            hl = (vihl & 15) << 2
            if hl < 20:
                st.rx_bad_ihl += 1
                return None
        if total < hl:
            st.rx_bad_total_length += 1
            return None
        if total > n:
            st.rx_truncated += 1
            return None
        if self._verify:
            x = _from(pkt[:hl], "big")
            if x % 0xFFFF or not x:
                st.rx_bad_checksum += 1
                return None
        if hl > 20 and not self._options_ok(pkt[20:hl]):
            return None
        # Destination: ours, limited or subnet broadcast, or a joined group.
        bcast = False
        if dst != self.addr or not dst:
            if dst == 0xFFFFFFFF or dst == self.bcast or dst in self.groups:
                bcast = True
            else:
                st.rx_dst_not_ours += 1
                return None
        elif l2_bcast:
            st.rx_unicast_in_l2_broadcast += 1  # RFC 1122 3.3.6: SHOULD discard
            return None
        # Martian sources (RFC 1122 3.2.1.3, RFC 1812 5.3.7): never a reply target.
        top = src >> 24
        if top == 127 or top >= 224 or (src and src == self.addr) or src == self.bcast or (
                not src and dst != 0xFFFFFFFF):
            st.rx_martian_source += 1
            return None
        if ff & 0x3FFF:
            return self._fragment(pkt, hl, total, now, src, dst, proto, bcast)
        return Accepted(src, dst, proto, pkt[hl:total], pkt[:total], bcast)

    def _options_ok(self, opts: memoryview) -> bool:
        """Walk the options: malformed lengths and source routes (hosts drop them, like Linux) fail."""
        i, n = 0, len(opts)
        while i < n:
            t = opts[i]
            if t == 0:
                break
            if t == 1:
                i += 1
                continue
            if i + 1 >= n or opts[i + 1] < 2 or i + opts[i + 1] > n:
                self.ip_stats.rx_bad_options += 1
                return False
            if t in (0x83, 0x89):  # LSRR, SSRR
                self.ip_stats.rx_source_route += 1
                return False
            i += opts[i + 1]
        return True

    def _fragment(self, pkt: memoryview, hl: int, total: int, now: float, src: int, dst: int,
                  proto: int, bcast: bool) -> Accepted | None:
        st = self.ip_stats
        st.rx_fragments += 1
        r = self.reassembler
        if r is None:
            st.rx_fragments_dropped += 1
            return None
        self.timers_dirty = True  # a new reassembly deadline may exist
        whole = r.process(pkt[:hl], pkt[hl:total], now)
        if whole is None:
            return None
        st.rx_reassembled += 1
        mv = memoryview(whole)
        whl = (whole[0] & 15) << 2
        return Accepted(src, dst, proto, mv[whl:], mv, bcast)

    def dispatch(self, a: Accepted, now: float) -> None:
        """Hand an accepted datagram to the registered handler of its protocol."""
        self.ip_stats.rx_delivered += 1
        h = self.protocols.get(a.proto)
        if h is None:
            self.ip_stats.rx_unknown_protocol += 1
            self.send_icmp_error(a, 3, 2, 0, now)
            return
        h(a.src, a.dst, a.payload, a.packet, now, a.broadcast)

    # -- ICMP ----------------------------------------------------------------------------------
    def _icmp_dispatch(self, src: int, dst: int, payload: memoryview, packet: memoryview, now: float,
                       broadcast: bool) -> None:
        self.icmp_input(Accepted(src, dst, 1, payload, packet, broadcast), now)

    def icmp_input(self, a: Accepted, now: float) -> None:
        st = self.icmp_stats
        st.rx_messages += 1
        m = a.payload
        if len(m) < 8:
            st.rx_truncated += 1
            return
        if self._verify:
            x = _from(m, "big") << 8 if len(m) & 1 else _from(m, "big")
            if x % 0xFFFF or not x:
                st.rx_bad_checksum += 1
                return
        t = m[0]
        if t == 8:
            st.rx_echo_requests += 1
            if a.broadcast and self.config.icmp_echo_ignore_broadcasts:
                st.rx_echo_broadcast_ignored += 1
                return
            self._echo_reply(a, now)
            return
        if t == 0:
            st.rx_echo_replies += 1
            h = self.echo_reply_handler
            if h is not None:
                _t, _c, _cs, rest = _ICMP_HDR.unpack_from(m, 0)
                h(a.src, rest >> 16, rest & 0xFFFF, m[8:], now)
            return
        if t in (3, 11, 12):
            if a.broadcast:  # errors are unicast by definition (RFC 1122 3.2.2); Linux drops these
                st.rx_error_to_broadcast += 1
                return
            self._icmp_error_input(a, t, m[1], now)
            return
        st.rx_other += 1

    def _echo_reply(self, a: Accepted, now: float) -> None:
        """Echo reply through the general output path (routing, ARP queueing, fragmentation)."""
        body = bytearray(a.payload)
        body[0] = 0
        _U16.pack_into(body, 2, _echo_reply_checksum(_U16.unpack_from(body, 2)[0]))
        self.icmp_stats.tx_echo_replies += 1
        try:
            self.send(a.src, 1, (body,), now)
        except (NoRouteError, MessageTooLongError):
            self.icmp_stats.tx_echo_replies -= 1

    def _fast_echo(self, frame: memoryview, total: int, src: int, now: float) -> bool:
        """Echo reply for a plain unicast request whose next hop is already resolved: one copy of the
        request, fields patched in place, checksums updated arithmetically. False = take the general path."""
        end = 14 + total
        if self._verify:
            x = _from(frame[34:end], "big")
            if total & 1:
                x <<= 8
            if x % 0xFFFF or not x:
                return False
        if self.pmtu:  # a lowered path MTU may call for fragments: general path
            return False
        nh = src if (src & self.mask) == self.net else (
            self.config.gateways[0] if self.config.gateways else 0)
        e = self.arp.entries.get(nh)
        if e is None or e.mac is None or (e.expires <= now and e.state != 2):
            return False
        e.used = True
        self.ip_stats.rx_delivered += 1
        ist = self.icmp_stats
        ist.rx_messages += 1
        ist.rx_echo_requests += 1
        ist.tx_echo_replies += 1
        out = bytearray(frame[:end])
        if end < 60:
            out += _PAD[:60 - end]
        out[0:6] = e.mac
        out[6:12] = self.mac
        ident = self.next_ident(src)
        ttl = self.config.ttl
        addr = self.addr
        # IPv4 header checksum from its words directly: no pass over the bytes.
        c = 0x4500 + total + ident + (ttl << 8 | 1) + (addr >> 16) + (addr & 0xFFFF) + (src >> 16) + (src & 0xFFFF)
        c = (c & 0xFFFF) + (c >> 16)
        c = (c & 0xFFFF) + (c >> 16)
        _HDR.pack_into(out, 14, 0x45, 0, total, ident, 0, ttl, 1, ~c & 0xFFFF, addr, src)
        out[34] = 0
        _U16.pack_into(out, 36, _echo_reply_checksum(_U16.unpack_from(frame, 36)[0]))
        self.eth_stats.tx_frames += 1
        self.ip_stats.tx_packets += 1
        self.tx.append((out,))
        return True

    def _icmp_error_input(self, a: Accepted, t: int, code: int, now: float) -> None:
        st = self.icmp_stats
        m = a.payload
        if t == 3:
            st.rx_dest_unreachable += 1
        elif t == 11:
            st.rx_time_exceeded += 1
        else:
            st.rx_param_problem += 1
        q = m[8:]
        # The quote: an IPv4 header of ours plus at least 8 bytes of its payload.
        if len(q) < 28 or q[0] >> 4 != 4 or (q[0] & 15) < 5 or len(q) < ((q[0] & 15) << 2) + 8:
            st.rx_error_bad_quote += 1
            return
        qsrc = _from(q[12:16], "big")
        if qsrc != self.addr:
            st.rx_error_bad_quote += 1
            return
        rest = _ICMP_HDR.unpack_from(m, 0)[3]
        if t == 3 and code == 4:
            st.rx_frag_needed += 1
            self._update_pmtu(_from(q[16:20], "big"), rest & 0xFFFF, _U16.unpack_from(q, 2)[0],
                              now)
        # A non-initial fragment carries no transport header: nothing to demultiplex on.
        h = self.error_handlers.get(q[9]) if not _U16.unpack_from(q, 6)[0] & 0x1FFF else None
        if h is not None:
            h(t, code, rest, q, now)

    def _update_pmtu(self, dst: int, mtu: int, quoted_len: int, now: float) -> None:
        if mtu == 0:  # RFC 1191 section 5: an old router; guess from the plateau table
            mtu = next((p for p in (32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68)
                        if p < quoted_len), 68)
        # Linux's min_pmtu (552, RFC 5927): a forged "fragmentation needed" can't shrink us to 68-byte
        # fragments; a link MTU below it stays the limit.
        mtu = min(max(self.config.min_pmtu, mtu), self.config.mtu)
        if mtu >= self.path_mtu(dst, now):
            return  # RFC 1191 6.1: a Datagram Too Big never raises the estimate (Linux ignores it)
        self.pmtu[dst] = (mtu, now + self.config.pmtu_expiry)
        self.pmtu.move_to_end(dst)
        if len(self.pmtu) > self.config.pmtu_table_size:
            self.pmtu.popitem(last=False)

    def path_mtu(self, dst: int, now: float | None = None) -> int:
        e = self.pmtu.get(dst)
        if e is None:
            return self.config.mtu
        if now is not None and now >= e[1]:
            del self.pmtu[dst]
            return self.config.mtu
        return e[0]

    def send_icmp_error(self, a: Accepted, t: int, code: int, rest: int, now: float) -> bool:
        """An ICMP error about `a` (RFC 1122 3.2.2 rules, rate limited like Linux). True if sent."""
        st = self.icmp_stats
        pkt = a.packet
        hl = (pkt[0] & 15) << 2
        src = a.src
        if a.broadcast or (_U16.unpack_from(pkt, 6)[0] & 0x1FFF) or not src or src == self.bcast \
                or src >> 28 >= 0xE or src >> 24 == 127 or src >> 24 == 0:
            st.tx_suppressed += 1
            return False
        if a.proto == 1 and len(pkt) > hl and (pkt[hl] in ICMP_ERROR_TYPES or pkt[hl] > 18):
            st.tx_suppressed += 1
            return False
        if not self.icmp_limiter.allow(src, now):
            st.tx_rate_limited += 1
            return False
        quote = bytes(pkt[: hl + 8])
        body = bytearray(8 + len(quote))
        _ICMP_HDR.pack_into(body, 0, t, code, 0, rest)
        body[8:] = quote
        _U16.pack_into(body, 2, ck.checksum(body))
        try:
            self.send(src, 1, (body,), now)
        except (NoRouteError, MessageTooLongError):
            return False
        if t == 3:
            st.tx_dest_unreachable += 1
        elif t == 11:
            st.tx_time_exceeded += 1
        return True

    def send_time_exceeded(self, quote: bytes, now: float) -> bool:
        """ICMP time exceeded (code 1: reassembly) quoting an expired datagram's first fragment."""
        mv = memoryview(quote)
        if len(mv) < 20:
            return False
        src = _from(mv[12:16], "big")
        hl = (mv[0] & 15) << 2
        # The quote's offset-0 header has MF set but no offset, so the fragment rule lets it through.
        a = Accepted(src, _from(mv[16:20], "big"), mv[9], mv[hl:], mv,
                     _from(mv[16:20], "big") != self.addr)
        return self.send_icmp_error(a, 11, 1, 0, now)

    def send_echo(self, dst: int, ident: int, seq: int, data: Buffer, now: float,
                  *, dont_frag: bool = False) -> int:
        hdr = bytearray(8)
        _ICMP_HDR.pack_into(hdr, 0, 8, 0, 0, (ident << 16) | seq)
        _U16.pack_into(hdr, 2, ck.checksum_parts((hdr, data)))
        self.icmp_stats.tx_echo_requests += 1
        return self.send(dst, 1, (hdr, data), now, dont_frag=dont_frag)

    # -- routing and output ----------------------------------------------------------------------
    def next_hop(self, dst: int) -> int | bytes:
        """The IP of the next hop to ARP for, or directly the destination MAC (broadcast/multicast;
        our own MAC for our own address, which is looped back)."""
        if dst == self.addr and dst:
            return self.mac
        if dst == 0xFFFFFFFF or dst == self.bcast:
            return _BCAST
        if dst >> 28 == 0xE:
            return b"\x01\x00\x5e" + (dst & 0x7FFFFF).to_bytes(3, "big")
        if (dst & self.mask) == self.net:
            return dst
        for gw in self.config.gateways:
            return gw
        self.ip_stats.tx_no_route += 1
        raise NoRouteError(f"no route to {ip_str(dst)}: off-link and no gateway")

    def next_ident(self, dst: int) -> int:
        """Per-destination IP ident counter with an unpredictable start (RFC 6864, RFC 7739)."""
        ids = self._idents
        v = ids.get(dst)
        if v is None:
            v = self.rng.getrandbits(16)
            if len(ids) >= self.config.ident_table_size:
                del ids[next(iter(ids))]
        v = (v + 1) & 0xFFFF
        ids[dst] = v
        return v

    def _ip_header_into(self, buf: bytearray | memoryview, off: int, dst: int, proto: int,
                        total: int, ff: int, ttl: int | None = None) -> None:
        ident = self.next_ident(dst)
        t = self.config.ttl if ttl is None else ttl
        a = self.addr
        # The header checksum from the fields' words: no second pass over the packed bytes.
        c = (0x4500 + total + ident + ff + (t << 8 | proto) + (a >> 16) + (a & 0xFFFF) + (dst >> 16)
             + (dst & 0xFFFF))
        c = (c & 0xFFFF) + (c >> 16)
        c = (c & 0xFFFF) + (c >> 16)
        _HDR.pack_into(buf, off, 0x45, 0, total, ident, ff, t, proto, ~c & 0xFFFF, a, dst)

    def send(self, dst: int, proto: int, parts: Sequence[Buffer], now: float, *,
             ttl: int | None = None, dont_frag: bool = False,
             on_fail: Callable[[int], None] | None = None) -> int:
        """Build the IPv4 header for `parts` and send (SENT), or queue behind ARP (PENDING).

        Raises NoRouteError, WouldFragmentError (DF and too big), MessageTooLongError (> 65535)."""
        size = 0
        for p in parts:
            size += len(p)
        total = 20 + size
        if total > 0xFFFF:
            self.ip_stats.tx_too_long += 1
            raise MessageTooLongError(f"IPv4 datagram of {total} bytes exceeds 65535")
        nh = self.next_hop(dst)
        hdr = bytearray(20)
        self._ip_header_into(hdr, 0, dst, proto, total, 0x4000 if dont_frag else 0, ttl)
        if (total <= self.config.mtu and not self.pmtu and total >= 46 and type(nh) is int
                and dst != self.addr):
            # Common case: one frame to a resolved neighbour.
            e = self.arp.entries.get(nh)
            if e is not None and e.mac is not None and (e.state == 2 or e.expires > now):
                e.used = True
                self.ip_stats.tx_packets += 1
                self.eth_stats.tx_frames += 1
                self.tx.append((e.mac + self.mac + _ETH_IPV4, hdr, *parts))
                return SENT
        return self.send_packet(dst, nh, hdr, parts, total, now, on_fail=on_fail)

    def send_packet(self, dst: int, nh: int | bytes, hdr: bytearray | memoryview,
                    parts: Sequence[Buffer], total: int, now: float, *,
                    on_fail: Callable[[int], None] | None = None) -> int:
        """Send a datagram whose header `hdr` is complete (length, ident, checksum): fragments it when it
        exceeds the path MTU, then resolves the next hop `nh`."""
        if dst == self.addr and dst:
            self._loop_back((hdr, *parts))
            return SENT
        mtu = self.path_mtu(dst, now) if self.pmtu else self.config.mtu
        if total > mtu:
            if hdr[6] & 0x40:
                self.ip_stats.tx_would_fragment += 1
                raise WouldFragmentError(f"{total}-byte datagram with DF set exceeds MTU {mtu}")
            frames = self._fragment_out(hdr, parts, mtu)
        else:
            frames = [(hdr, *parts)]
        self.ip_stats.tx_packets += 1
        if isinstance(nh, bytes):
            mac = nh
        else:
            known = self.arp.lookup(nh, now)
            if known is None:
                self.ip_stats.tx_arp_pending += 1
                for f in frames:
                    # Waiting frames are copied: the caller may reuse its buffers as soon as we return
                    # (asyncio's transports copy what they buffer too). Sent-now frames stay zero-copy.
                    self.arp.resolve(nh, tuple(p if type(p) is bytes else bytes(p) for p in f), now, on_fail)
                return PENDING
            mac = known
        eth = mac + self.mac + _ETH_IPV4
        for f in frames:
            self._emit((eth, *f))
        return SENT

    def send_prebuilt(self, frame: memoryview, parts: Sequence[Buffer], now: float) -> int:
        """Finish and send a frame from `allocate_frame`: Ethernet header with the next hop's MAC, an
        IPv4 header at 14 (no options), maybe a transport header, then `parts`. Fills total length,
        ident and checksum; fragments when it exceeds the path MTU."""
        n = len(frame)
        if n < 34:
            raise ValueError("frame is shorter than the Ethernet and IPv4 headers")
        size = n - 14
        for p in parts:
            size += len(p)
        if size > 0xFFFF:
            self.ip_stats.tx_too_long += 1
            raise MessageTooLongError(f"IPv4 datagram of {size} bytes exceeds 65535")
        dst = _U32.unpack_from(frame, 30)[0]
        ident = self.next_ident(dst)
        _LEN_ID.pack_into(frame, 16, size, ident)
        frame[24] = frame[25] = 0
        c = _from(frame[14:34], "big") % 0xFFFF
        _U16.pack_into(frame, 24, ~c & 0xFFFF if c else 0)
        if dst == self.addr and dst:
            self._loop_back((frame[14:], *parts))
            return SENT
        if size > self.config.mtu or (self.pmtu and size > self.path_mtu(dst, now)):
            return self.send_packet(dst, frame[0:6].tobytes(), frame[14:34], (frame[34:], *parts), size, now)
        self.ip_stats.tx_packets += 1
        self.eth_stats.tx_frames += 1
        if size < 46:
            self.tx.append((frame, *parts, _PAD[: 46 - size]))
        else:
            self.tx.append((frame, *parts))
        return SENT

    def _loop_back(self, parts: Sequence[Buffer]) -> None:
        """A datagram to our own address never reaches the wire (Linux routes it via lo)."""
        self.ip_stats.tx_packets += 1
        self.loopback.append(b"".join(parts))

    def loopback_input(self, now: float) -> None:
        """Deliver the datagrams we sent to ourselves (the driver calls this on a later turn)."""
        q, self.loopback = self.loopback, []
        for pkt in q:
            mv = memoryview(pkt)
            hl = (pkt[0] & 15) << 2
            self.ip_stats.rx_loopback += 1
            self.dispatch(Accepted(self.addr, self.addr, pkt[9], mv[hl:], mv, False), now)

    def _fragment_out(self, hdr: bytearray | memoryview, parts: Sequence[Buffer],
                      mtu: int) -> list[Frame]:
        frags = fragment(hdr, parts, mtu)
        self.ip_stats.tx_fragments += len(frags)
        return frags  # type: ignore[return-value]

    # -- timers --------------------------------------------------------------------------------
    def poll_at(self) -> float | None:
        a = self.arp.poll_at()
        r = self.reassembler
        if r is not None:
            b = r.poll_at()
            if b is not None and (a is None or b < a):
                a = b
        for poll, _handle in self.timer_sources:
            b = poll()
            if b is not None and (a is None or b < a):
                a = b
        return a

    def handle_timeout(self, now: float) -> None:
        self.arp.handle_timeout(now)
        r = self.reassembler
        if r is not None:
            for quote in r.expire(now):
                self.ip_stats.reassembly_timeouts += 1
                self.send_time_exceeded(quote, now)
        for _poll, handle in self.timer_sources:
            handle(now)


def _echo_reply_checksum(request_checksum: int) -> int:
    """The ICMP checksum once type 8 (echo request) becomes 0 (reply): RFC 1624 eqn 3,
    HC' = ~(~HC + ~m + m') with m = 0x0800, m' = 0. Never 0x0000: eqn 3 gives 0 for an all-zero reply
    (id, seq and data 0), whose only valid checksum is 0xFFFF; for any other message both forms verify."""
    c = (~request_checksum & 0xFFFF) + 0xF7FF
    c = (c & 0xFFFF) + (c >> 16)
    return (~c & 0xFFFF) or 0xFFFF

