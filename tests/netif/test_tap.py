"""TapDevice: opening, frames both ways with the kernel, burst draining, drop counting, clean close.
Tests marked `tap` run in a private namespace (root, /dev/net/tun and pyroute2, else skipped)."""

from __future__ import annotations

import asyncio
import errno
import os
import struct
from collections.abc import Iterator, Sequence

import pytest

from tcpip.errors import DeviceClosedError, MessageTooLongError
from tcpip.netif import tap as tap_mod
from tcpip.netif.tap import TapDevice, TapError
from tcpip.netns import Namespace, netns_available
from tcpip.wire.mac import MacAddress

KERNEL_IP = bytes([198, 18, 0, 1])
OUR_IP = bytes([198, 18, 0, 2])


@pytest.fixture
def tap_ns() -> Iterator[Namespace]:
    why = netns_available()
    if why is not None:
        pytest.skip(f"needs root, /dev/net/tun and pyroute2: {why}")
    ns = Namespace.create("t")
    try:
        yield ns
    finally:
        ns.remove()


def arp_request(src_mac: MacAddress, src_ip: bytes, target_ip: bytes) -> bytes:
    eth = b"\xff" * 6 + src_mac.packed + b"\x08\x06"
    return eth + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + src_mac.packed + src_ip + bytes(6) + target_ip


# -- without a kernel: errors and drop counting --------------------------------------------------
def test_open_without_tun_device_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.setattr(tap_mod, "TUN_PATH", "/nonexistent/net/tun")
    with pytest.raises(TapError, match="missing") as e:
        asyncio.run(TapDevice.open("tap0"))
    assert e.value.errno == errno.ENOENT


