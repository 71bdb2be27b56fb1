"""Sender SACK scoreboard (RFC 6675): SACK marking, D-SACK detection (RFC 2883), cumulative ACKs, lost and
retransmitted state behind `pipe`, splits; and on a connection: NextSeg order and the rescue retransmission."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tcp_harness import REMOTE_ISS, Harness

from tcpip.core.tcp.scoreboard import BY_RACK, BY_RTO, EVER, LOST, RETRANS, SACKED, Scoreboard
from tcpip.wire.tcp import ACK

NXT = REMOTE_ISS + 1
BASE = 0xFFFFF000  # sequence numbers wrap inside the window


def s(n: int) -> int:
    return (BASE + n) & 0xFFFFFFFF


def board(n: int = 10, size: int = 1000) -> Scoreboard:
    sb = Scoreboard()
    for i in range(n):
        sb.sent(s(i * size), s((i + 1) * size), 1.0)
    return sb


def spans(sb: Scoreboard) -> list[tuple[int, int, int]]:
    return [((x.start - BASE) & 0xFFFFFFFF, (x.end - BASE) & 0xFFFFFFFF, x.flags) for x in sb.segs]


def test_sack_blocks_mark_segments_and_merge_ranges() -> None:
    sb = board()
    assert sb.sack(((s(2000), s(4000)),), s(0), s(10000), s(0)) == (2000, None)
    assert sb.ranges == [(s(2000), s(4000))]
    assert sb.sack(((s(5000), s(6000)), (s(2000), s(4000))), s(0), s(10000), s(0)) == (1000, None)
    assert sb.ranges == [(s(2000), s(4000)), (s(5000), s(6000))]
    assert sb.sacked_bytes == 3000
    assert [f for _, _, f in spans(sb)] == [0, 0, SACKED, SACKED, 0, SACKED, 0, 0, 0, 0]
    # the same blocks again tell nothing new; blocks past snd_max or empty are ignored
    assert sb.sack(((s(5000), s(6000)), (s(2000), s(4000))), s(0), s(10000), s(0)) == (0, None)
    assert sb.sack(((s(9000), s(11000)), (s(7000), s(7000))), s(0), s(10000), s(0)) == (0, None)
    # a block bridging two ranges merges them and marks only the segment between
    assert sb.sack(((s(3000), s(6000)),), s(0), s(10000), s(0)) == (1000, None)
    assert sb.ranges == [(s(2000), s(6000))]
    assert sb.tsorder.keys() == {x for x in sb.segs if not x.flags & SACKED}  # RACK walks only unSACKed


def test_dsack_below_the_ack_or_inside_the_second_block() -> None:
    sb = board()
    sb.ack(s(3000))
    assert sb.sack(((s(1000), s(2000)),), s(3000), s(10000), s(3000)) == (0, (s(1000), s(2000)))
    assert sb.sack(((s(5000), s(6000)), (s(4000), s(7000))), s(3000), s(10000), s(3000)) == \
        (3000, (s(5000), s(6000)))
    # an old ACK arriving late (its own ACK field is lower) carries no D-SACK, just stale blocks
    assert sb.sack(((s(2000), s(3000)),), s(3000), s(10000), s(1000)) == (0, None)


def test_cumulative_ack_drops_records_and_reports_sacked_bytes() -> None:
    sb = board()
    sb.sack(((s(2000), s(4000)),), s(0), s(10000), s(0))
    assert sb.ack(s(3000)) == 1000  # 2000..3000 was SACKed before: not newly delivered
    assert spans(sb)[0] == (3000, 4000, SACKED)
    assert sb.sacked_bytes == 1000
    assert sb.ranges == [(s(3000), s(4000))]
    assert sb.ack(s(4500)) == 1000  # into an unSACKed segment: trimmed, not dropped
    assert spans(sb)[0] == (4500, 5000, 0)
    assert (sb.sacked_bytes, sb.ranges) == (0, [])


def test_lost_retransmitted_and_lost_again_keep_pipe_counters() -> None:
    sb = board(4)
    first = sb.segs[0]
    sb.mark_lost(first, BY_RACK)
    assert (sb.lost_bytes, sb.retrans_bytes) == (1000, 0)
    assert sb.next_lost() is first
    assert sb.resent(s(0), s(1000), 1.5, True) == 1
    assert first.flags == LOST | RETRANS | EVER | BY_RACK
    assert (sb.lost_bytes, sb.retrans_bytes, sb.next_lost()) == (1000, 1000, None)
    assert next(reversed(sb.tsorder)) is first  # the newest transmission now
    sb.mark_lost(first, BY_RACK)  # the retransmission was lost too
    assert (sb.lost_bytes, sb.retrans_bytes, sb.next_lost()) == (1000, 0, first)
    sb.sack(((s(0), s(1000)),), s(0), s(4000), s(0))  # then it arrives after all
    assert (sb.lost_bytes, sb.retrans_bytes, sb.sacked_bytes, sb.next_lost()) == (0, 0, 1000, None)


def test_partial_retransmission_splits_and_keeps_the_rest_queued() -> None:
    sb = board(3)
    sb.mark_lost(sb.segs[1], 0)
    sb.resent(s(1000), s(1600), 2.0, True)  # the options grew: only 600 bytes fit
    assert spans(sb) == [(0, 1000, 0), (1000, 1600, LOST | RETRANS | EVER), (1600, 2000, LOST), (2000, 3000, 0)]
    nxt = sb.next_lost()
    assert nxt is not None
    assert (nxt.start, nxt.end) == (s(1600), s(2000))
    assert (sb.lost_bytes, sb.retrans_bytes) == (1000, 600)


def test_sack_block_inside_a_segment_splits_it() -> None:
    sb = board(2)
    assert sb.sack(((s(500), s(1000)),), s(0), s(2000), s(0)) == (500, None)
    assert spans(sb) == [(0, 500, 0), (500, 1000, SACKED), (1000, 2000, 0)]


def test_timeout_marks_everything_unsacked_lost_in_order() -> None:
    sb = board(5)
    sb.sack(((s(1000), s(2000)),), s(0), s(5000), s(0))
    sb.mark_lost(sb.segs[0], BY_RACK)
    sb.resent(s(0), s(1000), 1.1, True)
    sb.all_lost()
    assert [f for _, _, f in spans(sb)] == [LOST | BY_RTO | EVER, SACKED] + [LOST | BY_RTO] * 3
    assert (sb.lost_bytes, sb.retrans_bytes, sb.sacked_bytes) == (4000, 0, 1000)
    order = []
    while (x := sb.next_lost()) is not None:
        order.append((x.start - BASE) & 0xFFFFFFFF)
        sb.resent(x.start, x.end, 2.0, True)
    assert order == [0, 2000, 3000, 4000]


def test_pipe_and_next_seg_on_a_connection() -> None:
    """Segments 0 and 4 lost out of 10; SACKs for 1-3 make 0 lost (three segments above it): it goes first,
    then pipe (not the flight) decides how much new data follows (RFC 6675 NextSeg rules 1 and 2)."""
    h = Harness(mss=1000, sack=True)
    conn = h.passive(sack_permitted=True)
    us = conn.snd_nxt
    conn.send(b"p" * 30000, 1.0)
    assert len(h.take()) == 10
    rec = conn.rec
    assert rec is not None
    h.feed(NXT, us, ACK, at=1.01, sack=((us + 1000, us + 2000),))
    assert [x.seq for x, _ in h.take()] == [us + 10000]  # pipe 9000 < cwnd: one new segment
    h.feed(NXT, us, ACK, at=1.011, sack=((us + 1000, us + 3000),))
    assert [x.seq for x, _ in h.take()] == [us + 11000]
    h.feed(NXT, us, ACK, at=1.012, sack=((us + 1000, us + 4000),))
    assert conn.in_recovery
    assert [x.seq for x, _ in h.take()] == [us]  # the hole first
    assert rec.pipe(conn) == 12000 - 3000 - 1000 + 1000
    assert (h.layer.stats.fast_retrans + h.layer.stats.rack_retrans, h.layer.stats.recoveries) == (1, 1)


def test_rescue_retransmission_of_the_last_segment() -> None:
    """All data sent, first and last segments lost: RACK cannot judge the last one (nothing sent after it
    was delivered), so once nothing else can go, it is resent once (RFC 6675 NextSeg rule 4)."""
    h = Harness(mss=1000, sack=True)
    conn = h.passive(sack_permitted=True)
    us = conn.snd_nxt
    conn.send(b"r" * 10000, 1.0)
    assert len(h.take()) == 10
    sent = []
    for k in range(1, 9):
        h.feed(NXT, us, ACK, at=1.01 + k * 0.001, sack=((us + 1000, us + 1000 * (k + 1)),))
        sent += [x.seq - us for x, _ in h.take()]
    assert sent == [0, 9000]
    stats = h.layer.stats
    assert stats.rescue_retrans == 1
    assert stats.retrans_segs == 2
    h.feed(NXT, us + 10000, ACK, at=1.03)
    assert not conn.in_recovery
    assert stats.timeouts == 0


@pytest.mark.parametrize("name", ["cubic", "newreno"])
def test_controller_per_config_and_per_connection(name: str) -> None:
    h = Harness(mss=1000, sack=True, congestion=name)
    conn = h.passive(sack_permitted=True)
    assert (conn.cc.name, conn.cwnd) == (name, 10000)
    other = "newreno" if name == "cubic" else "cubic"
    conn.set_congestion(other)
    assert (conn.cc.name, conn.cwnd, conn.ssthresh) == (other, 10000, 1 << 30)
    with pytest.raises(ValueError, match="unknown congestion control"):
        conn.set_congestion("bbr")


# -- invariants under arbitrary event sequences ------------------------------------------------------------
_OPS = st.lists(st.tuples(st.sampled_from(["send", "ack", "sack", "lose", "resend", "goback", "rto"]),
                          st.integers(0, 40), st.integers(1, 3000)), max_size=60)


def _check(sb: Scoreboard, una: int, top: int) -> None:
    sacked = sum(x.end - x.start for x in sb.segs if x.flags & SACKED)
    lost = sum(x.end - x.start for x in sb.segs if x.flags & (SACKED | LOST) == LOST)
    retrans = sum(x.end - x.start for x in sb.segs if x.flags & (SACKED | RETRANS) == RETRANS)
    assert (sb.sacked_bytes, sb.lost_bytes, sb.retrans_bytes) == (sacked, lost, retrans)
    pos = una
    for x in sb.segs:  # contiguous records from snd_una to snd_max
        assert (x.start, x.start < x.end) == (pos, True)
        pos = x.end
    assert pos == top
    assert all(not x.flags & SACKED for x in sb.tsorder)
    covered = [(x.start, x.end) for x in sb.segs if x.flags & SACKED]
    assert sum(b - a for a, b in sb.ranges) == sum(b - a for a, b in covered)
    assert (top - una) - sacked - lost + retrans >= 0


@settings(max_examples=300, deadline=None)
@given(_OPS)
def test_counters_match_the_records_whatever_happens(ops: list[tuple[str, int, int]]) -> None:
    sb = Scoreboard()
    una = top = 0
    t = 0.0
    for op, a, b in ops:
        t += 0.001
        sb.now = t
        if op == "send":
            sb.sent(top, top + b, t)
            top += b
        elif op == "ack" and top > una:
            una = min(top, una + a * 100)
            sb.ack(una)
        elif op == "sack" and top > una:
            lo = una + (a * 97) % (top - una)
            sb.sack(((lo, min(top, lo + b)),), una, top, una)
        elif op == "lose" and sb.segs:
            sb.mark_lost(sb.segs[a % len(sb.segs)], BY_RACK)
        elif op == "resend" and (x := sb.next_lost()) is not None:
            sb.resent(x.start, min(x.end, x.start + b), t, True)
        elif op == "goback" and sb.segs:  # resent while going back (ICMP): not counted in pipe twice
            x = sb.segs[a % len(sb.segs)]
            sb.resent(x.start, x.end, t, False)
        elif op == "rto":
            sb.all_lost()
        _check(sb, una, top)


def test_timeout_resends_unsacked_segments_from_the_scoreboard_in_slow_start() -> None:
    """The hole's retransmissions are lost too: the timer marks every unSACKed segment lost and resends
    them oldest first, one, then two after the next ACK (slow start), never the SACKed ones."""
    h = Harness(mss=1000, sack=True)
    conn = h.passive(sack_permitted=True)
    us = conn.snd_nxt
    conn.send(b"t" * 6000, 1.0)
    assert len(h.take()) == 6
    for k in (2, 3, 4):  # 0 and 1 lost; 5 lost too (nothing after it is SACKed)
        h.feed(NXT, us, ACK, at=1.01 + k * 0.0001, sack=((us + 2000, us + 1000 * (k + 1)),))
    first = [x.seq - us for x, _ in h.take()]
    assert first[:2] == [0, 1000]  # RACK: both before the delivered segments, resent at once
    rto_at = conn.rexmit_at
    assert rto_at is not None
    h.advance(rto_at + 0.0001)  # the resent copies were lost as well
    assert [(x.seq - us, len(p)) for x, p in h.take()] == [(0, 1000)]  # cwnd is one segment
    stats = h.layer.stats
    assert (stats.timeouts, stats.rto_retrans) == (1, 1)
    assert conn.cwnd == 1000
    h.feed(NXT, us + 1000, ACK, at=rto_at + 0.01, sack=((us + 2000, us + 5000),))
    assert [x.seq - us for x, _ in h.take()] == [1000, 5000]  # 2000..5000 SACKed: skipped
    assert stats.rto_retrans == 3
    h.feed(NXT, us + 6000, ACK, at=rto_at + 0.02)
    assert conn.snd_una == conn.snd_max
    assert conn.rec is not None
    assert conn.rec.loss_until is None
