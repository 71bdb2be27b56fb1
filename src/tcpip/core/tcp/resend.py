"""Loss recovery's own transmissions: one scoreboard record again, or one new segment for a loss probe."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tcpip.core.tcp import output as out
from tcpip.core.tcp.seq import seq_add, seq_le, seq_sub

if TYPE_CHECKING:
    from tcpip.core.tcp.conn import Connection
    from tcpip.core.tcp.scoreboard import Seg


def resend(conn: Connection, s: Seg, now: float) -> None:
    """Retransmit one scoreboard record (at most one MSS of it) with the FIN if it carries one."""
    end = seq_add(conn.buf_seq, conn.sndbuf.queued)
    data_end = s.end if seq_le(s.end, end) else end
    n = min(seq_sub(data_end, s.start), conn.mss - out.options_len(conn))
    fin = n == seq_sub(data_end, s.start) and s.end != data_end
    conn.rtt_seq = None  # Karn
    out.send_data(conn, s.start, n, fin, now)


def send_one_new(conn: Connection, now: float) -> bool:
    """One segment of new data for a loss probe, whatever cwnd says."""
    c = conn.cc
    saved = c.cwnd
    c.cwnd = seq_sub(conn.snd_max, conn.snd_una) + conn.mss + (1 << 20)
    try:
        nxt = conn.snd_max
        sent = out.output(conn, now, force=True, max_segs=1)
    finally:
        c.cwnd = saved
    return sent and conn.snd_max != nxt
