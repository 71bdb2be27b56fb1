"""rx_ack.pure_ack (the bulk sender's ACK fast path) against the general path: the same bulk transfers over a
lossy, reordering link with input.FAST_ACK on and off give identical frames, stats and connection state."""

from __future__ import annotations

import random
from collections import OrderedDict
from typing import Any

import pytest
from tcp_harness import Link, Port, advance
from testlib import ip_int

from tcpip.core.tcp import input as tcp_input
from tcpip.core.tcp.config import TcpConfig
from tcpip.core.tcp.conn import Connection
from tcpip.core.tcp.layer import TcpLayer
from tcpip.core.tcp.state import EV_ACCEPT, EV_CLOSED, EV_CONNECTED

A = ip_int("198.18.0.1")
B = ip_int("198.18.0.2")
_SKIP = {"layer", "listener", "config", "key"}  # back references and constants, not per-ACK state


def _state(x: Any, depth: int = 0) -> Any:
    """Every field reachable from a connection (slots and dicts, recursively), as comparable values."""
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    if isinstance(x, (bytes, bytearray, memoryview)):
        return bytes(x)
    if depth > 6:
        return type(x).__name__
    if isinstance(x, (list, tuple, OrderedDict, dict, set, frozenset)) or (hasattr(x, "__iter__") and \
            not hasattr(x, "__slots__") and not hasattr(x, "__dict__")):
        if isinstance(x, (dict, OrderedDict)):
            return [(_state(k, depth + 1), _state(v, depth + 1)) for k, v in x.items()]
        if isinstance(x, (set, frozenset)):
            return sorted(repr(_state(v, depth + 1)) for v in x)
        return [_state(v, depth + 1) for v in x]
    names: list[str] = []
    for cls in type(x).__mro__:
        names += [s for s in getattr(cls, "__slots__", ()) if s not in names]
    names += [k for k in getattr(x, "__dict__", {}) if k not in names]
    return (type(x).__name__, [(n, _state(getattr(x, n, "<unset>"), depth + 1)) for n in names if n not in _SKIP])


def _run(cfg: TcpConfig, seed: int, loss: float, size: int,
         chunk: int = 0) -> tuple[list[Any], list[Any], dict[str, int]]:
    """A sends `size` bytes to B (`chunk` > 0: at most that much every 60 ms, past RTT and delayed ACK) and
    both close."""
    link = Link(seed, loss, dup=0.0, reorder=loss)
    la = TcpLayer(cfg, Port(link, A), random.Random(1), b"a" * 16)
    lb = TcpLayer(cfg, Port(link, B), random.Random(2), b"b" * 16)
    link.layers = {A: la, B: lb}
    lst = lb.listen(B, 80, 16)
    now = 0.0
    ca = la.connect(A, 0, B, 80, now)
    cb: Connection | None = None
    data = random.Random(seed).randbytes(size)
    got = bytearray()
    sent, started, closed, write_at = 0, False, 0, 0.0
    trace: list[Any] = []
    while now < 300.0:
        for layer in (la, lb):
            for kind, _, detail in layer.poll_events():
                if kind == EV_CONNECTED:
                    started = True
                elif kind == EV_ACCEPT:
                    cb = detail
                    assert lst.accept() is cb
                elif kind == EV_CLOSED:
                    closed += 1
        if started and sent < size and ca.send_free and now >= write_at:
            sent += ca.send(memoryview(data)[sent:sent + chunk if chunk else size], now)
            write_at = now + 0.06 if chunk else 0.0
            if sent == size:
                ca.shutdown(now)
        if cb is not None:
            if cb.readable:
                got += cb.recv(now)
            if cb.eof and cb.state.name == "CLOSE_WAIT":
                cb.shutdown(now)
        trace.append((now, _state(ca), _state(cb) if cb is not None else None))
        if closed == 2 and not la.conns and not lb.conns:
            break
        wake = write_at if started and sent < size and write_at > now else None
        t = advance(link, (la, lb), now, wake)
        if t is None:
            break
        now = t
    assert bytes(got) == data
    assert closed == 2
    return link.frames, trace, {**{f"a.{k}": v for k, v in la.stats.as_dict().items()},
                                **{f"b.{k}": v for k, v in lb.stats.as_dict().items()}}


SIZE = 600_000
CASES = [
    ("sack-ts-ws-cubic", {}, 0, 0.0),
    ("sack-ts-ws-cubic-loss", {}, 3, 0.02),
    ("sack-ts-newreno-loss", {"congestion": "newreno", "window_scaling": False}, 4, 0.03),
    ("sack-nots-loss", {"timestamps": False}, 5, 0.02),
    ("nosack-ts-loss", {"sack": False}, 6, 0.02),
    ("nosack-nots-newreno-loss", {"sack": False, "timestamps": False, "congestion": "newreno"}, 7, 0.03),
    ("small-buffers-loss", {"rcvbuf": 32768, "sndbuf": 32768, "autotune": False}, 8, 0.02),
]


def _compare(monkeypatch: pytest.MonkeyPatch, cfg: TcpConfig, seed: int, loss: float, size: int,
             chunk: int = 0) -> None:
    """The same run with the fast path on and off: identical frames, counters and state after every step."""
    taken = [0, 0]
    real = tcp_input.pure_ack

    def counting(conn: Connection, seg: Any, now: float) -> bool:
        r = real(conn, seg, now)
        taken[r] += 1
        return r

    monkeypatch.setattr(tcp_input, "pure_ack", counting)
    monkeypatch.setattr(tcp_input, "FAST_ACK", True)
    fast = _run(cfg, seed, loss, size, chunk)
    assert taken[1] > 20  # the fast path took ACKs
    if loss:
        assert taken[0] > 0  # and declined some (SACK blocks, recovery, duplicates)
        assert fast[2]["a.RetransSegs"] > 0
    monkeypatch.setattr(tcp_input, "FAST_ACK", False)
    n = taken[1]
    slow = _run(cfg, seed, loss, size, chunk)
    assert taken[1] == n  # off means off
    assert_same_run(fast, slow)


def assert_same_run(fast: Any, slow: Any) -> None:
    """Two `_run` results are the same run: every frame, the counters, the state after every step."""
    assert len(fast[0]) == len(slow[0])
    for i, (f, s) in enumerate(zip(fast[0], slow[0], strict=True)):
        assert f == s, f"frame {i} differs"
    assert fast[2] == slow[2]
    assert len(fast[1]) == len(slow[1])
    for i, (f, s) in enumerate(zip(fast[1], slow[1], strict=True)):
        assert f == s, f"state after step {i} differs"


@pytest.mark.parametrize(("name", "opts", "seed", "loss"), CASES, ids=[c[0] for c in CASES])
def test_fast_path_changes_nothing(monkeypatch: pytest.MonkeyPatch, name: str, opts: dict[str, Any], seed: int,
                                   loss: float) -> None:
    _compare(monkeypatch, TcpConfig(time_wait=1.0, **opts), seed, loss, SIZE)


@pytest.mark.parametrize("loss", [0.0, 0.02])
def test_small_flights(monkeypatch: pytest.MonkeyPatch, loss: float) -> None:
    """An application writing 4000 bytes every 60 ms: ACKs leave part of a segment or nothing in flight (the probe
    timeout's short-flight and idle branches)."""
    _compare(monkeypatch, TcpConfig(time_wait=1.0), 11, loss, 300_000, chunk=4000)
