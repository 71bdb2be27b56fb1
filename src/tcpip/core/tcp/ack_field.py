"""The ACK field of an arriving segment on the general path (RFC 9293 3.10.7.4, the fifth check, from
ESTABLISHED on): the send window, snd_una and the send buffer, RTT samples, cwnd, and the state moves our
FIN's acknowledgment makes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tcpip.core.tcp import congestion as cc
from tcpip.core.tcp import output as out
from tcpip.core.tcp.seq import MASK, seq_add, seq_ge, seq_gt, seq_le, seq_lt, seq_sub
from tcpip.core.tcp.state import EV_SENT, TcpState
from tcpip.wire.tcp import FIN, SYN, TcpRepr

if TYPE_CHECKING:
    from tcpip.core.tcp.conn import Connection

S = TcpState


def process_ack(conn: Connection, seg: TcpRepr, dlen: int, now: float) -> bool:
    """The fifth check's ESTABLISHED-and-later part: window, snd_una, RTT, cwnd, state moves on FIN ACKs."""
    ack = seg.ack
    una = conn.snd_una
    layer = conn.layer
    if seq_gt(ack, conn.snd_max):
        layer.stats.rx_ack_unsent += 1
        out.challenge_ack(conn, now)  # RFC 5961 5.2, rate-limited: a blind ACK must not buy a storm
        return False
    if seq_lt(ack, seq_sub(una, conn.max_snd_wnd) & MASK):
        layer.stats.rx_ack_too_old += 1  # RFC 5961 5.2
        out.challenge_ack(conn, now)
        return False
    conn.rcv_tstamp = now
    conn.probes = 0
    seq = seg.seq
    wnd_changed = False
    if seq_lt(conn.snd_wl1, seq) or (conn.snd_wl1 == seq and seq_le(conn.snd_wl2, ack)):
        wnd = seg.window << conn.snd_wscale
        if wnd != conn.snd_wnd:
            wnd_changed = True
            conn.snd_wnd = wnd
            conn.max_snd_wnd = max(conn.max_snd_wnd, wnd)
        conn.snd_wl1, conn.snd_wl2 = seq, ack
    acked = seq_sub(ack, una)
    rec = conn.rec
    if rec is not None and not conn.sack_ok:  # SACK withdrawn after negotiate() (a SYN cookie without TS)
        conn.rec = rec = None
    if acked > 0:
        new_ack(conn, seg, ack, acked, now)
    if rec is not None:  # SACK: scoreboard, RACK-TLP, PRR (core/tcp/recovery.py)
        if (acked > 0 or seg.sack or conn.snd_max != una) and conn.state != S.CLOSED:
            rec.on_ack(conn, seg, acked, now)
    elif acked == 0 and conn.snd_max != una and not dlen and not wnd_changed and not seg.flags & (SYN | FIN):
        cc.on_dupack(conn, now)  # RFC 5681 duplicate ACK
    return conn.state != S.CLOSED


def new_ack(conn: Connection, seg: TcpRepr, ack: int, acked: int, now: float) -> None:
    layer = conn.layer
    if conn.snd_una == conn.iss:
        acked -= 1  # the SYN is no data for congestion control
    conn.snd_una = ack
    if conn.retries:
        conn.retries = 0
        if conn.srtt:  # progress after a timeout: drop the backoff (Linux recomputes on every sample)
            cc.set_rto(conn)
    if seq_lt(conn.snd_nxt, ack):
        conn.snd_nxt = ack
    sb = conn.sndbuf
    n = seq_sub(ack, conn.buf_seq)
    if n > 0:
        n = min(n, sb.queued)
        if n:
            sb.ack(n)
            conn.buf_seq = seq_add(conn.buf_seq, n)
            if not conn.sent_ev and not conn.app_closed:
                conn.sent_ev = True
                layer.events.append((EV_SENT, conn, None))
    # RTT: the timed segment (Karn), else the echoed timestamp (RFC 7323 4.1)
    if conn.rtt_seq is not None and seq_ge(ack, conn.rtt_seq):
        conn.rtt_seq = None
        cc.rtt_sample(conn, now - conn.rtt_time)
    elif conn.ts_ok and seg.timestamp is not None and seg.timestamp[1]:
        cc.rtt_sample(conn, ((out.ts_now(conn, now) - seg.timestamp[1]) & MASK) / 1000.0)
    if acked > 0:
        cc.on_new_ack(conn, acked, now)
    if conn.snd_una == conn.snd_max:
        if not conn.persist:
            conn.rexmit_at = None
    elif not conn.persist:
        conn.rexmit_at = now + conn.rto
    if conn.fin_queued and sb.queued == 0 and seq_gt(conn.snd_una, conn.buf_seq):  # our FIN is acknowledged
        st = conn.state
        if st == S.FIN_WAIT_1:
            conn.set_state(S.FIN_WAIT_2)
            if conn.app_closed:
                conn.linger_at = now + conn.config.fin_wait2
        elif st == S.CLOSING:
            layer.enter_time_wait(conn, now)
        elif st == S.LAST_ACK:
            layer.report_closed(conn, None)
            layer.terminate(conn, None)
