"""Route table: longest prefix wins, metrics, removal, connected routes per address, primary/secondary
addresses and Linux-like source selection, default gateways, NoRouteError."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcpip.core.routes import HopKind, InterfaceAddress, NextHop, Route, RouteTable, mask_of, prefix_of
from tcpip.errors import NoRouteError


def ip(s: str) -> int:
    return int(IPv4Address(s))


@pytest.fixture
def table() -> RouteTable:
    t = RouteTable()
    t.add_address(ip("198.18.0.2"), 24)
    t.set_default_gateways([ip("198.18.0.1")])
    return t


def test_connected_route_and_default(table: RouteTable) -> None:
    assert table.routes == [Route(ip("198.18.0.0"), 24, 0, 0, ip("198.18.0.2"), "kernel"),
                            Route(0, 0, ip("198.18.0.1"), 0, 0, "gateway")]
    conn = table.routes[0]
    assert table.lookup(ip("198.18.0.9")) == NextHop(HopKind.DIRECT, ip("198.18.0.9"), ip("198.18.0.2"), conn)
    nh = table.lookup(ip("192.0.2.1"))
    assert (nh.kind, nh.hop, nh.source) == (HopKind.GATEWAY, ip("198.18.0.1"), ip("198.18.0.2"))


def test_local_and_broadcasts(table: RouteTable) -> None:
    assert table.lookup(ip("198.18.0.2")).kind is HopKind.LOCAL
    assert table.lookup(ip("198.18.0.255")).kind is HopKind.BROADCAST
    nh = table.lookup(0xFFFFFFFF)
    assert (nh.kind, nh.source) == (HopKind.BROADCAST, ip("198.18.0.2"))


def test_longest_prefix_wins(table: RouteTable) -> None:
    table.add_route(ip("198.19.0.0"), 16, gateway=ip("198.18.0.3"))
    table.add_route(ip("198.19.5.0"), 24, gateway=ip("198.18.0.4"))
    table.add_route(ip("198.19.5.7"), 32, gateway=ip("198.18.0.5"))
    assert table.lookup(ip("198.19.1.1")).hop == ip("198.18.0.3")
    assert table.lookup(ip("198.19.5.1")).hop == ip("198.18.0.4")
    assert table.lookup(ip("198.19.5.7")).hop == ip("198.18.0.5")
    assert table.lookup(ip("198.20.0.1")).hop == ip("198.18.0.1")


def test_metrics_then_insertion_order(table: RouteTable) -> None:
    table.add_route(ip("198.19.0.0"), 16, gateway=ip("198.18.0.3"), metric=100)
    table.add_route(ip("198.19.0.0"), 16, gateway=ip("198.18.0.4"), metric=50)
    assert table.lookup(ip("198.19.0.1")).hop == ip("198.18.0.4")
    table.add_route(ip("198.19.0.0"), 16, gateway=ip("198.18.0.5"), metric=50)
    assert table.lookup(ip("198.19.0.1")).hop == ip("198.18.0.4")
    table.remove_route(ip("198.19.0.0"), 16, gateway=ip("198.18.0.4"))
    assert table.lookup(ip("198.19.0.1")).hop == ip("198.18.0.5")
    table.remove_route(ip("198.19.0.0"), 16)  # every remaining one
    assert table.lookup(ip("198.19.0.1")).hop == ip("198.18.0.1")
    with pytest.raises(ValueError, match="no route"):
        table.remove_route(ip("198.19.0.0"), 16)


def test_default_gateways_order_and_replacement(table: RouteTable) -> None:
    table.set_default_gateways([ip("198.18.0.7"), ip("198.18.0.1")])
    assert table.default_gateways() == [ip("198.18.0.7"), ip("198.18.0.1")]
    assert table.lookup(ip("192.0.2.1")).hop == ip("198.18.0.7")
    table.set_default_gateways([])
    with pytest.raises(NoRouteError):
        table.lookup(ip("192.0.2.1"))
    assert table.lookup(ip("198.18.0.20")).kind is HopKind.DIRECT


def test_gateway_not_on_link_is_unusable(table: RouteTable) -> None:
    table.add_route(ip("198.19.0.0"), 16, gateway=ip("203.0.113.1"))  # not in any connected subnet
    assert table.lookup(ip("198.19.0.1")).hop == ip("198.18.0.1")  # falls back to the default


def test_empty_table_has_no_route() -> None:
    with pytest.raises(NoRouteError):
        RouteTable().lookup(ip("198.18.0.1"))


def test_primary_and_secondary_addresses_and_source_selection() -> None:
    t = RouteTable()
    a1 = t.add_address(ip("198.18.0.2"), 24)
    a2 = t.add_address(ip("198.18.0.3"), 24)  # secondary in the same subnet
    b1 = t.add_address(ip("198.18.1.2"), 24)  # primary of another subnet
    assert (t.primary(a1), t.primary(a2), t.primary(b1)) == (True, False, True)
    assert [r.source for r in t.routes] == [ip("198.18.0.2"), ip("198.18.1.2")]  # no route for the secondary
    assert t.source_for(ip("198.18.0.50")) == ip("198.18.0.2")
    assert t.source_for(ip("198.18.1.50")) == ip("198.18.1.2")
    t.set_default_gateways([ip("198.18.1.1")])
    assert t.source_for(ip("192.0.2.1")) == ip("198.18.1.2")  # the primary of the gateway's subnet
    t.add_route(ip("198.19.0.0"), 16, gateway=ip("198.18.0.1"), source=ip("198.18.0.3"))
    assert t.source_for(ip("198.19.0.1")) == ip("198.18.0.3")  # an explicit `src` wins


def test_removing_a_primary_promotes_the_secondary() -> None:
    t = RouteTable()
    t.add_address(ip("198.18.0.2"), 24)
    t.add_address(ip("198.18.0.3"), 24)
    t.remove_address(ip("198.18.0.2"))
    assert t.addresses == [InterfaceAddress(ip("198.18.0.3"), 24)]
    assert t.routes == [Route(ip("198.18.0.0"), 24, 0, 0, ip("198.18.0.3"), "kernel")]
    assert t.source_for(ip("198.18.0.9")) == ip("198.18.0.3")
    t.remove_address(ip("198.18.0.3"))
    assert t.routes == []
    with pytest.raises(NoRouteError):
        t.lookup(ip("198.18.0.9"))
    with pytest.raises(ValueError, match="not configured"):
        t.remove_address(ip("198.18.0.3"))


def test_removing_a_secondary_keeps_the_connected_route() -> None:
    t = RouteTable()
    t.add_address(ip("198.18.0.2"), 24)
    t.add_address(ip("198.18.0.3"), 24)
    t.remove_address(ip("198.18.0.3"))
    assert t.routes == [Route(ip("198.18.0.0"), 24, 0, 0, ip("198.18.0.2"), "kernel")]


def test_removing_an_address_drops_routes_that_depend_on_it(table: RouteTable) -> None:
    table.remove_address(ip("198.18.0.2"))
    with pytest.raises(NoRouteError):  # the default route's gateway is no longer on-link
        table.lookup(ip("192.0.2.1"))


def test_input_validation(table: RouteTable) -> None:
    with pytest.raises(ValueError, match="host bits"):
        table.add_route(ip("198.19.0.1"), 16)
    table.add_route(ip("198.19.0.0"), 16, gateway=ip("198.18.0.1"))
    with pytest.raises(ValueError, match="exists"):
        table.add_route(ip("198.19.0.0"), 16, gateway=ip("198.18.0.1"))
    with pytest.raises(ValueError, match="already"):
        table.add_address(ip("198.18.0.2"), 16)
    with pytest.raises(ValueError, match="prefix length"):
        table.add_address(ip("198.18.9.9"), 33)
    with pytest.raises(ValueError, match="contiguous"):
        prefix_of(ip("255.0.255.0"))


def test_slash_31_and_32_have_no_broadcast() -> None:
    t = RouteTable()
    t.add_address(ip("198.18.0.0"), 31)
    assert t.lookup(ip("198.18.0.1")).kind is HopKind.DIRECT
    assert InterfaceAddress(ip("198.18.0.5"), 32).broadcast == 0


@given(st.integers(0, 32))
def test_mask_prefix_round_trip(n: int) -> None:
    assert prefix_of(mask_of(n)) == n


@given(st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 32), st.integers(0, 3)), max_size=12),
       st.integers(0, 2**32 - 1))
def test_lookup_matches_a_brute_force_oracle(specs: list[tuple[int, int, int]], dst: int) -> None:
    t = RouteTable()
    t.add_address(ip("198.18.0.2"), 24)
    added: list[Route] = list(t.routes)
    for net, plen, metric in specs:
        net &= mask_of(plen)
        try:
            added.append(t.add_route(net, plen, gateway=ip("198.18.0.1"), metric=metric))
        except ValueError:
            pass  # duplicate
    matching = [r for r in added if r.matches(dst)]
    if dst in (ip("198.18.0.2"), 0xFFFFFFFF):
        return
    if not matching:
        with pytest.raises(NoRouteError):
            t.lookup(dst)
        return
    best = max(matching, key=lambda r: (r.prefix_len, -r.metric, -added.index(r)))
    assert t.lookup(dst).route == best
