"""Hostile input (issue 5): crafted frames against the sans-I/O Interface, each proving by its counters which
rule fired and that nothing else happened (no delivery, nothing sent, no reassembly state).

Complements tests/core/test_ipv4_input_rules.py (one frame per drop rule) with: truncation at every length of
every layer, the same rules applied to fragments before they reach the reassembler, floods (ARP from 100k
sources, never-completed fragment sets from many sources) with bounded state while legitimate traffic still
works, the ping of death, and a mutation fuzz. Every receive is followed by the accounting identities.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from ipaddress import IPv4Address
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from testlib import csum, ip_int, mac_bytes, make_iface, neighbours, sent

from tcpip.core.reassembly import ReassemblyConfig
from tcpip.core.stats import as_dict, unbalanced
from tcpip.core.udp import UdpLayer

OUR_MAC = "02:00:00:00:00:02"
PEER_MAC = "02:00:00:00:00:01"
BCAST_MAC = "ff:ff:ff:ff:ff:ff"
OUR_IP = "198.18.0.2"
PEER_IP = "198.18.0.1"
GATEWAY = "198.18.0.254"
SUBNET_BCAST = "198.18.0.255"


# -- frame builders ------------------------------------------------------------------------------------
def ipv4(src: str | int, dst: str | int, proto: int, payload: bytes, *, ident: int = 0x1234,
         flags_frag: int = 0, ttl: int = 64, options: bytes = b"", ihl: int | None = None,
         total: int | None = None) -> bytes:
    hl = 20 + len(options)
    hdr = bytearray(struct.pack("!BBHHHBBH4s4s", 0x40 | (hl // 4 if ihl is None else ihl), 0,
                                hl + len(payload) if total is None else total, ident, flags_frag, ttl, proto, 0,
                                IPv4Address(src).packed, IPv4Address(dst).packed) + options)
    hdr[10:12] = csum(bytes(hdr)).to_bytes(2, "big")
    return bytes(hdr) + payload


def udp_dgram(src: str, dst: str, sport: int, dport: int, data: bytes, *, length: int | None = None) -> bytes:
    n = 8 + len(data) if length is None else length
    pseudo = IPv4Address(src).packed + IPv4Address(dst).packed + struct.pack("!BBH", 0, 17, n)
    c = csum(pseudo + struct.pack("!HHHH", sport, dport, n, 0) + data[:n - 8]) or 0xFFFF
    return struct.pack("!HHHH", sport, dport, n, c) + data


def icmp(t: int, code: int, rest: int, body: bytes) -> bytes:
    m = bytearray(struct.pack("!BBHI", t, code, 0, rest) + body)
    m[2:4] = csum(bytes(m)).to_bytes(2, "big")
    return bytes(m)


def eth(payload: bytes, *, dst: str = OUR_MAC, src: str = PEER_MAC, ethertype: int = 0x0800,
        pad: bool = True) -> bytes:
    frame = mac_bytes(dst) + mac_bytes(src) + struct.pack("!H", ethertype) + payload
    if pad:
        frame += bytes(max(0, 60 - len(frame)))
    return frame


def arp(*, op: int = 1, sha: str = PEER_MAC, spa: str = PEER_IP, tha: str = "00:00:00:00:00:00",
        tpa: str = OUR_IP) -> bytes:
    return struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, mac_bytes(sha), IPv4Address(spa).packed,
                       mac_bytes(tha), IPv4Address(tpa).packed)


# -- the interface under test --------------------------------------------------------------------------
class Host:
    """An Interface with a UDP layer, a catch-all UDP port and a raw handler for protocol 253."""

    def __init__(self, **config: Any) -> None:
        self.iface = make_iface(mac=OUR_MAC, address=OUR_IP, gateways=[GATEWAY], seed=5, **config)
        self.udp = UdpLayer(self.iface, random.Random(6))
        self.got: list[tuple[str, bytes]] = []
        self.udp.bind(9, 0, lambda data, src, sport, dst, now: self.got.append((str(IPv4Address(src)), bytes(data))))
        self.iface.register(253, lambda s, d, payload, pkt, now, b: self.got.append(("raw", bytes(payload))))

    def counters(self) -> dict[str, int]:
        i = self.iface
        out: dict[str, int] = {}
        layers: list[tuple[str, object]] = [("eth", i.eth_stats), ("arp", i.arp.stats), ("ip", i.ip_stats),
                                            ("icmp", i.icmp_stats), ("udp", self.udp.stats)]
        if i.reassembler is not None:
            layers.append(("frag", i.reassembler.stats))
        for name, s in layers:
            for k, v in as_dict(s).items():
                out[f"{name}.{k}"] = v
        return out

    def feed(self, frame: bytes, now: float = 1.0) -> dict[str, int]:
        before = self.counters()
        self.iface.receive(memoryview(frame), now)
        assert unbalanced(self.iface.eth_stats, self.iface.arp.stats, self.iface.ip_stats) == []
        after = self.counters()
        return {k: after[k] - before[k] for k in after if after[k] != before[k]}

    def drain(self) -> list[bytes]:
        return sent(self.iface)

    @property
    def memory(self) -> int:
        r = self.iface.reassembler
        assert r is not None
        return r.memory


ETH = {"eth.rx_frames": 1}
IP = {"eth.rx_frames": 1, "ip.rx_packets": 1}
DELIVERED = {**IP, "ip.rx_delivered": 1}
UDP_OK = {**DELIVERED, "udp.rx_datagrams": 1, "udp.rx_delivered": 1}
ICMP = {**DELIVERED, "icmp.rx_messages": 1}
FRAG = {**IP, "ip.rx_fragments": 1, "frag.fragments": 1}
FRAG_HELD = {**FRAG, "frag.accepted": 1}


def udp_packet(data: bytes = b"0123456789abcdef", **kw: Any) -> bytes:
    return ipv4(PEER_IP, OUR_IP, 17, udp_dgram(PEER_IP, OUR_IP, 7, 9, data), **kw)


# == truncation at every length ===========================================================================
def test_ethernet_truncated_at_every_length() -> None:
    h = Host()
    frame = eth(udp_packet(), pad=False)
    for n in range(14):
        assert h.feed(frame[:n]) == {**ETH, "eth.rx_runt": 1}, n
    assert h.feed(frame) == UDP_OK
    assert h.got == [(PEER_IP, b"0123456789abcdef")]
    assert sent(h.iface) == []


@pytest.mark.parametrize("options", [b"", b"\x01\x01\x01\x01", b"\x07\x0b\x04" + bytes(8) + b"\x00" * 1,
                                     b"\x44\x0c\x05\x00" + bytes(8) + b"\x01" * 4 + b"\x00" * 24])
def test_ipv4_truncated_at_every_length(options: bytes) -> None:
    h = Host()
    pkt = udp_packet(options=options)
    for n in range(len(pkt)):
        assert h.feed(eth(pkt[:n], pad=False)) == {**IP, "ip.rx_truncated": 1}, n
    assert h.feed(eth(pkt, pad=False)) == UDP_OK
    assert h.got == [(PEER_IP, b"0123456789abcdef")]
    assert sent(h.iface) == []


def test_fragment_truncated_at_every_length_never_reaches_reassembly() -> None:
    h = Host()
    frag = ipv4(PEER_IP, OUR_IP, 17, bytes(range(64)), flags_frag=0x2000)
    for n in range(len(frag)):
        assert h.feed(eth(frag[:n], pad=False)) == {**IP, "ip.rx_truncated": 1}, n
    assert h.iface.reassembler is not None
    assert len(h.iface.reassembler) == 0
    assert h.feed(eth(frag, pad=False)) == FRAG_HELD


def test_arp_truncated_at_every_length() -> None:
    h = Host()
    body = arp()
    for n in range(len(body)):
        assert h.feed(eth(body[:n], dst=BCAST_MAC, ethertype=0x0806, pad=False)) == {
            **ETH, "arp.rx_packets": 1, "arp.rx_truncated": 1}, n
    assert sent(h.iface) == []
    assert neighbours(h.iface) == {}


def test_icmp_truncated_at_every_length() -> None:
    h = Host()
    h.iface.arp.add_static(ip_int(PEER_IP), mac_bytes(PEER_MAC))
    h.drain()
    msg = icmp(8, 0, 0x77770001, bytes(range(1, 41)))
    for n in range(len(msg)):
        d = h.feed(eth(ipv4(PEER_IP, OUR_IP, 1, msg[:n])))
        # Shorter than the 8-byte header: truncated. Longer: the checksum no longer matches the cut message.
        assert d == {**ICMP, "icmp.rx_truncated" if n < 8 else "icmp.rx_bad_checksum": 1}, n
    assert sent(h.iface) == []
    assert h.feed(eth(ipv4(PEER_IP, OUR_IP, 1, msg)))["icmp.tx_echo_replies"] == 1


def test_udp_truncated_at_every_length() -> None:
    h = Host()
    dgram = udp_dgram(PEER_IP, OUR_IP, 7, 9, b"0123456789abcdef")
    for n in range(len(dgram)):
        d = h.feed(eth(ipv4(PEER_IP, OUR_IP, 17, dgram[:n])))
        assert d == {**DELIVERED, "udp.rx_datagrams": 1, "udp.rx_truncated": 1}, n  # n < 8, or length > n
    assert h.got == []
    assert sent(h.iface) == []  # a truncated datagram gets no port unreachable either


@pytest.mark.parametrize("length", [0, 1, 7])
def test_udp_length_below_header_dropped(length: int) -> None:
    h = Host()
    d = h.feed(eth(ipv4(PEER_IP, OUR_IP, 17, udp_dgram(PEER_IP, OUR_IP, 7, 9, b"data", length=length))))
    assert d == {**DELIVERED, "udp.rx_datagrams": 1, "udp.rx_bad_length": 1}
    assert h.got == []


# == IPv4 header: IHL, total length, padding, checksum ====================================================
@pytest.mark.parametrize("ihl", range(6, 16))
def test_ihl_beyond_total_length(ihl: int) -> None:
    h = Host()
    pkt = ipv4(PEER_IP, OUR_IP, 17, bytes(ihl * 4), ihl=ihl, total=20 + (ihl - 6) * 4 + 3)
    assert h.feed(eth(pkt, pad=False)) == {**IP, "ip.rx_bad_total_length": 1}


@pytest.mark.parametrize("ihl", range(6, 16))
def test_ihl_beyond_the_frame(ihl: int) -> None:
    h = Host()
    pkt = ipv4(PEER_IP, OUR_IP, 17, b"", ihl=ihl, total=ihl * 4)[: ihl * 4 - 1]  # header cut short
    assert h.feed(eth(pkt, pad=False)) == {**IP, "ip.rx_truncated": 1}


@pytest.mark.parametrize("extra", [1, 2, 100, 1000])
def test_total_length_beyond_the_frame(extra: int) -> None:
    h = Host()
    pkt = udp_packet()
    bad = ipv4(PEER_IP, OUR_IP, 17, pkt[20:], total=len(pkt) + extra)
    assert h.feed(eth(bad, pad=False)) == {**IP, "ip.rx_truncated": 1}
    frag = ipv4(PEER_IP, OUR_IP, 17, bytes(16), flags_frag=0x2000, total=36 + extra)
    assert h.feed(eth(frag, pad=False)) == {**IP, "ip.rx_truncated": 1}
    assert h.got == []
    assert h.memory == 0


def test_padding_beyond_total_length_trimmed_everywhere() -> None:
    h = Host()
    h.iface.arp.add_static(ip_int(PEER_IP), mac_bytes(PEER_MAC))
    h.drain()
    junk = b"\xee" * 30
    # UDP: the payload ends at the IP total length (and the checksum covers only that).
    assert h.feed(eth(udp_packet(b"pad"), pad=False) + junk) == UDP_OK
    # UDP whose IP total length exceeds the UDP length: trimmed again to the UDP length.
    inner = udp_dgram(PEER_IP, OUR_IP, 7, 9, b"in" + b"\xdd" * 6, length=10)
    assert h.feed(eth(ipv4(PEER_IP, OUR_IP, 17, inner), pad=False) + junk) == UDP_OK
    # A padded last fragment: the reassembled datagram has no padding in it.
    data = bytes(range(40))
    whole = udp_dgram(PEER_IP, OUR_IP, 7, 9, data)  # 48 bytes
    h.feed(eth(ipv4(PEER_IP, OUR_IP, 17, whole[:40], flags_frag=0x2000, ident=77)))
    d = h.feed(eth(ipv4(PEER_IP, OUR_IP, 17, whole[40:], flags_frag=5, ident=77), pad=False) + junk)
    assert d == {**FRAG_HELD, "ip.rx_reassembled": 1, "frag.reassembled": 1, "ip.rx_delivered": 1,
                 "udp.rx_datagrams": 1, "udp.rx_delivered": 1}
    assert h.got == [(PEER_IP, b"pad"), (PEER_IP, b"in"), (PEER_IP, data)]
    # An echo request with padding: the reply carries exactly the request's data.
    msg = icmp(8, 0, 0x00050006, b"abc")
    h.feed(eth(ipv4(PEER_IP, OUR_IP, 1, msg), pad=False) + junk)
    [reply] = h.drain()
    assert struct.unpack_from("!H", reply, 16)[0] == 20 + len(msg)
    assert reply[34:34 + len(msg)] == icmp(0, 0, 0x00050006, b"abc")


def test_bad_header_checksum_on_a_fragment_never_reaches_reassembly() -> None:
    h = Host()
    frag = bytearray(ipv4(PEER_IP, OUR_IP, 17, bytes(16), flags_frag=0x2000))
    frag[10] ^= 0x10
    assert h.feed(eth(bytes(frag))) == {**IP, "ip.rx_bad_checksum": 1}
    assert h.memory == 0


# == options ===============================================================================================
RR = b"\x07\x0b\x04" + bytes(8) + b"\x01"  # record route, 2 empty slots, then a NOP
TS = b"\x44\x0c\x05\x00" + bytes(8)  # timestamp, 2 slots
LSRR = b"\x83\x07\x04" + IPv4Address("10.0.0.1").packed + b"\x00"
SSRR = b"\x89\x07\x04" + IPv4Address("10.0.0.1").packed + b"\x00"


def test_valid_options_on_the_first_fragment_skipped_and_payload_exact() -> None:
    h = Host()
    data = bytes(range(200))
    whole = udp_dgram(PEER_IP, OUR_IP, 7, 9, data)  # 208 bytes
    first = ipv4(PEER_IP, OUR_IP, 17, whole[:104], flags_frag=0x2000, ident=3, options=RR + TS)
    second = ipv4(PEER_IP, OUR_IP, 17, whole[104:], flags_frag=13, ident=3)  # RR/TS are not copied
    assert h.feed(eth(second)) == FRAG_HELD
    assert h.feed(eth(first))["udp.rx_delivered"] == 1
    assert h.got == [(PEER_IP, data)]


@pytest.mark.parametrize(("options", "counter"), [
    (b"\x07\x00\x00\x00", "ip.rx_bad_options"), (b"\x07\x01\x00\x00", "ip.rx_bad_options"),
    (b"\x44\x09\x05\x00", "ip.rx_bad_options"), (b"\x01\x01\x01\x07", "ip.rx_bad_options"),
    (LSRR, "ip.rx_source_route"), (SSRR, "ip.rx_source_route"), (b"\x01" * 4 + LSRR, "ip.rx_source_route")])
@pytest.mark.parametrize("fragmented", [False, True])
def test_bad_options_and_source_routes_dropped(options: bytes, counter: str, fragmented: bool) -> None:
    h = Host()
    pkt = ipv4(PEER_IP, OUR_IP, 17, udp_dgram(PEER_IP, OUR_IP, 7, 9, bytes(8)), options=options,
               flags_frag=0x2000 if fragmented else 0)
    got = h.feed(eth(pkt))
    # A malformed length also gets a Parameter Problem (RFC 1122 3.2.2.5; here queued behind ARP)
    extra = {} if counter == "ip.rx_source_route" else {
        "icmp.tx_param_problem": 1, "eth.tx_frames": 1, "ip.tx_packets": 1, "arp.requests_sent": 1,
        "ip.tx_arp_pending": 1}
    assert got == {**IP, counter: 1, **extra}
    assert h.got == []
    assert len(sent(h.iface)) == len(extra) // 5  # the ARP request, when an error is queued
    assert h.memory == 0


# == sources, destinations, TTL ============================================================================
@pytest.mark.parametrize("src", ["0.0.0.0", "127.0.0.1", "224.0.0.1", "239.9.9.9", "240.1.1.1",
                                 "255.255.255.255", SUBNET_BCAST, OUR_IP])
def test_martian_fragments_never_reach_reassembly(src: str) -> None:
    h = Host()
    assert h.feed(eth(ipv4(src, OUR_IP, 17, bytes(16), flags_frag=0x2000))) == {**IP, "ip.rx_martian_source": 1}
    assert h.memory == 0
    assert sent(h.iface) == []


@pytest.mark.parametrize("dst_mac", [BCAST_MAC, "01:00:5e:00:00:01", "01:00:5e:7f:ff:fa"])
def test_unicast_fragment_in_link_broadcast_dropped(dst_mac: str) -> None:
    h = Host()
    h.iface.join(ip_int("239.255.255.250"))
    d = h.feed(eth(ipv4(PEER_IP, OUR_IP, 17, bytes(16), flags_frag=0x2000), dst=dst_mac))
    assert d == {**IP, "ip.rx_unicast_in_l2_broadcast": 1}
    assert h.memory == 0


@pytest.mark.parametrize("ttl", [0, 1])
def test_ttl_0_or_1_to_us_accepted_whole_and_in_fragments(ttl: int) -> None:
    h = Host()
    assert h.feed(eth(udp_packet(b"low ttl", ttl=ttl))) == UDP_OK
    whole = udp_dgram(PEER_IP, OUR_IP, 7, 9, bytes(24))
    h.feed(eth(ipv4(PEER_IP, OUR_IP, 17, whole[:16], flags_frag=0x2000, ttl=ttl, ident=ttl)))
    h.feed(eth(ipv4(PEER_IP, OUR_IP, 17, whole[16:], flags_frag=2, ttl=ttl, ident=ttl)))
    assert h.got == [(PEER_IP, b"low ttl"), (PEER_IP, bytes(24))]
    assert sent(h.iface) == []  # never a time exceeded for a datagram that reached its destination


# == ARP ===================================================================================================
def test_arp_probe_for_our_address_answered_exactly_never_cached() -> None:
    h = Host()
    probe = arp(sha="02:00:00:00:00:33", spa="0.0.0.0", tpa=OUR_IP)
    d = h.feed(eth(probe, dst=BCAST_MAC, src="02:00:00:00:00:33", ethertype=0x0806))
    assert d == {**ETH, "arp.rx_packets": 1, "arp.requests_received": 1, "arp.replies_sent": 1,
                 "arp.probes_answered": 1, "eth.tx_frames": 1}
    [reply] = h.drain()
    assert reply[:42] == (mac_bytes("02:00:00:00:00:33") + mac_bytes(OUR_MAC) + b"\x08\x06"
                          + arp(op=2, sha=OUR_MAC, spa=OUR_IP, tha="02:00:00:00:00:33", tpa="0.0.0.0"))
    assert neighbours(h.iface) == {}
    # A probe for someone else's address: not ours to answer.
    other = arp(sha="02:00:00:00:00:33", spa="0.0.0.0", tpa="198.18.0.77")
    d = h.feed(eth(other, dst=BCAST_MAC, src="02:00:00:00:00:33", ethertype=0x0806))
    assert d == {**ETH, "arp.rx_packets": 1, "arp.requests_received": 1, "arp.rx_not_for_us": 1}
    assert sent(h.iface) == []
    assert neighbours(h.iface) == {}


def _flood_arp(i: int, *, op: int = 1, tpa: bytes = IPv4Address(OUR_IP).packed) -> bytes:
    sha = b"\x02\x99" + i.to_bytes(4, "big")
    spa = (0x0A000000 + i).to_bytes(4, "big")
    return (b"\xff" * 6 + sha + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + sha + spa
            + bytes(6) + tpa + bytes(18))


def _ping(h: Host, seq: int) -> None:
    """PEER pings us; answer its ARP query if we ask; the echo reply must come out exactly."""
    msg = icmp(8, 0, 0x42420000 | seq, b"still alive")
    h.feed(eth(ipv4(PEER_IP, OUR_IP, 1, msg, ident=seq)), now=5.0)
    out = h.drain()
    if out and out[0][12:14] == b"\x08\x06":  # PEER was evicted by the flood: we ask first
        assert out[0][38:42] == IPv4Address(PEER_IP).packed
        h.feed(eth(arp(op=2, tha=OUR_MAC), ethertype=0x0806), now=5.0)
        out = h.drain()
    [reply] = out
    assert reply[0:6] == mac_bytes(PEER_MAC)
    assert reply[26:34] == IPv4Address(OUR_IP).packed + IPv4Address(PEER_IP).packed
    assert reply[34:34 + len(msg)] == icmp(0, 0, 0x42420000 | seq, b"still alive")


def test_arp_flood_from_100k_sources_keeps_the_cache_bounded_and_ping_works() -> None:
    h = Host()
    iface = h.iface
    bound = iface.config.arp_cache_size
    before = h.counters()
    receive = iface.receive
    for i in range(100_000):
        receive(memoryview(_flood_arp(i)), 2.0)
        if i % 10_000 == 9_999:
            assert len(neighbours(iface)) == bound
            sent(iface)
            _ping(h, i // 10_000)
    assert unbalanced(iface.eth_stats, iface.arp.stats, iface.ip_stats) == []
    after = h.counters()
    assert after["arp.requests_received"] - before["arp.requests_received"] == 100_000
    assert len(neighbours(iface)) == bound
    assert len(iface.arp.pending) <= bound
    # Unsolicited replies and requests for other addresses from as many sources create nothing at all.
    sent(iface)
    n = len(neighbours(iface))
    for i in range(200_000, 220_000):
        receive(memoryview(_flood_arp(i, op=2)), 3.0)
        receive(memoryview(_flood_arp(i, tpa=b"\xc6\x12\x00\x63")), 3.0)
    assert len(neighbours(iface)) == n
    assert sent(iface) == []
    assert h.counters()["arp.unsolicited_ignored"] - after["arp.unsolicited_ignored"] == 20_000
    assert h.counters()["arp.rx_not_for_us"] - after["arp.rx_not_for_us"] == 20_000
    _ping(h, 99)


# == reassembly under attack ===============================================================================
_FLOOD_DATA = bytes(1480)


def _fragment_frame(src: int, ident: int, off: int, data: bytes, more: bool, proto: int = 17) -> bytes:
    return eth(ipv4(src, OUR_IP, proto, data, ident=ident, flags_frag=(0x2000 if more else 0) | off >> 3))


def _good_datagram(h: Host, n: int, now: float) -> None:
    """PEER sends one 3000-byte UDP datagram in 3 prompt fragments: it must come out whole."""
    data = n.to_bytes(4, "big") * 748
    whole = udp_dgram(PEER_IP, OUR_IP, 7, 9, data)
    src = ip_int(PEER_IP)
    for off in (1480, 0, 2960):
        h.feed(_fragment_frame(src, n, off, whole[off:off + 1480], off != 2960), now)
    assert h.got[-1] == (PEER_IP, data)


def test_fragment_flood_from_many_sources_memory_capped_good_source_completes() -> None:
    h = Host()
    iface = h.iface
    r = iface.reassembler
    assert r is not None
    cap = r.config.max_memory
    assert cap == 4 * 1024 * 1024
    receive = iface.receive
    good = 0
    for i in range(12_000):  # ~18 MB of never-completed first fragments from 12000 sources
        now = 1.0 + i * 1e-3
        receive(memoryview(_fragment_frame(0x0B000000 + i, i & 0xFFFF, 0, _FLOOD_DATA, True)), now)
        assert r.memory <= cap
        if i % 500 == 499:
            _good_datagram(h, good, now)
            good += 1
    assert good == 24
    assert len(h.got) == 24
    assert unbalanced(iface.eth_stats, iface.arp.stats, iface.ip_stats) == []
    assert r.stats.evicted > 0
    assert r.memory <= cap
    assert sent(iface) == []  # evicted queues never produce Time Exceeded


def test_fragment_flood_from_one_source_held_to_its_share() -> None:
    h = Host()
    r = h.iface.reassembler
    assert r is not None
    share = r.config.per_source_memory
    attacker = ip_int("198.18.0.66")
    for i in range(2000):
        h.iface.receive(memoryview(_fragment_frame(attacker, i, 0, _FLOOD_DATA, True)), 1.0)
        assert r.source_memory(attacker) <= share
    assert r.stats.source_limit == 2000 - share // (1480 + r.config.fragment_overhead)
    # Meanwhile PEER's maximum-size datagram (65535 bytes in 45 fragments) still fits and completes.
    data = bytes(i * 7 & 0xFF for i in range(65535 - 28))
    whole = udp_dgram(PEER_IP, OUR_IP, 7, 9, data)
    offs = list(range(0, len(whole), 1480))
    random.Random(1).shuffle(offs)
    for off in offs:
        h.feed(_fragment_frame(ip_int(PEER_IP), 4242, off, whole[off:off + 1480], off + 1480 < len(whole)), 1.5)
    assert h.got == [(PEER_IP, data)]


def test_small_reassembly_memory_cap_is_honoured() -> None:
    h = Host(reassembly=ReassemblyConfig(max_memory=200_000))
    r = h.iface.reassembler
    assert r is not None
    for i in range(3000):
        h.iface.receive(memoryview(_fragment_frame(0x0B000000 + i, i, 0, bytes(8 * (i % 180 + 1)), True)), 1.0)
        assert r.memory <= 200_000
    _good_datagram(h, 1, 2.0)
    assert unbalanced(h.iface.eth_stats, h.iface.arp.stats, h.iface.ip_stats) == []


def test_ping_of_death_refused_and_counted() -> None:
    h = Host()
    h.iface.arp.add_static(ip_int(PEER_IP), mac_bytes(PEER_MAC))
    h.drain()
    # A single fragment ending beyond 65535 bytes: refused before any copy.
    d = h.feed(_fragment_frame(ip_int(PEER_IP), 1, 0xFFF8, bytes(16), False, proto=1))
    assert d == {**FRAG, "frag.oversize": 1}
    # Exactly 65535 bytes still fits; one byte more does not.
    d = h.feed(_fragment_frame(ip_int(PEER_IP), 2, 65512, bytes(3), False, proto=1))
    assert d == FRAG_HELD
    d = h.feed(_fragment_frame(ip_int(PEER_IP), 3, 65512, bytes(4), False, proto=1))
    assert d == {**FRAG, "frag.oversize": 1}
    # The classic: a 65536+ byte echo request in 1480-byte pieces never comes out, nothing is answered.
    echo = icmp(8, 0, 0x00010001, bytes(65600))
    for off in range(0, len(echo), 1480):
        h.feed(_fragment_frame(ip_int(PEER_IP), 4, off, echo[off:off + 1480], off + 1480 < len(echo), 1))
    r = h.iface.reassembler
    assert r is not None
    assert r.stats.oversize == 3
    assert r.stats.reassembled == 0
    assert as_dict(h.iface.icmp_stats)["rx_echo_requests"] == 0
    assert sent(h.iface) == []


# == fuzz: mutated valid frames only ever count ============================================================
def _seed_frames() -> list[bytes]:
    whole = udp_dgram(PEER_IP, OUR_IP, 7, 9, bytes(range(40)))
    return [
        eth(udp_packet()),
        eth(udp_packet(options=RR + TS)),
        eth(ipv4(PEER_IP, OUR_IP, 17, whole[:24], flags_frag=0x2000, ident=9)),
        eth(ipv4(PEER_IP, OUR_IP, 17, whole[24:], flags_frag=3, ident=9)),
        eth(ipv4(PEER_IP, OUR_IP, 1, icmp(8, 0, 0x00010002, b"fuzz"))),
        eth(ipv4(PEER_IP, OUR_IP, 1, icmp(3, 3, 0, ipv4(OUR_IP, PEER_IP, 17, bytes(8))))),
        eth(ipv4(PEER_IP, OUR_IP, 253, b"raw")),
        eth(arp(), dst=BCAST_MAC, ethertype=0x0806),
        eth(arp(op=2, tha=OUR_MAC), ethertype=0x0806),
    ]


SEEDS = _seed_frames()


@st.composite
def mutated(draw: Callable[..., Any]) -> list[bytes]:
    out = []
    for _ in range(draw(st.integers(1, 4))):
        f = bytearray(draw(st.sampled_from(SEEDS)))
        for _ in range(draw(st.integers(0, 4))):
            i = draw(st.integers(0, len(f) - 1))
            f[i] = draw(st.integers(0, 255))
        cut = draw(st.integers(0, len(f) + 8))
        f = f[:cut] if cut <= len(f) else f + bytes(cut - len(f))
        out.append(bytes(f))
    return out


@settings(max_examples=300, deadline=None)
@given(mutated())
def test_mutated_frames_only_move_counters(frames: list[bytes]) -> None:
    h = Host()
    h.iface.arp.add_static(ip_int(PEER_IP), mac_bytes(PEER_MAC))
    h.drain()
    for f in frames:
        h.feed(f)  # never raises; the books balance after every frame
    for out in h.drain():  # anything we answered is well formed and goes to PEER or is an ARP reply
        assert out[6:12] == mac_bytes(OUR_MAC)
        assert out[12:14] in (b"\x08\x00", b"\x08\x06")
        if out[12:14] == b"\x08\x00":
            assert csum(out[14:34]) == 0
            assert out[26:30] == IPv4Address(OUR_IP).packed


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=120))
def test_random_bytes_only_move_counters(data: bytes) -> None:
    h = Host()
    h.feed(data)
    h.feed(mac_bytes(OUR_MAC) + mac_bytes(PEER_MAC) + b"\x08\x00" + data)
    h.feed(mac_bytes(BCAST_MAC) + mac_bytes(PEER_MAC) + b"\x08\x06" + data)
