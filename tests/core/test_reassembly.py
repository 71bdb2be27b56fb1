"""Reassembler: every order and duplicate, overlap/oversize/length rules, timeouts, memory limits."""

from __future__ import annotations

import random
from ipaddress import IPv4Address

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP

from tcpip.core.reassembly import Reassembler, ReassemblyConfig, ReassemblyStats
from tcpip.wire import checksum as ck
from tcpip.wire.ipv4 import Ipv4Repr

SRC = 0xC6120001  # 198.18.0.1
DST = 0xC6120002
ROUTER_ALERT = b"\x94\x04\x00\x00"  # a copied option, so heads with options are exercised

Piece = tuple[bytes, bytes]  # (fragment header, fragment payload)


def datagram(size: int, *, src: int = SRC, ident: int = 0x1234, options: bytes = b"",
             seed: int = 0, df: bool = False) -> bytes:
    """A valid unfragmented datagram (header checksum set) with a pseudo-random payload."""
    r = Ipv4Repr(IPv4Address(src), IPv4Address(DST), 17, size, ttl=61, ident=ident,
                 dont_frag=df, options=options)
    buf = bytearray(r.header_len())
    r.emit(buf)
    return bytes(buf) + random.Random(seed).randbytes(size)


def raw_frag(hdr: bytes, off: int, data: bytes, more: bool) -> Piece:
    """Header `hdr` rewritten as the fragment at byte offset `off` (test-local, independent of
    core.fragment)."""
    h = bytearray(hdr)
    ff = (h[6] << 8 | h[7]) & 0xC000 | (0x2000 if more else 0) | off >> 3
    h[6:8] = ff.to_bytes(2, "big")
    h[2:4] = (len(h) + len(data)).to_bytes(2, "big")
    h[10:12] = b"\0\0"
    h[10:12] = ck.checksum(h).to_bytes(2, "big")
    return bytes(h), data


def split(dgram: bytes, mtu: int) -> list[Piece]:
    """Fragment `dgram` for `mtu`; later fragments carry a plain 20-byte header."""
    hl = (dgram[0] & 15) * 4
    payload = dgram[hl:]
    out: list[Piece] = []
    pos = 0
    hdr = dgram[:hl]
    while True:
        room = (mtu - len(hdr)) // 8 * 8
        more = pos + room < len(payload)
        data = payload[pos:pos + room] if more else payload[pos:]
        out.append(raw_frag(hdr, pos, data, more))
        pos += len(data)
        if not more:
            return out
        hdr = bytes([0x45]) + dgram[1:20]


def frag(off: int, data: bytes, more: bool, *, src: int = SRC, ident: int = 0x1234,
         options: bytes = b"") -> Piece:
    return raw_frag(datagram(0, src=src, ident=ident, options=options)[:20 + len(options)],
                    off, data, more)


def feed(r: Reassembler, pieces: list[Piece], now: float = 0.0) -> list[bytearray]:
    outs = []
    for h, d in pieces:
        out = r.process(memoryview(h), memoryview(d), now)
        if out is not None:
            outs.append(out)
    return outs


def assert_valid_ip(out: bytes) -> None:
    """Independent oracle: scapy parses it and agrees on length and checksum."""
    p = IP(out)
    assert p.len == len(out)
    assert p.flags.MF == 0
    assert p.frag == 0
    q = p.copy()
    del q.chksum
    assert IP(bytes(q)).chksum == p.chksum


