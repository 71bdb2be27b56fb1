"""ICMP errors (RFC 792, RFC 1122 3.2.2, RFC 1191): generated when they must be, never when they must not,
rate limited like Linux; received errors reach the UDP endpoint that sent the quoted datagram.

Generation runs on the sans-I/O Interface with literal times; every case compares the whole counter set
before/after, so the counter that moved (`tx_suppressed`, `tx_rate_limited`, ...) names the rule that
fired, and checks the books balance (`unbalanced(...) == []`). Reception also runs end to end: stacks on a
Hub with a VirtualClock, errors crafted by a raw port, delivered to asyncio `error_received`.
"""

from __future__ import annotations

import asyncio
import errno
import random
import struct
from collections.abc import AsyncIterator
from ipaddress import IPv4Address
from typing import Any, cast

import pytest
import testlib
from scapy.layers.inet import IP, UDP, defragment
from scapy.packet import Raw
from testlib import Recorder, csum, ip_int, mac_bytes, sent

from tcpip import Stack
from tcpip.core.interface import Accepted, Interface
from tcpip.core.stats import as_dict, unbalanced
from tcpip.core.udp import UdpLayer
from tcpip.netif.clock import VirtualClock
from tcpip.netif.hub import Hub

OUR_MAC = "02:00:00:00:00:02"
PEER_MAC = "02:00:00:00:00:01"
GW_MAC = "02:00:00:00:00:fe"
BCAST_MAC = "ff:ff:ff:ff:ff:ff"
OUR_IP = "198.18.0.2"
PEER_IP = "198.18.0.1"
GATEWAY = "198.18.0.254"
SUBNET_BCAST = "198.18.0.255"
FAR = "192.0.2.7"  # off-link, through the gateway
PROTO = 253  # RFC 3692 experimental: nobody handles it


# -- helpers ---------------------------------------------------------------------------------------
def ipv4(src: str, dst: str, proto: int, payload: bytes, *, ident: int = 0x1234, flags_frag: int = 0,
         ttl: int = 64, options: bytes = b"") -> bytes:
    hl = 20 + len(options)
    hdr = bytearray(struct.pack("!BBHHHBBH4s4s", 0x40 | hl // 4, 0, hl + len(payload), ident, flags_frag, ttl,
                                proto, 0, IPv4Address(src).packed, IPv4Address(dst).packed) + options)
    hdr[10:12] = csum(bytes(hdr)).to_bytes(2, "big")
    return bytes(hdr) + payload


def icmp(t: int, code: int, rest: int, body: bytes) -> bytes:
    m = bytearray(struct.pack("!BBHI", t, code, 0, rest) + body)
    m[2:4] = csum(bytes(m)).to_bytes(2, "big")
    return bytes(m)


def udp_dgram(src: str, dst: str, sport: int, dport: int, data: bytes) -> bytes:
    length = 8 + len(data)
    pseudo = IPv4Address(src).packed + IPv4Address(dst).packed + struct.pack("!BBH", 0, 17, length)
    c = csum(pseudo + struct.pack("!HHHH", sport, dport, length, 0) + data) or 0xFFFF
    return struct.pack("!HHHH", sport, dport, length, c) + data


def eth(payload: bytes, *, dst: str = OUR_MAC, src: str = PEER_MAC, ethertype: int = 0x0800) -> bytes:
    frame = mac_bytes(dst) + mac_bytes(src) + struct.pack("!H", ethertype) + payload
    return frame + bytes(max(0, 60 - len(frame)))


def make_iface(**config: Any) -> Interface:
    return testlib.make_iface(mac=OUR_MAC, address=OUR_IP, gateways=[GATEWAY], seed=7,
                              static={PEER_IP: PEER_MAC, GATEWAY: GW_MAC}, **config)


def counters(iface: Interface, *extra: tuple[str, object]) -> dict[str, int]:
    out: dict[str, int] = {}
    layers: list[tuple[str, object]] = [("eth", iface.eth_stats), ("arp", iface.arp.stats),
                                        ("ip", iface.ip_stats), ("icmp", iface.icmp_stats), *extra]
    if iface.reassembler is not None:
        layers.append(("frag", iface.reassembler.stats))
    for name, st in layers:
        for k, v in as_dict(st).items():
            out[f"{name}.{k}"] = v
    return out


def diff(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before[k] for k in after if after[k] != before[k]}


def feed(iface: Interface, frame: bytes, now: float = 1.0, *extra: tuple[str, object]) -> dict[str, int]:
    before = counters(iface, *extra)
    iface.receive(memoryview(frame), now)
    assert unbalanced(iface.eth_stats, iface.arp.stats, iface.ip_stats) == []
    return diff(before, counters(iface, *extra))


def drain(iface: Interface) -> list[bytes]:
    return sent(iface)


