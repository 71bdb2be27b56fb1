"""UDP demultiplexing and output (RFC 768): port table, checksums, port-unreachable, ICMP errors to senders."""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from dataclasses import dataclass

from tcpip.core.host import Host
from tcpip.core.icmp import UNICAST_SRC
from tcpip.core.ipv4 import Accepted
from tcpip.core.routing import Path
from tcpip.core.stats import UdpStats, linked
from tcpip.errors import PortInUseError, TcpipError
from tcpip.wire import checksum as ck
from tcpip.wire import virtio

Buffer = bytes | bytearray | memoryview
_HDR = struct.Struct("!HHHH")
# Ethernet header, IPv4 header (no options; flags and fragment offset zero), UDP header: what a flow sends
# (per flow: the Ethernet header, TTL+protocol, both addresses, both ports; per datagram: the rest)
_ETH_IPUDP = struct.Struct("!14sHHH2xHH8sIHH")
# The same with the addresses and ports as ints: the echo service's reply, packed over a copy of its request
_ECHO = struct.Struct("!14sHHH2xHHIIHHHH")
# What the echo service reads of a request: Ethernet dst, src's first byte, type+version/IHL+TOS as one word,
# total length, flags+fragment offset, source, destination, then the UDP header
_REQUEST = struct.Struct("!6sB5xIH2xH4xIIHHHH")
_from = int.from_bytes
_ZERO_VNET = virtio.ZERO
# The same behind a virtio_net_hdr: its flags, then its csum_start and csum_offset (little-endian u16s) as
# one big-endian int: 0x22000600 is 34, 6 (the UDP checksum behind a 20-byte IPv4 header)
_REQUEST_VNET = struct.Struct("!B5xI6sB5xIH2xH4xIIHHHH")
PortInUse = PortInUseError  # the old name
# Source ports the echo service never answers: services that answer on their own (echo, discard, daytime,
# chargen, time) could bounce a spoofed datagram between two hosts forever (CVE-1999-0103; inetd's
# check_loop refuses the same), and 0 is no port to answer to.
ECHO_REFUSED = frozenset((0, 7, 9, 13, 19, 37))
EPHEMERAL_LOW = 49152
EPHEMERAL_HIGH = 65535

# (payload, src ip, src port, dst ip, now) -> None; the payload is a view valid during the call only, or
# bytes (a small frame the device read into bytes: Host.register's takes_bytes)
Receiver = Callable[[memoryview | bytes, int, int, int, float], None]
# (icmp type, code, rest, quoted dst ip, quoted dst port) -> None
ErrorReceiver = Callable[[int, int, int, int, int], None]


@dataclass(slots=True)
class Binding:
    port: int
    local: int  # 0 = any of our addresses
    receiver: Receiver
    on_error: ErrorReceiver | None = None
    remote: tuple[int, int] | None = None  # connected: only this peer is heard
    echo: bool = False  # the echo service (bind_echo): input sends each datagram back, `receiver` unused


@dataclass(slots=True)
class _Flow:
    """A flow's headers to a resolved neighbour: valid while its path is fresh (`Path.fresh`)."""

    path: Path
    ip_sum: int  # the IPv4 header's constant words + 28 (header lengths), mod 0xFFFF
    udp_sum: int  # pseudo-header addresses + protocol + ports + 16 (the two 8s of the UDP lengths), mod 0xFFFF
    eth: bytes
    ttl_proto: int  # the IPv4 header's TTL and protocol words
    addrs: bytes  # source and destination addresses
    ports: int  # source and destination ports
    max_n: int  # the largest payload one frame carries (the MTU bumps `routes` when it changes)


