"""ARP (RFC 826, RFC 5227, Linux arp_accept=0) and next-hop routing of the sans-I/O Interface, with literal times.

Frames go in through `iface.receive(frame, now)`; timers fire through `iface.handle_timeout(now)` at the instants
`iface.poll_at()` announces; what goes out is read back with `testlib.sent` and scapy.
"""

from __future__ import annotations

import struct
from ipaddress import IPv4Address

import pytest
import testlib
from scapy.all import ARP, IP, Ether, Raw
from testlib import neighbour, neighbours, sent

from tcpip.core.arp import REACHABLE
from tcpip.core.interface import PENDING, SENT, Interface
from tcpip.errors import NoRouteError
from tcpip.wire.mac import MacAddress

OUR_MAC = "02:00:00:00:00:02"
PEER_MAC = "02:00:00:00:00:01"
NEW_MAC = "02:00:00:00:00:77"
OTHER_MAC = "02:00:00:00:00:99"
BCAST_MAC = "ff:ff:ff:ff:ff:ff"
ZERO_MAC = "00:00:00:00:00:00"
OUR_IP = "198.18.0.2"
PEER_IP = "198.18.0.1"
HOST_IP = "198.18.0.7"  # on-link, silent until it answers
GATEWAY = "198.18.0.254"
GATEWAY2 = "198.18.0.253"
GW_MAC = "02:00:00:00:00:fe"
PROTO = 253  # RFC 3692 experimental: scapy leaves the payload raw


def ip_int(s: str) -> int:
    return int(IPv4Address(s))


def mac_bytes(s: str) -> bytes:
    return MacAddress(s).packed


def make_iface(gateways: tuple[str, ...] = (GATEWAY,), **config: object) -> Interface:
    return testlib.make_iface(mac=OUR_MAC, address=OUR_IP, gateways=gateways, **config)


def arp_frame(*, op: int, sha: str, spa: str, tha: str = ZERO_MAC, tpa: str = OUR_IP,
              dst: str = BCAST_MAC, src: str | None = None) -> memoryview:
    body = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, mac_bytes(sha), IPv4Address(spa).packed,
                       mac_bytes(tha), IPv4Address(tpa).packed)
    frame = mac_bytes(dst) + mac_bytes(sha if src is None else src) + b"\x08\x06" + body
    return memoryview(frame + bytes(60 - len(frame)))


def request(sha: str = PEER_MAC, spa: str = PEER_IP, tpa: str = OUR_IP) -> memoryview:
    return arp_frame(op=1, sha=sha, spa=spa, tpa=tpa)


def reply(sha: str, spa: str, tpa: str = OUR_IP, *, dst: str = OUR_MAC) -> memoryview:
    return arp_frame(op=2, sha=sha, spa=spa, tha=OUR_MAC if tpa == OUR_IP else ZERO_MAC, tpa=tpa, dst=dst)


def drain(iface: Interface) -> list[Ether]:
    """The frames queued since the last drain, parsed by scapy (each must be padded to 60 bytes)."""
    out = []
    for raw in sent(iface):
        assert len(raw) >= 60
        out.append(Ether(raw))
    return out


def assert_request_for(frame: Ether, target: str) -> None:
    assert (frame.dst, frame.src, frame.type) == (BCAST_MAC, OUR_MAC, 0x0806)
    a = frame[ARP]
    assert (a.hwtype, a.ptype, a.hwlen, a.plen, a.op) == (1, 0x0800, 6, 4, 1)
    assert (a.hwsrc, a.psrc, a.hwdst, a.pdst) == (OUR_MAC, OUR_IP, ZERO_MAC, target)


def entry_mac(iface: Interface, ip: str) -> str | None:
    e = neighbour(iface, ip_int(ip))
    if e is None or e.mac is None:
        return None
    return str(MacAddress(e.mac))


@pytest.fixture
def iface() -> Interface:
    return make_iface()


