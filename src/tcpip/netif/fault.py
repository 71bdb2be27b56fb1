"""FaultInjector: a device middleware that drops, duplicates, reorders, corrupts, truncates and delays frames."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass

from tcpip.netif.clock import Clock, LoopClock
from tcpip.netif.device import Buffer, Deliver, DeviceStats, FrameCallback, NetworkDevice
from tcpip.wire.mac import MacAddress


@dataclass(slots=True)
class FaultStats:
    passed: int = 0
    dropped: int = 0
    duplicated: int = 0
    reordered: int = 0
    corrupted: int = 0
    truncated: int = 0
    delayed: int = 0


class FaultInjector:
    """Wraps any device; faults apply to frames in both directions (or only `direction="tx"`/`"rx"`).

    Reproducible: every decision comes from `random.Random(seed)`. Probabilities are per frame: `drop`,
    `duplicate`, `reorder` (hold the frame and let the next one overtake it), `corrupt` (flip one random bit),
    `truncate` (cut at a random length), `delay` (seconds, on the clock; frames keep their order).
    """

    def __init__(self, device: NetworkDevice, *, seed: int = 0, drop: float = 0.0, duplicate: float = 0.0,
                 reorder: float = 0.0, corrupt: float = 0.0, truncate: float = 0.0, delay: float = 0.0,
                 direction: str = "both", clock: Clock | None = None) -> None:
        for name, p in (("drop", drop), ("duplicate", duplicate), ("reorder", reorder),
                        ("corrupt", corrupt), ("truncate", truncate)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
        if direction not in ("both", "tx", "rx"):
            raise ValueError("direction is 'both', 'tx' or 'rx'")
        if delay < 0:
            raise ValueError("delay must be >= 0")
        self.inner = device
        self.rng = random.Random(seed)
        self.drop, self.duplicate, self.reorder = drop, duplicate, reorder
        self.corrupt, self.truncate, self.delay = corrupt, truncate, delay
        self._tx = direction in ("both", "tx")
        self._rx = direction in ("both", "rx")
        self._clock = clock
        self.fault_stats = FaultStats()
        self._held: dict[str, bytes | None] = {"tx": None, "rx": None}
        self._deliver: Deliver | None = None
        self._queue: asyncio.Queue[memoryview] | None = None

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
    def closed(self) -> bool:
        return self.inner.closed

    def transmit(self, parts: Sequence[Buffer]) -> None:
        if not self._tx:
            self.inner.transmit(parts)
            return
        self._apply("tx", b"".join(parts))

    async def write(self, frame: Buffer) -> None:
        self.transmit((frame,))

    async def writev(self, parts: Sequence[Buffer]) -> None:
        self.transmit(parts)

    def attach(self, deliver: Deliver | None) -> None:
        self._deliver = deliver
        self.inner.attach(None if deliver is None else self._on_rx)

    async def listen(self, callback: FrameCallback) -> None:
        # Reuse the inner device's listen loop, with faults applied before the callback.
        pending: list[memoryview] = []

        def collect(f: memoryview) -> None:
            pending.append(f)

        self._deliver = collect

        async def on_frame(frame: memoryview) -> None:
            if self._rx:
                self._apply("rx", bytes(frame))
            else:
                pending.append(frame)
            while pending:
                r = callback(pending.pop(0))
                if r is not None:
                    await r

        await self.inner.listen(on_frame)

    async def disconnect(self) -> None:
        await self.inner.disconnect()

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()

    # -- faults ------------------------------------------------------------------------------
    def _on_rx(self, frame: memoryview) -> None:
        if not self._rx:
            if self._deliver is not None:
                self._deliver(frame)
            return
        self._apply("rx", bytes(frame))

    def _apply(self, way: str, frame: bytes) -> None:
        r = self.rng.random
        st = self.fault_stats
        if self.drop and r() < self.drop:
            st.dropped += 1
            return
        if self.corrupt and frame and r() < self.corrupt:
            b = bytearray(frame)
            bit = self.rng.randrange(len(b) * 8)
            b[bit >> 3] ^= 1 << (bit & 7)
            frame = bytes(b)
            st.corrupted += 1
        if self.truncate and len(frame) > 1 and r() < self.truncate:
            frame = frame[: self.rng.randrange(1, len(frame))]
            st.truncated += 1
        copies = 2 if self.duplicate and r() < self.duplicate else 1
        if copies == 2:
            st.duplicated += 1
        if self.reorder and self._held[way] is None and r() < self.reorder:
            self._held[way] = frame  # released right after the next frame in this direction
            st.reordered += 1
            if copies == 2:
                self._out(way, frame)
            return
        for _ in range(copies):
            self._out(way, frame)
        held = self._held[way]
        if held is not None:
            self._held[way] = None
            self._out(way, held)

    def _out(self, way: str, frame: bytes) -> None:
        if self.delay:
            self.fault_stats.delayed += 1
            clock = self._clock or LoopClock()
            clock.call_at(clock.now() + self.delay, lambda: self._emit(way, frame))
            return
        self._emit(way, frame)

    def _emit(self, way: str, frame: bytes) -> None:
        self.fault_stats.passed += 1
        if way == "tx":
            if not self.inner.closed:
                try:
                    self.inner.transmit((frame,))
                except OSError:
                    pass
        elif self._deliver is not None:
            self._deliver(memoryview(frame))
