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
from tcpip.core.tcp.seq import HALF, MASK
from tcpip.core.tcp.state import EV_SENT
from tcpip.errors import NoRouteError, TcpipError
from tcpip.wire.tcp import ACK

if TYPE_CHECKING:
    from collections.abc import Callable

    from tcpip.core.tcp.conn import Connection
    from tcpip.wire.tcp import TcpRepr

    AckTemplate = tuple[bool, int, Callable[[int, int, bytes, float], bool] | None]

_ACK_TS = struct.Struct("!HHIIHHHHBBBBII")  # 32 bytes: the header with NOP NOP TS, as TcpRepr.emit lays it out
_ACK = struct.Struct("!HHIIHHHH")  # 20 bytes: no options
_OFF_TS, _OFF = 0x8000 | ACK, 0x5000 | ACK  # data offset 8 or 5 words, flags ACK


def ack_template(conn: Connection) -> AckTemplate:
    """What every pure ACK of `conn` shares: (timestamps on, the constant words' sum mod 0xFFFF, the Output's
    optional one-call sender). The constant words are the pseudo-header (addresses, protocol 6, TCP length),
    the ports, data offset + flags and NOP NOP TS kind/length; a 32-bit value's two words sum to the value
    itself mod 0xFFFF (2**16 == 1), so addresses and later seq/ack/TSval/TSecr are added whole."""
    ts = conn.ts_ok
    words = conn.local_addr + conn.remote_addr + 6 + conn.local_port + conn.remote_port
    words += 32 + _OFF_TS + 0x0101 + 0x080A if ts else 20 + _OFF
    send = getattr(conn.layer.output, "tcp_send_ack", None)  # optional in the Output protocol
    return ts, words % 0xFFFF, send


def bulk_ack(conn: Connection, now: float) -> None:
    """`out.send_ack(conn, now)` for the in-order receiver (nothing to SACK): the same bytes and the same state
    changes (last_ack_sent, delayed ACK, rcv_adv, counters). Only seq, ack, window, TSval and TSecr are packed;
    the checksum is the template's sum plus those, folded once; the Output's `tcp_send_ack` (when it has one)
    adds the IPv4 header in one call. A pending D-SACK or receive-queue holes go to send_ack."""
    rb = conn.rcvbuf
    if conn.sack_ok and (conn.dsack is not None or rb.has_holes):
        out.send_ack(conn, now)
        return
    tpl = conn.ack_tpl
    if tpl is None:
        tpl = conn.ack_tpl = ack_template(conn)
    ts, s, send = tpl
    ack = rb.rcv_nxt
    conn.last_ack_sent = ack
    conn.delack_at = None
    conn.ack_pending = 0
    mx = conn.snd_max  # out.acceptable_seq, inlined
    edge = (conn.snd_una + conn.snd_wnd) & MASK
    seq = edge if ((edge - mx) & MASK) >= HALF else mx
    window = window_field(conn)
    sp, dp = conn.local_port, conn.remote_port
    if ts:
        tsv = (int(now * 1000.0) + conn.ts_offset) & MASK  # out.ts_now, inlined
        tse = conn.ts_recent
        s = (s + seq + ack + window + tsv + tse) % 0xFFFF
        hdr = _ACK_TS.pack(sp, dp, seq, ack, _OFF_TS, window, 0xFFFF - s if s else 0, 0, 1, 1, 8, 10, tsv, tse)
    else:
        s = (s + seq + ack + window) % 0xFFFF
        hdr = _ACK.pack(sp, dp, seq, ack, _OFF, window, 0xFFFF - s if s else 0, 0)
    layer = conn.layer
    stats = layer.stats
    stats.out_segs += 1
    src, dst = conn.local_addr, conn.remote_addr
    if send is not None and send(src, dst, hdr, now):
        return
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
    if (wl1 - seq) & MASK >= HALF or (wl1 == seq and (d == 0 or d >= HALF)):  # seq_lt, seq_le inlined
        wnd = seg.window << conn.snd_wscale
        if wnd != conn.snd_wnd:
            conn.snd_wnd = wnd
            conn.max_snd_wnd = max(conn.max_snd_wnd, wnd)
        conn.snd_wl1 = seq
        conn.snd_wl2 = ack
    # _new_ack: snd_una, the send buffer, the RTT sample, cwnd (no SACK), the retransmission timer
    conn.snd_una = ack
    sndbuf = conn.sndbuf
    n = ((ack - conn.buf_seq + HALF) & MASK) - HALF
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
    if rtt_seq is not None and ((rtt_seq - ack) & MASK == 0 or (rtt_seq - ack) & MASK >= HALF):  # seq_ge
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
            if ((snd_max - ack + HALF) & MASK) - HALF <= conn.mss:
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