def check_icmp_error(frame: bytes, *, t: int, code: int, quote: bytes, to: str = PEER_IP,
                     to_mac: str = PEER_MAC, rest: int = 0) -> None:
    """The frame is exactly one ICMP error from us to `to`, quoting exactly `quote`."""
    assert frame[0:6] == mac_bytes(to_mac)
    assert frame[6:12] == mac_bytes(OUR_MAC)
    assert frame[12:14] == b"\x08\x00"
    ip = frame[14:]
    total = struct.unpack_from("!H", ip, 2)[0]
    assert ip[0] == 0x45
    assert total == 20 + 8 + len(quote)
    assert struct.unpack_from("!H", ip, 6)[0] == 0  # no DF, not a fragment
    assert (ip[8], ip[9]) == (64, 1)
    assert ip[12:16] == IPv4Address(OUR_IP).packed
    assert ip[16:20] == IPv4Address(to).packed
    assert csum(ip[:20]) == 0
    assert ip[20:total] == icmp(t, code, rest, quote)  # type, code, checksum, rest and quote, byte for byte
    assert all(b == 0 for b in ip[total:])  # only Ethernet padding follows


# == generation =========================================================================================
def test_protocol_unreachable_on_fast_path_quotes_header_and_8_bytes() -> None:
    iface = make_iface()
    pkt = ipv4(PEER_IP, OUR_IP, PROTO, bytes(range(40)))
    d = feed(iface, eth(pkt))
    assert d == {"eth.rx_frames": 1, "ip.rx_packets": 1, "ip.rx_delivered": 1, "ip.rx_unknown_protocol": 1,
                 "icmp.tx_dest_unreachable": 1, "ip.tx_packets": 1, "eth.tx_frames": 1}
    [out] = drain(iface)
    check_icmp_error(out, t=3, code=2, quote=pkt[:548])


def test_protocol_unreachable_for_reassembled_datagram_quotes_the_whole_header() -> None:
    iface = make_iface()
    data = bytes(range(48))
    f1 = ipv4(PEER_IP, OUR_IP, PROTO, data[:24], flags_frag=0x2000, ident=0x4242)
    f2 = ipv4(PEER_IP, OUR_IP, PROTO, data[24:], flags_frag=3, ident=0x4242)
    feed(iface, eth(f2))
    assert sent(iface) == []
    d = feed(iface, eth(f1))
    assert d["ip.rx_reassembled"] == 1
    assert d["icmp.tx_dest_unreachable"] == 1
    [out] = drain(iface)
    whole = ipv4(PEER_IP, OUR_IP, PROTO, data, ident=0x4242)  # MF and offset cleared, total 68
    check_icmp_error(out, t=3, code=2, quote=whole[:548])


def test_port_unreachable_from_udp_quotes_udp_header() -> None:
    iface = make_iface()
    udp = UdpLayer(iface, random.Random(3))
    pkt = ipv4(PEER_IP, OUR_IP, 17, udp_dgram(PEER_IP, OUR_IP, 40000, 9, b"is anyone listening?"))
    d = feed(iface, eth(pkt), 1.0, ("udp", udp.stats))
    assert d == {"eth.rx_frames": 1, "ip.rx_packets": 1, "ip.rx_delivered": 1, "udp.rx_datagrams": 1,
                 "udp.rx_no_port": 1, "icmp.tx_dest_unreachable": 1, "ip.tx_packets": 1, "eth.tx_frames": 1}
    [out] = drain(iface)
    check_icmp_error(out, t=3, code=3, quote=pkt[:548])


@pytest.mark.parametrize(("dst", "dst_mac"), [("255.255.255.255", BCAST_MAC), (SUBNET_BCAST, BCAST_MAC),
                                              (SUBNET_BCAST, OUR_MAC), ("224.0.0.1", "01:00:5e:00:00:01")])
def test_udp_to_broadcast_without_port_is_silent(dst: str, dst_mac: str) -> None:
    iface = make_iface()
    udp = UdpLayer(iface, random.Random(3))
    pkt = ipv4(PEER_IP, dst, 17, udp_dgram(PEER_IP, dst, 68, 67, b"x"))
    d = feed(iface, eth(pkt, dst=dst_mac), 1.0, ("udp", udp.stats))
    assert d == {"eth.rx_frames": 1, "ip.rx_packets": 1, "ip.rx_delivered": 1, "udp.rx_datagrams": 1,
                 "udp.rx_broadcast_no_port": 1}
    assert sent(iface) == []


