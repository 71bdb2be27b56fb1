"""Wire formats (Ethernet, ARP, IPv4 with options, ICMP, UDP) and the checksum module.

scapy is the independent oracle: frames it builds parse in tcpip to the same fields, and frames tcpip emits parse in
scapy to the same fields with checksums scapy recomputes identically. Hypothesis round trips emit -> parse, every
reader is cut at every length (only `WireError` may come out) and given trailing bytes (Ethernet padding).
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable
from ipaddress import IPv4Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.all import ARP, ICMP, IP, UDP, Ether, Raw
from scapy.layers.inet import IPOption_NOP, IPOption_RR
from scapy.utils import checksum as scapy_checksum

from tcpip.errors import BadChecksum, BadLength, BadVersion, Truncated, WireError
from tcpip.wire import checksum as ck
from tcpip.wire import udp as wudp
from tcpip.wire.arp import ArpOp, ArpRepr
from tcpip.wire.ethernet import EthernetRepr, EtherType
from tcpip.wire.icmp import IcmpRepr
from tcpip.wire.ipv4 import Ipv4Repr, fill_checksum
from tcpip.wire.mac import MacAddress
from tcpip.wire.udp import UdpRepr

Buffer = bytes | bytearray | memoryview

MAC_A = MacAddress("02:00:00:00:00:01")
MAC_B = MacAddress("02:00:00:00:00:02")
IP_A = IPv4Address("198.18.0.1")
IP_B = IPv4Address("198.18.0.2")

# -- strategies -------------------------------------------------------------------------------------
macs = st.binary(min_size=6, max_size=6).map(MacAddress)
addrs = st.integers(0, 2**32 - 1).map(IPv4Address)
ports = st.integers(0, 0xFFFF)
u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)


@st.composite
def one_option(draw: st.DrawFn) -> bytes:
    """One well-formed IPv4 option (RFC 791): NOP, record route, timestamp, router alert, or a generic TLV."""
    kind = draw(st.sampled_from(["nop", "rr", "ts", "ra", "tlv"]))
    if kind == "nop":
        return b"\x01"
    if kind == "rr":
        slots = draw(st.integers(1, 4))
        ptr = 4 + 4 * draw(st.integers(0, slots))
        return bytes([7, 3 + 4 * slots, ptr]) + draw(st.binary(min_size=4 * slots, max_size=4 * slots))
    if kind == "ts":
        slots = draw(st.integers(1, 4))
        ptr = 5 + 4 * draw(st.integers(0, slots))
        return bytes([0x44, 4 + 4 * slots, ptr, 0]) + draw(st.binary(min_size=4 * slots, max_size=4 * slots))
    if kind == "ra":
        return b"\x94\x04\x00\x00"
    t = draw(st.integers(2, 0xFF).filter(lambda x: x not in (7, 0x44, 0x83, 0x89, 0x94)))
    body = draw(st.binary(max_size=6))
    return bytes([t, 2 + len(body)]) + body


@st.composite
def ipv4_options(draw: st.DrawFn) -> bytes:
    """A valid options field: whole options, then EOL padding to a multiple of 4, at most 40 bytes."""
    out = b""
    for opt in draw(st.lists(one_option(), max_size=6)):
        if len(out) + len(opt) > 40:
            break
        out += opt
    return out + b"\x00" * (-len(out) % 4)


@st.composite
def ipv4_reprs(draw: st.DrawFn) -> Ipv4Repr:
    options = draw(st.just(b"") | ipv4_options())
    max_payload = 0xFFFF - 20 - len(options)
    return Ipv4Repr(
        src=draw(addrs), dst=draw(addrs), proto=draw(u8),
        payload_len=draw(st.integers(0, 600) | st.just(max_payload)),
        ttl=draw(u8), ident=draw(u16), dont_frag=draw(st.booleans()), more_frags=draw(st.booleans()),
        frag_offset=8 * draw(st.integers(0, 0x1FFF)), dscp_ecn=draw(u8), options=options,
    )


arp_reprs = st.builds(ArpRepr, op=st.sampled_from([1, 2]), sender_mac=macs, sender_ip=addrs,
                      target_mac=macs, target_ip=addrs)
eth_reprs = st.builds(EthernetRepr, dst=macs, src=macs, ethertype=st.integers(0x0600, 0xFFFF))  # not 802.3 lengths
icmp_reprs = st.builds(IcmpRepr, type=u8, code=u8, rest=st.integers(0, 2**32 - 1), data=st.binary(max_size=64))


# -- helpers ----------------------------------------------------------------------------------------
def emit_ipv4(r: Ipv4Repr, payload: bytes = b"") -> bytes:
    assert len(payload) == r.payload_len
    buf = bytearray(b"\xa5" * r.buffer_len())  # poison: a byte emit forgets shows up
    r.emit(buf)
    return bytes(buf) + payload


def emit_udp(sp: int, dp: int, payload: bytes, src: IPv4Address, dst: IPv4Address) -> bytes:
    buf = bytearray(b"\xa5" * 8)
    UdpRepr(sp, dp, len(payload)).emit(buf, int(src), int(dst), payload)
    return bytes(buf) + payload


def scapy_ip_checksum_ok(raw: bytes) -> bool:
    """scapy recomputes the header checksum to the same value. Only the header is rebuilt: scapy's upper
    layers (e.g. IGMP for protocol 2) may rewrite bytes of an arbitrary payload when they are rebuilt."""
    hl = (raw[0] & 15) * 4
    p = IP(raw[:hl])
    c = p.chksum
    del p.chksum
    return IP(bytes(p)).chksum == c


def scapy_l4_checksum_ok(raw: bytes, layer: type) -> bool:
    p = IP(raw)
    c = p[layer].chksum
    del p[layer].chksum
    return IP(bytes(p))[layer].chksum == c


def ref_ones_sum(data: bytes) -> int:
    """RFC 1071 the slow way: 16-bit big-endian words, zero-padded, end-around carry."""
    if len(data) % 2:
        data += b"\x00"
    s = 0
    for i in range(0, len(data), 2):
        s += (data[i] << 8) | data[i + 1]
        s = (s & 0xFFFF) + (s >> 16)
    return s


def ref_checksum(data: bytes, initial: int = 0) -> int:
    s = ref_ones_sum(data) + initial
    s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


# == Ethernet =======================================================================================
def test_ethernet_scapy_frame_parses() -> None:
    raw = bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src="02:00:00:00:00:01", type=0x0806) / Raw(b"x" * 46))
    r = EthernetRepr.parse(raw)
    assert r == EthernetRepr(MacAddress.BROADCAST, MAC_A, EtherType.ARP)
    assert r.buffer_len() == 14


def test_ethernet_emit_parses_in_scapy() -> None:
    buf = bytearray(b"\xa5" * 14)
    EthernetRepr(MAC_B, MAC_A, 0x88B5).emit(buf)
    assert bytes(buf) == bytes.fromhex("020000000002" "020000000001" "88b5")
    e = Ether(bytes(buf))
    assert (e.dst, e.src, e.type) == ("02:00:00:00:00:02", "02:00:00:00:00:01", 0x88B5)


@settings(max_examples=150)
@given(eth_reprs, st.binary(max_size=50))
def test_ethernet_round_trip(r: EthernetRepr, trailing: bytes) -> None:
    buf = bytearray(14)
    r.emit(buf)
    assert EthernetRepr.parse(bytes(buf) + trailing) == r
    e = Ether(bytes(buf))
    assert (e.dst, e.src, e.type) == (str(r.dst), str(r.src), r.ethertype)


# == ARP ============================================================================================
def test_arp_scapy_request_parses() -> None:
    raw = bytes(ARP(op=1, hwsrc="02:00:00:00:00:01", psrc="198.18.0.1", hwdst="00:00:00:00:00:00",
                    pdst="198.18.0.2"))
    assert ArpRepr.parse(raw) == ArpRepr(ArpOp.REQUEST, MAC_A, IP_A, MacAddress(bytes(6)), IP_B)


def test_arp_scapy_reply_with_ethernet_padding_parses() -> None:
    frame = bytes(Ether(dst=str(MAC_A), src=str(MAC_B)) / ARP(op=2, hwsrc=str(MAC_B), psrc=str(IP_B),
                                                              hwdst=str(MAC_A), pdst=str(IP_A)))
    padded = frame + bytes(60 - len(frame))  # 28-byte ARP padded to a minimum frame
    assert len(padded) == 60
    assert EthernetRepr.parse(padded).ethertype == EtherType.ARP
    assert ArpRepr.parse(memoryview(padded)[14:]) == ArpRepr(2, MAC_B, IP_B, MAC_A, IP_A)


def test_arp_emit_parses_in_scapy() -> None:
    buf = bytearray(b"\xa5" * 28)
    ArpRepr(ArpOp.REPLY, MAC_B, IP_B, MAC_A, IP_A).emit(buf)
    a = ARP(bytes(buf))
    assert (a.hwtype, a.ptype, a.hwlen, a.plen, a.op) == (1, 0x0800, 6, 4, 2)
    assert (a.hwsrc, a.psrc, a.hwdst, a.pdst) == (str(MAC_B), str(IP_B), str(MAC_A), str(IP_A))
    assert bytes(buf) == bytes(ARP(op=2, hwsrc=str(MAC_B), psrc=str(IP_B), hwdst=str(MAC_A), pdst=str(IP_A)))


@settings(max_examples=150)
@given(arp_reprs, st.binary(max_size=18))
def test_arp_round_trip(r: ArpRepr, trailing: bytes) -> None:
    buf = bytearray(r.buffer_len())
    r.emit(buf)
    assert ArpRepr.parse(bytes(buf) + trailing) == r
    a = ARP(bytes(buf))
    assert (a.op, a.hwsrc, a.psrc, a.hwdst, a.pdst) == (
        r.op, str(r.sender_mac), str(r.sender_ip), str(r.target_mac), str(r.target_ip))


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"hwtype": 6}, BadVersion),
        ({"ptype": 0x86DD}, BadVersion),
        ({"hwlen": 8}, BadLength),
        ({"plen": 16}, BadLength),
        ({"op": 3}, BadVersion),
        ({"op": 0}, BadVersion),
    ],
)
def test_arp_bad_field_rejected(fields: dict[str, int], error: type[WireError]) -> None:
    raw = bytes(ARP(hwsrc=str(MAC_A), psrc=str(IP_A), pdst=str(IP_B), **fields))[:28]
    raw = raw + bytes(28 - len(raw))
    with pytest.raises(error):
        ArpRepr.parse(raw)


# == IPv4 ===========================================================================================
def test_ipv4_scapy_packet_parses() -> None:
    raw = bytes(IP(src="198.18.0.1", dst="198.18.0.2", ttl=7, id=0x1234, flags="DF", tos=0xB8, proto=17)
                / Raw(b"hello"))
    r = Ipv4Repr.parse(raw)
    assert r == Ipv4Repr(IP_A, IP_B, 17, 5, ttl=7, ident=0x1234, dont_frag=True, more_frags=False,
                         frag_offset=0, dscp_ecn=0xB8, options=b"")
    assert r.header_len() == 20


def test_ipv4_scapy_fragment_fields_parse() -> None:
    raw = bytes(IP(src="10.0.0.1", dst="10.0.0.2", flags="MF", frag=185, proto=6) / Raw(b"z" * 16))
    r = Ipv4Repr.parse(raw)
    assert (r.more_frags, r.dont_frag, r.frag_offset, r.proto, r.payload_len) == (True, False, 1480, 6, 16)


def test_ipv4_scapy_options_parse() -> None:
    pkt = IP(src="198.18.0.1", dst="198.18.0.2", options=[IPOption_NOP(), IPOption_RR(routers=["1.2.3.4"])])
    raw = bytes(pkt / Raw(b"abcd"))
    r = Ipv4Repr.parse(raw)
    assert raw[0] == 0x47
    assert r.options == bytes.fromhex("01" "070704" "01020304")
    assert r.header_len() == 28
    assert r.payload_len == 4
    assert raw[r.header_len():] == b"abcd"  # the payload starts at IHL*4


def test_ipv4_emit_with_options_parses_in_scapy() -> None:
    opts = bytes.fromhex("01" "070704" "0a000001" "01" "000000")  # NOP, RR(10.0.0.1), NOP, EOL padding
    r = Ipv4Repr(IP_A, IP_B, 17, 3, ttl=1, ident=0xBEEF, dont_frag=True, dscp_ecn=0x10, options=opts)
    raw = emit_ipv4(r, b"xyz")
    p = IP(raw)
    assert (p.version, p.ihl, p.len, p.id, p.ttl, p.proto, p.tos) == (4, 8, 35, 0xBEEF, 1, 17, 0x10)
    assert (p.src, p.dst, str(p.flags), p.frag) == (str(IP_A), str(IP_B), "DF", 0)
    assert isinstance(p.options[0], IPOption_NOP)
    assert isinstance(p.options[1], IPOption_RR)
    assert p.options[1].routers == ["10.0.0.1"]
    assert bytes(p.payload) == b"xyz"
    assert scapy_ip_checksum_ok(raw)


def test_ipv4_emit_rejects_unpadded_options() -> None:
    r = Ipv4Repr(IP_A, IP_B, 17, 0, options=b"\x01")
    with pytest.raises(ValueError, match="multiple of 4"):
        r.emit(bytearray(21))


def test_ipv4_fill_checksum_matches_scapy() -> None:
    raw = bytearray(bytes(IP(src="1.2.3.4", dst="5.6.7.8", options=[IPOption_NOP()] * 4) / Raw(b"p")))
    good = bytes(raw[10:12])
    raw[10:12] = b"\x12\x34"
    fill_checksum(raw)
    assert bytes(raw[10:12]) == good
    assert scapy_ip_checksum_ok(bytes(raw))


@settings(max_examples=200)
@given(ipv4_reprs(), st.binary(max_size=30))
def test_ipv4_round_trip(r: Ipv4Repr, trailing: bytes) -> None:
    payload = bytes(r.payload_len)
    raw = emit_ipv4(r, payload)
    assert Ipv4Repr.parse(raw) == r
    assert Ipv4Repr.parse(memoryview(raw + trailing)) == r  # Ethernet padding is not payload
    p = IP(raw)
    assert (p.src, p.dst, p.proto, p.ttl, p.id, p.tos, p.len, p.ihl * 4) == (
        str(r.src), str(r.dst), r.proto, r.ttl, r.ident, r.dscp_ecn, r.header_len() + r.payload_len,
        r.header_len())
    assert (bool(p.flags.DF), bool(p.flags.MF), p.frag * 8) == (r.dont_frag, r.more_frags, r.frag_offset)
    assert scapy_ip_checksum_ok(raw)


@pytest.mark.parametrize(
    ("patch", "error"),
    [
        ({0: 0x65}, BadVersion),  # version 6
        ({0: 0x44}, BadLength),  # IHL 4
        ({0: 0x4F}, BadLength),  # IHL*4 = 60 > total length 25
        ({2: 0x00, 3: 0x13}, BadLength),  # total length 19 < 20
        ({2: 0x00, 3: 0x1A}, Truncated),  # total length 26 > 25 bytes
        ({10: 0x00, 11: 0x00}, BadChecksum),
    ],
)
def test_ipv4_each_rule_rejected(patch: dict[int, int], error: type[WireError]) -> None:
    raw = bytearray(emit_ipv4(Ipv4Repr(IP_A, IP_B, 17, 5), b"hello"))
    for i, v in patch.items():
        raw[i] = v
    if 10 not in patch:
        fill_checksum(raw)  # break only the rule under test
    with pytest.raises(error):
        Ipv4Repr.parse(raw)


def test_ipv4_bad_checksum_accepted_when_not_verified() -> None:
    raw = bytearray(emit_ipv4(Ipv4Repr(IP_A, IP_B, 17, 2, ident=9), b"hi"))
    raw[10] ^= 0xFF
    assert Ipv4Repr.parse(raw, verify_checksum=False) == Ipv4Repr(IP_A, IP_B, 17, 2, ident=9)


# == ICMP ===========================================================================================
def test_icmp_scapy_echo_parses() -> None:
    raw = bytes(IP(src=str(IP_A), dst=str(IP_B)) / ICMP(type=8, id=0x4242, seq=7) / Raw(b"ping data"))
    ip = Ipv4Repr.parse(raw)
    m = IcmpRepr.parse(memoryview(raw)[ip.header_len():])
    assert m == IcmpRepr.echo(0x4242, 7, b"ping data")
    assert (m.type, m.code, m.ident, m.seq, m.data) == (8, 0, 0x4242, 7, b"ping data")


@pytest.mark.parametrize(
    ("scapy_icmp", "expected_rest"),
    [
        (ICMP(type=3, code=3), 0),  # port unreachable
        (ICMP(type=3, code=4, nexthopmtu=1400), 1400),  # fragmentation needed: MTU in the low 16 bits
        (ICMP(type=11, code=1), 0),  # reassembly time exceeded
        (ICMP(type=12, code=0, ptr=21), 21 << 24),  # parameter problem: pointer in the top byte
    ],
)
def test_icmp_scapy_errors_parse(scapy_icmp: ICMP, expected_rest: int) -> None:
    quote = bytes(IP(src=str(IP_B), dst=str(IP_A)) / UDP(sport=1000, dport=53))
    raw = bytes(scapy_icmp / Raw(quote))
    m = IcmpRepr.parse(raw)
    assert (m.type, m.code, m.rest, m.data) == (scapy_icmp.type, scapy_icmp.code, expected_rest, quote)


def test_icmp_emit_echo_reply_in_scapy() -> None:
    icmp = IcmpRepr.echo(0xABCD, 0x0102, b"0123456789", reply=True).to_bytes()
    raw = emit_ipv4(Ipv4Repr(IP_B, IP_A, 1, len(icmp)), icmp)
    p = IP(raw)
    assert (p[ICMP].type, p[ICMP].code, p[ICMP].id, p[ICMP].seq) == (0, 0, 0xABCD, 0x0102)
    assert bytes(p[ICMP].payload) == b"0123456789"
    assert scapy_l4_checksum_ok(raw, ICMP)
    assert scapy_ip_checksum_ok(raw)


def test_icmp_emit_dest_unreachable_in_scapy() -> None:
    quote = bytes(IP(src=str(IP_B), dst=str(IP_A), proto=200) / Raw(b"12345678"))
    icmp = IcmpRepr(3, 4, 1280, quote).to_bytes()
    raw = emit_ipv4(Ipv4Repr(IP_B, IP_A, 1, len(icmp)), icmp)
    p = IP(raw)
    assert (p[ICMP].type, p[ICMP].code, p[ICMP].nexthopmtu) == (3, 4, 1280)
    assert scapy_l4_checksum_ok(raw, ICMP)
    assert ck.verify(icmp)


@settings(max_examples=150)
@given(icmp_reprs)
def test_icmp_round_trip(r: IcmpRepr) -> None:
    raw = r.to_bytes()
    assert len(raw) == r.buffer_len() == 8 + len(r.data)
    assert IcmpRepr.parse(raw) == r
    assert IcmpRepr.parse(memoryview(raw)) == r
    assert scapy_checksum(raw) == 0  # the emitted checksum verifies with scapy's implementation


def test_icmp_bad_checksum_rejected_unless_disabled() -> None:
    raw = bytearray(IcmpRepr.echo(1, 2, b"abc").to_bytes())
    raw[-1] ^= 1
    with pytest.raises(BadChecksum):
        IcmpRepr.parse(raw)
    assert IcmpRepr.parse(raw, verify_checksum=False).data == b"abb"


# == UDP ============================================================================================
def test_udp_scapy_datagram_parses() -> None:
    raw = bytes(IP(src=str(IP_A), dst=str(IP_B)) / UDP(sport=5353, dport=53) / Raw(b"query"))
    ip = Ipv4Repr.parse(raw)
    seg = memoryview(raw)[ip.header_len():]
    assert UdpRepr.parse(seg, int(IP_A), int(IP_B)) == UdpRepr(5353, 53, 5)


def test_udp_scapy_datagram_with_zero_checksum_parses() -> None:
    raw = bytes(UDP(sport=1, dport=2, chksum=0) / Raw(b"unchecked"))
    assert UdpRepr.parse(raw, int(IP_A), int(IP_B)) == UdpRepr(1, 2, 9)


def test_udp_emit_parses_in_scapy() -> None:
    seg = emit_udp(40000, 7, b"echo me", IP_A, IP_B)
    raw = emit_ipv4(Ipv4Repr(IP_A, IP_B, 17, len(seg)), seg)
    p = IP(raw)
    assert (p[UDP].sport, p[UDP].dport, p[UDP].len) == (40000, 7, 15)
    assert bytes(p[UDP].payload) == b"echo me"
    assert scapy_l4_checksum_ok(raw, UDP)


@settings(max_examples=150)
@given(ports, ports, st.binary(max_size=100), addrs, addrs, st.binary(max_size=20))
def test_udp_round_trip(sp: int, dp: int, payload: bytes, src: IPv4Address, dst: IPv4Address,
                        trailing: bytes) -> None:
    seg = emit_udp(sp, dp, payload, src, dst)
    assert UdpRepr.parse(seg, int(src), int(dst)) == UdpRepr(sp, dp, len(payload))
    assert UdpRepr.parse(seg + trailing, int(src), int(dst)) == UdpRepr(sp, dp, len(payload))
    assert seg[6:8] != b"\x00\x00"  # an emitted checksum is never "none"
    raw = emit_ipv4(Ipv4Repr(src, dst, 17, len(seg)), seg)
    assert scapy_l4_checksum_ok(raw, UDP)


def _payload_summing_to_zero_checksum(src: IPv4Address, dst: IPv4Address) -> bytes:
    """A payload whose UDP checksum computes to 0 before the RFC 768 rule: 2 free bytes absorb the sum."""
    body = b"\x00\x00zero-sum"
    hdr = struct.pack("!HHHH", 1234, 5678, 8 + len(body), 0)
    c = ref_checksum(hdr + body, ck.pseudo_header_sum(int(src), int(dst), 17, 8 + len(body)))
    assert c != 0
    return struct.pack("!H", c) + body[2:]


def test_udp_zero_checksum_is_sent_as_ffff() -> None:
    payload = _payload_summing_to_zero_checksum(IP_A, IP_B)
    seg = emit_udp(1234, 5678, payload, IP_A, IP_B)
    assert seg[6:8] == b"\xff\xff"
    hdr0 = seg[:6] + b"\x00\x00"
    assert wudp.checksum(hdr0, payload, int(IP_A), int(IP_B)) == 0xFFFF
    assert UdpRepr.parse(seg, int(IP_A), int(IP_B)) == UdpRepr(1234, 5678, len(payload))
    raw = emit_ipv4(Ipv4Repr(IP_A, IP_B, 17, len(seg)), seg)
    assert IP(raw)[UDP].chksum == 0xFFFF
    assert scapy_l4_checksum_ok(raw, UDP)  # scapy applies the same rule


@pytest.mark.parametrize(
    ("patch", "error"),
    [
        ({4: 0x00, 5: 0x07}, BadLength),  # length field 7 < 8
        ({4: 0x00, 5: 0x20}, Truncated),  # length field 32 > 13 bytes
        ({8: ord("X")}, BadChecksum),
    ],
)
def test_udp_each_rule_rejected(patch: dict[int, int], error: type[WireError]) -> None:
    seg = bytearray(emit_udp(1, 2, b"hello", IP_A, IP_B))
    for i, v in patch.items():
        seg[i] = v
    with pytest.raises(error):
        UdpRepr.parse(seg, int(IP_A), int(IP_B))


def test_udp_checksum_covers_pseudo_header() -> None:
    seg = emit_udp(1, 2, b"hello", IP_A, IP_B)
    with pytest.raises(BadChecksum):
        UdpRepr.parse(seg, int(IP_A), int(IPv4Address("198.18.0.3")))
    assert UdpRepr.parse(seg, int(IP_A), 0, verify_checksum=False) == UdpRepr(1, 2, 5)


# == truncation, trailing bytes, fuzz ===============================================================
_IP_WHOLE = emit_ipv4(Ipv4Repr(IP_A, IP_B, 17, 13, options=b"\x01\x01\x01\x00"),
                      emit_udp(9, 10, b"hello", IP_A, IP_B))
_READERS: dict[str, tuple[Callable[[memoryview], object], bytes]] = {
    "ethernet": (EthernetRepr.parse, bytes(Ether(dst=str(MAC_A), src=str(MAC_B), type=0x0800))),
    "arp": (ArpRepr.parse, bytes(ARP(op=1, hwsrc=str(MAC_A), psrc=str(IP_A), pdst=str(IP_B)))),
    "ipv4": (Ipv4Repr.parse, _IP_WHOLE),
    # Data of small non-zero bytes: no prefix can still verify, so each cut is a BadChecksum or Truncated.
    "icmp": (IcmpRepr.parse, IcmpRepr.echo(1, 1, bytes(range(1, 12))).to_bytes()),
    "udp": (lambda b: UdpRepr.parse(b, int(IP_A), int(IP_B)), emit_udp(9, 10, b"hello", IP_A, IP_B)),
}


@pytest.mark.parametrize("name", sorted(_READERS))
def test_reader_whole_and_truncated_at_every_length(name: str) -> None:
    parse, whole = _READERS[name]
    parse(memoryview(whole))  # whole: parses
    for n in range(len(whole)):
        with pytest.raises(WireError) as info:
            parse(memoryview(whole)[:n])
        assert info.value.layer == name


# ICMP has no length of its own: IPv4's total length trims it (test_ipv4_payload_is_trimmed_to_total_length).
@pytest.mark.parametrize("name", sorted(set(_READERS) - {"icmp"}))
def test_reader_ignores_trailing_bytes(name: str) -> None:
    parse, whole = _READERS[name]
    expected = parse(memoryview(whole))
    padded = whole + b"\x00" * max(1, 60 - len(whole)) + b"\xee"
    assert parse(memoryview(padded)) == expected


def test_ipv4_payload_is_trimmed_to_total_length() -> None:
    padded = _IP_WHOLE + b"\x00" * 20
    r = Ipv4Repr.parse(padded)
    payload = padded[r.header_len():r.header_len() + r.payload_len]
    assert UdpRepr.parse(payload, int(IP_A), int(IP_B)) == UdpRepr(9, 10, 5)
    assert payload[8:] == b"hello"


def reemit(name: str, r: object, data: bytes) -> tuple[bytes, bytes]:
    """(what tcpip emits for the parsed `r`, the bytes of `data` it should reproduce): the header the reader
    consumed (ICMP: the whole message; UDP: the 8-byte header, its payload handed back to emit)."""
    if isinstance(r, EthernetRepr | ArpRepr | Ipv4Repr):
        buf = bytearray(b"\xa5" * (r.header_len() if isinstance(r, Ipv4Repr) else r.buffer_len()))
        r.emit(buf)
        return bytes(buf), data[:len(buf)]
    if isinstance(r, IcmpRepr):
        return r.to_bytes(), data
    assert isinstance(r, UdpRepr), name
    buf = bytearray(b"\xa5" * 8)
    r.emit(buf, int(IP_A), int(IP_B), data[8:8 + r.payload_len])
    return bytes(buf), data[:8]


def assert_round_trip(name: str, data: bytes) -> None:
    """Any bytes a reader accepts come back from emit(parse(x)) byte for byte, or raise only WireError.
    One documented exception: a UDP checksum of 0 ("none", RFC 768) is accepted and emit writes the real one."""
    parse, _ = _READERS[name]
    try:
        r = parse(memoryview(data))
    except WireError:
        return
    out, expected = reemit(name, r, data)
    if name == "udp" and expected[6:8] == b"\x00\x00":
        expected = expected[:6] + out[6:8]
    assert out == expected
    assert parse(memoryview(out + data[len(expected):])) == r


@settings(max_examples=300)
@given(st.sampled_from(sorted(_READERS)), st.binary(max_size=80))
def test_fuzz_readers_raise_only_wire_errors(name: str, data: bytes) -> None:
    assert_round_trip(name, data)


@pytest.mark.parametrize("name", sorted(_READERS))
def test_fuzz_round_trip_of_the_valid_seed(name: str) -> None:
    """The seed frames themselves: the round-trip check is exercised on accepted input every run (random
    bytes rarely pass a checksum)."""
    parse, whole = _READERS[name]
    assert_round_trip(name, whole)
    out, expected = reemit(name, parse(memoryview(whole)), whole)
    assert out == expected
    assert len(out) >= 8


@settings(max_examples=200)
@given(st.sampled_from(sorted(_READERS)), st.data())
def test_fuzz_mutated_valid_frames_raise_only_wire_errors(name: str, data: st.DataObject) -> None:
    _, whole = _READERS[name]
    buf = bytearray(whole)
    for _ in range(data.draw(st.integers(1, 4))):
        buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(u8)
    buf = buf[: data.draw(st.integers(0, len(buf)))]
    assert_round_trip(name, bytes(buf))


# == checksum module ================================================================================
def test_checksum_rfc1071_example() -> None:
    data = bytes.fromhex("0001f203f4f5f6f7")  # RFC 1071 section 3: sum ddf2, checksum 220d
    assert ck.ones_sum(data) == 0xDDF2
    assert ck.checksum(data) == 0x220D


@pytest.mark.parametrize(
    ("data", "expected"),
    [(b"", 0), (b"\x00", 0), (b"\x00\x00\x00", 0), (b"\xff\xff", 0xFFFF), (b"\xff\xff\xff\xff", 0xFFFF),
     (b"\x01", 0x0100), (b"\x12\x34\x56", 0x1234 + 0x5600), (b"\xff\xfe\x00\x01", 0xFFFF)],
)
def test_ones_sum_edges(data: bytes, expected: int) -> None:
    assert ck.ones_sum(data) == expected == ref_ones_sum(data)


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_ones_sum_matches_reference(data: bytes) -> None:
    assert ck.ones_sum(data) == ref_ones_sum(data)
    assert ck.ones_sum(bytearray(data)) == ck.ones_sum(memoryview(data)) == ref_ones_sum(data)


@settings(max_examples=300)
@given(st.binary(max_size=200), u16)
def test_checksum_matches_reference(data: bytes, initial: int) -> None:
    assert ck.checksum(data) == ref_checksum(data) == scapy_checksum(data)
    assert ck.checksum(data, initial) == ref_checksum(data, initial)


@settings(max_examples=300)
@given(st.binary(max_size=120), st.lists(st.integers(0, 120), max_size=6), u16,
       st.sampled_from([bytes, bytearray, memoryview]))
def test_checksum_parts_any_split(data: bytes, cuts: list[int], initial: int, kind: type) -> None:
    points = sorted({min(c, len(data)) for c in cuts})
    bounds = [0, *points, len(data)]
    parts = [kind(data[a:b]) for a, b in itertools.pairwise(bounds)]
    assert ck.checksum_parts(parts) == ref_checksum(data)
    assert ck.checksum_parts(parts, initial) == ref_checksum(data, initial)
    assert ck.checksum_parts(iter(parts), initial) == ck.checksum(data, initial)


def test_checksum_parts_odd_splits_exact() -> None:
    data = bytes(range(1, 14))
    want = ref_checksum(data)
    assert ck.checksum_parts([data[:1], data[1:4], data[4:5], data[5:]]) == want
    assert ck.checksum_parts([b"", data[:3], b"", data[3:]]) == want
    assert ck.checksum_parts([bytes([b]) for b in data]) == want
    assert ck.checksum_parts([]) == 0xFFFF


@settings(max_examples=200)
@given(st.binary(min_size=2, max_size=100).map(lambda b: b + b"\x00" * (len(b) % 2)), u16)
def test_verify_accepts_inserted_checksum_and_rejects_a_flip(data: bytes, initial: int) -> None:
    buf = bytearray(b"\x00\x00" + data)
    c = ck.checksum(buf, initial)
    buf[0:2] = c.to_bytes(2, "big")
    assert ck.verify(buf, initial)
    buf[2] ^= 0x01
    assert not ck.verify(buf, initial)


@settings(max_examples=200)
@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), u8, u16)
def test_pseudo_header_sum_matches_reference(src: int, dst: int, proto: int, length: int) -> None:
    ph = struct.pack("!IIBBH", src, dst, 0, proto, length)
    assert ck.pseudo_header_sum(src, dst, proto, length) == ref_ones_sum(ph)


@settings(max_examples=200)
@given(st.binary(max_size=60), addrs, addrs)
def test_udp_checksum_function_matches_reference(payload: bytes, src: IPv4Address, dst: IPv4Address) -> None:
    hdr = struct.pack("!HHHH", 7, 9, 8 + len(payload), 0)
    ph = struct.pack("!IIBBH", int(src), int(dst), 0, 17, 8 + len(payload))
    want = ref_checksum(ph + hdr + payload) or 0xFFFF
    assert wudp.checksum(hdr, payload, int(src), int(dst)) == want
