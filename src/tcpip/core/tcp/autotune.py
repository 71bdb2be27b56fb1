"""Buffer autotuning: the receive buffer grows toward twice the bytes the application reads per round trip
(Linux tcp_rcv_space_adjust / tcp_moderate_rcvbuf), up to `rcvbuf_max`; the send buffer toward twice the
congestion window (Linux tcp_sndbuf_expand), up to `sndbuf_max`. Buffers only grow; memory is used only
by bytes actually queued."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tcpip.core.tcp.seq import seq_add, seq_ge, seq_sub

if TYPE_CHECKING:
    from tcpip.core.tcp.conn import Connection


class RcvSpace:
    """Per-connection measurement: the receiver's RTT (time to receive one window's worth, Linux
    tcp_rcv_rtt_measure) and the bytes read by the application since the last adjustment."""

    __slots__ = ("rtt", "rtt_seq", "rtt_time", "seq", "space", "time")

    def __init__(self, conn: Connection, now: float) -> None:
        rb = conn.rcvbuf
        self.rtt = 0.0
        self.rtt_seq = seq_add(rb.rcv_nxt, rb.window())
        self.rtt_time = now
        self.seq = rb.rcv_nxt  # the next byte the application will read, when measuring began
        self.space = min(rb.capacity, conn.config.initial_cwnd_segments * conn.adv_mss)
        self.time = now


def on_data(conn: Connection, now: float) -> None:
    """In-order data arrived: one window received since the mark is one receiver RTT sample."""
    t = conn.tune
    if t is None:
        conn.tune = RcvSpace(conn, now)
        return
    rb = conn.rcvbuf
    if seq_ge(rb.rcv_nxt, t.rtt_seq):
        sample = now - t.rtt_time
        if sample > 0.0:
            t.rtt = sample if t.rtt == 0.0 or sample < t.rtt else t.rtt + (sample - t.rtt) / 8.0
        t.rtt_seq = seq_add(rb.rcv_nxt, rb.window())
        t.rtt_time = now


def on_read(conn: Connection, now: float) -> None:
    """The application read: once per RTT, if it read more than last time, make room for twice that."""
    t = conn.tune
    if t is None:
        return
    rtt = t.rtt if t.rtt > 0.0 else conn.srtt
    if rtt <= 0.0 or now - t.time < rtt:
        return
    rb = conn.rcvbuf
    copied_seq = seq_add(rb.rcv_nxt, -rb.readable)
    copied = seq_sub(copied_seq, t.seq)
    if copied > t.space:
        want = 2 * copied + 16 * conn.adv_mss  # Linux: twice the data per RTT, plus slack for bursts
        cap = conn.config.rcvbuf_max
        want = want if want < cap else cap
        if want > rb.capacity:
            rb.capacity = want
            conn.layer.stats.rcvbuf_grown += 1
        t.space = copied
    t.seq = copied_seq
    t.time = now


def expand_sndbuf(conn: Connection) -> None:
    """After cwnd grew: keep room for two windows of data queued (cheap test first: per-ACK path).

    Growth goes in large steps, to at least double the current size: cwnd creeps up by a fraction of a
    segment per ACK in congestion avoidance, and following it exactly cost one growth per ACK (tens of
    thousands per transfer). Capacity is only a limit: memory follows the bytes queued."""
    sb = conn.sndbuf
    want = 2 * conn.cc.cwnd
    cur = sb.capacity
    if want > cur:
        cap = conn.config.sndbuf_max
        if cur < cap:
            want = max(want, 2 * cur)
            sb.capacity = want if want < cap else cap
            conn.layer.stats.sndbuf_grown += 1