def test_time_exceeded_on_reassembly_timeout_after_30_s() -> None:
    iface = make_iface()
    first = ipv4(PEER_IP, OUR_IP, 17, bytes(range(100, 132)), flags_frag=0x2000, ident=9)
    third = ipv4(PEER_IP, OUR_IP, 17, bytes(16), flags_frag=8, ident=9)  # offset 64: a hole at 32..64
    feed(iface, eth(third), now=2.0)
    feed(iface, eth(first), now=2.5)
    assert iface.poll_at() == 32.0  # 30 s after the FIRST fragment that arrived, never extended
    before = counters(iface)
    iface.handle_timeout(31.999)
    assert sent(iface) == []
    iface.handle_timeout(32.0)
    assert diff(before, counters(iface)) == {"ip.reassembly_timeouts": 1, "frag.timeouts": 1,
                                             "icmp.tx_time_exceeded": 1, "ip.tx_packets": 1,
                                             "eth.tx_frames": 1}
    [out] = drain(iface)
    check_icmp_error(out, t=11, code=1, quote=first[:548])  # the offset-0 header as received (MF set)
    assert iface.reassembler is not None
    assert iface.reassembler.memory == 0
    iface.handle_timeout(100.0)
    assert sent(iface) == []  # once


def test_no_time_exceeded_without_the_first_fragment() -> None:
    iface = make_iface()
    feed(iface, eth(ipv4(PEER_IP, OUR_IP, 17, bytes(16), flags_frag=0x2000 | 2, ident=9)), now=1.0)
    feed(iface, eth(ipv4(PEER_IP, OUR_IP, 17, bytes(5), flags_frag=4, ident=9)), now=1.0)
    before = counters(iface)
    iface.handle_timeout(31.0)
    # No quote, no ICMP attempt. (ip.reassembly_timeouts counts only queues with an offset-0 fragment.)
    assert diff(before, counters(iface)) == {"frag.timeouts": 1}
    assert sent(iface) == []


@pytest.mark.parametrize(("dst", "dst_mac"), [("255.255.255.255", BCAST_MAC), (SUBNET_BCAST, BCAST_MAC),
                                              ("224.0.0.1", "01:00:5e:00:00:01")])
def test_no_time_exceeded_for_fragments_sent_to_broadcast(dst: str, dst_mac: str) -> None:
    iface = make_iface()
    feed(iface, eth(ipv4(PEER_IP, dst, 17, bytes(16), flags_frag=0x2000), dst=dst_mac), now=1.0)
    before = counters(iface)
    iface.handle_timeout(31.0)
    assert diff(before, counters(iface)) == {"ip.reassembly_timeouts": 1, "frag.timeouts": 1,
                                             "icmp.tx_suppressed": 1}
    assert sent(iface) == []


def test_no_time_exceeded_about_a_fragmented_icmp_error() -> None:
    iface = make_iface()
    err = icmp(3, 1, 0, ipv4(OUR_IP, FAR, 17, bytes(8)))  # 36 bytes: an error message, in pieces
    feed(iface, eth(ipv4(PEER_IP, OUR_IP, 1, err[:16], flags_frag=0x2000, ident=5)), now=1.0)
    before = counters(iface)
    iface.handle_timeout(31.0)
    assert diff(before, counters(iface)) == {"ip.reassembly_timeouts": 1, "frag.timeouts": 1,
                                             "icmp.tx_suppressed": 1}
    assert sent(iface) == []


def test_time_exceeded_about_a_fragmented_echo_request() -> None:
    iface = make_iface()
    echo = icmp(8, 0, 0x00010001, bytes(56))
    first = ipv4(PEER_IP, OUR_IP, 1, echo[:32], flags_frag=0x2000, ident=5)
    feed(iface, eth(first), now=1.0)
    iface.handle_timeout(31.0)
    assert iface.icmp_stats.tx_time_exceeded == 1
    [out] = drain(iface)
    check_icmp_error(out, t=11, code=1, quote=first[:548])  # an echo request is not an error: answered


@pytest.mark.parametrize(("dst", "dst_mac"), [("255.255.255.255", BCAST_MAC), (SUBNET_BCAST, BCAST_MAC),
                                              (SUBNET_BCAST, OUR_MAC), ("224.0.0.1", "01:00:5e:00:00:01"),
                                              ("224.0.0.1", OUR_MAC)])
def test_no_protocol_unreachable_for_broadcast_or_multicast(dst: str, dst_mac: str) -> None:
    iface = make_iface()
    d = feed(iface, eth(ipv4(PEER_IP, dst, PROTO, bytes(8)), dst=dst_mac))
    assert d == {"eth.rx_frames": 1, "ip.rx_packets": 1, "ip.rx_delivered": 1, "ip.rx_unknown_protocol": 1,
                 "icmp.tx_suppressed": 1}
    assert sent(iface) == []


@pytest.mark.parametrize("dst_mac", [BCAST_MAC, "01:00:5e:00:00:01"])
def test_unicast_datagram_in_link_broadcast_never_answered(dst_mac: str) -> None:
    iface = make_iface()
    d = feed(iface, eth(ipv4(PEER_IP, OUR_IP, PROTO, bytes(8)), dst=dst_mac))
    assert d == {"eth.rx_frames": 1, "ip.rx_packets": 1, "ip.rx_unicast_in_l2_broadcast": 1}
    assert sent(iface) == []


