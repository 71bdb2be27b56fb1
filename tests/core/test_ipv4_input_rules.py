"""Every input drop rule of issue 2 (Ethernet, IPv4, ICMP, ARP) against the sans-I/O Interface.

Each case feeds one frame that breaks exactly one rule and compares the *whole* set of counters before and after:
the diff must be that rule's counter plus the receive totals, and nothing may be transmitted. Accepted packets must
reach the right handler with the right (src, dst, payload).
"""

from __future__ import annotations

import struct
from ipaddress import IPv4Address

import pytest
import testlib
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.all import ARP, ICMP, IP, UDP, Ether, Raw
from scapy.layers.inet import IPerror, IPOption_LSRR, IPOption_NOP, IPOption_RR, IPOption_SSRR
from testlib import csum, ip_int, mac_bytes, neighbours, sent

from tcpip.core.interface import Interface
from tcpip.core.stats import as_dict, unbalanced

OUR_MAC = "02:00:00:00:00:02"
PEER_MAC = "02:00:00:00:00:01"
OTHER_MAC = "02:00:00:00:00:99"
BCAST_MAC = "ff:ff:ff:ff:ff:ff"
OUR_IP = "198.18.0.2"
PEER_IP = "198.18.0.1"
SUBNET_BCAST = "198.18.0.255"
GATEWAY = "198.18.0.254"


def make_iface(**config: object) -> Interface:
    return testlib.make_iface(mac=OUR_MAC, address=OUR_IP, gateways=[GATEWAY], **config)


def counters(iface: Interface) -> dict[str, int]:
    out: dict[str, int] = {}
    for layer, stats in (("eth", iface.eth_stats), ("arp", iface.arp.stats), ("ip", iface.ip_stats),
                         ("icmp", iface.icmp_stats)):
        for k, v in as_dict(stats).items():
            out[f"{layer}.{k}"] = v
    return out


def feed(iface: Interface, frame: bytes, now: float = 1.0) -> dict[str, int]:
    """Receive one frame; return the counters that changed, with their deltas."""
    before = counters(iface)
    iface.receive(memoryview(frame), now)
    after = counters(iface)
    assert unbalanced(iface.eth_stats, iface.arp.stats, iface.ip_stats) == []  # one outcome per frame per layer
    return {k: after[k] - before[k] for k in after if after[k] != before[k]}


def ipv4(src: str, dst: str, proto: int, payload: bytes, *, ttl: int = 64, options: bytes = b"",
         flags_frag: int = 0, version: int = 4, ihl: int | None = None, total: int | None = None,
         bad_checksum: bool = False) -> bytes:
    """An IPv4 datagram built by hand, any field overridable (the checksum stays right unless asked)."""
    hl = 20 + len(options)
    ihl = hl // 4 if ihl is None else ihl
    total = hl + len(payload) if total is None else total
    hdr = bytearray(struct.pack("!BBHHHBBH4s4s", (version << 4) | ihl, 0, total, 0x1234, flags_frag, ttl, proto, 0,
                                IPv4Address(src).packed, IPv4Address(dst).packed) + options)
    c = csum(bytes(hdr))
    if bad_checksum:
        c ^= 0x0101
    hdr[10:12] = c.to_bytes(2, "big")
    return bytes(hdr) + payload


def eth(payload: bytes, *, dst: str = OUR_MAC, src: str = PEER_MAC, ethertype: int = 0x0800, pad: bool = True) -> bytes:
    frame = mac_bytes(dst) + mac_bytes(src) + struct.pack("!H", ethertype) + payload
    if pad and len(frame) < 60:
        frame += b"\x00" * (60 - len(frame))
    return frame


def arp_pkt(*, op: int = 1, sha: str = PEER_MAC, spa: str = PEER_IP, tha: str = "00:00:00:00:00:00",
            tpa: str = OUR_IP, htype: int = 1, ptype: int = 0x0800, hlen: int = 6, plen: int = 4) -> bytes:
    return struct.pack("!HHBBH6s4s6s4s", htype, ptype, hlen, plen, op, mac_bytes(sha), IPv4Address(spa).packed,
                       mac_bytes(tha), IPv4Address(tpa).packed)


