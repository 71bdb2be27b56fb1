"""TCP core on a virtual clock: retransmission with backoff (RFC 6298), SYN/SYN-ACK retries, retries2,
fast retransmit and NewReno recovery, zero-window probing, RTT estimation."""

from __future__ import annotations

import errno
import itertools

import pytest
from tcp_harness import LOCAL, LPORT, REMOTE, REMOTE_ISS, RPORT, Harness

from tcpip.core.tcp.state import EV_CLOSED, TcpState
from tcpip.wire.tcp import ACK, PSH, SYN

S = TcpState
NXT = REMOTE_ISS + 1


def _sent_times(h: Harness) -> list[float]:
    times = [t for _, _, _, t in h.out.sent]
    h.take()
    return times


def test_retransmission_backoff() -> None:
    h = Harness(mss=1000)
    conn = h.passive()
    us = conn.snd_nxt
    assert conn.rto == 0.2  # the RTT sample from the handshake was ~0: clamped to rto_min
    srtt = conn.srtt
    conn.send(b"x" * 100, 10.0)
    h.take()
    h.advance(30.0)
    times = _sent_times(h)
    h.advance(40.0)
    times += _sent_times(h)
    gaps = [round(b - a, 6) for a, b in zip([10.0, *times], times, strict=False)]
    assert gaps[:7] == [0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8]
    assert conn.retries == len(times)
    h.feed(NXT, us + 100, ACK, at=40.5)  # acknowledged at last: no RTT sample from a retransmission
    assert conn.retries == 0
    assert conn.srtt == srtt
    assert conn.rto == 0.2  # progress: the backoff is gone
    assert h.layer.poll_at() is None
    st = h.layer.stats
    assert st.retrans_segs == len(times)
    assert st.timeouts == len(times)


def test_retransmitted_segment_is_the_first_unacked() -> None:
    h = Harness(mss=1000)
    conn = h.passive()
    us = conn.snd_nxt
    conn.send(b"a" * 3000, 1.0)
    h.take()
    h.feed(NXT, us + 1000, ACK, at=1.01)
    h.take()
    h.advance(1.01 + conn.rto + 0.001)
    [(seg, payload)] = h.take()  # cwnd is one segment after the timeout
    assert (seg.seq, len(payload)) == (us + 1000, 1000)
    assert conn.cwnd == 1000
    assert conn.ssthresh == 2000


def test_retries2_gives_timeout_error() -> None:
    h = Harness(retries2=3)
    conn = h.passive()
    conn.send(b"x", 1.0)
    h.advance(100.0)
    assert len(h.take()) == 1 + 3
    assert conn.state == S.CLOSED
    [(kind, c, exc)] = h.events()[-1:]
    assert kind == EV_CLOSED
    assert c is conn
    assert isinstance(exc, TimeoutError)
    assert exc.errno == errno.ETIMEDOUT


def test_syn_retries_then_timeout() -> None:
    h = Harness(syn_retries=2)
    conn = h.layer.connect(LOCAL, LPORT, REMOTE, RPORT, 0.0)
    h.advance(6.99)
    times = _sent_times(h)
    assert times == [0.0, 1.0, 3.0]
    assert conn.state == S.SYN_SENT
    h.advance(7.0)
    assert conn.state == S.CLOSED
    [(kind, _, exc)] = h.events()
    assert kind == EV_CLOSED
    assert isinstance(exc, TimeoutError)
    st = h.layer.stats
    assert (st.syn_retrans, st.attempt_fails, st.retrans_segs, st.out_segs) == (2, 1, 2, 1)


def test_synack_retries_then_dropped() -> None:
    h = Harness(synack_retries=2)
    lst = h.listen()
    h.feed(REMOTE_ISS, 0, SYN, mss=1460)
    h.advance(10.0)
    segs = h.take()
    assert [s.flags for s, _ in segs] == [SYN | ACK] * 3
    assert len({s.seq for s, _ in segs}) == 1
    assert h.layer.conns == {}
    assert lst.half_open == {}
    assert h.layer.half_open_total == 0
    assert h.events() == []


def test_rto_after_retransmitted_syn_is_three_seconds() -> None:
    h = Harness()
    conn = h.layer.connect(LOCAL, LPORT, REMOTE, RPORT, 0.0)
    syn, _ = h.take_one()
    h.advance(1.5)
    h.take()
    h.feed(REMOTE_ISS, syn.seq + 1, SYN | ACK, at=1.6, mss=1460)
    assert conn.state == S.ESTABLISHED
    assert conn.rto == 3.0


