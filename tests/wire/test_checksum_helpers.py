"""Every helper of `tcpip.wire.checksum` against a word-by-word RFC 1071 reference (testlib), with hypothesis:
whole-buffer checksums, parts, partial sums (fold, addr_sum, finish, pseudo-header, IPv4 header from fields)
and the RFC 1624 incremental updates, including the odd lengths, all-zero data and sums of 0xFFFF."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st
from testlib import csum, ref_ones_sum

from tcpip.core.icmp import echo_reply_checksum
from tcpip.wire import checksum as ck

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
data = st.one_of(st.binary(max_size=300), st.integers(0, 40).map(bytes),  # all zero
                 st.integers(1, 20).map(lambda n: b"\xff\xff" * n))  # sums to 0xFFFF


def ref_fold(x: int) -> int:
    while x > 0xFFFF:
        x = (x & 0xFFFF) + (x >> 16)
    return x


def ref_with_initial(d: bytes, initial: int) -> int:
    return ~ref_fold(ref_ones_sum(d) + initial) & 0xFFFF


@given(data)
def test_ones_sum_checksum_and_verify(d: bytes) -> None:
    assert ck.ones_sum(d) == ref_ones_sum(d)
    assert ck.checksum(d) == csum(d)
    assert ck.checksum(memoryview(d)) == csum(d)
    assert ck.verify(d) == (ref_ones_sum(d) == 0xFFFF)
    filled = d + (b"\x00" if len(d) & 1 else b"") + csum(d + (b"\x00" if len(d) & 1 else b"")).to_bytes(2, "big")
    assert ck.verify(filled) == (ref_ones_sum(filled) == 0xFFFF)


@given(data, st.integers(1, 0x3FFFF))
def test_checksum_and_verify_from_a_partial_sum(d: bytes, initial: int) -> None:
    assert ck.checksum(d, initial) == ref_with_initial(d, initial)
    assert ck.verify(d, initial) == (ref_fold(ref_ones_sum(d) + initial) == 0xFFFF)


@given(st.lists(st.binary(max_size=40), max_size=6), st.integers(0, 0x3FFFF))
def test_checksum_parts_is_the_checksum_of_the_concatenation(parts: list[bytes], initial: int) -> None:
    whole = b"".join(parts)
    if initial:
        assert ck.checksum_parts(parts, initial) == ref_with_initial(whole, initial)
    else:
        assert ck.checksum_parts(parts) == csum(whole)
    assert ck.checksum_parts([memoryview(p) for p in parts], initial) == ck.checksum(whole, initial)


@given(st.integers(0, 1 << 40))
def test_fold_finish_add(x: int) -> None:
    assert ck.fold(x) == ref_fold(x)
    assert ck.finish(x) == ~ref_fold(x) & 0xFFFF
    a, b = x & 0xFFFF, (x >> 16) & 0xFFFF
    assert ck.add(a, b) == ref_fold(a + b)


@given(u32, u32, st.integers(0, 255), u16)
def test_addr_and_pseudo_header_sums(src: int, dst: int, proto: int, length: int) -> None:
    assert ck.addr_sum(src) == sum(struct.unpack("!HH", src.to_bytes(4, "big")))
    pseudo = struct.pack("!IIBBH", src, dst, 0, proto, length)
    assert ref_fold(ck.pseudo_header_sum(src, dst, proto, length)) == ref_ones_sum(pseudo)


@given(u16, u16, st.integers(0, 0x1FFF) | st.just(0x4000), st.integers(1, 255), st.integers(0, 255), u32, u32)
def test_ipv4_header_checksum_from_fields(total: int, ident: int, ff: int, ttl: int, proto: int, src: int,
                                          dst: int) -> None:
    hdr = struct.pack("!BBHHHBBHII", 0x45, 0, total, ident, ff, ttl, proto, 0, src, dst)
    assert ck.ipv4_header_checksum(total, ident, ff, ttl, proto, src, dst) == csum(hdr)


@given(st.binary(min_size=2, max_size=64).filter(lambda b: len(b) % 2 == 0), st.data())
def test_rfc1624_update_of_one_word(d: bytes, draw: st.DataObject) -> None:
    i = draw.draw(st.integers(0, len(d) // 2 - 1)) * 2
    new = draw.draw(u16)
    old = int.from_bytes(d[i:i + 2], "big")
    after = d[:i] + new.to_bytes(2, "big") + d[i + 2:]
    got = ck.update(csum(d), old, new)
    assert got % 0xFFFF == csum(after) % 0xFFFF  # equal, or the two forms of zero (0x0000 / 0xFFFF)
    if got:
        assert ref_ones_sum(after + got.to_bytes(2, "big")) == 0xFFFF


@given(st.binary(min_size=4, max_size=64).filter(lambda b: len(b) % 2 == 0), st.data())
def test_rfc1624_update_of_a_32_bit_field(d: bytes, draw: st.DataObject) -> None:
    i = draw.draw(st.integers(0, len(d) // 2 - 2)) * 2
    new = draw.draw(u32)
    old = int.from_bytes(d[i:i + 4], "big")
    after = d[:i] + new.to_bytes(4, "big") + d[i + 4:]
    assert ck.update32(csum(d), old, new) % 0xFFFF == csum(after) % 0xFFFF


@given(u16, u16, st.binary(max_size=64))
def test_echo_reply_checksum_matches_a_full_recomputation_and_verifies(ident: int, seq: int, payload: bytes) -> None:
    request = bytearray(struct.pack("!BBHHH", 8, 0, 0, ident, seq) + payload)
    request[2:4] = csum(bytes(request)).to_bytes(2, "big")
    reply = bytearray(request)
    reply[0] = 0
    reply[2:4] = b"\x00\x00"
    got = echo_reply_checksum(int.from_bytes(request[2:4], "big"))
    assert got % 0xFFFF == csum(bytes(reply)) % 0xFFFF  # equal, or the two forms of zero
    assert got != 0  # never 0x0000: it would not verify for an all-zero reply
    reply[2:4] = got.to_bytes(2, "big")
    assert ref_ones_sum(bytes(reply)) == 0xFFFF


def test_echo_reply_checksum_of_an_all_zero_reply_is_ffff() -> None:
    request = bytearray(struct.pack("!BBHI", 8, 0, 0, 0))
    request[2:4] = csum(bytes(request)).to_bytes(2, "big")
    assert echo_reply_checksum(int.from_bytes(request[2:4], "big")) == 0xFFFF == csum(bytes(8))
