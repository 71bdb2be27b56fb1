"""DHCP wire format: scapy's BOOTP/DHCP as the oracle both ways, hypothesis round trips, malformed input rules,
and the fuzz rule (any bytes parse or raise WireError)."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.all import BOOTP, DHCP, raw

from tcpip.errors import BadLength, BadOption, BadVersion, OptionOverload, Truncated, WireError
from tcpip.wire.dhcp import (
    BOOTP_MIN_LEN,
    MIN_LEN,
    DhcpMessage,
    DhcpOptions,
    MessageType,
    Op,
)

MAC = bytes.fromhex("020000000001")


def ip(s: str) -> int:
    return int(IPv4Address(s))


# -- strategies -------------------------------------------------------------------------------------
u32 = st.integers(0, 2**32 - 1)
opt_u32 = st.none() | u32
addr_list = st.lists(u32, min_size=0, max_size=70).map(tuple)  # > 63 addresses: split over two instances
text = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=300)


@st.composite
def options(draw: st.DrawFn) -> DhcpOptions:
    return DhcpOptions(
        message_type=draw(st.none() | st.integers(1, 8)),
        subnet_mask=draw(opt_u32), routers=draw(addr_list), dns_servers=draw(addr_list),
        hostname=draw(st.none() | text), domain_name=draw(st.none() | text),
        mtu=draw(st.none() | st.integers(68, 0xFFFF)), broadcast_address=draw(opt_u32),
        requested_ip=draw(opt_u32), lease_time=draw(opt_u32), renewal_time=draw(opt_u32),
        rebinding_time=draw(opt_u32), server_id=draw(opt_u32),
        parameter_requests=tuple(draw(st.lists(st.integers(0, 255), max_size=300))),
        client_id=draw(st.none() | st.binary(min_size=2, max_size=300)),
    )


@st.composite
def messages(draw: st.DrawFn) -> DhcpMessage:
    return DhcpMessage(
        op=draw(st.sampled_from([Op.BOOTREQUEST, Op.BOOTREPLY])), xid=draw(u32),
        chaddr=draw(st.binary(min_size=6, max_size=6)), options=draw(options()),
        secs=draw(st.integers(0, 0xFFFF)), flags=draw(st.integers(0, 0xFFFF)),
        ciaddr=draw(u32), yiaddr=draw(u32), siaddr=draw(u32), giaddr=draw(u32), hops=draw(st.integers(0, 255)))


OFFER = DhcpMessage(
    Op.BOOTREPLY, 0x12345678, MAC,
    DhcpOptions(message_type=MessageType.OFFER, server_id=ip("198.18.0.1"), lease_time=3600,
                renewal_time=1800, rebinding_time=3150, subnet_mask=ip("255.255.255.0"),
                routers=(ip("198.18.0.1"),), dns_servers=(ip("198.18.0.53"), ip("198.18.0.54")),
                domain_name="test", mtu=1400, broadcast_address=ip("198.18.0.255")),
    yiaddr=ip("198.18.0.10"), siaddr=ip("198.18.0.1"), flags=0x8000)


# -- round trips ------------------------------------------------------------------------------------
@given(messages())
def test_round_trip(m: DhcpMessage) -> None:
    b = m.emit()
    assert len(b) >= BOOTP_MIN_LEN
    assert DhcpMessage.parse(b) == m


@given(messages())
def test_emitted_bytes_parse_in_scapy(m: DhcpMessage) -> None:
    sc = BOOTP(m.emit())
    assert (sc.op, sc.xid, sc.secs, sc.flags, sc.hops) == (m.op, m.xid, m.secs, m.flags, m.hops)
    assert (sc.ciaddr, sc.yiaddr, sc.siaddr, sc.giaddr) == tuple(
        str(IPv4Address(a)) for a in (m.ciaddr, m.yiaddr, m.siaddr, m.giaddr))
    assert bytes(sc.chaddr[:6]) == m.chaddr
    opts = [o for o in sc[DHCP].options if isinstance(o, tuple)]
    names = {o[0] for o in opts}
    o = m.options
    if o.message_type is not None:
        assert ("message-type", o.message_type) in opts
    if o.server_id is not None:
        assert ("server_id", str(IPv4Address(o.server_id))) in opts
    if o.lease_time is not None:
        assert ("lease_time", o.lease_time) in opts
    if o.mtu is not None:
        assert ("interface-mtu", o.mtu) in opts
    assert ("hostname" in names) == (o.hostname is not None)
    assert sc[DHCP].options[-1] in ("end", "pad")


def test_offer_emitted_matches_scapy_fields() -> None:
    sc = BOOTP(OFFER.emit())
    opts = {o[0]: o[1] if len(o) == 2 else o[1:] for o in sc[DHCP].options if isinstance(o, tuple)}
    assert opts["message-type"] == 2
    assert opts["server_id"] == "198.18.0.1"
    assert opts["subnet_mask"] == "255.255.255.0"
    assert opts["router"] == "198.18.0.1"
    assert opts["name_server"] == ("198.18.0.53", "198.18.0.54")
    assert opts["domain"] == b"test"
    assert (opts["lease_time"], opts["renewal_time"], opts["rebinding_time"]) == (3600, 1800, 3150)
    assert opts["interface-mtu"] == 1400
    assert opts["broadcast_address"] == "198.18.0.255"
    assert sc.yiaddr == "198.18.0.10"
    assert sc.flags == 0x8000


def test_scapy_built_message_parses() -> None:
    pkt = BOOTP(op=2, xid=0xCAFEBABE, chaddr=MAC + bytes(10), yiaddr="198.18.0.20", flags=0x8000) / DHCP(options=[
        ("message-type", "ack"), ("server_id", "198.18.0.1"), ("lease_time", 120),
        ("renewal_time", 60), ("rebinding_time", 105), ("subnet_mask", "255.255.255.0"),
        ("router", "198.18.0.1", "198.18.0.2"), ("name_server", "198.18.0.53"),
        ("domain", b"example.test"), ("interface-mtu", 1500), ("broadcast_address", "198.18.0.255"),
        ("hostname", b"host1"), ("client_id", b"\x01" + MAC), ("param_req_list", [1, 3, 6, 15]),
        ("requested_addr", "198.18.0.20"), (224, b"private"), "pad", "end"])
    m = DhcpMessage.parse(raw(pkt))
    assert (m.op, m.xid, m.chaddr, m.yiaddr, m.broadcast) == (2, 0xCAFEBABE, MAC, ip("198.18.0.20"), True)
    assert m.options == DhcpOptions(
        message_type=MessageType.ACK, server_id=ip("198.18.0.1"), lease_time=120, renewal_time=60,
        rebinding_time=105, subnet_mask=ip("255.255.255.0"), routers=(ip("198.18.0.1"), ip("198.18.0.2")),
        dns_servers=(ip("198.18.0.53"),), domain_name="example.test", mtu=1500,
        broadcast_address=ip("198.18.0.255"), hostname="host1", client_id=b"\x01" + MAC,
        parameter_requests=(1, 3, 6, 15), requested_ip=ip("198.18.0.20"))


def test_emit_is_padded_and_zeroes_sname_file() -> None:
    b = DhcpMessage(Op.BOOTREQUEST, 1, MAC, DhcpOptions(message_type=1)).emit()
    assert len(b) == BOOTP_MIN_LEN
    assert b[34:236] == bytes(202)  # chaddr padding, sname, file
    assert b[236:240] == bytes.fromhex("63825363")
    assert b[240:] == bytes([53, 1, 1, 255]) + bytes(BOOTP_MIN_LEN - 244)


def test_long_option_is_split_and_concatenated() -> None:
    cid = bytes(range(256)) + b"xyz"  # 259 bytes: 255 + 4
    b = DhcpMessage(Op.BOOTREQUEST, 1, MAC, DhcpOptions(client_id=cid)).emit()
    assert b[240:242] == bytes([61, 255])
    assert b[497:499] == bytes([61, 4])
    assert DhcpMessage.parse(b).options.client_id == cid


# -- malformed input ---------------------------------------------------------------------------------
def with_options(opts: bytes) -> bytes:
    return OFFER.emit()[:MIN_LEN] + opts


def test_trailing_nul_in_text_is_stripped() -> None:
    assert DhcpMessage.parse(with_options(b"\x0f\x05test\x00\xff")).options.domain_name == "test"


def test_unknown_options_and_pads_are_skipped() -> None:
    m = DhcpMessage.parse(with_options(b"\x00\x00\xe0\x03abc\x35\x01\x05\x2b\x00\xff garbage after end"))
    assert m.options == DhcpOptions(message_type=5)


@pytest.mark.parametrize(("opts", "exc"), [
    (b"\x35\x01\x02", BadOption),  # no END
    (b"", BadOption),  # no options at all, not even END
    (b"\x35", BadOption),  # no length byte
    (b"\x35\x05\x02\xff", BadOption),  # length overruns
    (b"\x34\x01\x01\xff", OptionOverload),
    (b"\x01\x03\xff\xff\xff\xff", BadOption),  # subnet mask of 3 bytes
    (b"\x03\x06\x01\x02\x03\x04\x05\x06\xff", BadOption),  # router list not a multiple of 4
    (b"\x06\x00\xff", BadOption),  # empty DNS list
    (b"\x1a\x02\x00\x10\xff", BadLength),  # MTU 16 < 68
    (b"\x1a\x01\x10\xff", BadOption),
    (b"\x35\x01\x02\x35\x01\x05\xff", BadOption),  # two message types concatenate to length 2
    (b"\x3d\x01\x01\xff", BadOption),  # client id too short
    (b"\x0c\x02\xc3\xa9\xff", BadOption),  # hostname not ASCII
    (b"\x0f\x01\x00\xff", BadOption),  # domain name empty once NULs are stripped
    (b"\x37\x00\xff", BadOption),  # empty parameter request list
])
def test_bad_options_raise(opts: bytes, exc: type[WireError]) -> None:
    with pytest.raises(exc):
        DhcpMessage.parse(with_options(opts))


def test_bad_fixed_header_fields() -> None:
    good = bytearray(OFFER.emit())
    for off, val in ((0, 3), (1, 6), (2, 16), (236, 0)):
        bad = bytearray(good)
        bad[off] = val
        with pytest.raises(BadVersion):
            DhcpMessage.parse(bad)


def test_every_truncation_raises_wire_error() -> None:
    b = OFFER.emit()
    end = MIN_LEN + len(OFFER.options.emit()) - 1  # the END byte
    for n in range(end + 1):
        with pytest.raises(WireError):
            DhcpMessage.parse(b[:n])
    assert DhcpMessage.parse(b[:end + 1]) == OFFER
    with pytest.raises(Truncated):
        DhcpMessage.parse(b[:MIN_LEN - 1])


@given(st.binary(max_size=400))
def test_fuzz_any_bytes(data: bytes) -> None:
    try:
        m = DhcpMessage.parse(data)
    except WireError:
        return
    out = m.emit()  # tcpip's canonical form (its option order and padding, not the input's bytes)
    assert DhcpMessage.parse(out) == m
    assert DhcpMessage.parse(out).emit() == out


@given(st.binary(max_size=200))
def test_fuzz_options_area(data: bytes) -> None:
    try:
        m = DhcpMessage.parse(with_options(data))
    except WireError:
        return
    assert DhcpMessage.parse(m.emit()) == m
    assert DhcpMessage.parse(m.emit()).emit() == m.emit()


def test_header_layout() -> None:
    b = OFFER.emit()
    assert struct.unpack_from("!BBBBI", b) == (2, 1, 6, 0, 0x12345678)
    assert b[16:20] == IPv4Address("198.18.0.10").packed