class Recorder:
    """A plain-function handler that records (src, dst, payload) as dotted strings and bytes."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, bytes]] = []

    def __call__(self, src: int, dst: int, payload: memoryview, packet: memoryview, now: float,
                 broadcast: bool) -> None:
        self.calls.append((str(IPv4Address(src)), str(IPv4Address(dst)), bytes(payload)))


@pytest.fixture
def iface() -> Interface:
    return make_iface()


@pytest.fixture
def udp(iface: Interface) -> Recorder:
    rec = Recorder()
    iface.register(17, rec)
    return rec


ETH_RX = {"eth.rx_frames": 1}
IP_RX = {"eth.rx_frames": 1, "ip.rx_packets": 1}
DELIVERED = {"eth.rx_frames": 1, "ip.rx_packets": 1, "ip.rx_delivered": 1}
ICMP_RX = {**DELIVERED, "icmp.rx_messages": 1}
ARP_RX = {"eth.rx_frames": 1, "arp.rx_packets": 1}
UDP_OK = ipv4(PEER_IP, OUR_IP, 17, b"udp-payload")


# == Ethernet =======================================================================================
@pytest.mark.parametrize(
    ("frame", "counter"),
    [
        (b"", "eth.rx_runt"),
        (eth(UDP_OK)[:13], "eth.rx_runt"),
        (eth(UDP_OK, dst=OTHER_MAC), "eth.rx_not_for_us"),
        (eth(UDP_OK, dst="01:00:5e:01:02:03"), "eth.rx_not_for_us"),  # a group we did not join
        (eth(UDP_OK, ethertype=0x88B5), "eth.rx_unknown_ethertype"),
        (eth(UDP_OK, ethertype=0x0005), "eth.rx_unknown_ethertype"),  # an 802.3 length, not a type
        (eth(b"\x60" + bytes(50), ethertype=0x86DD), "eth.rx_ipv6_no_handler"),
        (eth(ipv4(PEER_IP, OUR_IP, 17, bytes(1481))), "eth.rx_oversize"),  # 14 + 1501 > 14 + MTU
    ],
    ids=["empty", "13-bytes", "other-unicast", "other-group", "unknown-type", "8023-length", "ipv6", "oversize"],
)
def test_ethernet_drop(iface: Interface, udp: Recorder, frame: bytes, counter: str) -> None:
    assert feed(iface, frame) == {**ETH_RX, counter: 1}
    assert sent(iface) == []
    assert udp.calls == []


def test_ethernet_max_size_frame_accepted(iface: Interface, udp: Recorder) -> None:
    frame = eth(ipv4(PEER_IP, OUR_IP, 17, bytes(1480)))
    assert len(frame) == 14 + 1500
    assert feed(iface, frame) == DELIVERED
    assert udp.calls == [(PEER_IP, OUR_IP, bytes(1480))]


def test_ipv6_goes_to_its_handler_when_given(iface: Interface) -> None:
    seen: list[bytes] = []
    iface.ipv6_handler = lambda pkt: seen.append(bytes(pkt))
    payload = b"\x60" + bytes(45)
    assert feed(iface, eth(payload, ethertype=0x86DD)) == {**ETH_RX, "eth.rx_ipv6": 1}
    assert seen == [payload]


@pytest.mark.parametrize("dst_mac", [OUR_MAC, BCAST_MAC, "01:00:5e:00:00:01"])
def test_ethernet_accepted_destinations(iface: Interface, udp: Recorder, dst_mac: str) -> None:
    dst_ip = {OUR_MAC: OUR_IP, BCAST_MAC: "255.255.255.255", "01:00:5e:00:00:01": "224.0.0.1"}[dst_mac]
    assert feed(iface, eth(ipv4(PEER_IP, dst_ip, 17, b"x"), dst=dst_mac)) == DELIVERED
    assert udp.calls == [(PEER_IP, dst_ip, b"x")]


def test_joined_group_mac_and_address_accepted(iface: Interface, udp: Recorder) -> None:
    iface.join(ip_int("239.1.2.3"))
    assert feed(iface, eth(ipv4(PEER_IP, "239.1.2.3", 17, b"g"), dst="01:00:5e:01:02:03")) == DELIVERED
    assert udp.calls == [(PEER_IP, "239.1.2.3", b"g")]


# == IPv4 header checks ==============================================================================
@pytest.mark.parametrize(
    ("packet", "counter"),
    [
        (ipv4(PEER_IP, OUR_IP, 17, b"x" * 8, version=6), "ip.rx_bad_version"),
        (ipv4(PEER_IP, OUR_IP, 17, b"x" * 8, version=0), "ip.rx_bad_version"),
        (ipv4(PEER_IP, OUR_IP, 17, b"x" * 8, ihl=4), "ip.rx_bad_ihl"),
        (ipv4(PEER_IP, OUR_IP, 17, b"x" * 8, ihl=0), "ip.rx_bad_ihl"),
        (ipv4(PEER_IP, OUR_IP, 17, b"x" * 20, ihl=15, total=40), "ip.rx_bad_total_length"),  # 60 > 40
        (ipv4(PEER_IP, OUR_IP, 17, b"x" * 8, total=19), "ip.rx_bad_total_length"),
        (ipv4(PEER_IP, OUR_IP, 17, b"x" * 8, total=1000), "ip.rx_truncated"),  # > the 46-byte buffer
        (ipv4(PEER_IP, OUR_IP, 17, b"x" * 8, bad_checksum=True), "ip.rx_bad_checksum"),
        (ipv4("224.0.0.5", OUR_IP, 17, b"x"), "ip.rx_martian_source"),
        (ipv4("239.255.255.250", OUR_IP, 17, b"x"), "ip.rx_martian_source"),
        (ipv4("255.255.255.255", OUR_IP, 17, b"x"), "ip.rx_martian_source"),
        (ipv4("240.0.0.1", OUR_IP, 17, b"x"), "ip.rx_martian_source"),  # class E
        (ipv4("127.0.0.1", OUR_IP, 17, b"x"), "ip.rx_martian_source"),
        (ipv4("127.200.1.1", OUR_IP, 17, b"x"), "ip.rx_martian_source"),
        (ipv4(OUR_IP, OUR_IP, 17, b"x"), "ip.rx_martian_source"),
        (ipv4(SUBNET_BCAST, OUR_IP, 17, b"x"), "ip.rx_martian_source"),
        (ipv4("0.0.0.0", OUR_IP, 17, b"x"), "ip.rx_martian_source"),  # only allowed towards 255.255.255.255
        (ipv4(PEER_IP, "198.18.0.3", 17, b"x"), "ip.rx_dst_not_ours"),
        (ipv4(PEER_IP, "10.0.0.2", 17, b"x"), "ip.rx_dst_not_ours"),
        (ipv4(PEER_IP, "0.0.0.0", 17, b"x"), "ip.rx_dst_not_ours"),
        (ipv4(PEER_IP, "198.18.1.255", 17, b"x"), "ip.rx_dst_not_ours"),  # another subnet's broadcast
        (ipv4(PEER_IP, "224.0.0.2", 17, b"x"), "ip.rx_dst_not_ours"),  # group not joined
    ],
    ids=["v6", "v0", "ihl4", "ihl0", "ihl-gt-total", "total-lt-20", "total-gt-buffer", "checksum",
         "src-mcast", "src-mcast2", "src-lbcast", "src-classE", "src-loopback", "src-loopback2", "src-ours",
         "src-subnet-bcast", "src-zero", "dst-neighbour", "dst-offlink", "dst-zero", "dst-other-bcast",
         "dst-other-group"],
)
def test_ipv4_drop(iface: Interface, udp: Recorder, packet: bytes, counter: str) -> None:
    assert feed(iface, eth(packet)) == {**IP_RX, counter: 1}
    assert sent(iface) == []
    assert udp.calls == []


def test_ipv4_martian_source_to_broadcast_dropped(iface: Interface, udp: Recorder) -> None:
    frame = eth(ipv4("127.0.0.1", "255.255.255.255", 17, b"x"), dst=BCAST_MAC)
    assert feed(iface, frame) == {**IP_RX, "ip.rx_martian_source": 1}
    assert udp.calls == []


def test_ipv4_zero_source_to_limited_broadcast_accepted(iface: Interface, udp: Recorder) -> None:
    frame = eth(ipv4("0.0.0.0", "255.255.255.255", 17, b"dhcp"), dst=BCAST_MAC)  # a DHCP DISCOVER's shape
    assert feed(iface, frame) == DELIVERED
    assert udp.calls == [("0.0.0.0", "255.255.255.255", b"dhcp")]


def test_bad_checksum_accepted_when_verification_off(udp: Recorder) -> None:
    iface = make_iface(verify_checksums=False)
    iface.register(17, udp)
    assert feed(iface, eth(ipv4(PEER_IP, OUR_IP, 17, b"unverified", bad_checksum=True))) == DELIVERED
    assert udp.calls == [(PEER_IP, OUR_IP, b"unverified")]


@pytest.mark.parametrize("dst_mac", [BCAST_MAC, "01:00:5e:00:00:01"])
def test_unicast_ip_in_ethernet_broadcast_dropped(iface: Interface, udp: Recorder, dst_mac: str) -> None:
    assert feed(iface, eth(ipv4(PEER_IP, OUR_IP, 17, b"x"), dst=dst_mac)) == {
        **IP_RX, "ip.rx_unicast_in_l2_broadcast": 1}
    assert udp.calls == []
    assert sent(iface) == []


@pytest.mark.parametrize("dst_ip", ["255.255.255.255", SUBNET_BCAST])
def test_ip_broadcast_in_unicast_frame_accepted(iface: Interface, udp: Recorder, dst_ip: str) -> None:
    assert feed(iface, eth(ipv4(PEER_IP, dst_ip, 17, b"b"))) == DELIVERED
    assert udp.calls == [(PEER_IP, dst_ip, b"b")]


@pytest.mark.parametrize(
    "flags_frag",
    [0x2000, 0x0001, 0x2000 | 0x00B9, 0x1FFF, 0x4000 | 0x2000],
    ids=["first-MF", "last-offset8", "middle", "max-offset", "DF+MF"],
)
def test_fragments_counted_and_dropped_without_reassembler(udp: Recorder, flags_frag: int) -> None:
    iface = make_iface(reassemble=False)
    iface.register(17, udp)
    assert iface.reassembler is None
    packet = ipv4(PEER_IP, OUR_IP, 17, b"f" * 16, flags_frag=flags_frag)
    assert feed(iface, eth(packet)) == {**IP_RX, "ip.rx_fragments": 1, "ip.rx_fragments_dropped": 1}
    assert udp.calls == []
    assert sent(iface) == []


def test_fragments_reassembled_when_a_reassembler_is_set(iface: Interface, udp: Recorder) -> None:
    assert iface.reassembler is not None
    payload = bytes(range(24))
    first = ipv4(PEER_IP, OUR_IP, 17, payload[:16], flags_frag=0x2000)
    last = ipv4(PEER_IP, OUR_IP, 17, payload[16:], flags_frag=2)  # offset 16 bytes
    assert feed(iface, eth(first)) == {**IP_RX, "ip.rx_fragments": 1}
    assert udp.calls == []
    assert feed(iface, eth(last)) == {**DELIVERED, "ip.rx_fragments": 1, "ip.rx_reassembled": 1}
    assert udp.calls == [(PEER_IP, OUR_IP, payload)]
    assert sent(iface) == []


def test_dont_fragment_alone_is_not_a_fragment(iface: Interface, udp: Recorder) -> None:
    assert feed(iface, eth(ipv4(PEER_IP, OUR_IP, 17, b"df", flags_frag=0x4000))) == DELIVERED
    assert udp.calls == [(PEER_IP, OUR_IP, b"df")]


# == IPv4 options ===================================================================================
@pytest.mark.parametrize(
    ("options", "counter"),
    [
        (b"\x07\x01\x00\x00", "ip.rx_bad_options"),  # length 1 < 2
        (b"\x07\x00\x00\x00", "ip.rx_bad_options"),  # length 0: would loop forever
        (b"\x07\x08\x04\x00", "ip.rx_bad_options"),  # length 8 runs past the 4-byte options field
        (b"\x01\x01\x01\x44", "ip.rx_bad_options"),  # last byte a type without its length byte
        (b"\x94\x04\x00\x00\x07\x09\x04\x00", "ip.rx_bad_options"),  # second option overruns
        (bytes(IPOption_LSRR(routers=["10.0.0.1"])) + b"\x00", "ip.rx_source_route"),
        (bytes(IPOption_SSRR(routers=["10.0.0.1"])) + b"\x00", "ip.rx_source_route"),
        (b"\x01" + bytes(IPOption_LSRR(routers=["10.0.0.1", "10.0.0.2"])) + b"\x00" * 4, "ip.rx_source_route"),
    ],
    ids=["len1", "len0", "overrun", "no-length-byte", "second-overruns", "lsrr", "ssrr", "nop-lsrr"],
)
def test_ipv4_option_drop(iface: Interface, udp: Recorder, options: bytes, counter: str) -> None:
    assert len(options) % 4 == 0
    got = feed(iface, eth(ipv4(PEER_IP, OUR_IP, 17, b"payload", options=options)))
    assert udp.calls == []
    if counter == "ip.rx_source_route":  # dropped silently, like Linux with accept_source_route=0
        assert got == {**IP_RX, counter: 1}
        assert sent(iface) == []
        return
    # a malformed length: Parameter Problem pointing at the option (RFC 1122 3.2.2.5, like Linux), queued
    # behind ARP here; with the peer known, it goes out
    assert got["icmp.tx_param_problem"] == 1
    iface.arp.add_static(testlib.ip_int(PEER_IP), testlib.mac_bytes(PEER_MAC))
    sent(iface)
    got = feed(iface, eth(ipv4(PEER_IP, OUR_IP, 17, b"payload", options=options)), now=5.0)
    assert got == {**IP_RX, counter: 1, "icmp.tx_param_problem": 1, "eth.tx_frames": 1, "ip.tx_packets": 1}
    [err] = [Ether(f) for f in sent(iface)]
    assert (err[ICMP].type, err[ICMP].code) == (12, 0)
    assert options[err[ICMP].ptr - 20] != 1  # points at the option, not at a NOP before it


@pytest.mark.parametrize(
    "options",
    [
        b"\x01\x01\x01\x01",
        bytes(IPOption_NOP()) + bytes(IPOption_RR(routers=["10.1.1.1"])),
        b"\x94\x04\x00\x00",  # router alert
        b"\x44\x0c\x05\x00" + bytes(8),  # timestamp, 2 slots
        b"\x00\x07\x01\x00",  # end of list: what follows is padding, never parsed
        bytes(IPOption_RR(routers=["10.1.1.1"] * 9)) + b"\x00",  # 40 bytes of options (IHL 15)
    ],
    ids=["nops", "nop-rr", "router-alert", "timestamp", "eol-then-junk", "max-ihl"],
)
def test_valid_options_skipped_and_delivered(iface: Interface, udp: Recorder, options: bytes) -> None:
    packet = ipv4(PEER_IP, OUR_IP, 17, b"after-options", options=options)
    assert feed(iface, eth(packet)) == DELIVERED
    assert udp.calls == [(PEER_IP, OUR_IP, b"after-options")]  # the payload starts at IHL*4


def test_scapy_built_options_packet_delivered(iface: Interface, udp: Recorder) -> None:
    frame = bytes(Ether(dst=OUR_MAC, src=PEER_MAC) / IP(src=PEER_IP, dst=OUR_IP, options=[
        IPOption_NOP(), IPOption_RR(routers=["1.2.3.4", "5.6.7.8"])]) / UDP(sport=7, dport=9) / Raw(b"sc"))
    assert frame[14] == 0x48  # IHL 8: 12 bytes of options
    assert feed(iface, frame) == DELIVERED
    assert udp.calls == [(PEER_IP, OUR_IP, frame[14 + 32:])]
    assert udp.calls[0][2][:4] == b"\x00\x07\x00\x09"


# == accepted: TTL, padding, demux ===================================================================
@pytest.mark.parametrize("ttl", [0, 1, 255])
def test_any_ttl_to_us_accepted(iface: Interface, udp: Recorder, ttl: int) -> None:
    assert feed(iface, eth(ipv4(PEER_IP, OUR_IP, 17, b"ttl", ttl=ttl))) == DELIVERED
    assert udp.calls == [(PEER_IP, OUR_IP, b"ttl")]
    assert sent(iface) == []  # no time exceeded for a datagram addressed to us


def test_ethernet_padding_trimmed_by_total_length(iface: Interface, udp: Recorder) -> None:
    packet = ipv4(PEER_IP, OUR_IP, 17, b"tiny")
    frame = eth(packet, pad=False) + b"\xee" * (60 - 14 - len(packet))  # non-zero padding
    assert len(frame) == 60
    assert feed(iface, frame) == DELIVERED
    assert udp.calls == [(PEER_IP, OUR_IP, b"tiny")]


def test_scapy_udp_frame_delivered_to_udp_handler(iface: Interface, udp: Recorder) -> None:
    dgram = UDP(sport=5000, dport=6000) / Raw(b"hello")
    frame = bytes(Ether(dst=OUR_MAC, src=PEER_MAC) / IP(src=PEER_IP, dst=OUR_IP) / dgram)
    assert feed(iface, frame) == DELIVERED
    assert udp.calls == [(PEER_IP, OUR_IP, bytes(IP(src=PEER_IP, dst=OUR_IP) / dgram)[20:])]


def test_tcp_and_other_protocols_demultiplexed(iface: Interface, udp: Recorder) -> None:
    tcp, raw = Recorder(), Recorder()
    iface.register(6, tcp)
    iface.register(132, raw)
    assert feed(iface, eth(ipv4(PEER_IP, OUR_IP, 6, b"tcp-seg"))) == DELIVERED
    assert feed(iface, eth(ipv4(PEER_IP, OUR_IP, 132, b"sctp"))) == DELIVERED
    assert tcp.calls == [(PEER_IP, OUR_IP, b"tcp-seg")]
    assert raw.calls == [(PEER_IP, OUR_IP, b"sctp")]
    assert udp.calls == []
    assert sent(iface) == []


# == unknown protocol -> ICMP protocol unreachable ===================================================
def test_unknown_protocol_answered_with_protocol_unreachable(iface: Interface) -> None:
    iface.arp.add_static(ip_int(PEER_IP), mac_bytes(PEER_MAC))
    payload = b"ABCDEFGHIJKLMNOP"  # all quoted: the error may be 576 bytes long (RFC 1812 4.3.2.3, Linux)
    packet = ipv4(PEER_IP, OUR_IP, 253, payload, options=b"\x01\x01\x01\x01")
    assert feed(iface, eth(packet)) == {**DELIVERED, "ip.rx_unknown_protocol": 1, "icmp.tx_dest_unreachable": 1,
                                        "ip.tx_packets": 1, "eth.tx_frames": 1}
    [raw] = sent(iface)
    out = Ether(raw)
    assert (out.dst, out.src, out.type) == (PEER_MAC, OUR_MAC, 0x0800)
    ip = out[IP]
    assert (ip.src, ip.dst, ip.proto, ip.ttl) == (OUR_IP, PEER_IP, 1, 64)
    icmp = ip[ICMP]
    assert (icmp.type, icmp.code) == (3, 2)
    quote = bytes(ip)[28:ip.len]
    assert quote == packet  # the offending datagram, options and all
    assert ip.len == 20 + 8 + 24 + 16
    # checksums as scapy recomputes them
    sc = IP(bytes(ip))
    c_ip, c_icmp = sc.chksum, sc[ICMP].chksum
    del sc.chksum
    del sc[ICMP].chksum
    again = IP(bytes(sc))
    assert (again.chksum, again[ICMP].chksum) == (c_ip, c_icmp)
    assert isinstance(out[ICMP].payload, IPerror)


def test_unknown_protocol_to_broadcast_gets_no_error(iface: Interface) -> None:
    iface.arp.add_static(ip_int(PEER_IP), mac_bytes(PEER_MAC))
    frame = eth(ipv4(PEER_IP, "255.255.255.255", 253, bytes(8)), dst=BCAST_MAC)
    assert feed(iface, frame) == {**DELIVERED, "ip.rx_unknown_protocol": 1, "icmp.tx_suppressed": 1}
    assert sent(iface) == []


# == ICMP =============================================================================================
def echo_request(ident: int = 0x1234, seq: int = 1, data: bytes = b"ping-data-0123456789") -> bytes:
    return bytes(ICMP(type=8, id=ident, seq=seq) / Raw(data))


def test_icmp_bad_checksum_dropped(iface: Interface) -> None:
    msg = bytearray(echo_request())
    msg[-1] ^= 0x40
    assert feed(iface, eth(ipv4(PEER_IP, OUR_IP, 1, bytes(msg)))) == {**ICMP_RX, "icmp.rx_bad_checksum": 1}
    assert sent(iface) == []


@pytest.mark.parametrize("n", [0, 1, 4, 7])
def test_icmp_truncated_dropped(iface: Interface, n: int) -> None:
    msg = echo_request()[:n]
    assert feed(iface, eth(ipv4(PEER_IP, OUR_IP, 1, msg))) == {**ICMP_RX, "icmp.rx_truncated": 1}
    assert sent(iface) == []


def test_icmp_echo_answered(iface: Interface) -> None:
    iface.arp.add_static(ip_int(PEER_IP), mac_bytes(PEER_MAC))
    data = bytes(range(56))
    diff = feed(iface, eth(ipv4(PEER_IP, OUR_IP, 1, echo_request(0xBEEF, 42, data))))
    assert diff == {**ICMP_RX, "icmp.rx_echo_requests": 1, "icmp.tx_echo_replies": 1, "ip.tx_packets": 1,
                    "eth.tx_frames": 1}
    [raw] = sent(iface)
    out = Ether(raw)
    assert (out.dst, out.src, out[IP].src, out[IP].dst, out[IP].len) == (PEER_MAC, OUR_MAC, OUR_IP, PEER_IP, 84)
    assert (out[ICMP].type, out[ICMP].code, out[ICMP].id, out[ICMP].seq) == (0, 0, 0xBEEF, 42)
    assert bytes(out[ICMP].payload) == data
    assert csum(bytes(out[ICMP])) == 0
    assert csum(bytes(out[IP])[:20]) == 0


@pytest.mark.parametrize("size", [0, 1, 3, 17, 18, 1468])  # 1468: fits the MTU with 4 bytes of options
@pytest.mark.parametrize("options", [b"", b"\x01\x01\x01\x01"], ids=["plain", "with-options"])
def test_icmp_echo_reply_exact_for_any_size(iface: Interface, size: int, options: bytes) -> None:
    iface.arp.add_static(ip_int(PEER_IP), mac_bytes(PEER_MAC))
    data = bytes((7 * i + 3) & 0xFF for i in range(size))
    request = echo_request(0x0102, 0xFFFE, data)
    packet = ipv4(PEER_IP, OUR_IP, 1, request, ttl=3, options=options)
    diff = feed(iface, eth(packet))  # short requests arrive with Ethernet padding
    assert diff == {**ICMP_RX, "icmp.rx_echo_requests": 1, "icmp.tx_echo_replies": 1, "ip.tx_packets": 1,
                    "eth.tx_frames": 1}
    [raw] = sent(iface)
    assert len(raw) == max(60, 14 + 20 + 8 + size)
    assert raw[:14] == mac_bytes(PEER_MAC) + mac_bytes(OUR_MAC) + b"\x08\x00"
    hdr, icmp = raw[14:34], raw[34:34 + 8 + size]
    assert hdr[0] == 0x45  # options are not echoed back
    assert struct.unpack("!H", hdr[2:4])[0] == 20 + 8 + size
    assert (hdr[8], hdr[9], hdr[12:16], hdr[16:20]) == (64, 1, IPv4Address(OUR_IP).packed, IPv4Address(PEER_IP).packed)
    assert csum(hdr) == 0
    assert icmp[:2] == b"\x00\x00"
    assert icmp[4:] == request[4:]  # same identifier, sequence and data
    assert csum(icmp) == 0


def test_icmp_echo_from_unresolved_host_waits_for_arp(iface: Interface) -> None:
    feed(iface, eth(ipv4(PEER_IP, OUR_IP, 1, echo_request(5, 6, b"wait"))))
    [req] = sent(iface)
    a = Ether(req)[ARP]
    assert (a.op, a.pdst, a.psrc) == (1, PEER_IP, OUR_IP)
    feed(iface, eth(bytes(ARP(op=2, hwsrc=PEER_MAC, psrc=PEER_IP, hwdst=OUR_MAC, pdst=OUR_IP)), ethertype=0x0806))
    [rep] = sent(iface)
    out = Ether(rep)
    assert (out.dst, out[IP].dst, out[ICMP].type, out[ICMP].id, out[ICMP].seq, out[Raw].load) == (
        PEER_MAC, PEER_IP, 0, 5, 6, b"wait")


@pytest.mark.parametrize(
    ("dst_mac", "dst_ip"),
    [(BCAST_MAC, "255.255.255.255"), (BCAST_MAC, SUBNET_BCAST), ("01:00:5e:00:00:01", "224.0.0.1")],
)
def test_icmp_echo_to_broadcast_ignored_by_default(iface: Interface, dst_mac: str, dst_ip: str) -> None:
    iface.arp.add_static(ip_int(PEER_IP), mac_bytes(PEER_MAC))
    diff = feed(iface, eth(ipv4(PEER_IP, dst_ip, 1, echo_request()), dst=dst_mac))
    assert diff == {**ICMP_RX, "icmp.rx_echo_requests": 1, "icmp.rx_echo_broadcast_ignored": 1}
    assert sent(iface) == []


def test_icmp_echo_to_broadcast_answered_when_enabled() -> None:
    iface = make_iface(icmp_echo_ignore_broadcasts=False)
    iface.arp.add_static(ip_int(PEER_IP), mac_bytes(PEER_MAC))
    diff = feed(iface, eth(ipv4(PEER_IP, "255.255.255.255", 1, echo_request(7, 8, b"bc")), dst=BCAST_MAC))
    assert diff == {**ICMP_RX, "icmp.rx_echo_requests": 1, "icmp.tx_echo_replies": 1, "ip.tx_packets": 1,
                    "eth.tx_frames": 1}
    [raw] = sent(iface)
    out = Ether(raw)
    assert (out.dst, out[IP].src, out[IP].dst) == (PEER_MAC, OUR_IP, PEER_IP)  # from our unicast address
    assert out[IP].len == 20 + 8 + 2
    assert (out[ICMP].type, out[ICMP].id, out[ICMP].seq, out[Raw].load) == (0, 7, 8, b"bc")
    assert len(raw) == 60  # short reply padded to the Ethernet minimum


# == ARP ==============================================================================================
@pytest.mark.parametrize(
    ("packet", "counter"),
    [
        (arp_pkt(htype=7), "arp.rx_bad_type"),
        (arp_pkt(ptype=0x86DD), "arp.rx_bad_type"),
        (arp_pkt(hlen=8), "arp.rx_bad_length"),
        (arp_pkt(plen=16), "arp.rx_bad_length"),
        (arp_pkt(op=3), "arp.rx_bad_op"),
        (arp_pkt(op=0), "arp.rx_bad_op"),
        (arp_pkt(sha=OUR_MAC), "arp.rx_from_self"),
        (arp_pkt(sha=BCAST_MAC), "arp.rx_bad_sender_mac"),
        (arp_pkt(sha="01:00:5e:00:00:01"), "arp.rx_bad_sender_mac"),
        (arp_pkt(spa="255.255.255.255"), "arp.rx_bad_sender_ip"),
        (arp_pkt(spa="224.0.0.9"), "arp.rx_bad_sender_ip"),
        (arp_pkt(spa="127.0.0.1"), "arp.rx_bad_sender_ip"),
        (arp_pkt()[:27], "arp.rx_truncated"),
        (arp_pkt()[:8], "arp.rx_truncated"),
    ],
    ids=["htype", "ptype", "hlen", "plen", "op3", "op0", "own-mac", "bcast-sha", "mcast-sha", "bcast-spa",
         "mcast-spa", "loopback-spa", "27-bytes", "8-bytes"],
)
def test_arp_drop(iface: Interface, packet: bytes, counter: str) -> None:
    frame = eth(packet, dst=BCAST_MAC, ethertype=0x0806, pad=False)  # unpadded, so truncation is real
    assert feed(iface, frame) == {**ARP_RX, counter: 1}
    assert sent(iface) == []
    assert neighbours(iface) == {}


def test_arp_scapy_request_with_padding_answered(iface: Interface) -> None:
    frame = bytes(Ether(dst=BCAST_MAC, src=PEER_MAC) / ARP(op=1, hwsrc=PEER_MAC, psrc=PEER_IP, pdst=OUR_IP))
    frame += b"\xee" * (60 - len(frame))
    assert feed(iface, frame) == {**ARP_RX, "arp.requests_received": 1, "arp.replies_sent": 1,
                                  "arp.entries_created": 1, "eth.tx_frames": 1}
    [raw] = sent(iface)
    reply = Ether(raw)
    assert (reply.dst, reply[ARP].op, reply[ARP].psrc, reply[ARP].pdst) == (PEER_MAC, 2, OUR_IP, PEER_IP)


# == robustness: the fuzz rule on a few structured mutations ==========================================
@pytest.mark.parametrize("cut", range(14, 51))
def test_truncated_valid_frames_only_count(iface: Interface, udp: Recorder, cut: int) -> None:
    frame = eth(ipv4(PEER_IP, OUR_IP, 17, b"0123456789abcdef"), pad=False)
    assert len(frame) == 50
    diff = feed(iface, frame[:cut])  # must not raise
    if cut == 50:
        assert diff == DELIVERED
        assert udp.calls == [(PEER_IP, OUR_IP, b"0123456789abcdef")]
    else:
        assert diff == {**IP_RX, "ip.rx_truncated": 1}
        assert udp.calls == []


# == fuzz: any frame is handled or counted, never raises, and the books balance ======================
_TEMPLATES = [
    eth(UDP_OK),
    eth(ipv4(PEER_IP, OUR_IP, 1, echo_request())),
    eth(ipv4(PEER_IP, "255.255.255.255", 1, echo_request()), dst=BCAST_MAC),
    eth(ipv4(PEER_IP, OUR_IP, 1, bytes(ICMP(type=3, code=4, nexthopmtu=576) / Raw(ipv4(OUR_IP, PEER_IP, 17,
                                                                                          bytes(8)))))),
    eth(ipv4(PEER_IP, OUR_IP, 253, b"proto", options=b"\x07\x07\x04" + bytes(4) + b"\x00")),
    eth(ipv4(PEER_IP, OUR_IP, 17, bytes(16), flags_frag=0x2000)),
    eth(arp_pkt(), dst=BCAST_MAC, ethertype=0x0806),
    eth(arp_pkt(op=2, tha=OUR_MAC)),
]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_TEMPLATES), st.lists(st.tuples(st.integers(0, 59), st.integers(0, 255)), max_size=6),
       st.integers(0, 80), st.booleans(), st.booleans())
def test_fuzz_mutated_frames_only_count(frame: bytes, flips: list[tuple[int, int]], cut: int, static: bool,
                                        fix_checksum: bool) -> None:
    iface = make_iface()
    for proto in (6, 17):
        iface.register(proto, lambda s, d, p, pkt, now, b: None)
    if static:
        iface.arp.add_static(ip_int(PEER_IP), mac_bytes(PEER_MAC))
    buf = bytearray(frame)
    for i, v in flips:
        if i < len(buf):
            buf[i] = v
    hl = (buf[14] & 15) * 4
    if fix_checksum and buf[12:14] == b"\x08\x00" and 20 <= hl <= len(buf) - 14:  # reach the deeper checks
        buf[24:26] = b"\x00\x00"
        buf[24:26] = csum(bytes(buf[14:14 + hl])).to_bytes(2, "big")
    buf = buf[:cut] if cut < len(buf) else buf
    before = counters(iface)["eth.rx_frames"]
    iface.receive(memoryview(bytes(buf)), 2.0)
    assert counters(iface)["eth.rx_frames"] == before + 1
    assert unbalanced(iface.eth_stats, iface.arp.stats, iface.ip_stats) == []
    iface.handle_timeout(100.0)  # timers started by the frame (ARP, reassembly) must not raise either


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=120))
def test_fuzz_random_bytes_only_count(data: bytes) -> None:
    iface = make_iface()
    iface.receive(memoryview(mac_bytes(OUR_MAC) + data), 1.0)
    iface.receive(memoryview(data), 1.0)
    assert as_dict(iface.eth_stats)["rx_frames"] == 2
    assert unbalanced(iface.eth_stats, iface.arp.stats, iface.ip_stats) == []
