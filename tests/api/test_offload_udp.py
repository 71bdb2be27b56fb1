"""Offload mode, UDP: a datagram whose device vouches for its checksum (NEEDS_CSUM: made by the kernel, the
field holds only the pseudo-header sum; DATA_VALID: verified) is delivered without completing or verifying
the checksum and without a copy; the same datagram without offload flags is verified and, when wrong,
dropped and counted. The IPv4 header checksum is still checked. Crafted frames on a Hub(offload=True)."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import pytest

from tcpip import Stack
from tcpip.netif import Hub
from tcpip.netif.hub import HubPort
from tcpip.wire import checksum as ck
from tcpip.wire import virtio

A, B = 0xC6120001, 0xC6120002  # the crafting port (198.18.0.1) and the stack (198.18.0.2)
A_MAC = bytes.fromhex("02000000000a")
PORT = 9


def udp_frame(dst_mac: bytes, payload: bytes, csum: int, ip_csum: int | None = None) -> bytes:
    """Ethernet/IPv4/UDP from A to B:PORT with the UDP checksum field set to `csum`."""
    ip = bytearray(struct.pack("!BBHHHBBHII", 0x45, 0, 28 + len(payload), 7, 0, 64, 17, 0, A, B))
    struct.pack_into("!H", ip, 10, ck.checksum(ip) if ip_csum is None else ip_csum)
    return dst_mac + A_MAC + b"\x08\x00" + bytes(ip) + struct.pack("!HHHH", 40000, PORT, 8 + len(payload),
                                                                   csum) + payload


def good_csum(payload: bytes) -> int:
    u = struct.pack("!HHHH", 40000, PORT, 8 + len(payload), 0) + payload
    return ck.checksum(u, ck.pseudo_header_sum(A, B, 17, len(u))) or 0xFFFF


def partial_csum(payload: bytes) -> int:
    """What the kernel leaves in a NEEDS_CSUM datagram: the folded pseudo-header sum, not complemented."""
    return ck.pseudo_header_sum(A, B, 17, 8 + len(payload))


class Setup:
    def __init__(self, stack: Stack, raw: HubPort, got: list[tuple[memoryview, Any]]) -> None:
        self.stack, self.raw, self.got = stack, raw, got

    async def send(self, frame: bytes, flags: int | None) -> None:
        """`frame` from the raw port, behind a virtio header with `flags` (None: a plain frame)."""
        if flags is None:
            self.raw.transmit((frame,))
        else:
            self.raw.transmit((virtio.VnetHeader(struct.pack("<BBHHHH", flags, 0, 0, 0, 34, 6)), frame))
        for _ in range(3):
            await asyncio.sleep(0)


async def setup(monkeypatch: pytest.MonkeyPatch, offload: bool = True) -> Setup:
    hub = Hub(offload=True)
    stack = await Stack.connect(hub.port(offload=offload), ipv4="198.18.0.2/24")
    stack.core.arp.add_static(A, A_MAC)
    raw = hub.port(A_MAC.hex(":"))
    got: list[tuple[memoryview, Any]] = []
    stack.udp.bind(PORT, 0, lambda payload, src, sport, dst, now: got.append((payload, payload.obj)))

    def no_copy(*a: object) -> bytearray:
        raise AssertionError("checksum completed in software")

    if offload:
        monkeypatch.setattr(virtio, "complete_checksum", no_copy)
    return Setup(stack, raw, got)


def frame_to(s: Setup, payload: bytes, csum: int, ip_csum: int | None = None) -> bytes:
    return udp_frame(s.stack.core.mac, payload, csum, ip_csum)


async def test_needs_csum_datagram_is_delivered_without_completing_or_verifying(
        monkeypatch: pytest.MonkeyPatch) -> None:
    s = await setup(monkeypatch)
    data = b"made by the kernel"
    f = frame_to(s, data, partial_csum(data))
    await s.send(f, virtio.NEEDS_CSUM)
    await s.send(frame_to(s, data, 0x1234), virtio.NEEDS_CSUM)  # whatever the field holds: not looked at
    st = s.stack.stats()["udp"]
    assert [bytes(p) for p, _ in s.got] == [data, data]
    assert all(type(obj) is bytes for _, obj in s.got)  # a view of the frame itself, not a completed copy
    assert (st["rx_delivered"], st["rx_bad_checksum"]) == (2, 0)
    await s.stack.disconnect()


async def test_data_valid_datagram_is_not_verified_again(monkeypatch: pytest.MonkeyPatch) -> None:
    s = await setup(monkeypatch)
    await s.send(frame_to(s, b"verified", 0xBEEF), virtio.DATA_VALID)
    assert [bytes(p) for p, _ in s.got] == [b"verified"]
    assert s.stack.udp.stats.rx_bad_checksum == 0
    await s.stack.disconnect()


async def test_wrong_checksum_without_offload_flags_is_dropped_and_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    s = await setup(monkeypatch)
    data = b"from the wire"
    await s.send(frame_to(s, data, good_csum(data) ^ 0x0101), None)
    await s.send(frame_to(s, data, good_csum(data) ^ 0x0101), 0)  # an all-zero header says nothing either
    await s.send(frame_to(s, data, good_csum(data)), None)
    st = s.stack.stats()["udp"]
    assert [bytes(p) for p, _ in s.got] == [data]
    assert (st["rx_delivered"], st["rx_bad_checksum"]) == (1, 2)
    await s.stack.disconnect()


async def test_ipv4_header_checksum_is_still_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    s = await setup(monkeypatch)
    data = b"bad header"
    await s.send(frame_to(s, data, partial_csum(data), ip_csum=0x0BAD), virtio.NEEDS_CSUM)
    assert s.got == []
    assert s.stack.stats()["ipv4"]["rx_bad_checksum"] == 1
    assert s.stack.stats()["udp"]["rx_datagrams"] == 0
    await s.stack.disconnect()


async def test_broadcast_needs_csum_datagram_takes_the_general_path_trusted(monkeypatch: pytest.MonkeyPatch) -> None:
    """A datagram outside the fast path (here to the subnet broadcast) keeps the device's word too."""
    s = await setup(monkeypatch)
    data = b"to everyone"
    f = bytearray(udp_frame(b"\xff" * 6, data, partial_csum(data)))
    f[30:34] = (0xC61200FF).to_bytes(4, "big")
    f[24:26] = b"\0\0"
    f[24:26] = ck.checksum(f[14:34]).to_bytes(2, "big")
    await s.send(bytes(f), virtio.NEEDS_CSUM)
    assert [bytes(p) for p, _ in s.got] == [data]
    assert s.stack.udp.stats.rx_bad_checksum == 0
    await s.stack.disconnect()


async def test_port_without_offload_gets_the_checksum_completed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain port on the same hub: the partial checksum is finished in software, then verified."""
    s = await setup(monkeypatch, offload=False)
    data = b"finished for you"
    await s.send(frame_to(s, data, partial_csum(data)), virtio.NEEDS_CSUM)
    assert [bytes(p) for p, _ in s.got] == [data]
    assert s.stack.udp.stats.rx_bad_checksum == 0
    await s.stack.disconnect()
