"""Test harness for the TCP core (smoltcp style): a TcpLayer with a recording Output on a virtual clock,
segments built with TcpRepr and fed at explicit times, segments out parsed back for exact assertions."""

from __future__ import annotations

import heapq
import random
from collections.abc import Sequence
from typing import Any

from testlib import ip_int

from tcpip.core.tcp.config import TcpConfig
from tcpip.core.tcp.conn import Connection
from tcpip.core.tcp.layer import TcpLayer
from tcpip.core.tcp.listener import Listener
from tcpip.core.tcp.state import TcpState
from tcpip.wire.tcp import ACK, SYN, TcpRepr, fill_checksum, verify

LOCAL = ip_int("198.18.0.1")
REMOTE = ip_int("198.18.0.2")
LPORT = 80
RPORT = 40000
REMOTE_ISS = 1_000_000
Buffer = bytes | bytearray | memoryview


class FakeOutput:
    """Records every segment sent; `fail` makes tcp_send raise it."""

    def __init__(self, mss: int = 1460) -> None:
        self.sent: list[tuple[int, int, bytes, float]] = []
        self.mss = mss
        self.fail: Exception | None = None

    def tcp_send(self, src: int, dst: int, parts: Sequence[Buffer], now: float) -> None:
        if self.fail is not None:
            raise self.fail
        self.sent.append((src, dst, b"".join(bytes(p) for p in parts), now))

    def tcp_mss(self, dst: int, now: float) -> int:
        return self.mss

    def is_local(self, addr: int) -> bool:
        return addr == LOCAL


def build(src_port: int, dst_port: int, seq: int, ack: int, flags: int, window: int = 65535,
          payload: bytes = b"", src: int = REMOTE, dst: int = LOCAL, **opts: Any) -> bytes:
    r = TcpRepr(src_port, dst_port, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, flags, window, **opts)
    hdr = bytearray(r.header_len())
    r.emit(hdr)
    fill_checksum(hdr, src, dst, payload)
    return bytes(hdr) + payload


class Harness:
    """One TcpLayer (our side, LOCAL) and a scripted peer (REMOTE)."""

    def __init__(self, mss: int = 1460, **cfg: Any) -> None:
        cfg.setdefault("timestamps", False)
        cfg.setdefault("sack", False)
        cfg.setdefault("window_scaling", False)
        self.config = TcpConfig(**cfg)
        self.out = FakeOutput(mss)
        self.layer = TcpLayer(self.config, self.out, random.Random(7), b"0123456789abcdef")
        self.now = 0.0

    # -- input --------------------------------------------------------------------------------------------
    def feed(self, seq: int, ack: int, flags: int, window: int = 65535, payload: bytes = b"",
             at: float | None = None, sport: int = RPORT, dport: int = LPORT, **opts: Any) -> None:
        if at is not None:
            self.now = at
        raw = build(sport, dport, seq, ack, flags, window, payload, **opts)
        self.feed_raw(raw)

    def feed_raw(self, raw: bytes, src: int = REMOTE, dst: int = LOCAL, broadcast: bool = False) -> None:
        mv = memoryview(raw)
        self.layer.input(src, dst, mv, mv, self.now, broadcast)

    def advance(self, t: float) -> None:
        """Move the clock to t, firing every timer due on the way (in order)."""
        while True:
            at = self.layer.poll_at()
            if at is None or at > t:
                break
            self.now = max(self.now, at)
            self.layer.handle_timeout(self.now)
        self.now = t
        self.layer.handle_timeout(t)

    # -- output -------------------------------------------------------------------------------------------
    def take(self) -> list[tuple[TcpRepr, bytes]]:
        """Every segment sent since the last take, parsed (checksums verified)."""
        segs = []
        for src, dst, raw, _ in self.out.sent:
            assert verify(raw, src, dst), "bad checksum on output"
            r, payload = TcpRepr.parse(memoryview(raw))
            segs.append((r, bytes(payload)))
        self.out.sent.clear()
        return segs

    def take_one(self) -> tuple[TcpRepr, bytes]:
        segs = self.take()
        assert len(segs) == 1, f"expected one segment, got {[str(s) for s, _ in segs]}"
        return segs[0]

    def events(self) -> list[tuple[int, Any, Any]]:
        return self.layer.poll_events()

    # -- set-ups ------------------------------------------------------------------------------------------
    def listen(self, backlog: int = 8) -> Listener:
        return self.layer.listen(LOCAL, LPORT, backlog)

    def passive(self, window: int = 65535, **syn_opts: Any) -> Connection:
        """Listener + SYN + our SYN-ACK + peer ACK: an accepted ESTABLISHED connection, output drained."""
        lst = self.listen()
        syn_opts.setdefault("mss", self.out.mss)
        self.feed(REMOTE_ISS, 0, SYN, window, **syn_opts)
        synack, _ = self.take_one()
        tsval = syn_opts["timestamp"][0] + 1 if "timestamp" in syn_opts else 2
        ack_opts = {"timestamp": (tsval, synack.timestamp[0])} if synack.timestamp else {}
        self.feed(REMOTE_ISS + 1, synack.seq + 1, ACK, window, **ack_opts)
        conn = lst.accept()
        assert conn is not None
        assert conn.state == TcpState.ESTABLISHED
        self.take()
        self.events()
        return conn

    def active(self, window: int = 65535, **synack_opts: Any) -> Connection:
        """connect() + the peer's SYN-ACK: an ESTABLISHED active connection, output drained."""
        conn = self.layer.connect(LOCAL, LPORT, REMOTE, RPORT, self.now)
        syn, _ = self.take_one()
        synack_opts.setdefault("mss", self.out.mss)
        self.feed(REMOTE_ISS, syn.seq + 1, SYN | ACK, window, **synack_opts)
        assert conn.state == TcpState.ESTABLISHED
        self.take()
        self.events()
        return conn


