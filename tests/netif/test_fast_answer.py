"""TapDevice.attach_fast, the core's echo answer tried first in a one-frame wake-up (core.echo): the echoes it
answers never reach the driver (no on_frame, no flush), their replies and counts are the usual path's, an
offloaded request's virtio header does not leak into the reply, and a failing answer falls back to the
usual path. An AF_UNIX datagram socketpair stands in for the TAP fd (testlib.sockpair_stack)."""

from __future__ import annotations

import logging
import struct
from typing import Any

import pytest
from testlib import SockPeer, sockpair_stack

from tcpip.core.echo import FastAnswer
from tcpip.wire import checksum as ck
from tcpip.wire import virtio

OURS = 0xC6120002
PEER = 0xC6120001
OUR_MAC = bytes.fromhex("020000000002")
PEER_MAC = bytes.fromhex("020000000001")


def _ping(seq: int, data: bytes = b"p" * 56) -> bytes:
    m = bytearray(struct.pack("!BBHHH", 8, 0, 0, 0x77, seq) + data)
    m[2:4] = ck.checksum(m).to_bytes(2, "big")
    ip = bytearray(struct.pack("!BBHHHBBHII", 0x45, 0, 20 + len(m), seq, 0, 64, 1, 0, PEER, OURS))
    ip[10:12] = ck.checksum(ip).to_bytes(2, "big")
    return OUR_MAC + PEER_MAC + b"\x08\x00" + bytes(ip) + bytes(m)


def _udp_partial(sport: int, data: bytes) -> bytes:
    """A datagram to port 7 as the kernel hands it over in offload mode: NEEDS_CSUM, the pseudo-header sum."""
    n = 8 + len(data)
    u = bytearray(struct.pack("!HHHH", sport, 7, n, 0) + data)
    u[6:8] = (ck.pseudo_header_sum(PEER, OURS, 17, n) % 0xFFFF or 0xFFFF).to_bytes(2, "big")
    ip = bytearray(struct.pack("!BBHHHBBHII", 0x45, 0, 20 + n, 5, 0, 64, 17, 0, PEER, OURS))
    ip[10:12] = ck.checksum(ip).to_bytes(2, "big")
    return (struct.pack("<BBHHHH", virtio.NEEDS_CSUM, 0, 0, 0, 34, 6) + OUR_MAC + PEER_MAC + b"\x08\x00"
            + bytes(ip) + bytes(u))


async def _setup(offload: bool) -> tuple[Any, Any, SockPeer, list[int]]:
    stack, dev, sock, _ = await sockpair_stack(offload)
    peer = SockPeer(sock, virtio.ZERO if offload else b"")
    await peer.recv(0)
    peer.drain()  # the start-up announcements
    delivered = [0]
    inner = dev._deliver

    def counting(f: Any) -> Any:
        delivered[0] += 1
        return inner(f)

    dev._deliver = counting
    return stack, dev, peer, delivered


@pytest.mark.parametrize("offload", [False, True])
async def test_pings_answered_in_the_read(offload: bool) -> None:
    stack, dev, peer, delivered = await _setup(offload)
    try:
        assert dev._fast_answer is not None
        n = 40
        for seq in range(n):
            peer.send(_ping(seq))
            (rep,) = await peer.recv(1)
            assert rep[:12] == PEER_MAC + OUR_MAC
            assert rep[34] == 0
            assert struct.unpack_from("!HH", rep, 38) == (0x77, seq)
            assert ck.checksum(rep[14:34]) == 0
            assert ck.checksum(rep[34:98]) == 0
        assert delivered[0] == 0  # every ping answered in the read: none went through the driver
        icmp = stack.stats()["icmp"]
        assert icmp["rx_echo_requests"] == n
        assert icmp["tx_echo_replies"] == n
    finally:
        await stack.disconnect()
        peer.sock.close()


async def test_device_counts_fast_answers_like_delivered_ones() -> None:
    stack, dev, peer, _ = await _setup(True)
    try:
        rx0, rxb0, tx0, txb0 = dev.stats.rx_frames, dev.stats.rx_bytes, dev.stats.tx_frames, dev.stats.tx_bytes
        for seq in range(20):
            peer.send(_ping(seq))
            await peer.recv(1)
        f = len(_ping(0))
        assert (dev.stats.rx_frames - rx0, dev.stats.rx_bytes - rxb0) == (20, 20 * f)
        assert (dev.stats.tx_frames - tx0, dev.stats.tx_bytes - txb0) == (20, 20 * f)  # no virtio bytes
    finally:
        await stack.disconnect()
        peer.sock.close()


async def test_offloaded_udp_request_reply_keeps_the_partial_sum() -> None:
    """The kernel's NEEDS_CSUM datagram: the reply keeps its header and partial sum (Udp.fast_echo); finished
    as the kernel finishes it (SockPeer), the checksum verifies."""
    stack, _dev, peer, delivered = await _setup(True)
    try:
        await stack.udp_echo(7)
        for i in range(20):
            peer.sock.send(_udp_partial(40000 + i, b"echo %d" % i))
            (rep,) = await peer.recv(1)  # SockPeer finishes a kept NEEDS_CSUM header's sum, and counts it
            n = 8 + len(b"echo %d" % i)
            assert struct.unpack_from("!HH", rep, 34) == (7, 40000 + i)
            assert ck.checksum(rep[34:34 + n], ck.pseudo_header_sum(OURS, PEER, 17, n)) == 0
            assert rep[42:42 + n - 8] == b"echo %d" % i
        assert peer.partial == 20
        assert delivered[0] <= 2 + 20 // 16
        assert stack.stats()["udp"]["tx_datagrams"] == 20
    finally:
        await stack.disconnect()
        peer.sock.close()