@pytest.mark.parametrize("src", ["0.0.0.0", "0.1.2.3", "127.0.0.1", "224.0.0.5", "239.1.1.1", "240.0.0.1",
                                 "255.255.255.255", SUBNET_BCAST])
def test_martian_sources_dropped_on_input_before_any_error(src: str) -> None:
    iface = make_iface()
    d = feed(iface, eth(ipv4(src, OUR_IP, PROTO, bytes(8))))
    # 0.1.2.3 is not rejected on input (Linux accepts 0/8 sources to a host) but never gets an answer.
    if src == "0.1.2.3":
        assert d == {"eth.rx_frames": 1, "ip.rx_packets": 1, "ip.rx_delivered": 1,
                     "ip.rx_unknown_protocol": 1, "icmp.tx_suppressed": 1}
    else:
        assert d == {"eth.rx_frames": 1, "ip.rx_packets": 1, "ip.rx_martian_source": 1}
    assert sent(iface) == []


def _accepted(src: str, proto: int, payload: bytes, *, flags_frag: int = 0, dst: str = OUR_IP) -> Accepted:
    pkt = memoryview(ipv4(src, dst, proto, payload, flags_frag=flags_frag))
    return Accepted(ip_int(src), ip_int(dst), proto, pkt[20:], pkt, False)


@pytest.mark.parametrize("src", ["0.0.0.0", "0.1.2.3", "127.0.0.1", "127.9.9.9", "224.0.0.5", "239.1.1.1",
                                 "240.0.0.1", "255.255.255.255", SUBNET_BCAST])
def test_send_icmp_error_refuses_sources_that_are_not_one_host(src: str) -> None:
    iface = make_iface()
    before = counters(iface)
    assert iface.send_icmp_error(_accepted(src, PROTO, bytes(8)), 3, 2, 0, 1.0) is False
    assert diff(before, counters(iface)) == {"icmp.tx_suppressed": 1}
    assert sent(iface) == []


@pytest.mark.parametrize("t", [0, 3, 4, 5, 11, 12, 19, 40, 255])
def test_send_icmp_error_never_about_an_icmp_error(t: int) -> None:
    iface = make_iface()
    msg = icmp(t, 0, 0, bytes(28))
    before = counters(iface)
    ok = iface.send_icmp_error(_accepted(PEER_IP, 1, msg), 3, 2, 0, 1.0)
    if t == 0:  # an echo reply is a query, not an error: an error about it may go
        assert ok is True
        assert diff(before, counters(iface))["icmp.tx_dest_unreachable"] == 1
    else:  # 3, 4, 5, 11, 12 and types above 18 (unknown: treated as errors, like Linux)
        assert ok is False
        assert diff(before, counters(iface)) == {"icmp.tx_suppressed": 1}
        assert sent(iface) == []


@pytest.mark.parametrize(("flags_frag", "allowed"), [(0x0001, False), (0x2001, False), (0x1FFF, False),
                                                     (0x2000, True), (0x4000, True)])
def test_send_icmp_error_never_about_a_non_initial_fragment(flags_frag: int, allowed: bool) -> None:
    iface = make_iface()
    before = counters(iface)
    ok = iface.send_icmp_error(_accepted(PEER_IP, 17, bytes(16), flags_frag=flags_frag), 3, 3, 0, 1.0)
    assert ok is allowed
    if allowed:
        assert diff(before, counters(iface))["icmp.tx_dest_unreachable"] == 1
        assert len(sent(iface)) == 1
    else:
        assert diff(before, counters(iface)) == {"icmp.tx_suppressed": 1}
        assert sent(iface) == []


def test_send_icmp_error_about_a_broadcast_datagram_suppressed() -> None:
    iface = make_iface()
    pkt = memoryview(ipv4(PEER_IP, OUR_IP, PROTO, bytes(8)))
    a = Accepted(ip_int(PEER_IP), ip_int(OUR_IP), PROTO, pkt[20:], pkt, True)
    assert iface.send_icmp_error(a, 3, 2, 0, 1.0) is False
    assert iface.icmp_stats.tx_suppressed == 1
    assert sent(iface) == []


# -- rate limit ----------------------------------------------------------------------------------------
def _unreachable(src: str = PEER_IP, n: int = 0) -> bytes:
    return eth(ipv4(src, OUR_IP, PROTO, n.to_bytes(8, "big"), ident=n))


