"""Ipv4: the seed's IPv4 module (mirage tcpip `Ipv4`) in asyncio form, over the sans-I/O core."""

from __future__ import annotations

import inspect
import struct
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface

from tcpip.core.routing import Path
from tcpip.errors import NoRouteError, UnknownError
from tcpip.ethif import Ethif
from tcpip.guard import CallbackGuard
from tcpip.hostconfig import check_gateways
from tcpip.netif.device import Buffer
from tcpip.wire.checksum import pseudo_header_sum
from tcpip.wire.ipv4 import IpProto

Callback = Callable[[IPv4Address, IPv4Address, memoryview], Awaitable[None] | None]
_HDR = struct.Struct("!BBHHHBBHII")
_PSEUDO = struct.Struct("!IIBBH")


@dataclass(slots=True)
class _Template:
    header: bytes  # Ethernet + IPv4 header for one destination and protocol
    path: Path | None  # the resolved route it was built for (valid while fresh); None for broadcast
    routes: int  # the routing generation it was built under


def _addr(a: IPv4Address | str | int) -> IPv4Address:
    return a if isinstance(a, IPv4Address) else IPv4Address(a)


class Ipv4:
    """The interface's IPv4 address, netmask and gateways; input demux and frame output."""

    def __init__(self, ethif: Ethif) -> None:
        self._ethif = ethif
        self._core = ethif.core
        self._runner = ethif.runner
        self._templates: dict[int, _Template] = {}
        self._send_prebuilt = ethif.core.output.send_prebuilt  # the core's, bound once
        self._frame_len = 14 + ethif.core.config.mtu
        self._guard = CallbackGuard("Ipv4.input callback")

    @classmethod
    async def connect(cls, ethif: Ethif) -> Ipv4:
        if not isinstance(ethif, Ethif):
            raise UnknownError(f"Ipv4.connect needs an Ethif, got {type(ethif).__name__}")
        return cls(ethif)

    async def disconnect(self) -> None:
        """Stop using the interface (the Ethif and its device stay up)."""

    @property
    def id(self) -> Ethif:
        return self._ethif

    # -- input ---------------------------------------------------------------------------------
    async def input(self, packet: Buffer, *, tcp: Callback, udp: Callback,
                    default: Callable[[int], Callback | None] | None = None) -> None:
        """Demultiplex one IPv4 datagram (starting at its header): ICMP is handled inside, TCP and UDP
        payloads go to `tcp`/`udp`, other protocols to `default(proto)`. Callback payloads are views
        valid only during the call."""
        core = self._core
        now = self._runner.now()
        mv = packet if isinstance(packet, memoryview) else memoryview(packet)
        a = core.ip_accept(mv, now, self._ethif.take_l2_broadcast())
        if a is None:
            self._runner.kick()  # a fragment may have armed a timer
            return
        core.ip_stats.rx_delivered += 1
        p = a.proto
        if p == 1:
            core.icmp_input(a, now)
            self._runner.kick()
            return
        if p == IpProto.TCP:  # the seed API's own demux: its tcp/udp arguments
            cb: Callback | None = tcp
        elif p == IpProto.UDP:
            cb = udp
        else:
            try:
                cb = default(p) if default is not None else None
            except Exception:
                core.ip_stats.rx_callback_errors += 1
                self._guard.failed()
                return
        if cb is None:
            core.ip_stats.rx_unknown_protocol += 1
            core.send_icmp_error(a, 3, 2, 0, now)
            self._runner.kick()
            return
        try:  # the application's exception is contained: the host keeps answering (counted)
            r = cb(IPv4Address(a.src), IPv4Address(a.dst), a.payload)
            if inspect.isawaitable(r):
                await r
        except Exception:
            core.ip_stats.rx_callback_errors += 1
            self._guard.failed()

    # -- output --------------------------------------------------------------------------------
    async def allocate_frame(self, *, proto: IpProto | int,
                             dest_ip: IPv4Address | str) -> tuple[memoryview, int]:
        """A fresh Ethernet frame buffer (14 + MTU bytes) for `dest_ip`, with the Ethernet header (next
        hop's MAC, resolved by ARP first) and the IPv4 header written; returns it and the header
        length (34). Raises NoRouteError, or HostUnreachableError when ARP gives up."""
        core = self._core
        dst = int(dest_ip) if isinstance(dest_ip, IPv4Address) else int(IPv4Address(dest_ip))
        key = dst << 8 | proto
        t = self._templates.get(key)
        routing = core.routing
        if t is not None and t.routes == routing.routes:
            p = t.path  # None: a broadcast/multicast MAC, valid while the routes are
            if p is None or p.fresh(self._runner.now()):
                buf = bytearray(self._frame_len)
                buf[:34] = t.header
                return memoryview(buf), 34
        nh = routing.next_hop(dst)
        path = None
        if isinstance(nh, bytes):
            mac = nh
        else:
            known = core.arp.lookup(nh, self._runner.now())
            mac = known if known is not None else await self._runner.resolve(nh)
            path = routing.path(dst, self._runner.now())
        # Per-destination header template: Ethernet + IPv4 without length, ident and checksum.
        hdr = bytearray(34)
        hdr[0:6] = mac
        hdr[6:12] = core.mac
        hdr[12:14] = b"\x08\x00"
        _HDR.pack_into(hdr, 14, 0x45, 0, 0, 0, 0, core.config.ttl, int(proto), 0, core.addr, dst)
        if len(self._templates) >= 4096:
            self._templates.clear()
        if path is not None or isinstance(nh, bytes):
            self._templates[key] = _Template(bytes(hdr), path, routing.routes)
        buf = bytearray(self._frame_len)
        buf[:34] = hdr
        return memoryview(buf), 34

    async def write(self, frame: memoryview | bytearray, buffer: Buffer, *, dont_fragment: bool = False,
                    dont_frag: bool = False) -> None:
        """Send `frame` (from allocate_frame, cut to the bytes used) followed by `buffer` as one
        datagram: total length, ident and checksum are filled in; fragmented above the path MTU unless
        `dont_fragment` (alias `dont_frag`) sets DF, in which case a datagram too big raises
        WouldFragmentError. Above 65535 bytes: MessageTooLongError."""
        self._send(frame, (buffer,), dont_fragment or dont_frag)

    async def writev(self, frame: memoryview | bytearray, buffers: Sequence[Buffer], *,
                     dont_fragment: bool = False, dont_frag: bool = False) -> None:
        """Like write, with the payload in several buffers (scatter-gather down to the device)."""
        self._send(frame, buffers, dont_fragment or dont_frag)

    def _send(self, frame: memoryview | bytearray, parts: Sequence[Buffer], df: bool) -> None:
        mv = frame if isinstance(frame, memoryview) else memoryview(frame)
        if df:
            mv[20] |= 0x40
        runner = self._runner
        try:
            self._send_prebuilt(mv, parts, runner.now())
        finally:
            # Zero-copy: the frame and parts go to the device before write returns (mirage's contract), so
            # the caller may reuse its buffers at once.
            runner.transmit()

    # -- configuration -------------------------------------------------------------------------
    async def set_ipv4(self, ip: IPv4Address | str) -> None:
        """Set the address, and announce it with a gratuitous ARP."""
        self._core.set_address(int(_addr(ip)), self._runner.now())
        self._runner.transmit()  # the announcement is on the wire when set_ipv4 returns

    def get_ipv4(self) -> IPv4Address:
        return IPv4Address(self._core.addr)

    async def set_ipv4_netmask(self, netmask: IPv4Address | str) -> None:
        m = int(_addr(netmask))
        inv = ~m & 0xFFFFFFFF
        if inv & (inv + 1):
            raise UnknownError(f"{IPv4Address(m)} is not a contiguous netmask")
        self._core.set_netmask(m)

    def get_ipv4_netmask(self) -> IPv4Address:
        return IPv4Address(self._core.mask)

    async def set_ipv4_gateways(self, gateways: Sequence[IPv4Address | str]) -> None:
        """Raises ConfigurationError for a gateway off our subnet or equal to our address (as Linux)."""
        gws = [_addr(g) for g in gateways]
        if self._core.addr:
            check_gateways(IPv4Interface(f"{self.get_ipv4()}/{self.get_ipv4_netmask()}"), gws)
        self._core.set_gateways([int(g) for g in gws])

    def get_ipv4_gateways(self) -> list[IPv4Address]:
        return [IPv4Address(g) for g in self._core.config.gateways]

    # -- later mirage extras -------------------------------------------------------------------
    def mtu(self, dst: IPv4Address | str | None = None) -> int:
        """The largest IPv4 datagram (header included) that goes to `dst` unfragmented."""
        if dst is None:
            return self._core.config.mtu
        return self._core.path_mtu(int(_addr(dst)), self._runner.now())

    def src(self, dst: IPv4Address | str) -> IPv4Address:
        """The source address used towards `dst`."""
        _ = dst
        return IPv4Address(self._core.addr)

    def pseudoheader(self, dst: IPv4Address | str, proto: IpProto | int, length: int) -> bytes:
        """The 12-byte pseudo-header for transport checksums."""
        return _PSEUDO.pack(self._core.addr, int(_addr(dst)), 0, int(proto), length)

    def pseudoheader_sum(self, dst: IPv4Address | str, proto: IpProto | int, length: int) -> int:
        return pseudo_header_sum(self._core.addr, int(_addr(dst)), int(proto), length)

    def route(self, dst: IPv4Address | str) -> IPv4Address | None:
        """The next hop's IP for `dst` (None for broadcast/multicast); raises NoRouteError."""
        nh = self._core.next_hop(int(_addr(dst)))
        return None if isinstance(nh, bytes) else IPv4Address(nh)


__all__ = ["Callback", "Ipv4", "NoRouteError"]
