"""The per-wake-up work of a Stack on a TapDevice, counted: reads per frame, call_soon drains, frames out.

An AF_UNIX datagram socketpair stands in for the TAP fd (one frame per read, os.read/os.writev like a TAP);
the test plays the peer, one frame in flight, as the kernel's ping or a UDP client would.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from tcpip.netif.tap import TapDevice
from tcpip.stack import Stack
from tcpip.wire.checksum import checksum
from tcpip.wire.mac import MacAddress

OUR_MAC = bytes.fromhex("020000000002")
PEER_MAC = bytes.fromhex("020000000001")
OUR_IP, PEER_IP = 0xC6120002, 0xC6120001


def _ip(proto: int, payload: bytes) -> bytes:
    hdr = struct.pack("!BBHHHBBHII", 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0, PEER_IP, OUR_IP)
    hdr = hdr[:10] + checksum(hdr).to_bytes(2, "big") + hdr[12:]
    return OUR_MAC + PEER_MAC + b"\x08\x00" + hdr + payload


def udp_frame(port: int, data: bytes) -> bytes:
    return _ip(17, struct.pack("!HHHH", 40000, port, 8 + len(data), 0) + data)  # checksum 0: none


def echo_request(seq: int) -> bytes:
    icmp = struct.pack("!BBHHH", 8, 0, 0, 0x1234, seq) + bytes(56)
    return _ip(1, icmp[:2] + checksum(icmp).to_bytes(2, "big") + icmp[4:])


class Counting:
    """Counts os.read calls that ended in EAGAIN, and the runner's call_soon drains."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, stack: Stack) -> None:
        self.eagain = 0
        self.kick_drains = 0
        real_read = os.read

        def read(fd: int, n: int) -> bytes:
            try:
                return real_read(fd, n)
            except BlockingIOError:
                self.eagain += 1
                raise

        monkeypatch.setattr(os, "read", read)
        runner: Any = stack.runner
        on_kick: Callable[[], None] = runner._on_kick

        def counted() -> None:
            self.kick_drains += 1
            on_kick()

        runner._on_kick = counted


@asynccontextmanager
async def stack_on_socketpair(offload: bool = False) -> AsyncIterator[tuple[Stack, socket.socket]]:
    """`offload`: the device in offload mode (a virtio_net_hdr before every frame both ways)."""
    ours, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    ours.setblocking(False)
    dev = TapDevice(ours.detach(), "pair0", mac=MacAddress(OUR_MAC), offload=offload)
    stack = await Stack.connect(dev, ipv4="198.18.0.2/24")
    stack.core.arp.add_static(PEER_IP, PEER_MAC)
    try:
        await asyncio.sleep(0.01)
        peer.setblocking(False)
        while True:  # what the stack sent at start-up (gratuitous ARP)
            try:
                peer.recv(2048)
            except BlockingIOError:
                break
        peer.setblocking(True)
        peer.settimeout(2.0)
        yield stack, peer
    finally:
        await stack.disconnect()
        peer.close()


async def ping_pong(peer: socket.socket, frames: list[bytes]) -> list[bytes]:
    """Send each frame, wait for one answer (the loop runs meanwhile), one in flight."""
    loop = asyncio.get_running_loop()
    got: list[bytes] = []
    for f in frames:
        peer.send(f)
        got.append(await loop.run_in_executor(None, peer.recv, 2048))
    return got


async def test_datagram_endpoint_answer_needs_no_call_soon(monkeypatch: pytest.MonkeyPatch) -> None:
    """A datagram for an asyncio endpoint is delivered and its answer sent by the drain that follows the
    frame: no extra call_soon drain per datagram (the kick from inside receive() is served at once)."""

    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.t: Any = transport

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            self.t.sendto(data.upper(), addr)

    async with stack_on_socketpair() as (stack, peer):
        transport, _ = await stack.create_datagram_endpoint(Echo, local_addr=("198.18.0.2", 9))
        c = Counting(monkeypatch, stack)
        answers = await ping_pong(peer, [udp_frame(9, b"hello %d" % i) for i in range(40)])
        transport.close()
    assert [a[42:34 + struct.unpack_from("!H", a, 38)[0]] for a in answers] == [b"HELLO %d" % i for i in range(40)]
    assert c.kick_drains == 0


async def test_one_in_flight_echo_skips_most_eagain_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under one-frame-per-wake-up traffic the drain stops after the frame instead of reading on to EAGAIN,
    except on every 16th wake-up (the probe that notices a backlog)."""
    async with stack_on_socketpair() as (stack, peer):
        c = Counting(monkeypatch, stack)
        answers = await ping_pong(peer, [echo_request(i) for i in range(64)])
        dev: Any = stack.device
    assert [struct.unpack_from("!BBHHH", a, 34)[::4] for a in answers] == [(0, i) for i in range(64)]
    assert dev.stats.rx_frames >= 64
    assert c.eagain <= 64 // 16 + 3  # not one per echo
    assert c.kick_drains == 0


async def test_offload_mode_one_in_flight_echo_skips_most_eagain_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same quiet skip in offload mode (the TAP's default): frames come and go behind a 10-byte header."""
    async with stack_on_socketpair(offload=True) as (stack, peer):
        c = Counting(monkeypatch, stack)
        answers = await ping_pong(peer, [bytes(10) + echo_request(i) for i in range(64)])
        dev: Any = stack.device
    assert [a[:10] for a in answers] == [bytes(10)] * 64
    assert [struct.unpack_from("!BBHHH", a, 44)[::4] for a in answers] == [(0, i) for i in range(64)]
    assert dev.stats.rx_frames >= 64
    assert c.eagain <= 64 // 16 + 3  # not one per echo
    assert c.kick_drains == 0


