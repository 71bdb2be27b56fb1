"""`sendto` from a protocol callback: immutable `bytes` leave with the rest of the batch (the drain's own
transmit, one pass), a mutable buffer still reaches the device before `sendto` returns (the caller may reuse
it at once, as with asyncio's own transport), and a send outside a drain is immediate either way."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

from testlib import SockPeer, sockpair_stack

from tcpip.wire.checksum import checksum, pseudo_header_sum

PEER_MAC = bytes.fromhex("020000000001")
OUR_MAC = bytes.fromhex("020000000002")
PEER_IP = bytes.fromhex("c6120001")
OURS = bytes.fromhex("c6120002")


def _datagram(sport: int, dport: int, data: bytes) -> bytes:
    n = 8 + len(data)
    u = bytearray(struct.pack("!HHHH", sport, dport, n, 0) + data)
    c = checksum(bytes(u), pseudo_header_sum(0xC6120001, 0xC6120002, 17, n)) or 0xFFFF
    u[6:8] = c.to_bytes(2, "big")
    ip = bytearray(b"\x45\x00" + (20 + n).to_bytes(2, "big") + b"\x00\x01\x00\x00\x40\x11\x00\x00" + PEER_IP + OURS)
    ip[10:12] = checksum(bytes(ip)).to_bytes(2, "big")
    return OUR_MAC + PEER_MAC + b"\x08\x00" + bytes(ip) + bytes(u)


def _udp(frames: list[bytes]) -> list[tuple[int, bytes]]:
    """(destination port, payload) of each UDP frame, every checksum checked (the set-up's ARP frames skipped)."""
    out = []
    for f in frames:
        if f[12:14] != b"\x08\x00" or f[23] != 17:
            continue
        n = struct.unpack_from("!H", f, 38)[0]
        assert checksum(f[34:34 + n], pseudo_header_sum(0xC6120002, 0xC6120001, 17, n)) == 0
        out.append((struct.unpack_from("!H", f, 36)[0], bytes(f[42:34 + n])))
    return out


async def _udp_frames(peer: SockPeer, n: int) -> list[tuple[int, bytes]]:
    got: list[tuple[int, bytes]] = []
    for _ in range(600):
        await asyncio.sleep(0)
        got += _udp(peer.drain())
        if len(got) >= n:
            return got
    raise AssertionError(f"{len(got)} of {n} datagrams")


class _Echo(asyncio.DatagramProtocol):
    """Answers each datagram twice: as bytes, then from a bytearray it overwrites right after sendto."""

    def __init__(self, transmits: list[int]) -> None:
        self.transmits = transmits
        self.seen: list[tuple[int, int]] = []  # transmit calls before and after each sendto pair

    def connection_made(self, transport: Any) -> None:
        self.t = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        before = self.transmits[0]
        self.t.sendto(data, addr)
        after_bytes = self.transmits[0]
        buf = bytearray(b"copy:" + data)
        self.t.sendto(buf, addr)
        buf[:] = b"X" * len(buf)  # reused at once: what was sent must not change
        self.seen.append((after_bytes - before, self.transmits[0] - before))


async def test_bytes_wait_for_the_batch_and_mutable_buffers_leave_at_once() -> None:
    stack, _dev, sock, transmits = await sockpair_stack(False)
    try:
        proto = _Echo(transmits)
        await stack.create_datagram_endpoint(lambda: proto, local_addr=("198.18.0.2", 5000))
        peer = SockPeer(sock)
        for i in range(6):  # queued before the loop runs: one burst, one drain, one batch of callbacks
            peer.send(_datagram(40000 + i, 5000, b"msg%d" % i))
        got = await _udp_frames(peer, 12)
        # bytes: nothing reached the device inside the callback; the bytearray: it, and the bytes before it
        assert proto.seen == [(0, 2)] * 6
        assert got == [x for i in range(6) for x in ((40000 + i, b"msg%d" % i), (40000 + i, b"copy:msg%d" % i))]
    finally:
        await stack.disconnect()
        sock.close()


async def test_bytes_sent_outside_a_drain_leave_before_sendto_returns() -> None:
    stack, _dev, sock, transmits = await sockpair_stack(False)
    try:
        t, _ = await stack.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("198.18.0.2", 5001))
        before = transmits[0]
        t.sendto(b"now", ("198.18.0.1", 9))
        assert transmits[0] == before + 1
        assert await _udp_frames(SockPeer(sock), 1) == [(9, b"now")]
    finally:
        await stack.disconnect()
        sock.close()