class UdpLayer:
    """UDP over one Host. Registers itself as the host's protocol 17."""

    FLOW_CACHE = 1024

    def __init__(self, iface: Host, rng: random.Random) -> None:
        self.iface = iface
        self.rng = rng
        self.stats = linked(UdpStats, iface.fast)
        self._fast = iface.fast  # input and send's hit path count one FastPaths.udp_rx / udp_tx each
        self.ports: dict[int, Binding] = {}
        self._flows: dict[tuple[int, int, int], _Flow] = {}
        self.verify_checksums = iface.config.verify_checksums
        self._ident_table = iface.idents.idents  # the dict is never replaced (see send)
        # What send's hit path reads, one load each (none of them is ever replaced)
        self._routing = iface.routing
        self._arp = iface.arp
        self._tx = iface.tx
        self._config = iface.config  # its TTL may change
        # offload: no 2nd look at a trusted checksum; bytes: every receiver takes them (Receiver)
        iface.register(17, self.input, self.icmp_error, self.input, takes_bytes=True)

    # -- ports ---------------------------------------------------------------------------------
    def bind(self, port: int, local: int, receiver: Receiver, on_error: ErrorReceiver | None = None,
             remote: tuple[int, int] | None = None) -> Binding:
        if port == 0:
            port = self.ephemeral_port()
        elif port in self.ports:
            raise PortInUseError(port)
        b = Binding(port, local, receiver, on_error, remote)
        self.ports[port] = b
        return b

    def bind_echo(self, port: int) -> Binding:
        """The echo service (RFC 862) on `port`: each datagram is sent back to its sender, from Host.receive
        (`fast_echo`) or `input` itself, with no receiver call per datagram (issue 10); never to a port in
        ECHO_REFUSED (counted, rx_echo_refused). Unbind as any binding."""
        b = self.bind(port, 0, _no_receiver)
        b.echo = True
        self.iface.set_answerer(17, self.fast_echo)  # the common case, answered from Host.receive
        return b

    def unbind(self, b: Binding) -> None:
        if self.ports.get(b.port) is b:
            del self.ports[b.port]
            if b.echo and not any(e.echo for e in self.ports.values()):
                self.iface.set_answerer(17, None)  # no fast_echo call per datagram with no echo service

    def ephemeral_port(self) -> int:
        span = EPHEMERAL_HIGH - EPHEMERAL_LOW + 1
        if len(self.ports) >= span:
            raise PortInUseError(0)
        start = self.rng.randrange(span)
        for i in range(span):  # random start, then linear probe: never two endpoints on one port
            p = EPHEMERAL_LOW + (start + i) % span
            if p not in self.ports:
                return p
        raise PortInUseError(0)

    # -- input ---------------------------------------------------------------------------------
    def input(self, src: int, dst: int, payload: memoryview | bytes, packet: memoryview | bytes,  # noqa: PLR0911
              now: float, broadcast: bool, csum_ok: bool = False) -> None:  # (one return per counted drop)
        """One datagram from the host; `csum_ok`: the device vouches for its checksum (not verified). A
        delivered datagram is one FastPaths.udp_rx (rx_datagrams and rx_delivered); a dropped one counts
        rx_datagrams and its reason (the counters object is loaded on those paths only)."""
        n = len(payload)
        if n < 8:
            st = self.stats
            st.rx_datagrams += 1
            st.rx_truncated += 1
            return
        sport, dport, length, csum = _HDR.unpack_from(payload, 0)
        if length < 8 or length > n:
            st = self.stats
            st.rx_datagrams += 1
            if length < 8:
                st.rx_bad_length += 1
            else:
                st.rx_truncated += 1
            return
        if csum and not csum_ok and self.verify_checksums:
            # ck.verify(datagram, ck.pseudo_header_sum(src, dst, 17, length)) spelled out: two calls per datagram.
            # Only the total's residue mod 0xFFFF counts, and 2**16 == 1 (mod 0xFFFF): the addresses are
            # added whole (each is the sum of its two pseudo-header words, to that modulus).
            x = _from(payload if length == n else payload[:length], "big")
            x = (x << 8 if length & 1 else x) % 0xFFFF  # reduced first: no copy of the big int per addition
            if (x + src + dst + 17 + length) % 0xFFFF:
                st = self.stats
                st.rx_datagrams += 1
                st.rx_bad_checksum += 1
                return
        b = self.ports.get(dport)
        if b is None or (b.local and b.local != dst and dst == self.iface.addr):
            self.stats.rx_datagrams += 1
            self._no_port(src, dst, payload, packet, now)
            return
        if b.remote is not None and (b.remote[0] != src or b.remote[1] != sport):
            st = self.stats
            st.rx_datagrams += 1
            st.rx_no_port += 1  # a connected endpoint hears only its peer (no ICMP: like Linux)
            return
        if b.echo:
            if sport in ECHO_REFUSED:
                st = self.stats
                st.rx_datagrams += 1
                st.rx_echo_refused += 1
                return
            self._fast.udp_rx += 1
            try:
                self.send(dport, src, sport, payload[8:length], now)
            except TcpipError:
                pass  # no route back, too big for DF...: counted where it failed, like any send
            return
        self._fast.udp_rx += 1  # rx_datagrams and rx_delivered (stats.FAST_ADDS)
        b.receiver(payload[8:length], src, sport, dst, now)

    def fast_echo(self, frame: memoryview | bytes, off: int, now: float, csum_ok: int) -> bytearray | None:  # noqa: PLR0911, PLR0912 - flat
        """The echo service's answerer (Host.set_answerer): the reply to a plain unicast datagram to an echo
        port, the Ethernet frame at `off` in `frame` as read (Host.receive: 0; `core.echo`: past a device's
        framing header), whose sender's Path is fresh: one copy of the request, the `off` bytes before it
        included, its headers packed over it with the addresses and ports swapped. A verified checksum is
        kept (swapping changes no sum); a trusted one (`csum_ok`: maybe the kernel's partial sum) or none is
        computed. None, with nothing changed: Host.receive's usual path and `input` take it (and count
        whatever they drop). What `input` and `send` do for an echo binding, in one pass (issue 10), with
        Host.receive's fast-path checks made here, from one unpack (`core.echo.plain_unicast`'s rules)."""
        try:
            if off == 10:  # behind a TAP's virtio header (core.echo): its flags and csum_start/offset too
                zero, at, dmac, smac0, etv, total, ff, src, dst, sport, dport, length, c = _REQUEST_VNET.unpack_from(
                    frame)
            else:
                zero = at = 0
                dmac, smac0, etv, total, ff, src, dst, sport, dport, length, c = _REQUEST.unpack_from(frame, off)
        except struct.error:
            return None
        b = self.ports.get(dport)
        if b is None or not b.echo:
            return None  # not for the echo service (the answerer sees every datagram while one is bound)
        n = len(frame) - off
        h = self.iface
        if (dst != h._fast_dst or dmac != h.mac or etv >> 8 != 0x080045 or ff & 0x3FFF or total + 14 > n
                or n > h.max_frame or not UNICAST_SRC[src >> 24] or src in h._fast_martians or smac0 & 1
                or length != total - 20 or length < 8 or sport in ECHO_REFUSED or self._routing.pmtu):
            return None  # the host's fast-path rules; trailing bytes or a runt, a refused port (input counts
            # those), or a path MTU that may call for fragments
        end = off + 14 + total
        # The kernel's own datagram in offload mode (NEEDS_CSUM, its virtio header before the frame, the sum
        # to finish at the UDP checksum, the field the pseudo-header's sum): the reply keeps that header and
        # field (swapping addresses and ports changes neither sum) and the kernel finishes it, as it does its
        # own; the datagram is not summed here (~11% of this echo: issue 10). Anything else, a full sum.
        # `zero`: the virtio header's flags, a header that vouched for the request's sum: not the reply's.
        if at == 0x22000600 and csum_ok == 1 and not (c - src - dst - 17 - length) % 0xFFFF:  # 34, 6; NEEDS_CSUM
            if h._verify and _from(frame[off + 14:off + 34], "big") % 0xFFFF:
                return None  # a bad header checksum (a zero header cannot get here: it has 0x45)
            zero = 0
        else:
            # Both sums from one int: the IPv4 header's (its 20 bytes above the datagram's `length`), then the
            # whole, reduced (each addition to the whole int would copy it); 2**16 == 1 (mod 0xFFFF), so the
            # datagram's sum (odd: padded) is the whole's minus the header's
            x = _from(frame[off + 14:end], "big")
            hs = (x >> (length << 3)) % 0xFFFF
            if hs and h._verify:
                return None  # a bad header checksum (a zero header cannot get here: it has 0x45)
            x = ((x << 8 if length & 1 else x) - hs) % 0xFFFF
            if csum_ok or not c or not self.verify_checksums:
                u = (x - c + src + dst + 17 + length) % 0xFFFF  # the sum with a zero field: 2**16 == 1 (mod 0xFFFF)
                c = 0xFFFF - u  # never 0 (RFC 768: 0 means none)
            elif (x + src + dst + 17 + length) % 0xFFFF:
                return None  # a bad checksum: input counts it
        r = self._routing  # r.path(src, now), its cache hit inlined (as icmp.fast_echo)
        p = r.paths.get(src)
        if p is None or not ((p.gen == self._arp.gen and now < p.until) or r.check(p, now)):
            p = r.path(src, now)
            if p is None:
                return None
        self._fast.udp_echoes += 1  # the eight counts it stands for: stats.FAST_ADDS
        out = bytearray(frame) if len(frame) == end else bytearray(frame[:end])
        if end - off < 60:
            out += bytes(60 - end + off)  # zeros: no change to a sum the kernel finishes
        if zero:
            out[:10] = _ZERO_VNET
        ids = self._ident_table
        try:
            ident = ids[src] = (ids[src] + 1) & 0xFFFF
        except KeyError:
            ident = self.iface.idents.next(src)
        tp = self._config.ttl << 8 | 17
        ip = (0x4500 + total + ident + tp + dst + src) % 0xFFFF
        _ECHO.pack_into(out, off, p.eth, 0x4500, total, ident, tp, 0xFFFF - ip if ip else 0, dst, src, dport, sport,
                        length, c)
        return out

    def _no_port(self, src: int, dst: int, payload: memoryview | bytes, packet: memoryview | bytes,
                 now: float) -> None:
        iface = self.iface
        if dst not in iface.routing.locals:
            self.stats.rx_broadcast_no_port += 1
            return
        self.stats.rx_no_port += 1
        iface.send_icmp_error(Accepted(src, dst, 17, memoryview(payload), memoryview(packet), False), 3, 3, 0, now)

    def icmp_error(self, t: int, code: int, rest: int, quote: memoryview, now: float) -> None:
        hl = (quote[0] & 15) << 2
        sport, dport = struct.unpack_from("!HH", quote, hl)
        b = self.ports.get(sport)
        if b is None or b.on_error is None:
            return
        qdst = _from(quote[16:20], "big")
        if b.remote is not None and b.remote != (qdst, dport):
            return
        self.stats.rx_icmp_errors += 1
        b.on_error(t, code, rest, qdst, dport)

    # -- output --------------------------------------------------------------------------------
    def send(self, sport: int, dst: int, dport: int, data: Buffer, now: float, *,
             src: int | None = None, on_fail: Callable[[int], None] | None = None) -> int:
        """One datagram; the payload is never copied (header and data go out as separate parts).

        Datagrams that fit one frame to a resolved neighbour use per-flow state: the Ethernet header and
        the sums of the constant IPv4 and UDP header fields are precomputed, so per datagram only the
        lengths, the ident and the payload's sum are added, and both headers are packed at once."""
        if src is not None:
            return self._send_slow(sport, dst, dport, data, now, src, on_fail)
        key = (dst, sport, dport)
        t = self._flows.get(key)
        n = len(data)
        # t.path.fresh(now), its stamp test inlined (as routing.path does): a call is 4% of this path
        if (t is not None and 18 <= n <= t.max_n and not self._routing.pmtu
                and (((p := t.path).gen == self._arp.gen and now < p.until) or p.fresh(now))):
            ids = self._ident_table  # IdentAllocator.next, inlined for a known destination
            try:
                ident = ids[dst] = (ids[dst] + 1) & 0xFFFF
            except KeyError:
                ident = self.iface.idents.next(dst)
            # ck.finish and ck.checksum spelled out (with tcpip/core/host.py's header check, the
            # only such place): each call would cost 5% of this path. 2**16 == 1 (mod 0xFFFF).
            x = _from(data, "big") << 8 if n & 1 else _from(data, "big")
            ip = (t.ip_sum + n + ident) % 0xFFFF  # ip_sum holds the 28 of the total length
            # udp_sum holds the 2 * 8 of the two UDP lengths; the payload's sum is reduced first (adding
            # small ints to a 1472-byte int would copy it)
            u = (t.udp_sum + 2 * n + x % 0xFFFF) % 0xFFFF
            self._fast.udp_tx += 1  # UDP tx_datagrams, IPv4 tx_packets, Ethernet tx_frames (stats.FAST_ADDS)
            # u == 0: a sum of 0xFFFF, sent as 0xFFFF (RFC 768)
            self._tx.append((_ETH_IPUDP.pack(t.eth, 0x4500, 28 + n, ident, t.ttl_proto, 0xFFFF - ip if ip else 0,
                                             t.addrs, t.ports, 8 + n, 0xFFFF - u), data))
            return 0
        r = self._send_slow(sport, dst, dport, data, now, None, on_fail)
        routing = self._routing
        if routing.mtu - 28 >= n >= 18 and not routing.pmtu:
            self._learn_flow(key, dst, sport, dport, now)
        return r

    def _send_slow(self, sport: int, dst: int, dport: int, data: Buffer, now: float, src: int | None,
                   on_fail: Callable[[int], None] | None) -> int:
        n = len(data)
        length = 8 + n
        iface = self.iface
        s = (iface.routing.source(dst) if iface.routing.extra else iface.addr) if src is None else src
        # Pseudo-header and UDP header from their words, one pass over the payload; 0 is sent as 0xFFFF.
        c = ck.checksum(data, ck.pseudo_header_sum(s, dst, 17, length) + sport + dport + length) or 0xFFFF
        hdr = _HDR.pack(sport, dport, length, c)
        self.stats.tx_datagrams += 1
        return iface.send(dst, 17, (hdr, data) if n else (hdr,), now, on_fail=on_fail, src=s)

    def _learn_flow(self, key: tuple[int, int, int], dst: int, sport: int, dport: int, now: float) -> None:
        """Remember the header of a flow whose next hop is resolved (bounded; cleared when full)."""
        iface = self.iface
        path = iface.routing.path(dst, now)
        if path is None:
            return
        if len(self._flows) >= self.FLOW_CACHE:
            self._flows.clear()
        a = path.src
        ttl = iface.config.ttl
        # Partial sums of the constant words; per datagram only lengths, ident and the payload are added.
        ip_sum = ck.fold(0x4500 + (ttl << 8 | 17) + ck.addr_sum(a) + ck.addr_sum(dst) + 28)
        udp_sum = ck.fold(ck.pseudo_header_sum(a, dst, 17, 0) + sport + dport + 16)
        self._flows[key] = _Flow(path, ip_sum, udp_sum, path.eth, ttl << 8 | 17,
                                 a.to_bytes(4, "big") + dst.to_bytes(4, "big"), sport << 16 | dport,
                                 iface.routing.mtu - 28)


def _no_receiver(payload: memoryview | bytes, src: int, sport: int, dst: int, now: float) -> None:
    """An echo binding's receiver: never called (input answers itself)."""
