"""Fuzzing TCP input (issue 13): hostile segments at a listener, at an established victim connection
(numbers near its real ones: overlaps, edges, options) and blind at a transfer; no exception escapes,
each segment moves at most one outcome counter (TcpStats.accepted() takes the rest), and the transfer
beside it completes byte-identical. The corpus (corpus_tcp/) replays the rules' seeds and finds."""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tcp_fuzz_support import (
    ATTACKER,
    CLIENT,
    LISTEN_PORT,
    SERVER,
    TRANSFER_PORT,
    VICTIM_PORT,
    Link,
    Transfer,
    corpus,
    inject,
    segment,
)

from tcpip.core.tcp.conn import Connection
from tcpip.wire.tcp import fill_checksum

_OPTION = st.one_of(
    st.just(b"\x01"), st.just(b"\x00"),
    st.builds(lambda v: struct.pack("!BBH", 2, 4, v), st.integers(0, 0xFFFF)),
    st.builds(lambda v: bytes([3, 3, v]), st.integers(0, 255)),
    st.just(b"\x04\x02"),
    st.builds(lambda a, b: struct.pack("!BBII", 8, 10, a, b), st.integers(0, 2**32 - 1),
              st.integers(0, 2**32 - 1)),
    st.builds(lambda edges: bytes([5, 2 + 8 * (len(edges) // 2)]) +
              b"".join(struct.pack("!I", e) for e in edges[: len(edges) // 2 * 2]),
              st.lists(st.integers(0, 2**32 - 1), min_size=2, max_size=8)),
    st.binary(min_size=1, max_size=6),  # anything: lengths 0, 1, overruns, unknown kinds
)
_FLAGS = st.one_of(st.integers(0, 255), st.sampled_from([0x02, 0x12, 0x10, 0x18, 0x11, 0x04, 0x14, 0x03,
                                                        0x06, 0x01, 0x00, 0x30]))
_NEAR = st.one_of(st.integers(-70000, 70000), st.sampled_from([0, 1, -1, 65535, 65536, 2**31, -2**31]))


@dataclass
class Hostile:
    target: str
    flags: int
    seq: int
    ack: int
    window: int
    options: bytes
    payload: bytes
    doff: int | None
    urgent: int
    csum: str
    sport: int
    blind: int


HOSTILE = st.builds(
    Hostile, st.sampled_from(["listener", "victim", "victim", "transfer"]), _FLAGS, _NEAR, _NEAR,
    st.integers(0, 0xFFFF), st.lists(_OPTION, max_size=6).map(lambda o: b"".join(o)[:40]),
    st.one_of(st.just(b""), st.binary(max_size=3000)), st.one_of(st.none(), st.integers(0, 15)),
    st.integers(0, 0xFFFF), st.sampled_from(["ok", "ok", "ok", "zero", "bad"]), st.integers(1, 65535),
    st.integers(0, 2**32 - 1))


def _setup() -> tuple[Link, Transfer, Connection]:
    link = Link()
    s, c = link.connect(TRANSFER_PORT)
    victim, _ = link.connect(VICTIM_PORT)
    data = random.Random(5).randbytes(150_000)
    return link, Transfer(link, s, c, data), victim


@given(st.lists(HOSTILE, min_size=1, max_size=25))
def test_hostile_segments_beside_a_transfer(segs: list[Hostile]) -> None:
    link, transfer, victim = _setup()
    server = link.server
    for h in segs:
        transfer.step()
        seq, ack = h.seq, h.ack
        if h.target == "listener":
            sport, dport, src = h.sport, LISTEN_PORT, ATTACKER
            seq += h.blind
        elif h.target == "victim":
            sport, dport, src = VICTIM_PORT, victim.local_port, CLIENT
            seq += victim.rcvbuf.rcv_nxt
            ack += victim.snd_una
        else:  # blind at the transfer: the attacker does not know its numbers
            sport, dport, src = TRANSFER_PORT, LISTEN_PORT, CLIENT
            seq = h.blind
            ack = seq ^ 0x5A5A5A5A
        raw = segment(sport, dport, seq, ack, h.flags, h.window, h.options, h.payload, h.doff, h.urgent,
                      h.csum, src=src)
        inject(server, raw, link.now, src=src)
        assert victim.rcvbuf.readable + victim.rcvbuf.ooo_bytes <= victim.rcvbuf.capacity
    assert transfer.finish() == transfer.data
    st_ = server.stats
    assert 0 <= st_.accepted() <= st_.in_segs
    assert len(server.conns) <= 64 + 2  # half-open bounded by the backlog; cookies beyond


@pytest.mark.parametrize(("name", "target", "raw"), corpus(), ids=[c[0] for c in corpus()])
def test_corpus_replay(name: str, target: str, raw: bytes) -> None:
    link, transfer, victim = _setup()
    b = bytearray(raw)
    src = ATTACKER if target == "listener" else CLIENT
    if target == "victim":  # numbers in the corpus are offsets from the victim's own
        seq, ack = struct.unpack_from("!II", b, 4)
        struct.pack_into("!HHII", b, 0, VICTIM_PORT, victim.local_port, (seq + victim.rcvbuf.rcv_nxt) & 0xFFFFFFFF,
                         (ack + victim.snd_una) & 0xFFFFFFFF)
    if "csum" not in name:
        off = max((b[12] >> 4) * 4, 20) if len(b) >= 20 else len(b)
        hdr = b[:min(off, len(b))]
        fill_checksum(hdr, src, SERVER, bytes(b[len(hdr):]))
        b[: len(hdr)] = hdr
    inject(link.server, bytes(b), link.now, src=src)
    assert transfer.finish() == transfer.data
