"""Idle connections cost nothing per tick: two stacks on a Hub with virtual time, 2,000 idle connections vs 20,
the same timer work (timer calls, connections touched, Python lines executed) over 10 idle virtual minutes."""

from __future__ import annotations

import asyncio
import random
import sys
from types import FrameType
from typing import Any

import pytest
from tcp_support import A, B

from tcpip import Stack
from tcpip.core.tcp import layer as layer_mod
from tcpip.netif import Hub, VirtualClock

pytestmark = pytest.mark.timeout(60)

IDLE_S = 600.0
STEP = 0.5


class Idle(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport


async def idle_work(n: int, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Open n connections, then let IDLE_S virtual seconds pass; count what ran meanwhile."""
    clock = VirtualClock(100.0)
    hub = Hub()
    a = await Stack.connect(hub.port(), ipv4=f"{A}/24", clock=clock, rng=random.Random(1))
    b = await Stack.connect(hub.port(), ipv4=f"{B}/24", clock=clock, rng=random.Random(2))
    accepted: list[Idle] = []

    def accept() -> Idle:
        accepted.append(Idle())
        return accepted[-1]

    await b.create_server(accept, B, 7000, backlog=n)
    conns = []
    while len(conns) < n:
        k = min(200, n - len(conns))
        conns += await asyncio.gather(*(a.create_connection(Idle, B, 7000) for _ in range(k)))
    for _ in range(10):
        await asyncio.sleep(0)
    assert len(accepted) == n
    assert a.stats()["tcp"]["CurrEstab"] == b.stats()["tcp"]["CurrEstab"] == n
    counts = {"tcp_handle_timeout": 0, "on_timer": 0, "lines": 0}
    for s in (a, b):
        poll, handle = s.tcp.layer.poll_at, s.tcp.layer.handle_timeout

        def on_handle(now: float, handle: Any = handle) -> None:
            counts["tcp_handle_timeout"] += 1
            handle(now)

        s.core.timer_sources = [(poll, on_handle) if x == (poll, handle) else x for x in s.core.timer_sources]
    real = layer_mod.on_timer

    def on_timer(conn: Any, now: float) -> None:
        counts["on_timer"] += 1
        real(conn, now)

    monkeypatch.setattr(layer_mod, "on_timer", on_timer)

    def tracer(frame: FrameType, event: str, arg: object) -> Any:
        if event == "line":
            counts["lines"] += 1
        return tracer

    t = 0.0
    sys.settrace(tracer)
    try:
        while t < IDLE_S:  # every line of Python the stacks run while idle (the loop's own included)
            clock.advance(STEP)
            t += STEP
    finally:
        sys.settrace(None)
    heap = len(a.tcp.layer.timers) + len(b.tcp.layer.timers)
    assert all(tr.is_closing() is False for tr, _ in conns)
    await a.disconnect()
    await b.disconnect()
    monkeypatch.setattr(layer_mod, "on_timer", real)
    return {**counts, "heap": heap}


async def test_idle_timer_work_does_not_grow_with_the_number_of_connections(
        monkeypatch: pytest.MonkeyPatch) -> None:
    few = await idle_work(20, monkeypatch)
    many = await idle_work(2000, monkeypatch)
    assert many["heap"] == few["heap"] == 0  # established and idle: no deadline at all
    assert many["on_timer"] == few["on_timer"] == 0  # no connection's timer ran in 10 idle minutes
    # O(1) in the number of connections: the same timer calls (the handshakes' stale SYN deadline, once
    # per stack) and the same lines of Python executed (a scan of the connections shows up here)
    assert many["tcp_handle_timeout"] == few["tcp_handle_timeout"] <= 2
    assert many["lines"] == few["lines"]
