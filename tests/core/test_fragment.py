"""fragment(): sizes, offsets, flags, checksums, zero copy, options; scapy as oracle both ways."""

from __future__ import annotations

import random
from ipaddress import IPv4Address
from itertools import pairwise

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP
from scapy.layers.inet import defragment as scapy_defragment
from scapy.layers.inet import fragment as scapy_fragment

from tcpip.core.fragment import copied_options, fragment, fragment_count
from tcpip.core.reassembly import Reassembler, ReassemblyConfig
from tcpip.errors import MessageTooLongError, WouldFragmentError
from tcpip.wire import checksum as ck
from tcpip.wire.ipv4 import Ipv4Repr

Buffer = bytes | bytearray | memoryview
ROUTER_ALERT = b"\x94\x04\x00\x00"  # copied flag set
RECORD_ROUTE = b"\x07\x07\x04" + bytes(4)  # copied flag clear
SECURITY = b"\x82\x0b" + bytes(9)  # copied flag set, odd length


def header(size: int, *, ident: int = 0xBEEF, options: bytes = b"", ff: int = 0) -> bytearray:
    """Datagram header with a wrong total length and checksum: fragment() must fix both. Protocol 253
    (experimental) so scapy keeps the payload raw instead of parsing (and trimming) a UDP header."""
    r = Ipv4Repr(IPv4Address("198.18.0.1"), IPv4Address("198.18.0.2"), 253, size, ttl=64,
                 ident=ident, options=options)
    h = bytearray(r.header_len())
    r.emit(h)
    h[6:8] = ff.to_bytes(2, "big")
    h[2:4] = b"\xff\xff"
    h[10:12] = b"\x12\x34"
    return h


def whole(h: bytes | bytearray, payload: bytes) -> bytes:
    """The valid unfragmented datagram fragment() was given."""
    out = bytearray(h) + payload
    out[2:4] = len(out).to_bytes(2, "big")
    out[10:12] = b"\0\0"
    out[10:12] = ck.checksum(out[: len(h)]).to_bytes(2, "big")
    return bytes(out)


def cut(payload: bytes, points: list[int]) -> list[Buffer]:
    """Payload as scatter-gather parts of mixed types, split at `points`."""
    edges = [0, *sorted(p % (len(payload) + 1) for p in points), len(payload)]
    kinds = (bytes, bytearray, memoryview)
    return [kinds[i % 3](payload[a:b]) for i, (a, b) in enumerate(pairwise(edges))]


def packet(frag: list[Buffer]) -> bytes:
    """One fragment's IP packet (header + data) as bytes."""
    return b"".join(bytes(p) for p in frag)


def check(frags: list[list[Buffer]], h: bytes | bytearray, parts: list[Buffer], mtu: int) -> bytes:
    """Every invariant of one fragmentation; returns the payload the fragments carry."""
    ident = h[4:6]
    base = (int.from_bytes(h[6:8], "big") & 0x1FFF) * 8
    had_mf = bool(h[6] & 0x20)
    pos = base
    data = bytearray()
    for i, (fh, *fparts) in enumerate(frags):
        assert isinstance(fh, bytes)
        size = sum(len(p) for p in fparts)
        assert len(fh) + size <= mtu
        assert ck.verify(fh)
        r = Ipv4Repr.parse(fh + b"".join(bytes(p) for p in fparts))
        assert r.payload_len == size
        assert fh[4:6] == ident
        assert r.frag_offset == pos
        assert r.frag_offset % 8 == 0
        last = i == len(frags) - 1
        assert r.more_frags == (had_mf or not last)
        if not last:
            assert size % 8 == 0
        if len(frags) > 1:
            for p in fparts:  # zero copy: views into the caller's buffers
                assert isinstance(p, memoryview)
                assert any(p.obj is memoryview(q).obj or p.obj is q for q in parts)
        if i < 2 or last:  # scapy agrees on the checksum (sampled: scapy is slow)
            sc = IP(fh + b"".join(bytes(p) for p in fparts))
            q = sc.copy()
            del q.chksum
            assert IP(bytes(q)).chksum == sc.chksum == int.from_bytes(fh[10:12], "big")
        pos += size
        data += b"".join(bytes(p) for p in fparts)
    assert len(frags) == fragment_count(h, len(data), mtu)
    return bytes(data)


def reassemble(frags: list[list[Buffer]]) -> bytes:
    r = Reassembler(ReassemblyConfig(max_fragments=2048))
    outs = []
    for i, (fh, *fparts) in enumerate(frags):
        out = r.process(memoryview(fh), memoryview(b"".join(bytes(p) for p in fparts)), i * 0.01)
        if out is not None:
            outs.append(bytes(out))
    assert len(outs) == 1
    assert (len(r), r.memory) == (0, 0)
    return outs[0]


@pytest.mark.parametrize("mtu", [68, 576, 1500, 9000])
@settings(max_examples=25, deadline=None)
@given(size=st.integers(0, 65515), points=st.lists(st.integers(0, 65515), max_size=4),
       seed=st.integers(0, 2**32 - 1))
