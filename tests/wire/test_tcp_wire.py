"""TCP header parse/emit/checksum: scapy as the oracle both ways, round trips, malformed input, Linux layout."""

from __future__ import annotations

import ipaddress
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcpip.errors import BadLength, Truncated, WireError
from tcpip.wire.tcp import ACK, CWR, ECE, FIN, PSH, RST, SYN, URG, TcpRepr, checksum, fill_checksum, verify

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.layers.inet import IP, TCP  # noqa: E402
from scapy.packet import Raw  # noqa: E402

SRC, DST = 0xC6120001, 0xC6120002  # 198.18.0.1, 198.18.0.2
SRC_S, DST_S = str(ipaddress.IPv4Address(SRC)), str(ipaddress.IPv4Address(DST))

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
edges = st.tuples(u32, u32)


@st.composite
def reprs(draw: st.DrawFn) -> TcpRepr:
    r = TcpRepr(draw(u16), draw(u16), draw(u32), draw(u32), draw(st.integers(0, 255)), draw(u16), draw(u16),
                mss=draw(st.none() | u16), wscale=draw(st.none() | st.integers(0, 255)),
                sack_permitted=draw(st.booleans()), timestamp=draw(st.none() | edges))
    room = (40 - r.options_len() - 4) // 8
    if room > 0:
        r.sack = tuple(draw(st.lists(edges, max_size=room)))
    return r


def emit_segment(r: TcpRepr, payload: bytes) -> bytes:
    buf = bytearray(b"\xa5" * (r.header_len() + len(payload)))  # poison: a forgotten byte shows
    hl = r.emit(buf)
    assert hl == r.header_len()
    buf[hl:] = payload
    fill_checksum(memoryview(buf)[:hl], SRC, DST, payload)
    return bytes(buf)


def linux_options(r: TcpRepr) -> list[tuple[str, object]]:
    """The option list Linux's tcp_options_write produces, in scapy's terms."""
    opts: list[tuple[str, object]] = []
    if r.mss is not None:
        opts.append(("MSS", r.mss))
    if r.timestamp is not None:
        opts += [("SAckOK", b"")] if r.sack_permitted else [("NOP", None), ("NOP", None)]
        opts.append(("Timestamp", r.timestamp))
    elif r.sack_permitted:
        opts += [("NOP", None), ("NOP", None), ("SAckOK", b"")]
    if r.wscale is not None:
        opts += [("NOP", None), ("WScale", r.wscale)]
    if r.sack:
        opts += [("NOP", None), ("NOP", None), ("SAck", tuple(e for b in r.sack for e in b))]
    return opts


def scapy_segment(r: TcpRepr, payload: bytes) -> bytes:
    pkt = IP(src=SRC_S, dst=DST_S) / TCP(sport=r.src_port, dport=r.dst_port, seq=r.seq, ack=r.ack,
                                         flags=r.flags, window=r.window, urgptr=r.urgent,
                                         options=linux_options(r)) / payload
    return bytes(pkt)[20:]


def scapy_fields(seg: bytes) -> TcpRepr:
    """What scapy reads from a segment, as a TcpRepr (last occurrence of an option wins, like Linux)."""
    t = IP(bytes(IP(src=SRC_S, dst=DST_S, proto=6) / Raw(seg)))[TCP]  # wrap in a real IPv4 header, re-dissect
    r = TcpRepr(t.sport, t.dport, t.seq, t.ack, int(t.flags), t.window, t.urgptr)
    for name, val in t.options:
        if name == "MSS":
            r.mss = val
        elif name == "WScale":
            r.wscale = val
        elif name == "SAckOK":
            r.sack_permitted = True
        elif name == "SAck":
            r.sack = tuple(zip(val[0::2], val[1::2], strict=True))
        elif name == "Timestamp":
            r.timestamp = tuple(val)
    return r


# -- scapy as the oracle ---------------------------------------------------------------------------------

@given(reprs(), st.binary(max_size=64))
def test_emit_is_byte_identical_to_scapy_in_linux_layout(r: TcpRepr, payload: bytes) -> None:
    ours = emit_segment(r, payload)
    assert ours == scapy_segment(r, payload)  # header, options layout and checksum
    assert scapy_fields(ours) == r
    assert verify(ours, SRC, DST)


