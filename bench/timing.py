"""timeit-style timing: calibrated loops, median of repeats, garbage collector off while timing."""

from __future__ import annotations

import gc
import itertools
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

Step = Callable[[], object]


@dataclass(frozen=True)
class Timing:
    ns: float  # median ns per call over the repeats
    best: float  # fastest repeat, ns per call
    spread: float  # (max - min) / median over the repeats
    number: int  # calls per repeat
    repeats: int

    def as_dict(self) -> dict[str, float]:
        return {"ns": round(self.ns, 1), "best_ns": round(self.best, 1), "spread": round(self.spread, 3),
                "number": self.number, "repeats": self.repeats}


def _loop(step: Step, number: int) -> int:
    it = itertools.repeat(None, number)
    t0 = time.perf_counter_ns()
    for _ in it:
        step()
    return time.perf_counter_ns() - t0


def measure(step: Step, *, repeats: int = 7, target_s: float = 0.05) -> Timing:
    """Median ns per `step()` call. `number` is calibrated so one repeat lasts about `target_s`."""
    gcold = gc.isenabled()
    gc.disable()
    try:
        for _ in range(3):  # warm caches, specialising interpreter, lazy imports
            step()
        number = 1
        while True:
            t = _loop(step, number)
            if t >= target_s * 1e9 / 5 or number >= 10_000_000:
                break
            number *= 10 if t < target_s * 1e9 / 50 else 2
        number = max(1, int(number * target_s * 1e9 / max(t, 1)))
        per = [_loop(step, number) / number for _ in range(repeats)]
    finally:
        if gcold:
            gc.enable()
    med = statistics.median(per)
    return Timing(med, min(per), (max(per) - min(per)) / med if med else 0.0, number, repeats)


def measure_many(steps: dict[str, Step], *, repeats: int = 7, target_s: float = 0.05) -> dict[str, Timing]:
    """`measure` for several implementations, their repeats interleaved (round robin), so that noise
    from other processes on the machine hits every implementation alike and ratios stay meaningful."""
    gcold = gc.isenabled()
    gc.disable()
    try:
        numbers: dict[str, int] = {}
        for name, step in steps.items():
            for _ in range(3):
                step()
            number = 1
            while True:
                t = _loop(step, number)
                if t >= target_s * 1e9 / 5 or number >= 10_000_000:
                    break
                number *= 10 if t < target_s * 1e9 / 50 else 2
            numbers[name] = max(1, int(number * target_s * 1e9 / max(t, 1)))
        per: dict[str, list[float]] = {name: [] for name in steps}
        for _ in range(repeats):
            for name, step in steps.items():
                per[name].append(_loop(step, numbers[name]) / numbers[name])
    finally:
        if gcold:
            gc.enable()
    out = {}
    for name, xs in per.items():
        med = statistics.median(xs)
        out[name] = Timing(med, min(xs), (max(xs) - min(xs)) / med if med else 0.0, numbers[name], repeats)
    return out


def loop_overhead(repeats: int = 7, target_s: float = 0.05) -> Timing:
    """The cost of the timing loop and one call of an empty function (included in every figure)."""

    def nothing() -> None:
        return None

    return measure(nothing, repeats=repeats, target_s=target_s)
