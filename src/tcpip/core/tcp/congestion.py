"""RTO estimation (RFC 6298); the window after ACKs and timeouts through the connection's controller (cc.py);
for connections without SACK, duplicate-ACK fast retransmit and NewReno recovery (RFC 5681, 6582, 3042, 5827)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tcpip.core.tcp import autotune
from tcpip.core.tcp import output as out
from tcpip.core.tcp.cc import make
from tcpip.core.tcp.recovery import Recovery
from tcpip.core.tcp.seq import seq_add, seq_ge, seq_gt, seq_sub

if TYPE_CHECKING:
    from tcpip.core.tcp.conn import Connection

CLOCK_G = 0.001  # clock granularity (s) in RTO = SRTT + max(G, 4 * RTTVAR)


def rtt_sample(conn: Connection, r: float) -> None:
    """RFC 6298 2.2/2.3: update SRTT/RTTVAR with a measurement and recompute the RTO (clamped)."""
    if r <= 0.0:
        if r < 0.0:
            return
        r = 1e-6  # a zero sample still counts as a sample (srtt 0 means none yet)
    if conn.srtt == 0.0 and conn.rttvar == 0.0:
        conn.srtt = r
        conn.rttvar = r / 2.0
    else:
        conn.rttvar = 0.75 * conn.rttvar + 0.25 * abs(conn.srtt - r)
        conn.srtt = 0.875 * conn.srtt + 0.125 * r
    set_rto(conn)


def set_rto(conn: Connection) -> None:
    cfg = conn.config
    k = 4.0 * conn.rttvar
    rto = conn.srtt + (k if k > CLOCK_G else CLOCK_G)
    conn.rto = cfg.rto_min if rto < cfg.rto_min else cfg.rto_max if rto > cfg.rto_max else rto


def init_cwnd(conn: Connection) -> None:
    """RFC 6928 initial window (initial_cwnd_segments * MSS) for the negotiated MSS, in a fresh controller of
    the connection's kind; ssthresh unbounded. SACK connections get the recovery machinery."""
    conn.cc = make(conn.cc.name, conn.mss, conn.config.initial_cwnd_segments * conn.mss)
    conn.rec = Recovery() if conn.sack_ok else None
    if conn.rec is not None:  # fack from snd_una: a 0 is seq-behind an ISS above 2**31 (and never catches up)
        conn.rec.sb.fack = conn.snd_una


def on_new_ack(conn: Connection, acked: int, now: float) -> None:
    """cwnd after an ACK that acknowledged `acked` new bytes (snd_una already advanced); without SACK only
    (SACK connections: recovery.Recovery.on_ack)."""
    if conn.rec is not None:
        return
    mss = conn.mss
    c = conn.cc
    if conn.in_recovery:
        if seq_ge(conn.snd_una, conn.recover):  # full ACK: leave recovery, deflate (RFC 6582 3.2 step 3)
            conn.in_recovery = False
            conn.dupacks = 0
            flight = seq_sub(conn.snd_max, conn.snd_una)
            c.cwnd = min(c.ssthresh, max(flight, mss) + mss)
        else:  # partial ACK: retransmit the next hole, deflate by the amount acknowledged (step 4)
            out.retransmit_first(conn, now)
            conn.layer.stats.fast_retrans += 1
            c.cwnd = max(c.cwnd - acked + mss, mss)
        return
    conn.dupacks = 0
    c.on_ack(acked, conn.snd_una, conn.snd_max, 0.0, now)
    if conn.config.autotune:
        autotune.expand_sndbuf(conn)
    cap = 2 * conn.sndbuf.capacity + mss  # beyond what the send buffer can keep in flight it means nothing
    c.cwnd = min(c.cwnd, cap)


def on_dupack(conn: Connection, now: float) -> None:
    """A duplicate ACK (RFC 5681 2), connections without SACK: the third starts NewReno recovery."""
    conn.dupacks += 1
    mss = conn.mss
    c = conn.cc
    if conn.in_recovery:  # a segment left the network: one goes in under the inflated window (RFC 6582)
        c.cwnd += mss
        out.output(conn, now)
        return
    flight = seq_sub(conn.snd_max, conn.snd_una)
    thresh = 3
    oseg = (flight + mss - 1) // mss
    if oseg < 4 and not _can_send_new(conn, flight):
        thresh = max(oseg - 1, 1)  # early retransmit (RFC 5827): too few segments out for three dupacks
    if conn.dupacks < thresh:
        # limited transmit (RFC 3042): each of the first two duplicates may clock out one new segment
        if conn.dupacks <= 2:
            c.cwnd += conn.dupacks * mss
            out.output(conn, now)
            c.cwnd -= conn.dupacks * mss
        return
    if conn.dupacks == thresh and seq_gt(conn.snd_una, conn.recover):  # RFC 6582 3.2 step 2 ("careful")
        c.on_loss(flight, now)
        conn.recover = conn.snd_max
        conn.layer.stats.fast_retrans += 1
        out.retransmit_first(conn, now)
        c.cwnd = c.ssthresh + 3 * mss
        conn.in_recovery = True
        conn.rexmit_at = now + conn.rto
        out.output(conn, now)


def _can_send_new(conn: Connection, flight: int) -> bool:
    """Whether unsent data exists and the peer's window would take a segment of it."""
    unsent = seq_sub(seq_add(conn.buf_seq, conn.sndbuf.queued), conn.snd_max)
    return unsent > 0 and conn.snd_wnd - flight >= min(unsent, conn.mss)


def on_rto(conn: Connection, now: float = 0.0) -> None:
    """Loss detected by the retransmission timer (RFC 5681 3.1 eq. 4; RFC 6582 recover = highest sent)."""
    flight = seq_sub(conn.snd_max, conn.snd_una)
    if conn.rec is not None:
        conn.rec.on_rto(conn)
    c = conn.cc
    c.save()  # undone if D-SACKs prove every retransmission spurious
    c.on_rto(flight, now)
    conn.ca_acc = 0
    conn.dupacks = 0
    conn.in_recovery = False
    conn.recover = conn.snd_max
