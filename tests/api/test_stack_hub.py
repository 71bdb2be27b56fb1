"""Two or more stacks on a Hub: ping, ARP caching and failure, routing to gateways, broadcast/multicast MACs."""

from __future__ import annotations

import asyncio
import random
from ipaddress import IPv4Address

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw
from testlib import settle

from tcpip import HostUnreachableError, MacAddress, NoRouteError, Stack
from tcpip.netif import Hub, Switch, VirtualClock


async def test_ping_between_two_stacks_with_exact_echo_fields() -> None:
    hub = Hub()
    sniff = hub.port()
    seen: list[bytes] = []
    sniff.attach(lambda f: seen.append(bytes(f)))
    async with await Stack.connect(hub.port(), ipv4="198.18.0.1/24") as a, \
            await Stack.connect(hub.port(), ipv4="198.18.0.2/24") as b:
        rtts = await a.ping("198.18.0.2", count=3, size=100, interval=0.0)
        assert len(rtts) == 3
        assert all(r is not None and r >= 0 for r in rtts)
        await settle()
        reqs = [Ether(f) for f in seen if ICMP in Ether(f) and Ether(f)[ICMP].type == 8]
        reps = [Ether(f) for f in seen if ICMP in Ether(f) and Ether(f)[ICMP].type == 0]
        assert len(reqs) == len(reps) == 3
        for q, r in zip(reqs, reps, strict=True):
            assert (r[ICMP].id, r[ICMP].seq) == (q[ICMP].id, q[ICMP].seq)
            assert bytes(r[ICMP].payload) == bytes(q[ICMP].payload)
            assert len(bytes(q[ICMP].payload)) == 100
            assert r[IP].src == "198.18.0.2"
            assert r[IP].dst == "198.18.0.1"
            assert r[IP].ttl == 64
            assert r[Ether].dst == str(a.mac)
            assert r[Ether].src == str(b.mac)
            chk = r[ICMP].chksum
            del r[ICMP].chksum
            assert Ether(bytes(r))[ICMP].chksum == chk
        assert b.stats()["icmp"]["tx_echo_replies"] == 3
        assert a.stats()["icmp"]["rx_echo_replies"] == 3


async def test_arp_resolves_once_and_is_cached() -> None:
    hub = Hub()
    async with await Stack.connect(hub.port(), ipv4="198.18.0.1/24") as a, \
            await Stack.connect(hub.port(), ipv4="198.18.0.2/24") as b:
        for _ in range(3):
            assert (await a.ping("198.18.0.2", interval=0.0))[0] is not None
        assert a.stats()["arp"]["requests_sent"] == 1
        assert a.core.arp.lookup(int(IPv4Address("198.18.0.2")), a.runner.now()) == b.mac.packed
        # b learnt a from a's request addressed to it: it never needed to ask.
        assert b.stats()["arp"]["requests_sent"] == 0
        assert b.stats()["arp"]["entries_created"] == 1


async def test_arp_query_for_absent_host_fails_after_exact_retries() -> None:
    hub = Hub()
    clock = VirtualClock(100.0)
    sniff = hub.port()
    seen: list[bytes] = []
    sniff.attach(lambda f: seen.append(bytes(f)))
    a = await Stack.connect(hub.port(), ipv4="198.18.0.1/24", clock=clock)
    await settle()
    seen.clear()
    task = asyncio.ensure_future(a.ipv4.allocate_frame(proto=17, dest_ip=IPv4Address("198.18.0.77")))
    await settle(lambda: len(seen) == 1)
    clock.advance(0.999)
    await settle()
    assert len(seen) == 1
    assert not task.done()
    clock.advance(0.001)
    await settle(lambda: len(seen) == 2)
    clock.advance(1.0)
    await settle(lambda: len(seen) == 3)
    assert not task.done()
    clock.advance(1.0)
    await settle(task.done)
    with pytest.raises(HostUnreachableError):
        task.result()
    reqs = [Ether(f) for f in seen]
    assert all(r[ARP].op == 1 and r[ARP].pdst == "198.18.0.77" and r.dst == "ff:ff:ff:ff:ff:ff" for r in reqs)
    assert len(reqs) == 3
    assert a.stats()["arp"]["resolve_failures"] == 1
    assert a.stats()["arp"]["requests_sent"] == 3
    await a.disconnect()


