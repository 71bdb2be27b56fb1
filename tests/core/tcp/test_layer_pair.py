"""Two TcpLayers back to back through a lossy, reordering, duplicating in-memory link on a virtual clock:
1 MiB each way arrives byte-identical, and both ends close cleanly."""

from __future__ import annotations

import random

import pytest
from tcp_harness import Link, advance
from testlib import ip_int

from tcpip.core.tcp.config import TcpConfig
from tcpip.core.tcp.conn import Connection
from tcpip.core.tcp.layer import TcpLayer
from tcpip.core.tcp.state import EV_ACCEPT, EV_CLOSED, EV_CONNECTED, TcpState

A = ip_int("198.18.0.1")
B = ip_int("198.18.0.2")


def _pattern(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def _run(link: Link, cfg: TcpConfig, size: int, limit: float) -> tuple[TcpLayer, TcpLayer]:
    la = TcpLayer(cfg, link.port(A), random.Random(1), b"a" * 16)
    lb = TcpLayer(cfg, link.port(B), random.Random(2), b"b" * 16)
    link.layers = {A: la, B: lb}
    lst = lb.listen(B, 80, 16)
    now = 0.0
    ca = la.connect(A, 0, B, 80, now)
    cb: Connection | None = None
    out_a, out_b = _pattern(size, 1), _pattern(size, 2)
    got: dict[str, bytearray] = {"a": bytearray(), "b": bytearray()}
    sent = {"a": 0, "b": 0}
    closed: list[tuple[Connection, object]] = []
    started = {"a": False, "b": False}

    def pump(name: str, conn: Connection, data: bytes) -> None:
        if started[name] and sent[name] < len(data) and conn.send_free:
            sent[name] += conn.send(memoryview(data)[sent[name]:], now)
            if sent[name] == len(data):
                conn.shutdown(now)
        if conn.readable:
            got[name] += conn.recv(now)

    while now < limit:
        for layer in (la, lb):
            for kind, subject, detail in layer.poll_events():
                if kind == EV_CONNECTED:
                    started["a"] = True
                elif kind == EV_ACCEPT:
                    cb = detail
                    assert lst.accept() is cb
                    started["b"] = True
                elif kind == EV_CLOSED:
                    closed.append((subject, detail))
        pump("a", ca, out_a)
        if cb is not None:
            pump("b", cb, out_b)
        if len(closed) == 2 and not la.conns and not lb.conns:
            break
        t = advance(link, (la, lb), now)
        if t is None:
            break
        now = t
    assert bytes(got["b"]) == out_a  # what B read is what A sent
    assert bytes(got["a"]) == out_b
    assert [d for _, d in closed] == [None, None]
    assert ca.eof
    assert cb is not None
    assert cb.eof
    return la, lb


def test_one_mib_each_way_over_a_bad_link() -> None:
    link = Link(seed=42, loss=0.05, dup=0.01, reorder=0.05, corrupt=0.002)
    cfg = TcpConfig(time_wait=1.0, rcvbuf=65536, sndbuf=65536)
    la, lb = _run(link, cfg, 1 << 20, limit=600.0)
    assert la.stats.retrans_segs > 0
    assert lb.stats.retrans_segs > 0
    assert la.stats.in_csum_errors + lb.stats.in_csum_errors > 0
    assert la.stats.curr_estab == lb.stats.curr_estab == 0
    assert la.poll_at() is None
    assert lb.poll_at() is None
    assert all(c.state == TcpState.CLOSED for c in la.conns.values())


def test_clean_link_defaults() -> None:
    link = Link(seed=1, loss=0.0, dup=0.0, reorder=0.0)
    la, lb = _run(link, TcpConfig(time_wait=1.0), 1 << 20, limit=60.0)
    assert la.stats.retrans_segs == 0
    assert lb.stats.retrans_segs == 0


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10))
def test_many_seeds(seed: int) -> None:
    link = Link(seed=seed, loss=0.05, dup=0.01, reorder=0.05, corrupt=0.002)
    _run(link, TcpConfig(time_wait=1.0, rcvbuf=65536, sndbuf=65536, sack=seed % 2 == 0,
                         timestamps=seed % 3 != 0), 1 << 20, limit=600.0)
