"""Proportional Rate Reduction (RFC 6937) on the sans-I/O core, NewReno for round numbers: 20 segments in
flight, the peer SACKs one segment per ACK. With one loss the sender sends one segment per two ACKs
(ssthresh / RecoverFS = 1/2) until pipe reaches ssthresh, then one per ACK (PRR-SSRB); with a burst of
losses pipe is held at ssthresh from the first ACK, holes first."""

from __future__ import annotations

from tcp_harness import REMOTE_ISS, Harness

from tcpip.wire.tcp import ACK

NXT = REMOTE_ISS + 1
MSS = 1000


def blocks(got: set[int], base: int) -> tuple[tuple[int, int], ...]:
    """SACK blocks for the segments held (by index), most recent range first (as a receiver reports)."""
    runs: list[list[int]] = []
    for i in sorted(got):
        if runs and runs[-1][1] == i:
            runs[-1][1] = i + 1
        else:
            runs.append([i, i + 1])
    return tuple((base + a * MSS, base + b * MSS) for a, b in reversed(runs))[:4]


def recovery_run(lost: set[int]) -> list[tuple[int, list[int], int, int, int]]:
    """Per ACK (one per segment not lost, 0.1 ms apart): (segment it SACKs, segments sent in answer by
    index, pipe, prr_delivered, prr_out)."""
    h = Harness(mss=MSS, sack=True, congestion="newreno")
    conn = h.passive(sack_permitted=True)
    us = conn.snd_nxt
    conn.cwnd = 20 * MSS
    conn.send(b"x" * 40 * MSS, 1.0)
    assert len(h.take()) == 20
    rec = conn.rec
    assert rec is not None
    got: set[int] = set()
    rows = []
    t = 1.01
    for k in range(20):
        if k in lost:
            continue
        got.add(k)
        h.feed(NXT, us, ACK, at=t, sack=blocks(got, us))
        t += 0.0001
        sent = [(x.seq - us) // MSS for x, _ in h.take()]
        rows.append((k, sent, rec.pipe(conn), rec.prr_delivered, rec.prr_out))
    assert conn.ssthresh == 11 * MSS  # half of the 22 segments in flight when recovery began
    assert rec.recover_fs == 22 * MSS
    return rows


def test_one_loss_halves_the_sending_rate_then_holds_pipe_at_ssthresh() -> None:
    rows = recovery_run({0})
    # segments 1 and 2 SACKed: pipe < cwnd, one new segment each (as limited transmit would)
    assert [r[1] for r in rows[:2]] == [[20], [21]]
    # segment 3 SACKed: three above the hole, recovery; the hole first, then one new segment per two ACKs
    proportional = rows[2:15]
    assert [r[1] for r in proportional] == [[0], [], [22], [], [23], [], [24], [], [25], [], [26], [], [27]]
    for _, _, pipe, delivered, out in proportional:
        assert pipe > 11 * MSS
        want = -(-delivered * 11 // 22)  # RFC 6937: ceil(prr_delivered * ssthresh / RecoverFS) ...
        assert want <= out < want + MSS  # ... sent, in whole segments
    # pipe down to ssthresh: PRR-SSRB keeps it there (nothing while pipe == ssthresh after delivery)
    assert [(r[1], r[2]) for r in rows[15:]] == [([], 12 * MSS), ([], 11 * MSS), ([28], 11 * MSS),
                                                 ([29], 11 * MSS)]


def test_burst_of_losses_keeps_pipe_at_ssthresh_and_resends_holes_first() -> None:
    rows = recovery_run(set(range(8)))
    assert [r[1] for r in rows[:2]] == [[20], [21]]
    # eight segments lost: pipe (11) is already at ssthresh; each ACK lets exactly one segment go
    assert [r[1] for r in rows[2:]] == [[0], [], [1], [2], [3], [4], [5], [6], [7], [22]]
    assert all(r[2] == 11 * MSS for r in rows[3:])
