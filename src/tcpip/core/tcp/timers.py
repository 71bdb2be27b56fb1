"""Per-connection deadlines in one heap with lazy deletion: O(log n) to arm, nothing to pay for idle ones.

An item carries its own deadline in `timer_at`; a heap entry (at, counter, item) is live only while
`item.timer_at == at`. Cancelling or re-arming just changes the field and leaves the old entry to be
discarded when it reaches the top; the heap is rebuilt when stale entries outnumber live ones 2 to 1.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar


class Timed(Protocol):
    timer_at: float | None


T = TypeVar("T", bound=Timed)

_COMPACT_MIN = 64  # never bother rebuilding tiny heaps


class TimerHeap(Generic[T]):
    """Deadlines of items; `expired(now)` hands back the due ones in deadline order."""

    __slots__ = ("_count", "_heap", "_live", "on_push")

    def __init__(self) -> None:
        # called after each new entry, the only way a deadline moves earlier (a driver re-reads poll_at)
        self.on_push: Callable[[], None] | None = None
        self._heap: list[tuple[float, int, T]] = []
        self._count = 0   # tie-breaker: items themselves are never compared
        self._live = 0    # items with a deadline (timer_at not None) set through this heap

    def __len__(self) -> int:
        return self._live

    def schedule(self, item: T, at: float) -> None:
        """Set item's deadline to `at` (replacing any earlier or later one)."""
        if item.timer_at is None:
            self._live += 1
        elif item.timer_at == at:
            return  # already live at that time
        item.timer_at = at
        self._count += 1
        heapq.heappush(self._heap, (at, self._count, item))
        if len(self._heap) > _COMPACT_MIN and len(self._heap) > 3 * self._live:
            self._compact()
        if self.on_push is not None:
            self.on_push()

    def cancel(self, item: T) -> None:
        """Forget item's deadline (its heap entry goes stale)."""
        if item.timer_at is not None:
            item.timer_at = None
            self._live -= 1

    def poll_at(self) -> float | None:
        """The earliest live deadline, or None."""
        heap = self._heap
        while heap:
            at, _, item = heap[0]
            if item.timer_at == at:
                return at
            heapq.heappop(heap)
        return None

    def expired(self, now: float) -> list[T]:
        """Pop every live deadline <= now (earliest first); their timer_at becomes None."""
        heap = self._heap
        out: list[T] = []
        while heap and heap[0][0] <= now:
            at, _, item = heapq.heappop(heap)
            if item.timer_at == at:
                item.timer_at = None
                out.append(item)
        self._live -= len(out)
        return out

    def _compact(self) -> None:
        seen: set[int] = set()
        live = []
        for e in self._heap:  # keep one entry per live item
            item = e[2]
            if item.timer_at == e[0] and id(item) not in seen:
                seen.add(id(item))
                live.append(e)
        heapq.heapify(live)
        self._heap = live
