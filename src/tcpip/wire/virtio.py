"""The 10-byte virtio_net_hdr of a TAP in offload mode: parse/emit, partial checksums, software segmentation.

Layout (native little-endian, <linux/virtio_net.h>): flags u8, gso_type u8, hdr_len u16, gso_size u16,
csum_start u16, csum_offset u16. NEEDS_CSUM: the L4 checksum field holds the pseudo-header sum (not
complemented) and the sum over [csum_start, end) is still to be folded in; DATA_VALID: the checksum was
verified. gso_type TCPV4: a TCP super-frame that stands for segments of gso_size payload bytes.

A super-frame's TCP checksum field holds the pseudo-header sum *with the super-segment's TCP length*, as
Linux's own `__tcp_v4_send_check` leaves it and `tcp_gso_segment` expects it (that function subtracts the
old length and adds each segment's). `segment()` does the same, from that partial sum, so a wrong partial
sum gives segments with wrong checksums (the tests rely on it).
"""

from __future__ import annotations

import struct

from tcpip.wire import checksum as ck

__all__ = ["DATA_VALID", "GSO_ECN", "GSO_NONE", "GSO_TCPV4", "HDR", "MAX_GSO_FRAME", "NEEDS_CSUM", "VNET_HDR_LEN",
           "ZERO", "VnetHeader", "complete_checksum", "parse", "segment", "tcp_gso_header", "tcp_partial_sum"]

VNET_HDR_LEN = 10
MAX_GSO_FRAME = 14 + 4 + 0xFFFF  # Ethernet (+ a VLAN tag) + the largest IPv4 datagram
NEEDS_CSUM = 1
DATA_VALID = 2
GSO_NONE = 0
GSO_TCPV4 = 1
GSO_ECN = 0x80

_HDR = struct.Struct("<BBHHHH")
HDR = _HDR  # HDR.unpack_from(frame) is parse(frame) without a Python call (the TAP's read loop)


class VnetHeader(bytes):
    """A packed virtio_net_hdr as the first part of a transmitted frame: marks a frame that carries its
    own header (a TCP super-frame); frames without one get the all-zero header."""

    __slots__ = ()


ZERO = bytes(VNET_HDR_LEN)


def parse(hdr: bytes | bytearray | memoryview) -> tuple[int, int, int, int, int, int]:
    """(flags, gso_type, hdr_len, gso_size, csum_start, csum_offset) of a 10-byte header."""
    flags, gso_type, hdr_len, gso_size, start, off = _HDR.unpack_from(hdr, 0)
    return flags, gso_type, hdr_len, gso_size, start, off


def tcp_gso_header(l3_off: int, ihl: int, thl: int, mss: int) -> VnetHeader:
    """The header of a TCPv4 super-frame: NEEDS_CSUM, csum at the TCP header's offset 16."""
    start = l3_off + ihl
    return VnetHeader(_HDR.pack(NEEDS_CSUM, GSO_TCPV4, start + thl, mss, start, 16))


def tcp_partial_sum(src: int, dst: int, tcp_len: int) -> int:
    """The checksum field of a NEEDS_CSUM TCP segment: the folded pseudo-header sum, not complemented."""
    return ck.pseudo_header_sum(src, dst, 6, tcp_len)


def complete_checksum(frame: bytes | bytearray | memoryview, csum_start: int, csum_offset: int) -> bytearray:
    """A copy of a NEEDS_CSUM frame with its checksum finished (what the kernel's skb_checksum_help does)."""
    out = bytearray(frame)
    at = csum_start + csum_offset
    if at + 2 > len(out) or csum_start >= len(out):
        return out
    c = ck.checksum(memoryview(out)[csum_start:])
    out[at] = c >> 8
    out[at + 1] = c & 0xFF
    return out


def segment(frame: bytes | bytearray | memoryview, gso_size: int) -> list[bytearray]:
    """Cut an Ethernet + IPv4 + TCP super-frame (NEEDS_CSUM, partial sum in the TCP checksum field) into
    frames of `gso_size` payload bytes with finished checksums, like Linux's software GSO: sequence
    numbers advance, IPv4 idents count up, FIN and PSH stay on the last segment, CWR on the first."""
    mv = memoryview(frame)
    ihl = (mv[14] & 15) << 2
    t = 14 + ihl
    thl = (mv[t + 12] >> 4) << 2
    head = t + thl
    payload = mv[head:]
    total_tcp = len(mv) - t
    if gso_size <= 0 or len(payload) <= gso_size:
        return [complete_checksum(mv, t, 16)]
    partial = (mv[t + 16] << 8) | mv[t + 17]
    seq = int.from_bytes(mv[t + 4:t + 8], "big")
    ident = (mv[18] << 8) | mv[19]
    flags = mv[t + 13]
    out = []
    for off in range(0, len(payload), gso_size):
        chunk = payload[off:off + gso_size]
        last = off + gso_size >= len(payload)
        f = bytearray(mv[:head])
        f += chunk
        iplen = ihl + thl + len(chunk)
        f[16:18] = iplen.to_bytes(2, "big")
        f[18:20] = ((ident + off // gso_size) & 0xFFFF).to_bytes(2, "big")
        f[24:26] = b"\0\0"
        c = ck.checksum(memoryview(f)[14:t])
        f[24:26] = c.to_bytes(2, "big")
        f[t + 4:t + 8] = ((seq + off) & 0xFFFFFFFF).to_bytes(4, "big")
        fl = flags
        if not last:
            fl &= ~0x09  # FIN, PSH
        if off:
            fl &= ~0x80  # CWR
        f[t + 13] = fl
        # The segment's pseudo-header sum from the super-frame's: minus the old length, plus the new one.
        seg_sum = ck.fold(partial + (~total_tcp & 0xFFFF) + thl + len(chunk))
        f[t + 16:t + 18] = seg_sum.to_bytes(2, "big")
        c = ck.checksum(memoryview(f)[t:])
        f[t + 16:t + 18] = c.to_bytes(2, "big")
        out.append(f)
    return out