async def test_offload_mode_udp_echo_of_kernel_made_datagrams(monkeypatch: pytest.MonkeyPatch) -> None:
    """In offload mode the kernel's UDP comes with NEEDS_CSUM and only the pseudo-header sum in the checksum
    field: echoed without completing it (no copy) or verifying it; the answers keep that header and field for
    the kernel to finish (`Udp.fast_echo`), and finished they verify."""
    from tcpip.wire import checksum as ck
    from tcpip.wire import virtio

    finish = virtio.complete_checksum

    def no_copy(*a: object) -> bytearray:
        raise AssertionError("checksum completed in software")

    monkeypatch.setattr(virtio, "complete_checksum", no_copy)
    hdr = struct.pack("<BBHHHH", virtio.NEEDS_CSUM, 0, 0, 0, 34, 6)
    frames = []
    for i in range(20):
        f = bytearray(udp_frame(7, b"datagram %d" % i))
        f[40:42] = ck.pseudo_header_sum(PEER_IP, OUR_IP, 17, len(f) - 34).to_bytes(2, "big")
        frames.append(hdr + bytes(f))
    async with stack_on_socketpair(offload=True) as (stack, peer):
        await stack.udp_echo(7)
        answers = await ping_pong(peer, frames)
        st = stack.stats()["udp"]
    assert [a[:10] for a in answers] == [hdr] * 20
    answers = [bytes(finish(a[10:], 34, 6)) for a in answers]  # the kernel's part
    udp = [a[34:34 + struct.unpack_from("!H", a, 38)[0]] for a in answers]  # without the Ethernet padding
    assert [u[8:] for u in udp] == [b"datagram %d" % i for i in range(20)]
    assert all(ck.verify(u, ck.pseudo_header_sum(OUR_IP, PEER_IP, 17, len(u))) for u in udp)
    assert (st["rx_delivered"], st["rx_bad_checksum"]) == (20, 0)


async def test_backlog_is_still_drained_in_bursts() -> None:
    """After quiet wake-ups, a backlog queued at once is noticed by the probe and then drained in bursts
    (rounds of 10 frames: the socketpair queues at most net.unix.max_dgram_qlen = 10), all answered in order."""
    async with stack_on_socketpair() as (stack, peer):
        await ping_pong(peer, [echo_request(i) for i in range(20)])  # quiet: one frame per wake-up
        dev: Any = stack.device
        loop = asyncio.get_running_loop()
        got: list[bytes] = []
        wakeups: list[int] = []
        for r in range(10):
            before = dev.rx_wakeups
            for i in range(10):  # queued while the loop is not running: one backlog
                peer.send(echo_request(1000 + 10 * r + i))
            got += [await loop.run_in_executor(None, peer.recv, 2048) for _ in range(10)]
            wakeups.append(dev.rx_wakeups - before)
    assert [struct.unpack_from("!H", a, 40)[0] for a in got] == list(range(1000, 1100))
    assert sum(wakeups[:2]) <= 20  # at most 16 single-frame wake-ups before the probe sees the backlog
    assert sum(wakeups[-5:]) <= 10  # then bursts: about one wake-up per 10 frames, not one per frame


async def test_offload_mode_udp_checksum_trusted_only_when_the_header_vouches() -> None:
    """The read loop hands UDP with a non-zero virtio header straight to the stack: trusted with NEEDS_CSUM
    or DATA_VALID, verified otherwise (flags 0: a bad checksum is a counted drop); every frame counted once."""
    from tcpip.wire import virtio

    frames = []
    for i, flags in enumerate((virtio.DATA_VALID, 0, virtio.NEEDS_CSUM, 0)):
        f = bytearray(udp_frame(7, b"datagram %d" % i))
        f[40:42] = b"\x12\x34"  # wrong for this datagram
        frames.append(struct.pack("<BBHHHH", flags, 0, 0, 0, 34, 6) + bytes(f))
    last = virtio.ZERO + udp_frame(7, b"last")  # checksum 0 (none): always answered
    async with stack_on_socketpair(offload=True) as (stack, peer):
        await stack.udp_echo(7)
        dev: Any = stack.device
        rx0, bytes0 = dev.stats.rx_frames, dev.stats.rx_bytes
        loop = asyncio.get_running_loop()
        for f in [*frames, last]:
            peer.send(f)
            await asyncio.sleep(0.01)
        got = []
        while not got or not got[-1].endswith(b"last"):
            a = await loop.run_in_executor(None, peer.recv, 2048)
            got.append(a[:44 + struct.unpack_from("!H", a, 48)[0]])
        st = stack.stats()["udp"]
        counted = (dev.stats.rx_frames - rx0, dev.stats.rx_bytes - bytes0)
    assert [a[52:] for a in got] == [b"datagram 0", b"datagram 2", b"last"]
    assert (st["rx_delivered"], st["rx_bad_checksum"]) == (3, 2)
    assert counted == (5, sum(len(f) - 10 for f in [*frames, last]))
