"""The hooks upper layers (UDP now, TCP next) plug into: protocol registry, timer sources, poll_transmit,
and the runner's kick / after-batch drain that keeps application callbacks out of `receive()`."""

from __future__ import annotations

import asyncio
import struct
from ipaddress import IPv4Address

from testlib import Recorder, csum, ip_int, mac_bytes, make_iface, settle

from tcpip import Stack
from tcpip.core.interface import Interface
from tcpip.netif import Hub, VirtualClock

OUR_MAC, PEER_MAC = "02:00:00:00:00:02", "02:00:00:00:00:01"
OUR_IP, PEER_IP = "198.18.0.2", "198.18.0.1"


def _iface() -> Interface:
    return make_iface(mac=OUR_MAC, address=OUR_IP)


def _frame(dst_ip: str, proto: int, payload: bytes, dst_mac: str = OUR_MAC) -> bytes:
    hdr = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0,
                                IPv4Address(PEER_IP).packed, IPv4Address(dst_ip).packed))
    hdr[10:12] = csum(bytes(hdr)).to_bytes(2, "big")
    f = mac_bytes(dst_mac) + mac_bytes(PEER_MAC) + b"\x08\x00" + bytes(hdr) + payload
    return f + bytes(max(0, 60 - len(f)))


def test_registry_delivers_with_now_and_broadcast_flag() -> None:
    iface = _iface()
    iface.arp.add_static(ip_int(PEER_IP), mac_bytes(PEER_MAC))
    got: list[tuple[int, int, bytes, int, float, bool]] = []
    iface.register(253, lambda s, d, p, pkt, now, b: got.append((s, d, bytes(p), len(pkt), now, b)))
    iface.receive(memoryview(_frame(OUR_IP, 253, b"unicast")), 5.0)  # fast path
    iface.receive(memoryview(_frame("198.18.0.255", 253, b"bcast", "ff:ff:ff:ff:ff:ff")), 6.0)  # general
    assert got == [(ip_int(PEER_IP), ip_int(OUR_IP), b"unicast", 27, 5.0, False),
                   (ip_int(PEER_IP), ip_int("198.18.0.255"), b"bcast", 25, 6.0, True)]
    assert iface.poll_transmit() == []
    iface.unregister(253)
    iface.receive(memoryview(_frame(OUR_IP, 253, b"gone")), 7.0)
    [unreach] = [b"".join(bytes(p) for p in f) for f in iface.poll_transmit()]
    assert unreach[34:36] == b"\x03\x02"  # protocol unreachable once nobody is registered
    assert iface.poll_transmit() == []


def test_registry_routes_icmp_errors_to_the_quoted_protocol() -> None:
    iface = _iface()
    errors: list[tuple[int, int, int, bytes, float]] = []
    iface.register(253, lambda *a: None, lambda t, c, rest, q, now: errors.append((t, c, rest, bytes(q[9:10]), now)))
    quote = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 9, 0, 64, 253, 0,
                                  IPv4Address(OUR_IP).packed, IPv4Address(PEER_IP).packed)) + bytes(8)
    body = bytearray(struct.pack("!BBHI", 3, 3, 0, 0)) + quote
    body[2:4] = csum(bytes(body)).to_bytes(2, "big")
    iface.receive(memoryview(_frame(OUR_IP, 1, bytes(body))), 2.5)
    assert errors == [(3, 3, 0, b"\xfd", 2.5)]


def test_timer_sources_fold_into_poll_at_and_handle_timeout() -> None:
    iface = _iface()
    assert iface.poll_at() is None
    deadline: list[float | None] = [None]
    fired: list[float] = []
    iface.add_timer_source(lambda: deadline[0], fired.append)
    assert iface.timers_dirty
    iface.timers_dirty = False
    deadline[0] = 12.0
    iface.timers_changed()
    assert iface.timers_dirty
    assert iface.poll_at() == 12.0
    iface.arp.resolve(ip_int(PEER_IP), None, 10.0)  # an ARP retry at 11.0 comes first
    assert iface.poll_at() == 11.0
    iface.handle_timeout(12.0)
    assert fired == [12.0]


def test_poll_transmit_hands_over_the_queue_once() -> None:
    iface = _iface()
    iface.arp.add_static(ip_int(PEER_IP), mac_bytes(PEER_MAC))
    iface.send(ip_int(PEER_IP), 253, (b"x" * 30,), 1.0)
    iface.send(ip_int(PEER_IP), 253, (b"y" * 30,), 1.0)
    frames = [b"".join(bytes(p) for p in f) for f in iface.poll_transmit()]
    assert [f[34:] for f in frames] == [b"x" * 30, b"y" * 30]
    assert iface.poll_transmit() == []


class _Probe(Recorder):
    """Records whether each datagram_received ran inside the core's receive()."""

    def __init__(self, inside: list[bool]) -> None:
        super().__init__()
        self.inside = inside
        self.during: list[bool] = []

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        super().datagram_received(data, addr)
        self.during.append(self.inside[0])


async def test_datagram_received_runs_after_the_batch_not_inside_receive() -> None:
    hub = Hub()
    clock = VirtualClock()
    async with await Stack.connect(hub.port(), ipv4="198.18.0.1/24", clock=clock) as a, \
            await Stack.connect(hub.port(), ipv4="198.18.0.2/24", clock=clock) as b:
        inside = [False]
        real = b.core.receive

        def spy(frame: memoryview, now: float) -> None:
            inside[0] = True
            try:
                real(frame, now)
            finally:
                inside[0] = False

        b.core.receive = spy  # type: ignore[method-assign]
        _, pb = await b.create_datagram_endpoint(lambda: _Probe(inside), local_addr=("0.0.0.0", 5000))
        ta, _ = await a.create_datagram_endpoint(Recorder, remote_addr=("198.18.0.2", 5000))
        for i in range(3):
            ta.sendto(b"n%d" % i)
        await settle(lambda: len(pb.got) == 3)
        assert [d for d, _ in pb.got] == [b"n0", b"n1", b"n2"]
        assert pb.during == [False, False, False]


async def test_kicks_in_one_turn_share_one_drain() -> None:
    hub = Hub()
    async with await Stack.connect(hub.port(), ipv4="198.18.0.1/24") as a:
        await asyncio.sleep(0)
        drains: list[int] = []
        a.runner.add_after_batch(lambda: drains.append(1))
        for _ in range(5):
            a.runner.kick()
        assert drains == []  # deferred to the loop
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert drains == [1]
        a.runner.kick()
        await asyncio.sleep(0)
        assert drains == [1, 1]


async def test_after_batch_runs_before_transmission_and_kick_inside_it_reschedules() -> None:
    hub = Hub()
    async with await Stack.connect(hub.port(), ipv4="198.18.0.1/24") as a:
        await asyncio.sleep(0)
        order: list[str] = []
        real = a.device.transmit

        def spy(parts: object) -> None:
            order.append("tx")
            real(parts)  # type: ignore[arg-type]

        a.device.transmit = spy  # type: ignore[method-assign]
        rounds = [0]

        def cb() -> None:
            rounds[0] += 1
            order.append(f"cb{rounds[0]}")
            if rounds[0] == 1:
                a.core.arp.announce()  # output queued by the callback leaves in the same drain
                a.runner.kick()  # asks for one more round, on a later turn
        a.runner.add_after_batch(cb)
        a.runner.kick()
        await settle(lambda: rounds[0] == 2)
        assert order == ["cb1", "tx", "cb2"]
        a.runner.remove_after_batch(cb)
        a.runner.kick()
        await asyncio.sleep(0)
        assert rounds[0] == 2