# == answering and learning ==========================================================================
def test_request_for_our_address_answered_exactly(iface: Interface) -> None:
    iface.receive(request(), now=5.0)
    [rep] = drain(iface)
    assert (rep.dst, rep.src, rep.type) == (PEER_MAC, OUR_MAC, 0x0806)
    a = rep[ARP]
    assert (a.hwtype, a.ptype, a.hwlen, a.plen, a.op) == (1, 0x0800, 6, 4, 2)
    assert (a.hwsrc, a.psrc, a.hwdst, a.pdst) == (OUR_MAC, OUR_IP, PEER_MAC, PEER_IP)
    assert iface.arp.stats.replies_sent == 1


def test_request_addressed_to_us_creates_entry(iface: Interface) -> None:
    iface.receive(request(), now=5.0)
    e = neighbour(iface, ip_int(PEER_IP))
    assert (e.mac, e.state, e.expires) == (mac_bytes(PEER_MAC), REACHABLE, 65.0)
    assert iface.arp.stats.entries_created == 1
    assert iface.arp.lookup(ip_int(PEER_IP), 6.0) == mac_bytes(PEER_MAC)
    assert iface.poll_at() is None  # a reachable entry needs no timer


@pytest.mark.parametrize(
    "frame",
    [
        reply(PEER_MAC, PEER_IP),  # unsolicited reply to us
        reply(PEER_MAC, PEER_IP, PEER_IP, dst=BCAST_MAC),  # gratuitous reply
        arp_frame(op=1, sha=PEER_MAC, spa=PEER_IP, tpa=PEER_IP),  # gratuitous request (announcement)
        request(tpa="198.18.0.3"),  # request for someone else
        request(tpa="0.0.0.0"),
    ],
    ids=["unsolicited-reply", "gratuitous-reply", "announcement", "request-for-other", "request-for-zero"],
)
def test_arp_for_unknown_ip_creates_nothing(iface: Interface, frame: memoryview) -> None:
    iface.receive(frame, now=1.0)
    assert neighbours(iface) == {}
    assert sent(iface) == []
    st = iface.arp.stats
    assert st.entries_created == 0
    assert st.unsolicited_ignored + st.rx_not_for_us == 1


@pytest.mark.parametrize(
    "frame",
    [
        reply(NEW_MAC, PEER_IP),
        reply(NEW_MAC, PEER_IP, PEER_IP, dst=BCAST_MAC),
        arp_frame(op=1, sha=NEW_MAC, spa=PEER_IP, tpa=PEER_IP),
        request(sha=NEW_MAC, tpa="198.18.0.3"),
    ],
    ids=["unsolicited-reply", "gratuitous-reply", "announcement", "request-for-other"],
)
def test_arp_for_known_ip_refreshes_entry(iface: Interface, frame: memoryview) -> None:
    iface.receive(request(), now=0.0)
    drain(iface)
    iface.receive(frame, now=30.0)
    e = neighbour(iface, ip_int(PEER_IP))
    assert (e.mac, e.state, e.expires) == (mac_bytes(NEW_MAC), REACHABLE, 90.0)
    assert iface.arp.stats.entries_refreshed == 1
    assert len(neighbours(iface)) == 1
    assert sent(iface) == []


def test_zero_sender_ip_never_cached_and_probe_answered(iface: Interface) -> None:
    probe = arp_frame(op=1, sha=PEER_MAC, spa="0.0.0.0", tpa=OUR_IP)  # RFC 5227 probe for our address
    iface.receive(probe, now=1.0)
    [rep] = drain(iface)
    assert (rep.dst, rep[ARP].op, rep[ARP].hwsrc, rep[ARP].psrc) == (PEER_MAC, 2, OUR_MAC, OUR_IP)
    assert (rep[ARP].hwdst, rep[ARP].pdst) == (PEER_MAC, "0.0.0.0")
    assert iface.arp.stats.probes_answered == 1
    assert neighbours(iface) == {}
    iface.receive(arp_frame(op=1, sha=PEER_MAC, spa="0.0.0.0", tpa="198.18.0.3"), now=1.5)  # someone else's
    assert sent(iface) == []
    assert neighbours(iface) == {}


