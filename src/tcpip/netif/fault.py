"""FaultInjector: a device middleware that drops, duplicates, reorders, corrupts, truncates and delays frames.

Reproducible by construction: each direction has its own `random.Random` stream derived from the seed, and
every frame draws the same number of values from its stream whatever happens to it. So the fate of the k-th
frame in a direction depends only on the seed, k and that frame's length, never on how transmit and receive
interleave (which on a TAP device depends on the kernel's timing) nor on the contents of earlier frames.
"""

from __future__ import annotations

import asyncio
import inspect
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from tcpip.errors import DeviceClosedError, TcpipError
from tcpip.netif.clock import Clock, LoopClock, TimerHandle
from tcpip.netif.device import Buffer, Deliver, DeviceStats, FrameCallback, NetworkDevice
from tcpip.wire.mac import MacAddress

_WAYS = ("tx", "rx")


@dataclass(slots=True)
class FaultStats:
    """Counts of one direction (or of both, in `FaultInjector.fault_stats`)."""

    frames: int = 0  # frames offered to the injector
    passed: int = 0  # frames handed on, duplicates included
    dropped: int = 0
    duplicated: int = 0
    reordered: int = 0  # frames held back so that a later one overtakes them
    corrupted: int = 0  # one bit flipped
    truncated: int = 0
    delayed: int = 0  # frames that went through the delay line
    tx_errors: int = 0  # the inner device refused a (delayed or held) frame: counted, not raised


