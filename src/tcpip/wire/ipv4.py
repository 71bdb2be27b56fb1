"""IPv4 header (RFC 791): parse with validation, emit with checksum, options kept opaque."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from ipaddress import IPv4Address

from tcpip.errors import BadChecksum, BadLength, BadVersion, Truncated
from tcpip.wire import checksum as ck

Buffer = bytes | bytearray | memoryview
HEADER_LEN = 20
MAX_LEN = 65535
FLAG_DF = 0x4000
FLAG_MF = 0x2000
OFFSET_MASK = 0x1FFF
HDR = struct.Struct("!BBHHHBBHII")  # ver_ihl tos total ident flags_frag ttl proto csum src dst


class IpProto(IntEnum):
    ICMP = 1
    TCP = 6
    UDP = 17


@dataclass(frozen=True, slots=True)
class Ipv4Repr:
    src: IPv4Address
    dst: IPv4Address
    proto: int
    payload_len: int
    ttl: int = 64
    ident: int = 0
    dont_frag: bool = False
    more_frags: bool = False
    frag_offset: int = 0  # in bytes, a multiple of 8
    dscp_ecn: int = 0
    options: bytes = b""

    @classmethod
    def parse(cls, buf: Buffer, *, verify_checksum: bool = True) -> Ipv4Repr:
        n = len(buf)
        if n < HEADER_LEN:
            raise Truncated("ipv4", f"{n} bytes, header needs 20")
        vihl, tos, total, ident, ff, ttl, proto, _c, src, dst = HDR.unpack_from(buf, 0)
        if vihl >> 4 != 4:
            raise BadVersion("ipv4", f"version {vihl >> 4}")
        hl = (vihl & 15) * 4
        if hl < HEADER_LEN:
            raise BadLength("ipv4", f"ihl={hl // 4}")
        if total < hl:
            raise BadLength("ipv4", f"total length {total} < header {hl}")
        if total > n:
            raise Truncated("ipv4", f"total length {total} > {n} bytes")
        if verify_checksum and not ck.verify(buf[:hl]):
            raise BadChecksum("ipv4", "header checksum")
        return cls(IPv4Address(src), IPv4Address(dst), proto, total - hl, ttl, ident,
                   bool(ff & FLAG_DF), bool(ff & FLAG_MF), (ff & OFFSET_MASK) * 8, tos,
                   bytes(buf[HEADER_LEN:hl]))

    def header_len(self) -> int:
        return HEADER_LEN + len(self.options)

    def buffer_len(self) -> int:
        return self.header_len()

    def emit(self, buf: bytearray | memoryview) -> None:
        if len(self.options) % 4:
            raise ValueError("IPv4 options must be padded to a multiple of 4 bytes")
        hl = self.header_len()
        ff = (self.frag_offset // 8) | (FLAG_DF if self.dont_frag else 0) | (
            FLAG_MF if self.more_frags else 0)
        HDR.pack_into(buf, 0, 0x40 | (hl // 4), self.dscp_ecn, hl + self.payload_len, self.ident,
                      ff, self.ttl, self.proto, 0, int(self.src), int(self.dst))
        buf[HEADER_LEN:hl] = self.options
        c = ck.checksum(buf[:hl])
        buf[10] = c >> 8
        buf[11] = c & 0xFF


def fill_checksum(hdr: bytearray | memoryview) -> None:
    """Recompute the header checksum in place over IHL*4 bytes."""
    hl = (hdr[0] & 15) * 4
    hdr[10] = hdr[11] = 0
    c = ck.checksum(hdr[:hl])
    hdr[10] = c >> 8
    hdr[11] = c & 0xFF


def ip_str(x: int) -> str:
    """Dotted quad of an address held as an int (the hot paths keep addresses as ints)."""
    return f"{x >> 24}.{(x >> 16) & 255}.{(x >> 8) & 255}.{x & 255}"