def test_scapy_checksum_equals_ours() -> None:
    r = TcpRepr(40000, 80, 1, 2, ACK | PSH, 501, timestamp=(7, 8))
    seg = emit_segment(r, b"GET / HTTP/1.1\r\n\r\n")
    t = IP(bytes(IP(src=SRC_S, dst=DST_S, proto=6) / Raw(seg)))[TCP]
    rebuilt = t.copy()
    del rebuilt.chksum
    assert t.chksum == int.from_bytes(seg[16:18], "big")
    assert TCP(bytes(IP(src=SRC_S, dst=DST_S) / rebuilt)[20:]).chksum == t.chksum


OPTION = st.one_of(
    st.tuples(st.just("MSS"), u16),
    st.tuples(st.just("WScale"), st.integers(0, 255)),
    st.tuples(st.just("SAckOK"), st.just(b"")),
    st.tuples(st.just("SAck"), st.lists(u32, min_size=2, max_size=8).map(lambda v: tuple(v[: len(v) & ~1]))),
    st.tuples(st.just("Timestamp"), edges),
    st.tuples(st.just("NOP"), st.none()),
    st.tuples(st.sampled_from([6, 7, 9, 15, 99, 200, 253]), st.binary(max_size=6)),  # unknown: skipped
)
OPT_SIZE = {"MSS": 4, "WScale": 3, "SAckOK": 2, "Timestamp": 10, "NOP": 1}


def opt_size(o: tuple[object, object]) -> int:
    name, val = o
    if name == "SAck":
        return 2 + 4 * len(val)  # type: ignore[arg-type]
    if isinstance(name, int):
        return 2 + len(val)  # type: ignore[arg-type]
    return OPT_SIZE[name]  # type: ignore[index]


@given(st.lists(OPTION, max_size=12), u16, st.integers(0, 255), st.binary(max_size=40))
def test_parse_scapy_built_segments(options: list[tuple[object, object]], port: int, flags: int,
                                    payload: bytes) -> None:
    kept: list[tuple[object, object]] = []
    for o in options:  # what fits in 40 bytes of options
        if sum(map(opt_size, kept)) + opt_size(o) <= 40:
            kept.append(o)
    seg = bytes(IP(src=SRC_S, dst=DST_S) / TCP(sport=port, dport=443, seq=0xFFFFFFF0, ack=17, flags=flags,
                                               window=65535, options=kept) / payload)[20:]
    r, data = TcpRepr.parse(memoryview(seg))
    assert r == scapy_fields(seg)
    assert bytes(data) == payload
    assert verify(seg, SRC, DST)
    assert checksum(SRC, DST, [seg[:16], b"\0\0", seg[18:]]) == int.from_bytes(seg[16:18], "big")


# -- round trips ------------------------------------------------------------------------------------------

@given(reprs(), st.binary(max_size=64))
def test_parse_emit_round_trip(r: TcpRepr, payload: bytes) -> None:
    seg = emit_segment(r, payload)
    back, data = TcpRepr.parse(memoryview(seg))
    assert back == r
    assert bytes(data) == payload
    assert emit_segment(back, bytes(data)) == seg  # emit(parse(bytes)) == bytes


@given(reprs(), st.binary(max_size=9), st.integers(1, 8))
def test_checksum_over_parts_and_bit_flips(r: TcpRepr, payload: bytes, cut: int) -> None:
    seg = bytearray(emit_segment(r, payload))
    zeroed = seg[:16] + b"\0\0" + seg[18:]
    parts = [zeroed[:cut], zeroed[cut:19], zeroed[19:]]  # odd split points
    assert checksum(SRC, DST, parts) == int.from_bytes(seg[16:18], "big")
    assert verify(seg, SRC, DST)
    assert not verify(seg, SRC, DST ^ 1)
    seg[cut] ^= 0x10
    assert not verify(seg, SRC, DST)


def test_fill_checksum_ignores_old_field() -> None:
    r = TcpRepr(1, 2, 3, 4, ACK, 5)
    hdr = bytearray(20)
    r.emit(hdr)
    hdr[16:18] = b"\x12\x34"
    fill_checksum(hdr, SRC, DST, b"abc")
    assert bytes(hdr) + b"abc" == emit_segment(r, b"abc")


# -- untrusted input -----------------------------------------------------------------------------------------

