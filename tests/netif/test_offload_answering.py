"""`attach_offload_answering`: a Stack on a TapDevice in offload mode takes a UDP datagram's frame as `bytes`
(a copy past the virtio header, not a view) and, when that input queued exactly one frame (a UDP echo's
reply, a TCP SYN-ACK), gets the frame back from `Runner.on_frame_offloaded` and writes it at once, in the
one-frame wake-up, the burst loop and the general offload path, without a `transmit` call. The bytes on
the wire and every counter are those of the queued path; a failed write is a counted drop; protocols not
registered with `takes_bytes` still get memoryviews; a Hub port (no such method) keeps the queued path.

An AF_UNIX datagram socketpair stands in for the TAP fd, as in test_attach_answering.py.
"""

from __future__ import annotations

import asyncio
import errno
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from testlib import SockPeer, make_iface, sockpair_stack

from tcpip.netif import tap_vnet
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
_VNET = struct.Struct("<BBHHHH")


def _pseudo(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    return src + dst + bytes([0, proto]) + length.to_bytes(2, "big")


def _ip(proto: int, payload: bytes, ident: int) -> bytes:
    ip = bytearray(b"\x45\x00" + (20 + len(payload)).to_bytes(2, "big") + ident.to_bytes(2, "big")
                   + b"\x40\x00\x40" + bytes([proto]) + b"\x00\x00" + PEER_IP + OURS)
    ip[10:12] = checksum(ip).to_bytes(2, "big")
    return OUR_MAC + PEER_MAC + b"\x08\x00" + bytes(ip) + payload


def _udp_request(sport: int, data: bytes, partial: bool) -> bytes:
    """A UDP datagram to our port 7 with its virtio header: NEEDS_CSUM and the partial (pseudo-header) sum,
    as the kernel sends a local socket's datagram, or DATA_VALID and a full checksum."""
    n = 8 + len(data)
    u = bytearray(struct.pack("!HHHH", sport, 7, n, 0) + data)
    ph = _pseudo(PEER_IP, OURS, 17, n)
    if partial:
        s = sum(struct.unpack("!6H", ph))
        while s > 0xFFFF:
            s = (s & 0xFFFF) + (s >> 16)
        u[6:8] = s.to_bytes(2, "big")
        hdr = _VNET.pack(virtio.NEEDS_CSUM, 0, 0, 0, 34, 6)
    else:
        u[6:8] = (checksum(ph + bytes(u)) or 0xFFFF).to_bytes(2, "big")
        hdr = _VNET.pack(virtio.DATA_VALID, 0, 0, 0, 0, 0)
    return hdr + _ip(17, bytes(u), sport)


def _check_udp_reply(r: bytes, sport: int, data: bytes) -> None:
    assert r[0:6] == PEER_MAC
    assert r[6:12] == OUR_MAC
    assert r[12:14] == b"\x08\x00"
    assert checksum(r[14:34]) == 0
    assert r[22:24] == b"\x40\x11"  # our TTL, UDP
    assert r[26:30] == OURS
    assert r[30:34] == PEER_IP
    n = 8 + len(data)
    assert r[34:40] == struct.pack("!HHH", 7, sport, n)
    assert r[40:42] != b"\x00\x00"  # a checksum is always sent
    assert checksum(_pseudo(OURS, PEER_IP, 17, n) + r[34:34 + n]) == 0  # complete, not partial
    assert r[42:42 + len(data)] == data
    assert r[42 + len(data):] == bytes(len(r) - 42 - len(data))  # the Ethernet padding


async def _stack() -> tuple[Stack, TapDevice, SockPeer, list[int]]:
    stack, dev, peer, transmits = await sockpair_stack(True)
    p = SockPeer(peer, virtio.ZERO)
    await asyncio.sleep(0.01)
    p.drain()  # the start-up announcements
    return stack, dev, p, transmits


_REAL_WRITEV = tap_vnet._writev
_REAL_WRITE = tap_vnet._write


@pytest.fixture
def no_write_patch() -> Iterator[None]:
    yield
    tap_vnet._writev = _REAL_WRITEV
    tap_vnet._write = _REAL_WRITE


async def test_udp_echo_answered_by_the_device() -> None:
    stack, dev, peer, transmits = await _stack()
    try:
        assert stack.runner._answer_offloaded
        assert dev._raw_offload
        await stack.udp_echo(7)
        t0, tx0, txb0 = transmits[0], dev.stats.tx_frames, dev.stats.tx_bytes
        sizes: list[int] = []
        for i in range(24):  # one per wake-up
            data = bytes((i + j) & 0xFF for j in range(i * 7))
            peer.sock.send(_udp_request(40000 + i, data, partial=i % 2 == 0))
            (rep,) = await peer.recv(1)
            _check_udp_reply(rep, 40000 + i, data)
            sizes.append(len(rep))
        burst = [bytes([i]) * (100 * i + 1) for i in range(6)]  # then a burst: the loop path
        for i, data in enumerate(burst):
            peer.sock.send(_udp_request(41000 + i, data, partial=i % 2 == 1))
        reps = await peer.recv(6)
        for i, (rep, data) in enumerate(zip(reps, burst, strict=True)):
            _check_udp_reply(rep, 41000 + i, data)
            sizes.append(len(rep))
        assert transmits[0] == t0  # not one transmit call: every reply was written as an answer
        assert dev.stats.tx_frames - tx0 == 30
        assert dev.stats.tx_bytes - txb0 == sum(sizes)
        assert sizes[0] == 60
        assert sizes[-1] == 42 + 501
        st = stack.stats()["udp"]
        assert st["rx_datagrams"] == st["rx_delivered"] == st["tx_datagrams"] == 30
        assert dev.stats.tx_dropped == 0
        assert stack.runner.tx_errors == stack.runner.rx_errors == 0
    finally:
        await stack.disconnect()
        peer.sock.close()
    assert not dev._raw_offload  # detached
    assert not stack.runner._answer_offloaded


async def test_general_offload_path_answers_too() -> None:
    # A NEEDS_CSUM datagram whose gso_type field is set (the drain's own test fails) takes the device's
    # general offload path (_received_offloaded), which must write the answer as well.
    stack, _dev, peer, transmits = await _stack()
    try:
        await stack.udp_echo(7)
        req = bytearray(_udp_request(40001, b"abc", partial=True))
        req[1] = virtio.GSO_ECN  # no segmentation, only the ECN bit: not a super-frame
        t0 = transmits[0]
        peer.sock.send(bytes(req))
        (rep,) = await peer.recv(1)
        _check_udp_reply(rep, 40001, b"abc")
        assert transmits[0] == t0
        assert stack.stats()["udp"]["tx_datagrams"] == 1
    finally:
        await stack.disconnect()
        peer.sock.close()


async def test_datagram_endpoint_gets_the_bytes() -> None:
    stack, _dev, peer, _ = await _stack()
    got: list[tuple[Any, Any]] = []

    class P(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            got.append((data, addr))

    try:
        tr, _p = await stack.create_datagram_endpoint(P, local_addr=("0.0.0.0", 7))
        for i in range(5):
            peer.sock.send(_udp_request(42000 + i, b"x" * i + b"end", partial=i % 2 == 0))
            for _ in range(20):
                await asyncio.sleep(0)
        assert [(d, a) for d, a in got] == [(b"x" * i + b"end", ("198.18.0.1", 42000 + i)) for i in range(5)]
        assert all(type(d) is bytes for d, _a in got)
        tr.close()
    finally:
        await stack.disconnect()
        peer.sock.close()


async def test_failed_offload_answer_is_a_counted_drop(no_write_patch: None) -> None:
    stack, dev, peer, _ = await _stack()
    try:
        await stack.udp_echo(7)

        def full(*_a: object) -> int:
            raise OSError(errno.EAGAIN, "queue full")

        tap_vnet._writev = full  # type: ignore[assignment]
        tap_vnet._write = full  # type: ignore[assignment]  # the fast answer's one write (core.echo)
        for i in range(20):  # one-frame wake-ups, then a burst
            peer.sock.send(_udp_request(40000 + i, b"q", partial=True))
            for _ in range(50):
                await asyncio.sleep(0)
        for i in range(5):
            peer.sock.send(_udp_request(40100 + i, b"q", partial=True))
        for _ in range(100):
            await asyncio.sleep(0)
        assert dev.stats.tx_dropped == 25
        assert stack.stats()["udp"]["tx_datagrams"] == 25  # sent by UDP, dropped by the device
        assert peer.drain() == []
        tap_vnet._writev = _REAL_WRITEV
        tap_vnet._write = _REAL_WRITE
        peer.sock.send(_udp_request(40999, b"again", partial=True))
        (rep,) = await peer.recv(1)
        _check_udp_reply(rep, 40999, b"again")
    finally:
        await stack.disconnect()
        peer.sock.close()


async def test_tcp_syn_ack_answered_by_the_device() -> None:
    stack, _dev, peer, transmits = await _stack()
    try:
        server = await stack.start_server(lambda r, w: None, "198.18.0.2", 8080)
        t = bytearray(struct.pack("!HHIIBBHHH", 45000, 8080, 1000, 0, 5 << 4, 0x02, 64240, 0, 0))
        t[16:18] = checksum(_pseudo(PEER_IP, OURS, 6, len(t)) + bytes(t)).to_bytes(2, "big")
        t0 = transmits[0]
        peer.sock.send(_VNET.pack(virtio.DATA_VALID, 0, 0, 0, 0, 0) + _ip(6, bytes(t), 9))
        (rep,) = await peer.recv(1)
        assert rep[23] == 6
        assert rep[34:38] == struct.pack("!HH", 8080, 45000)
        assert rep[47] == 0x12  # SYN-ACK
        assert int.from_bytes(rep[42:46], "big") == 1001
        tlen = int.from_bytes(rep[16:18], "big") - 20
        assert checksum(_pseudo(OURS, PEER_IP, 6, tlen) + rep[34:34 + tlen]) == 0
        assert transmits[0] == t0
        server.close()
    finally:
        await stack.disconnect()
        peer.sock.close()


async def test_hub_port_keeps_the_queued_path() -> None:
    hub = Hub(offload=True)
    a = await Stack.connect(hub.port(MacAddress(OUR_MAC)), ipv4="198.18.0.2/24")
    try:
        assert a.runner._offload
        assert not a.runner._answer_offloaded
    finally:
        await a.disconnect()


def test_only_protocols_registered_for_bytes_get_bytes() -> None:
    h = make_iface(mac=":".join(f"{b:02x}" for b in OUR_MAC), static={"198.18.0.1": "02:00:00:00:00:01"})
    seen: dict[int, list[tuple[type, type]]] = {99: [], 98: []}

    def handler(proto: int) -> Any:
        def on_input(src: int, dst: int, payload: Any, packet: Any, now: float, broadcast: bool) -> None:
            seen[proto].append((type(payload), type(packet)))
            assert bytes(payload) == b"payload!"
            assert bytes(packet[:1]) == b"\x45"
            assert len(packet) == 28
        return on_input

    h.register(99, handler(99), takes_bytes=True)
    h.register(98, handler(98))
    for proto in (99, 98):
        h.receive(_ip(proto, b"payload!", 1), 1.0)  # bytes in
        h.receive(memoryview(_ip(proto, b"payload!", 2)), 1.0)  # a view in
    assert seen[99] == [(bytes, bytes), (memoryview, memoryview)]
    assert seen[98] == [(memoryview, memoryview), (memoryview, memoryview)]
    h.unregister(99)
    h.register(99, handler(99))  # registered again without takes_bytes: views
    h.receive(_ip(99, b"payload!", 3), 1.0)
    assert seen[99][-1] == (memoryview, memoryview)
