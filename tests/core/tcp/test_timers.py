"""TimerHeap against a brute-force dict of deadlines: 10,000 items, reschedules, cancels, lazy deletion."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from tcpip.core.tcp.timers import TimerHeap


class Item:
    __slots__ = ("name", "timer_at")

    def __init__(self, name: int) -> None:
        self.name = name
        self.timer_at: float | None = None

    def __repr__(self) -> str:
        return f"Item({self.name})"


class Brute:
    """Deadlines in a dict; ties in the order they were (re)scheduled."""

    def __init__(self) -> None:
        self.at: dict[Item, tuple[float, int]] = {}
        self.n = 0

    def schedule(self, item: Item, at: float) -> None:
        if item in self.at and self.at[item][0] == at:
            return
        self.n += 1
        self.at[item] = (at, self.n)

    def cancel(self, item: Item) -> None:
        self.at.pop(item, None)

    def poll_at(self) -> float | None:
        return min(v[0] for v in self.at.values()) if self.at else None

    def expired(self, now: float) -> list[Item]:
        due = sorted((v, i) for i, v in self.at.items() if v[0] <= now)
        for _, i in due:
            del self.at[i]
        return [i for _, i in due]


def run(script: list[tuple[int, int, float]], n_items: int) -> TimerHeap[Item]:
    items = [Item(i) for i in range(n_items)]
    heap: TimerHeap[Item] = TimerHeap()
    brute = Brute()
    now = 0.0
    for op, k, x in script:
        item = items[k % n_items]
        if op == 0:
            at = now + x
            heap.schedule(item, at)
            brute.schedule(item, at)
        elif op == 1:
            heap.cancel(item)
            brute.cancel(item)
        else:
            now += x / 4
            assert heap.expired(now) == brute.expired(now)
        assert heap.poll_at() == brute.poll_at()
        assert len(heap) == len(brute.at)
        assert item.timer_at == (brute.at[item][0] if item in brute.at else None)
        # lazy deletion stays bounded: stale entries are compacted away
        assert len(heap._heap) <= 3 * len(heap) + 65
    return heap


@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 30), st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.5])),
                max_size=200))
def test_matches_brute_force_small(script: list[tuple[int, int, float]]) -> None:
    run(script, 31)


def test_ten_thousand_items_with_reschedules() -> None:
    rng = random.Random(6528)
    n = 10_000
    script: list[tuple[int, int, float]] = [(0, i, rng.uniform(0, 60)) for i in range(n)]
    for _ in range(30_000):
        r = rng.random()
        op = 0 if r < 0.7 else (1 if r < 0.85 else 2)
        script.append((op, rng.randrange(n), rng.choice([0.0, rng.uniform(0, 60), 0.2, 1.0])))
    script.append((2, 0, 1e9))  # drain everything
    heap = run_fast(script, n)
    assert len(heap) == 0
    assert heap.poll_at() is None


def run_fast(script: list[tuple[int, int, float]], n_items: int) -> TimerHeap[Item]:
    """Like run() but compares the full state only at expiry points (keeps 40,000 ops fast)."""
    items = [Item(i) for i in range(n_items)]
    heap: TimerHeap[Item] = TimerHeap()
    brute = Brute()
    now = 0.0
    fired = 0
    for op, k, x in script:
        item = items[k]
        if op == 0:
            heap.schedule(item, now + x)
            brute.schedule(item, now + x)
        elif op == 1:
            heap.cancel(item)
            brute.cancel(item)
        else:
            now += x / 4
            got = heap.expired(now)
            assert got == brute.expired(now)
            assert all(i.timer_at is None for i in got)
            fired += len(got)
            assert heap.poll_at() == brute.poll_at()
        assert len(heap._heap) <= 3 * len(heap) + 65
    assert fired > 1000
    return heap


def test_reschedule_later_and_earlier_fire_once_at_the_last_time() -> None:
    heap: TimerHeap[Item] = TimerHeap()
    a, b = Item(0), Item(1)
    heap.schedule(a, 5.0)
    heap.schedule(a, 1.0)   # earlier
    heap.schedule(a, 9.0)   # later: the 1.0 and 5.0 entries are stale
    heap.schedule(b, 9.0)
    assert heap.poll_at() == 9.0
    assert heap.expired(8.9) == []
    assert heap.expired(9.0) == [a, b]  # ties in scheduling order
    assert heap.expired(100.0) == []
    assert (a.timer_at, b.timer_at) == (None, None)


def test_cancel_then_schedule_again() -> None:
    heap: TimerHeap[Item] = TimerHeap()
    a = Item(0)
    heap.schedule(a, 1.0)
    heap.cancel(a)
    heap.cancel(a)
    assert heap.poll_at() is None
    assert len(heap) == 0
    heap.schedule(a, 1.0)  # same time as the stale entry: fires once
    assert heap.expired(2.0) == [a]
    assert len(heap) == 0


def test_compaction_keeps_heap_small_under_churn() -> None:
    heap: TimerHeap[Item] = TimerHeap()
    items = [Item(i) for i in range(100)]
    for rnd in range(1000):
        for it in items:
            heap.schedule(it, 1000.0 - rnd * 0.5)  # always earlier: a new entry each time
    assert len(heap._heap) <= 3 * 100 + 1
    assert heap.expired(1e6) == items


def test_on_push_is_called_for_every_new_entry_only() -> None:
    """The driver's cue to re-read poll_at: each push (new or earlier deadline), never a cancel or a
    schedule at the deadline already held."""
    heap: TimerHeap[Item] = TimerHeap()
    pushes: list[float | None] = []
    heap.on_push = lambda: pushes.append(heap.poll_at())
    a, b = Item(0), Item(1)
    heap.schedule(a, 5.0)
    heap.schedule(a, 5.0)  # unchanged: no entry, no call
    heap.schedule(b, 3.0)
    heap.cancel(b)
    heap.schedule(a, 1.0)
    assert pushes == [5.0, 3.0, 1.0]
    assert heap.expired(1.0) == [a]
    assert pushes == [5.0, 3.0, 1.0]
