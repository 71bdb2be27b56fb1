"""The stamped `Path` (routing.Routing.check): after any sequence of neighbour and route events, `path()`
and `Path.fresh()` answer exactly what the full freshness test answers, and hot entries keep their CLOCK bit."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given
from hypothesis import strategies as st
from testlib import ip_int, mac_bytes

from tcpip.core.arp import STATIC, ArpCache, ArpEntry
from tcpip.core.routing import Path, Routing
from tcpip.core.stats import ArpStats, Ipv4Stats
from tcpip.errors import NoRouteError
from tcpip.wire import arp as warp

OUR_MAC = mac_bytes("02:00:00:00:00:02")
OUR = ip_int("198.18.0.2")
GW, GW2 = ip_int("198.18.0.254"), ip_int("198.18.0.253")
NEIGHBOURS = [ip_int(f"198.18.0.{i}") for i in (1, 3, 4, 5, 6)] + [GW, GW2]
FAR, FAR2 = ip_int("192.0.2.7"), ip_int("198.19.5.5")
DESTS = [*NEIGHBOURS, FAR, FAR2, OUR, 0xFFFFFFFF, ip_int("198.18.0.255")]
MACS = [mac_bytes(f"02:00:00:00:01:{i:02x}") for i in range(3)]


@dataclass
class World:
    arp: ArpCache
    r: Routing
    now: float = 0.0
    issued: list[Path] = field(default_factory=list)


def _world(size: int = 4) -> World:
    arp = ArpCache(ArpStats(), lambda _f: None, size=size, tries=3, interval=1.0, reachable=60.0, queue_len=8)
    r = Routing(arp, Ipv4Stats(), mtu=1500, min_pmtu=552, pmtu_expiry=600.0, pmtu_table_size=2)
    r.set_mac(OUR_MAC)
    r.set_address(OUR, 0xFFFFFF00)
    r.set_gateways([GW])
    arp.mac, arp.ip, arp.mask = OUR_MAC, OUR, 0xFFFFFF00
    return World(arp, r)


def _arp_packet(w: World, op: int, ip: int, mac: bytes, target: int) -> None:
    # A fresh bytes object per packet, as from the wire: a re-learnt MAC is a new object (a new Path).
    w.arp.input(memoryview(warp.pack(op, bytes(mac), ip.to_bytes(4, "big"), OUR_MAC,
                                     target.to_bytes(4, "big"))), w.now)


def _apply(w: World, ev: tuple[str, int, int]) -> None:
    kind, i, j = ev
    ip = NEIGHBOURS[i % len(NEIGHBOURS)]
    mac = MACS[j % len(MACS)]
    arp, r = w.arp, w.r
    if kind == "time":
        w.now += (0.0, 0.5, 1.0, 30.0, 59.5, 61.0)[j % 6]
        arp.handle_timeout(w.now)  # what the driver does when time passes: retries, refreshes, expiries
    elif kind == "resolve":
        arp.resolve(ip, None, w.now)
    elif kind == "request":  # a request to us: creates or updates the entry
        _arp_packet(w, 1, ip, mac, OUR)
    elif kind == "reply":  # a reply to us: updates a known entry only (locktime applies)
        _arp_packet(w, 2, ip, mac, OUR)
    elif kind == "gratuitous":
        _arp_packet(w, 1, ip, mac, ip)
    elif kind == "lookup":  # past its reachable time this starts a refresh (the deadline moves)
        arp.lookup(ip, w.now)
    elif kind == "static":
        arp.add_static(ip, bytes(mac))
    elif kind == "remove":
        arp.remove(ip)
    elif kind == "flush":  # what linkstate does when the link goes: every learnt entry removed
        for x in [x for x, e in arp.entries.items() if e.state != STATIC and e.mac is not None]:
            arp.remove(x)
    elif kind == "gateways":
        r.set_gateways([[GW], [GW2], [], [GW2, GW]][j % 4])
    elif kind == "route":
        try:
            if j & 1:
                r.add_route(ip_int("198.19.0.0"), 16, gateway=GW2, metric=i)
            else:
                r.remove_route(ip_int("198.19.0.0"), 16)
        except (NoRouteError, ValueError, LookupError):
            pass  # already there / not there: nothing changed
    elif kind == "bump":  # the idiom of other layers (MTU change, link lost): routes += 1
        r.routes += 1
    elif kind == "mac":
        r.set_mac(bytes(OUR_MAC))


def _expected_entry(w: World, dst: int) -> ArpEntry | None:
    """The full test, from the public pieces: the neighbour entry `path(dst)` must use, or None."""
    try:
        nh = w.r.next_hop(dst)
    except NoRouteError:
        return None
    if not isinstance(nh, int) or dst in w.r.locals:
        return None
    e = w.arp.entries.get(nh)
    if e is None or e.mac is None or not (e.state == STATIC or e.expires > w.now):
        return None
    return e


def _old_fresh(w: World, p: Path) -> bool:
    """Path.fresh as it was written before the stamp: every field compared, every time."""
    e = p.entry
    return (e.mac is p.mac and (e.state == STATIC or e.expires > w.now) and p.routes == w.r.routes
            and w.arp.entries.get(p.nh) is e)


def _check(w: World) -> None:
    for old in w.issued:  # every Path handed out so far: fresh exactly when the full test says so
        assert old.fresh(w.now) is _old_fresh(w, old)
    for dst in DESTS:
        e = _expected_entry(w, dst)
        p = w.r.path(dst, w.now)
        if e is None:
            assert p is None
            continue
        assert p is not None
        assert p.entry is e
        assert p.mac is e.mac
        assert p.eth == e.mac + OUR_MAC + b"\x08\x00"
        assert e.used  # marked for the cache's CLOCK eviction
        assert _old_fresh(w, p)
        if p not in w.issued:
            w.issued.append(p)
            del w.issued[:-32]


EVENTS = st.tuples(st.sampled_from(["time", "resolve", "request", "reply", "gratuitous", "lookup", "static",
                                    "remove", "flush", "gateways", "route", "bump", "mac"]),
                   st.integers(0, 6), st.integers(0, 5))


@given(st.lists(EVENTS, max_size=40), st.sampled_from([3, 4, 16]))
def test_path_answers_what_the_full_test_answers(events: list[tuple[str, int, int]], size: int) -> None:
    w = _world(size)
    _check(w)
    for ev in events:
        _apply(w, ev)
        _check(w)


def test_stamp_hit_then_every_kind_of_change_is_seen() -> None:
    w = _world()
    peer = NEIGHBOURS[0]
    _arp_packet(w, 1, peer, MACS[0], OUR)
    p = w.r.path(peer, 1.0)
    assert p is not None
    assert w.r.path(peer, 59.9) is p  # the same Path while nothing changed
    assert w.r.path(peer, 60.0) is None  # its reachable time is over
    w.now = 60.0
    _arp_packet(w, 1, NEIGHBOURS[1], MACS[1], OUR)  # another neighbour: the generation moves...
    w.now = 61.0
    _arp_packet(w, 1, peer, MACS[0], OUR)  # ...and this one is learnt again: a new MAC object, a new Path
    q = w.r.path(peer, 61.0)
    assert q is not None
    assert q is not p
    assert q.fresh(120.9)
    assert not q.fresh(121.0)
    other = w.r.path(NEIGHBOURS[1], 61.0)
    assert other is not None
    w.r.routes += 1  # any routing change: a new Path for everyone
    assert not q.fresh(61.0)
    assert not other.fresh(61.0)
    assert w.r.path(peer, 61.0) not in (None, q)


def test_a_path_in_use_keeps_its_entry_through_evictions() -> None:
    """CLOCK: an entry whose Path is used between insertions survives them; one never used is evicted."""
    w = _world(size=3)
    hot, cold = NEIGHBOURS[0], NEIGHBOURS[1]
    _arp_packet(w, 1, hot, MACS[0], OUR)
    _arp_packet(w, 1, cold, MACS[1], OUR)
    assert w.r.path(cold, 1.0) is not None  # used once, then never again
    for k in range(8):
        assert w.r.path(hot, 1.0 + k) is not None
        w.arp.resolve(ip_int(f"198.18.0.{100 + k}"), None, 1.0 + k)  # a new entry: the oldest must go
    assert hot in w.arp.entries
    assert cold not in w.arp.entries


def test_newcomer_is_not_its_own_victim() -> None:
    """A full cache whose entries were all used since last ordered (every one had its second chance): a
    request from a new neighbour evicts the oldest of them, not the newcomer it is learning (hypothesis
    found this: the newcomer was deleted, then learnt into, and `move_to_end` raised KeyError)."""
    w = _world(3)
    for ip in NEIGHBOURS[:3]:
        _arp_packet(w, 1, ip, MACS[0], OUR)
        assert w.r.path(ip, w.now) is not None  # used: marked for the CLOCK's second chance
    _arp_packet(w, 1, NEIGHBOURS[3], MACS[1], OUR)
    assert list(w.arp.entries) == [*NEIGHBOURS[1:3], NEIGHBOURS[3]]
    assert w.arp.entries[NEIGHBOURS[3]].mac == MACS[1]
    assert w.arp.stats.evictions == 1


def test_request_into_a_cache_full_of_statics() -> None:
    """Statics are never evicted while others exist: the newcomer is the only candidate and goes; learning it
    must not raise (the request is still answered by the caller)."""
    w = _world(2)
    for ip in NEIGHBOURS[:2]:
        w.arp.add_static(ip, MACS[0])
    _arp_packet(w, 1, NEIGHBOURS[2], MACS[1], OUR)
    assert list(w.arp.entries) == NEIGHBOURS[:2]
    assert w.arp.stats.evictions == 1
