"""ICMPv4 (RFC 792, RFC 1122 3.2.2): echo replies (a zero-copy fast path when the sender is resolved),
errors received (routed to the quoted protocol, path MTU updates) and sent (rate limited like Linux)."""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Protocol

from tcpip.core.config import InterfaceConfig
from tcpip.core.ethernet import PAD
from tcpip.core.ipopts import echo_options
from tcpip.core.ipv4 import Accepted, IdentAllocator
from tcpip.core.ratelimit import PeerLimiter
from tcpip.core.routing import Routing
from tcpip.core.stats import EthernetStats, FastPaths, IcmpStats, Ipv4Stats, fast_of
from tcpip.errors import MessageTooLongError, NoRouteError
from tcpip.wire import checksum as ck
from tcpip.wire.virtio import ZERO as ZERO_VNET

Buffer = bytes | bytearray | memoryview
Frame = Sequence[Buffer]
# (icmp type, code, rest-of-header, quoted datagram, now) -> None
ErrorHandler = Callable[[int, int, int, memoryview, float], None]
# (src, ident, seq, data, now) -> None: an echo reply
EchoHandler = Callable[[int, int, int, memoryview, float], None]
# the host's output path: (dst, proto, parts, now) -> SENT/PENDING
Send = Callable[[int, int, Sequence[Buffer], float], int]
# a datagram with its header complete: (dst, next hop, header, parts, total, now) -> SENT/PENDING
SendPacket = Callable[[int, "int | bytes", bytearray, Sequence[Buffer], int, float], int]
QUOTE_LIMIT = 576  # an ICMP error is at most this long (RFC 1812 4.3.2.3; Linux icmp_send)

_HDR = struct.Struct("!BBHI")
_IP = struct.Struct("!BBHHHBBHII")
# An echo reply's headers: Ethernet, IPv4 (no options, TOS 0, flags and fragment offset 0), then ICMP type
# and code as one word, and the checksum
_ECHO_REPLY = struct.Struct("!14sHHH2xBBHIIHH")
# What fast_echo reads of a request: Ethernet dst, src's first byte, then type+version/IHL+TOS as one word,
# total length, flags+fragment offset, source, destination, and the ICMP type, code and checksum
_REQUEST = struct.Struct("!6sB5xIH2xH4xIIBBH")
# First octet of a source address the fast paths take: not 0/8, 127/8, 224/4 or 240/4 (RFC 1122 3.2.1.3)
UNICAST_SRC = bytes(0 < i < 224 and i != 127 for i in range(256))
_U16 = struct.Struct("!H")
_from = int.from_bytes
ERROR_TYPES = frozenset({3, 4, 5, 11, 12})
_ECHO_TYPES = frozenset({0, 8})


class FastMirrors(Protocol):
    """What fast_echo reads of its host (a Host is one): our MAC, our address (-1: none), the largest frame
    taken and the sources refused (our address, the subnet broadcast)."""

    mac: bytes
    _fast_dst: int
    max_frame: int
    _fast_martians: frozenset[int]


class _NoHost:
    """An Icmp on no host (as some tests build one): fast_echo matches nothing."""

    mac = b""
    _fast_dst = -1
    max_frame = 0
    _fast_martians: frozenset[int] = frozenset()


_NO_HOST = _NoHost()


