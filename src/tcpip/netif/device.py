"""The network device protocol (mirage's NETWORK) and the push-model base shared by every device."""

from __future__ import annotations

import asyncio
import inspect
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, cast, runtime_checkable

from tcpip.errors import DeviceClosedError, MessageTooLongError
from tcpip.guard import CallbackGuard
from tcpip.wire import virtio
from tcpip.wire.mac import MacAddress

Buffer = bytes | bytearray | memoryview
FrameCallback = Callable[[memoryview], Awaitable[None] | None]
Deliver = Callable[[memoryview], None]
BytesDeliver = Callable[[memoryview | bytes], None]  # attach_bytes: a frame as a view or as bytes
# attach_answering (the TAP): as BytesDeliver, and it may return one frame for the device to write at once
AnswerDeliver = Callable[[memoryview | bytes], "Buffer | None"]
# Offload receive (a device with `offload`): (TCP/UDP frame, L4 checksum trusted, gso_size: 0 = one segment)
OffloadDeliver = Callable[[memoryview, bool, int], None]
# attach_offload_answering (the TAP): as OffloadDeliver, a small UDP frame may come as bytes, and it may
# return one frame (a sequence of buffers, as transmit takes) for the device to write at once
OffloadAnswerDeliver = Callable[[memoryview | bytes, bool, int], "Sequence[Buffer] | None"]
_NOT_ECN = ~virtio.GSO_ECN
_GSO_TCPV4 = virtio.GSO_TCPV4
_TRUSTED = virtio.NEEDS_CSUM | virtio.DATA_VALID  # header flags that vouch for the L4 checksum


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
    tx_dropped: int = 0  # full kernel queue (EAGAIN), a fault injector, a direct answer's failed write
    rx_dropped: int = 0  # nobody listening, or the listen queue was full
    tx_oversize: int = 0
    rx_callback_errors: int = 0  # the `listen` callback raised: contained, listening goes on
    rx_gso_frames: int = 0  # offload mode: TCP super-frames received (counted in rx_frames too)
    tx_gso_frames: int = 0  # offload mode: TCP super-frames sent (counted in tx_frames too)
    rx_gso_segments: int = 0  # the segments those received super-frames stand for
    tx_gso_segments: int = 0
    rx_gso_dropped: int = 0  # offload headers we cannot handle (a GSO type other than TCPv4)
    rx_gso_split: int = 0  # super-frames cut in software for a receiver without offload


