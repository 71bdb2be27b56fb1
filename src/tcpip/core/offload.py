"""Offload paths of a Host: trusted-checksum / super-frame TCP input and TCP super-frame output (TSO).

A driver whose device offloads (a TAP with IFF_VNET_HDR, a Hub port with `offload`) calls
`Host.receive_offloaded(frame, now, csum_ok, gso_size)` for TCP frames the device vouches for, and
`Host.set_offload(tso_max)` once, after which TCP may hand `Host.send_gso` segments of up to `tso_max`
bytes of IPv4 datagram. The plain `receive`/`send` paths are untouched: nothing here costs a plain frame.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from tcpip.core.ipv4 import header_into
from tcpip.wire import virtio

if TYPE_CHECKING:
    from tcpip.core.host import Host
    from tcpip.core.routing import Path

Buffer = bytes | bytearray | memoryview
# (src, dst, payload, packet, now, csum_ok, gso_size): TCP input that may skip its checksum check
OffloadInput = Callable[[int, int, memoryview, memoryview, float, bool, int], None]

_FAST = struct.Struct("!6sB5xHBBHHHBBHII")
_IP = struct.Struct("!BBHHHBBHII")  # an IPv4 header without options
_from = int.from_bytes
_MAX_FRAME = virtio.MAX_GSO_FRAME
_UNICAST_SRC = bytes(0 < i < 224 and i != 127 for i in range(256))  # a host source's first octet (one index)
_GSO_HDRS: dict[int, virtio.VnetHeader] = {}  # (TCP header length << 16 | MSS) -> its virtio header


def receive_offloaded(host: Host, frame: memoryview, now: float, csum_ok: bool, gso_size: int) -> None:
    """One TCP frame from an offloading device: the plain fast path's Ethernet/IPv4 checks (the IPv4
    header checksum included: the device vouches for the TCP checksum only), no MTU bound for a
    super-frame, then the TCP handler with `csum_ok` and `gso_size`. A frame outside that fast path
    (IP options, not to our unicast address...) is dropped and counted: kernels do not send those
    with offload metadata."""
    n = len(frame)
    try:
        dmac, smac0, et, vihl, _tos, total, _id, ff, _ttl, proto, _c, src, dst = _FAST.unpack_from(frame, 0)
    except struct.error:
        host.ip_stats.rx_offload_dropped += 1
        return
    if (dst != host._fast_dst or dmac != host.mac or et != 0x0800 or vihl != 0x45 or ff & 0x3FFF or proto != 6
            or total + 14 > n or total < 40 or n > _MAX_FRAME
            or not _UNICAST_SRC[src >> 24]
            or src == dst or src == host.bcast or smac0 & 1):
        if n <= host.max_frame and not csum_ok and not gso_size:
            host.receive(frame, now)  # nothing offloaded about it after all
            return
        host.ip_stats.rx_offload_dropped += 1
        return
    x = _from(frame[14:34], "big")
    if x % 0xFFFF or not x:
        host.ip_stats.rx_offload_dropped += 1  # a bad IPv4 header checksum: the device vouches for L4 only
        return
    host.eth_stats.rx_frames += 1
    ist = host.ip_stats
    ist.rx_packets += 1
    ist.rx_delivered += 1
    h = host.offload_input
    if h is not None:
        h(src, dst, frame[34:14 + total], frame[14:14 + total], now, csum_ok, gso_size)
        return
    ph = host.protocols.get(6)
    if ph is not None and not gso_size and not csum_ok:
        ph(src, dst, frame[34:14 + total], frame[14:14 + total], now, False)
        return
    ist.rx_offload_dropped += 1


# A TCP super-frame's headers after the virtio header, in one pack: Ethernet + the first 2 bytes of IPv4
# (16s: the template's prefix), total length, ident, DF, TTL/protocol, checksum, addresses, then the TCP
# header with NOP NOP TS (the options' first 4 bytes as one word)
_FRAME_TS = struct.Struct("!16sHHHHHIIHHIIHHHHIII")
_OPT_TS = 0x0101080A


class GsoTemplate:
    """One connection's super-frame headers as far as they stay the same (virtio header, Ethernet header,
    IPv4's constant fields and their checksum sum): the fused TCP sender (core/tcp/tso.py) packs the rest in
    one call and queues the frame as `send_gso` would have, while `fresh` holds. Built by `gso_template`."""

    __slots__ = ("dst", "host", "ident", "ipsum", "mss", "path", "pre", "tso_max", "ttl_proto", "tx", "vh")

    def __init__(self, host: Host, path: Path, src: int, dst: int, mss: int) -> None:
        self.host = host
        self.path = path
        self.dst = dst
        self.mss = mss
        self.tx = host.tx
        self.ident = host.idents.next
        self.vh = virtio.tcp_gso_header(14, 20, 32, mss)
        self.pre = path.eth + b"\x45\x00"
        self.ttl_proto = host.config.ttl << 8 | 6
        self.tso_max = host.tso_max
        # the IPv4 checksum's sum of the fields that do not change (total length and ident are added per frame)
        self.ipsum = 0x4500 + 0x4000 + self.ttl_proto + (src >> 16) + (src & 0xFFFF) + (dst >> 16) + (dst & 0xFFFF)

    def sent(self, k: int) -> None:
        """The counters of `k` super-frames queued from this template (what send_gso counts per frame)."""
        host = self.host
        ist = host.ip_stats
        ist.tx_packets += k
        ist.tx_gso_packets += k
        host.eth_stats.tx_frames += k

    def fresh(self, now: float) -> bool:
        """Still what send_gso would build: routing.path() hands out the same Path (it alone judges its
        freshness), no path MTU is known, the TTL and the TSO limit are unchanged."""
        host = self.host
        r = host.routing
        return r.path(self.dst, now) is self.path and not r.pmtu and host.config.ttl << 8 | 6 == self.ttl_proto \
            and host.tso_max == self.tso_max


def gso_template(send: object, src: int, dst: int, mss: int, now: float) -> GsoTemplate | None:
    """The template for super-frames from `src` to `dst` (TCP header of 32 bytes, gso_size `mss`) when `send`
    is Host.send_gso itself and send_gso would send them whole now; None otherwise (another sender, no
    fresh path, a path MTU known: send_gso decides per frame)."""
    from tcpip.core.host import Host  # noqa: PLC0415 - host imports this module (once per template)

    host = getattr(send, "__self__", None)
    if not isinstance(host, Host) or getattr(send, "__func__", None) is not Host.send_gso or \
            type(host).send_gso is not Host.send_gso:
        return None
    r = host.routing
    path = r.path(dst, now)
    if path is None or r.pmtu:
        return None
    return GsoTemplate(host, path, src, dst, mss)


def send_gso(host: Host, src: int, dst: int, parts: Sequence[Buffer], thl: int, mss: int, now: float) -> None:
    """A TCP super-segment (`parts`: the TCP header, its checksum field holding the pseudo-header partial
    sum, then the payload) to `dst` as one frame behind a virtio header: gso_type TCPv4, gso_size `mss`,
    DF set (idents then do not matter, RFC 6864). When the next hop is not resolved or a smaller path MTU
    is known, it is cut here into ordinary segments with full checksums and sent the plain way."""
    total = 20 + sum(map(len, parts))
    r = host.routing
    path = r.path(dst, now)
    if path is not None and total <= host.tso_max and not r.pmtu:
        # header_into, inlined (per super-frame): the checksum from the fields' words, DF set
        ident = host.idents.next(dst)
        ttl = host.config.ttl
        x = 0x4500 + total + ident + 0x4000 + (ttl << 8 | 6) + (src >> 16) + (src & 0xFFFF) + (dst >> 16) \
            + (dst & 0xFFFF)
        hdr = _IP.pack(0x45, 0, total, ident, 0x4000, ttl, 6, 0xFFFE - (x - 1) % 0xFFFF, src, dst)
        ist = host.ip_stats
        ist.tx_packets += 1
        ist.tx_gso_packets += 1
        host.eth_stats.tx_frames += 1
        vh = _GSO_HDRS.get(thl << 16 | mss)
        if vh is None:  # one per (header length, MSS): a connection's super-frames share it (immutable)
            if len(_GSO_HDRS) >= 64:
                _GSO_HDRS.clear()
            vh = _GSO_HDRS[thl << 16 | mss] = virtio.tcp_gso_header(14, 20, thl, mss)
        host.tx.append((vh, path.eth, hdr, *parts))
        return
    # Software segmentation: a dummy Ethernet + IPv4 header around the segment, cut like the kernel would.
    host.ip_stats.tx_gso_split += 1
    ip = bytearray(20)
    header_into(ip, 0, src, dst, 6, total, 0, 0x4000, host.config.ttl)
    whole = b"".join((bytes(14), ip, *parts))
    for f in virtio.segment(whole, mss):
        host.send(dst, 6, (memoryview(f)[34:],), now, src=src)
