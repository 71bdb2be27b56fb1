"""Pure ACKs on the fast paths: the bulk receiver's ACK packed in one call (bulk_ack), and the bulk sender's
input of the peer's pure ACK of new data (pure_ack)."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from tcpip.core.tcp import autotune, clocked, tso
from tcpip.core.tcp import congestion as cc
from tcpip.core.tcp import output as out
from tcpip.core.tcp.congestion import CLOCK_G
from tcpip.core.tcp.emit import ack_template, emit_run, window_field
from tcpip.core.tcp.recovery import T_PTO, T_REO
from tcpip.core.tcp.scoreboard import SACKED
from tcpip.core.tcp.seq import HALF, MASK
from tcpip.core.tcp.state import EV_SENT, TcpState
from tcpip.core.tcp.validate import PAWS_24DAYS
from tcpip.errors import NoRouteError, TcpipError
from tcpip.wire.tcp import ACK

if TYPE_CHECKING:
    from collections.abc import Callable

    from tcpip.core.tcp.conn import Connection
    from tcpip.core.tcp.scoreboard import Scoreboard
    from tcpip.wire.tcp import TcpRepr

    AckTemplate = tuple[bool, int, Callable[[int, int, bytes, float], bool] | None]

_ACK_TS = struct.Struct("!HHIIHHHHBBBBII")  # 32 bytes: the header with NOP NOP TS, as TcpRepr.emit lays it out
_ACK = struct.Struct("!HHIIHHHH")  # 20 bytes: no options
_OFF_TS, _OFF = 0x8000 | ACK, 0x5000 | ACK  # data offset 8 or 5 words, flags ACK
ESTABLISHED = TcpState.ESTABLISHED
_EMIT_RUN = emit_run  # clocked.send stands in for output's emit_run only while that is the real one (tests swap it)


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


def pure_ack(conn: Connection, seg: TcpRepr, now: float) -> bool:
    """The bulk sender's commonest input, for header prediction (ESTABLISHED, seq == rcv_nxt, ACK (PSH) only,
    no data, PAWS done): an ACK of new data up to snd_nxt with no SACK blocks, nothing lost, resent or SACKed,
    no recovery, RACK reordering timer, loss probe or FIN of ours pending. Does exactly what ack_field.process_ack
    (new_ack, Recovery.on_ack's in-order branch) and input._text would, in one call. False (nothing
    changed): not that case, the general path takes it."""
    if seg.sack or not clean(conn, seg.ack):
        return False
    ts = seg.timestamp
    take(conn, seg.seq, seg.ack, seg.window, ts[1] if ts is not None else 0, now)
    return True


def clean(conn: Connection, ack: int) -> bool:
    """Whether an ACK at `ack` (no SACK blocks) is pure_ack's case; reads the connection, changes nothing."""
    una = conn.snd_una
    nxt = conn.snd_nxt
    if not 0 < ((ack - una) & MASK) <= ((nxt - una) & MASK) or nxt != conn.snd_max or \
            una == conn.iss or conn.retries or conn.fin_queued:
        return False
    rec = conn.rec
    if rec is not None:
        sb = rec.sb
        if not conn.sack_ok or sb.sacked_bytes or sb.lost_bytes or sb.retrans_bytes or rec.timer == T_REO or \
                conn.in_recovery or rec.loss_until is not None or rec.tlp_end is not None:
            return False
    return True


