"""Clocks for the drivers: the event loop's, and a virtual one that tests advance by hand."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from typing import Protocol


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def now(self) -> float: ...
    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle: ...


class LoopClock:
    """The running event loop's monotonic clock and timers."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop or asyncio.get_running_loop()
        self.now = self._loop.time  # type: ignore[method-assign]  # one call less per frame

    def now(self) -> float:
        return self._loop.time()

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        return self._loop.call_at(when, callback)


class _VirtualHandle:
    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class VirtualClock:
    """Time that only moves when `advance` is called; due callbacks run in time order."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._heap: list[tuple[float, int, Callable[[], None], _VirtualHandle]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        h = _VirtualHandle()
        heapq.heappush(self._heap, (when, next(self._seq), callback, h))
        return h

    def advance(self, dt: float) -> None:
        end = self._now + dt
        while self._heap and self._heap[0][0] <= end:
            when, _s, cb, h = heapq.heappop(self._heap)
            if h.cancelled:
                continue
            self._now = max(self._now, when)
            cb()
        self._now = end

    def pending(self) -> int:
        return sum(1 for e in self._heap if not e[3].cancelled)
