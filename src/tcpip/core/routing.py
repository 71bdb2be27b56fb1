"""Routing: our addresses and routes, next hop (on-link, gateway, broadcast, multicast), path MTU, and `Path`.

The common host has one address, one subnet and default gateways: its next hop is decided from plain
attributes (`addr`, `mask`, `gateways`). Secondary addresses or static routes switch `extra` on, and next
hops and source addresses then come from a `RouteTable` (longest prefix, metric, Linux source selection),
which always mirrors the primary address and the gateways. Either way a Path caches the answer.

A `Path` is a resolved route to one unicast destination: its next hop's neighbour entry and the Ethernet
header to reach it. Every fast path (host output, echo replies, UDP flows, the seed API's frame templates)
keeps a Path and asks `path.fresh(now)` (or `routing.path(dst, now)`) before using it, instead of reading
ARP entries itself: one test, `Routing.check`, for "same routes, same neighbour entry, same MAC, still
reachable". A Path that passes it is stamped with the ARP cache's generation (which every neighbour change
and every route change bumps) and the time its entry stops being reachable; while neither has moved the
test's answer cannot change, so the per-frame test is those two comparisons.
"""

from __future__ import annotations

from collections import OrderedDict

from tcpip.core.arp import STATIC, ArpCache, ArpEntry
from tcpip.core.routes import HopKind, RouteTable, prefix_of
from tcpip.core.stats import Ipv4Stats
from tcpip.errors import NoRouteError
from tcpip.wire.ipv4 import ip_str

_BCAST = b"\xff" * 6
_INF = float("inf")
_PMTU_PLATEAUS = (32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68)  # RFC 1191 section 7
PATH_CACHE = 4096


class Path:
    """The resolved route to `dst` through neighbour `nh`; valid while `fresh(now)`."""

    __slots__ = ("_arp", "_routing", "dst", "entry", "eth", "gen", "mac", "nh", "routes", "src", "until")

    def __init__(self, routing: Routing, dst: int, nh: int, entry: ArpEntry, mac: bytes) -> None:
        self._routing = routing
        self._arp = routing.arp
        self.gen = -1  # the stamp (Routing.check): the ARP generation and the entry's reachable time
        self.until = 0.0
        self.dst = dst
        self.nh = nh
        self.entry = entry
        self.mac = mac
        self.eth = mac + routing.mac + b"\x08\x00"  # the Ethernet header of every frame on this path
        self.routes = routing.routes
        self.src = routing.source(dst)  # the source address of datagrams on this path

    def fresh(self, now: float) -> bool:
        """Still usable (Routing.check): no routing change since, and the neighbour entry is the cache's,
        with the same MAC, static or within its reachable time."""
        if self.gen == self._arp.gen and now < self.until:
            return True
        return self._routing.check(self, now)


