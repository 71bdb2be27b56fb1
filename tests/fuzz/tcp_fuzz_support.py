"""Pieces shared by the TCP fuzzers (hypothesis test and atheris target): two TcpLayers on an in-memory
link with a transfer between them, a victim connection and a listener to aim at, a segment builder for
hostile segments, and the per-segment invariant (at most one outcome counter moves)."""

from __future__ import annotations

import random
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tcpip.core.tcp.config import TcpConfig
from tcpip.core.tcp.conn import Connection
from tcpip.core.tcp.layer import TcpLayer
from tcpip.core.tcp.validate import OUTCOMES
from tcpip.wire.tcp import fill_checksum

__all__ = ["fill_checksum"]  # re-exported for the atheris target

Buffer = bytes | bytearray | memoryview
SERVER = 0xC6120001  # 198.18.0.1
CLIENT = 0xC6120002  # 198.18.0.2
ATTACKER = 0xC6120003
TRANSFER_PORT, VICTIM_PORT, LISTEN_PORT = 40000, 40001, 80
CORPUS = Path(__file__).parent / "corpus_tcp"


class _Port:
    def __init__(self, link: Link, addr: int) -> None:
        self.link = link
        self.addr = addr

    def tcp_send(self, src: int, dst: int, parts: Sequence[Buffer], now: float) -> None:
        self.link.queue.append((src, dst, b"".join(bytes(p) for p in parts)))

    def tcp_mss(self, dst: int, now: float) -> int:
        return 1460

    def is_local(self, addr: int) -> bool:
        return addr == self.addr


class Link:
    """Server and client layers; segments between them are delivered in order at each pump()."""

    def __init__(self, seed: int = 1) -> None:
        self.queue: list[tuple[int, int, bytes]] = []
        cfg = TcpConfig(rcvbuf=65536, sndbuf=65536)
        self.server = TcpLayer(cfg, _Port(self, SERVER), random.Random(seed), b"server")
        self.client = TcpLayer(TcpConfig(rcvbuf=65536, sndbuf=65536), _Port(self, CLIENT),
                               random.Random(seed + 1), b"client")
        self.now = 0.0
        self.listener = self.server.listen(0, LISTEN_PORT, 64)
        self.to_server: list[bytes] = []  # what the client sent (not the attacker), for the record

    def pump(self, dt: float = 0.001) -> None:
        for _ in range(100):
            if not self.queue:
                break
            q, self.queue = self.queue, []
            for src, dst, raw in q:
                layer = self.server if dst == SERVER else self.client
                mv = memoryview(raw)
                layer.input(src, dst, mv, mv, self.now, False)
        self.now += dt
        for layer in (self.server, self.client):
            layer.handle_timeout(self.now)

    def connect(self, sport: int) -> tuple[Connection, Connection]:
        c = self.client.connect(CLIENT, sport, SERVER, LISTEN_PORT, self.now)
        self.pump()
        s = self.listener.accept()
        assert s is not None
        return s, c


@dataclass
class Transfer:
    """`size` bytes from server to client over `link`, pumped a little at each step()."""

    link: Link
    server: Connection
    client: Connection
    data: bytes
    sent: int = 0
    got: bytearray | None = None

    def step(self) -> None:
        if self.got is None:
            self.got = bytearray()
        if self.sent < len(self.data):
            self.sent += self.server.send(self.data[self.sent:self.sent + 16384], self.link.now)
        self.link.pump()
        self.got += self.client.recv(self.link.now)

    def finish(self, limit: float = 120.0) -> bytes:
        end = self.link.now + limit
        while (self.got is None or len(self.got) < len(self.data)) and self.link.now < end:
            self.step()
        return bytes(self.got or b"")


def outcome_total(layer: TcpLayer) -> int:
    return sum(getattr(layer.stats, k) for k in OUTCOMES)


def segment(sport: int, dport: int, seq: int, ack: int, flags: int, window: int, options: bytes,
            payload: bytes, doff: int | None = None, urgent: int = 0, csum: str = "ok",
            src: int = CLIENT, dst: int = SERVER) -> bytes:
    """A TCP segment with raw option bytes (padded with EOL), any data offset and checksum."""
    opts = options + b"\x00" * (-len(options) % 4)
    off = doff if doff is not None else 5 + len(opts) // 4
    hdr = bytearray(struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                                (off & 0xF) << 4, flags & 0xFF, window & 0xFFFF, 0, urgent & 0xFFFF)) + opts
    fill_checksum(hdr, src, dst, payload)
    if csum == "zero":
        hdr[16:18] = b"\0\0"
    elif csum == "bad":
        hdr[16] ^= 0x40
    return bytes(hdr) + payload


def inject(layer: TcpLayer, raw: bytes, now: float, src: int = CLIENT, dst: int = SERVER) -> None:
    """Feed one segment and check the invariant: InSegs +1, at most one outcome counter."""
    before_in, before_out = layer.stats.in_segs, outcome_total(layer)
    mv = memoryview(raw)
    layer.input(src, dst, mv, mv, now, False)
    assert layer.stats.in_segs == before_in + 1
    moved = outcome_total(layer) - before_out
    assert moved in (0, 1), f"{moved} outcome counters for one segment: {raw.hex()}"


def corpus() -> list[tuple[str, str, bytes]]:
    """(name, target, segment) from corpus_tcp/*.hex; a line is `target hex` (target: listener|victim)."""
    out = []
    for p in sorted(CORPUS.glob("*.hex")):
        target, _, hx = p.read_text().strip().partition(" ")
        out.append((p.stem, target, bytes.fromhex(hx)))
    return out