class FaultInjector:
    """Wraps any device; faults apply to frames in both directions (or only `direction="tx"`/`"rx"`).

    Probabilities are per frame and independent: `drop`; `corrupt` (flip one random bit); `truncate` (cut at a
    random length, at least one byte kept); `duplicate` (hand the frame on twice); `reorder` (hold the frame
    until the next frame in its direction has overtaken it, or at most `hold` seconds on the clock, so a frame
    is never stuck; with `hold=0` only a later frame releases it). `delay` (seconds, on the clock) delays
    every frame; frames keep their order.

    Timers (`delay`, `hold`) run on `clock`, the event loop's when None. Frames handed to `transmit` are
    copied, so callers may reuse their buffers. A frame bigger than the device's MTU still raises (misuse);
    the inner device refusing a delayed frame later is counted in `tx_errors`. Drops are also counted in
    the inner device's `stats.tx_dropped`/`rx_dropped`.
    """

    def __init__(self, device: NetworkDevice, *, seed: int = 0, drop: float = 0.0, duplicate: float = 0.0,
                 reorder: float = 0.0, corrupt: float = 0.0, truncate: float = 0.0, delay: float = 0.0,
                 direction: str = "both", clock: Clock | None = None, hold: float = 0.05) -> None:
        for name, p in (("drop", drop), ("duplicate", duplicate), ("reorder", reorder),
                        ("corrupt", corrupt), ("truncate", truncate)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
        if direction not in ("both", "tx", "rx"):
            raise ValueError("direction is 'both', 'tx' or 'rx'")
        if delay < 0 or hold < 0:
            raise ValueError("delay and hold must be >= 0")
        self.inner = device
        self.seed = seed
        self.drop, self.duplicate, self.reorder = drop, duplicate, reorder
        self.corrupt, self.truncate, self.delay, self.hold = corrupt, truncate, delay, hold
        self._tx = direction in ("both", "tx")
        self._rx = direction in ("both", "rx")
        self._active = bool(drop or duplicate or reorder or corrupt or truncate or delay)
        self._clock = clock
        # Separate streams: the fate of the k-th frame of a direction ignores the other direction.
        self._rng = {w: random.Random(f"tcpip.FaultInjector:{seed}:{w}") for w in _WAYS}
        self.stats_by_way = {w: FaultStats() for w in _WAYS}
        self._held: dict[str, bytes | None] = dict.fromkeys(_WAYS)
        self._hold_timer: dict[str, TimerHandle | None] = dict.fromkeys(_WAYS)
        self._line: dict[str, deque[tuple[float, bytes]]] = {w: deque() for w in _WAYS}
        self._line_timer: dict[str, TimerHandle | None] = dict.fromkeys(_WAYS)
        self._deliver: Deliver | None = None

    # -- device protocol ---------------------------------------------------------------------
    @property
    def mac(self) -> MacAddress:
        return self.inner.mac

    @mac.setter
    def mac(self, value: MacAddress) -> None:
        self.inner.mac = value

    @property
    def mtu(self) -> int:
        return self.inner.mtu

    @mtu.setter
    def mtu(self, value: int) -> None:
        self.inner.mtu = value

    @property
    def stats(self) -> DeviceStats:
        return self.inner.stats  # type: ignore[attr-defined, no-any-return]

    @property
    def fault_stats(self) -> FaultStats:
        """Both directions added up."""
        tx, rx = self.stats_by_way["tx"], self.stats_by_way["rx"]
        return FaultStats(*(a + b for a, b in zip(_fields(tx), _fields(rx), strict=True)))

    @property
    def closed(self) -> bool:
        return self.inner.closed

    def transmit(self, parts: Sequence[Buffer]) -> None:
        if not self._tx or not self._active:
            self.inner.transmit(parts)
            return
        if self.inner.closed:
            raise DeviceClosedError("device is disconnected")
        frame = b"".join(parts)
        if len(frame) > self.inner.mtu + 14:
            self.inner.transmit((frame,))  # let the device raise (and count) its own misuse error
            return
        self._apply("tx", frame)

    async def write(self, frame: Buffer) -> None:
        self.transmit((frame,))

    async def writev(self, parts: Sequence[Buffer]) -> None:
        self.transmit(parts)

    def attach(self, deliver: Deliver | None) -> None:
        self._deliver = deliver
        self.inner.attach(None if deliver is None else self._on_rx)

    async def listen(self, callback: FrameCallback) -> None:
        """The inner device's listen loop with faults applied; frames released later by a timer (delay,
        hold) reach `callback` without waiting for the next received frame."""
        queue: deque[memoryview] = deque()
        wake = asyncio.Event()

        def collect(frame: memoryview) -> None:
            queue.append(frame)
            wake.set()

        async def drain() -> None:
            while True:
                while queue:
                    r = callback(queue.popleft())
                    if inspect.isawaitable(r):
                        await r
                wake.clear()
                await wake.wait()

        self._deliver = collect
        loop = asyncio.get_running_loop()
        drainer = loop.create_task(drain())
        inner = loop.create_task(self.inner.listen(self._on_rx))
        try:
            await asyncio.wait((drainer, inner), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (drainer, inner):
                t.cancel()
            await asyncio.gather(drainer, inner, return_exceptions=True)
            if self._deliver is collect:
                self._deliver = None
        for t in (inner, drainer):  # an error of the callback or of the device propagates
            err = t.exception() if t.done() and not t.cancelled() else None
            if err is not None:
                raise err

    async def disconnect(self) -> None:
        self._cancel_timers()
        await self.inner.disconnect()

    def close(self) -> None:
        self._cancel_timers()
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()

    def _cancel_timers(self) -> None:
        for w in _WAYS:
            for timers in (self._hold_timer, self._line_timer):
                h = timers[w]
                if h is not None:
                    h.cancel()
                    timers[w] = None
            self._held[w] = None
            self._line[w].clear()

    # -- faults ------------------------------------------------------------------------------
    def _on_rx(self, frame: memoryview) -> None:
        if not self._rx or not self._active:
            if self._deliver is not None:
                self._deliver(frame)
            return
        self._apply("rx", bytes(frame))  # a copy: the device may reuse its buffer

    def _apply(self, way: str, frame: bytes) -> None:
        r = self._rng[way].random
        # Always seven draws per frame, so later fates do not depend on this frame's.
        p_drop, p_corrupt, at_corrupt, p_trunc, at_trunc, p_dup, p_reorder = (
            r(), r(), r(), r(), r(), r(), r())
        st = self.stats_by_way[way]
        st.frames += 1
        if p_drop < self.drop:
            st.dropped += 1
            ds = getattr(self.inner, "stats", None)
            if isinstance(ds, DeviceStats):
                if way == "tx":
                    ds.tx_dropped += 1
                else:
                    ds.rx_dropped += 1
            return
        n = len(frame)
        if p_corrupt < self.corrupt and n:
            b = bytearray(frame)
            bit = int(at_corrupt * n * 8)
            b[bit >> 3] ^= 1 << (bit & 7)
            frame = bytes(b)
            st.corrupted += 1
        if p_trunc < self.truncate and n > 1:
            frame = frame[: 1 + int(at_trunc * (n - 1))]  # 1 .. n-1 bytes kept
            st.truncated += 1
        dup = p_dup < self.duplicate
        if dup:
            st.duplicated += 1
        if p_reorder < self.reorder and self._held[way] is None:
            st.reordered += 1
            if dup:
                self._out(way, frame)
            self._held[way] = frame
            if self.hold:
                clock = self._get_clock()
                self._hold_timer[way] = clock.call_at(clock.now() + self.hold, lambda: self._release(way))
            return
        self._out(way, frame)
        if dup:
            self._out(way, frame)
        if self._held[way] is not None:
            self._release(way)

    def _release(self, way: str) -> None:
        """Hand on the held frame: a later frame has overtaken it, or it has waited `hold` seconds."""
        held = self._held[way]
        self._held[way] = None
        h = self._hold_timer[way]
        if h is not None:
            h.cancel()
            self._hold_timer[way] = None
        if held is not None:
            self._out(way, held)

    def _get_clock(self) -> Clock:
        if self._clock is None:
            self._clock = LoopClock()
        return self._clock

    def _out(self, way: str, frame: bytes) -> None:
        if not self.delay:
            self._emit(way, frame)
            return
        self.stats_by_way[way].delayed += 1
        clock = self._get_clock()
        line = self._line[way]
        due = clock.now() + self.delay
        if line and line[-1][0] > due:  # never overtake (the clock is monotonic, but be safe)
            due = line[-1][0]
        line.append((due, frame))
        if self._line_timer[way] is None:
            self._line_timer[way] = clock.call_at(due, lambda: self._flush_line(way))

    def _flush_line(self, way: str) -> None:
        self._line_timer[way] = None
        clock = self._get_clock()
        now = clock.now()
        line = self._line[way]
        while line and line[0][0] <= now:
            self._emit(way, line.popleft()[1])
        if line and self._line_timer[way] is None:
            self._line_timer[way] = clock.call_at(line[0][0], lambda: self._flush_line(way))

    def _emit(self, way: str, frame: bytes) -> None:
        st = self.stats_by_way[way]
        st.passed += 1
        if way == "tx":
            try:
                self.inner.transmit((frame,))
            except (OSError, TcpipError):  # closed meanwhile, or the kernel refused it
                st.tx_errors += 1
        elif self._deliver is not None:
            self._deliver(memoryview(frame))


def _fields(s: FaultStats) -> tuple[int, ...]:
    return tuple(getattr(s, f) for f in FaultStats.__dataclass_fields__)