@pytest.mark.parametrize(
    "frame",
    [
        request(sha=OTHER_MAC, spa=OUR_IP, tpa=OUR_IP),  # another host announces our address
        reply(OTHER_MAC, OUR_IP, PEER_IP, dst=BCAST_MAC),
        request(sha=OTHER_MAC, spa=OUR_IP, tpa=PEER_IP),
    ],
    ids=["announce", "reply", "request"],
)
def test_conflict_counted_when_another_mac_claims_our_address(iface: Interface, frame: memoryview) -> None:
    iface.receive(frame, now=1.0)
    assert iface.arp.stats.conflicts == 1
    assert neighbours(iface) == {}
    # RFC 5227 2.4 (b): one defending announcement (sender IP = target IP = ours), then none for 10 s
    out = sent(iface)
    assert len(out) == 1
    assert ARP(out[0][14:]).psrc == ARP(out[0][14:]).pdst == OUR_IP
    iface.receive(frame, now=5.0)
    assert sent(iface) == []
    assert iface.arp.stats.conflicts == 2
    iface.receive(frame, now=11.0)
    assert len(sent(iface)) == 1
    assert iface.arp.stats.conflicts_defended == 2


def test_broadcast_sender_mac_never_cached(iface: Interface) -> None:
    iface.receive(request(sha=BCAST_MAC), now=1.0)  # the Ethernet source too: dropped there
    assert iface.eth_stats.rx_bad_src_mac == 1
    for sha in (BCAST_MAC, "01:00:5e:00:00:01", ZERO_MAC):
        iface.receive(arp_frame(op=1, sha=sha, spa=PEER_IP, src=PEER_MAC), now=1.0)
    assert neighbours(iface) == {}
    assert sent(iface) == []
    assert iface.arp.stats.rx_bad_sender_mac == 3


# == resolution ======================================================================================
def test_unresolved_send_requests_retries_and_fails() -> None:
    iface = make_iface()
    failed: list[int] = []
    status = iface.send(ip_int(HOST_IP), 17, (b"x",), 10.0, on_fail=failed.append)
    assert status == PENDING
    [req] = drain(iface)
    assert_request_for(req, HOST_IP)
    assert iface.poll_at() == 11.0
    iface.handle_timeout(10.999)
    assert sent(iface) == []
    for t in (11.0, 12.0):  # retries exactly arp_interval apart
        iface.handle_timeout(t)
        [req] = drain(iface)
        assert_request_for(req, HOST_IP)
        assert iface.poll_at() == t + 1.0
    assert failed == []
    iface.handle_timeout(13.0)  # arp_tries=3 requests went unanswered
    assert sent(iface) == []
    assert failed == [ip_int(HOST_IP)]
    st = iface.arp.stats
    assert (st.requests_sent, st.resolve_failures, st.queue_dropped) == (3, 1, 1)
    assert ip_int(HOST_IP) not in neighbours(iface)
    assert iface.poll_at() is None
    iface.handle_timeout(100.0)
    assert sent(iface) == []
    assert failed == [ip_int(HOST_IP)]  # the hook ran once
    # a late reply does not resurrect the dropped frame
    iface.receive(reply(PEER_MAC, HOST_IP), now=100.5)
    assert sent(iface) == []
    assert ip_int(HOST_IP) not in neighbours(iface)


@pytest.mark.parametrize(("tries", "interval"), [(1, 1.0), (5, 0.25), (2, 3.0)])
def test_retry_schedule_follows_config(tries: int, interval: float) -> None:
    iface = make_iface(arp_tries=tries, arp_interval=interval)
    failed: list[int] = []
    iface.send(ip_int(HOST_IP), PROTO, (b"x",), 0.0, on_fail=failed.append)
    assert len(drain(iface)) == 1
    times = [0.0]
    while (t := iface.poll_at()) is not None:
        iface.handle_timeout(t)
        sent = drain(iface)
        if sent:
            assert_request_for(sent[0], HOST_IP)
            times += [t] * len(sent)
        else:
            assert failed == [ip_int(HOST_IP)]
            assert t == tries * interval  # fails one interval after the last request
    assert times == [i * interval for i in range(tries)]
    assert iface.arp.stats.requests_sent == tries
    assert failed == [ip_int(HOST_IP)]


