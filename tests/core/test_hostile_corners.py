"""Hostile-input rules of issue 11 item 10, on the sans-I/O host: Ethernet source MACs and 802.1Q priority
tags, ARP locktime / target / hardware type / sender rules / RFC 5227 defence, IPv4 option Parameter
Problem, the obsolete subnet broadcast, reassembly queue discards and ECN, and the ICMP error rules."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address

import pytest
import testlib
from scapy.all import ARP, ICMP, IP, UDP, Dot1Q, Ether
from testlib import neighbour, sent

from tcpip.core.interface import Interface
from tcpip.core.reassembly import Reassembler
from tcpip.core.stats import as_dict
from tcpip.wire import checksum as ck

OUR_MAC = "02:00:00:00:00:02"
PEER_MAC = "02:00:00:00:00:01"
NEW_MAC = "02:00:00:00:00:77"
BCAST_MAC = "ff:ff:ff:ff:ff:ff"
OUR_IP = "198.18.0.2"
PEER_IP = "198.18.0.1"


@pytest.fixture
def iface() -> Interface:
    return testlib.make_iface(mac=OUR_MAC, address=OUR_IP, static={PEER_IP: PEER_MAC})


def echo(src_mac: str = PEER_MAC, *, dst: str = OUR_IP, tos: int = 0) -> Ether:
    return Ether(dst=OUR_MAC, src=src_mac) / IP(src=PEER_IP, dst=dst, tos=tos) / ICMP(id=7, seq=1) / (b"x" * 8)


def feed(iface: Interface, pkt: Ether | bytes, now: float = 1.0) -> list[Ether]:
    iface.receive(memoryview(bytes(pkt)), now)
    return [Ether(f) for f in sent(iface)]


# == Ethernet ==========================================================================================
@pytest.mark.parametrize("src", [OUR_MAC, BCAST_MAC, "01:00:5e:00:00:01"])
def test_frames_from_a_multicast_or_our_own_source_mac_are_dropped(iface: Interface, src: str) -> None:
    # The per-frame fast path (unicast IPv4 to us) checks only the multicast bit, to stay as cheap as it
    # was; our own MAC as a source is caught on the general path (broadcasts, ARP, options, fragments).
    pkts = [Ether(dst=BCAST_MAC, src=src) / ARP(hwsrc=PEER_MAC, psrc=PEER_IP, pdst=OUR_IP),
            Ether(dst=BCAST_MAC, src=src) / IP(src=PEER_IP, dst="255.255.255.255") / ICMP()]
    if src != OUR_MAC:
        pkts.append(echo(src))
    for p in pkts:
        assert feed(iface, p) == []
    assert iface.eth_stats.rx_bad_src_mac == len(pkts)
    assert as_dict(iface.icmp_stats)["rx_messages"] == 0


def test_priority_tagged_frames_are_processed_as_untagged(iface: Interface) -> None:
    tagged = Ether(dst=OUR_MAC, src=PEER_MAC) / Dot1Q(vlan=0, prio=5) / echo()[IP]
    [reply] = feed(iface, tagged)
    assert reply[ICMP].type == 0
    assert reply[IP].dst == PEER_IP
    assert Dot1Q not in reply
    arp = Ether(dst=BCAST_MAC, src=NEW_MAC) / Dot1Q(vlan=0) / ARP(hwsrc=NEW_MAC, psrc="198.18.0.9", pdst=OUR_IP)
    [ans] = feed(iface, arp)
    assert ans[ARP].op == 2
    assert ans[ARP].pdst == "198.18.0.9"
    assert feed(iface, Ether(dst=OUR_MAC, src=PEER_MAC) / Dot1Q(vlan=5) / echo()[IP]) == []
    assert (iface.eth_stats.rx_priority_tagged, iface.eth_stats.rx_vlan) == (2, 1)


# == ARP ===============================================================================================
def arp(op: int, sha: str, spa: str, tpa: str = OUR_IP, *, htype: int = 1, src: str | None = None) -> bytes:
    body = struct.pack("!HHBBH6s4s6s4s", htype, 0x0800, 6, 4, op, testlib.mac_bytes(sha),
                       IPv4Address(spa).packed, bytes(6), IPv4Address(tpa).packed)
    return bytes(Ether(dst=BCAST_MAC, src=src or sha, type=0x0806)) + body


def test_locktime_first_reply_wins() -> None:
    iface = testlib.make_iface(mac=OUR_MAC, address=OUR_IP)
    iface.send(testlib.ip_int("198.18.0.9"), 253, (b"x" * 30,), 0.0)
    sent(iface)
    iface.receive(memoryview(arp(2, PEER_MAC, "198.18.0.9")), 0.1)
    iface.receive(memoryview(arp(2, NEW_MAC, "198.18.0.9")), 0.5)  # a second, different answer: too late
    e = neighbour(iface, "198.18.0.9")
    assert e is not None
    assert e.mac == testlib.mac_bytes(PEER_MAC)
    assert iface.arp.stats.locktime_ignored == 1
    iface.receive(memoryview(arp(2, NEW_MAC, "198.18.0.9")), 1.2)  # after locktime it may change
    assert e.mac == testlib.mac_bytes(NEW_MAC)


@pytest.mark.parametrize("tpa", ["224.0.0.1", "255.255.255.255"])
def test_request_for_a_multicast_or_broadcast_target_refreshes_nothing(tpa: str) -> None:
    iface = testlib.make_iface(mac=OUR_MAC, address=OUR_IP)
    iface.receive(memoryview(arp(1, PEER_MAC, PEER_IP)), 0.0)  # creates the entry
    sent(iface)
    e = neighbour(iface, PEER_IP)
    assert e is not None
    before = e.expires
    iface.receive(memoryview(arp(1, NEW_MAC, PEER_IP, tpa)), 30.0)
    assert (e.mac, e.expires) == (testlib.mac_bytes(PEER_MAC), before)
    assert iface.arp.stats.rx_bad_target_ip == 1
    assert sent(iface) == []


def test_hardware_type_6_answered_like_ethernet(iface: Interface) -> None:
    [ans] = feed(iface, arp(1, NEW_MAC, "198.18.0.9", htype=6))
    assert (ans[ARP].op, ans[ARP].hwtype, ans[ARP].pdst, ans.dst) == (2, 1, "198.18.0.9", NEW_MAC)


@pytest.mark.parametrize("spa", ["198.18.0.255", "198.18.0.0"])
def test_sender_ip_broadcast_or_network_never_answered(iface: Interface, spa: str) -> None:
    assert feed(iface, arp(1, NEW_MAC, spa)) == []
    assert iface.arp.stats.rx_bad_sender_ip == 1
    assert neighbour(iface, spa) is None


def test_zero_sender_mac_never_answered(iface: Interface) -> None:
    assert feed(iface, arp(1, "00:00:00:00:00:00", "198.18.0.9", src=NEW_MAC)) == []
    assert iface.arp.stats.rx_bad_sender_mac == 1


# == IPv4 ==============================================================================================
def test_malformed_option_gets_parameter_problem_pointing_at_it(iface: Interface) -> None:
    # NOP, then an option of type 7 (RR) claiming 40 bytes in a 4-byte option area
    bad = IP(src=PEER_IP, dst=OUR_IP, options=b"\x01\x07\x28\x04")
    pkt = Ether(dst=OUR_MAC, src=PEER_MAC) / bad / ICMP(id=7, seq=1) / (b"x" * 8)
    [err] = feed(iface, pkt)
    assert (err[ICMP].type, err[ICMP].code, err[ICMP].ptr) == (12, 0, 21)
    assert bytes(err[ICMP].payload)[:24] == bytes(pkt[IP])[:24]
    assert iface.icmp_stats.tx_param_problem == 1
    assert iface.ip_stats.rx_bad_options == 1
    # ... never about an ICMP message other than echo (here a timestamp request)
    assert feed(iface, Ether(dst=OUR_MAC, src=PEER_MAC) / bad / ICMP(type=13), 5.0) == []
    assert iface.icmp_stats.tx_suppressed == 1


def test_obsolete_all_zeros_subnet_broadcast_accepted(iface: Interface) -> None:
    got: list[tuple[int, bool]] = []
    iface.register(253, lambda s, d, p, pk, now, b: got.append((d, b)))
    iface.receive(memoryview(bytes(Ether(dst=BCAST_MAC, src=PEER_MAC) / IP(src=PEER_IP, dst="198.18.0.0",
                                                                         proto=253) / b"hi")), 1.0)
    assert got == [(testlib.ip_int("198.18.0.0"), True)]


def test_time_exceeded_reassembly_not_delivered_to_endpoints(iface: Interface) -> None:
    errs: list[tuple[int, int]] = []
    iface.register(17, lambda *a: None, lambda t, c, rest, q, now: errs.append((t, c)))
    quote = bytes(IP(src=OUR_IP, dst=PEER_IP) / UDP(sport=1000, dport=2000) / (b"q" * 8))
    for code in (1, 0):
        pkt = Ether(dst=OUR_MAC, src=PEER_MAC) / IP(src=PEER_IP, dst=OUR_IP) / ICMP(type=11, code=code) / quote
        feed(iface, pkt)
    assert errs == [(11, 0)]
    assert iface.icmp_stats.rx_reassembly_timeout_ignored == 1


# == reassembly ========================================================================================
def frag(off: int, data: bytes, more: bool, tos: int = 0, ident: int = 0x77) -> tuple[bytes, bytes]:
    h = bytearray(bytes(IP(src=PEER_IP, dst=OUR_IP, proto=17, id=ident, tos=tos))[:20])
    h[6:8] = ((0x2000 if more else 0) | off >> 3).to_bytes(2, "big")
    h[2:4] = (20 + len(data)).to_bytes(2, "big")
    return bytes(h), data


def process(r: Reassembler, *pieces: tuple[bytes, bytes]) -> list[bytearray]:
    outs = []
    for h, d in pieces:
        out = r.process(memoryview(h), memoryview(d), 0.0)
        if out is not None:
            outs.append(out)
    return outs


def test_empty_non_first_fragment_discards_its_queue() -> None:
    r = Reassembler()
    process(r, frag(0, bytes(16), True), frag(16, b"", True))
    assert (len(r), r.memory, r.stats.empty) == (0, 0, 1)
    assert process(r, frag(16, b"end", False)) == []  # the first fragment went with the queue


def test_oversize_fragment_discards_its_queue() -> None:
    r = Reassembler()
    process(r, frag(0, bytes(16), True), frag(65528, bytes(16), False))
    assert (len(r), r.memory, r.stats.oversize) == (0, 0, 1)


@pytest.mark.parametrize(("tos1", "tos2", "result"), [(0, 3, None), (3, 0, None), (1, 3, 3), (2, 2, 2),
                                                      (0, 0, 0)])
def test_ecn_of_fragments(tos1: int, tos2: int, result: int | None) -> None:
    r = Reassembler()
    outs = process(r, frag(0, bytes(16), True, tos1), frag(16, b"end", False, tos2))
    if result is None:
        assert outs == []
        assert r.stats.ecn_mix == 1
        assert len(r) == 0
    else:
        assert [o[1] & 3 for o in outs] == [result]
        assert ck.verify(memoryview(outs[0])[:20])


@pytest.mark.parametrize("as_bytes", [False, True])
def test_runts_with_offload_flags_are_counted_drops(iface: Interface, as_bytes: bool) -> None:
    # A driver's csum_ok / gso_size on a frame too short to hold an IPv4 header: a counted drop, never an
    # exception out of receive (the TAP never hands these over, but the sans-I/O API must not trust it).
    for n in (0, 10, 14, 23):
        for csum_ok, gso in ((True, 0), (False, 1400), (True, 1400)):
            f = bytes.fromhex(OUR_MAC.replace(":", "")) + bytes(max(0, n - 6)) if n >= 6 else bytes(n)
            iface.receive(f if as_bytes else memoryview(f), 1.0, csum_ok=csum_ok, gso_size=gso)
    st = as_dict(iface.eth_stats)
    # csum_ok alone: the general path's drops (shorter than an Ethernet header; ethertype 0)
    assert st["rx_frames"] == 4
    assert st["rx_runt"] == st["rx_unknown_ethertype"] == 2
    assert as_dict(iface.ip_stats)["rx_offload_dropped"] == 8  # a super-frame's: the offload path's drop
    assert sent(iface) == []