def test_fragment_invariants_and_round_trip(mtu: int, size: int, points: list[int],
                                            seed: int) -> None:
    payload = random.Random(seed).randbytes(size)
    h = header(size)
    parts = cut(payload, points)
    frags = fragment(h, parts, mtu)
    event(f"fragments: <= {10 ** len(str(len(frags)))}")
    assert check(frags, h, parts, mtu) == payload
    assert len(frags) == (1 if 20 + size <= mtu else -(-size // ((mtu - 20) // 8 * 8)))
    if len(frags) > 1:
        assert reassemble(frags) == whole(h, payload)
    if 1 < len(frags) <= 100:  # scapy's defragment is quadratic-ish: keep it to real-world counts
        defrag = scapy_defragment([IP(packet(f)) for f in frags])
        assert [bytes(p) for p in defrag] == [whole(h, payload)]
    if len(frags) == 1:
        assert frags[0][1:] == parts  # untouched when it fits
        assert packet(frags[0]) == whole(h, payload)


@pytest.mark.parametrize("mtu", [68, 576, 1500, 9000])
@settings(max_examples=15, deadline=None)
@given(extra=st.integers(0, 65515), seed=st.integers(0, 2**32 - 1))
def test_scapy_fragments_reassemble(mtu: int, extra: int, seed: int) -> None:
    size = min(65515, mtu - 19 + extra)  # scapy's fragment() returns nothing when it would fit
    dgram = whole(header(size), random.Random(seed).randbytes(size))
    frags = scapy_fragment(IP(dgram), fragsize=mtu - 20)
    r = Reassembler(ReassemblyConfig(max_fragments=2048))
    outs = []
    for f in frags:
        b = bytes(f)
        out = r.process(memoryview(b)[:20], memoryview(b)[20:], 0.0)
        if out is not None:
            outs.append(bytes(out))
    assert len(frags) > 1
    assert outs == [dgram]


def test_exact_boundaries_1500() -> None:
    payload = bytes(range(256)) * 12  # 3072 bytes: 1480 + 1480 + 112
    h = header(len(payload))
    frags = fragment(h, [payload], 1500)
    assert [sum(len(p) for p in f[1:]) for f in frags] == [1480, 1480, 112]
    assert [int.from_bytes(f[0][6:8], "big") for f in frags] == [0x2000, 0x2000 | 185, 370]
    assert [int.from_bytes(f[0][2:4], "big") for f in frags] == [1500, 1500, 132]


def test_max_datagram_mtu_68_and_65535() -> None:
    payload = random.Random(1).randbytes(65515)
    h = header(len(payload))
    frags = fragment(h, [payload], 68)
    assert len(frags) == 1365
    assert check(frags, h, [payload], 68) == payload
    assert packet(fragment(h, [payload], 65535)[0]) == whole(h, payload)
    assert len(fragment(h, [payload], 100_000)) == 1


def test_refragmenting_a_fragment_keeps_offset_and_mf() -> None:
    payload = random.Random(2).randbytes(1480)
    for mf in (0x2000, 0):
        h = header(len(payload), ff=mf | 100)  # a fragment at byte offset 800
        frags = fragment(h, [payload], 576)
        assert check(frags, h, [payload], 576) == payload
        offs = [int.from_bytes(f[0][6:8], "big") for f in frags]
        assert offs == [0x2000 | 100, 0x2000 | 169, mf | 238]


def test_options_copied_only_when_flagged() -> None:
    opts = ROUTER_ALERT + RECORD_ROUTE + b"\x01" + SECURITY + b"\x00"  # 24 bytes
    assert copied_options(opts) == ROUTER_ALERT + SECURITY + b"\x00"
    payload = random.Random(3).randbytes(3000)
    h = header(len(payload), options=opts)
    frags = fragment(h, [payload], 576)
    assert frags[0][0][20:44] == opts
    for f in frags[1:]:
        assert f[0][0] == 0x45 + 4  # 20 + 16 bytes of copied options
        assert f[0][20:] == ROUTER_ALERT + SECURITY + b"\x00"
    assert check(frags, h, [payload], 576) == payload
    assert reassemble(frags) == whole(h, payload)
    assert len(frags) == fragment_count(h, 3000, 576)


def test_malformed_options_rejected() -> None:
    with pytest.raises(ValueError, match="option"):
        copied_options(b"\x94\x09\x00\x00")
    with pytest.raises(ValueError, match="option"):
        copied_options(b"\x94")


def test_misuse_raises() -> None:
    h = header(100)
    with pytest.raises(ValueError, match="mtu 67"):
        fragment(h, [bytes(100)], 67)
    with pytest.raises(ValueError, match="IHL"):
        fragment(h[:19], [bytes(100)], 1500)
    df = header(100, ff=0x4000)
    assert len(fragment(df, [bytes(100)], 1500)) == 1
    with pytest.raises(WouldFragmentError):
        fragment(df, [bytes(100)], 68)
    with pytest.raises(MessageTooLongError):
        fragment(header(65515), [bytes(65516)], 1500)


def test_fits_fixes_length_and_checksum_only() -> None:
    parts: list[Buffer] = [b"ab", bytearray(b"cd"), memoryview(b"ef")]
    h = header(6, options=ROUTER_ALERT)
    [f] = fragment(h, parts, 576)
    assert f[1:] == parts
    assert f[0] == whole(h, b"abcdef")[:24]
    assert h[2:4] == b"\xff\xff"  # the caller's header is not modified