def test_rate_limit_per_destination_burst_6_then_1_per_second() -> None:
    iface = make_iface()
    for i in range(10):
        feed(iface, _unreachable(n=i), now=1.0)
    assert (iface.icmp_stats.tx_dest_unreachable, iface.icmp_stats.tx_rate_limited) == (6, 4)
    assert len(drain(iface)) == 6
    feed(iface, _unreachable(n=10), now=1.999)
    assert (iface.icmp_stats.tx_dest_unreachable, iface.icmp_stats.tx_rate_limited) == (6, 5)
    feed(iface, _unreachable(n=11), now=2.0)
    feed(iface, _unreachable(n=12), now=2.0)
    assert (iface.icmp_stats.tx_dest_unreachable, iface.icmp_stats.tx_rate_limited) == (7, 6)
    # Another destination has its own bucket.
    iface.arp.add_static(ip_int("198.18.0.9"), mac_bytes("02:00:00:00:00:09"))
    feed(iface, _unreachable("198.18.0.9", 13), now=2.0)
    assert (iface.icmp_stats.tx_dest_unreachable, iface.icmp_stats.tx_rate_limited) == (8, 6)
    # Idle time refills to the burst, never beyond it.
    for i in range(8):
        feed(iface, _unreachable(n=20 + i), now=100.0)
    assert (iface.icmp_stats.tx_dest_unreachable, iface.icmp_stats.tx_rate_limited) == (14, 8)
    assert iface.icmp_stats.tx_suppressed == 0
    assert len(drain(iface)) == 8


def test_rate_limit_global_burst_50_then_1000_per_second() -> None:
    iface = make_iface()
    hosts = [f"198.18.0.{10 + i}" for i in range(120)]
    for i, h in enumerate(hosts):
        iface.arp.add_static(ip_int(h), b"\x02\x00\x00\x00\x01" + bytes([i]))
    for i, h in enumerate(hosts[:60]):
        feed(iface, _unreachable(h, i), now=1.0)
    assert (iface.icmp_stats.tx_dest_unreachable, iface.icmp_stats.tx_rate_limited) == (50, 10)
    sent = drain(iface)
    assert [f[30:34] for f in sent] == [IPv4Address(h).packed for h in hosts[:50]]
    # 1/128 s later the global bucket holds 1000/128 = 7.8 tokens: 7 more errors, to fresh sources.
    for i, h in enumerate(hosts[60:80]):
        feed(iface, _unreachable(h, 100 + i), now=1.0 + 1 / 128)
    assert (iface.icmp_stats.tx_dest_unreachable, iface.icmp_stats.tx_rate_limited) == (57, 23)
    assert len(drain(iface)) == 7
    assert iface.icmp_stats.tx_suppressed == 0


def test_rate_limit_table_is_bounded() -> None:
    iface = make_iface(icmp_rate_table_size=16)
    for i in range(40):
        h = f"198.18.0.{10 + i}"
        iface.arp.add_static(ip_int(h), b"\x02\x00\x00\x00\x01" + bytes([i]))
        feed(iface, _unreachable(h, i), now=1.0 + i)
    assert len(iface.icmp_limiter) == 16
    assert iface.icmp_stats.tx_dest_unreachable == 40


# == reception (sans-I/O) ===============================================================================
class Errors:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int, int, str, int]] = []

    def __call__(self, t: int, code: int, rest: int, qdst: int, qport: int) -> None:
        self.calls.append((t, code, rest, str(IPv4Address(qdst)), qport))


def _sent_udp(iface: Interface, udp: UdpLayer, dst: str, size: int = 100, sport: int = 5000) -> bytes:
    udp.send(sport, ip_int(dst), 9999, bytes(size), 1.0)
    [f] = drain(iface)
    return f[14:]


def _error_frame(t: int, code: int, rest: int, quote: bytes, src: str = GATEWAY) -> bytes:
    return eth(ipv4(src, OUR_IP, 1, icmp(t, code, rest, quote)), src=GW_MAC)


@pytest.mark.parametrize(("t", "code", "rest", "counter"), [
    (3, 0, 0, "icmp.rx_dest_unreachable"), (3, 1, 0, "icmp.rx_dest_unreachable"),
    (3, 3, 0, "icmp.rx_dest_unreachable"), (3, 13, 0, "icmp.rx_dest_unreachable"),
    (11, 0, 0, "icmp.rx_time_exceeded"), (12, 0, 0x14000000, "icmp.rx_param_problem")])
def test_received_error_reaches_the_udp_binding(t: int, code: int, rest: int, counter: str) -> None:
    iface = make_iface()
    udp = UdpLayer(iface, random.Random(3))
    errs = Errors()
    udp.bind(5000, 0, lambda *a: None, errs)
    dgram = _sent_udp(iface, udp, FAR)
    d = feed(iface, _error_frame(t, code, rest, dgram[:28]), 2.0, ("udp", udp.stats))
    assert d == {"eth.rx_frames": 1, "ip.rx_packets": 1, "ip.rx_delivered": 1, "icmp.rx_messages": 1,
                 counter: 1, "udp.rx_icmp_errors": 1}
    assert errs.calls == [(t, code, rest, FAR, 9999)]
    assert sent(iface) == []
    assert iface.pmtu == {}


