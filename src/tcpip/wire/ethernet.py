"""Ethernet II header: parse and emit (no FCS: devices strip it)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from tcpip.errors import Truncated
from tcpip.wire.mac import MacAddress

Buffer = bytes | bytearray | memoryview
HEADER_LEN = 14
MIN_FRAME = 60  # without FCS
_HDR = struct.Struct("!6s6sH")


class EtherType(IntEnum):
    IPV4 = 0x0800
    ARP = 0x0806
    IPV6 = 0x86DD


@dataclass(frozen=True, slots=True)
class EthernetRepr:
    dst: MacAddress
    src: MacAddress
    ethertype: int

    @classmethod
    def parse(cls, buf: Buffer) -> EthernetRepr:
        if len(buf) < HEADER_LEN:
            raise Truncated("ethernet", f"{len(buf)} bytes, header needs 14")
        d, s, t = _HDR.unpack_from(buf, 0)
        return cls(MacAddress(d), MacAddress(s), t)

    def buffer_len(self) -> int:
        return HEADER_LEN

    def emit(self, buf: bytearray | memoryview) -> None:
        _HDR.pack_into(buf, 0, self.dst.packed, self.src.packed, self.ethertype)


def header(dst: MacAddress, src: MacAddress, ethertype: int) -> bytes:
    return _HDR.pack(dst.packed, src.packed, ethertype)
