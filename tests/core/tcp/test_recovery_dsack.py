"""Spurious retransmissions undone by D-SACK (RFC 2883, RFC 3708's idea, Linux tcp_try_undo_dsack): segments
only reordered are taken for lost and resent; when the peer reports every resent copy as a duplicate, the
window reduction is undone and the reordering window widens; one D-SACK short of that, nothing is undone.
And the receiver side: a duplicate draws an ACK whose first SACK block is the D-SACK."""

from __future__ import annotations

from tcp_harness import REMOTE_ISS, Harness

from tcpip.wire.tcp import ACK

NXT = REMOTE_ISS + 1


def test_dsack_for_every_retransmission_undoes_the_reduction() -> None:
    h = Harness(mss=1000, sack=True)
    conn = h.passive(sack_permitted=True)
    us = conn.snd_nxt
    conn.send(b"u" * 10000, 1.0)
    assert len(h.take()) == 10
    assert (conn.cwnd, conn.ssthresh) == (10000, 1 << 30)
    for k in (2, 3, 4):  # 0 and 1 are late, not lost; three SACKed above them look like loss
        h.feed(NXT, us, ACK, at=1.01 + k * 0.0001, sack=((us + 2000, us + 1000 * (k + 1)),))
    assert [x.seq for x, _ in h.take()] == [us, us + 1000]
    assert conn.in_recovery
    assert conn.ssthresh == 7000  # CUBIC: 0.7 * the flight
    h.feed(NXT, us + 10000, ACK, at=1.011)  # the originals arrive: all acknowledged, recovery over
    assert not conn.in_recovery
    assert conn.cwnd == 7000
    h.feed(NXT, us + 10000, ACK, at=1.02, sack=((us, us + 1000),))  # the first copy was a duplicate
    stats = h.layer.stats
    assert (stats.dsack_recv, stats.dsack_undo) == (1, 0)  # one resent copy not yet accounted for
    assert conn.cwnd == 7000
    h.feed(NXT, us + 10000, ACK, at=1.021, sack=((us + 1000, us + 2000),))
    assert (stats.dsack_recv, stats.dsack_undo) == (2, 1)
    assert (conn.cwnd, conn.ssthresh) == (10000, 1 << 30)
    assert conn.rec is not None
    # the reordering window widened by each: with nothing in flight every D-SACK begins a new round
    # (RFC 8985 6.2 step 4: SND.UNA >= RACK.dsack_round)
    assert conn.rec.rack.reo_wnd_mult == 3
    assert conn.rec.rack.reordering_seen


def test_dsack_for_a_segment_never_resent_proves_nothing() -> None:
    """Segment 0 really lost and resent; the network duplicated segment 5: its D-SACK is no evidence."""
    h = Harness(mss=1000, sack=True)
    conn = h.passive(sack_permitted=True)
    us = conn.snd_nxt
    conn.send(b"u" * 10000, 1.0)
    h.take()
    for k in (1, 2, 3):
        h.feed(NXT, us, ACK, at=1.01 + k * 0.0001, sack=((us + 1000, us + 1000 * (k + 1)),))
    assert [x.seq for x, _ in h.take()] == [us]
    h.feed(NXT, us, ACK, at=1.0105, sack=((us + 5000, us + 6000), (us + 1000, us + 6000)))  # D-SACK of 5
    h.feed(NXT, us + 10000, ACK, at=1.02)
    stats = h.layer.stats
    assert (stats.dsack_recv, stats.dsack_undo) == (1, 0)
    assert (conn.cwnd, conn.ssthresh) == (7000, 7000)


def test_dsack_below_the_episode_undoes_nothing() -> None:
    h = Harness(mss=1000, sack=True)
    conn = h.passive(sack_permitted=True)
    us = conn.snd_nxt
    conn.send(b"u" * 5000, 1.0)
    h.take()
    h.feed(NXT, us + 5000, ACK, at=1.01)
    before = (conn.cwnd, conn.ssthresh)
    h.feed(NXT, us + 5000, ACK, at=1.02, sack=((us, us + 1000),))  # a network duplicate, no retransmission
    assert (h.layer.stats.dsack_recv, h.layer.stats.dsack_undo) == (1, 0)
    assert (conn.cwnd, conn.ssthresh) == before == (12000, 1 << 30)


def test_receiver_reports_a_duplicate_in_the_first_sack_block() -> None:
    h = Harness(mss=1000, sack=True)
    conn = h.passive(sack_permitted=True)
    us = conn.snd_nxt
    h.feed(NXT, us, ACK, payload=b"a" * 1000, at=1.0)
    h.feed(NXT + 1000, us, ACK, payload=b"b" * 1000, at=1.001)
    h.take()
    h.feed(NXT + 3000, us, ACK, payload=b"d" * 1000, at=1.002)  # a hole at 2000..3000
    h.take()
    h.feed(NXT, us, ACK, payload=b"a" * 1000, at=1.003)  # a duplicate of the first segment
    [(a, _)] = h.take()
    assert a.ack == NXT + 2000
    assert a.sack == ((NXT, NXT + 1000), (NXT + 3000, NXT + 4000))
    h.feed(NXT + 2000, us, ACK, payload=b"c" * 1000, at=1.004)
    [(a, _)] = h.take()
    assert (a.ack, a.sack) == (NXT + 4000, ())  # reported once only
    assert conn.recv(1.005) == b"a" * 1000 + b"b" * 1000 + b"c" * 1000 + b"d" * 1000
