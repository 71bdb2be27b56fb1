"""rx_ack's scoreboard ACK (_sb_ack, the pure ACK's inlined `Scoreboard.ack`) and Scoreboard.sent_run against the
general code: the same records, counters, orders and RACK inputs after every cumulative ACK, across the 2**32 wrap,
with ACKs on and between record edges, records resent (EVER), SACKed ranges and a fack ahead of snd_una."""

from __future__ import annotations

import random
from typing import Any

import pytest

from tcpip.core.tcp.rx_ack import _sb_ack
from tcpip.core.tcp.scoreboard import EVER, Scoreboard, Seg
from tcpip.core.tcp.seq import MASK


def _state(sb: Scoreboard) -> Any:
    segs = [(s.start, s.end, s.xmit, s.flags) for s in sb.segs]
    order = [(s.start, s.end) for s in sb.tsorder]
    return (segs, order, sb.ranges, sb.fack, sb.d_xmit, sb.d_end, sb.sacked_bytes, sb.lost_bytes,
            sb.retrans_bytes, sb.reordered, sb.lostq)


def _board(base: int, sizes: list[int], rng: random.Random, ever: bool, fack_ahead: int) -> Scoreboard:
    sb = Scoreboard()
    seq, t = base, 1.0
    for n in sizes:
        sb.sent_run(seq, n, 1, t)
        seq = (seq + n) & MASK
        t += rng.choice((0.0, 0.001))
    if ever and len(sb.segs) > 3:
        sb.segs[2].flags = EVER  # resent once after a timeout (not in pipe)
    sb.fack = (base + fack_ahead) & MASK
    return sb


@pytest.mark.parametrize("seed", range(40))
def test_sb_ack_is_scoreboard_ack(seed: int) -> None:
    rng = random.Random(seed)
    base = rng.choice((0, MASK - 3000, 1 << 31, rng.getrandbits(32)))
    sizes = [rng.choice((1448, 1448, 1448, 376, 1)) for _ in range(rng.randint(1, 40))]
    ever, ahead = seed % 3 == 1, (1448 if seed % 5 == 2 else 0)
    a, b = _board(base, sizes, random.Random(seed), ever, ahead), _board(base, sizes, random.Random(seed), ever, ahead)
    if seed % 7 == 3:  # a SACKed range left above una (the general code trims it)
        for sb in (a, b):
            sb.ranges = [((base + 5000) & MASK, (base + 6000) & MASK)]
    top = sum(sizes)
    una = 0
    while una < top:
        una = min(top, una + rng.choice((1, 1448, 2896, 2 * 1448 + 700, 4000)))
        for sb in (a, b):
            sb.now = 2.0 + una
        a.ack((base + una) & MASK)
        _sb_ack(b, (base + una) & MASK)
        assert _state(a) == _state(b)
    assert not a.segs
    assert not a.tsorder


def test_sent_run_records_what_sent_does() -> None:
    a, b = Scoreboard(), Scoreboard()
    start = MASK - 2000
    a.sent_run(start, 1448, 5, 3.5)
    for i in range(5):
        b.sent((start + 1448 * i) & MASK, (start + 1448 * (i + 1)) & MASK, 3.5)
    assert _state(a) == _state(b)
    assert all(type(s) is Seg and s.flags == 0 for s in a.segs)
    assert [s.end for s in a.segs][-1] == (start + 5 * 1448) & MASK
