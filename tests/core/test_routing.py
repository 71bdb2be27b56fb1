"""Routing: next hop, path MTU and the `Path` freshness test every fast path relies on."""

from __future__ import annotations

import pytest
from testlib import ip_int, mac_bytes

from tcpip.core.arp import ArpCache
from tcpip.core.routing import Routing
from tcpip.core.stats import ArpStats, Ipv4Stats
from tcpip.errors import NoRouteError
from tcpip.wire import arp as warp

OUR_MAC, PEER_MAC = mac_bytes("02:00:00:00:00:02"), mac_bytes("02:00:00:00:00:01")
GW_MAC = mac_bytes("02:00:00:00:00:fe")
OUR, PEER, GW, FAR = ip_int("198.18.0.2"), ip_int("198.18.0.1"), ip_int("198.18.0.254"), ip_int("192.0.2.7")


def _routing(gateways: list[int] | None = None) -> tuple[Routing, ArpCache]:
    sent: list[object] = []
    arp = ArpCache(ArpStats(), sent.append, size=4, tries=3, interval=1.0, reachable=60.0, queue_len=8)
    r = Routing(arp, Ipv4Stats(), mtu=1500, min_pmtu=552, pmtu_expiry=600.0, pmtu_table_size=2)
    r.set_mac(OUR_MAC)
    r.set_address(OUR, 0xFFFFFF00)
    r.set_gateways([GW] if gateways is None else gateways)
    arp.mac, arp.ip = OUR_MAC, OUR
    return r, arp


def _learn(arp: ArpCache, ip: int, mac: bytes, now: float) -> None:
    """A neighbour learnt the way the wire teaches it: our request (unless it is known), then its reply."""
    if ip not in arp.entries:
        arp.resolve(ip, None, now)
    arp.input(memoryview(warp.pack(2, mac, ip.to_bytes(4, "big"), OUR_MAC, OUR.to_bytes(4, "big"))), now)


def test_next_hop_for_every_kind_of_destination() -> None:
    r, _ = _routing()
    assert r.next_hop(OUR) == OUR_MAC  # looped back
    assert r.next_hop(0xFFFFFFFF) == b"\xff" * 6
    assert r.next_hop(ip_int("198.18.0.255")) == b"\xff" * 6
    assert r.next_hop(ip_int("224.0.0.251")) == bytes.fromhex("01005e0000fb")
    assert r.next_hop(PEER) == PEER
    assert r.next_hop(FAR) == GW
    r.set_gateways([])
    with pytest.raises(NoRouteError):
        r.next_hop(FAR)
    assert r.stats.tx_no_route == 1


def test_path_to_a_resolved_neighbour_and_its_ethernet_header() -> None:
    r, arp = _routing()
    assert r.path(PEER, 1.0) is None  # unresolved
    _learn(arp, PEER, PEER_MAC, 1.0)
    p = r.path(PEER, 2.0)
    assert p is not None
    assert (p.dst, p.nh, p.mac) == (PEER, PEER, PEER_MAC)
    assert p.eth == PEER_MAC + OUR_MAC + b"\x08\x00"
    assert r.path(PEER, 3.0) is p  # cached
    _learn(arp, GW, GW_MAC, 1.0)
    far = r.path(FAR, 2.0)
    assert far is not None
    assert (far.nh, far.mac) == (GW, GW_MAC)
    assert r.path(0xFFFFFFFF, 2.0) is None
    assert r.path(OUR, 2.0) is None


def test_path_goes_stale_on_expiry_routing_change_new_mac_and_eviction() -> None:
    r, arp = _routing()
    _learn(arp, PEER, PEER_MAC, 0.0)
    p = r.path(PEER, 1.0)
    assert p is not None
    assert p.fresh(59.9)
    assert p.entry.used  # the cache's CLOCK bit
    assert not p.fresh(60.0)  # reachable time over: the general path refreshes it
    _learn(arp, PEER, PEER_MAC, 100.0)  # confirmed again: a new MAC object, so a new Path (identity test)
    assert not p.fresh(101.0)
    p = r.path(PEER, 101.0)
    assert p is not None
    assert p.fresh(101.0)
    r.set_gateways([GW])  # any routing change: a new generation
    assert not p.fresh(101.0)
    p = r.path(PEER, 101.0)
    assert p is not None
    _learn(arp, PEER, mac_bytes("02:00:00:00:00:99"), 102.0)  # the neighbour moved
    assert not p.fresh(102.0)
    p = r.path(PEER, 102.0)
    assert p is not None
    assert p.mac == mac_bytes("02:00:00:00:00:99")
    arp.remove(PEER)
    assert not p.fresh(103.0)
    arp.add_static(PEER, PEER_MAC)  # a new entry object for the same address
    assert not p.fresh(103.0)
    static = r.path(PEER, 1e9)
    assert static is not None
    assert static.fresh(1e12)


def test_path_mtu_only_lowered_clamped_guessed_and_expired() -> None:
    r, _ = _routing()
    assert r.path_mtu(FAR) == 1500
    r.update_pmtu(FAR, 1400, 1500, 10.0)
    assert r.path_mtu(FAR, 11.0) == 1400
    r.update_pmtu(FAR, 1480, 1500, 12.0)  # never raised
    assert r.path_mtu(FAR, 12.0) == 1400
    r.update_pmtu(FAR, 100, 1500, 13.0)  # clamped to min_pmtu
    assert r.path_mtu(FAR, 13.0) == 552
    r.update_pmtu(PEER, 0, 1200, 13.0)  # old router: plateau below the quoted length
    assert r.path_mtu(PEER, 13.0) == 1006
    assert r.path_mtu(FAR, 613.0) == 1500  # expired 600 s after it was set
    r.update_pmtu(ip_int("192.0.2.8"), 1000, 1500, 14.0)
    r.update_pmtu(ip_int("192.0.2.9"), 1000, 1500, 14.0)
    assert len(r.pmtu) == 2  # bounded: the oldest goes
    assert PEER not in r.pmtu