def header_ack(conn: Connection, seq: int, ack: int, window: int, tsv: int, tse: int, now: float) -> bool:
    """TcpLayer.input's shortcut for a 32-byte pure ACK (NOP NOP TS, ACK (PSH) only) of a known connection: what
    input() + segment_arrives' header prediction + pure_ack do when `clean` holds, without a TcpRepr. False:
    nothing done (not that case: input() goes on as usual)."""
    una = conn.snd_una
    nxt = conn.snd_nxt
    if conn.state != ESTABLISHED or seq != conn.rcvbuf.rcv_nxt or not conn.ts_ok or \
            not 0 < ((ack - una) & MASK) <= ((nxt - una) & MASK) or nxt != conn.snd_max or una == conn.iss or \
            conn.retries or conn.fin_queued:
        return False
    rec = conn.rec
    if rec is not None:  # clean(conn, ack), inlined (per ACK)
        sb = rec.sb
        if not conn.sack_ok or sb.sacked_bytes or sb.lost_bytes or sb.retrans_bytes or rec.timer == T_REO or \
                conn.in_recovery or rec.loss_until is not None or rec.tlp_end is not None:
            return False
    recent = conn.ts_recent
    if now - conn.ts_recent_at > PAWS_24DAYS and (tsv - recent) & MASK >= HALF:  # seq_lt
        conn.layer.stats.paws_aged += 1  # RFC 7323 5.5: TS.Recent is stale, not a reason to drop
        conn.ts_recent = recent = tsv
    # header prediction's RFC 7323 4.3 (PAWS does not apply to a bare ACK)
    if (tsv - recent) & MASK < HALF:
        last = conn.last_ack_sent
        if seq == last or (seq - last) & MASK >= HALF:  # seq_le
            conn.ts_recent = tsv
    take(conn, seq, ack, window, tse, now)
    if conn.ts_recent != recent:
        conn.ts_recent_at = now
    # TcpLayer.account(conn), inlined (the state stays ESTABLISHED)
    rb = conn.rcvbuf
    cur = rb.readable + rb.ooo_bytes + conn.sndbuf.queued
    layer = conn.layer
    by_conn = layer.mem_by_conn
    layer.mem += cur - by_conn.get(conn, 0)
    by_conn[conn] = cur
    return True


def take(conn: Connection, seq: int, ack: int, window: int, tsecr: int, now: float) -> None:  # noqa: PLR0912, PLR0915 - inlined on purpose (per ACK)
    """pure_ack's work once `clean(conn, ack)` holds: `tsecr` is the ACK's TSecr (0: none or no timestamps)."""
    una = conn.snd_una
    acked = (ack - una) & MASK
    rec = conn.rec
    # process_ack: the peer is alive; the window (RFC 9293 3.10.7.4 SND.WL1/WL2 test)
    conn.rcv_tstamp = now
    conn.probes = 0
    wl1 = conn.snd_wl1
    d = (conn.snd_wl2 - ack) & MASK
    if (wl1 - seq) & MASK >= HALF or (wl1 == seq and (d == 0 or d >= HALF)):  # seq_lt, seq_le inlined
        wnd = window << conn.snd_wscale
        if wnd != conn.snd_wnd:
            conn.snd_wnd = wnd
            conn.max_snd_wnd = max(conn.max_snd_wnd, wnd)
        conn.snd_wl1 = seq
        conn.snd_wl2 = ack
    # new_ack: snd_una, the send buffer, the RTT sample, cwnd (no SACK), the retransmission timer
    conn.snd_una = ack
    sndbuf = conn.sndbuf
    n = ((ack - conn.buf_seq + HALF) & MASK) - HALF
    if n > 0:
        q = sndbuf.queued
        n = n if n < q else q
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
    elif tsecr and conn.ts_ok:
        r = ((((int(now * 1000.0) + conn.ts_offset) & MASK) - tsecr) & MASK) / 1000.0  # ts_now
    else:
        r = None
    if r is not None:
        srtt = conn.srtt
        if r > 0.0 and srtt:  # cc.rtt_sample's update and set_rto, inlined (a later sample, positive)
            var = conn.rttvar = 0.75 * conn.rttvar + 0.25 * abs(srtt - r)
            srtt = conn.srtt = 0.875 * srtt + 0.125 * r
            cfg = conn.config
            k = 4.0 * var
            rto = srtt + (k if k > CLOCK_G else CLOCK_G)
            lo = cfg.rto_min
            hi = cfg.rto_max
            conn.rto = lo if rto < lo else hi if rto > hi else rto
        else:
            cc.rtt_sample(conn, r)
    snd_max = conn.snd_max
    sent = False
    if rec is None:
        cc.on_new_ack(conn, acked, now)
        if not conn.persist:
            conn.rexmit_at = None if ack == snd_max else now + conn.rto
    else:
        if not conn.persist:
            conn.rexmit_at = None if ack == snd_max else now + conn.rto
        # Recovery.on_ack's in-order branch (no SACK state: nothing RACK could judge lost)
        sb = rec.sb
        sb.now = now
        _sb_ack(sb, ack)
        # rec.rack.update(sb, now), inlined
        rack = rec.rack
        if sb.reordered:
            rack.reordering_seen = True
            sb.reordered = False
        x = sb.d_xmit
        if x >= 0.0:
            sb.d_xmit = -1.0
            rtt = now - x
            rack.rtt = rtt
            if rtt > 0.0 and (rack.min_rtt == 0.0 or rtt < rack.min_rtt):
                rack.min_rtt = rtt
                sb.min_rtt = rtt
            if x > rack.xmit_ts or (x == rack.xmit_ts and ((rack.end_seq - sb.d_end) & MASK) >= HALF):
                rack.xmit_ts, rack.end_seq = x, sb.d_end
        c = conn.cc
        c.on_ack(acked, ack, snd_max, rack.rtt, now)
        cwnd = c.cwnd
        cap = sndbuf.capacity
        if 2 * cwnd > cap and cap < conn.config.sndbuf_max and conn.config.autotune:
            autotune.expand_sndbuf(conn)  # (it grows only below sndbuf_max: that test first, per ACK)
            cap = sndbuf.capacity
        cap = 2 * cap + conn.mss
        if cwnd > cap:
            c.cwnd = cap
        # new data waiting: the run this ACK releases, in one call (it re-arms the probe timeout itself)
        sent = clocked.FAST_SEND and out.emit_run is _EMIT_RUN and \
            ((conn.buf_seq + sndbuf.queued - snd_max + HALF) & MASK) - HALF > 0 and clocked.send(conn, rec, now)
        # rec.schedule_pto: of its conditions only these can hold here (arm_pto does the rest)
        if sent:
            pass
        elif ack == snd_max or conn.persist:
            if rec.timer == T_PTO and ack == snd_max:
                rec.timer = 0
                conn.loss_at = None
        else:
            rec.arm_pto(conn, ((snd_max - ack + HALF) & MASK) - HALF, now)
        if sb.lostq:
            out.output(conn, now)
            conn.arm()
            return
    # _text with no text: whatever output has to send (nothing when no byte waits: skip it), then the timers
    if not sent and ((conn.buf_seq + sndbuf.queued - conn.snd_nxt + HALF) & MASK) - HALF > 0 and \
            tso.push(conn, now) < 0:  # (output's own first step, without output's call)
        out.output(conn, now)
    # conn.arm(), inlined (ESTABLISHED): the heap entry no later than the earliest timer
    due: float | None = conn.rexmit_at
    y: float | None = conn.delack_at
    if y is not None and (due is None or y < due):
        due = y
    y = conn.linger_at
    if y is not None and (due is None or y < due):
        due = y
    y = conn.loss_at
    if y is not None and (due is None or y < due):
        due = y
    t = conn.timer_at
    if due is None:
        if t is not None:
            conn.layer.timers.cancel(conn)
    elif t is None or due < t:
        conn.layer.timers.schedule(conn, due)


