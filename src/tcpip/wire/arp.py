"""ARP for IPv4 over Ethernet (RFC 826): parse with every field validated, and emit."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from ipaddress import IPv4Address

from tcpip.errors import BadLength, BadVersion, Truncated
from tcpip.wire.mac import MacAddress

Buffer = bytes | bytearray | memoryview
LEN = 28
_ARP = struct.Struct("!HHBBH6s4s6s4s")


class ArpOp(IntEnum):
    REQUEST = 1
    REPLY = 2


@dataclass(frozen=True, slots=True)
class ArpRepr:
    op: int
    sender_mac: MacAddress
    sender_ip: IPv4Address
    target_mac: MacAddress
    target_ip: IPv4Address

    @classmethod
    def parse(cls, buf: Buffer) -> ArpRepr:
        if len(buf) < LEN:
            raise Truncated("arp", f"{len(buf)} bytes, needs 28")
        htype, ptype, hlen, plen, op, sha, spa, tha, tpa = _ARP.unpack_from(buf, 0)
        if htype != 1 or ptype != 0x0800:
            raise BadVersion("arp", f"htype={htype} ptype={ptype:#06x}")
        if hlen != 6 or plen != 4:
            raise BadLength("arp", f"hlen={hlen} plen={plen}")
        if op not in (1, 2):
            raise BadVersion("arp", f"op={op}")
        return cls(op, MacAddress(sha), IPv4Address(spa), MacAddress(tha), IPv4Address(tpa))

    def buffer_len(self) -> int:
        return LEN

    def emit(self, buf: bytearray | memoryview) -> None:
        _ARP.pack_into(buf, 0, 1, 0x0800, 6, 4, self.op, self.sender_mac.packed,
                       self.sender_ip.packed, self.target_mac.packed, self.target_ip.packed)


def pack(op: int, sha: bytes, spa: bytes, tha: bytes, tpa: bytes) -> bytes:
    """The 28 ARP bytes from raw fields (hot path: no Repr)."""
    return _ARP.pack(1, 0x0800, 6, 4, op, sha, spa, tha, tpa)


unpack_from = _ARP.unpack_from