async def test_failing_answer_falls_back_to_the_usual_path(caplog: pytest.LogCaptureFixture) -> None:
    stack, dev, peer, delivered = await _setup(True)
    try:
        def broken(*_a: object) -> None:
            raise RuntimeError("bug")

        dev.attach_fast(broken)
        with caplog.at_level(logging.ERROR, logger="tcpip.netif.tap"):
            for seq in range(5):
                peer.send(_ping(seq))
                (rep,) = await peer.recv(1)
                assert struct.unpack_from("!HH", rep, 38) == (0x77, seq)
        assert delivered[0] == 5  # every one delivered and answered the usual way
        assert sum("fast answer failed" in r.getMessage() for r in caplog.records) >= 3
    finally:
        await stack.disconnect()
        peer.sock.close()


async def test_detach_removes_it() -> None:
    stack, dev, peer, _ = await _setup(False)
    try:
        assert dev._fast_answer is not None
        stack.runner.detach()
        assert dev._fast_answer is None
    finally:
        await stack.disconnect()
        peer.sock.close()


def _udp_to(dport: int, data: bytes) -> bytes:
    """A plain datagram (full checksum) from the peer's port 5000 to `dport`."""
    n = 8 + len(data)
    u = bytearray(struct.pack("!HHHH", 5000, dport, n, 0) + data)
    u[6:8] = (ck.checksum(u, ck.pseudo_header_sum(PEER, OURS, 17, n)) or 0xFFFF).to_bytes(2, "big")
    ip = bytearray(struct.pack("!BBHHHBBHII", 0x45, 0, 20 + n, 9, 0, 64, 17, 0, PEER, OURS))
    ip[10:12] = ck.checksum(ip).to_bytes(2, "big")
    return OUR_MAC + PEER_MAC + b"\x08\x00" + bytes(ip) + bytes(u)


@pytest.mark.parametrize("offload", [False, True])
async def test_a_burst_is_answered_in_the_read_in_order(offload: bool) -> None:
    """Frames queued before the device reads (a pinned peer's burst): the echoes in it are answered by the
    fast answer, the frame it declines (a datagram to a closed port) takes the usual path, replies in order."""
    stack, dev, peer, delivered = await _setup(offload)
    try:
        await stack.udp_echo(7)
        rx0, tx0 = dev.stats.rx_frames, dev.stats.tx_frames
        burst: list[bytes] = [_ping(seq) for seq in range(10)]
        burst.append(_udp_to(9, b"nobody"))
        burst += [_ping(seq) for seq in range(10, 20)]
        burst.append(_udp_partial(40001, b"echo!") if offload else _udp_to(7, b"echo!"))
        for f in burst:
            if offload and f[:1] == bytes([virtio.NEEDS_CSUM]):
                peer.sock.send(f)
            else:
                peer.send(f)
        reps = await peer.recv(len(burst))
        assert len(reps) == len(burst)
        seqs = [struct.unpack_from("!H", r, 40)[0] for r in reps[:10] + reps[11:21]]
        assert seqs == list(range(20))
        assert all(r[23] == 1 and r[34] == 0 and ck.checksum(r[14:34]) == 0 for r in reps[:10] + reps[11:21])
        assert (reps[10][23], reps[10][34], reps[10][35]) == (1, 3, 3)  # port unreachable, usual path
        assert struct.unpack_from("!HH", reps[21], 34) == (7, 40001 if offload else 5000)
        assert reps[21][42:47] == b"echo!"
        assert delivered[0] == 1  # only the datagram to the closed port reached the driver
        icmp = stack.stats()["icmp"]
        assert (icmp["rx_echo_requests"], icmp["tx_echo_replies"]) == (20, 20)
        assert (dev.stats.rx_frames - rx0, dev.stats.tx_frames - tx0) == (len(burst), len(burst))
    finally:
        await stack.disconnect()
        peer.sock.close()


@pytest.mark.parametrize("offload", [False, True])
async def test_tcp_segments_are_not_offered(offload: bool) -> None:
    """A TCP segment never goes to the fast answer (no call per segment of a bulk transfer), alone or in a
    burst; a ping still does."""
    stack, dev, peer, _ = await _setup(offload)
    try:
        offered: list[int] = []
        inner = dev._fast_answer
        assert isinstance(inner, FastAnswer)
        assert sorted(dev._fast_table) == [1]  # the core's table as the drain looks it up: ICMP's echo...
        await stack.udp_echo(7)
        assert sorted(dev._fast_table) == [1, 17]  # ...and the echo service's, once bound; never TCP

        def spy(buf: bytes, off: int, csum_ok: int) -> Any:
            offered.append(buf[off + 23])
            return inner(buf, off, csum_ok)

        dev.attach_fast(spy)  # a plain function: offered every protocol but TCP
        ip = bytearray(struct.pack("!BBHHHBBHII", 0x45, 0, 40, 1, 0, 64, 6, 0, PEER, OURS) + bytes(20))
        ip[10:12] = ck.checksum(ip[:20]).to_bytes(2, "big")
        seg = OUR_MAC + PEER_MAC + b"\x08\x00" + bytes(ip)
        for seq in (5, 0):
            peer.send(seg)
            peer.send(_ping(seq))
            (rep,) = await peer.recv(1)  # the ping's reply (the segment's bad checksum: dropped, counted)
            assert struct.unpack_from("!HH", rep, 38) == (0x77, seq)
        assert offered == [1, 1]
    finally:
        await stack.disconnect()
        peer.sock.close()
