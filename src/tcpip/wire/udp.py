"""UDP header (RFC 768): parse with length and pseudo-header checksum checks, emit with the 0 -> 0xFFFF rule."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from tcpip.errors import BadChecksum, BadLength, Truncated
from tcpip.wire import checksum as ck

Buffer = bytes | bytearray | memoryview
HEADER_LEN = 8
HDR = struct.Struct("!HHHH")


@dataclass(frozen=True, slots=True)
class UdpRepr:
    src_port: int
    dst_port: int
    payload_len: int

    @classmethod
    def parse(cls, buf: Buffer, src: int, dst: int, *, verify_checksum: bool = True) -> UdpRepr:
        """Parse a UDP datagram (the whole IP payload); `src`/`dst` are the IPv4 addresses as ints."""
        n = len(buf)
        if n < HEADER_LEN:
            raise Truncated("udp", f"{n} bytes, header needs 8")
        sp, dp, length, csum = HDR.unpack_from(buf, 0)
        if length < HEADER_LEN:
            raise BadLength("udp", f"length field {length} < 8")
        if length > n:
            raise Truncated("udp", f"length field {length} > IP payload {n}")
        if verify_checksum and csum and not ck.verify(buf[:length],
                                                      ck.pseudo_header_sum(src, dst, 17, length)):
            raise BadChecksum("udp", "checksum")
        return cls(sp, dp, length - HEADER_LEN)

    def buffer_len(self) -> int:
        return HEADER_LEN

    def emit(self, buf: bytearray | memoryview, src: int, dst: int, payload: Buffer) -> None:
        length = HEADER_LEN + self.payload_len
        HDR.pack_into(buf, 0, self.src_port, self.dst_port, length, 0)
        c = checksum(buf[:HEADER_LEN], payload, src, dst)
        buf[6] = c >> 8
        buf[7] = c & 0xFF


def checksum(header: Buffer, payload: Buffer, src: int, dst: int) -> int:
    """UDP checksum over pseudo-header, header (checksum field zero) and payload; 0 becomes 0xFFFF."""
    length = len(header) + len(payload)
    c = ck.checksum_parts((header, payload), ck.pseudo_header_sum(src, dst, 17, length))
    return c or 0xFFFF
