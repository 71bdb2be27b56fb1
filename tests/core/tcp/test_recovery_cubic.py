"""CUBIC (RFC 9438) window growth against the RFC's formula at given times, its Reno-friendly region and fast
convergence; HyStart++ (RFC 9406) leaving slow start when the RTT rises; NewReno's halving for contrast.
The controllers are driven directly: one ACK per segment, spread evenly over each round trip."""

from __future__ import annotations

from itertools import pairwise

import pytest

from tcpip.core.tcp.cc import ALPHA, BETA, C, Cubic, NewReno, w_cubic

MSS = 1000
_acked: dict[int, int] = {}  # the sequence acknowledged so far, per controller


def rounds(c: Cubic | NewReno, t0: float, rtt: float, n: int, rtt_of: float | None = None) -> list[float]:
    """n round trips of ACKs from t0 (one per segment of cwnd at the round's start); cwnd (segments) after
    each. Each ACK clocks out new data: snd_max stays one cwnd ahead, so HyStart++ sees rounds end."""
    out = []
    ack = _acked.get(id(c), 0)
    for r in range(n):
        k = c.cwnd // MSS
        for i in range(k):
            ack += MSS
            c.on_ack(MSS, ack, ack + c.cwnd, rtt if rtt_of is None else rtt_of, t0 + r * rtt + (i + 1) * rtt / k)
        out.append(c.cwnd / MSS)
    _acked[id(c)] = ack
    return out


def test_cubic_window_follows_w_cubic_of_t() -> None:
    c = Cubic(MSS, 100 * MSS)
    c.ssthresh = 50 * MSS  # in congestion avoidance
    c.on_loss(100 * MSS, 0.0)
    assert c.ssthresh == 70 * MSS  # beta = 0.7
    c.cwnd = c.ssthresh  # where recovery leaves it
    rtt = 0.1
    w = rounds(c, 0.0, rtt, 60)
    k = ((100 - 70) / C) ** (1 / 3)  # eq. 2: K = cbrt((W_max - cwnd_epoch) / C) = 4.22 s
    assert c.k == pytest.approx(k)
    # the epoch starts at the first ACK (t = rtt / cwnd): after round r the window is W_cubic(t) at the
    # round's end, within a segment
    for r in (9, 19, 29, 39, 42, 49, 59):
        t = (r + 1) * rtt - rtt / 70
        assert w[r] == pytest.approx(w_cubic(t, 100.0, k), abs=1.0), (r, w[r], w_cubic(t, 100.0, k))
    assert w[41] == pytest.approx(100, abs=1.0)  # the plateau at W_max around K
    assert w[59] > w[49] > 100  # convex growth past it


def test_cubic_reno_friendly_region_on_short_rtts() -> None:
    """At 5 ms a second is 200 round trips: Reno's additive increase (ALPHA per RTT) outruns W_cubic."""
    c = Cubic(MSS, 100 * MSS)
    c.ssthresh = 50 * MSS
    c.on_loss(100 * MSS, 0.0)
    c.cwnd = c.ssthresh
    w = rounds(c, 0.0, 0.005, 200)
    t = 1.0
    assert w_cubic(t, 100.0, c.k) < 70 + ALPHA * 200 - 5
    assert w[-1] == pytest.approx(70 + ALPHA * 200, abs=2.0)


def test_cubic_fast_convergence_releases_bandwidth() -> None:
    c = Cubic(MSS, 100 * MSS)
    c.on_loss(100 * MSS, 0.0)
    assert c.w_max == 100
    c.cwnd = 80 * MSS  # the next loss comes before W_max was reached again
    c.on_loss(80 * MSS, 1.0)
    assert c.w_max == pytest.approx(80 * (1 + BETA) / 2)
    assert c.ssthresh == 56 * MSS


def test_cubic_timeout_and_undo() -> None:
    c = Cubic(MSS, 40 * MSS)
    c.save()
    c.on_rto(40 * MSS, 0.0)
    assert (c.cwnd, c.ssthresh) == (MSS, 28 * MSS)
    assert c.undo()
    assert (c.cwnd, c.ssthresh, c.w_max) == (40 * MSS, 1 << 30, 0.0)
    assert not c.undo()


def test_hystart_leaves_slow_start_when_the_rtt_rises() -> None:
    c = Cubic(MSS, 10 * MSS)
    w = rounds(c, 0.0, 0.1, 2)
    assert w == [20, 40]  # slow start (ABC: one segment per ACK of one)
    assert c.css_rounds == -1
    # the RTT grows by 20 ms (more than the threshold min(max(100/8 ms, 4 ms), 16 ms) = 12.5 ms)
    w = rounds(c, 0.2, 0.12, 1)
    assert c.css_rounds == 0  # conservative slow start
    assert 40 < w[0] < 80
    w = rounds(c, 0.32, 0.12, 5)  # CSS grows by a quarter; after CSS_ROUNDS, avoidance
    assert c.ssthresh < 1 << 30  # ssthresh = cwnd when CSS ended; avoidance grows slowly after that
    assert c.ssthresh <= c.cwnd < 1.02 * c.ssthresh
    assert c.css_rounds == -1
    grown = [b / a for a, b in pairwise(w)]
    assert all(g < 1.3 for g in grown)


def test_hystart_back_to_slow_start_when_the_rise_was_spurious() -> None:
    c = Cubic(MSS, 10 * MSS)
    rounds(c, 0.0, 0.1, 2)
    rounds(c, 0.2, 0.12, 1)
    assert c.css_rounds == 0
    w = rounds(c, 0.32, 0.1, 2)  # RTT back below the CSS baseline
    assert c.css_rounds == -1
    assert c.ssthresh == 1 << 30
    assert w[1] == 2 * w[0]


def test_newreno_halves_and_adds_one_segment_per_rtt() -> None:
    c = NewReno(MSS, 100 * MSS)
    c.on_loss(100 * MSS, 0.0)
    assert c.ssthresh == 50 * MSS
    c.cwnd = c.ssthresh
    assert rounds(c, 0.0, 0.1, 3) == [51, 52, 53]