def test_reassembly_time_exceeded_never_reaches_the_udp_binding() -> None:
    iface = make_iface()
    udp = UdpLayer(iface, random.Random(3))
    errs = Errors()
    udp.bind(5000, 0, lambda *a: None, errs)
    dgram = _sent_udp(iface, udp, FAR)
    d = feed(iface, _error_frame(11, 1, 0, dgram[:28]), 2.0, ("udp", udp.stats))
    assert d == {"eth.rx_frames": 1, "ip.rx_packets": 1, "ip.rx_delivered": 1, "icmp.rx_messages": 1,
                 "icmp.rx_time_exceeded": 1, "icmp.rx_reassembly_timeout_ignored": 1}  # Linux: never
    assert errs.calls == []


def test_frag_needed_lowers_path_mtu_used_by_later_sends_and_expires() -> None:
    iface = make_iface(pmtu_expiry=600.0)
    udp = UdpLayer(iface, random.Random(3))
    errs = Errors()
    udp.bind(5000, 0, lambda *a: None, errs)
    sent = _sent_udp(iface, udp, FAR, size=1400)
    d = feed(iface, _error_frame(3, 4, 1000, sent[:28]), 2.0, ("udp", udp.stats))
    assert d == {"eth.rx_frames": 1, "ip.rx_packets": 1, "ip.rx_delivered": 1, "icmp.rx_messages": 1,
                 "icmp.rx_dest_unreachable": 1, "icmp.rx_frag_needed": 1, "udp.rx_icmp_errors": 1}
    assert errs.calls == [(3, 4, 1000, FAR, 9999)]
    assert iface.path_mtu(ip_int(FAR), 2.0) == 1000
    assert iface.path_mtu(ip_int(PEER_IP), 2.0) == 1500  # per destination
    udp.send(5000, ip_int(FAR), 9999, bytes(range(256)) * 5 + bytes(120), 3.0)  # 1428-byte datagram
    frags = drain(iface)
    assert [len(f) - 14 for f in frags] == [996, 452]  # 976 + 8-aligned, then the rest
    assert defragment([IP(f[14:]) for f in frags])[0][UDP].load == bytes(range(256)) * 5 + bytes(120)
    # A "too big" announcing a larger MTU never raises the estimate (RFC 1191 6.1).
    feed(iface, _error_frame(3, 4, 1400, sent[:28]), 4.0)
    assert iface.path_mtu(ip_int(FAR), 4.0) == 1000
    feed(iface, _error_frame(3, 4, 40, sent[:28]), 5.0)  # below Linux's min_pmtu: clamped to 552
    assert iface.path_mtu(ip_int(FAR), 5.0) == 552
    assert iface.path_mtu(ip_int(FAR), 604.99) == 552
    assert iface.path_mtu(ip_int(FAR), 605.0) == 1500  # expired 600 s after it was learnt
    assert iface.pmtu == {}


def test_frag_needed_from_an_old_router_uses_the_plateau_table() -> None:
    iface = make_iface()
    udp = UdpLayer(iface, random.Random(3))
    sent = _sent_udp(iface, udp, FAR, size=1400)  # total length 1428 quoted
    feed(iface, _error_frame(3, 4, 0, sent[:28]))
    assert iface.path_mtu(ip_int(FAR), 1.0) == 1006


def test_path_mtu_table_is_bounded() -> None:
    iface = make_iface(pmtu_table_size=4)
    udp = UdpLayer(iface, random.Random(3))
    for i in range(10):
        sent = _sent_udp(iface, udp, f"192.0.2.{i + 1}")
        feed(iface, _error_frame(3, 4, 600 + i, sent[:28]), now=1.0 + i)
    assert len(iface.pmtu) == 4
    assert {str(IPv4Address(k)): v[0] for k, v in iface.pmtu.items()} == {
        "192.0.2.7": 606, "192.0.2.8": 607, "192.0.2.9": 608, "192.0.2.10": 609}


def test_forged_error_quoting_someone_else_is_ignored_and_counted() -> None:
    iface = make_iface()
    udp = UdpLayer(iface, random.Random(3))
    errs = Errors()
    udp.bind(5000, 0, lambda *a: None, errs)
    forged = ipv4("198.18.0.66", FAR, 17, udp_dgram("198.18.0.66", FAR, 5000, 9999, bytes(10)))
    for t, code, rest in ((3, 3, 0), (3, 4, 576), (11, 0, 0), (12, 0, 0)):
        d = feed(iface, _error_frame(t, code, rest, forged[:28]))
        assert d["icmp.rx_error_bad_quote"] == 1
    assert errs.calls == []
    assert iface.pmtu == {}
    assert udp.stats.rx_icmp_errors == 0
    assert sent(iface) == []


