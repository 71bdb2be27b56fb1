"""The network device protocol (mirage's NETWORK) and the push-model base shared by every device."""

from __future__ import annotations

import asyncio
import inspect
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from tcpip.errors import DeviceClosedError, MessageTooLongError
from tcpip.guard import CallbackGuard
from tcpip.wire.mac import MacAddress

Buffer = bytes | bytearray | memoryview
FrameCallback = Callable[[memoryview], Awaitable[None] | None]
Deliver = Callable[[memoryview], None]


@runtime_checkable
class NetworkDevice(Protocol):
    """What the stack needs from a device. `write`/`writev`/`listen`/`disconnect` are mirage's NETWORK;
    `transmit`/`attach` are the synchronous fast path the stack uses (no coroutine per frame)."""

    mac: MacAddress
    mtu: int

    async def write(self, frame: Buffer) -> None: ...
    async def writev(self, parts: Sequence[Buffer]) -> None: ...
    async def listen(self, callback: FrameCallback) -> None: ...
    async def disconnect(self) -> None: ...
    def transmit(self, parts: Sequence[Buffer]) -> None: ...
    def attach(self, deliver: Deliver | None) -> None: ...
    @property
    def closed(self) -> bool: ...


@dataclass(slots=True)
class DeviceStats:
    rx_frames: int = 0
    rx_bytes: int = 0
    tx_frames: int = 0
    tx_bytes: int = 0
    tx_dropped: int = 0  # full kernel queue (EAGAIN) or a fault injector
    rx_dropped: int = 0  # nobody listening, or the listen queue was full
    tx_oversize: int = 0
    rx_callback_errors: int = 0  # the `listen` callback raised: contained, listening goes on


class BaseDevice:
    """Common part of devices: MTU check, a push receiver (`attach`) and a bounded queue for `listen`."""

    LISTEN_QUEUE = 4096

    def __init__(self, mac: MacAddress, mtu: int) -> None:
        if not 68 <= mtu <= 65535:
            raise ValueError(f"MTU {mtu} outside 68..65535")
        self.mac = mac
        self.mtu = mtu
        self.stats = DeviceStats()
        self._deliver: Deliver | None = None
        self._closed = False
        self._queue: deque[memoryview] = deque()
        self._wakeup: asyncio.Event | None = None

    @property
    def closed(self) -> bool:
        return self._closed

    # -- transmit ---------------------------------------------------------------------------
    def _send(self, parts: Sequence[Buffer], size: int) -> None:
        raise NotImplementedError

    def transmit(self, parts: Sequence[Buffer]) -> None:
        """Send one frame made of `parts` now; never blocks. Raises on misuse (closed, too big)."""
        if self._closed:
            raise DeviceClosedError("device is disconnected")
        size = 0
        for p in parts:
            size += len(p)
        if size > self.mtu + 14:
            self.stats.tx_oversize += 1
            raise MessageTooLongError(f"frame of {size} bytes exceeds MTU {self.mtu} + 14")
        self._send(parts, size)

    async def write(self, frame: Buffer) -> None:
        self.transmit((frame,))

    async def writev(self, parts: Sequence[Buffer]) -> None:
        self.transmit(parts)

    # -- receive ----------------------------------------------------------------------------
    def attach(self, deliver: Deliver | None) -> None:
        """Push model: `deliver(frame)` is called synchronously for each received frame."""
        self._deliver = deliver

    def _received(self, frame: memoryview) -> None:
        self.stats.rx_frames += 1
        self.stats.rx_bytes += len(frame)
        d = self._deliver
        if d is not None:
            d(frame)
            return
        if self._wakeup is None or len(self._queue) >= self.LISTEN_QUEUE:
            self.stats.rx_dropped += 1
            return
        self._queue.append(frame)
        self._wakeup.set()

    async def listen(self, callback: FrameCallback) -> None:
        """Call `callback(frame)` for each frame (awaiting it when it returns an awaitable) until
        the device is disconnected."""
        if self._closed:
            raise DeviceClosedError("device is disconnected")
        self._wakeup = ev = asyncio.Event()
        q = self._queue
        guard = CallbackGuard("device.listen callback")
        try:
            while not self._closed:
                while q:
                    try:  # one frame's failure must not stop the device (counted, logged per burst)
                        r = callback(q.popleft())
                        if inspect.isawaitable(r):
                            await r
                    except Exception:
                        self.stats.rx_callback_errors += 1
                        guard.failed()
                    if self._closed:
                        return
                ev.clear()
                await ev.wait()
        finally:
            self._wakeup = None

    async def disconnect(self) -> None:
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._deliver = None
        self._queue.clear()
        if self._wakeup is not None:
            self._wakeup.set()
        self._on_close()

    def _on_close(self) -> None:
        pass