def test_open_without_permission_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = os.open

    def deny(path: str, *a: object, **k: object) -> int:
        if path == tap_mod.TUN_PATH:
            raise PermissionError(errno.EACCES, "denied")
        return real_open(path, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", deny)
    with pytest.raises(TapError, match="permission"):
        asyncio.run(TapDevice.open("tap0"))


@pytest.mark.parametrize("name", ["", "x" * 16, "a/b", " tap"])
def test_bad_interface_names_are_refused(name: str) -> None:
    with pytest.raises((ValueError, TapError)):
        asyncio.run(TapDevice.open(name))


async def test_full_kernel_queue_is_counted_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    """EAGAIN/ENOBUFS on write are drops in stats, never exceptions (here on a pipe standing in)."""
    r, w = os.pipe()
    os.set_blocking(r, False)
    dev = TapDevice(w, "fake0", mac=MacAddress("02:00:00:00:00:01"))
    calls: list[int] = []

    def full(fd: int, parts: Sequence[bytes]) -> int:
        calls.append(fd)
        raise OSError([errno.EAGAIN, errno.ENOBUFS][len(calls) % 2], "full")

    monkeypatch.setattr(os, "writev", full)
    try:
        dev.transmit((b"\x00" * 60,))
        await dev.writev([b"\x00" * 14, b"\x01" * 46])
        assert dev.stats.tx_dropped == 2
        assert dev.stats.tx_frames == 0
        with pytest.raises(MessageTooLongError):
            dev.transmit((bytes(1515),))
        assert dev.stats.tx_oversize == 1
    finally:
        monkeypatch.undo()
        dev.close()
        os.close(r)
    with pytest.raises(DeviceClosedError):
        dev.transmit((bytes(60),))
    dev.close()  # idempotent


async def test_drain_reads_every_queued_frame_in_bounded_bursts() -> None:
    """A pipe stands in for the TAP fd: 600 queued 'frames' are all delivered, at most max_burst per
    wake-up, through the level-triggered reader."""
    r, w = os.pipe()
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    dev = TapDevice(r, "fake0", mtu=1500, max_burst=64)
    got: list[bytes] = []
    dev.attach(lambda f: got.append(bytes(f)))
    try:
        # a pipe coalesces writes, so each read returns up to mtu+18 bytes; count bytes not frames
        payload = bytes(range(256)) * 40
        os.write(w, payload)
        for _ in range(100):
            await asyncio.sleep(0)
            if sum(map(len, got)) == len(payload):
                break
        assert b"".join(got) == payload
        assert dev.rx_wakeups >= 1
        assert all(len(g) <= 1518 for g in got)
    finally:
        dev.close()
        os.close(w)


# -- with the kernel ----------------------------------------------------------------------------------
@pytest.mark.tap
async def test_open_creates_tap_in_namespace_and_sets_it_up(tap_ns: Namespace) -> None:
    dev = await tap_ns.open_tap("tcpiptap9", mtu=1400)
    try:
        assert dev.name == "tcpiptap9"
        r = await tap_ns.run_async(["ip", "-o", "link", "show", "tcpiptap9"])
        assert "mtu 1400" in r.stdout
        assert ",UP" in r.stdout or "<UP" in r.stdout
        assert not os.path.exists("/sys/class/net/tcpiptap9")  # not in our own namespace
        assert dev.mac.packed[0] & 0x03 == 0x02  # random, locally administered, unicast
        kernel_mac = await asyncio.to_thread(tap_ns.link_mac, "tcpiptap9")
        assert kernel_mac != str(dev.mac)  # the kernel interface keeps its own MAC
    finally:
        dev.close()
    # non-persistent: closing our fd removes the device
    r = await tap_ns.run_async(["ip", "link", "show", "tcpiptap9"])
    assert r.returncode != 0


@pytest.mark.tap
async def test_frames_both_ways_with_kernel_arp(tap_ns: Namespace) -> None:
    """We write a raw ARP request for the kernel's address; the kernel's reply is read back."""
    dev = await tap_ns.open_tap("tap0")
    try:
        await asyncio.to_thread(tap_ns.add_address, "tap0", "198.18.0.1/24")
        kmac = bytes.fromhex((await asyncio.to_thread(tap_ns.link_mac, "tap0")).replace(":", ""))
        replies: asyncio.Queue[bytes] = asyncio.Queue()

        def on_frame(f: memoryview) -> None:
            if bytes(f[12:14]) == b"\x08\x06" and bytes(f[20:22]) == b"\x00\x02":
                replies.put_nowait(bytes(f))

        dev.attach(on_frame)
        await dev.write(arp_request(dev.mac, OUR_IP, KERNEL_IP))
        reply = await asyncio.wait_for(replies.get(), 2.0)
        assert reply[0:6] == dev.mac.packed  # to us
        assert reply[6:12] == kmac  # from the kernel interface's MAC
        assert reply[22:28] == kmac
        assert reply[28:32] == KERNEL_IP
        assert reply[38:42] == OUR_IP
        assert dev.stats.tx_frames == 1
        assert dev.stats.rx_frames >= 1
    finally:
        dev.close()


_BLAST = """
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("tap0", 0))
n = int(sys.argv[1])
for i in range(n):
    s.send(b"\\xff" * 6 + b"\\x02\\x00\\x00\\x00\\x00\\x09" + b"\\x88\\xb5" + i.to_bytes(4, "big") + bytes(100))
print("sent", n)
"""


@pytest.mark.tap
async def test_burst_from_kernel_is_drained_per_wakeup(tap_ns: Namespace) -> None:
    """500 frames queued by the kernel at once arrive in order; one wake-up serves many frames."""
    import sys

    dev = await tap_ns.open_tap("tap0", mtu=1500)
    got: list[int] = []
    dev.attach(lambda f: got.append(int.from_bytes(f[14:18], "big")) if bytes(f[12:14]) == b"\x88\xb5" else None)
    try:
        # run synchronously on purpose: the loop is blocked meanwhile, so the kernel queues everything
        r = tap_ns.run([sys.executable, "-c", _BLAST, "500"], timeout=20)
        assert r.returncode == 0, r.stderr
        for _ in range(200):
            if len(got) >= 500:
                break
            await asyncio.sleep(0.01)
        assert got == list(range(500))
        assert dev.rx_wakeups < len(got)  # bursts, not one wake-up per frame
    finally:
        dev.close()


@pytest.mark.tap
async def test_close_removes_reader_and_fd(tap_ns: Namespace) -> None:
    dev = await tap_ns.open_tap("tap0")
    await dev.disconnect()
    assert dev.closed
    assert dev.fd == -1
    with pytest.raises(DeviceClosedError):
        await dev.write(bytes(60))