@pytest.mark.parametrize("n", range(28))
def test_error_with_a_quote_too_short_is_ignored_and_counted(n: int) -> None:
    iface = make_iface()
    udp = UdpLayer(iface, random.Random(3))
    errs = Errors()
    udp.bind(5000, 0, lambda *a: None, errs)
    sent = _sent_udp(iface, udp, FAR, size=1400)
    d = feed(iface, _error_frame(3, 4, 576, sent[:n]))
    assert d == {"eth.rx_frames": 1, "ip.rx_packets": 1, "ip.rx_delivered": 1, "icmp.rx_messages": 1,
                 "icmp.rx_dest_unreachable": 1, "icmp.rx_error_bad_quote": 1}
    assert errs.calls == []
    assert iface.pmtu == {}


def test_error_for_an_unbound_port_or_another_peer_is_not_delivered() -> None:
    iface = make_iface()
    udp = UdpLayer(iface, random.Random(3))
    errs = Errors()
    udp.bind(5000, 0, lambda *a: None, errs, remote=(ip_int("192.0.2.99"), 9999))  # connected elsewhere
    sent = _sent_udp(iface, udp, FAR)  # from port 5000, to FAR:9999
    other = _sent_udp(iface, udp, FAR, sport=6000)
    feed(iface, _error_frame(3, 3, 0, sent[:28]), 1.0, ("udp", udp.stats))
    feed(iface, _error_frame(3, 3, 0, other[:28]), 1.0, ("udp", udp.stats))
    assert errs.calls == []
    assert udp.stats.rx_icmp_errors == 0
    assert iface.icmp_stats.rx_dest_unreachable == 2


def test_error_about_a_non_initial_fragment_updates_pmtu_only() -> None:
    iface = make_iface()
    udp = UdpLayer(iface, random.Random(3))
    errs = Errors()
    udp.bind(5000, 0, lambda *a: None, errs)
    data = bytearray(3000)
    data[1472:1480] = struct.pack("!HHHH", 5000, 9999, 8, 0)  # a fake "UDP header" starts fragment 2
    udp.send(5000, ip_int(FAR), 9999, data, 1.0)
    frags = drain(iface)
    assert len(frags) == 3
    second = frags[1][14:]  # its first 8 data bytes are payload, not a UDP header
    assert second[20:24] == struct.pack("!HH", 5000, 9999)
    feed(iface, _error_frame(3, 4, 1200, second[:28]), 2.0)
    assert iface.path_mtu(ip_int(FAR), 2.0) == 1200
    assert errs.calls == []
    assert udp.stats.rx_icmp_errors == 0


# == reception, end to end: stacks on a hub ============================================================
A, B = "198.18.0.1", "198.18.0.2"
ROUTER, ROUTER_MAC = "198.18.0.254", "02:00:00:00:00:fe"
SILENT = "198.18.0.99"  # its frames go to the raw "router" port


async def settle(cond: Any = None, rounds: int = 100) -> None:
    for _ in range(rounds):
        if cond is not None and cond():
            return
        await asyncio.sleep(0)
    if cond is not None:
        assert cond()


class Net:
    def __init__(self, hub: Hub, clock: VirtualClock, a: Stack, b: Stack, frames: list[bytes]) -> None:
        self.hub, self.clock, self.a, self.b, self.frames = hub, clock, a, b, frames
        self.router = hub.port(ROUTER_MAC)

    def to_silent(self) -> list[bytes]:
        """IPv4 packets A sent towards SILENT since the last call."""
        out = [f[14:] for f in self.frames if f[12:14] == b"\x08\x00" and f[30:34] == IPv4Address(SILENT).packed]
        self.frames.clear()
        return out

    def inject(self, t: int, code: int, rest: int, quote: bytes, src: str = ROUTER) -> None:
        pkt = ipv4(src, A, 1, icmp(t, code, rest, quote))
        self.router.transmit((eth(pkt, dst=str(self.a.mac), src=ROUTER_MAC),))


@pytest.fixture
async def net() -> AsyncIterator[Net]:
    hub = Hub()
    clock = VirtualClock(50.0)
    frames: list[bytes] = []
    sniff = hub.port()
    sniff.attach(lambda f: frames.append(bytes(f)))
    a = await Stack.connect(hub.port(), ipv4=f"{A}/24", clock=clock, rng=random.Random(1))
    b = await Stack.connect(hub.port(), ipv4=f"{B}/24", clock=clock, rng=random.Random(2))
    a.core.arp.add_static(ip_int(SILENT), mac_bytes(ROUTER_MAC))
    n = Net(hub, clock, a, b, frames)
    await settle()
    frames.clear()
    yield n
    await a.disconnect()
    await b.disconnect()