def _sb_ack(sb: Scoreboard, una: int) -> None:
    """`sb.ack(una)` when nothing is SACKed, lost or resent: the records never resent, in order, are dropped
    here; the first other one (or one ACKed in part) hands the rest to sb.ack."""
    segs = sb.segs
    n = len(segs)
    k = 0
    pop = sb.tsorder.pop
    fack = sb.fack
    d_xmit = sb.d_xmit
    for s in segs:
        end = s.end
        # end after una, or resent, out of order, below fack (seq_gt(fack, end)): not the common case
        if (una - end) & MASK > HALF or s.flags or s.xmit < d_xmit or (end - fack) & MASK > HALF:
            break
        d_xmit = s.xmit
        pop(s, None)
        s.flags = SACKED
        k += 1
    if k:
        sb.d_xmit, sb.d_end = d_xmit, segs[k - 1].end  # the newest delivered: the last one dropped
        del segs[:k]
    if not sb.ranges:
        if k < n:
            s = segs[0]
            if not 0 < ((s.end - una) & MASK) < HALF:
                sb.ack(una)  # a record ACKed whole that is not the common case
                return
            if s.start != una:
                if s.flags or ((s.start - una) & MASK) < HALF:
                    sb.ack(una)
                    return
                s.start = una  # ACKed in part, never resent: trimmed (nothing counted in its bytes)
        if ((fack - una) & MASK) >= HALF:  # seq_gt(una, fack)
            sb.fack = una
        return
    sb.ack(una)