def test_rtt_estimator() -> None:
    h = Harness(mss=1000)
    conn = h.layer.connect(LOCAL, LPORT, REMOTE, RPORT, 0.0)
    syn, _ = h.take_one()
    h.feed(REMOTE_ISS, syn.seq + 1, SYN | ACK, at=0.1, mss=1000)  # first sample: 0.1 s
    assert conn.srtt == pytest.approx(0.1)
    assert conn.rttvar == pytest.approx(0.05)
    assert conn.rto == pytest.approx(0.3)
    us = conn.snd_nxt
    conn.send(b"b" * 1000, 2.0)
    h.feed(REMOTE_ISS + 1, us + 1000, ACK, at=2.3)
    assert conn.rttvar == pytest.approx(0.75 * 0.05 + 0.25 * 0.2)
    assert conn.srtt == pytest.approx(0.875 * 0.1 + 0.125 * 0.3)
    assert conn.rto == pytest.approx(conn.srtt + 4 * conn.rttvar)


def test_fast_retransmit_and_newreno() -> None:
    h = Harness(mss=1000, congestion="newreno")
    conn = h.passive()
    us = conn.snd_nxt
    conn.send(b"z" * 30000, 1.0)
    assert len(h.take()) == 10
    h.feed(NXT, us + 1000, ACK, at=1.1)  # segment 2 is lost; 3.. arrive
    new = h.take()
    assert len(new) == 2  # slow start: cwnd 11000
    for i in range(2):
        h.feed(NXT, us + 1000, ACK, at=1.11 + i * 0.001)
    # limited transmit (RFC 3042): each of the first two duplicates clocks out one new segment
    assert [s.seq for s, _ in h.take()] == [us + 12000, us + 13000]
    h.feed(NXT, us + 1000, ACK, at=1.12)  # the third duplicate
    segs = h.take()
    assert (segs[0][0].seq, len(segs[0][1])) == (us + 1000, 1000)  # fast retransmit
    assert conn.in_recovery
    assert conn.ssthresh == 6500  # half of the 13000 in flight
    assert h.layer.stats.fast_retrans == 1
    assert conn.cwnd == 6500 + 3000
    h.feed(NXT, us + 1000, ACK, at=1.13)  # more duplicates inflate cwnd
    h.take()
    h.feed(NXT, us + 4000, ACK, at=1.2)  # partial ACK: retransmit the next hole at once
    seg, _ = h.take()[0]
    assert seg.seq == us + 4000
    assert conn.in_recovery
    h.feed(NXT, us + 14000, ACK, at=1.3)  # everything up to `recover` acknowledged
    assert not conn.in_recovery
    assert conn.cwnd <= conn.ssthresh


def test_no_fast_retransmit_for_window_updates_or_data() -> None:
    h = Harness(mss=1000)
    conn = h.passive()
    us = conn.snd_nxt
    conn.send(b"z" * 5000, 1.0)
    h.take()
    for i in range(4):
        h.feed(NXT + i, us, ACK | PSH, payload=b"d", at=1.1)  # carries data: not a duplicate ACK
    h.feed(NXT + 4, us, ACK, window=1000 + 1, at=1.2)
    h.feed(NXT + 4, us, ACK, window=1000 + 2, at=1.2)
    h.feed(NXT + 4, us, ACK, window=1000 + 3, at=1.2)
    assert conn.dupacks == 0
    assert h.layer.stats.fast_retrans == 0


def test_zero_window_probing_backs_off_and_never_gives_up() -> None:
    h = Harness(mss=1000, retries2=3, persist_max=5.0)
    conn = h.passive()
    us = conn.snd_nxt
    conn.send(b"p" * 3000, 1.0)
    h.take()
    h.feed(NXT, us + 3000, ACK, window=0, at=1.01)
    conn.send(b"q" * 10, 1.02)
    assert h.take() == []
    probes = []
    t = 1.02
    while t < 40.0:
        at = h.layer.poll_at()
        assert at is not None
        t = at
        h.advance(t)
        segs = h.take()
        if not segs:
            continue  # an early heap entry (a deadline that moved later) fires and re-arms
        [(p, payload)] = segs
        assert (p.flags, p.seq, payload) == (ACK, us + 3000 - 1, b"")
        probes.append(t)
        h.feed(NXT, us + 3000, ACK, window=0, at=t + 0.01)  # answered: still zero
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(probes)]
    assert gaps[:4] == [0.4, 0.8, 1.6, 3.2]  # doubling ...
    assert set(gaps[5:]) == {5.0}  # ... up to persist_max
    assert conn.state == S.ESTABLISHED
    assert len(probes) > 3
    h.feed(NXT, us + 3000, ACK, window=5000, at=t + 1)  # the window opens: data flows
    [(d, payload)] = h.take()
    assert (d.seq, payload) == (us + 3000, b"q" * 10)