class BaseDevice:
    """Common part of devices: MTU check, a push receiver (`attach`) and a bounded queue for `listen`."""

    LISTEN_QUEUE = 4096

    def __init__(self, mac: MacAddress, mtu: int) -> None:
        if not 68 <= mtu <= 65535:
            raise ValueError(f"MTU {mtu} outside 68..65535")
        self.mac = mac
        self.mtu = mtu
        self.stats = DeviceStats()
        self._deliver: AnswerDeliver | None = None  # only a TAP's attach_answering ever returns a frame
        self._raw = False  # _deliver takes bytes too (attach_bytes)
        self._raw_offload = False  # _deliver_offload takes bytes and may answer (attach_offload_answering)
        self._deliver_offload: OffloadAnswerDeliver | None = None
        self.offload = False  # TCP super-frames and trusted checksums (see attach_offload)
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
        if size > self.mtu + 14 and not (self.offload and type(parts[0]) is virtio.VnetHeader
                                         and size <= virtio.MAX_GSO_FRAME):
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
        self._deliver = cast("BytesDeliver", deliver)  # only ever given memoryviews: _raw is False
        self._raw = False

    def attach_bytes(self, deliver: BytesDeliver | None) -> None:
        """As `attach`, for a consumer that also takes `bytes`: a device that reads frames into `bytes` (the
        TAP) may then hand over the bytes object itself, or a copy of the frame past its virtio header,
        instead of a memoryview. In CPython, making and slicing a view of a frame this small costs more
        than that copy (issue 10: ~3,600 instructions per echo); super-frames stay views."""
        self._deliver = deliver
        self._raw = deliver is not None

    def attach_offload(self, deliver: OffloadDeliver | None) -> None:
        """Offload mode (only when `offload` is True): TCP and UDP frames that came with offload metadata
        (a checksum the device vouches for, a TCP super-frame) go to `deliver(frame, csum_ok, gso_size)`;
        every other frame to `attach`'s callback. The consumer may then transmit super-frames (first
        part a `wire.virtio.VnetHeader`). Without it, an offload device cuts super-frames and finishes
        checksums in software."""
        if deliver is not None and not self.offload:
            raise ValueError("device is not in offload mode")
        self._deliver_offload = cast("OffloadAnswerDeliver", deliver)  # memoryviews only; returns None
        self._raw_offload = False

    def _received_offloaded(self, frame: memoryview, flags: int, gso_type: int, gso_size: int,
                            csum_start: int, csum_offset: int) -> None:
        """A frame that came with a virtio_net_hdr saying more than "nothing": to the offload consumer
        when TCP or UDP, else finished in software (checksum completed, super-frame cut) for a plain one."""
        st = self.stats
        n = len(frame)
        d = self._deliver_offload
        if gso_type == _GSO_TCPV4 and gso_size > 0 and d is not None and n > 46 and frame[23] == 6 \
                and frame[12] == 8 and frame[13] == 0:  # the bulk receiver's TCPv4 super-frame: the checks below
            pay = n - 34 - ((frame[46] >> 4) << 2)
            st.rx_gso_frames += 1
            st.rx_gso_segments += -(-pay // gso_size) if pay > 0 else 1
            st.rx_frames += 1
            st.rx_bytes += n
            if (out := d(frame, flags & _TRUSTED != 0, gso_size)) is not None:
                self._answer_parts(out)
            return
        gso = gso_type & _NOT_ECN
        if gso:
            if gso != _GSO_TCPV4 or gso_size <= 0:
                st.rx_gso_dropped += 1
                return
            st.rx_gso_frames += 1
            pay = n - 34 - ((frame[46] >> 4) << 2) if n > 46 else 0
            st.rx_gso_segments += -(-pay // gso_size) if pay > 0 else 1
        # TCP and UDP go to the offload consumer as they are: a NEEDS_CSUM checksum is never completed
        # (the kernel made the frame: nothing to check), a DATA_VALID one never verified again. UDP is
        # never a super-frame here (only TCPv4 GSO gets past the check above).
        if d is not None and n >= 42 and frame[12] == 8 and frame[13] == 0 and (
                ((p := frame[23]) == 6 and n > 46) or p == 17):
            st.rx_frames += 1
            st.rx_bytes += n
            if (out := d(frame, flags & _TRUSTED != 0, gso_size if gso else 0)) is not None:
                self._answer_parts(out)
            return
        if gso:
            st.rx_gso_split += 1
            for f in virtio.segment(frame, gso_size):
                self._received(memoryview(f))
            return
        if flags & virtio.NEEDS_CSUM:
            frame = memoryview(virtio.complete_checksum(frame, csum_start, csum_offset))
        self._received(frame)

    def _received(self, frame: memoryview) -> None:
        self.stats.rx_frames += 1
        self.stats.rx_bytes += len(frame)
        d = self._deliver
        if d is not None:
            if (out := d(frame)) is not None:  # only an answering consumer returns a frame (the TAP's)
                self._answer(out)
            return
        if self._wakeup is None or len(self._queue) >= self.LISTEN_QUEUE:
            self.stats.rx_dropped += 1
            return
        self._queue.append(frame)
        self._wakeup.set()

    def _answer(self, out: Buffer) -> None:
        """Send the frame an answering consumer returned (see `tcpip.netif.tap_vnet.VnetIO.attach_answering`);
        a frame that cannot go is dropped and counted, as the runner would."""
        self._answer_parts((out,))

    def _answer_parts(self, parts: Sequence[Buffer]) -> None:
        """`_answer` for a frame in parts (an answering offload consumer's, or any answer here)."""
        try:
            self.transmit(parts)
        except (DeviceClosedError, MessageTooLongError, OSError):
            self.stats.tx_dropped += 1

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
        self._deliver_offload = None
        self._raw_offload = False
        self._queue.clear()
        if self._wakeup is not None:
            self._wakeup.set()
        self._on_close()

    def _on_close(self) -> None:
        pass
