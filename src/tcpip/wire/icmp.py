"""ICMPv4 messages (RFC 792): echo, destination unreachable, time exceeded, parameter problem."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from tcpip.errors import BadChecksum, Truncated
from tcpip.wire import checksum as ck

Buffer = bytes | bytearray | memoryview
HEADER_LEN = 8
_HDR = struct.Struct("!BBHHH")


class IcmpType(IntEnum):
    ECHO_REPLY = 0
    DEST_UNREACHABLE = 3
    SOURCE_QUENCH = 4
    REDIRECT = 5
    ECHO_REQUEST = 8
    TIME_EXCEEDED = 11
    PARAM_PROBLEM = 12
    TIMESTAMP = 13
    TIMESTAMP_REPLY = 14


class UnreachCode(IntEnum):
    NET = 0
    HOST = 1
    PROTOCOL = 2
    PORT = 3
    FRAG_NEEDED = 4
    SOURCE_ROUTE_FAILED = 5


ERROR_TYPES = frozenset({3, 4, 5, 11, 12})


@dataclass(frozen=True, slots=True)
class IcmpRepr:
    """One ICMP message. `rest` is the 4 bytes after the checksum as an int (id<<16|seq for echo,
    next-hop MTU in the low 16 bits for fragmentation needed, pointer<<24 for parameter problem)."""

    type: int
    code: int
    rest: int
    data: bytes

    @classmethod
    def parse(cls, buf: Buffer, *, verify_checksum: bool = True) -> IcmpRepr:
        if len(buf) < HEADER_LEN:
            raise Truncated("icmp", f"{len(buf)} bytes, header needs 8")
        if verify_checksum and not ck.verify(buf):
            raise BadChecksum("icmp", "checksum")
        t, c, _cs, hi, lo = _HDR.unpack_from(buf, 0)
        return cls(t, c, (hi << 16) | lo, bytes(buf[HEADER_LEN:]))

    @classmethod
    def echo(cls, ident: int, seq: int, data: bytes, *, reply: bool = False) -> IcmpRepr:
        return cls(0 if reply else 8, 0, (ident << 16) | seq, data)

    @property
    def ident(self) -> int:
        return self.rest >> 16

    @property
    def seq(self) -> int:
        return self.rest & 0xFFFF

    def buffer_len(self) -> int:
        return HEADER_LEN + len(self.data)

    def emit(self, buf: bytearray | memoryview) -> None:
        _HDR.pack_into(buf, 0, self.type, self.code, 0, self.rest >> 16, self.rest & 0xFFFF)
        n = HEADER_LEN + len(self.data)
        buf[HEADER_LEN:n] = self.data
        c = ck.checksum(buf[:n])
        buf[2] = c >> 8
        buf[3] = c & 0xFF

    def to_bytes(self) -> bytes:
        b = bytearray(self.buffer_len())
        self.emit(b)
        return bytes(b)
