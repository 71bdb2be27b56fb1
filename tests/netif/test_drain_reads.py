"""TapDevice._drain's reads: every wake-up reads on to EAGAIN (one frame per wake-up included: the read that
ends it is FileIO.read's None, not an exception), and what it delivers, counts and reports is exact, in both
framings.

An AF_UNIX datagram socketpair stands in for the TAP fd (one frame per read), as in test_wakeup_cost.py.
"""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from tcpip.netif.tap import TapDevice
from tcpip.wire import virtio
from tcpip.wire.mac import MacAddress

FRAME = bytes(range(14)) + bytes(46)  # any 60 bytes: the device does not parse plain frames
# A UDP-in-IPv4 frame as the offload branch recognises it (EtherType 0x0800, protocol 17 at offset 23)
UDP = bytearray(60)
UDP[12:14] = b"\x08\x00"
UDP[23] = 17


async def _device(offload: bool) -> tuple[TapDevice, socket.socket, list[tuple[bytes, bool | None]], list[int]]:
    ours, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    ours.setblocking(False)
    dev = TapDevice(ours.detach(), "sockpair", mac=MacAddress(bytes(6)), loop=asyncio.get_running_loop(),
                    offload=offload)
    got: list[tuple[bytes, bool | None]] = []
    ends: list[int] = []
    dev.attach(lambda f: got.append((bytes(f), None)))
    if offload:
        dev.attach_offload(lambda f, ok, gso: got.append((bytes(f), ok)))
    dev.on_burst_end = lambda: ends.append(len(got))
    return dev, peer, got, ends


