"""RACK-TLP (RFC 8985) on the sans-I/O core: the reordering window delays the loss verdict, a late segment
inside it costs no retransmission, one past it is resent by the reordering timer; the tail loss probe
resends the last segment after 2*SRTT so a lost tail costs no retransmission timeout."""

from __future__ import annotations

import pytest
from tcp_harness import REMOTE_ISS, Harness

from tcpip.core.tcp.conn import Connection
from tcpip.wire.tcp import ACK

NXT = REMOTE_ISS + 1


def reo_wnd(conn: Connection) -> float:
    return min(0.01 / 4, conn.srtt)


def sending(n: int, at: float = 1.0) -> tuple[Harness, Connection, int]:
    """A SACK connection with an RTT sample of 10 ms behind it, that just sent n 1000-byte segments at `at`."""
    h = Harness(mss=1000, sack=True)
    conn = h.passive(sack_permitted=True)
    us = conn.snd_nxt
    conn.send(b"w" * 1000, 0.5)
    h.take()
    h.feed(NXT, us + 1000, ACK, at=0.51)  # RACK min_rtt 10 ms
    assert conn.rec is not None
    assert conn.rec.rack.min_rtt == pytest.approx(0.01)
    h.now = at
    conn.send(b"d" * 1000 * n, at)
    assert len(h.take()) == n
    return h, conn, us + 1000


def test_reordering_window_holds_the_verdict_and_a_late_segment_costs_nothing() -> None:
    h, conn, us = sending(4)
    h.feed(NXT, us, ACK, at=1.01, sack=((us + 1000, us + 2000),))  # segment 0 missing: reordered or lost?
    assert h.take() == []
    # one segment SACKed, no reordering seen yet: wait RTT (10 ms) + min(min_rtt/4, SRTT) after segment 0
    # was sent (SRTT is still small: the handshake's sample was 0)
    assert conn.loss_at == pytest.approx(1.0 + 0.01 + reo_wnd(conn))
    h.feed(NXT, us + 2000, ACK, at=1.011)  # it was only late
    assert h.take() == []
    assert conn.rec is not None
    assert conn.rec.rack.reordering_seen  # a never-resent segment below one delivered before it
    h.feed(NXT, us + 4000, ACK, at=1.012)
    h.advance(1.05)
    assert h.take() == []
    assert h.layer.stats.retrans_segs == 0
    assert h.layer.stats.recoveries == 0


def test_reordering_timer_resends_once_the_window_has_passed() -> None:
    h, conn, us = sending(4)
    h.feed(NXT, us, ACK, at=1.01, sack=((us + 1000, us + 2000),))
    assert h.take() == []
    due = 1.0 + 0.01 + reo_wnd(conn)
    h.advance(due - 0.0001)
    assert h.take() == []
    h.advance(due + 0.0001)
    [(seg, payload)] = h.take()
    assert (seg.seq, len(payload)) == (us, 1000)
    assert h.out.sent == []
    stats = h.layer.stats
    assert (stats.rack_retrans, stats.recoveries, stats.timeouts) == (1, 1, 0)
    assert conn.in_recovery


def test_three_sacked_segments_need_no_window() -> None:
    """Without reordering seen and with DupThresh segments SACKed the window is 0: the hole goes at once."""
    h, conn, us = sending(5)
    for k in (1, 2):
        h.feed(NXT, us, ACK, at=1.01 + k * 0.0001, sack=((us + 1000, us + 1000 * (k + 1)),))
    assert h.take() == []
    h.feed(NXT, us, ACK, at=1.0103, sack=((us + 1000, us + 4000),))
    # the hole (NextSeg rule 1); PRR allows a second segment and nothing new is left: the rescue (rule 4)
    assert [(x.seq, len(p)) for x, p in h.take()] == [(us, 1000), (us + 4000, 1000)]
    assert (h.layer.stats.fast_retrans, h.layer.stats.rescue_retrans) == (1, 1)  # IsLost came first
    assert conn.in_recovery


def test_widened_window_after_dsack() -> None:
    h, conn, us = sending(4)
    rec = conn.rec
    assert rec is not None
    h.feed(NXT, us + 4000, ACK, at=1.01, sack=((us - 1000, us),))  # a duplicate of old data
    assert rec.rack.reo_wnd_mult == 2
    assert rec.rack.reo_wnd(False, 0, 1000, 1.0) == pytest.approx(2 * 0.01 / 4)
    assert h.layer.stats.dsack_recv == 1


def test_tail_loss_probe_resends_the_last_segment_before_the_timeout() -> None:
    h, conn, us = sending(4)
    h.feed(NXT, us + 2000, ACK, at=1.01)  # the last two segments are lost: no SACK will ever come
    assert h.take() == []
    pto = max(2 * conn.srtt, 0.01)
    assert conn.loss_at == pytest.approx(1.01 + pto)
    assert conn.rexmit_at is not None
    assert conn.loss_at is not None
    assert conn.loss_at < conn.rexmit_at
    h.advance(1.01 + pto - 0.0001)
    assert h.take() == []
    h.advance(1.01 + pto + 0.0001)
    [(seg, payload)] = h.take()
    assert (seg.seq, len(payload)) == (us + 3000, 1000)  # the highest segment sent
    assert (h.layer.stats.tlp_probes, h.layer.stats.tlp_retrans) == (1, 1)
    # the probe draws a SACK: RACK now sees the segment before it as lost
    h.feed(NXT, us + 2000, ACK, at=1.03, sack=((us + 3000, us + 4000),))
    [(seg, payload)] = h.take()
    assert (seg.seq, len(payload)) == (us + 2000, 1000)
    h.feed(NXT, us + 4000, ACK, at=1.04)
    assert conn.snd_una == conn.snd_max
    assert h.layer.stats.timeouts == 0


def test_tail_loss_probe_sends_new_data_when_the_window_allows() -> None:
    """RFC 8985 7.3: the probe is a new segment when the peer's window takes one, whatever cwnd says."""
    h, conn, us = sending(11)  # cwnd (11 segments) is full
    conn.send(b"n" * 3000, 1.0)
    assert h.take() == []
    pto = max(2 * conn.srtt, 0.01)
    assert conn.loss_at == pytest.approx(1.0 + pto)
    h.advance(1.0 + pto + 0.0001)
    [(seg, payload)] = h.take()
    assert (seg.seq, payload) == (us + 11000, b"n" * 1000)
    assert (h.layer.stats.tlp_probes, h.layer.stats.tlp_retrans, h.layer.stats.retrans_segs) == (1, 0, 0)


def test_no_probe_when_the_timeout_comes_first() -> None:
    """One segment out: the probe would wait 2*SRTT + the worst delayed ACK (200 ms), past the RTO."""
    h, conn, us = sending(1)
    assert conn.loss_at is None
    h.advance(1.0 + conn.rto + 0.001)
    [(seg, _)] = h.take()
    assert seg.seq == us
    assert (h.layer.stats.timeouts, h.layer.stats.tlp_probes) == (1, 0)
