"""Pure ACKs on the fast paths: the bulk receiver's ACK packed in one call (bulk_ack), and the bulk sender's
input of the peer's pure ACK of new data (pure_ack)."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from tcpip.core.tcp import autotune
from tcpip.core.tcp import congestion as cc
from tcpip.core.tcp import output as out
from tcpip.core.tcp.emit import window_field
from tcpip.core.tcp.recovery import PTO_MIN, T_PTO, T_REO, WC_DELACK
from tcpip.core.tcp.seq import MASK
from tcpip.core.tcp.state import EV_SENT
from tcpip.errors import NoRouteError, TcpipError
from tcpip.wire.checksum import checksum, pseudo_header_sum
from tcpip.wire.tcp import ACK

if TYPE_CHECKING:
    from tcpip.core.tcp.conn import Connection
    from tcpip.wire.tcp import TcpRepr

_ACK_TS = struct.Struct("!HHIIBBHHHBBBBII")  # 32 bytes: the header with NOP NOP TS, as TcpRepr.emit lays it out
_NOP, _TS = 1, 8
_HALF = 1 << 31


def bulk_ack(conn: Connection, now: float) -> None:
    """`out.send_ack(conn, now)` for the in-order receiver (timestamps on, nothing to SACK): the same bytes
    and the same state changes (last_ack_sent, delayed ACK, rcv_adv, counters), without TcpRepr and the
    general option writer. Anything else goes to send_ack."""
    if not conn.ts_ok or conn.dsack is not None or conn.rcvbuf.has_holes:
        out.send_ack(conn, now)
        return
    ack = conn.rcvbuf.rcv_nxt
    conn.last_ack_sent = ack
    conn.delack_at = None
    conn.ack_pending = 0
    src, dst = conn.local_addr, conn.remote_addr
    hdr = bytearray(32)
    _ACK_TS.pack_into(hdr, 0, conn.local_port, conn.remote_port, out.acceptable_seq(conn), ack, 0x80, ACK,
                      window_field(conn), 0, 0, _NOP, _NOP, _TS, 10, out.ts_now(conn, now), conn.ts_recent)
    c = checksum(hdr, pseudo_header_sum(src, dst, 6, 32))
    hdr[16] = c >> 8
    hdr[17] = c & 0xFF
    layer = conn.layer
    stats = layer.stats
    stats.out_segs += 1
    try:
        layer.output.tcp_send(src, dst, (hdr,), now)
    except NoRouteError as e:
        stats.send_errors += 1
        conn.send_error = e
    except TcpipError:  # any other refusal below us: a lost segment, as in output._emit
        stats.send_errors += 1


def pure_ack(conn: Connection, seg: TcpRepr, now: float) -> bool:  # noqa: PLR0912, PLR0915 - inlined on purpose (per ACK)
    """The bulk sender's commonest input, for header prediction (ESTABLISHED, seq == rcv_nxt, ACK (PSH) only,
    no data, PAWS done): an ACK of new data up to snd_nxt with no SACK blocks, nothing lost, resent or SACKed,
    no recovery, RACK reordering timer, loss probe or FIN of ours pending. Does exactly what input._process_ack
    (_new_ack, Recovery.on_ack's in-order branch) and input._text would, in one call. False (nothing
    changed): not that case, the general path takes it."""
    ack = seg.ack
    una = conn.snd_una
    acked = (ack - una) & MASK
    if not 0 < acked <= ((conn.snd_nxt - una) & MASK) or seg.sack or conn.snd_nxt != conn.snd_max or \
            una == conn.iss or conn.retries or conn.fin_queued:
        return False
    rec = conn.rec
    if rec is not None:
        sb = rec.sb
        if not conn.sack_ok or sb.sacked_bytes or sb.lost_bytes or sb.retrans_bytes or rec.timer == T_REO or \
                conn.in_recovery or rec.loss_until is not None or rec.tlp_end is not None:
            return False
    # _process_ack: the peer is alive; the window (RFC 9293 3.10.7.4 SND.WL1/WL2 test)
    conn.rcv_tstamp = now
    conn.probes = 0
    seq = seg.seq
    wl1 = conn.snd_wl1
    d = (conn.snd_wl2 - ack) & MASK
    if (wl1 - seq) & MASK >= _HALF or (wl1 == seq and (d == 0 or d >= _HALF)):  # seq_lt, seq_le inlined
        wnd = seg.window << conn.snd_wscale
        if wnd != conn.snd_wnd:
            conn.snd_wnd = wnd
            conn.max_snd_wnd = max(conn.max_snd_wnd, wnd)
        conn.snd_wl1 = seq
        conn.snd_wl2 = ack
    # _new_ack: snd_una, the send buffer, the RTT sample, cwnd (no SACK), the retransmission timer
    conn.snd_una = ack
    sndbuf = conn.sndbuf
    n = ((ack - conn.buf_seq + _HALF) & MASK) - _HALF
    if n > 0:
        q = sndbuf.queued
        n = min(n, q)
        if n:
            sndbuf.ack(n)
            conn.buf_seq = (conn.buf_seq + n) & MASK
            if not conn.sent_ev and not conn.app_closed:
                conn.sent_ev = True
                conn.layer.events.append((EV_SENT, conn, None))
    rtt_seq = conn.rtt_seq
    r: float | None
    if rtt_seq is not None and ((rtt_seq - ack) & MASK == 0 or (rtt_seq - ack) & MASK >= _HALF):  # seq_ge
        conn.rtt_seq = None
        r = now - conn.rtt_time
    elif conn.ts_ok and seg.timestamp is not None and seg.timestamp[1]:
        r = ((((int(now * 1000.0) + conn.ts_offset) & MASK) - seg.timestamp[1]) & MASK) / 1000.0  # ts_now
    else:
        r = None
    if r is not None:
        if r > 0.0 and conn.srtt:  # cc.rtt_sample's update, inlined (a later sample, positive)
            conn.rttvar = 0.75 * conn.rttvar + 0.25 * abs(conn.srtt - r)
            conn.srtt = 0.875 * conn.srtt + 0.125 * r
            cc.set_rto(conn)
        else:
            cc.rtt_sample(conn, r)
    if rec is None:
        cc.on_new_ack(conn, acked, now)
    if not conn.persist:
        conn.rexmit_at = None if ack == conn.snd_max else now + conn.rto
    if rec is not None:
        # Recovery.on_ack's in-order branch (no SACK state: nothing RACK could judge lost)
        rec.sb.now = now
        rec.sb.ack(ack)
        rec.rack.update(rec.sb, now)
        c = conn.cc
        c.on_ack(acked, ack, conn.snd_max, rec.rack.rtt, now)
        if conn.config.autotune and 2 * c.cwnd > sndbuf.capacity:
            autotune.expand_sndbuf(conn)
        cap = 2 * sndbuf.capacity + conn.mss
        c.cwnd = min(c.cwnd, cap)
        # rec.schedule_pto, inlined: of its conditions only these can hold here
        snd_max = conn.snd_max
        if ack == snd_max or conn.persist:
            if rec.timer == T_PTO and ack == snd_max:
                rec.timer = 0
                conn.loss_at = None
        else:
            srtt = conn.srtt
            pto = 2.0 * srtt if srtt else 1.0
            if ((snd_max - ack + _HALF) & MASK) - _HALF <= conn.mss:
                pto += WC_DELACK
            pto = max(pto, PTO_MIN)
            x = conn.rexmit_at
            if x is not None and x - now <= pto:
                if rec.timer == T_PTO:
                    rec.timer = 0
                    conn.loss_at = None
            else:
                rec.timer = T_PTO
                conn.loss_at = now + pto
    # _text with no text: whatever output has to send, then the timers (state stays ESTABLISHED)
    out.output(conn, now)
    conn.arm()
    return True