async def test_concurrent_queries_share_one_pending_entry() -> None:
    hub = Hub()
    clock = VirtualClock()
    a = await Stack.connect(hub.port(), ipv4="198.18.0.1/24", clock=clock)
    tasks = [asyncio.ensure_future(a.ipv4.allocate_frame(proto=17, dest_ip=IPv4Address("198.18.0.9")))
             for _ in range(5)]
    await settle()
    assert a.stats()["arp"]["requests_sent"] == 1
    clock.advance(3.0)
    await settle(lambda: all(t.done() for t in tasks))
    assert all(isinstance(t.exception(), HostUnreachableError) for t in tasks)
    assert a.stats()["arp"]["requests_sent"] == 3
    await a.disconnect()


async def test_gateway_routing_uses_gateway_mac() -> None:
    hub = Hub()
    async with await Stack.connect(hub.port(), ipv4="198.18.0.2/24", gateways=["198.18.0.1"]) as a, \
            await Stack.connect(hub.port(), ipv4="198.18.0.1/24") as gw:
        frame, hl = await a.ipv4.allocate_frame(proto=17, dest_ip=IPv4Address("198.19.5.5"))
        assert hl == 34
        e = Ether(bytes(frame[:34]))
        assert e.dst == str(gw.mac)
        assert e[IP].dst == "198.19.5.5"
        assert e[IP].src == "198.18.0.2"
        assert a.ipv4.get_ipv4_gateways() == [IPv4Address("198.18.0.1")]


async def test_no_gateway_raises_no_route() -> None:
    hub = Hub()
    async with await Stack.connect(hub.port(), ipv4="198.18.0.2/24") as a:
        with pytest.raises(NoRouteError):
            await a.ipv4.allocate_frame(proto=17, dest_ip=IPv4Address("198.19.5.5"))
        assert a.stats()["ipv4"]["tx_no_route"] == 1


@pytest.mark.parametrize(("dst", "mac"), [
    ("255.255.255.255", "ff:ff:ff:ff:ff:ff"),
    ("198.18.0.255", "ff:ff:ff:ff:ff:ff"),
    ("224.0.0.1", "01:00:5e:00:00:01"),
    ("239.129.2.3", "01:00:5e:01:02:03"),
])
async def test_broadcast_and_multicast_destination_macs(dst: str, mac: str) -> None:
    hub = Hub()
    async with await Stack.connect(hub.port(), ipv4="198.18.0.2/24") as a:
        frame, _ = await a.ipv4.allocate_frame(proto=17, dest_ip=IPv4Address(dst))
        assert str(MacAddress(bytes(frame[0:6]))) == mac
        assert a.stats()["arp"]["requests_sent"] == 0


async def test_set_ipv4_announces_and_defaults_follow_the_seed() -> None:
    hub = Hub()
    sniff = hub.port()
    seen: list[bytes] = []
    sniff.attach(lambda f: seen.append(bytes(f)))
    a = await Stack.connect(hub.port())
    assert a.ipv4.get_ipv4() == IPv4Address("0.0.0.0")
    assert a.ipv4.get_ipv4_netmask() == IPv4Address("0.0.0.0")
    assert a.ipv4.get_ipv4_gateways() == []
    await a.ipv4.set_ipv4(IPv4Address("198.18.0.7"))
    await settle(lambda: len(seen) == 1)
    g = Ether(seen[0])
    assert g.dst == "ff:ff:ff:ff:ff:ff"
    assert g[ARP].op == 1
    assert g[ARP].psrc == g[ARP].pdst == "198.18.0.7"
    assert g[ARP].hwsrc == str(a.mac)
    assert len(seen[0]) == 60  # padded to the Ethernet minimum
    await a.disconnect()