class Icmp:
    """ICMP of one host. `error_handlers` is the host's registry of protocol -> ICMP error handler."""

    def __init__(self, config: InterfaceConfig, routing: Routing, idents: IdentAllocator, send: Send,
                 error_handlers: dict[int, ErrorHandler], tx: list[Frame], stats: IcmpStats,
                 ip_stats: Ipv4Stats, eth_stats: EthernetStats, now: float) -> None:
        self.config = config
        self.routing = routing
        self.idents = idents
        self._ident_table = idents.idents  # fast_echo's inlined IdentAllocator.next (the dict is never replaced)
        self._paths = routing.paths  # and its inlined Routing.path (never replaced either)
        self._arp = routing.arp
        self.send = send
        self.error_handlers = error_handlers
        self.tx = tx
        self.stats = stats
        self.ip_stats = ip_stats
        self.eth_stats = eth_stats
        # fast_echo's one count: the host's, which the readers of these three counters objects add in
        self.fast = fast_of(stats) or FastPaths()
        self.verify = config.verify_checksums
        self.host: FastMirrors = _NO_HOST  # the host's fast-path mirrors (its MAC, address...): Host sets itself
        self.echo_handler: EchoHandler | None = None
        self.reply_ttl = 0  # TTL of the echo reply being handed to echo_handler
        self.error_src = 0  # source of the ICMP error being handed to an error handler
        self.send_packet: SendPacket | None = None  # set by the host: replies carrying TOS or options
        # Milliseconds since midnight UT for timestamps (the driver sets it: the core reads no clock);
        # None: `now` in ms with the high bit set, RFC 791's "not standard time" form.
        self.utc_ms: Callable[[], int] | None = None
        self.limiter = PeerLimiter(config.icmp_rate_per_dest, config.icmp_burst_per_dest,
                                   config.icmp_rate_global, config.icmp_burst_global,
                                   config.icmp_rate_table_size, now)

    # -- input ---------------------------------------------------------------------------------
    def input(self, a: Accepted, now: float) -> None:  # noqa: PLR0911 - one return per message type or counted drop
        st = self.stats
        st.rx_messages += 1
        m = a.payload
        if len(m) < 8:
            st.rx_truncated += 1
            return
        if self.verify and not ck.verify(m):
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
            h = self.echo_handler
            if h is not None:
                self.reply_ttl = a.packet[8]  # for the handler, which reports it (ping's ttl=)
                rest = _HDR.unpack_from(m, 0)[3]
                h(a.src, rest >> 16, rest & 0xFFFF, m[8:], now)
            return
        if t == 13:
            self._timestamp_reply(a, now)
            return
        if t in (3, 11, 12):
            if a.broadcast:  # errors are unicast by definition (RFC 1122 3.2.2); Linux drops these
                st.rx_error_to_broadcast += 1
                return
            self._error_input(a, t, m[1], now)
            return
        st.rx_other += 1

    def _echo_reply(self, a: Accepted, now: float) -> None:
        """Echo reply through the general output path (routing, ARP queueing, fragmentation)."""
        body = bytearray(a.payload)
        body[0] = 0
        _U16.pack_into(body, 2, echo_reply_checksum(_U16.unpack_from(body, 2)[0]))
        self.stats.tx_echo_replies += 1
        if not self._reply(a, body, now):
            self.stats.tx_echo_replies -= 1

    def _timestamp_reply(self, a: Accepted, now: float) -> None:
        """Timestamp request (13) -> reply (14) with receive = transmit = now, as Linux answers them."""
        st = self.stats
        st.rx_timestamp_requests += 1
        if not self.config.icmp_timestamps or (a.broadcast and self.config.icmp_echo_ignore_broadcasts):
            st.rx_timestamp_ignored += 1
            return
        m = a.payload
        if len(m) < 12:  # the originate timestamp at least (Linux)
            st.rx_truncated += 1
            return
        ms = self.timestamp_ms(now).to_bytes(4, "big")
        body = bytearray(20)
        body[0] = 14
        body[4:12] = m[4:12]  # identifier, sequence number, originate timestamp
        body[12:16] = body[16:20] = ms
        _U16.pack_into(body, 2, ck.checksum(body))
        if self._reply(a, body, now):
            st.tx_timestamp_replies += 1

    def timestamp_ms(self, now: float) -> int:
        f = self.utc_ms
        return f() if f is not None else (int(now * 1000) & 0x7FFFFFFF) | 0x80000000

    def _reply(self, a: Accepted, body: bytearray, now: float) -> bool:
        """Send an echo/timestamp reply keeping the request's TOS and echoing its Record Route and
        Timestamp options filled in (RFC 1122 3.2.2.6, RFC 1349 5.1; Linux ip_options_echo)."""
        pkt = a.packet
        hl = (pkt[0] & 15) << 2
        tos = pkt[1]
        try:
            if (hl == 20 and not tos) or self.send_packet is None:
                self.send(a.src, 1, (body,), now)
                return True
            opts = echo_options(pkt[20:hl], self.routing.addr, self.timestamp_ms(now)) if hl > 20 else b""
            if opts is None:
                self.stats.tx_reply_bad_options += 1
                return False
            hdr = bytearray(20 + len(opts))
            total = len(hdr) + len(body)
            _IP.pack_into(hdr, 0, 0x40 | len(hdr) >> 2, tos, total, self.idents.next(a.src), 0, self.config.ttl,
                          1, 0, self.routing.addr, a.src)
            hdr[20:] = opts
            _U16.pack_into(hdr, 10, ck.checksum(hdr))
            self.send_packet(a.src, self.routing.next_hop(a.src), hdr, (body,), total, now)
            return True
        except (NoRouteError, MessageTooLongError):
            return False

    def fast_echo(self, frame: memoryview | bytes, off: int, now: float, csum_ok: int = 0) -> bytearray | None:
        """Echo reply for a plain unicast echo request whose sender's Path is fresh, the Ethernet frame at
        `off` in `frame` (a device's framing header before it): one copy of the request, the `off` bytes
        before it included, its headers packed over it, checksums updated arithmetically: the reply (the
        host queues it or hands it to its driver, `Host.receive`, `core.echo`), or None with nothing changed
        (no counter, queue or ident; at most the route cache consulted): the general path takes the frame.

        Its own checks are Host.receive's fast-path rules (the same expression, plus TOS 0 and type 8), so a
        device can call it on what it read (`core.echo`). Per ping this is all the work, so the helpers it
        would call are spelled out (each a call per frame): ck.verify, IdentAllocator.next when the
        destination is known, ck.ipv4_header_checksum and ck.echo_reply_checksum (same arithmetic;
        tests/core/test_icmp_fast_echo.py checks it bit for bit, tests/core/test_echo_answer.py the rules).
        `csum_ok` (an answerer's signature: `Host.fast_answers`) is not used: the ICMP checksum is verified."""
        try:
            dmac, smac0, etv, total, ff, src, dst, t, code, c = _REQUEST.unpack_from(frame, off)
        except struct.error:
            return None
        n = len(frame) - off
        h = self.host
        # Host.receive's expression (see there), with TOS 0 (etv: type, version/IHL, TOS) and type 8
        if (dst != h._fast_dst or dmac != h.mac or etv != 0x08004500 or t != 8 or ff & 0x3FFF
                or total + 14 > n or total < 28 or n > h.max_frame or not UNICAST_SRC[src >> 24]
                or src in h._fast_martians or smac0 & 1):
            return None
        end = off + 14 + total
        if self.verify:  # both sums from one int: the header's 20 bytes, then the message (odd: padded)
            x = _from(frame[off + 14:end], "big")
            # 2**16 == 1 (mod 0xFFFF): the header's int alone, then the whole (the header's part is 0 mod
            # 0xFFFF once it verifies); neither part can be all zero (0x45, type 8)
            if (x >> (total << 3) - 160) % 0xFFFF or (x << 8 if total & 1 else x) % 0xFFFF:
                return None  # a bad checksum: the general path counts it
        r = self.routing
        if r.pmtu:  # a lowered path MTU may call for fragments: general path
            return None
        # r.path(src, now), its cache hit inlined (a call is ~2% of an echo); the rest is the routing
        # module's (Routing.check: the freshness test, not another copy here)
        p = self._paths.get(src)
        if p is None or not ((p.gen == self._arp.gen and now < p.until) or r.check(p, now)):
            p = r.path(src, now)
            if p is None:
                return None
        # One count for the eight this echo stands for (stats.FAST_ADDS): Ethernet rx/tx frames, IPv4
        # rx/tx packets and rx_delivered, ICMP rx_messages, rx_echo_requests and tx_echo_replies.
        self.fast.icmp_echoes += 1
        out = bytearray(frame) if len(frame) == end else bytearray(frame[:end])  # no slice copy when unpadded
        if total < 46:
            out += PAD[:46 - total]
        if off == 10 and frame[0]:  # a virtio_net_hdr (core.echo) vouching for the request's sum: not the reply's
            out[:10] = ZERO_VNET
        ids = self._ident_table
        try:
            ident = ids[src] = (ids[src] + 1) & 0xFFFF
        except KeyError:
            ident = self.idents.next(src)  # a new destination: random start, table bound
        ttl = self.config.ttl
        # The header's words summed; an address whole counts as its two words since 2**16 == 1 (mod 0xFFFF),
        # and only the residue matters to the final expression.
        x = 0x4501 + total + ident + (ttl << 8) + dst + src
        # Every header field from the Ethernet header to the ICMP checksum: type 0, the request's code, and
        # RFC 1624 for type 8 -> 0, ~(~c + ~0x0800) with the end-around carry, solved for the two cases of
        # the carry (equal to ck.echo_reply_checksum for all 65536 values of c: the fast-echo tests).
        _ECHO_REPLY.pack_into(out, off, p.eth, 0x4500, total, ident, ttl, 1, 0xFFFE - (x - 1) % 0xFFFF, dst, src,
                              code, c + 0x800 if c < 0xF7FF else (c - 0xF7FF or 0xFFFF))
        return out

    def _error_input(self, a: Accepted, t: int, code: int, now: float) -> None:
        st = self.stats
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
        if _from(q[12:16], "big") != self.routing.addr:
            st.rx_error_bad_quote += 1
            return
        rest = _HDR.unpack_from(m, 0)[3]
        self.error_src = a.src  # who sent it, for the handler (ping's "From ...")
        if t == 11 and code == 1:
            st.rx_reassembly_timeout_ignored += 1  # our fragments timed out there: no endpoint error (Linux)
            return
        if t == 3 and code == 4:
            st.rx_frag_needed += 1
            self.routing.update_pmtu(_from(q[16:20], "big"), rest & 0xFFFF, _U16.unpack_from(q, 2)[0], now)
        # A non-initial fragment carries no transport header: nothing to demultiplex on.
        h = self.error_handlers.get(q[9]) if not _U16.unpack_from(q, 6)[0] & 0x1FFF else None
        if h is not None:
            h(t, code, rest, q, now)

    # -- output --------------------------------------------------------------------------------
    def send_error(self, a: Accepted, t: int, code: int, rest: int, now: float) -> bool:
        """An ICMP error about `a` (RFC 1122 3.2.2 rules, rate limited like Linux). True if sent."""
        st = self.stats
        pkt = a.packet
        hl = (pkt[0] & 15) << 2
        src = a.src
        if a.broadcast or (_U16.unpack_from(pkt, 6)[0] & 0x1FFF) or not src or src == self.routing.bcast \
                or src >> 28 >= 0xE or src >> 24 == 127 or src >> 24 == 0:
            st.tx_suppressed += 1
            return False
        # RFC 1122 3.2.2: never about an ICMP error, an unknown type, or an informational message other
        # than echo (stricter than Linux, which only spares errors and unknown types).
        if a.proto == 1 and len(pkt) > hl and pkt[hl] not in _ECHO_TYPES:
            st.tx_suppressed += 1
            return False
        if not self.limiter.allow(src, now):
            st.tx_rate_limited += 1
            return False
        # As much of the datagram as fits in a 576-byte error (RFC 1812 4.3.2.3, Linux), at least hl + 8.
        quote = bytes(pkt[:max(min(self.config.mtu, QUOTE_LIMIT) - 28, hl + 8)])
        body = bytearray(8 + len(quote))
        _HDR.pack_into(body, 0, t, code, 0, rest)
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
        elif t == 12:
            st.tx_param_problem += 1
        return True

    def send_time_exceeded(self, quote: bytes, now: float) -> bool:
        """Time exceeded (code 1: reassembly) quoting an expired datagram's first fragment."""
        mv = memoryview(quote)
        if len(mv) < 20:
            return False
        src = _from(mv[12:16], "big")
        dst = _from(mv[16:20], "big")
        hl = (mv[0] & 15) << 2
        # The quote's offset-0 header has MF set but no offset, so the fragment rule lets it through.
        a = Accepted(src, dst, mv[9], mv[hl:], mv, dst != self.routing.addr)
        return self.send_error(a, 11, 1, 0, now)

    def echo_request(self, ident: int, seq: int, data: Buffer) -> bytearray:
        """The 8-byte echo request header for `data` (checksum included); counted as sent."""
        hdr = bytearray(8)
        _HDR.pack_into(hdr, 0, 8, 0, 0, (ident << 16) | seq)
        _U16.pack_into(hdr, 2, ck.checksum_parts((hdr, data)))
        self.stats.tx_echo_requests += 1
        return hdr


echo_reply_checksum = ck.echo_reply_checksum  # RFC 1624 for type 8 -> 0 (see tcpip.wire.checksum)