class Routing:
    """Address, netmask, gateways and the path MTU table of one interface; `routes` is a generation
    number bumped by every change, so anything derived from a route can tell it is stale (and every
    bump bumps the ARP cache's generation too, which stamped Paths compare)."""

    def __init__(self, arp: ArpCache, stats: Ipv4Stats, *, mtu: int, min_pmtu: int, pmtu_expiry: float,
                 pmtu_table_size: int) -> None:
        self.arp = arp
        self._entries = arp.entries  # the neighbour table (never replaced): path() reads it per frame
        self.stats = stats
        self.mtu = mtu
        self.min_pmtu = min_pmtu
        self.pmtu_expiry = pmtu_expiry
        self.pmtu_table_size = pmtu_table_size
        self.mac = b"\x00" * 6
        self.addr = 0
        self.mask = 0
        self.net = 0
        self.bcast = -1
        self.gateways: list[int] = []
        self._routes = 0
        self.pmtu: OrderedDict[int, tuple[int, float]] = OrderedDict()
        self.paths: dict[int, Path] = {}  # by destination; never replaced (the fast echo reads it: path())
        self.table = RouteTable()  # every address and route (authoritative while `extra`)
        self.extra = False  # secondary addresses or static routes exist
        self.locals: frozenset[int] = frozenset()  # every configured address
        self.bcasts: frozenset[int] = frozenset()  # the subnet broadcasts of every primary address

    @property
    def routes(self) -> int:
        return self._routes

    @routes.setter
    def routes(self, value: int) -> None:  # `routing.routes += 1` from anywhere reaches the Paths' stamps
        self._routes = value
        self.arp.invalidate()

    # -- configuration -------------------------------------------------------------------------
    def set_mac(self, mac: bytes) -> None:
        self.mac = mac
        self.routes += 1

    def set_address(self, address: int, netmask: int) -> None:
        """The primary address (0: none) and its netmask."""
        t = self.table
        if self.addr and any(a.address == self.addr for a in t.addresses):
            t.remove_address(self.addr)
        self.addr = address
        self.mask = netmask
        self.net = address & netmask
        # The subnet broadcast only exists for a real subnet (not /31, /32, nor an unset mask).
        self.bcast = (self.net | (~netmask & 0xFFFFFFFF)) if address and 0 < netmask < 0xFFFFFFFE else -1
        if address and not any(a.address == address for a in t.addresses):
            try:
                t.add_address(address, prefix_of(netmask))
            except ValueError:
                pass  # a non-contiguous mask: only the simple path knows this subnet
        self._changed()

    def set_gateways(self, gateways: list[int]) -> None:
        self.gateways = gateways
        self.table.set_default_gateways(list(gateways))
        self._changed()

    def add_address(self, address: int, prefix_len: int) -> None:
        """A secondary address (the primary is set with set_address). ValueError if already there."""
        self.table.add_address(address, prefix_len)
        self._changed()

    def remove_address(self, address: int) -> None:
        """Remove a secondary address (the caller promotes another when the primary goes)."""
        self.table.remove_address(address)
        self._changed()

    def add_route(self, network: int, prefix_len: int, gateway: int = 0, metric: int = 0, source: int = 0) -> None:
        self.table.add_route(network, prefix_len, gateway=gateway, metric=metric, source=source)
        self._changed()

    def remove_route(self, network: int, prefix_len: int, gateway: int | None = None,
                     metric: int | None = None) -> None:
        self.table.remove_route(network, prefix_len, gateway=gateway, metric=metric)
        self._changed()

    def _changed(self) -> None:
        t = self.table
        addrs = t.addresses
        self.extra = len(addrs) > 1 or any(r.proto == "static" for r in t.routes)
        self.locals = frozenset(a.address for a in addrs) | ({self.addr} if self.addr else set())
        self.bcasts = frozenset(a.broadcast for a in addrs if a.broadcast and t.primary(a))
        self.routes += 1

    def source(self, dst: int) -> int:
        """The source address for `dst` (Linux: the route's, else the primary of the next hop's subnet)."""
        if not self.extra:
            return self.addr
        try:
            return self.table.lookup(dst).source or self.addr
        except NoRouteError:
            return self.addr

    # -- next hop ------------------------------------------------------------------------------
    def _hop(self, dst: int) -> int | bytes | None:  # noqa: PLR0911 - one return per kind of next hop
        if self.extra:
            return self._table_hop(dst)
        if dst == self.addr and dst:
            return self.mac
        if dst == 0xFFFFFFFF or dst == self.bcast:
            return _BCAST
        if dst >> 28 == 0xE:
            return b"\x01\x00\x5e" + (dst & 0x7FFFFF).to_bytes(3, "big")
        if (dst & self.mask) == self.net:
            return dst
        for gw in self.gateways:
            return gw
        return None

    def _table_hop(self, dst: int) -> int | bytes | None:
        if dst >> 28 == 0xE:
            return b"\x01\x00\x5e" + (dst & 0x7FFFFF).to_bytes(3, "big")
        try:
            h = self.table.lookup(dst)
        except NoRouteError:
            return None
        if h.kind is HopKind.LOCAL:
            return self.mac
        if h.kind is HopKind.BROADCAST:
            return _BCAST
        return h.hop

    def next_hop(self, dst: int) -> int | bytes:
        """The IP of the next hop to ARP for, or directly the destination MAC (broadcast/multicast;
        our own MAC for our own address, which is looped back). Raises NoRouteError."""
        nh = self._hop(dst)
        if nh is None:
            self.stats.tx_no_route += 1
            raise NoRouteError(f"no route to {ip_str(dst)}: off-link and no gateway")
        return nh

    def check(self, p: Path, now: float) -> bool:
        """The freshness test of a Path (the only one): built under the current routes, its neighbour
        entry still the cache's, with the same MAC object, and static or within its reachable time. A
        Path passing it is stamped (the ARP generation, and when its entry stops being reachable) and its
        entry marked used (the cache's CLOCK eviction: any eviction pass bumps the generation, so the next
        use comes back here and marks it again)."""
        e = p.entry
        if (e.mac is p.mac and (e.state == STATIC or e.expires > now) and p.routes == self._routes
                and self._entries.get(p.nh) is e):
            e.used = True
            p.gen = self.arp.gen
            p.until = _INF if e.state == STATIC else e.expires
            return True
        return False

    def path(self, dst: int, now: float) -> Path | None:
        """The fresh resolved Path to unicast `dst`, or None (no route, broadcast, ourselves, unresolved)."""
        p = self.paths.get(dst)
        if p is not None:
            # Path.fresh, inlined (per frame on the fast paths): the stamp, else the full test
            if (p.gen == self.arp.gen and now < p.until) or self.check(p, now):
                return p
        nh = self._hop(dst)
        if type(nh) is not int or dst in self.locals:
            return None
        e = self._entries.get(nh)
        if e is None or e.mac is None or not (e.state == STATIC or e.expires > now):
            return None
        if len(self.paths) >= PATH_CACHE:
            self.paths.clear()
        p = self.paths[dst] = Path(self, dst, nh, e, e.mac)
        self.check(p, now)  # stamps it (it passes: just built from a fresh entry)
        return p

    # -- path MTU (RFC 1191) -------------------------------------------------------------------
    def path_mtu(self, dst: int, now: float | None = None) -> int:
        e = self.pmtu.get(dst)
        if e is None:
            return self.mtu
        if now is not None and now >= e[1]:
            del self.pmtu[dst]
            return self.mtu
        return e[0]

    def update_pmtu(self, dst: int, mtu: int, quoted_len: int, now: float) -> None:
        """A "fragmentation needed" for `dst` announcing `mtu` (0: an old router; guessed from plateaus)."""
        if mtu == 0:
            mtu = next((p for p in _PMTU_PLATEAUS if p < quoted_len), 68)
        # Linux's min_pmtu (552, RFC 5927): a forged "fragmentation needed" can't shrink us to 68-byte
        # fragments; a link MTU below it stays the limit.
        mtu = min(max(self.min_pmtu, mtu), self.mtu)
        if mtu >= self.path_mtu(dst, now):
            return  # RFC 1191 6.1: a Datagram Too Big never raises the estimate (Linux ignores it)
        self.pmtu[dst] = (mtu, now + self.pmtu_expiry)
        self.pmtu.move_to_end(dst)
        if len(self.pmtu) > self.pmtu_table_size:
            self.pmtu.popitem(last=False)