def test_concurrent_sends_share_one_pending_entry() -> None:
    iface = make_iface()
    hook_calls: list[int] = []
    other_calls: list[int] = []
    assert iface.send(ip_int(HOST_IP), PROTO, (b"a",), 0.0, on_fail=hook_calls.append) == PENDING
    assert iface.send(ip_int(HOST_IP), PROTO, (b"b",), 0.2, on_fail=hook_calls.append) == PENDING
    assert iface.send(ip_int(HOST_IP), PROTO, (b"c",), 0.9, on_fail=other_calls.append) == PENDING
    assert len(drain(iface)) == 1  # one request, not one per send
    assert list(iface.arp.pending) == [ip_int(HOST_IP)]
    assert iface.poll_at() == 1.0  # the shared entry's schedule, not the later sends'
    iface.handle_timeout(1.0)
    assert len(drain(iface)) == 1
    iface.handle_timeout(2.0)
    iface.handle_timeout(3.0)
    assert iface.arp.stats.requests_sent == 3
    assert hook_calls == [ip_int(HOST_IP)]  # the same hook once, even for two frames
    assert other_calls == [ip_int(HOST_IP)]
    assert iface.arp.stats.queue_dropped == 3


def test_reply_resolves_and_flushes_queue_in_order() -> None:
    iface = make_iface()
    for i in range(3):
        iface.send(ip_int(HOST_IP), PROTO, (b"frame-%d" % i,), 0.1 * i)
    drain(iface)
    iface.receive(reply(OTHER_MAC, HOST_IP), now=0.5)
    out = drain(iface)
    assert len(out) == 3
    for i, f in enumerate(out):
        assert (f.dst, f.src, f.type) == (OTHER_MAC, OUR_MAC, 0x0800)
        assert (f[IP].src, f[IP].dst, f[IP].proto) == (OUR_IP, HOST_IP, PROTO)
        assert f[Raw].load[: f[IP].len - 20] == b"frame-%d" % i
    e = neighbour(iface, ip_int(HOST_IP))
    assert (e.mac, e.state, e.expires) == (mac_bytes(OTHER_MAC), REACHABLE, 60.5)
    assert iface.arp.pending == {}
    assert iface.poll_at() is None
    # now resolved: the next send goes straight out
    assert iface.send(ip_int(HOST_IP), PROTO, (b"direct",), 1.0) == SENT
    [f] = drain(iface)
    assert f.dst == OTHER_MAC
    iface.handle_timeout(10.0)
    assert sent(iface) == []


def test_request_from_pending_host_also_resolves(iface: Interface) -> None:
    iface.send(ip_int(HOST_IP), PROTO, (b"q",), 0.0)
    drain(iface)
    iface.receive(request(sha=OTHER_MAC, spa=HOST_IP), now=0.3)
    out = drain(iface)
    assert sorted((f.dst, f.type) for f in out) == [(OTHER_MAC, 0x0800), (OTHER_MAC, 0x0806)]  # frame + reply
    assert entry_mac(iface, HOST_IP) == OTHER_MAC
    assert iface.arp.pending == {}


def test_queue_is_bounded_oldest_dropped() -> None:
    iface = make_iface(arp_queue_len=4)
    for i in range(7):
        iface.send(ip_int(HOST_IP), PROTO, (b"n%d" % i,), 0.0)
    assert len(drain(iface)) == 1
    assert iface.arp.stats.queue_dropped == 3
    iface.receive(reply(OTHER_MAC, HOST_IP), now=0.1)
    out = drain(iface)
    assert [f[Raw].load[:2] for f in out] == [b"n3", b"n4", b"n5", b"n6"]


def test_default_queue_bound_applies() -> None:
    iface = make_iface()
    n = iface.config.arp_queue_len
    for i in range(n + 2):
        iface.send(ip_int(HOST_IP), PROTO, (i.to_bytes(2, "big"),), 0.0)
    drain(iface)
    assert iface.arp.stats.queue_dropped == 2
    iface.receive(reply(OTHER_MAC, HOST_IP), now=0.1)
    out = drain(iface)
    assert len(out) == n
    assert out[0][Raw].load[:2] == (2).to_bytes(2, "big")


# == expiry and re-validation ========================================================================
def _resolved(iface: Interface, at: float) -> None:
    iface.send(ip_int(HOST_IP), PROTO, (b"r",), at)
    iface.receive(reply(OTHER_MAC, HOST_IP), now=at)
    drain(iface)


