"""`attach_answering`: a Stack on a TapDevice gets the fast echo's reply back from `Host.receive` (the core's
`answer_direct`) and the device writes it at once, in the burst loop, the one-frame wake-up and the
offload-metadata path, without a `transmit` call; the reply bytes and every counter are those of the queued
path. A failed write is a counted drop. Devices that don't declare `attach_answering` (a Hub port, a fault
injector around a TAP) keep the queued path, and `Host.receive` returns None there.

An AF_UNIX datagram socketpair stands in for the TAP fd, as in test_attach_bytes.py.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Iterator

import pytest
from testlib import SockPeer, make_iface, sockpair_stack

from tcpip.netif import tap_vnet
from tcpip.netif.fault import FaultInjector
from tcpip.netif.hub import Hub
from tcpip.netif.tap import TapDevice
from tcpip.stack import Stack
from tcpip.wire import virtio
from tcpip.wire.checksum import checksum
from tcpip.wire.mac import MacAddress

OURS = bytes.fromhex("c6120002")
PEER_IP = bytes.fromhex("c6120001")
PEER_MAC = bytes.fromhex("020000000001")
OUR_MAC = bytes.fromhex("020000000002")


def _echo_request(seq: int, size: int = 56) -> bytes:
    icmp = bytearray(b"\x08\x00\x00\x00\x12\x34" + seq.to_bytes(2, "big") + bytes(i & 0xFF for i in range(size)))
    icmp[2:4] = checksum(icmp).to_bytes(2, "big")
    ip = bytearray(b"\x45\x00" + (20 + len(icmp)).to_bytes(2, "big") + b"\x00\x01\x40\x00\x40\x01\x00\x00"
                   + PEER_IP + OURS)
    ip[10:12] = checksum(ip).to_bytes(2, "big")
    return OUR_MAC + PEER_MAC + b"\x08\x00" + bytes(ip) + bytes(icmp)


def _check_reply(r: bytes, req: bytes) -> None:
    assert r[0:6] == PEER_MAC
    assert r[6:12] == OUR_MAC
    assert r[12:14] == b"\x08\x00"
    assert checksum(r[14:34]) == 0  # a valid IPv4 header
    assert r[22] == 64  # our TTL
    assert r[26:30] == OURS
    assert r[30:34] == PEER_IP
    assert r[34] == 0  # echo reply
    assert checksum(r[34:14 + int.from_bytes(r[16:18], "big")]) == 0
    assert r[38:len(req)] == req[38:]  # identifier, sequence and data echoed
    assert r[len(req):] == bytes(len(r) - len(req))  # then the Ethernet padding, if any


async def _stack(offload: bool) -> tuple[Stack, TapDevice, SockPeer, list[int]]:
    stack, dev, peer, transmits = await sockpair_stack(offload)
    p = SockPeer(peer, virtio.ZERO if offload else b"")
    await asyncio.sleep(0.01)
    p.drain()  # the start-up announcements
    return stack, dev, p, transmits


_REAL_WRITES = (tap_vnet._write, tap_vnet._writev)


@pytest.fixture
def no_write_patch() -> Iterator[None]:
    yield
    tap_vnet._write, tap_vnet._writev = _REAL_WRITES


@pytest.mark.parametrize("offload", [False, True])
async def test_echo_replies_written_by_the_device_in_both_regimes(offload: bool) -> None:
    stack, dev, peer, transmits = await _stack(offload)
    try:
        assert stack.core.answer_direct
        t0, tx0, txb0 = transmits[0], dev.stats.tx_frames, dev.stats.tx_bytes
        reqs = [_echo_request(i) for i in range(24)]
        for r in reqs:  # one per wake-up
            peer.send(r)
            (rep,) = await peer.recv(1)
            _check_reply(rep, r)
        burst = [_echo_request(100 + i, 8 + 100 * i) for i in range(6)]  # then a burst, one wake-up
        for r in burst:
            peer.send(r)
        reps = await peer.recv(6)
        for rep, r in zip(reps, burst, strict=True):
            _check_reply(rep, r)
            assert len(rep) == max(60, len(r))  # padded to the Ethernet minimum, like the queued path
        assert transmits[0] == t0  # not one transmit call: every reply was a direct answer
        assert dev.stats.tx_frames - tx0 == 30
        assert dev.stats.tx_bytes - txb0 == sum(max(60, len(r)) for r in reqs + burst)
        st = stack.stats()
        assert st["icmp"]["rx_echo_requests"] == 30
        assert st["icmp"]["tx_echo_replies"] == 30
        assert dev.stats.tx_dropped == 0
        assert stack.runner.tx_errors == 0
    finally:
        await stack.disconnect()
        peer.sock.close()
    assert not stack.core.answer_direct  # detached


@pytest.mark.parametrize("offload", [False, True])
async def test_failed_answer_is_a_counted_drop(offload: bool, no_write_patch: None) -> None:
    stack, dev, peer, _ = await _stack(offload)
    try:
        def full(*_a: object) -> int:
            raise OSError(errno.EAGAIN, "queue full")

        tap_vnet._write = tap_vnet._writev = full  # type: ignore[assignment]
        for i in range(20):  # one-frame wake-ups, then a burst
            peer.send(_echo_request(i))
            for _ in range(50):
                await asyncio.sleep(0)
        for i in range(5):
            peer.send(_echo_request(50 + i))
        for _ in range(100):
            await asyncio.sleep(0)
        assert dev.stats.tx_dropped == 25
        assert peer.drain() == []
        tap_vnet._write, tap_vnet._writev = _REAL_WRITES  # back to the real writes: answering goes on
        req = _echo_request(99)
        peer.send(req)
        (rep,) = await peer.recv(1)
        _check_reply(rep, req)
    finally:
        await stack.disconnect()
        peer.sock.close()


async def test_offload_metadata_path_answers_too() -> None:
    # An echo request whose virtio header is not all zero (DATA_VALID, as for a forwarded frame) takes
    # the device's general offload path (_received), which must write the answer as well.
    stack, _dev, peer, _ = await _stack(True)
    try:
        req = _echo_request(7)
        peer.sock.send(bytes([virtio.DATA_VALID]) + virtio.ZERO[1:] + req)
        (rep,) = await peer.recv(1)
        _check_reply(rep, req)
        assert stack.stats()["icmp"]["tx_echo_replies"] == 1
    finally:
        await stack.disconnect()
        peer.sock.close()


async def test_devices_without_answering_keep_the_queued_path() -> None:
    hub = Hub()
    a = await Stack.connect(hub.port(MacAddress(OUR_MAC)), ipv4="198.18.0.2/24")
    try:
        assert not a.core.answer_direct
    finally:
        await a.disconnect()
    ours, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    ours.setblocking(False)
    dev = TapDevice(ours.detach(), "sockpair", mac=MacAddress(OUR_MAC), loop=asyncio.get_running_loop(),
                    offload=False)
    b = await Stack.connect(FaultInjector(dev), ipv4="198.18.0.2/24")  # a wrapper: never bypassed
    try:
        assert not b.core.answer_direct
        assert not dev._raw
    finally:
        await b.disconnect()
        peer.close()


def test_host_receive_returns_the_reply_only_when_asked() -> None:
    h = make_iface(mac=":".join(f"{b:02x}" for b in OUR_MAC), static={"198.18.0.1": "02:00:00:00:00:01"})
    req = _echo_request(1)
    assert h.receive(req, 1.0) is None
    (queued,) = h.poll_transmit()
    h.answer_direct = True
    out = h.receive(req, 2.0)
    assert isinstance(out, bytearray)
    assert h.poll_transmit() == []
    # the same reply but for the ident (and so the header checksum)
    q = b"".join(bytes(p) for p in queued)
    assert out[:18] == q[:18]
    assert out[20:24] == q[20:24]
    assert out[26:] == q[26:]
    assert int.from_bytes(out[18:20], "big") == (int.from_bytes(q[18:20], "big") + 1) & 0xFFFF
    _check_reply(bytes(out), req)
    h.answer_direct = False
    bad = bytearray(req)
    bad[40] ^= 1  # a bad ICMP checksum: the general path drops it, nothing returned or queued
    assert h.receive(bytes(bad), 3.0) is None
    assert h.poll_transmit() == []
