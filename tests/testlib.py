"""Helpers shared by the test modules: address conversions and a reference RFC 1071 checksum written out
word by word, independently of tcpip's own (an oracle must not share the code it checks)."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from ipaddress import IPv4Address

from tcpip.wire.mac import MacAddress


def ip_int(s: str) -> int:
    return int(IPv4Address(s))


def mac_bytes(s: str) -> bytes:
    return MacAddress(s).packed


def ref_ones_sum(data: bytes) -> int:
    """One's-complement sum of 16-bit words, odd length padded with a zero byte."""
    if len(data) & 1:
        data += b"\x00"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def csum(data: bytes) -> int:
    """The Internet checksum of `data` (RFC 1071), the reference way."""
    return ~ref_ones_sum(data) & 0xFFFF


async def settle(cond: Callable[[], bool] | None = None, rounds: int = 500) -> None:
    """Let the loop deliver hub frames (each hop is one call_soon): until `cond()` holds, or `rounds`
    iterations; asserts the condition was reached."""
    for _ in range(rounds):
        if cond is not None and cond():
            return
        await asyncio.sleep(0)
    if cond is not None:
        assert cond(), "condition not reached"


class Recorder(asyncio.DatagramProtocol):
    """A datagram protocol that keeps what it receives and the errors it is given."""

    def __init__(self) -> None:
        self.got: list[tuple[bytes, tuple[str, int]]] = []
        self.errors: list[Exception] = []

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.got.append((data, addr))

    def error_received(self, exc: Exception) -> None:
        self.errors.append(exc)
