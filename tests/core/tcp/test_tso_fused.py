"""The offload fast paths against the general ones: tso.push (the fused TSO send, from Connection.send) and
rx_bulk.bulk_in (an in-order super-segment in one call, from input_offloaded). Two layers exchange data both
ways over a lossy, reordering link that carries super-segments whole (as a TAP in offload mode does) and
delivers every frame through input_offloaded with a trusted checksum; the same run with both fast paths on
and off gives identical frames, counters and connection state after every step."""

from __future__ import annotations

import heapq
import random
from collections.abc import Sequence
from typing import Any

import pytest
from tcp_harness import Buffer, Link, Port
from test_rx_ack_pure import _state, assert_same_run
from testlib import ip_int

from tcpip.core.tcp import rx_bulk, tso
from tcpip.core.tcp.config import TcpConfig
from tcpip.core.tcp.conn import Connection
from tcpip.core.tcp.layer import TcpLayer
from tcpip.core.tcp.state import EV_ACCEPT, EV_CLOSED, EV_CONNECTED

A = ip_int("198.18.0.1")
B = ip_int("198.18.0.2")


class GsoLink(Link):
    """A Link whose frames go to input_offloaded (checksum trusted), super-segments (TSO) whole with their
    gso_size; a super-segment's checksum field holds the partial sum, which nothing here checks."""

    def gso_port(self, addr: int) -> Any:
        def send(src: int, dst: int, parts: Sequence[Buffer], thl: int, mss: int, now: float) -> None:
            assert src == addr
            self.send(src, dst, b"".join(bytes(p) for p in parts) + mss.to_bytes(2, "big"), now)
        return send

    def send(self, src: int, dst: int, data: bytes, now: float) -> None:
        if len(data) <= 60 + 1460:  # a plain segment: gso_size 0 appended (a super-segment carries its own)
            data += b"\0\0"
        super().send(src, dst, data, now)

    def deliver(self, now: float) -> None:
        while self.queue and self.queue[0][0] <= now:
            _, _, src, dst, pkt = heapq.heappop(self.queue)
            mv = memoryview(pkt)[:-2]
            self.layers[dst].input_offloaded(src, dst, mv, mv, now, True, int.from_bytes(pkt[-2:], "big"))


def _run(cfg: TcpConfig, seed: int, loss: float, size: int) -> tuple[list[Any], list[Any], dict[str, int]]:
    """A sends `size` bytes to B; B sends size // 3 to A from when it has half of A's; both close."""
    link = GsoLink(seed, loss, dup=loss / 2, reorder=loss)
    la = TcpLayer(cfg, Port(link, A), random.Random(1), b"a" * 16)
    lb = TcpLayer(cfg, Port(link, B), random.Random(2), b"b" * 16)
    la.enable_tso(65535, link.gso_port(A))
    lb.enable_tso(65535, link.gso_port(B))
    link.layers = {A: la, B: lb}
    lst = lb.listen(B, 80, 16)
    now = 0.0
    ca = la.connect(A, 0, B, 80, now)
    cb: Connection | None = None
    rng = random.Random(seed)
    data = {A: rng.randbytes(size), B: rng.randbytes(size // 3)}
    got: dict[int, bytearray] = {A: bytearray(), B: bytearray()}
    sent = {A: 0, B: 0}
    closed = 0
    trace: list[Any] = []
    while now < 300.0:
        for layer in (la, lb):
            for kind, _, detail in layer.poll_events():
                if kind == EV_ACCEPT:
                    cb = detail
                    assert lst.accept() is cb
                elif kind == EV_CLOSED:
                    closed += 1
                else:
                    assert kind != EV_CONNECTED or layer is la
        for me, conn in ((A, ca), (B, cb)):
            if conn is None:
                continue
            d = data[me]
            if sent[me] < len(d) and conn.send_free and conn.state.name in ("ESTABLISHED", "CLOSE_WAIT") \
                    and (me == A or len(got[B]) > size // 2):  # B answers once half of A's data is in
                sent[me] += conn.send(memoryview(d)[sent[me]:sent[me] + 65536], now)  # the app's 64 KiB writes
                if sent[me] == len(d):
                    conn.shutdown(now)
            if conn.readable:
                got[me] += conn.recv(now, 1 << 18)
        trace.append((now, _state(ca), _state(cb) if cb is not None else None))
        if closed == 2 and not la.conns and not lb.conns:
            break
        t = _advance(link, (la, lb), now)
        if t is None:
            break
        now = t
    assert bytes(got[B]) == data[A]
    assert bytes(got[A]) == data[B]
    assert closed == 2
    return link.frames, trace, {**{f"a.{k}": v for k, v in la.stats.as_dict().items()},
                                **{f"b.{k}": v for k, v in lb.stats.as_dict().items()}}


def _advance(link: Link, layers: Sequence[TcpLayer], now: float) -> float | None:
    cands = [t for t in (link.next_at(), *(x.poll_at() for x in layers)) if t is not None]
    if not cands:
        return None
    now = max(now, min(cands))
    link.deliver(now)
    for x in layers:
        x.handle_timeout(now)
    return now


SIZE = 1_500_000
CASES = [
    ("sack-ts-ws-cubic", {}, 1, 0.0),
    ("sack-ts-ws-cubic-loss", {}, 3, 0.02),
    ("sack-ts-newreno-loss", {"congestion": "newreno", "window_scaling": False}, 10, 0.05),
    ("nosack-ts-loss", {"sack": False}, 6, 0.02),
    ("sack-nots-loss", {"timestamps": False}, 3, 0.02),  # neither fast path applies: they must decline
    ("small-buffers-loss", {"rcvbuf": 32768, "sndbuf": 32768, "autotune": False}, 8, 0.02),
]


@pytest.mark.parametrize(("name", "opts", "seed", "loss"), CASES, ids=[c[0] for c in CASES])
def test_fused_offload_paths_match_the_general_ones(monkeypatch: pytest.MonkeyPatch, name: str,
                                                   opts: dict[str, Any], seed: int, loss: float) -> None:
    cfg = TcpConfig(**opts)
    taken = {"push": 0, "bulk": 0}
    real_push, real_bulk = tso.push, rx_bulk.bulk_in

    def push(conn: Connection, now: float) -> int:
        r = real_push(conn, now)
        taken["push"] += r >= 0
        return r

    def bulk(layer: TcpLayer, src: int, dst: int, payload: memoryview, now: float, gso_size: int = 0) -> bool:
        r = real_bulk(layer, src, dst, payload, now, gso_size)
        taken["bulk"] += r
        return r

    monkeypatch.setattr(tso, "push", push)
    monkeypatch.setattr(rx_bulk, "bulk_in", bulk)
    fast = _run(cfg, seed, loss, SIZE)
    if cfg.timestamps:
        assert taken["push"] > 3, taken  # the fused paths ran ...
        assert taken["bulk"] > 10, taken
    else:
        assert taken == {"push": 0, "bulk": 0}
    assert fast[2]["b.rx_gso_frames"] > 3  # super-segments crossed the link
    if loss:
        assert fast[2]["a.RetransSegs"] > 0
    monkeypatch.setattr(tso, "FAST", False)
    monkeypatch.setattr(rx_bulk, "FAST", False)
    before = dict(taken)
    slow = _run(cfg, seed, loss, SIZE)
    assert taken["bulk"] == before["bulk"]  # off means off
    assert_same_run(fast, slow)

