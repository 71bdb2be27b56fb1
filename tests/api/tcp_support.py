"""Shared pieces of the asyncio TCP tests: two stacks on a hub, a frame sniffer that decodes TCP headers."""

from __future__ import annotations

import random
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from tcpip import Stack
from tcpip.core.tcp.config import TcpConfig
from tcpip.netif import Hub
from tcpip.netif.clock import Clock

A, B = "198.18.0.1", "198.18.0.2"


@dataclass
class Seg:
    """One TCP segment seen on the hub."""

    src: str
    dst: str
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    window: int
    payload: int


def decode(frame: bytes) -> Seg | None:
    if len(frame) < 54 or frame[12:14] != b"\x08\x00" or frame[23] != 6:
        return None
    ihl = (frame[14] & 15) * 4
    total = struct.unpack_from("!H", frame, 16)[0]
    t = 14 + ihl
    sport, dport, seq, ack, off, flags, window = struct.unpack_from("!HHIIBBH", frame, t)
    src = ".".join(map(str, frame[26:30]))
    dst = ".".join(map(str, frame[30:34]))
    return Seg(src, dst, sport, dport, seq, ack, flags, window, total - ihl - (off >> 4) * 4)


class Sniffer:
    """Every TCP segment crossing the hub, decoded."""

    def __init__(self, hub: Hub) -> None:
        self.segs: list[Seg] = []
        hub.port().attach(self._frame)

    def _frame(self, frame: memoryview) -> None:
        s = decode(bytes(frame))
        if s is not None:
            self.segs.append(s)

    def flags(self, src: str, bits: int) -> list[Seg]:
        return [s for s in self.segs if s.src == src and s.flags & bits]


@asynccontextmanager
async def two_stacks(tcp_a: TcpConfig | None = None, tcp_b: TcpConfig | None = None,
                     clock: Clock | None = None, sniff: bool = False
                     ) -> AsyncIterator[tuple[Stack, Stack, Sniffer | None]]:
    """a = 198.18.0.1 (client), b = 198.18.0.2 (server) on one hub; seeded rngs."""
    hub = Hub()
    sn = Sniffer(hub) if sniff else None
    a = await Stack.connect(hub.port(), ipv4=f"{A}/24", tcp=tcp_a, clock=clock, rng=random.Random(1))
    b = await Stack.connect(hub.port(), ipv4=f"{B}/24", tcp=tcp_b, clock=clock, rng=random.Random(2))
    try:
        yield a, b, sn
    finally:
        await a.disconnect()
        await b.disconnect()


def blob(n: int, seed: int = 0) -> bytes:
    return random.Random(n * 31 + seed).randbytes(n)