@pytest.mark.parametrize(("t", "code", "exc_type", "err"), [
    (3, 0, OSError, errno.ENETUNREACH), (3, 1, OSError, errno.EHOSTUNREACH),
    (3, 3, ConnectionRefusedError, errno.ECONNREFUSED), (3, 4, OSError, errno.EMSGSIZE),
    (11, 0, OSError, errno.EHOSTUNREACH), (12, 0, OSError, errno.EPROTO)])
async def test_error_received_by_the_sending_endpoint(net: Net, t: int, code: int, exc_type: type,
                                                      err: int) -> None:
    ta, pa = await net.a.create_datagram_endpoint(Recorder, (A, 4000))
    tb, pb = await net.a.create_datagram_endpoint(Recorder, (A, 4001))  # a bystander
    ta.sendto(b"query", (SILENT, 9999))
    await settle(lambda: len(net.frames) >= 1)
    [sent] = net.to_silent()
    net.inject(t, code, 576 if code == 4 else 0, sent[:28])
    p = cast(Recorder, pa)
    await settle(lambda: len(p.errors) == 1)
    assert type(p.errors[0]) is exc_type
    assert cast(OSError, p.errors[0]).errno == err
    assert cast(Recorder, pb).errors == []
    st = net.a.stats()
    assert st["udp"]["rx_icmp_errors"] == 1
    key = {3: "rx_dest_unreachable", 11: "rx_time_exceeded", 12: "rx_param_problem"}[t]
    assert st["icmp"][key] == 1
    assert unbalanced(net.a.core.eth_stats, net.a.core.arp.stats, net.a.core.ip_stats) == []
    ta.close()
    tb.close()


async def test_real_port_unreachable_between_stacks(net: Net) -> None:
    t, p = await net.a.create_datagram_endpoint(Recorder, remote_addr=(B, 9))
    t.sendto(b"nobody")
    rec = cast(Recorder, p)
    await settle(lambda: len(rec.errors) == 1)
    assert isinstance(rec.errors[0], ConnectionRefusedError)
    # The error on the wire quotes A's datagram: header + 8 bytes (the UDP header).
    sent = [f for f in net.frames if f[12:14] == b"\x08\x00" and f[23] == 17]
    errs = [f for f in net.frames if f[12:14] == b"\x08\x00" and f[23] == 1]
    assert len(sent) == len(errs) == 1
    assert errs[0][34:36] == b"\x03\x03"
    assert errs[0][42:42 + 28] == sent[0][14:42]
    t.close()


async def test_frag_needed_sets_ipv4_mtu_and_later_datagrams_are_fragmented(net: Net) -> None:
    ta, _pa = await net.a.create_datagram_endpoint(Recorder, (A, 4000))
    data = bytes(i * 13 & 0xFF for i in range(1400))
    ta.sendto(data, (SILENT, 9999))
    await settle(lambda: len(net.frames) >= 1)
    [sent] = net.to_silent()
    assert len(sent) == 1428
    assert net.a.ipv4.mtu(SILENT) == 1500
    net.inject(3, 4, 1006, sent[:28])
    await settle(lambda: net.a.ipv4.mtu(SILENT) == 1006)
    assert net.a.ipv4.mtu(B) == 1500
    assert net.a.ipv4.mtu() == 1500
    ta.sendto(data, (SILENT, 9999))
    await settle(lambda: len(net.frames) >= 2)
    frags = net.to_silent()
    assert [len(f) for f in frags] == [1004, 444]
    assert all(len(f) <= 1006 for f in frags)
    assert defragment([IP(f) for f in frags])[0][Raw].load == data
    # The entry expires (10 minutes): full-size datagrams again.
    net.clock.advance(600.0)
    assert net.a.ipv4.mtu(SILENT) == 1500
    ta.sendto(data, (SILENT, 9999))
    await settle(lambda: len(net.frames) >= 1)
    assert [len(f) for f in net.to_silent()] == [1428]
    ta.close()


async def test_forged_errors_never_reach_the_endpoint(net: Net) -> None:
    ta, pa = await net.a.create_datagram_endpoint(Recorder, (A, 4000))
    ta.sendto(b"query", (SILENT, 9999))
    await settle(lambda: len(net.frames) >= 1)
    [sent] = net.to_silent()
    forged = bytearray(sent[:28])
    forged[12:16] = IPv4Address(B).packed  # "A sent it" is what the attacker must guess right
    net.inject(3, 3, 0, bytes(forged))
    net.inject(3, 4, 100, bytes(forged))
    net.inject(3, 3, 0, sent[:27])  # one byte short of header + 8
    await settle(lambda: net.a.stats()["icmp"]["rx_error_bad_quote"] == 3)
    await settle()
    assert cast(Recorder, pa).errors == []
    assert net.a.stats()["udp"]["rx_icmp_errors"] == 0
    assert net.a.ipv4.mtu(SILENT) == 1500
    ta.close()
