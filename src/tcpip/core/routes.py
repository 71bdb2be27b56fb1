"""IPv4 addresses and routes of one interface: longest-prefix match, metrics, and Linux-like source selection."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from tcpip.errors import NoRouteError

ALL_ONES = 0xFFFFFFFF


def mask_of(prefix_len: int) -> int:
    if not 0 <= prefix_len <= 32:
        raise ValueError(f"prefix length {prefix_len} not in 0..32")
    return (ALL_ONES << (32 - prefix_len)) & ALL_ONES


def prefix_of(netmask: int) -> int:
    """Prefix length of a contiguous netmask; ValueError for one like 255.0.255.0."""
    n = bin(netmask).count("1")
    if mask_of(n) != netmask:
        raise ValueError(f"netmask {netmask:#010x} is not contiguous")
    return n


def _dotted(a: int) -> str:
    return ".".join(str((a >> s) & 0xFF) for s in (24, 16, 8, 0))


@dataclass(frozen=True, slots=True)
class InterfaceAddress:
    address: int
    prefix_len: int

    @property
    def netmask(self) -> int:
        return mask_of(self.prefix_len)

    @property
    def network(self) -> int:
        return self.address & self.netmask

    @property
    def broadcast(self) -> int:
        """The subnet-directed broadcast (none for /31 and /32, RFC 3021)."""
        return self.network | (~self.netmask & ALL_ONES) if self.prefix_len < 31 else 0

    def contains(self, a: int) -> bool:
        return a & self.netmask == self.network

    def __str__(self) -> str:
        return f"{_dotted(self.address)}/{self.prefix_len}"


@dataclass(frozen=True, slots=True)
class Route:
    network: int
    prefix_len: int
    gateway: int = 0  # 0: on-link (the destination itself is the next hop)
    metric: int = 0
    source: int = 0  # preferred source address (Linux `src`); 0: choose by the rules below
    proto: str = "static"  # "kernel" (connected, from an address), "static", "gateway" (set_default_gateways), ...

    def matches(self, dst: int) -> bool:
        return dst & mask_of(self.prefix_len) == self.network

    def __str__(self) -> str:
        via = f" via {_dotted(self.gateway)}" if self.gateway else ""
        return f"{_dotted(self.network)}/{self.prefix_len}{via} metric {self.metric} proto {self.proto}"


class HopKind(Enum):
    LOCAL = "local"  # one of our own addresses
    BROADCAST = "broadcast"  # 255.255.255.255 or a connected subnet's broadcast address: no ARP
    DIRECT = "direct"  # on-link: ARP for the destination
    GATEWAY = "gateway"  # ARP for the gateway


@dataclass(frozen=True, slots=True)
class NextHop:
    kind: HopKind
    hop: int  # the address to resolve with ARP (the destination, or the gateway)
    source: int  # the source address to use
    route: Route | None  # None for LOCAL and limited broadcast


class RouteTable:
    """Addresses (the first in each subnet is primary, later ones secondary, as Linux) and routes.

    Each primary address brings a connected route (proto "kernel", metric 0). Lookup is longest prefix, then
    lowest metric, then the route added first; a gateway route is usable only while its gateway is on-link."""

    def __init__(self) -> None:
        self._addresses: list[InterfaceAddress] = []  # in order of addition
        self._routes: list[Route] = []

    # -- addresses --------------------------------------------------------------------------------
    @property
    def addresses(self) -> list[InterfaceAddress]:
        return list(self._addresses)

    def primary(self, ia: InterfaceAddress) -> bool:
        """Whether `ia` is the first address of its subnet (Linux: not IFA_F_SECONDARY)."""
        return next(a for a in self._addresses if _same_subnet(a, ia)) == ia

    def add_address(self, address: int, prefix_len: int) -> InterfaceAddress:
        ia = InterfaceAddress(address, prefix_len)
        mask_of(prefix_len)  # validates
        if any(a.address == address for a in self._addresses):
            raise ValueError(f"address {_dotted(address)} already configured")
        self._addresses.append(ia)
        if self.primary(ia):
            self._routes.append(Route(ia.network, prefix_len, 0, 0, address, "kernel"))
        return ia

    def remove_address(self, address: int) -> None:
        """Remove an address; a secondary of the same subnet is promoted (Linux promote_secondaries=1)."""
        ia = next((a for a in self._addresses if a.address == address), None)
        if ia is None:
            raise ValueError(f"address {_dotted(address)} not configured")
        was_primary = self.primary(ia)
        self._addresses.remove(ia)
        # its connected route, and routes that prefer it as source, go with it (as Linux)
        self._routes = [r for r in self._routes if r.source != address]
        if was_primary:
            heir = next((a for a in self._addresses if _same_subnet(a, ia)), None)
            if heir is not None:
                self._routes.append(Route(heir.network, heir.prefix_len, 0, 0, heir.address, "kernel"))

    # -- routes -----------------------------------------------------------------------------------
    @property
    def routes(self) -> list[Route]:
        return list(self._routes)

    def add_route(self, network: int, prefix_len: int, *, gateway: int = 0, metric: int = 0, source: int = 0,
                  proto: str = "static") -> Route:
        if network & ~mask_of(prefix_len) & ALL_ONES:
            raise ValueError(f"{_dotted(network)}/{prefix_len} has host bits set")
        r = Route(network, prefix_len, gateway, metric, source, proto)
        if any(_same_key(r, x) for x in self._routes):
            raise ValueError(f"route {r} exists")
        self._routes.append(r)
        return r

    def remove_route(self, network: int, prefix_len: int, *, gateway: int | None = None,
                     metric: int | None = None) -> None:
        """Remove matching routes (any gateway/metric when not given); ValueError when none matches."""
        keep = [r for r in self._routes if not (r.network == network and r.prefix_len == prefix_len
                                                and (gateway is None or r.gateway == gateway)
                                                and (metric is None or r.metric == metric))]
        if len(keep) == len(self._routes):
            raise ValueError(f"no route {_dotted(network)}/{prefix_len}")
        self._routes = keep

    def set_default_gateways(self, gateways: list[int], *, proto: str = "gateway") -> None:
        """The seed's set_ipv4_gateways: replace the default routes of `proto`, the first gateway preferred."""
        self._routes = [r for r in self._routes if not (r.prefix_len == 0 and r.proto == proto)]
        for i, gw in enumerate(gateways):
            self._routes.append(Route(0, 0, gw, i, 0, proto))

    def default_gateways(self) -> list[int]:
        return [r.gateway for r in sorted(self._default_routes(), key=lambda r: r.metric)]

    # -- lookup -----------------------------------------------------------------------------------
    def lookup(self, dst: int) -> NextHop:
        """Where to send a datagram for `dst`; NoRouteError when no usable route matches."""
        for a in self._addresses:
            if a.address == dst:
                return NextHop(HopKind.LOCAL, dst, dst, None)
        if dst == ALL_ONES:
            src = self._addresses[0].address if self._addresses else 0
            return NextHop(HopKind.BROADCAST, dst, src, None)
        best: Route | None = None
        for r in self._routes:  # in insertion order: on a tie the first added wins
            if not r.matches(dst) or (r.gateway and not self._on_link(r.gateway)):
                continue
            if best is None or (r.prefix_len, -r.metric) > (best.prefix_len, -best.metric):
                best = r
        if best is None:
            raise NoRouteError(f"no route to {_dotted(dst)}")
        hop = best.gateway or dst
        src = best.source or self.source_for_hop(hop)
        if not best.gateway and any(a.broadcast == dst and self.primary(a) for a in self._addresses):
            return NextHop(HopKind.BROADCAST, dst, src, best)
        return NextHop(HopKind.GATEWAY if best.gateway else HopKind.DIRECT, hop, src, best)

    def source_for(self, dst: int) -> int:
        return self.lookup(dst).source

    def source_for_hop(self, hop: int) -> int:
        """Linux inet_select_addr: the primary address whose subnet holds the next hop, else the first primary."""
        primaries = [a for a in self._addresses if self.primary(a)]
        for a in primaries:
            if a.contains(hop):
                return a.address
        return primaries[0].address if primaries else 0

    # -- internals --------------------------------------------------------------------------------
    def _on_link(self, a: int) -> bool:
        return any(r.gateway == 0 and r.matches(a) for r in self._routes)

    def _default_routes(self) -> list[Route]:
        return [r for r in self._routes if r.prefix_len == 0 and r.gateway]


def _same_subnet(a: InterfaceAddress, b: InterfaceAddress) -> bool:
    return a.prefix_len == b.prefix_len and a.network == b.network


def _same_key(a: Route, b: Route) -> bool:
    return (a.network, a.prefix_len, a.gateway, a.metric) == (b.network, b.prefix_len, b.gateway, b.metric)
