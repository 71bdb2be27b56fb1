"""DNS wire format: scapy's DNS as the oracle both ways, hypothesis round trips, compression pointer rules,
label/name limits, counts against the data, and the fuzz rule (any bytes parse or raise WireError)."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.all import DNS, DNSQR, DNSRR, DNSRROPT, raw

from tcpip.errors import BadLength, BadName, BadOption, PointerLoop, Truncated, WireError
from tcpip.wire.dns import (
    QR,
    RA,
    RD,
    TC,
    DnsMessage,
    Edns,
    Question,
    Rcode,
    Record,
    RType,
    canonical,
    encode_name,
    name_key,
    read_name,
    to_text,
)


def ip(s: str) -> int:
    return int(IPv4Address(s))


# -- strategies -------------------------------------------------------------------------------------
@st.composite
def names(draw: st.DrawFn, binary: bool = True) -> str:
    alphabet = st.binary(min_size=1, max_size=63) if binary else st.text(
        "abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=63).map(str.encode)
    labels: list[bytes] = draw(st.lists(alphabet, max_size=6))
    while sum(len(lb) + 1 for lb in labels) + 1 > 255:
        labels.pop()
    return to_text(labels)


u32 = st.integers(0, 2**31 - 1)
records = st.one_of(
    st.builds(Record, names(), st.just(RType.A), u32, st.integers(0, 2**32 - 1)),
    st.builds(Record, names(), st.just(RType.CNAME), u32, names()),
)
edns = st.none() | st.builds(Edns, st.integers(0, 0xFFFF), st.integers(0, 255), st.integers(0, 255), st.booleans())
messages = st.builds(
    DnsMessage, st.integers(0, 0xFFFF), st.integers(0, 0xFFFF),
    st.lists(st.builds(Question, names(), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)), max_size=3).map(tuple),
    st.lists(records, max_size=6).map(tuple), edns)


# -- round trips and the oracle ---------------------------------------------------------------------
@given(messages)
def test_round_trip(m: DnsMessage) -> None:
    assert DnsMessage.parse(m.emit()) == m


def test_compression_keeps_each_names_case() -> None:
    """Hypothesis's example: "W" then "w" came back "W", "W" (a pointer to the first copy, matched without case)."""
    m = DnsMessage(0, 0, (), (Record("W", RType.A, 0, 0), Record("w", RType.A, 0, 0),
                              Record("a.Example", RType.A, 0, 1), Record("b.example", RType.A, 0, 2)), None)
    wire = m.emit()
    assert DnsMessage.parse(wire) == m
    assert [r.name for r in DnsMessage.parse(wire).answers] == ["W", "w", "a.Example", "b.example"]


@given(names())
def test_name_text_round_trip(name: str) -> None:
    assert to_text(encode_name(name)) == name
    assert canonical(name + ".") == name


@given(st.integers(0, 0xFFFF), names(binary=False), st.booleans())
def test_query_parses_in_scapy(id_: int, name: str, with_edns: bool) -> None:
    q = DnsMessage.query(id_, name, edns=Edns() if with_edns else None)
    s = DNS(q.emit())
    assert (s.id, s.qr, s.rd, s.opcode, s.qdcount, s.ancount) == (id_, 0, 1, 0, 1, 0)
    assert s.qd[0].qname.decode() == name + "."
    assert (s.qd[0].qtype, s.qd[0].qclass) == (1, 1)
    if with_edns:
        assert (s.arcount, s.ar[0].type, s.ar[0].rclass) == (1, 41, 1232)
    else:
        assert s.arcount == 0


def scapy_response(**kw: object) -> bytes:
    return raw(DNS(id=7, qr=1, rd=1, ra=1, qd=[DNSQR(qname="www.example.test")], an=[
        DNSRR(rrname="www.example.test", type="CNAME", rdata="srv.example.test", ttl=30),
        DNSRR(rrname="srv.example.test", type="A", rdata="198.18.0.5", ttl=60),
        DNSRR(rrname="srv.example.test", type="AAAA", rdata="2001:db8::1", ttl=60),
        DNSRR(rrname="srv.example.test", type="A", rdata="198.18.0.6", ttl=60)],
        ns=[DNSRR(rrname="example.test", type="NS", rdata="ns.example.test", ttl=60)],
        ar=[DNSRROPT(rclass=1232)], **kw))


