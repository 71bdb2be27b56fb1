"""`attach_bytes`: a TapDevice hands its consumer the bytes it read (plain framing: that very object; offload
framing: a copy past the all-zero virtio header) instead of a memoryview, in both the burst loop and the
one-frame wake-up; `attach` consumers still get memoryviews. And a Stack on such a device (its runner
attached with attach_bytes) answers and counts exactly as on memoryviews: Host.receive takes both.

An AF_UNIX datagram socketpair stands in for the TAP fd, as in test_drain_one_frame.py.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from tcpip.netif.tap import TapDevice
from tcpip.stack import Stack
from tcpip.wire import virtio
from tcpip.wire.mac import MacAddress

FRAME = bytes(range(14)) + bytes(46)


async def _device(offload: bool) -> tuple[TapDevice, socket.socket]:
    ours, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    ours.setblocking(False)
    dev = TapDevice(ours.detach(), "sockpair", mac=MacAddress(bytes(6)), loop=asyncio.get_running_loop(),
                    offload=offload)
    return dev, peer


async def _wait(cond: object, what: str) -> None:
    for _ in range(300):
        await asyncio.sleep(0)
        if callable(cond) and cond():
            return
    raise AssertionError(what)


@pytest.mark.parametrize("offload", [False, True])
async def test_bytes_consumer_gets_bytes_view_consumer_gets_views(offload: bool) -> None:
    dev, peer = await _device(offload)
    hdr = virtio.ZERO if offload else b""
    got: list[object] = []
    try:
        dev.attach_bytes(got.append)
        for i in range(24):  # one per wake-up
            peer.send(hdr + FRAME[:-1] + bytes([i]))
            await _wait(lambda i=i: len(got) > i, f"frame {i} never delivered")
        peer.send(hdr + FRAME)  # then a burst of three in one wake-up
        peer.send(hdr + FRAME)
        peer.send(hdr + FRAME)
        await _wait(lambda: len(got) == 27, "burst never delivered")
        assert all(type(f) is bytes for f in got)
        assert [f[-1] for f in got[:24]] == list(range(24))  # type: ignore[index]
        assert all(f == FRAME for f in got[24:])
        assert dev.stats.rx_frames == 27
        assert dev.stats.rx_bytes == 27 * len(FRAME)

        views: list[object] = []
        dev.attach(views.append)  # back to a view consumer: views again
        for _ in range(20):
            peer.send(hdr + FRAME)
            n = len(views)
            await _wait(lambda n=n: len(views) > n, "frame never delivered")
        assert all(type(f) is memoryview and bytes(f) == FRAME for f in views)  # type: ignore[arg-type]
    finally:
        dev.close()
        peer.close()


def _echo_request(dst_mac: bytes, src_mac: bytes, src: bytes, dst: bytes) -> bytes:
    from tcpip.wire.checksum import checksum

    icmp = bytearray(b"\x08\x00\x00\x00\x12\x34\x00\x01" + bytes(range(56)))
    icmp[2:4] = checksum(icmp).to_bytes(2, "big")
    ip = bytearray(b"\x45\x00" + (20 + len(icmp)).to_bytes(2, "big") + b"\x00\x01\x40\x00\x40\x01\x00\x00" + src + dst)
    ip[10:12] = checksum(ip).to_bytes(2, "big")
    return dst_mac + src_mac + b"\x08\x00" + bytes(ip) + bytes(icmp)


@pytest.mark.parametrize("offload", [False, True])
async def test_stack_on_bytes_answers_echo_arp_and_counts(offload: bool) -> None:
    dev, peer = await _device(offload)
    hdr = virtio.ZERO if offload else b""
    stack = await Stack.connect(dev, ipv4="198.18.0.2/24")
    ours = bytes.fromhex("c6120002")
    peer_ip = bytes.fromhex("c6120001")
    peer_mac = bytes.fromhex("020000000001")
    try:
        assert dev._raw  # the runner took the bytes path
        await asyncio.sleep(0.01)
        peer.setblocking(False)
        while True:  # the stack's start-up announcements
            try:
                peer.recv(4096)
            except BlockingIOError:
                break
        # ARP (the general path, on a view of the bytes) then echoes (the fast path, on the bytes)
        arp = (b"\xff" * 6 + peer_mac + b"\x08\x06" + b"\x00\x01\x08\x00\x06\x04\x00\x01" + peer_mac + peer_ip
               + bytes(6) + ours).ljust(60, b"\0")
        peer.send(hdr + arp)
        replies: list[bytes] = []

        async def recv_one() -> bytes:
            for _ in range(300):
                await asyncio.sleep(0)
                try:
                    return peer.recv(4096)[len(hdr):]
                except BlockingIOError:
                    continue
            raise AssertionError("no reply")

        r = await recv_one()
        assert r[12:14] == b"\x08\x06"
        assert r[20:22] == b"\x00\x02"
        assert r[28:32] == ours
        req = _echo_request(bytes(dev.mac.packed), peer_mac, peer_ip, ours)
        for _ in range(20):
            peer.send(hdr + req)
            replies.append(await recv_one())
        for r in replies:
            assert r[0:6] == peer_mac
            assert r[12:14] == b"\x08\x00"
            assert r[34] == 0
            assert r[26:30] == ours
            assert r[30:34] == peer_ip
            assert r[42:] == req[42:]
        st = stack.stats()
        assert st["icmp"]["rx_echo_requests"] == 20
        assert st["icmp"]["tx_echo_replies"] == 20
        assert st["arp"]["requests_received"] == 1
        assert st["arp"]["replies_sent"] == 1
    finally:
        await stack.disconnect()
        peer.close()