def test_reachable_entry_revalidated_after_expiry_and_removed_without_answer(iface: Interface) -> None:
    _resolved(iface, 0.0)
    assert iface.send(ip_int(HOST_IP), PROTO, (b"fresh",), 59.9) == SENT
    assert [f.type for f in drain(iface)] == [0x0800]  # still reachable: no request
    assert iface.poll_at() is None
    assert iface.send(ip_int(HOST_IP), PROTO, (b"stale",), 60.0) == SENT  # the stale MAC still serves
    out = drain(iface)
    assert sorted(f.type for f in out) == [0x0800, 0x0806]
    assert_request_for(next(f for f in out if f.type == 0x0806), HOST_IP)
    assert next(f for f in out if f.type == 0x0800).dst == OTHER_MAC
    assert iface.poll_at() == 61.0
    iface.send(ip_int(HOST_IP), PROTO, (b"again",), 60.5)  # a second use does not send another request
    assert [f.type for f in drain(iface)] == [0x0800]
    iface.handle_timeout(61.0)
    iface.handle_timeout(62.0)
    assert [f.type for f in drain(iface)] == [0x0806, 0x0806]
    iface.handle_timeout(63.0)
    assert ip_int(HOST_IP) not in neighbours(iface)
    assert iface.arp.stats.expired == 1
    assert iface.poll_at() is None
    assert iface.send(ip_int(HOST_IP), PROTO, (b"later",), 64.0) == PENDING
    [req] = drain(iface)
    assert_request_for(req, HOST_IP)


def test_revalidation_answered_keeps_entry(iface: Interface) -> None:
    _resolved(iface, 0.0)
    iface.send(ip_int(HOST_IP), PROTO, (b"stale",), 70.0)
    drain(iface)
    iface.receive(reply(NEW_MAC, HOST_IP), now=70.2)
    e = neighbour(iface, ip_int(HOST_IP))
    assert (e.mac, e.state, e.expires) == (mac_bytes(NEW_MAC), REACHABLE, 130.2)
    assert iface.poll_at() is None
    iface.handle_timeout(75.0)
    assert sent(iface) == []
    assert iface.send(ip_int(HOST_IP), PROTO, (b"new",), 71.0) == SENT
    [f] = drain(iface)
    assert f.dst == NEW_MAC


# == cache bound =====================================================================================
def _request_bytes(i: int) -> memoryview:
    spa = (ip_int("10.0.0.0") + i).to_bytes(4, "big")
    sha = b"\x02\x01" + i.to_bytes(4, "big")
    body = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, sha, spa, bytes(6), IPv4Address(OUR_IP).packed)
    return memoryview(b"\xff" * 6 + sha + b"\x08\x06" + body + bytes(18))


def test_cache_bounded_under_request_flood() -> None:
    iface = make_iface()
    size = iface.config.arp_cache_size
    assert size == 1024
    for i in range(5000):
        iface.receive(_request_bytes(i), now=1.0 + i * 1e-4)
        assert len(neighbours(iface)) <= size
    sent(iface)
    assert len(neighbours(iface)) == size
    assert iface.arp.stats.evictions == 5000 - size
    assert iface.arp.stats.replies_sent == 5000
    # LRU: the most recent senders survive
    assert set(neighbours(iface)) == {ip_int("10.0.0.0") + i for i in range(5000 - size, 5000)}


def test_cache_evicts_least_recently_used() -> None:
    iface = make_iface(arp_cache_size=3)
    hosts = ["198.18.0.11", "198.18.0.12", "198.18.0.13"]
    for t, h in enumerate(hosts):
        iface.receive(request(sha=f"02:00:00:00:01:{t:02x}", spa=h), now=float(t))
    assert iface.send(ip_int(hosts[0]), PROTO, (b"touch",), 4.0) == SENT  # .11 becomes most recent
    iface.receive(request(sha="02:00:00:00:01:99", spa="198.18.0.14"), now=5.0)
    assert set(neighbours(iface)) == {ip_int(h) for h in ("198.18.0.11", "198.18.0.13", "198.18.0.14")}
    assert iface.arp.stats.evictions == 1


