"""Host: the sans-I/O IPv4-over-Ethernet host composing Ethernet, ARP, IPv4, routing and ICMP, with the
protocol registry, timer sources and the one output path.

The surface a driver uses: `receive(frame, now)`; `poll_transmit()` -> the frames queued since the last
call (each a sequence of buffers, ready for `os.writev`); `poll_at()` -> when `handle_timeout(now)` is next
due (None: never); datagrams to our own address wait in `loopback` for `loopback_input(now)` on a later turn.
With `answer_direct` set, `receive` returns a fast-path echo's reply (its input's only output) unqueued.

Hooks for upper layers (UDP today, TCP next); every callable is synchronous and `now` is always an argument:
- `register(proto, on_input, on_error=None)`: the protocol registry, the only place protocol numbers meet
  handlers. `on_input(src, dst, payload, packet, now, broadcast)` gets each accepted datagram (addresses as
  ints; `payload`/`packet` are views valid during the call only, or bytes for a protocol registered with
  `takes_bytes` when the device read the frame into bytes; `broadcast`: sent to a broadcast or
  multicast address); `on_error(icmp_type, code, rest, quote, now)` gets each ICMP error quoting one of our
  datagrams of that protocol (`rest`: the ICMP header's second word; `quote`: the quoted IPv4 header and
  at least 8 bytes after it). No handler: ICMP protocol unreachable.
- `set_answerer(proto, answer)`: `answer(buf, off, now, csum_ok)` is tried for each datagram of `proto`
  that passes the fast path's checks, before its handler (the frame at `off` in `buf`: 0 here), and by
  `core.echo` first on the frame as a device read it (a framing header before it): so it answers only a
  plain unicast datagram the fast path takes, making the checks itself (`core.echo.plain_unicast`, or spelled
  out: UDP's echo service, from one unpack); the copy of `buf` it returns, the reply at `off`, is the
  datagram's only output (counted by the answerer); None, with nothing changed, hands it on.
- `add_timer_source(poll_at, handle_timeout)`: `poll_at() -> float | None` is folded into the host's
  `poll_at()`, and `handle_timeout(now)` is called on every host `handle_timeout(now)` (it must do nothing
  when nothing is due). A source whose deadline moves *earlier* calls `timers_changed()` so the driver
  re-reads `poll_at()` after the batch (a deadline moving later needs nothing).
- `send(dst, proto, parts, now, *, ttl=None, dont_frag=False, on_fail=None) -> SENT | PENDING`: the one
  output path (IPv4 header, routing, ARP queueing, fragmentation). `parts` are sent zero-copy when the
  next hop is resolved (a fresh `Path`: one frame, no dict walk beyond the path cache); a datagram that
  must wait for ARP is copied. A transport keeping per-flow header templates holds `routing.path(dst,
  now)` and re-checks `path.fresh(now)` per segment.
- `set_echo_handler(cb)`: `cb(src, ident, seq, data, now)` for each echo reply.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable, Sequence

from tcpip.core import burst, offload
from tcpip.core.arp import ArpCache
from tcpip.core.config import InterfaceConfig
from tcpip.core.ethernet import ETHERTYPE_IPV4, Ethernet, Frame
from tcpip.core.host_setup import HostSetup
from tcpip.core.host_views import HostViews
from tcpip.core.icmp import UNICAST_SRC, ErrorHandler, Icmp
from tcpip.core.ipv4 import SENT, Accepted, IdentAllocator, Ipv4Input, Ipv4Output, header_into
from tcpip.core.reassembly import Reassembler
from tcpip.core.routing import Routing
from tcpip.core.stats import ArpStats, EthernetStats, FastPaths, IcmpStats, Ipv4Stats, linked
from tcpip.errors import MessageTooLongError
from tcpip.wire import checksum as ck
from tcpip.wire.mac import MacAddress

Buffer = bytes | bytearray | memoryview
# (src, dst, payload, ip packet, now, broadcast) -> None; addresses as ints on the hot path
InputHandler = Callable[[int, int, memoryview, memoryview, float, bool], None]
# The same plus `csum_ok`: the device vouches for the L4 checksum (offload mode), skip verifying it
TrustedHandler = Callable[[int, int, memoryview, memoryview, float, bool, bool], None]
# (buffer, offset of the Ethernet frame in it, now, csum_ok) -> the reply (the buffer's copy, the frame at the
# same offset: the input's only output) or None; it makes the fast path's checks (core.echo.plain_unicast)
Answerer = Callable[[memoryview | bytes, int, float, int], bytearray | None]
TimerSource = tuple[Callable[[], float | None], Callable[[float], None]]

# Ethernet dst, src's first byte, then of the IPv4 header: type+version/IHL+TOS as one word, total length,
# flags+fragment offset, protocol, source, destination (ident, TTL and checksum skipped: unused here)
_FAST = struct.Struct("!6sB5xIH2xHxB2xII")
_from = int.from_bytes
_U16 = struct.Struct("!H")
_IPV4 = struct.Struct("!BBHHHHHII")  # version/IHL, TOS, length, ident, flags+fragment, TTL+protocol, checksum, src, dst


class Host(HostSetup, HostViews):
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
        self.tx: list[Frame] = []  # never replaced: the layers append to this very list
        self.loopback: list[bytes] = []
        self.timers_dirty = False  # poll_at() may have moved earlier (ARP sets none: the driver reads pending)
        self.answer_direct = False  # receive returns the fast echo's reply, unqueued (set by Runner.attach)
        self.fast = FastPaths()  # the fast paths' one count each; the layer stats' readers add them in
        self.eth_stats = linked(EthernetStats, self.fast)
        self.ip_stats = linked(Ipv4Stats, self.fast)
        self.icmp_stats = linked(IcmpStats, self.fast)
        self.protocols: dict[int, InputHandler] = {}  # the registry: read once per frame on the fast path
        self.trusted: dict[int, TrustedHandler] = {}  # handlers told when the device vouches for the checksum
        self.takes_bytes: set[int] = set()  # protocols whose handlers take bytes too (register)
        self.answerers: dict[int, Answerer] = {}  # fast answers tried before the handler (set_answerer)
        self.fast_answers: dict[int, Answerer] = {}  # by protocol, ICMP's echo too: what core.echo offers a device
        self.error_handlers: dict[int, ErrorHandler] = {}
        self.timer_sources: list[TimerSource] = []
        self.ipv6_handler: Callable[[memoryview], None] | None = None
        self.groups: set[int] = {0xE0000001}  # joined multicast groups; 224.0.0.1 always
        self.max_frame = 14 + config.mtu
        self.tso_max = 0  # set_offload(): the device takes TCP super-frames up to this IPv4 length
        self.offload_input: offload.OffloadInput | None = None  # TCP input for receive_offloaded
        self._verify = config.verify_checksums
        self.eth = Ethernet(config.mac.packed, self.max_frame, self.eth_stats, self.tx, self._arp_input)
        self.arp = ArpCache(ArpStats(), self.eth.emit, size=config.arp_cache_size,
                            tries=config.arp_tries, interval=config.arp_interval,
                            reachable=config.arp_reachable, queue_len=config.arp_queue_len,
                            queue_bytes=config.arp_queue_bytes, locktime=config.arp_locktime,
                            defend_interval=config.arp_defend_interval)
        self.routing = Routing(self.arp, self.ip_stats, mtu=config.mtu, min_pmtu=config.min_pmtu,
                               pmtu_expiry=config.pmtu_expiry, pmtu_table_size=config.pmtu_table_size)
        self.idents = IdentAllocator(rng, config.ident_table_size)
        self.reassembler: Reassembler | None = Reassembler(config.reassembly) if config.reassemble else None
        self.ipv4 = Ipv4Input(self.routing, self.ip_stats, self.groups, self.reassembler, self.timers_changed,
                              verify=config.verify_checksums)
        self.output = Ipv4Output(config, self.routing, self.idents, self.arp, self.eth, self.ip_stats,
                                 self.loopback)
        self.icmp = Icmp(config, self.routing, self.idents, self.send, self.error_handlers, self.tx,
                         self.icmp_stats, self.ip_stats, self.eth_stats, now)
        self.icmp.send_packet = self.output.send_packet
        self.icmp.host = self  # fast_echo reads the fast path's mirrors (set_mac, _apply_address keep them)
        self._fast_echo = self.fast_answers[1] = self.icmp.fast_echo  # bound once: receive calls it per ping
        self.ipv4.param_problem = lambda a, ptr, now: self.icmp.send_error(a, 12, 0, ptr << 24, now)
        self.set_mac(config.mac.packed)
        self._apply_address()
        self.register(1, self._icmp_input)

    # -- hooks for upper layers ----------------------------------------------------------------
    def register(self, proto: int, on_input: InputHandler, on_error: ErrorHandler | None = None,
                 trusted: TrustedHandler | None = None, *, takes_bytes: bool = False) -> None:
        """Deliver protocol `proto`'s datagrams to `on_input` and ICMP errors about it to `on_error`; those
        whose device vouches for the L4 checksum (offload mode) to `trusted(..., broadcast, True)`.
        `takes_bytes`: they take `bytes` too (no view made of a frame read into bytes: issue 10)."""
        self.unregister(proto)
        self.protocols[proto] = on_input
        if on_error is not None:
            self.error_handlers[proto] = on_error
        if trusted is not None:
            self.trusted[proto] = trusted
        if takes_bytes:
            self.takes_bytes.add(proto)

    def unregister(self, proto: int) -> None:
        self.protocols.pop(proto, None)
        self.takes_bytes.discard(proto)
        self.trusted.pop(proto, None)
        self.error_handlers.pop(proto, None)

    def add_timer_source(self, poll_at: Callable[[], float | None],
                         handle_timeout: Callable[[float], None]) -> None:
        """Fold an upper layer's timers into `poll_at()` / `handle_timeout(now)`."""
        self.timer_sources.append((poll_at, handle_timeout))
        self.timers_dirty = True

    def timers_changed(self) -> None:
        """A deadline may have moved earlier: the driver re-reads `poll_at()` after this batch."""
        self.timers_dirty = True

    # -- offloads (core/offload.py) -------------------------------------------------------------
    def set_offload(self, tso_max: int = 65535) -> None:
        """The device segments TCP super-frames (up to `tso_max` bytes of IPv4 datagram; 0: no TSO)."""
        self.tso_max = min(tso_max, 0xFFFF)

    def send_gso(self, src: int, dst: int, parts: Sequence[Buffer], thl: int, mss: int, now: float) -> None:
        """A TCP super-segment (partial checksum) as one frame for the device to cut (see set_offload)."""
        offload.send_gso(self, src, dst, parts, thl, mss, now)

    def poll_transmit(self) -> list[Frame]:
        """The frames queued since the last call, oldest first (each a sequence of buffers)."""
        out = self.tx.copy()
        self.tx.clear()
        return out

    # -- input ---------------------------------------------------------------------------------
    def receive(self, frame: memoryview | bytes, now: float, csum_ok: bool = False,  # noqa: PLR0911 - flat
                gso_size: int = 0) -> bytearray | None:
        """One Ethernet frame in: ARP and ICMP answered here, other protocols to their handlers.

        The common case (unicast IPv4 to our MAC and address, no options, not a fragment) is checked in
        one struct unpack and one checksum; everything else takes the general path, which applies the
        same rules one by one with a counter each. Offload mode: `csum_ok`, the device vouches for the L4
        checksum (the protocol's `trusted` handler skips verifying it); `gso_size`, a TCP super-frame of
        segments that size (`core.offload.receive_offloaded`). `frame` may be the `bytes` a device read: the
        fast path and `takes_bytes` protocols use it as it is (cheaper than a view); the rest take a view."""
        if (csum_ok or gso_size) and (gso_size or (len(frame) > 23 and frame[23] == 6)):  # a runt: general path
            offload.receive_offloaded(self, frame if isinstance(frame, memoryview) else memoryview(frame), now,
                                      csum_ok, gso_size)
            return None
        try:
            # An echo request: Icmp.fast_echo makes this path's checks itself (as for core.echo, which calls
            # it the same way), so an echo is not checked twice
            if frame[23] == 1 and (out := self._fast_echo(frame, 0, now)) is not None:
                return self._answered(out)
            dmac, smac0, etv, total, ff, proto, src, dst = _FAST.unpack_from(frame, 0)
        except (struct.error, IndexError):
            self._receive_general(frame, now)
            return None
        n = len(frame)
        # `_fast_dst` is our address, or -1 while we have none; IPv4 with a 20-byte header (any TOS); then
        # the unicast host source ranges, except our address and the subnet broadcast (`_fast_martians`).
        if (dst != self._fast_dst or dmac != self.mac or etv >> 8 != 0x080045 or ff & 0x3FFF
                or total + 14 > n or total < 20 or n > self.max_frame or not UNICAST_SRC[src >> 24]
                or src in self._fast_martians or smac0 & 1):
            self._receive_general(frame, now, csum_ok and not ff & 0x3FFF)  # a fragment: verified whole
            return None
        # ck.verify spelled out (the only place): on this path a call costs 4% of the frame.
        if self._verify and ((x := _from(frame[14:34], "big")) % 0xFFFF or not x):
            self._receive_general(frame, now)
            return None
        # An answerer (the UDP echo service) makes these checks again: a call per datagram of its protocol
        # (core.echo, a TAP's path, calls it first); tried before the handler
        if (ans := self.answerers) and (a := ans.get(proto)) is not None and (
                out := a(frame, 0, now, csum_ok)) is not None:
            return self._answered(out)
        if not isinstance(frame, memoryview) and proto not in self.takes_bytes:
            frame = memoryview(frame)  # the protocols keep views of their payload (takes_bytes: see register)
        if csum_ok and (t := self.trusted.get(proto)) is not None:
            self.fast.delivered += 1  # Ethernet rx_frames, IPv4 rx_packets and rx_delivered (stats.FAST_ADDS)
            t(src, dst, frame[34:14 + total], frame[14:14 + total], now, False, True)  # type: ignore[arg-type]
        elif (h := self.protocols.get(proto)) is not None:
            self.fast.delivered += 1
            h(src, dst, frame[34:14 + total], frame[14:14 + total], now, False)  # type: ignore[arg-type]
        else:
            self.eth_stats.rx_frames += 1
            self.ip_stats.rx_packets += 1
            mv = memoryview(frame)
            self.dispatch(Accepted(src, dst, proto, mv[34:14 + total], mv[14:14 + total], False), now)
        return None

    receive_offloaded = receive  # the name offloading drivers call (Runner.on_frame_offloaded)

    def _answered(self, out: bytearray) -> bytearray | None:
        """A fast answer (counted as a whole, FastPaths): handed back to the driver, or queued."""
        if self.answer_direct:
            return out
        self.tx.append((out,))
        return None

    def _receive_general(self, frame: memoryview | bytes, now: float, csum_ok: bool = False) -> None:
        if not isinstance(frame, memoryview):
            frame = memoryview(frame)
        r = self.eth.demux(frame, now)
        if r is None:
            return
        if r[0] == ETHERTYPE_IPV4:
            a = self.ipv4.accept(r[1], now, r[2])
            if a is not None:
                self.dispatch(a, now, csum_ok)
        elif self.ipv6_handler is not None:
            self.eth_stats.rx_ipv6 += 1
            self.ipv6_handler(r[1])
        else:
            self.eth_stats.rx_ipv6_no_handler += 1

    def _arp_input(self, pkt: memoryview, now: float) -> None:
        self.arp.input(pkt, now)

    def dispatch(self, a: Accepted, now: float, csum_ok: bool = False) -> None:
        """Hand an accepted datagram to the registered handler of its protocol (`csum_ok`: see `receive`)."""
        self.ip_stats.rx_delivered += 1
        t = self.trusted.get(a.proto) if csum_ok else None
        if t is not None:
            t(a.src, a.dst, a.payload, a.packet, now, a.broadcast, True)
            return
        h = self.protocols.get(a.proto)
        if h is None:
            self.ip_stats.rx_unknown_protocol += 1
            self.icmp.send_error(a, 3, 2, 0, now)
            return
        h(a.src, a.dst, a.payload, a.packet, now, a.broadcast)

    def _icmp_input(self, src: int, dst: int, payload: memoryview, packet: memoryview, now: float,
                    broadcast: bool) -> None:
        self.icmp.input(Accepted(src, dst, 1, payload, packet, broadcast), now)

    # -- output --------------------------------------------------------------------------------
    def send(self, dst: int, proto: int, parts: Sequence[Buffer], now: float, *,
             ttl: int | None = None, dont_frag: bool = False,
             on_fail: Callable[[int], None] | None = None, src: int | None = None, tos: int = 0) -> int:
        """Build the IPv4 header for `parts` and send (SENT), or queue behind ARP (PENDING). `src`: the
        source address when not ours (DHCP: 0.0.0.0 before a lease, RFC 1122 3.2.1.3, or the address
        being released). `tos`: the TOS/DSCP+ECN byte (ping -Q).

        Raises NoRouteError, WouldFragmentError (DF and too big), MessageTooLongError (> 65535)."""
        size = 0
        for p in parts:
            size += len(p)
        total = 20 + size
        if total > 0xFFFF:
            self.ip_stats.tx_too_long += 1
            raise MessageTooLongError(f"IPv4 datagram of {total} bytes exceeds 65535")
        path = self.routing.path(dst, now)
        if path is not None and total <= self.config.mtu and total >= 46 and not self.routing.pmtu and not tos:
            # Common case: one frame to a resolved neighbour; the header packed once, its checksum summed
            # from the fields' words (ipv4_header_checksum, inlined: this runs per TCP segment).
            a = path.src if src is None else src
            ident = self.idents.next(dst)
            ff = 0x4000 if dont_frag else 0
            t = (self.config.ttl if ttl is None else ttl) << 8 | proto
            x = 0x4500 + total + ident + ff + t + (a >> 16) + (a & 0xFFFF) + (dst >> 16) + (dst & 0xFFFF)
            self.ip_stats.tx_packets += 1
            self.eth_stats.tx_frames += 1
            self.tx.append((path.eth, _IPV4.pack(0x45, 0, total, ident, ff, t, 0xFFFE - (x - 1) % 0xFFFF, a, dst),
                            *parts))
            return SENT
        hdr = bytearray(20)
        nh = self.routing.next_hop(dst)
        a = (self.routing.source(dst) if self.routing.extra else self.addr) if src is None else src
        header_into(hdr, 0, a, dst, proto, total, self.idents.next(dst), 0x4000 if dont_frag else 0,
                    self.config.ttl if ttl is None else ttl)
        if tos:  # rare (ping -Q): header_into's field-sum checksum assumes TOS 0
            hdr[1] = tos
            hdr[10] = hdr[11] = 0
            _U16.pack_into(hdr, 10, ck.checksum(hdr))
        return self.output.send_packet(dst, nh, hdr, parts, total, now, on_fail=on_fail)

    # `send` of several (header, payload) datagrams to one destination in one call; False: nothing sent, the
    # caller sends them one by one. core/burst.py's function itself (no forwarding frame: it runs per ACK)
    send_run = burst.send_run

    def loopback_input(self, now: float) -> None:
        """Deliver the datagrams we sent to ourselves (the driver calls this on a later turn)."""
        q = self.loopback.copy()
        self.loopback.clear()
        for pkt in q:
            mv = memoryview(pkt)
            hl = (pkt[0] & 15) << 2
            self.ip_stats.rx_loopback += 1
            self.dispatch(Accepted(self.addr, self.addr, pkt[9], mv[hl:], mv, False), now)

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
                self.icmp.send_time_exceeded(quote, now)
        for _poll, handle in self.timer_sources:
            handle(now)