async def test_many_hosts_on_a_switch_ping_each_other() -> None:
    hub = Switch()
    stacks = [await Stack.connect(hub.port(), ipv4=f"198.18.1.{i + 1}/24", rng=random.Random(i))
              for i in range(6)]
    for s in stacks[1:]:
        assert (await stacks[0].ping(s.address, interval=0.0))[0] is not None
    assert stacks[0].stats()["arp"]["cache_entries"] == 5
    # Learnt: once ARP is done, a unicast ping between two hosts reaches only their two ports.
    assert (await stacks[1].ping(stacks[2].address))[0] is not None
    before = [s.device.stats.rx_frames for s in stacks]
    assert (await stacks[1].ping(stacks[2].address))[0] is not None
    got = [s.device.stats.rx_frames - b for s, b in zip(stacks, before, strict=True)]
    assert got == [0, 1, 1, 0, 0, 0]
    for s in stacks:
        await s.disconnect()


async def test_udp_via_seed_frames_reaches_scapy_with_valid_checksums() -> None:
    hub = Hub()
    sniff = hub.port()
    seen: list[bytes] = []
    sniff.attach(lambda f: seen.append(bytes(f)))
    async with await Stack.connect(hub.port(), ipv4="198.18.0.2/24") as a:
        frame, hl = await a.ipv4.allocate_frame(proto=17, dest_ip=IPv4Address("255.255.255.255"))
        frame[hl:hl + 8] = bytes(UDP(sport=1000, dport=2000, len=8 + 5, chksum=0))
        await a.ipv4.write(frame[:hl + 8], b"hello")
        await settle(lambda: any(UDP in Ether(f) for f in seen))
        e = next(Ether(f) for f in seen if UDP in Ether(f))
        assert e[IP].len == 20 + 8 + 5
        assert e[Raw].load == b"hello"
        c = e[IP].chksum
        del e[IP].chksum
        assert Ether(bytes(e))[IP].chksum == c


async def test_cached_next_hops_follow_gateway_changes() -> None:
    """The per-flow UDP headers and allocate_frame templates are rebuilt when the routes change."""
    hub = Hub()
    sniff = hub.port()
    seen: list[bytes] = []
    sniff.attach(lambda f: seen.append(bytes(f)))
    async with await Stack.connect(hub.port(), ipv4="198.18.0.2/24", gateways=["198.18.0.1"]) as a, \
            await Stack.connect(hub.port(), ipv4="198.18.0.1/24") as g1, \
            await Stack.connect(hub.port(), ipv4="198.18.0.3/24") as g2:
        await a.ping("198.18.0.1")
        await a.ping("198.18.0.3")
        t, _ = await a.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("0.0.0.0", 5000))
        far = IPv4Address("198.19.9.9")

        async def macs_used() -> tuple[str, str]:
            seen.clear()
            for _ in range(2):  # the second datagram takes the cached per-flow path
                t.sendto(b"x" * 40, (str(far), 9))
            frame, _hl = await a.ipv4.allocate_frame(proto=17, dest_ip=far)
            await a.ipv4.allocate_frame(proto=17, dest_ip=far)
            await settle(lambda: len([f for f in seen if UDP in Ether(f)]) == 2)
            udp = {Ether(f).dst for f in seen if UDP in Ether(f)}
            assert len(udp) == 1
            return udp.pop(), str(MacAddress(bytes(frame[0:6])))

        assert await macs_used() == (str(g1.mac), str(g1.mac))
        await a.ipv4.set_ipv4_gateways([IPv4Address("198.18.0.3")])
        assert await macs_used() == (str(g2.mac), str(g2.mac))
        t.close()


async def test_configured_arp_retries_without_naming_a_mac() -> None:
    """An InterfaceConfig needs no MAC or MTU: the device's are used."""
    from tcpip import InterfaceConfig

    hub = Hub(mtu=9000)
    clock = VirtualClock()
    port = hub.port()
    a = await Stack.connect(port, ipv4="198.18.0.1/24", clock=clock,
                            config=InterfaceConfig(arp_tries=2, arp_interval=0.5))
    assert a.mac == port.mac
    assert a.ipv4.mtu() == 9000
    task = asyncio.ensure_future(a.ipv4.allocate_frame(proto=17, dest_ip=IPv4Address("198.18.0.50")))
    await settle()
    clock.advance(0.5)
    await settle()
    assert not task.done()
    clock.advance(0.5)
    await settle(task.done)
    assert isinstance(task.exception(), HostUnreachableError)
    assert a.stats()["arp"]["requests_sent"] == 2
    await a.disconnect()
