"""Timer expiry for a connection: retransmission (SYN, SYN-ACK, data, FIN), persist probes, delayed ACK,
FIN_WAIT_2 and TIME_WAIT."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tcpip.core.tcp import congestion as cc
from tcpip.core.tcp import output as out
from tcpip.core.tcp.seq import seq_add, seq_sub
from tcpip.core.tcp.state import TcpState, timed_out

if TYPE_CHECKING:
    from tcpip.core.tcp.conn import Connection

S = TcpState


def on_timer(conn: Connection, now: float) -> None:
    """Run whichever of the connection's timers are due, then re-arm its heap entry."""
    if conn.delack_at is not None and conn.delack_at <= now:
        conn.delack_at = None
        if conn.state in (S.ESTABLISHED, S.FIN_WAIT_1, S.FIN_WAIT_2, S.CLOSE_WAIT, S.CLOSING):
            conn.layer.stats.delayed_acks += 1
            out.send_ack(conn, now)
    if conn.linger_at is not None and conn.linger_at <= now:
        conn.linger_at = None
        stats = conn.layer.stats
        if conn.state == S.TIME_WAIT:
            stats.time_wait_expired += 1
            conn.layer.terminate(conn, None)
            return
        if conn.state == S.FIN_WAIT_2:
            stats.fin_wait2_timeouts += 1
            out.send_rst(conn, now)  # Linux: an orphan's FIN_WAIT_2 ends with a RST
            conn.layer.terminate(conn, None)
            return
    if conn.loss_at is not None and conn.loss_at <= now and conn.rec is not None:
        conn.loss_at = None
        conn.rec.on_timer(conn, now)  # RACK reordering timer or tail loss probe
    if conn.rexmit_at is not None and conn.rexmit_at <= now:
        conn.rexmit_at = None
        if conn.persist:
            _persist(conn, now)
        else:
            _retransmit(conn, now)
    conn.arm()


def _retransmit(conn: Connection, now: float) -> None:
    layer = conn.layer
    stats = layer.stats
    cfg = conn.config
    st = conn.state
    if st == S.CLOSED:
        return
    stats.timeouts += 1
    if st in (S.SYN_SENT, S.SYN_RECEIVED):
        limit = cfg.syn_retries if st == S.SYN_SENT or conn.listener is None else cfg.synack_retries
        if conn.retries >= limit:
            stats.abort_on_timeout += 1
            layer.terminate(conn, timed_out() if conn.listener is None else None)
            return
        conn.retries += 1
        conn.rto = min(conn.rto * 2.0, cfg.rto_max)
        if st == S.SYN_SENT:
            stats.syn_retrans += 1
        else:
            stats.synack_retrans += 1
        out.send_syn(conn, now)
        if conn.send_error is not None and st == S.SYN_SENT:
            layer.fail_connect(conn)
            return
        conn.rexmit_at = now + conn.rto
        return
    if conn.snd_una == conn.snd_max:
        return  # nothing outstanding (a stale deadline)
    # A peer that keeps answering with a zero window is not dead (Linux tcp_retransmit_timer).
    zero_window_alive = conn.snd_wnd == 0 and now - conn.rcv_tstamp < cfg.rto_max and not conn.app_closed
    if conn.retries >= cfg.retries2 and not zero_window_alive:
        stats.abort_on_timeout += 1
        layer.terminate(conn, timed_out())
        return
    if not zero_window_alive:
        conn.retries += 1
    cc.on_rto(conn)
    conn.rto = min(conn.rto * 2.0, cfg.rto_max)
    conn.rtt_seq = None
    if conn.rec is None or not conn.rec.after_rto(conn, now):  # SACK: resend from the scoreboard
        conn.snd_nxt = conn.snd_una  # go back: resend from the first unacknowledged byte in slow start
        out.retransmit_first(conn, now)
        stats.rto_retrans += 1
    conn.rexmit_at = now + conn.rto


def _persist(conn: Connection, now: float) -> None:
    """Zero-window probing: probe, back off up to persist_max; give up only after retries2 probes in a
    row went unanswered (an ACK resets the count)."""
    conn.persist = False
    st = conn.state
    if st not in out.SENDING:
        return
    end = seq_add(conn.buf_seq, conn.sndbuf.queued)
    if conn.snd_una != conn.snd_max or seq_sub(end, conn.snd_nxt) <= 0:
        if conn.snd_una != conn.snd_max:
            conn.rexmit_at = now + conn.rto
        return
    if conn.snd_wnd > 0:
        out.output(conn, now, force=True)  # the window is open but too small for SWS: send anyway
        return
    if conn.probes >= conn.config.retries2:
        conn.layer.stats.abort_on_timeout += 1
        conn.layer.terminate(conn, timed_out())
        return
    conn.probes += 1
    conn.layer.stats.persist_probes += 1
    out.send_probe(conn, now)
    conn.persist_backoff += 1
    conn.persist = True
    conn.rexmit_at = now + out.persist_interval(conn)