class Link:
    """Delivers segments between TcpLayers after a delay, with seeded loss, duplication, reordering and
    corruption; records every frame offered to it."""

    def __init__(self, seed: int, loss: float, dup: float, reorder: float, corrupt: float = 0.0,
                 delay: float = 0.005) -> None:
        self.rng = random.Random(seed)
        self.loss, self.dup, self.reorder, self.corrupt, self.delay = loss, dup, reorder, corrupt, delay
        self.queue: list[tuple[float, int, int, int, bytes]] = []
        self.layers: dict[int, TcpLayer] = {}
        self.n = 0
        self.sent = 0
        self.frames: list[tuple[float, int, bytes]] = []  # every frame offered: (now, src, bytes)

    def port(self, addr: int) -> Port:
        return Port(self, addr)

    def send(self, src: int, dst: int, data: bytes, now: float) -> None:
        self.sent += 1
        self.frames.append((now, src, data))
        r = self.rng.random
        if r() < self.loss:
            return
        copies = 2 if r() < self.dup else 1
        for _ in range(copies):
            d = self.delay + (self.rng.uniform(0.001, 0.02) if r() < self.reorder else 0.0)
            pkt = data
            if r() < self.corrupt:
                b = bytearray(data)
                b[self.rng.randrange(len(b))] ^= 1 << self.rng.randrange(8)
                pkt = bytes(b)
            self.n += 1
            heapq.heappush(self.queue, (now + d, self.n, src, dst, pkt))

    def next_at(self) -> float | None:
        return self.queue[0][0] if self.queue else None

    def deliver(self, now: float) -> None:
        while self.queue and self.queue[0][0] <= now:
            _, _, src, dst, pkt = heapq.heappop(self.queue)
            mv = memoryview(pkt)
            self.layers[dst].input(src, dst, mv, mv, now, False)


class Port:
    def __init__(self, link: Link, addr: int) -> None:
        self.link = link
        self.addr = addr

    def tcp_send(self, src: int, dst: int, parts: Sequence[Buffer], now: float) -> None:
        self.link.send(src, dst, b"".join(bytes(p) for p in parts), now)

    def tcp_mss(self, dst: int, now: float) -> int:
        return 1460

    def is_local(self, addr: int) -> bool:
        return addr == self.addr


def advance(link: Link, layers: Sequence[TcpLayer], now: float, wake: float | None = None) -> float | None:
    """Virtual time to the next event (a frame due, a layer's timer, `wake`): deliver and fire what is due
    then; the new time, or None when nothing is pending."""
    cands = [t for t in (link.next_at(), wake, *(x.poll_at() for x in layers)) if t is not None]
    if not cands:
        return None
    now = max(now, min(cands))
    link.deliver(now)
    for x in layers:
        x.handle_timeout(now)
    return now
