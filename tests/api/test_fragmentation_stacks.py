"""Fragmentation on output and reassembly on input, end to end (issue 5).

Unit level: the Interface splits a datagram into fragments that each fit the MTU, 8-byte-aligned offsets, MF on
all but the last, one ident, DF clear; DF requested and too big raises WouldFragmentError; > 65535 bytes
raises MessageTooLongError. Stack level: two stacks on a Hub whose ports have MTU 68..9000 (hypothesis)
exchange UDP datagrams and pings that are fragmented and reassembled byte-identical; scapy's fragment() and
defragment() are the independent oracles in both directions; reassembly timeout and a fragment flood run
with a VirtualClock.
"""

from __future__ import annotations

import asyncio
import errno
import random
import struct
from collections.abc import Callable
from ipaddress import IPv4Address
from typing import Any, cast

import pytest
import testlib
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, UDP, defragment, fragment
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from testlib import Recorder, csum, ip_int, mac_bytes, sent, settle

import tcpip
from tcpip import Stack
from tcpip.core.interface import SENT, Interface
from tcpip.core.stats import unbalanced
from tcpip.netif.clock import VirtualClock
from tcpip.netif.hub import Hub
from tcpip.wire.mac import MacAddress

A, B = "198.18.0.1", "198.18.0.2"
RAW_IP, RAW_MAC = "198.18.0.50", "02:00:00:00:00:50"
OUR_MAC, PEER_MAC = "02:00:00:00:00:02", "02:00:00:00:00:01"


def pattern(n: int, seed: int = 0) -> bytes:
    return bytes((i * 31 + seed) & 0xFF for i in range(n))


def room(mtu: int) -> int:
    """Data bytes per fragment at this MTU (20-byte header, 8-byte aligned)."""
    return (mtu - 20) & ~7


