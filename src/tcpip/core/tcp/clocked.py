"""The ACK-clocked bulk send in one call: the run of full segments an ACK of new data releases, built and handed
to the Output with the probe timeout re-armed (what output -> emit_run -> schedule_pto do, per ACK)."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from tcpip.core.tcp.emit import ack_template, send_each, window_field
from tcpip.core.tcp.scoreboard import Seg
from tcpip.core.tcp.seq import HALF, MASK
from tcpip.wire.tcp import ACK

if TYPE_CHECKING:
    from tcpip.core.tcp.conn import Connection
    from tcpip.core.tcp.recovery import Recovery

FAST_SEND = True  # rx_ack.take sends through `send` (off: output.output; tests compare the two)

_from = int.from_bytes
_new = object.__new__
_TS = struct.Struct("!HHIIHHHHBBBBII")  # the header with NOP NOP TS (emit._PLAIN_TS)
_NO = struct.Struct("!HHIIHHHH")  # no options (emit._PLAIN)
_OFF_TS, _OFF = 0x8000 | ACK, 0x5000 | ACK  # data offset 8 or 5 words, flags ACK (emit's)


def send(conn: Connection, rec: Recovery, now: float) -> bool:  # noqa: PLR0915 - inlined (per ACK)
    """`out.output(conn, now)` from rx_ack.take (ESTABLISHED, `clean(conn, ack)` held: a SACK connection, no
    recovery, RACK timer or loss probe) with new data waiting, when output would send one run of full segments
    (emit_run) and then stop (the rest waits for the window, SWS avoidance or Nagle): no TSO, nothing lost or
    SACKed, no persist, no SACK blocks of ours to send. Does exactly what output (and its rec.schedule_pto)
    would; as schedule_pto's result depends only on the state after the send, the caller's earlier
    schedule_pto may be skipped. False: nothing changed (output's other cases)."""
    sb = rec.sb
    layer = conn.layer
    # (rx_ack.clean held: SACK on, snd_nxt == snd_max, no recovery, RACK timer or loss probe, nothing SACKed)
    if sb.lostq or sb.ranges or layer.tso_max or conn.persist or conn.dsack is not None or conn.rcvbuf.has_holes:
        return False
    nxt = conn.snd_nxt
    sndbuf = conn.sndbuf
    ts = conn.ts_ok
    eff = conn.mss - 12 if ts else conn.mss  # options_len without SACK blocks
    unsent = ((conn.buf_seq + sndbuf.queued - nxt + HALF) & MASK) - HALF
    if unsent <= eff:
        return False
    una = conn.snd_una
    flight = ((nxt - una + HALF) & MASK) - HALF
    wnd = conn.snd_wnd - flight
    room = conn.cc.cwnd - flight + sb.sacked_bytes + sb.lost_bytes - sb.retrans_bytes
    avail = wnd if wnd < room else room
    if avail < eff:
        return False
    k = avail // eff
    j = (unsent - 1) // eff
    k = j if j < k else k
    # output's next round must send nothing: a full segment, a runt past SWS avoidance or Nagle (nodelay) would
    left = unsent - k * eff
    n = avail - k * eff
    n = left if left < n else n
    if n > 0 and (n >= eff or (conn.max_snd_wnd >> 1 <= n < left) or (n == left and conn.nodelay)):
        return False
    # emit_run: the ACK, window and timestamps once; each segment's checksum from the fields' sum plus its seq
    # and payload; the scoreboard records (sb.sent_run) built in the same loop
    ack = conn.rcvbuf.rcv_nxt
    conn.last_ack_sent = ack
    conn.delack_at = None
    conn.ack_pending = 0
    views = sndbuf.views(((nxt - conn.buf_seq + HALF) & MASK) - HALF, eff, k)
    window = window_field(conn)
    sp, dp = conn.local_port, conn.remote_port
    tpl = conn.ack_tpl
    if tpl is None:
        tpl = conn.ack_tpl = ack_template(conn)  # (as emit_run builds it)
    base = tpl[1] + eff + ack + window
    segs: list[tuple[bytes, memoryview]] = []
    add = segs.append
    records = sb.segs
    keep = records.append
    order = sb.tsorder
    odd = eff & 1  # an odd payload's last byte is the high half of a word
    s = nxt
    if ts:
        tsv = (int(now * 1000.0) + conn.ts_offset) & MASK  # ts_now, inlined
        tse = conn.ts_recent
        base += tsv + tse
        pack = _TS.pack
        for p in views:
            x = _from(p, "big")
            c = ((x << 8 if odd else x) % 0xFFFF + base + s) % 0xFFFF
            add((pack(sp, dp, s, ack, _OFF_TS, window, 0xFFFF - c if c else 0, 0, 1, 1, 8, 10, tsv, tse), p))
            r = _new(Seg)
            r.start = s
            s = (s + eff) & MASK
            r.end = s
            r.xmit = now
            r.flags = 0
            keep(r)
            order[r] = None
    else:
        pack = _NO.pack
        for p in views:
            x = _from(p, "big")
            c = ((x << 8 if odd else x) % 0xFFFF + base + s) % 0xFFFF
            add((pack(sp, dp, s, ack, _OFF, window, 0xFFFF - c if c else 0, 0), p))
            r = _new(Seg)
            r.start = s
            s = (s + eff) & MASK
            r.end = s
            r.xmit = now
            r.flags = 0
            keep(r)
            order[r] = None
    if conn.rtt_seq is None:
        conn.rtt_seq, conn.rtt_time = (nxt + eff) & MASK, now
    stats = layer.stats
    stats.out_segs += k
    conn.snd_max = conn.snd_nxt = s
    src, dst = conn.local_addr, conn.remote_addr
    output = layer.output
    run = getattr(output, "tcp_send_run", None)  # optional in the Output protocol
    if run is None or not run(src, dst, segs, now):
        send_each(conn, segs, now)
    # output after a send: the retransmission timer, then rec.schedule_pto (its conditions hold: arm_pto)
    if conn.rexmit_at is None:
        conn.persist_backoff = 0
        conn.rexmit_at = now + conn.rto
    rec.arm_pto(conn, ((s - una + HALF) & MASK) - HALF, now)
    return True