# -- every order, with duplicates --------------------------------------------------------------


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[bytes, list[Piece], int]:
    options = draw(st.sampled_from([b"", ROUTER_ALERT]))
    mtu = draw(st.one_of(st.integers(68, 9000), st.integers(68, 600)))
    first = (mtu - 20 - len(options)) // 8 * 8
    room = (mtu - 20) // 8 * 8
    most = 65515 - len(options)
    count = draw(st.one_of(st.integers(2, 6), st.integers(2, 2 + (most - first - 1) // room)))
    low = first + (count - 2) * room + 1  # the payload needs exactly `count` fragments
    size = draw(st.integers(low, min(first + (count - 1) * room, most)))
    dgram = datagram(size, options=options, seed=draw(st.integers(0, 2**32 - 1)),
                     df=draw(st.booleans()))
    pieces = split(dgram, mtu)
    perm = draw(st.permutations(range(len(pieces))))
    order = [pieces[i] for i in perm]
    # Duplicates of any piece but the final one, inserted before it: all meet the live queue.
    dups = draw(st.lists(st.tuples(st.sampled_from(perm[:-1]), st.integers(0, len(order) - 1)),
                         max_size=6))
    for src_i, pos in sorted(dups, key=lambda t: -t[1]):
        order.insert(pos, pieces[src_i])
    return dgram, order, len(dups)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_any_order_with_duplicates_delivers_once(s: tuple[bytes, list[Piece], int]) -> None:
    dgram, order, ndups = s
    event(f"fragments: <= {10 ** len(str(len(order) - ndups - 1))}")
    r = Reassembler(ReassemblyConfig(max_fragments=2048))  # mtu 68 needs up to 1365 fragments
    outs = feed(r, order)
    assert outs == [bytearray(dgram)]
    assert r.stats == ReassemblyStats(fragments=len(order), accepted=len(order) - ndups,
                                      reassembled=1, duplicates=ndups)
    assert (len(r), r.memory, r.poll_at()) == (0, 0, None)
    assert_valid_ip(bytes(outs[0]))


@pytest.mark.parametrize(("order", "dups", "left"), [
    ("43210", 0, 0), ("01234", 0, 0), ("40312", 0, 0),
    ("1202103341", 4, 1),  # the final '1' comes after completion: it opens a new queue
])
def test_known_orders_pytcp_style(order: str, dups: int, left: int) -> None:
    dgram = datagram(4000, options=ROUTER_ALERT, seed=7)
    pieces = split(dgram, 1000)
    assert len(pieces) == 5
    r = Reassembler()
    outs = feed(r, [pieces[int(c)] for c in order])
    assert outs == [bytearray(dgram)]
    assert (r.stats.duplicates, len(r)) == (dups, left)
    assert bytes(outs[0][:24]) == dgram[:24]  # offset-0 header and its options


def test_output_keeps_df_clears_mf_and_offset() -> None:
    dgram = datagram(100, df=True)
    pieces = split(dgram, 68)
    out = feed(Reassembler(), pieces[::-1])[0]
    assert out == dgram
    assert (out[6], out[7]) == (0x40, 0)


# -- drop rules ----------------------------------------------------------------------------------


def test_exact_duplicate_dropped_alone() -> None:
    a, b, c = split(datagram(40, seed=1), 36)  # 16 + 16 + 8 data bytes
    r = Reassembler()
    assert feed(r, [a, b, b]) == []
    assert r.memory == 32 + 2 * r.config.fragment_overhead  # the duplicate held nothing
    assert feed(r, [c]) == [bytearray(datagram(40, seed=1))]
    assert r.stats == ReassemblyStats(fragments=4, accepted=3, reassembled=1, duplicates=1)


@pytest.mark.parametrize(("off", "length"), [(8, 16), (8, 8), (0, 8), (0, 24), (8, 32)])
def test_any_overlap_discards_datagram(off: int, length: int) -> None:
    """Partial overlap, contained, same start, containing: all discard the whole datagram."""
    r = Reassembler()
    assert feed(r, [frag(0, bytes(16), True), frag(off, bytes(length), True)]) == []
    assert r.stats.overlaps == 1
    assert (len(r), r.memory) == (0, 0)
    # The rest of the datagram cannot bring it back.
    assert feed(r, [frag(16, bytes(16), True), frag(32, bytes(3), False)]) == []
    assert r.stats.reassembled == 0


def test_overlap_with_next_fragment() -> None:
    r = Reassembler()
    feed(r, [frag(16, bytes(8), False), frag(8, bytes(16), True)])
    assert r.stats == ReassemblyStats(fragments=2, accepted=1, overlaps=1)
    assert r.memory == 0


def test_ping_of_death_refused_before_copy() -> None:
    r = Reassembler()
    feed(r, [frag(0, bytes(8), True)])
    feed(r, [frag(65512, bytes(8), False)])  # 20 + 65520 > 65535
    assert r.stats.oversize == 1
    assert (len(r), r.memory) == (0, 0)  # nothing copied, and its queue discarded (Linux ip_frag_queue)
    feed(r, [frag(65504, bytes(11), False)])  # ends at 65515: exactly 65535 with the header
    assert r.stats.oversize == 1
    assert r.stats.accepted == 2


def test_oversize_counts_head_options() -> None:
    r = Reassembler()
    feed(r, [frag(65504, bytes(11), False)])  # fits a 20-byte header, not a 24-byte one
    feed(r, [frag(0, bytes(8), True, options=ROUTER_ALERT)])
    assert r.stats.oversize == 1
    assert r.stats.accepted == 1
    r2 = Reassembler()
    feed(r2, [frag(0, bytes(8), True, options=ROUTER_ALERT), frag(65504, bytes(11), False)])
    assert r2.stats.oversize == 1


@pytest.mark.parametrize("length", [7, 12, 1001])
def test_non_last_bad_length_dropped(length: int) -> None:
    r = Reassembler()
    feed(r, [frag(0, bytes(length), True)])
    assert r.stats == ReassemblyStats(fragments=1, bad_length=1)
    assert (len(r), r.memory) == (0, 0)


def test_last_fragment_any_length() -> None:
    r = Reassembler()
    out = feed(r, [frag(8, bytes(3), False), frag(0, b"abcdefgh", True)])
    assert len(out) == 1
    assert out[0][20:] == b"abcdefgh\0\0\0"


@pytest.mark.parametrize("pieces", [
    [(16, 8, False), (24, 8, False)],   # two different last fragments
    [(16, 8, False), (24, 8, True)],    # data beyond the known end
    [(24, 8, True), (8, 8, False)],     # last fragment ends before held data
])
def test_inconsistent_end_discards(pieces: list[tuple[int, int, bool]]) -> None:
    r = Reassembler()
    feed(r, [frag(o, bytes(n), more) for o, n, more in pieces])
    assert r.stats.inconsistent == 1
    assert (len(r), r.memory) == (0, 0)


def test_too_many_fragments() -> None:
    r = Reassembler()
    feed(r, [frag(8 * i, bytes(8), True) for i in range(64)])
    assert (len(r), r.stats.too_many_fragments) == (1, 0)
    feed(r, [frag(8 * 64, bytes(8), True)])
    assert r.stats.too_many_fragments == 1
    assert (len(r), r.memory) == (0, 0)


def test_64_fragments_complete_and_65535_bytes_from_one_source() -> None:
    dgram = datagram(65515, seed=3)
    pieces = split(dgram, 20 + 1024)
    assert len(pieces) == 64
    assert len(dgram) == 65535
    r = Reassembler()
    assert feed(r, pieces[::-1]) == [bytearray(dgram)]
    assert_valid_ip(dgram)


# -- timeouts ------------------------------------------------------------------------------------


def test_timeout_from_first_fragment_never_extended() -> None:
    r = Reassembler()
    head = frag(0, b"ABCDEFGHIJKLMNOP", True)
    feed(r, [head], now=0.0)
    assert r.poll_at() == 30.0
    feed(r, [frag(16, bytes(8), True)], now=29.0)
    assert r.poll_at() == 30.0  # not extended
    assert r.expire(29.999) == []
    assert len(r) == 1
    # header as received + the first fragment's data, up to 548 bytes in all (a 576-byte ICMP error)
    assert r.expire(30.0) == [head[0] + b"ABCDEFGHIJKLMNOP"]
    assert (len(r), r.memory, r.poll_at()) == (0, 0, None)
    assert r.stats.timeouts == 1
    # The missing fragment after the deadline starts a new, incomplete queue.
    assert feed(r, [frag(24, bytes(1), False)], now=30.5) == []
    assert len(r) == 1


def test_expire_quotes_only_with_offset_zero() -> None:
    r = Reassembler()
    feed(r, [frag(8, bytes(8), True, ident=1)], now=0.0)
    feed(r, [frag(0, bytes(8), True, ident=2)], now=1.0)
    feed(r, [frag(0, bytes(8), True, ident=3)], now=5.0)
    quotes = r.expire(31.0)
    assert [int.from_bytes(q[4:6], "big") for q in quotes] == [2]
    assert len(quotes[0]) == 28
    assert (r.stats.timeouts, len(r), r.poll_at()) == (2, 1, 35.0)


def test_lazy_expiry_in_process_keeps_quote() -> None:
    r = Reassembler()
    head = frag(0, bytes(range(16)), True, ident=9)
    feed(r, [head], now=0.0)
    feed(r, [frag(0, bytes(8), True, ident=10)], now=31.0)  # meets the expired queue
    assert (len(r), r.stats.timeouts) == (1, 1)
    assert r.poll_at() == 30.0  # a quote waits: poll_at is in the past
    assert r.expire(31.0) == [head[0] + bytes(range(16))]
    assert r.poll_at() == 61.0
    feed(r, [frag(0, bytes(8), True, ident=11)], now=62.0)  # ident 10 expires lazily
    feed(r, [frag(0, bytes(8), True, ident=12)], now=93.0)  # ident 11 expires lazily
    assert r.poll_at() == 61.0  # the earliest waiting quote
    assert [int.from_bytes(q[4:6], "big") for q in r.expire(93.0)] == [10, 11]
    assert r.poll_at() == 123.0


# -- memory --------------------------------------------------------------------------------------


def test_config_defaults() -> None:
    c = ReassemblyConfig()
    assert c.per_source_memory == max(c.max_memory // 16, 65535 + 64 * c.fragment_overhead)
    assert c.per_source_memory >= c.max_datagram_cost()
    assert c.max_datagrams == c.max_memory // c.fragment_overhead
    small = ReassemblyConfig(max_memory=100_000)
    assert small.per_source_memory == 65535 + 64 * 128
    with pytest.raises(ValueError, match="per_source_memory"):
        ReassemblyConfig(max_memory=10_000)
    with pytest.raises(ValueError, match="positive"):
        ReassemblyConfig(timeout=0)


def test_flood_from_many_sources_keeps_memory_and_lets_prompt_source_complete() -> None:
    r = Reassembler()
    cap = r.config.max_memory
    good = [datagram(4000, src=SRC, ident=i, seed=i) for i in range(200)]
    good_pieces = [p for d in good for p in split(d, 1500)]
    outs: list[bytearray] = []
    now = 0.0
    g = 0
    for i in range(10_000):
        src = 0x0A000000 + i  # 10k distinct sources, each one never-completed datagram
        feed(r, [frag(0, bytes(1480), True, src=src, ident=i & 0xFFFF)], now)
        assert r.memory <= cap
        if i % 16 == 0 and g < len(good_pieces):
            outs += feed(r, [good_pieces[g]], now)
            g += 1
            assert r.memory <= cap
        now += 0.001
    assert outs == [bytearray(d) for d in good[: g // 3]]
    assert r.stats.evicted > 5000
    assert r.stats.memory_limit == 0


def test_per_source_share() -> None:
    r = Reassembler()
    share = r.config.per_source_memory
    other = 0xC6120063
    first = split(datagram(3000, src=other, seed=5), 1500)
    feed(r, first[:1])  # another source's datagram is pending during the flood
    for i in range(1000):
        feed(r, [frag(0, bytes(1480), True, ident=i)])
        assert r.source_memory(SRC) <= share
    assert r.stats.source_limit > 0
    assert r.stats.evicted == 0
    assert feed(r, first[1:]) == [bytearray(datagram(3000, src=other, seed=5))]
    # The flooder itself still completes nothing new: it is at its share.
    held = r.source_memory(SRC)
    assert share - held < 1480 + r.config.fragment_overhead


def test_max_datagram_fits_share_after_flood_of_others() -> None:
    r = Reassembler()
    for i in range(5000):
        feed(r, [frag(0, bytes(1480), True, src=0x0A000000 + i, ident=1)])
    dgram = datagram(65515, seed=11)
    assert feed(r, split(dgram, 20 + 1024)) == [bytearray(dgram)]
    assert r.memory <= r.config.max_memory


def test_max_datagrams_evicts_oldest() -> None:
    r = Reassembler(ReassemblyConfig(max_datagrams=3))
    for i in range(5):
        feed(r, [frag(0, bytes(8), True, ident=i)], now=float(i))
    assert (len(r), r.stats.datagram_limit) == (3, 2)
    assert r.poll_at() == 32.0  # idents 0 and 1 (the oldest) went
    assert r.memory == 3 * (8 + r.config.fragment_overhead)


def test_memory_limit_when_nothing_can_be_evicted() -> None:
    r = Reassembler(ReassemblyConfig(max_memory=200_000, per_source_memory=200_000,
                                     fragment_overhead=0))
    dgram = datagram(65515, seed=2)
    pieces = split(dgram, 1500)
    feed(r, pieces[:-1])
    assert r.memory == 65515 - len(pieces[-1][1])
    r2 = Reassembler(ReassemblyConfig(max_memory=1000, per_source_memory=1000, fragment_overhead=0,
                                      max_fragments=8))
    feed(r2, [frag(0, bytes(800), True)])
    feed(r2, [frag(800, bytes(400), True)])  # own queue is never evicted for itself
    assert (r2.stats.memory_limit, r2.stats.source_limit) == (0, 1)
    r3 = Reassembler(ReassemblyConfig(max_memory=1000, per_source_memory=900, fragment_overhead=0,
                                      max_fragments=8))
    feed(r3, [frag(0, bytes(800), True)])
    feed(r3, [frag(0, bytes(800), True, src=SRC + 1)])  # evicts the first source's queue
    assert (r3.stats.evicted, len(r3), r3.memory) == (1, 1, 800)