@given(st.binary(max_size=80))
def test_any_bytes_parse_or_wire_error(data: bytes) -> None:
    try:
        r, payload = TcpRepr.parse(memoryview(data))
    except WireError:
        return
    assert len(payload) <= len(data) - 20
    assert 0 <= r.src_port <= 0xFFFF
    assert_round_trip(r, bytes(payload))


def assert_round_trip(r: TcpRepr, payload: bytes) -> None:
    """What parse accepted, emit writes in tcpip's layout (unknown options dropped, its own padding), and
    that segment parses back to the same fields and payload and re-emits byte for byte."""
    seg = emit_segment(r, payload)
    back, data = TcpRepr.parse(memoryview(seg))
    assert back == r
    assert bytes(data) == payload
    assert emit_segment(back, bytes(data)) == seg


@given(st.integers(5, 15), st.binary(min_size=40, max_size=40), st.binary(max_size=8))
def test_random_option_bytes_never_raise(doff: int, opts: bytes, payload: bytes) -> None:
    hdr = bytearray(emit_segment(TcpRepr(1, 2, 3, 4, SYN, 5), b""))
    hdr[12] = doff << 4
    seg = bytes(hdr) + opts[: doff * 4 - 20] + payload
    r, data = TcpRepr.parse(memoryview(seg))
    assert bytes(data) == payload
    assert r.sack == () or 1 <= len(r.sack) <= 4
    assert_round_trip(r, payload)


def test_truncated_at_every_length() -> None:
    seg = emit_segment(TcpRepr(1, 2, 3, 4, SYN, 5, mss=1460, wscale=7, sack_permitted=True,
                               timestamp=(1, 0)), b"")
    assert len(seg) == 40
    for n in range(40):
        with pytest.raises(Truncated):
            TcpRepr.parse(memoryview(seg[:n]))
    assert TcpRepr.parse(memoryview(seg))[0].mss == 1460


@pytest.mark.parametrize("doff", [0, 1, 4])
def test_data_offset_below_five(doff: int) -> None:
    seg = bytearray(emit_segment(TcpRepr(1, 2, 3, 4, ACK, 5), b"x" * 30))
    seg[12] = doff << 4
    with pytest.raises(BadLength):
        TcpRepr.parse(memoryview(seg))