# == announcements ===================================================================================
def test_set_address_sends_gratuitous_announcement(iface: Interface) -> None:
    iface.set_address(ip_int("198.18.0.42"), 3.0)
    [g] = drain(iface)
    assert (g.dst, g.src, g.type) == (BCAST_MAC, OUR_MAC, 0x0806)
    a = g[ARP]
    assert (a.op, a.hwsrc, a.psrc, a.hwdst, a.pdst) == (1, OUR_MAC, "198.18.0.42", ZERO_MAC, "198.18.0.42")
    assert iface.arp.stats.announcements_sent == 1
    # and the new address is the one answered for
    iface.receive(request(tpa="198.18.0.42"), now=4.0)
    [rep] = drain(iface)
    assert (rep[ARP].op, rep[ARP].psrc) == (2, "198.18.0.42")
    iface.receive(request(tpa=OUR_IP), now=4.0)
    assert sent(iface) == []


def test_clearing_address_sends_no_announcement(iface: Interface) -> None:
    iface.set_address(0, 1.0)
    assert sent(iface) == []
    assert iface.arp.stats.announcements_sent == 0


# == routing =========================================================================================
@pytest.mark.parametrize(
    ("dst", "expected"),
    [
        (PEER_IP, ip_int(PEER_IP)),  # on-link: ARP for the destination itself
        ("198.18.0.200", ip_int("198.18.0.200")),
        ("8.8.8.8", ip_int(GATEWAY)),  # off-link: the first gateway
        ("198.18.1.1", ip_int(GATEWAY)),
        ("255.255.255.255", b"\xff" * 6),
        ("198.18.0.255", b"\xff" * 6),  # subnet broadcast
        ("224.1.2.3", bytes.fromhex("01005e010203")),
        ("239.129.2.3", bytes.fromhex("01005e010203")),  # only the low 23 bits map
        ("224.0.0.1", bytes.fromhex("01005e000001")),
    ],
)
def test_next_hop(dst: str, expected: int | bytes) -> None:
    iface = make_iface(gateways=(GATEWAY, GATEWAY2))
    assert iface.next_hop(ip_int(dst)) == expected


def test_no_gateway_raises_no_route() -> None:
    iface = make_iface(gateways=())
    with pytest.raises(NoRouteError):
        iface.next_hop(ip_int("8.8.8.8"))
    with pytest.raises(NoRouteError):
        iface.send(ip_int("8.8.8.8"), PROTO, (b"x",), 0.0)
    assert sent(iface) == []
    assert iface.ip_stats.tx_no_route == 2
    assert iface.next_hop(ip_int(PEER_IP)) == ip_int(PEER_IP)  # on-link still fine


@pytest.mark.parametrize(
    ("dst", "mac"),
    [("255.255.255.255", BCAST_MAC), ("198.18.0.255", BCAST_MAC), ("224.1.2.3", "01:00:5e:01:02:03")],
)
def test_broadcast_and_multicast_sent_without_arp(iface: Interface, dst: str, mac: str) -> None:
    assert iface.send(ip_int(dst), PROTO, (b"all",), 0.0) == SENT
    [f] = drain(iface)
    assert (f.dst, f.src, f.type, f[IP].dst, f[IP].src) == (mac, OUR_MAC, 0x0800, dst, OUR_IP)
    assert iface.arp.stats.requests_sent == 0


def test_off_link_send_resolves_the_gateway(iface: Interface) -> None:
    assert iface.send(ip_int("8.8.8.8"), PROTO, (b"far",), 0.0) == PENDING
    [req] = drain(iface)
    assert_request_for(req, GATEWAY)
    iface.receive(reply(GW_MAC, GATEWAY), now=0.1)
    [f] = drain(iface)
    assert (f.dst, f[IP].dst, f[IP].src) == (GW_MAC, "8.8.8.8", OUR_IP)
    assert iface.send(ip_int("1.1.1.1"), PROTO, (b"far2",), 0.2) == SENT  # the gateway's entry is shared
    [f] = drain(iface)
    assert (f.dst, f[IP].dst) == (GW_MAC, "1.1.1.1")