class _CountingReads:
    """The device's reads, counted (and the ones that found nothing: EAGAIN)."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.reads = 0
        self.empty = 0

    def read(self, n: int) -> bytes | None:
        self.reads += 1
        f: bytes | None = self.inner.read(n)  # type: ignore[attr-defined]
        if f is None:
            self.empty += 1
        return f


async def _one(peer: socket.socket, data: bytes, got: list[tuple[bytes, bool | None]], want: int) -> None:
    peer.send(data)
    for _ in range(200):
        await asyncio.sleep(0)
        if len(got) >= want:
            return
    raise AssertionError(f"frame {want} never delivered")


@pytest.mark.parametrize("offload", [False, True])
async def test_one_frame_wakeups_read_to_eagain_and_count(offload: bool) -> None:
    dev, peer, got, ends = await _device(offload)
    hdr = virtio.ZERO if offload else b""
    trusted = struct.pack("<BBHHHH", virtio.DATA_VALID, 0, 0, 0, 0, 0)
    reads = dev._rfile = _CountingReads(dev._rfile)  # type: ignore[assignment]
    try:
        n = 40
        for i in range(n):
            if offload and i % 2:
                await _one(peer, trusted + bytes(UDP), got, i + 1)
            else:
                await _one(peer, hdr + FRAME, got, i + 1)
        # each wake-up: its frame, then the read that finds nothing (the reads go on to EAGAIN)
        assert (reads.reads, reads.empty) == (2 * n, n)
        for i, (f, ok) in enumerate(got):
            assert (f, ok) == ((bytes(UDP), True) if offload and i % 2 else (FRAME, None))
        assert ends == list(range(1, n + 1))  # one burst end per wake-up, after its frame
        assert dev.rx_wakeups == n
        assert dev.stats.rx_frames == n
        assert dev.stats.rx_bytes == n * 60  # the virtio header is not a frame byte
    finally:
        dev.close()
        peer.close()


@pytest.mark.parametrize("offload", [False, True])
async def test_short_read_ends_the_wakeup_quietly(offload: bool) -> None:
    dev, peer, got, ends = await _device(offload)
    hdr = virtio.ZERO if offload else b""
    reads = dev._rfile = _CountingReads(dev._rfile)  # type: ignore[assignment]
    try:
        for i in range(5):
            await _one(peer, hdr + FRAME, got, i + 1)
        assert (reads.reads, reads.empty) == (10, 5)
        peer.send(hdr)  # empty (plain) or a header alone (offload): no frame
        for _ in range(50):
            await asyncio.sleep(0)
            if dev.rx_wakeups == 6:
                break
        assert dev.rx_wakeups == 6
        assert (reads.reads, reads.empty) == (11, 5)  # the short read ended that wake-up: no read after it
        assert len(got) == 5  # no delivery and no burst end for it
        assert ends == [1, 2, 3, 4, 5]
        assert dev.stats.rx_frames == 5
        await _one(peer, hdr + FRAME, got, 6)
        assert ends[-1] == 6
        assert dev.stats.rx_frames == 6
    finally:
        dev.close()
        peer.close()


@pytest.mark.parametrize("offload", [False, True])
async def test_rx_wakeups_counts_every_reader_callback(offload: bool) -> None:
    """rx_wakeups (read between wake-ups and inside a delivery) equals the reader callbacks made, across
    one-frame wake-ups, bursts and short reads."""
    dev, peer, got, _ends = await _device(offload)
    hdr = virtio.ZERO if offload else b""
    loop = asyncio.get_running_loop()
    calls = [0]
    seen: list[tuple[int, int]] = []  # (rx_wakeups, callbacks) as a delivery saw them

    def reader() -> None:
        calls[0] += 1
        dev._drain()

    def deliver(f: memoryview) -> None:
        got.append((bytes(f), None))
        seen.append((dev.rx_wakeups, calls[0]))

    dev.attach(deliver)
    loop.remove_reader(dev.fd)
    loop.add_reader(dev.fd, reader)
    try:
        for i in range(20):  # one frame per wake-up
            await _one(peer, hdr + FRAME, got, i + 1)
            assert dev.rx_wakeups == calls[0] == i + 1
        for _ in range(5):  # a burst: drained by one wake-up (the reads go on to EAGAIN)
            peer.send(hdr + FRAME)
        for _ in range(200):
            await asyncio.sleep(0)
            if len(got) == 25:
                break
        assert len(got) == 25
        assert dev.rx_wakeups == calls[0]
        peer.send(hdr)  # a short read
        for _ in range(50):
            await asyncio.sleep(0)
            if calls[0] > dev.stats.rx_frames:
                break
        assert dev.rx_wakeups == calls[0]
        for i in range(3):
            await _one(peer, hdr + FRAME, got, 26 + i)
        assert dev.rx_wakeups == calls[0]
        assert seen == [(c, c) for _w, c in seen]  # inside a delivery too
        assert len(seen) == 28
    finally:
        dev.close()
        peer.close()


ASK = bytes(14) + b"\xaa" + bytes(45)  # what the fast answer below answers (marked at the frame's byte 14)


async def _fast_device(offload: bool) -> tuple[TapDevice, socket.socket, list[tuple[bytes, bool | None]], list[int],
                                                list[bytes]]:
    """A device whose fast answer (`attach_fast`) answers ASK frames with their bytes reversed after the
    marker and declines the rest; `tries` records every frame it was asked about."""
    dev, peer, got, ends = await _device(offload)
    tries: list[bytes] = []

    def answer(buf: bytes, off: int, csum_ok: int) -> bytearray | None:
        tries.append(bytes(buf[off:]))
        if buf[off + 14] != 0xAA:
            return None
        return bytearray(buf[:off + 15]) + bytes(reversed(buf[off + 15:]))

    dev.attach_fast(answer)
    return dev, peer, got, ends, tries


async def _settle(dev: TapDevice, wakeups: int) -> None:
    for _ in range(200):
        await asyncio.sleep(0)
        if dev.rx_wakeups >= wakeups:
            return
    raise AssertionError(f"{wakeups} wake-ups never came")


@pytest.mark.parametrize("offload", [False, True])
async def test_fast_answer_alone_and_declined_one_frame_wakeups(offload: bool) -> None:
    """A wake-up's first frame goes to the fast answer once: answered, the reply is written and nothing is
    delivered; declined, it is delivered (not offered twice). Either way the wake-up reads on to EAGAIN."""
    dev, peer, got, ends, tries = await _fast_device(offload)
    hdr = virtio.ZERO if offload else b""
    reads = dev._rfile = _CountingReads(dev._rfile)  # type: ignore[assignment]
    peer.setblocking(False)
    try:
        n = 10
        for i in range(n):
            peer.send(hdr + (ASK if i % 2 == 0 else FRAME))
            await _settle(dev, i + 1)
        assert (reads.reads, reads.empty) == (2 * n, n)
        assert tries == [ASK if i % 2 == 0 else FRAME for i in range(n)]  # each frame offered once
        assert got == [(FRAME, None)] * (n // 2)  # the declined ones, delivered
        assert ends == list(range(1, n // 2 + 1))  # a burst end only for the wake-ups that delivered
        replies = [peer.recv(2048) for _ in range(n // 2)]
        assert replies == [hdr + ASK[:15] + bytes(reversed(ASK[15:]))] * (n // 2)
        st = dev.stats
        assert (st.rx_frames, st.rx_bytes, st.tx_frames, st.tx_bytes) == (n, n * 60, n // 2, n // 2 * 60)
    finally:
        dev.close()
        peer.close()


@pytest.mark.parametrize("offload", [False, True])
async def test_fast_answer_in_a_burst(offload: bool) -> None:
    """Answered, declined, answered in one wake-up: three offers, one delivery, two replies, one burst end,
    and four reads (the last one finds nothing)."""
    dev, peer, got, ends, tries = await _fast_device(offload)
    hdr = virtio.ZERO if offload else b""
    reads = dev._rfile = _CountingReads(dev._rfile)  # type: ignore[assignment]
    peer.setblocking(False)
    try:
        for f in (ASK, FRAME, ASK):
            peer.send(hdr + f)
        await _settle(dev, 1)
        assert dev.rx_wakeups == 1
        assert (reads.reads, reads.empty) == (4, 1)
        assert tries == [ASK, FRAME, ASK]
        assert got == [(FRAME, None)]
        assert ends == [1]
        assert len([peer.recv(2048) for _ in range(2)]) == 2
        st = dev.stats
        assert (st.rx_frames, st.tx_frames) == (3, 2)
    finally:
        dev.close()
        peer.close()


async def test_fast_answer_within_max_burst() -> None:
    """max_burst 1: a wake-up reads one frame, answered or not, and no more (the next wake-up takes the next)."""
    dev, peer, got, _ends, tries = await _fast_device(False)
    dev.max_burst = 1
    reads = dev._rfile = _CountingReads(dev._rfile)  # type: ignore[assignment]
    peer.setblocking(False)
    try:
        for f in (ASK, ASK, FRAME):
            peer.send(f)
        await _settle(dev, 3)
        assert dev.rx_wakeups == 3
        assert (reads.reads, reads.empty) == (3, 0)
        assert tries == [ASK, ASK, FRAME]
        assert got == [(FRAME, None)]
    finally:
        dev.close()
        peer.close()
