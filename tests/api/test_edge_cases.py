"""Edge cases found in review: buffers reused while ARP is pending, tiny frames, big datagrams behind
ARP at small MTUs, DF on write, disconnect during ping, second-chance ARP eviction."""

from __future__ import annotations

import asyncio
import random
from ipaddress import IPv4Address

import pytest
from scapy.layers.inet import IP
from scapy.layers.l2 import ARP, Ether
from testlib import make_iface, neighbour, neighbours, sent, settle

from tcpip import IpProto, Stack, WouldFragmentError
from tcpip.core.config import InterfaceConfig
from tcpip.core.reassembly import ReassemblyConfig
from tcpip.core.stats import unbalanced
from tcpip.core.udp import UdpLayer
from tcpip.netif import Hub


class Got(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.got: list[bytes] = []
        self.lost = 0

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.got.append(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost += 1


async def test_buffer_reused_while_arp_pending_sends_what_was_given() -> None:
    hub = Hub()
    async with await Stack.connect(hub.port(), ipv4="198.18.0.1/24") as a, \
            await Stack.connect(hub.port(), ipv4="198.18.0.2/24") as b:
        _, pb = await b.create_datagram_endpoint(Got, local_addr=("0.0.0.0", 5000))
        ta, _ = await a.create_datagram_endpoint(Got, local_addr=("0.0.0.0", 0))
        buf = bytearray(b"FIRST message!!")
        ta.sendto(buf, ("198.18.0.2", 5000))  # waits for ARP
        buf[:] = b"SECOND message!"
        ta.sendto(buf, ("198.18.0.2", 5000))
        await settle(lambda: len(pb.got) == 2)
        assert pb.got == [b"FIRST message!!", b"SECOND message!"]
        assert b.stats()["udp"]["rx_bad_checksum"] == 0


def test_34_byte_icmp_frame_is_a_counted_drop() -> None:
    iface = make_iface(mac="02:00:00:00:00:02", address="198.18.0.2")
    frame = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
                  / IP(src="198.18.0.1", dst="198.18.0.2", proto=1))
    assert len(frame) == 34
    iface.receive(memoryview(frame), 1.0)
    assert iface.icmp_stats.rx_truncated == 1
    assert sent(iface) == []
    assert unbalanced(iface.eth_stats, iface.arp.stats, iface.ip_stats) == []


async def test_large_datagram_behind_arp_at_small_mtu_arrives_whole() -> None:
    hub = Hub(mtu=576)
    port_b = hub.port()
    cfg = InterfaceConfig(mac=port_b.mac, mtu=576, reassembly=ReassemblyConfig(max_fragments=128))
    async with await Stack.connect(hub.port(), ipv4="198.18.0.1/24") as a, \
            await Stack.connect(port_b, ipv4="198.18.0.2/24", config=cfg) as b:
        _, pb = await b.create_datagram_endpoint(Got, local_addr=("0.0.0.0", 5000))
        ta, _ = await a.create_datagram_endpoint(Got, local_addr=("0.0.0.0", 0))
        data = bytes(random.Random(5).randbytes(40000))  # 73 fragments (> 64), all queued behind ARP
        ta.sendto(data, ("198.18.0.2", 5000))
        await settle(lambda: len(pb.got) == 1, rounds=2000)
        assert pb.got == [data]
        assert a.stats()["arp"]["queue_dropped"] == 0


async def test_dont_fragment_option_on_write() -> None:
    hub = Hub()
    sniff = hub.port()
    seen: list[bytes] = []
    sniff.attach(lambda f: seen.append(bytes(f)))
    async with await Stack.connect(hub.port(), ipv4="198.18.0.2/24") as a:
        a.core.arp.add_static(int(IPv4Address("198.18.0.1")), sniff.mac.packed)
        for kw in ({"dont_fragment": True}, {"dont_frag": True}):
            frame, hl = await a.ipv4.allocate_frame(proto=IpProto.UDP, dest_ip=IPv4Address("198.18.0.1"))
            with pytest.raises(WouldFragmentError):
                await a.ipv4.write(frame[:hl], b"x" * 1481, **kw)
        frame, hl = await a.ipv4.allocate_frame(proto=IpProto.UDP, dest_ip=IPv4Address("198.18.0.1"))
        await settle()
        seen.clear()
        await a.ipv4.writev(frame[:hl], [b"y" * 100], dont_fragment=True)
        await settle(lambda: len(seen) == 1)
        assert Ether(seen[0])[IP].flags == "DF"
        assert a.stats()["ipv4"]["tx_would_fragment"] == 2


async def test_disconnect_during_ping_gives_none_not_cancellation() -> None:
    hub = Hub()
    a = await Stack.connect(hub.port(), ipv4="198.18.0.1/24")
    task = asyncio.ensure_future(a.ping("198.18.0.9", timeout=5.0))
    await settle()
    await a.disconnect()
    assert await asyncio.wait_for(task, 1.0) == [None]
    assert not task.cancelled()


async def test_disconnect_closes_udp_endpoints() -> None:
    hub = Hub()
    a = await Stack.connect(hub.port(), ipv4="198.18.0.1/24")
    t, p = await a.create_datagram_endpoint(Got, local_addr=("0.0.0.0", 7000))
    await a.disconnect()
    await settle(lambda: p.lost == 1)
    assert t.is_closing()
    assert a.stats()["driver"] == {"rx_errors": 0, "tx_errors": 0}


def test_neighbour_in_use_survives_an_arp_flood() -> None:
    """Entries used by the fast paths get a second chance at eviction (CLOCK), so a flood of requests
    from new senders evicts idle entries, not the neighbour we are talking to."""
    iface = make_iface(mac="02:00:00:00:00:02", address="198.18.0.2", netmask=0xFFFF0000, arp_cache_size=8)
    udp = UdpLayer(iface, random.Random(2))
    peer = int(IPv4Address("198.18.0.1"))
    iface.arp.add_static(peer, b"\x02\x00\x00\x00\x00\x01")
    neighbour(iface, peer).state = 1  # an ordinary (evictable) entry, reachable for a long time
    neighbour(iface, peer).expires = 1e9
    for i in range(40):
        udp.send(1000, peer, 7, b"z" * 30, float(i))  # the per-flow fast path after the first
        src = f"198.18.{1 + i // 200}.{10 + i % 200}"
        req = Ether(src=f"02:00:00:00:01:{i:02x}", dst="ff:ff:ff:ff:ff:ff") / ARP(
            op=1, hwsrc=f"02:00:00:00:01:{i:02x}", psrc=src, pdst="198.18.0.2")
        iface.receive(memoryview(bytes(req)), float(i))
        sent(iface)
    assert peer in neighbours(iface)
    assert len(neighbours(iface)) == 8
    assert iface.arp.stats.evictions == 40 - 7