def check_fragments(packets: list[bytes], mtu: int, payload_len: int) -> None:
    """Fragments of one datagram, in order: every RFC 791 property the output path must have."""
    assert len(packets) == -(-payload_len // room(mtu)) if payload_len + 20 > mtu else 1
    ident = struct.unpack_from("!H", packets[0], 4)[0]
    expect_off = 0
    for k, p in enumerate(packets):
        total, pid, ff = struct.unpack_from("!HHH", p, 2)
        assert p[0] == 0x45
        assert total == len(p) <= mtu
        assert pid == ident
        assert not ff & 0x4000  # DF clear
        assert not ff & 0x8000
        last = k == len(packets) - 1
        assert bool(ff & 0x2000) is (not last and len(packets) > 1)
        assert (ff & 0x1FFF) * 8 == expect_off
        if not last:
            assert (total - 20) % 8 == 0
            assert total - 20 == room(mtu)  # as full as the MTU allows
        assert csum(p[:20]) == 0
        expect_off += total - 20
    assert expect_off == payload_len


# == Interface (sans-I/O) ===========================================================================
def make_iface(mtu: int) -> Interface:
    return testlib.make_iface(mac=OUR_MAC, address=B, mtu=mtu, seed=3, static={A: PEER_MAC})


def drain_ip(iface: Interface) -> list[bytes]:
    out = []
    for raw in sent(iface):
        assert raw[:14] == mac_bytes(PEER_MAC) + mac_bytes(OUR_MAC) + b"\x08\x00"
        total = struct.unpack_from("!H", raw, 16)[0]
        assert len(raw) == max(60, 14 + total)
        out.append(raw[14:14 + total])
    return out


@pytest.mark.parametrize("mtu", [68, 69, 76, 576, 1006, 1500, 4352, 9000])
@pytest.mark.parametrize("size", [0, 1, 47, 48, 49, 1480, 1481, 5000])
def test_interface_send_fragments_to_the_mtu(mtu: int, size: int) -> None:
    iface = make_iface(mtu)
    data = pattern(size)
    parts = (data[:size // 3], memoryview(data)[size // 3:], b"")  # scatter-gather, views not copied
    assert iface.send(ip_int(A), 253, parts, 1.0) == SENT
    pkts = drain_ip(iface)
    check_fragments(pkts, mtu, size)
    assert iface.ip_stats.tx_fragments == (len(pkts) if len(pkts) > 1 else 0)
    assert iface.ip_stats.tx_packets == 1
    whole = defragment([IP(p) for p in pkts])
    assert len(whole) == 1
    assert bytes(whole[0].payload) == data
    assert (whole[0].proto, whole[0].src, whole[0].dst) == (253, B, A)


@settings(max_examples=60, deadline=None)
@given(mtu=st.integers(68, 9000), size=st.integers(0, 30000))
def test_interface_fragments_any_mtu_any_size(mtu: int, size: int) -> None:
    iface = make_iface(mtu)
    data = pattern(size, mtu)
    iface.send(ip_int(A), 17, (data,), 1.0)
    pkts = drain_ip(iface)
    check_fragments(pkts, mtu, size)
    assert b"".join(p[20:] for p in pkts) == data


def test_dont_fragment_too_big_raises_and_sends_nothing() -> None:
    iface = make_iface(576)
    with pytest.raises(tcpip.WouldFragmentError):
        iface.send(ip_int(A), 17, (bytes(557),), 1.0, dont_frag=True)
    assert sent(iface) == []
    assert iface.ip_stats.tx_would_fragment == 1
    assert iface.ip_stats.tx_packets == 0
    # Exactly the MTU: goes whole, with DF set.
    iface.send(ip_int(A), 17, (bytes(556),), 1.0, dont_frag=True)
    [p] = drain_ip(iface)
    assert len(p) == 576
    assert struct.unpack_from("!H", p, 6)[0] == 0x4000


def test_message_too_long_raises() -> None:
    iface = make_iface(1500)
    with pytest.raises(tcpip.MessageTooLongError):
        iface.send(ip_int(A), 17, (bytes(40000), bytes(25516)), 1.0)  # 65516 + 20 = 65536
    assert sent(iface) == []
    assert iface.ip_stats.tx_too_long == 1
    iface.send(ip_int(A), 17, (bytes(40000), bytes(25515)), 1.0)  # exactly 65535: 45 fragments
    pkts = drain_ip(iface)
    check_fragments(pkts, 1500, 65515)
    assert len(pkts) == 45


def _prebuilt(iface: Interface, dst: str, *, df: bool, transport: bytes) -> memoryview:
    """A frame as Ipv4.allocate_frame makes it: Ethernet header + IPv4 header, transport header after."""
    buf = bytearray(14 + iface.config.mtu)
    buf[0:14] = mac_bytes(PEER_MAC) + iface.mac + b"\x08\x00"
    struct.pack_into("!BBHHHBBH4s4s", buf, 14, 0x45, 0, 0, 0, 0x4000 if df else 0, 64, 17, 0,
                     IPv4Address(B).packed, IPv4Address(dst).packed)
    buf[34:34 + len(transport)] = transport
    return memoryview(buf)[:34 + len(transport)]


def test_send_prebuilt_fragments_or_raises() -> None:
    iface = make_iface(1006)
    data = pattern(3000)
    hdr = struct.pack("!HHHH", 1000, 2000, 8 + len(data), 0)
    with pytest.raises(tcpip.WouldFragmentError):
        iface.send_prebuilt(_prebuilt(iface, A, df=True, transport=hdr), (data,), 1.0)
    assert sent(iface) == []
    with pytest.raises(tcpip.MessageTooLongError):
        iface.send_prebuilt(_prebuilt(iface, A, df=False, transport=hdr), (bytes(65508),), 1.0)
    assert sent(iface) == []
    assert (iface.ip_stats.tx_would_fragment, iface.ip_stats.tx_too_long) == (1, 1)
    iface.send_prebuilt(_prebuilt(iface, A, df=False, transport=hdr), (data,), 1.0)
    pkts = drain_ip(iface)
    check_fragments(pkts, 1006, 3008)
    assert b"".join(p[20:] for p in pkts) == hdr + data


# == stacks on a hub =================================================================================
class RawHost:
    """A scapy-driven host on the hub: answers ARP for RAW_IP, records every frame, sends crafted ones."""

    def __init__(self, hub: Hub) -> None:
        self.port = hub.port(RAW_MAC)
        self.frames: list[bytes] = []
        self.port.attach(self._rx)

    def _rx(self, frame: memoryview) -> None:
        f = bytes(frame)
        self.frames.append(f)
        if f[12:14] == b"\x08\x06" and f[20:22] == b"\x00\x01" and f[38:42] == IPv4Address(RAW_IP).packed:
            reply = (f[6:12] + mac_bytes(RAW_MAC) + b"\x08\x06" + f[14:20] + b"\x00\x02" + mac_bytes(RAW_MAC)
                     + IPv4Address(RAW_IP).packed + f[22:32])
            self.port.transmit((reply + bytes(60 - len(reply)),))

    def send(self, pkt: Any, dst_mac: MacAddress) -> None:
        self.port.transmit((bytes(Ether(dst=str(dst_mac), src=RAW_MAC) / pkt),))

    def ip_packets(self, src: str | None = None) -> list[Any]:
        out = [IP(f[14:14 + struct.unpack_from("!H", f, 16)[0]]) for f in self.frames  # no padding
               if f[12:14] == b"\x08\x00"]
        return [p for p in out if src is None or p.src == src]


async def _two_stacks(hub: Hub, clock: VirtualClock) -> tuple[Stack, Stack]:
    a = await Stack.connect(hub.port(), ipv4=f"{A}/24", clock=clock, rng=random.Random(1))
    b = await Stack.connect(hub.port(), ipv4=f"{B}/24", clock=clock, rng=random.Random(2))
    await settle()
    return a, b


def _balanced(*stacks: Stack) -> None:
    for s in stacks:
        assert unbalanced(s.core.eth_stats, s.core.arp.stats, s.core.ip_stats) == []


async def _exchange(mtu: int, size: int, ping_size: int) -> None:
    hub = Hub(mtu=mtu)
    clock = VirtualClock(10.0)
    raw = RawHost(hub)
    a, b = await _two_stacks(hub, clock)
    try:
        ta, pa = await a.create_datagram_endpoint(Recorder, (A, 4000))
        tb, pb = await b.create_datagram_endpoint(Recorder, (B, 5000))
        ra, rb = cast(Recorder, pa), cast(Recorder, pb)
        there, back = pattern(size, 1), pattern(size, 2)[::-1]
        ta.sendto(there, (B, 5000))
        await settle(lambda: len(rb.got) == 1)
        tb.sendto(back, (A, 4000))
        await settle(lambda: len(ra.got) == 1)
        assert rb.got == [(there, (A, 4000))]
        assert ra.got == [(back, (B, 5000))]
        assert ra.errors == rb.errors == []
        rtts = await a.ping(B, size=ping_size, timeout=5.0)
        assert rtts[0] is not None
        await settle()
        # On the wire: every frame within the MTU, and fragments exactly where needed.
        assert all(len(f) <= 14 + mtu for f in raw.frames)
        pkts = raw.ip_packets()
        frags = [p for p in pkts if p.flags.MF or p.frag]
        udp_frags = -(-(8 + size) // room(mtu)) if 28 + size > mtu else 0
        icmp_frags = -(-(8 + ping_size) // room(mtu)) if 28 + ping_size > mtu else 0
        assert len(frags) == 2 * udp_frags + 2 * icmp_frags
        assert a.stats()["ipv4"]["tx_fragments"] == udp_frags + icmp_frags
        assert b.stats()["ipv4"]["rx_reassembled"] == (1 if udp_frags else 0) + (1 if icmp_frags else 0)
        # The echo reply carries the request's data byte for byte (scapy reassembles both).
        whole = defragment(pkts)
        req = [p for p in whole if ICMP in p and p[ICMP].type == 8]
        rep = [p for p in whole if ICMP in p and p[ICMP].type == 0]
        assert len(req) == len(rep) == 1
        assert bytes(rep[0][ICMP].payload) == bytes(req[0][ICMP].payload)
        assert len(bytes(rep[0][ICMP].payload)) == ping_size
        for s in (a, b):
            assert s.stats()["reassembly"]["memory"] == 0
        _balanced(a, b)
        ta.close()
        tb.close()
    finally:
        await a.disconnect()
        await b.disconnect()


@st.composite
def mtu_and_sizes(draw: Callable[..., Any]) -> tuple[int, int, int]:
    mtu = draw(st.integers(68, 9000))
    cap = 64 * room(mtu) - 8  # the receiver holds at most 64 fragments per datagram
    size = draw(st.integers(0, min(cap, 65507)))
    ping = draw(st.integers(0, min(cap, 65507)))
    return mtu, size, ping


@settings(max_examples=60, deadline=None)
@given(mtu_and_sizes())
def test_two_stacks_exchange_fragmented_datagrams_at_any_mtu(case: tuple[int, int, int]) -> None:
    asyncio.run(_exchange(*case))


@pytest.mark.parametrize(("mtu", "size", "ping"), [(68, 3064, 3064), (1500, 65507, 4000), (9000, 65507, 65507),
                                                   (576, 0, 0), (1500, 1472, 1473)])
async def test_two_stacks_exchange_edge_cases(mtu: int, size: int, ping: int) -> None:
    await _exchange(mtu, size, ping)


async def test_scapy_fragments_reassembled_by_the_stack_and_ours_by_scapy() -> None:
    hub = Hub()
    clock = VirtualClock(10.0)
    raw = RawHost(hub)
    a, b = await _two_stacks(hub, clock)
    try:
        tb, pb = await b.create_datagram_endpoint(Recorder, (B, 5000))
        rb = cast(Recorder, pb)
        # scapy -> stack: 3 datagrams, fragmented by scapy, delivered in scrambled order.
        datas = [pattern(n, n) for n in (1473, 4000, 20000)]
        frags: list[Any] = []
        for i, d in enumerate(datas):
            frags += fragment(IP(src=RAW_IP, dst=B, id=0x700 + i) / UDP(sport=7777, dport=5000) / Raw(d),
                              fragsize=[1480, 512, 1000][i])
        random.Random(5).shuffle(frags)
        for f in frags:
            raw.send(f, b.mac)
        await settle(lambda: len(rb.got) == 3)
        assert sorted(rb.got) == sorted((d, (RAW_IP, 7777)) for d in datas)
        assert b.stats()["ipv4"]["rx_reassembled"] == 3
        # stack -> scapy: B's answers, fragmented by us, reassembled by scapy.
        raw.frames.clear()
        for i, d in enumerate(datas):
            tb.sendto(d[::-1], (RAW_IP, 8000 + i))
        await settle(lambda: len(raw.ip_packets(B)) >= 1 + 3 + 14)
        whole = defragment(raw.ip_packets(B))
        got = sorted((p[UDP].dport, bytes(p[UDP].payload)) for p in whole if UDP in p)
        assert got == sorted((8000 + i, d[::-1]) for i, d in enumerate(datas))
        for p in whole:  # checksums as scapy recomputes them over the reassembled datagram
            c = p[UDP].chksum
            del p[UDP].chksum
            assert IP(bytes(p))[UDP].chksum == c
        _balanced(a, b)
        tb.close()
    finally:
        await a.disconnect()
        await b.disconnect()


async def test_scapy_fragmented_ping_of_4000_bytes_answered_in_fragments() -> None:
    hub = Hub()
    clock = VirtualClock(10.0)
    raw = RawHost(hub)
    a, b = await _two_stacks(hub, clock)
    try:
        data = pattern(4000, 9)
        req = IP(src=RAW_IP, dst=B, id=0x4242) / ICMP(type=8, id=0x1234, seq=7) / Raw(data)
        for f in reversed(fragment(req, fragsize=1480)):
            raw.send(f, b.mac)
        await settle(lambda: len(raw.ip_packets(B)) >= 3)
        pkts = raw.ip_packets(B)
        assert len(pkts) == 3
        assert all(len(p) <= 1500 for p in pkts)
        [rep] = defragment(pkts)
        assert (rep[ICMP].type, rep[ICMP].id, rep[ICMP].seq) == (0, 0x1234, 7)
        assert bytes(rep[ICMP].payload) == data
        c = rep[ICMP].chksum
        del rep[ICMP].chksum
        assert IP(bytes(rep))[ICMP].chksum == c
    finally:
        await a.disconnect()
        await b.disconnect()


async def test_stack_ping_of_4000_bytes_fragmented_reassembled_by_scapy() -> None:
    hub = Hub()
    clock = VirtualClock(10.0)
    raw = RawHost(hub)
    a, b = await _two_stacks(hub, clock)
    try:
        rtt = await b.ping(RAW_IP, size=4000, timeout=0.0001)  # RawHost never answers pings
        assert rtt == [None]
        pkts = raw.ip_packets(B)
        assert [len(p) for p in pkts] == [1500, 1500, 1068]
        [req] = defragment(pkts)
        assert bytes(req[ICMP].payload) == bytes((i & 0xFF) for i in range(4000))  # Stack.ping's pattern
    finally:
        await a.disconnect()
        await b.disconnect()


async def test_dont_fragment_and_too_long_through_the_seed_api() -> None:
    hub = Hub(mtu=1006)
    clock = VirtualClock(10.0)
    a, b = await _two_stacks(hub, clock)
    try:
        frame, hl = await a.ipv4.allocate_frame(proto=17, dest_ip=IPv4Address(B))
        assert (hl, len(frame)) == (34, 14 + 1006)
        frame[20] |= 0x40  # DF
        with pytest.raises(tcpip.WouldFragmentError):
            await a.ipv4.write(frame[:34], bytes(1000))
        frame[20] &= ~0x40
        with pytest.raises(tcpip.MessageTooLongError):
            await a.ipv4.write(frame[:34], bytes(65516))
        assert a.stats()["ipv4"]["tx_would_fragment"] == 1
        assert a.stats()["ipv4"]["tx_too_long"] == 1
        # UDP over the asyncio API: too long goes to error_received as EMSGSIZE, like asyncio.
        t, p = await a.create_datagram_endpoint(Recorder, (A, 4000))
        t.sendto(bytes(65508), (B, 9))
        errs = cast(Recorder, p).errors
        assert len(errs) == 1
        assert isinstance(errs[0], OSError)
        assert errs[0].errno == errno.EMSGSIZE
        t.close()
    finally:
        await a.disconnect()
        await b.disconnect()


async def test_reassembly_timeout_sends_time_exceeded_after_30_virtual_seconds() -> None:
    hub = Hub()
    clock = VirtualClock(100.0)
    raw = RawHost(hub)
    a, b = await _two_stacks(hub, clock)
    try:
        [first, _second] = fragment(IP(src=RAW_IP, dst=B, id=99) / UDP(sport=1, dport=2) / Raw(bytes(2000)))
        raw.send(first, b.mac)
        await settle(lambda: b.stats()["ipv4"]["rx_fragments"] == 1)
        clock.advance(29.999)
        await settle()
        assert raw.ip_packets(B) == []
        assert b.stats()["reassembly"]["datagrams"] == 1
        clock.advance(0.001)
        await settle(lambda: len(raw.ip_packets(B)) == 1)
        [err] = raw.ip_packets(B)
        assert (err[ICMP].type, err[ICMP].code) == (11, 1)
        assert bytes(err[IP])[28:] == bytes(first)[:548]  # the first fragment, up to a 576-byte error
        assert b.stats()["reassembly"]["memory"] == 0
        assert b.stats()["icmp"]["tx_time_exceeded"] == 1
        clock.advance(100.0)
        await settle()
        assert len(raw.ip_packets(B)) == 1
    finally:
        await a.disconnect()
        await b.disconnect()


async def test_fragment_flood_bounded_while_a_good_peer_completes() -> None:
    hub = Hub()
    clock = VirtualClock(10.0)
    raw = RawHost(hub)
    a, b = await _two_stacks(hub, clock)
    try:
        r = b.core.reassembler
        assert r is not None
        cap = r.config.max_memory
        tb, pb = await b.create_datagram_endpoint(Recorder, (B, 5000))
        ta, _pa = await a.create_datagram_endpoint(Recorder, (A, 4000))
        rb = cast(Recorder, pb)
        tmpl = bytearray(bytes(Ether(dst=str(b.mac), src=RAW_MAC) / IP(src="10.0.0.1", dst=B, flags="MF", id=1)
                               / Raw(bytes(1480))))
        peak = 0
        for i in range(6000):
            struct.pack_into("!H", tmpl, 18, i & 0xFFFF)  # ident
            struct.pack_into("!I", tmpl, 26, 0x0B000000 + i)  # source: 6000 of them
            struct.pack_into("!H", tmpl, 24, 0)
            struct.pack_into("!H", tmpl, 24, csum(bytes(tmpl[14:34])))
            raw.port.transmit((bytes(tmpl),))
            if i % 300 == 299:
                await settle()
                peak = max(peak, b.stats()["reassembly"]["memory"])
                ta.sendto(pattern(4000, i % 251), (B, 5000))
                await settle(lambda n=i // 300 + 1: len(rb.got) == n)
        assert len(rb.got) == 20
        assert [d for d, _ in rb.got] == [pattern(4000, (300 * k + 299) % 251) for k in range(20)]
        assert 0 < peak <= cap
        st_ = b.stats()["reassembly"]
        assert st_["memory"] <= cap
        assert st_["evicted"] > 0
        _balanced(a, b)
        ta.close()
        tb.close()
    finally:
        await a.disconnect()
        await b.disconnect()
