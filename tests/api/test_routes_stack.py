"""Addresses and routes on a Stack: secondary addresses answered (ARP, ping, UDP, their broadcasts), Linux-like
source selection, static routes with longest-prefix match and metrics, removal, and set_ipv4_gateways."""

from __future__ import annotations

import asyncio
import random
from ipaddress import IPv4Address

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import Ether
from testlib import settle

from tcpip import NoRouteError, Stack
from tcpip.netif import Hub


def sniffer(hub: Hub) -> list[Ether]:
    seen: list[Ether] = []
    hub.port().attach(lambda f: seen.append(Ether(bytes(f))))
    return seen


async def test_secondary_addresses_answer_and_choose_the_subnets_source() -> None:
    hub = Hub()
    seen = sniffer(hub)
    async with await Stack.connect(hub.port(), ipv4="198.18.0.2/24") as a, \
            await Stack.connect(hub.port(), ipv4="198.18.1.5/24") as b:
        a.add_address("198.18.1.2/24")
        a.add_address("198.18.0.3/24")  # a secondary in the primary's subnet
        assert [str(x) for x in a.addresses()] == ["198.18.0.2/24", "198.18.1.2/24", "198.18.0.3/24"]
        with pytest.raises(ValueError, match="already"):
            a.add_address("198.18.1.2/24")
        # b reaches a's second subnet address (ARP answered for it), a answers from it
        assert (await b.ping("198.18.1.2"))[0] is not None
        # a's own traffic to the second subnet leaves from that subnet's primary (Linux)
        assert (await a.ping("198.18.1.5"))[0] is not None
        await settle()
        req = [p for p in seen if ICMP in p and p[ICMP].type == 8 and p[IP].dst == "198.18.1.5"]
        assert [p[IP].src for p in req] == ["198.18.1.2"]
        # a secondary in the first subnet: reachable, but sources there stay the primary
        assert (await b.ping("198.18.0.3"))[0] is None  # b has no route to 198.18.0.0/24
        b.add_address("198.18.0.9/24")
        assert (await b.ping("198.18.0.3"))[0] is not None
        assert (await a.ping("198.18.0.9"))[0] is not None
        await settle()
        req = [p for p in seen if ICMP in p and p[ICMP].type == 8 and p[IP].dst == "198.18.0.9"]
        assert [p[IP].src for p in req] == ["198.18.0.2"]
        # UDP to a secondary, and to the second subnet's broadcast
        got: list[tuple[bytes, int]] = []
        a.udp.bind(9000, 0, lambda payload, src, sport, dst, now: got.append((bytes(payload), dst)))

        class P(asyncio.DatagramProtocol):
            pass

        t, _ = await b.create_datagram_endpoint(P, allow_broadcast=True)
        t.sendto(b"one", ("198.18.1.2", 9000))
        t.sendto(b"all", ("198.18.1.255", 9000))
        await settle(lambda: len(got) == 2)
        assert got == [(b"one", int(IPv4Address("198.18.1.2"))), (b"all", int(IPv4Address("198.18.1.255")))]
        t.close()
        # an endpoint bound to a secondary address sends from it
        n = len(seen)
        t, _ = await a.create_datagram_endpoint(P, local_addr=("198.18.0.3", 0))
        t.sendto(b"from .3", ("198.18.1.5", 9))
        await settle()
        assert [p[IP].src for p in seen[n:] if UDP in p and p[IP].dst == "198.18.1.5"] == ["198.18.0.3"]
        t.close()
        # removal: the address stops answering; removing the primary promotes the next one
        a.remove_address("198.18.1.2")
        assert (await b.ping("198.18.1.2", timeout=0.3))[0] is None
        a.remove_address("198.18.0.2")
        assert str(a.interface) == "198.18.0.3/24"
        assert (await b.ping("198.18.0.3"))[0] is not None
        with pytest.raises(ValueError, match="not configured"):
            a.remove_address("198.18.0.2")


async def test_static_routes_longest_prefix_and_metrics() -> None:
    hub = Hub()
    seen = sniffer(hub)
    async with await Stack.connect(hub.port(), ipv4="198.18.0.2/24", gateways=["198.18.0.254"]) as a, \
            await Stack.connect(hub.port(), ipv4="198.18.0.1/24") as g1, \
            await Stack.connect(hub.port(), ipv4="198.18.0.254/24") as g2, \
            await Stack.connect(hub.port(), ipv4="198.18.0.10/24") as g3:

        async def via(dst: str) -> str:
            """The MAC the datagram to `dst` was sent to."""
            n = len(seen)
            a.udp.send(4000, int(IPv4Address(dst)), 9, b"x" * 20, a.runner.now())
            a.runner.kick()
            await settle(lambda: any(UDP in p and p[IP].dst == dst for p in seen[n:]))
            return next(p[Ether].dst for p in seen[n:] if UDP in p and p[IP].dst == dst)

        assert await via("198.19.1.1") == str(g2.mac)  # the default route
        a.add_route("198.19.0.0/16", via="198.18.0.1")
        assert await via("198.19.1.1") == str(g1.mac)  # /16 beats /0
        a.add_route("198.19.1.0/24", via="198.18.0.10", metric=10)
        a.add_route("198.19.1.0/24", via="198.18.0.254", metric=5)
        assert await via("198.19.1.1") == str(g2.mac)  # /24 beats /16; metric 5 beats 10
        assert await via("198.19.2.1") == str(g1.mac)
        a.remove_route("198.19.1.0/24", via="198.18.0.254")
        assert await via("198.19.1.1") == str(g3.mac)
        assert any("198.19.0.0/16 via 198.18.0.1" in r for r in a.routes())
        with pytest.raises(ValueError, match="exists"):
            a.add_route("198.19.0.0/16", via="198.18.0.1")
        with pytest.raises(ValueError, match="host bits"):
            a.add_route("198.19.0.1/16", via="198.18.0.1")
        # set_ipv4_gateways keeps its meaning: the default routes
        await a.ipv4.set_ipv4_gateways([])
        assert await via("198.19.9.9") == str(g1.mac)
        with pytest.raises(NoRouteError):
            a.core.next_hop(int(IPv4Address("203.0.113.1")))
        await a.ipv4.set_ipv4_gateways([IPv4Address("198.18.0.10")])
        assert await via("203.0.113.1") == str(g3.mac)
        # TCP through a static route keeps its source address
        assert a.core.routing.source(int(IPv4Address("198.19.1.1"))) == int(IPv4Address("198.18.0.2"))


async def test_one_address_keeps_the_simple_path() -> None:
    async with await Stack.connect(Hub().port(), ipv4="198.18.0.2/24", gateways=["198.18.0.1"],
                                   rng=random.Random(3)) as a:
        r = a.core.routing
        assert not r.extra  # next hops from the plain attributes: no table walk per lookup
        assert r.table.routes[0].proto == "kernel"
        assert a.routes() == ["198.18.0.0/24 metric 0 proto kernel", "0.0.0.0/0 via 198.18.0.1 metric 0 proto gateway"]
        a.add_route("198.19.0.0/16", via="198.18.0.1")
        assert r.extra
        a.remove_route("198.19.0.0/16")
        assert not r.extra