def test_scapy_response_parses() -> None:
    m = DnsMessage.parse(scapy_response())
    assert (m.id, m.is_response, m.truncated, m.rcode) == (7, True, False, Rcode.NOERROR)
    assert m.questions == (Question("www.example.test"),)
    assert m.answers == (Record("www.example.test", RType.CNAME, 30, "srv.example.test"),
                         Record("srv.example.test", RType.A, 60, ip("198.18.0.5")),
                         Record("srv.example.test", RType.A, 60, ip("198.18.0.6")))
    assert m.skipped == 2  # AAAA answer, NS authority
    assert m.edns is not None
    assert m.edns.udp_payload == 1232


def test_scapy_flags_rcode_and_tc() -> None:
    m = DnsMessage.parse(raw(DNS(id=9, qr=1, tc=1, rcode=3, qd=[DNSQR(qname="x.test")])))
    assert (m.truncated, m.rcode, m.flags & QR) == (True, Rcode.NXDOMAIN, QR)


def test_emitted_response_parses_in_scapy_with_compression() -> None:
    m = DnsMessage(7, QR | RD | RA, (Question("www.example.test"),), (
        Record("www.example.test", RType.CNAME, 30, "srv.example.test"),
        Record("srv.example.test", RType.A, 60, ip("198.18.0.5"))), Edns())
    b = m.emit()
    assert len(b) < len(scapy_response())  # compressed: each suffix written once
    assert b.count(b"\x07example\x04test\x00") == 1
    s = DNS(b)
    assert (s.id, s.qr, s.ancount, s.arcount) == (7, 1, 2, 1)
    assert s.an[0].rdata == b"srv.example.test."
    assert (s.an[1].rrname, s.an[1].rdata, s.an[1].ttl) == (b"srv.example.test.", "198.18.0.5", 60)
    assert s.ar[0].rclass == 1232


def test_edns_extended_rcode() -> None:
    m = DnsMessage(1, QR | 0x0, edns=Edns(ext_rcode=1))  # BADVERS = 16
    assert DnsMessage.parse(m.emit()).rcode == 16


def test_names_compare_case_insensitively_and_escape() -> None:
    assert name_key("WwW.ExAmple.TEST") == name_key("www.example.test")
    assert to_text([b"a.b", b"c d", b"\\"]) == "a\\046b.c\\032d.\\092"
    assert encode_name("a\\046b.c\\ d.\\\\") == [b"a.b", b"c d", b"\\"]
    assert canonical("\\065bc.") == "Abc"


# -- malformed names ---------------------------------------------------------------------------------
HDR_1Q = struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0)


@pytest.mark.parametrize(("body", "exc"), [
    (b"\xc0\x0c\x00\x01\x00\x01", PointerLoop),  # points at itself
    (b"\xc0\x0e\x00\x00\x01\x00\x01", PointerLoop),  # forwards
    (b"\x01a\xc0\x0c\x00\x01\x00\x01", PointerLoop),  # back to its own start: a loop of one label
    (b"\xc0\x02\x00\x01\x00\x01", PointerLoop),  # into the header
    (b"\x40" + b"a" * 64 + b"\x00\x00\x01\x00\x01", BadName),  # extended label type 01
    (b"\x80a\x00\x00\x01\x00\x01", BadName),
    ((b"\x3f" + b"a" * 63) * 4 + b"\x00\x00\x01\x00\x01", BadName),  # 257 bytes on the wire
    (b"\x05ab", Truncated),
    (b"\x01a", Truncated),  # no root label
    (b"\xc0", Truncated),
    (b"\x01a\x00\x00\x01\x00", Truncated),  # question type/class cut
])
def test_bad_names(body: bytes, exc: type[WireError]) -> None:
    with pytest.raises(exc):
        DnsMessage.parse(HDR_1Q + body)


def test_name_of_255_bytes_is_accepted_and_256_is_not() -> None:
    ok = (b"\x3f" + b"a" * 63) * 3 + b"\x3d" + b"a" * 61 + b"\x00"
    assert len(ok) == 255
    assert len(read_name(b"\0" * 12 + ok, 12)[0]) == 253
    too_long = (b"\x3f" + b"a" * 63) * 3 + b"\x3e" + b"a" * 62 + b"\x00"
    assert len(too_long) == 256
    with pytest.raises(BadName):
        read_name(b"\0" * 12 + too_long, 12)


def test_pointer_chain_backwards_is_fine() -> None:
    b = HDR_1Q[:4] + struct.pack("!HHHH", 3, 0, 0, 0) + b"\x04test\x00\x00\x01\x00\x01" + \
        b"\x01b\xc0\x0c\x00\x01\x00\x01" + b"\x01a\xc0\x16\x00\x01\x00\x01"
    assert [q.name for q in DnsMessage.parse(b).questions] == ["test", "b.test", "a.b.test"]