def test_zero_window_probes_unanswered_give_up() -> None:
    h = Harness(mss=1000, retries2=3, persist_max=5.0)
    conn = h.passive()
    us = conn.snd_nxt
    conn.send(b"p" * 10, 1.0)
    h.feed(NXT, us + 10, ACK, window=0, at=1.01)
    conn.send(b"q", 1.02)
    h.take()
    h.advance(100.0)
    assert len(h.take()) == 3
    assert conn.state == S.CLOSED
    assert isinstance(h.events()[-1][2], TimeoutError)


def test_rtt_from_timestamps_after_a_retransmission() -> None:
    h = Harness(mss=1000, timestamps=True)
    conn = h.passive(timestamp=(500, 0))
    us = conn.snd_nxt
    conn.send(b"t" * 100, 1.0)
    h.take()
    h.advance(1.0 + conn.rto + 1e-6)
    [(r, _)] = h.take()  # the retransmission carries a fresh TSval
    assert r.timestamp is not None
    assert r.timestamp[1] == 501  # TS.Recent echoed
    srtt = conn.srtt
    h.feed(NXT, us + 100, ACK, timestamp=(502, r.timestamp[0]), at=h.now + 0.05)
    # Karn forbids timing the retransmitted segment, but the echoed timestamp dates it: 50 ms
    assert conn.srtt != srtt
    assert conn.srtt == pytest.approx(0.875 * srtt + 0.125 * 0.05, abs=2e-3)


def test_early_retransmit_with_few_segments_out() -> None:
    h = Harness(mss=1000)
    conn = h.passive()
    us = conn.snd_nxt
    conn.send(b"e" * 3000, 1.0)  # three segments, nothing more to send
    h.take()
    h.feed(NXT, us, ACK, at=1.01)  # the first is lost: two duplicates are all that can come
    assert h.take() == []
    h.feed(NXT, us, ACK, at=1.02)
    [(s, p)] = h.take()  # RFC 5827: threshold = segments out - 1 = 2
    assert (s.seq, len(p)) == (us, 1000)
    assert conn.in_recovery


def test_sack_recovery_retransmits_each_hole() -> None:
    h = Harness(mss=1000, sack=True)
    conn = h.passive(sack_permitted=True)
    us = conn.snd_nxt
    conn.send(b"s" * 20000, 1.0)
    assert len(h.take()) == 10
    # segments 1 and 4 (0-based) are lost; the peer SACKs what arrived after each hole
    h.feed(NXT, us + 1000, ACK, at=1.05)
    assert [s.seq for s, _ in h.take()] == [us + 10000, us + 11000]  # slow start
    blocks = [((us + 2000, us + 3000),), ((us + 2000, us + 4000),), ((us + 5000, us + 6000), (us + 2000, us + 4000))]
    for i, b in enumerate(blocks):
        h.feed(NXT, us + 1000, ACK, at=1.1 + i * 0.001, sack=b)
    # two limited-transmit segments, then the fast retransmit of the first hole
    assert [s.seq for s, _ in h.take()] == [us + 12000, us + 13000, us + 1000]
    h.feed(NXT, us + 1000, ACK, at=1.11, sack=((us + 5000, us + 7000), (us + 2000, us + 4000)))
    segs = h.take()
    assert [s.seq for s, _ in segs] == [us + 4000]  # the next hole, before any new data
    assert h.layer.stats.retrans_segs == 2
    assert conn.sacked == [(us + 2000, us + 4000), (us + 5000, us + 7000)]
    h.feed(NXT, us + 4000, ACK, at=1.2, sack=((us + 5000, us + 7000),))  # partial ACK
    assert conn.sacked == [(us + 5000, us + 7000)]


def test_go_back_after_timeout_skips_sacked_data() -> None:
    h = Harness(mss=1000, sack=True)
    conn = h.passive(sack_permitted=True)
    us = conn.snd_nxt
    conn.send(b"g" * 5000, 1.0)
    h.take()
    h.feed(NXT, us, ACK, at=1.01, sack=((us + 2000, us + 4000),))
    h.take()
    h.advance(1.0 + conn.rto + 0.001)
    assert [(s.seq, len(p)) for s, p in h.take()] == [(us, 1000)]
    h.feed(NXT, us + 1000, ACK, at=1.3, sack=((us + 2000, us + 4000),))
    # then 2000..4000 is skipped; RACK (RFC 8985): 4000..5000, sent before the resent segment just
    # delivered and older than its RTT, is lost too
    assert [(s.seq, len(p)) for s, p in h.take()] == [(us + 1000, 1000), (us + 4000, 1000)]
    h.feed(NXT, us + 4000, ACK, at=1.35)
    assert h.take() == []