def opts_segment(options: bytes) -> memoryview:
    assert len(options) % 4 == 0
    hdr = bytearray(20)
    TcpRepr(1, 2, 3, 4, SYN, 5).emit(hdr)
    hdr[12] = (5 + len(options) // 4) << 4
    return memoryview(bytes(hdr) + options + b"data")


MSS_1460 = b"\x02\x04\x05\xb4"


@pytest.mark.parametrize(("options", "expected"), [
    # malformed option ends parsing, options before it are kept
    (MSS_1460 + b"\x03\x01\x07\x01", TcpRepr(1, 2, 3, 4, SYN, 5, mss=1460)),           # size < 2
    (MSS_1460 + b"\x03\x00\x07\x01" + b"\x04\x02\0\0", TcpRepr(1, 2, 3, 4, SYN, 5, mss=1460)),  # size 0
    (MSS_1460 + b"\x01\x01\x08\x0a" + b"\0" * 4, TcpRepr(1, 2, 3, 4, SYN, 5, mss=1460)),   # runs past end
    (MSS_1460 + b"\x01\x01\x01\x08", TcpRepr(1, 2, 3, 4, SYN, 5, mss=1460)),            # kind without size
    # wrong fixed length: ignored, parsing goes on
    (b"\x02\x03\x05" + b"\x04\x02" + b"\x01" + b"\x03\x03\x07" + b"\x01\x01\x01",
     TcpRepr(1, 2, 3, 4, SYN, 5, sack_permitted=True, wscale=7)),                         # MSS of size 3
    (b"\x03\x04\x07\x00" + b"\x04\x03\x00\x01", TcpRepr(1, 2, 3, 4, SYN, 5)),             # WS 4, SACKOK 3
    (b"\x05\x06\0\0\0\x01" + b"\x01\x01" + MSS_1460, TcpRepr(1, 2, 3, 4, SYN, 5, mss=1460)),  # SACK size 6
    (b"\x08\x08" + b"\0" * 6 + MSS_1460, TcpRepr(1, 2, 3, 4, SYN, 5, mss=1460)),           # TS size 8
    # unknown options skipped, EOL ends (bytes after it are padding)
    (b"\xfd\x06abcd" + b"\x01\x01" + MSS_1460, TcpRepr(1, 2, 3, 4, SYN, 5, mss=1460)),
    (b"\x00" + b"\x02\x04\x05\xb4" + b"\0\0\0", TcpRepr(1, 2, 3, 4, SYN, 5)),
    (MSS_1460 + b"\x00\x03\x03\x07", TcpRepr(1, 2, 3, 4, SYN, 5, mss=1460)),
    # duplicates: the last one wins (Linux overwrites)
    (MSS_1460 + b"\x02\x04\x02\x18", TcpRepr(1, 2, 3, 4, SYN, 5, mss=536)),
    # four SACK blocks fill 34 bytes
    (b"\x01\x01\x05\x22" + bytes(range(32)) + b"\x01\x01\x01\x00",
     TcpRepr(1, 2, 3, 4, SYN, 5, sack=((0x00010203, 0x04050607), (0x08090A0B, 0x0C0D0E0F),
                                        (0x10111213, 0x14151617), (0x18191A1B, 0x1C1D1E1F)))),
])
def test_malformed_and_odd_options(options: bytes, expected: TcpRepr) -> None:
    r, data = TcpRepr.parse(opts_segment(options))
    assert r == expected
    assert bytes(data) == b"data"


# -- Linux byte layout and misc -------------------------------------------------------------------------------

def test_linux_syn_layout() -> None:
    r = TcpRepr(40000, 80, 0x01020304, 0, SYN, 64240, mss=1460, wscale=7, sack_permitted=True,
                timestamp=(0x11223344, 0))
    buf = bytearray(40)
    assert r.emit(buf) == 40
    assert buf.hex() == ("9c400050" "01020304" "00000000" "a002" "faf0" "0000" "0000"
                         "020405b4" "0402080a" "11223344" "00000000" "01030307")


def test_data_segment_layouts() -> None:
    buf = bytearray(60)
    ts = TcpRepr(1, 2, 3, 4, ACK, 5, timestamp=(6, 7))
    assert ts.emit(buf) == 32
    assert buf[12] == 0x80
    assert buf[20:32].hex() == "0101080a" "00000006" "00000007"
    sack = TcpRepr(1, 2, 3, 4, ACK, 5, timestamp=(6, 7), sack=((10, 20), (30, 40), (50, 60)))
    assert sack.emit(buf) == 60
    assert buf[32:36].hex() == "0101051a"
    with pytest.raises(ValueError, match="SACK"):
        TcpRepr(1, 2, 3, 4, ACK, 5, timestamp=(6, 7), sack=((1, 2),) * 4).header_len()


def test_flags_and_reserved_bits() -> None:
    assert (FIN, SYN, RST, PSH, ACK, URG, ECE, CWR) == (1, 2, 4, 8, 16, 32, 64, 128)
    seg = bytearray(emit_segment(TcpRepr(1, 2, 3, 4, 0xFF, 5), b""))
    seg[12] |= 0x0F  # reserved bits and NS: ignored
    r, _ = TcpRepr.parse(memoryview(seg))
    assert r.flags == 0xFF
    assert str(r) == "tcp 1 > 2 [FSRPAUEC] seq 3 ack 4 win 5"


def test_payload_is_a_view_not_a_copy() -> None:
    buf = bytearray(emit_segment(TcpRepr(1, 2, 3, 4, ACK, 5, timestamp=(1, 2)), b"hello"))
    _, payload = TcpRepr.parse(memoryview(buf))
    buf[-1] = ord("!")
    assert bytes(payload) == b"hell!"


def test_scapy_eol_mid_list_ends_parsing() -> None:
    seg = bytes(IP(src=SRC_S, dst=DST_S) / TCP(options=[("MSS", 1400), ("EOL", None), ("NOP", None),
                                                        ("WScale", 5)]))[20:]
    r, _ = TcpRepr.parse(memoryview(seg))
    assert (r.mss, r.wscale) == (1400, None)


def test_emit_at_offset_leaves_the_rest_alone() -> None:
    r = TcpRepr(1, 2, 3, 4, SYN, 5, mss=1460, wscale=7)
    buf = bytearray(b"\xee" * 50)
    assert r.emit(buf, 10) == 28
    assert buf[:10] == b"\xee" * 10
    assert buf[38:] == b"\xee" * 12
    assert TcpRepr.parse(memoryview(buf)[10:38])[0] == r
