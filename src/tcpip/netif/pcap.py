"""PcapWriter: a device middleware that records every frame sent and received in a classic pcap file
(magic a1b2c3d4, version 2.4, linktype 1 = Ethernet, snaplen 65535); plus `read_pcap` for tests.

Timestamps come from a monotonic source, so they never go backwards: by default the wall-clock time
at open plus the `time.monotonic()` elapsed since; pass `clock` (e.g. `loop.time` or a virtual clock's
`now`) and `epoch` (e.g. 0.0 for reproducible files) to take them from elsewhere.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from tcpip.netif.device import Buffer, Deliver, DeviceStats, FrameCallback, NetworkDevice
from tcpip.wire.mac import MacAddress

__all__ = ["LINKTYPE_ETHERNET", "PcapRecord", "PcapWriter", "read_pcap"]

LINKTYPE_ETHERNET = 1
SNAPLEN = 65535
_GLOBAL = struct.Struct("<IHHiIII")
_RECORD = struct.Struct("<IIII")
_MAGIC_US = 0xA1B2C3D4
_MAGIC_NS = 0xA1B23C4D

PathOrFile = str | os.PathLike[str] | BinaryIO


class PcapWriter:
    """Wraps `device` (any tcpip device) and is itself one: `Stack.connect(PcapWriter(tap, "x.pcap"))`.

    Records frames transmitted through it and frames the device delivers to it, in order. The file
    is flushed and (when opened from a path) closed on `disconnect()`/`close()`; a file object passed
    in is flushed but left open. `flush()` may be called at any time."""

    def __init__(
        self,
        device: NetworkDevice,
        path_or_file: PathOrFile,
        *,
        clock: Callable[[], float] | None = None,
        epoch: float | None = None,
        snaplen: int = SNAPLEN,
    ) -> None:
        self.device = device
        self.snaplen = snaplen
        if isinstance(path_or_file, str | os.PathLike):
            self._file: BinaryIO = open(path_or_file, "wb")  # noqa: SIM115 - closed in close()
            self._owns_file = True
        else:
            self._file = path_or_file
            self._owns_file = False
        self._clock = clock if clock is not None else time.monotonic
        self._t0 = self._clock()
        self._epoch = time.time() if epoch is None else epoch
        self._last = 0.0
        self.frames_written = 0
        self._file_closed = False
        self._file.write(_GLOBAL.pack(_MAGIC_US, 2, 4, 0, 0, snaplen, LINKTYPE_ETHERNET))

    # -- the device protocol, delegated ----------------------------------------------------------
    @property
    def mac(self) -> MacAddress:
        return self.device.mac

    @mac.setter
    def mac(self, value: MacAddress) -> None:
        self.device.mac = value

    @property
    def mtu(self) -> int:
        return self.device.mtu

    @mtu.setter
    def mtu(self, value: int) -> None:
        self.device.mtu = value

    @property
    def stats(self) -> DeviceStats:
        stats = getattr(self.device, "stats", None)
        return stats if isinstance(stats, DeviceStats) else DeviceStats()

    @property
    def closed(self) -> bool:
        return self.device.closed

    def transmit(self, parts: Sequence[Buffer]) -> None:
        st = getattr(self.device, "stats", None)
        dropped = getattr(st, "tx_dropped", 0)
        self.device.transmit(parts)  # raises on misuse before anything is recorded
        if getattr(st, "tx_dropped", 0) == dropped:  # not dropped by a full queue: it really left
            self.record(parts)

    async def write(self, frame: Buffer) -> None:
        self.transmit((frame,))

    async def writev(self, parts: Sequence[Buffer]) -> None:
        self.transmit(parts)

    def attach(self, deliver: Deliver | None) -> None:
        if deliver is None:
            self.device.attach(None)
            return

        def tap(frame: memoryview) -> None:
            self.record((frame,))
            deliver(frame)

        self.device.attach(tap)

    async def listen(self, callback: FrameCallback) -> None:
        def tap(frame: memoryview) -> Awaitable[None] | None:
            self.record((frame,))
            return callback(frame)

        await self.device.listen(tap)

    async def disconnect(self) -> None:
        try:
            await self.device.disconnect()
        finally:
            self._close_file()

    def close(self) -> None:
        try:
            close = getattr(self.device, "close", None)
            if close is not None:
                close()
        finally:
            self._close_file()

    # -- recording --------------------------------------------------------------------------------
    def timestamp(self) -> float:
        t = self._epoch + (self._clock() - self._t0)
        t = max(t, self._last)
        self._last = t
        return t

    def record(self, parts: Sequence[Buffer]) -> None:
        """Append one frame (its parts concatenated) with the current timestamp."""
        if self._file_closed:
            return
        t = self.timestamp()
        sec = int(t)
        usec = int((t - sec) * 1_000_000)
        if usec >= 1_000_000:
            sec, usec = sec + 1, usec - 1_000_000
        length = sum(len(p) for p in parts)
        incl = min(length, self.snaplen)
        f = self._file
        f.write(_RECORD.pack(sec, usec, incl, length))
        left = incl
        for p in parts:
            if left <= 0:
                break
            n = len(p)
            f.write(p if n <= left else memoryview(p)[:left])
            left -= n
        self.frames_written += 1

    def flush(self) -> None:
        if not self._file_closed:
            self._file.flush()

    def _close_file(self) -> None:
        if self._file_closed:
            return
        self._file_closed = True
        self._file.flush()
        if self._owns_file:
            self._file.close()

    def __repr__(self) -> str:
        return f"<PcapWriter {self.frames_written} frames, wrapping {self.device!r}>"


@dataclass(frozen=True, slots=True)
class PcapRecord:
    timestamp: float
    data: bytes
    orig_len: int


def read_pcap(path_or_file: PathOrFile) -> tuple[int, list[PcapRecord]]:
    """Read a classic pcap file (either byte order, micro- or nanosecond): (linktype, records).
    Raises ValueError on a malformed file."""
    if isinstance(path_or_file, str | os.PathLike):
        with open(path_or_file, "rb") as f:
            raw = f.read()
    else:
        raw = path_or_file.read()
    if len(raw) < 24:
        raise ValueError("pcap: shorter than its 24-byte header")
    for endian in "<>":
        magic = struct.unpack_from(endian + "I", raw)[0]
        if magic in (_MAGIC_US, _MAGIC_NS):
            break
    else:
        raise ValueError(f"pcap: bad magic {raw[:4].hex()}")
    scale = 1e-6 if magic == _MAGIC_US else 1e-9
    _, major, minor, _, _, _, linktype = struct.unpack_from(endian + "IHHiIII", raw)
    if (major, minor) != (2, 4):
        raise ValueError(f"pcap: unsupported version {major}.{minor}")
    rec = struct.Struct(endian + "IIII")
    out: list[PcapRecord] = []
    off = 24
    while off < len(raw):
        if off + 16 > len(raw):
            raise ValueError(f"pcap: truncated record header at offset {off}")
        sec, frac, incl, orig = rec.unpack_from(raw, off)
        off += 16
        if off + incl > len(raw):
            raise ValueError(f"pcap: truncated record data at offset {off}")
        out.append(PcapRecord(sec + frac * scale, raw[off : off + incl], orig))
        off += incl
    return linktype, out