def test_encode_name_limits() -> None:
    with pytest.raises(BadName):
        encode_name("a" * 64 + ".test")
    with pytest.raises(BadName):
        encode_name(".".join(["a" * 63] * 4))
    with pytest.raises(BadName):
        encode_name("a..b")
    with pytest.raises(BadName):
        encode_name("café.test")
    encode_name("a" * 63 + ".test")


# -- counts, records, OPT ---------------------------------------------------------------------------
RESP = DnsMessage(5, QR | RD | RA, (Question("a.test"),), (Record("a.test", RType.A, 10, ip("198.18.0.9")),),
                  Edns()).emit()


def test_counts_must_match_the_data() -> None:
    for field in (2, 3, 4, 5):  # one more question/answer/authority/additional than there is
        bad = bytearray(RESP)
        struct.pack_into("!H", bad, field * 2, struct.unpack_from("!H", RESP, field * 2)[0] + 1)
        with pytest.raises(WireError):
            DnsMessage.parse(bad)
    bad = bytearray(RESP)
    struct.pack_into("!H", bad, 10, 0)  # arcount 0: the OPT record is left over
    with pytest.raises(BadLength):
        DnsMessage.parse(bad)
    with pytest.raises(BadLength):
        DnsMessage.parse(RESP + b"\0")


def test_every_truncation_raises() -> None:
    for n in range(len(RESP)):
        with pytest.raises(WireError):
            DnsMessage.parse(RESP[:n])


def test_a_record_of_wrong_length_and_cname_overrun() -> None:
    hdr = struct.pack("!HHHHHH", 1, QR, 0, 1, 0, 0)
    with pytest.raises(BadLength):
        DnsMessage.parse(hdr + b"\x01a\x00" + struct.pack("!HHIH", 1, 1, 5, 5) + b"12345")
    with pytest.raises(BadLength):
        DnsMessage.parse(hdr + b"\x01a\x00" + struct.pack("!HHIH", 5, 1, 5, 4) + b"\x01b\x00\x00")
    m = DnsMessage.parse(hdr + b"\x01a\x00" + struct.pack("!HHIH", 1, 1, 0x80000000, 4) + b"\x01\x02\x03\x04")
    assert m.answers[0].ttl == 0  # RFC 2181: top bit set means zero


def test_opt_placement() -> None:
    opt = b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 0)
    with pytest.raises(BadOption):
        DnsMessage.parse(struct.pack("!HHHHHH", 1, QR, 0, 1, 0, 0) + opt)  # in the answer section
    with pytest.raises(BadOption):
        DnsMessage.parse(struct.pack("!HHHHHH", 1, QR, 0, 0, 0, 2) + opt + opt)  # twice
    with pytest.raises(BadOption):
        DnsMessage.parse(struct.pack("!HHHHHH", 1, QR, 0, 0, 0, 1) + b"\x01a\x00" + opt[1:])  # not root
    with_opts = struct.pack("!HHHHHH", 1, QR, 0, 0, 0, 1) + b"\x00" + struct.pack("!HHIH", 41, 512, 0, 8) + \
        struct.pack("!HH", 10, 4) + b"cook"  # an EDNS cookie option, skipped
    assert DnsMessage.parse(with_opts).edns == Edns(512)


def test_query_flags() -> None:
    q = DnsMessage.query(0xBEEF, "x.test")
    assert q.emit()[:4] == b"\xbe\xef\x01\x00"
    assert not q.truncated
    assert DnsMessage.parse(q.emit()).flags & TC == 0


# -- fuzz ---------------------------------------------------------------------------------------------
@given(st.binary(max_size=300))
def test_fuzz_any_bytes(data: bytes) -> None:
    try:
        m = DnsMessage.parse(data)
    except WireError:
        return
    assert_round_trip(m)


def assert_round_trip(m: DnsMessage) -> None:
    """What tcpip accepted, it emits in its canonical form (names compressed its own way, so not the input's
    bytes), and that form parses back to the same message and re-emits byte for byte."""
    out = m.emit()
    assert DnsMessage.parse(out) == m
    assert DnsMessage.parse(out).emit() == out


@given(st.binary(max_size=200), st.integers(0, 3), st.integers(0, 3), st.integers(0, 3), st.integers(0, 3))
def test_fuzz_with_plausible_header(data: bytes, qd: int, an: int, ns: int, ar: int) -> None:
    try:
        m = DnsMessage.parse(struct.pack("!HHHHHH", 1, QR, qd, an, ns, ar) + data)
    except WireError:
        return
    assert len(m.questions) == qd
    assert_round_trip(m)
