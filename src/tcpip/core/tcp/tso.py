"""The fused TSO send for the bulk sender's common case: `output()` for an established connection with nothing
to retransmit, no SACK state and new data only, its super-segments built and handed to the device in one call.

`push(conn, now)` makes exactly the decisions `output.output(conn, now)` makes (windows, cwnd, Linux's TSO
deferral, sender SWS, Nagle), in the same order and with the same results: frames, counters, scoreboard and
connection fields (tests/core/tcp/test_tso_fused.py compares the two with FAST on and off). A super-segment
goes out as `send_data` + `_emit` + `gso_header` + `emit_gso` would send it, with the header packed once with
its partial checksum: when the Output's send_gso is the Host's, from the connection's `offload.GsoTemplate`
(Ethernet + IPv4 + TCP in one pack behind the virtio header, queued as offload.send_gso queues it;
tests/core/tcp/test_gso_template.py compares the two); anything not a super-segment goes through
`output.send_data` as before.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

from tcpip.core.offload import _FRAME_TS, _OPT_TS, GsoTemplate, gso_template
from tcpip.core.tcp import output as out
from tcpip.core.tcp.emit import window_field
from tcpip.core.tcp.recovery import T_REO
from tcpip.core.tcp.scoreboard import Seg
from tcpip.core.tcp.seq import HALF, MASK
from tcpip.core.tcp.state import TcpState
from tcpip.errors import NoRouteError, TcpipError
from tcpip.wire.tcp import ACK, PSH

if TYPE_CHECKING:
    from collections.abc import Callable

    from tcpip.core.tcp.conn import Connection

FAST = True  # off: push() declines and output() does the work (tests compare the two)
_TS_HDR = struct.Struct("!HHIIHHHHBBBBII")  # a super-segment's header: NOP NOP TS, as TcpRepr lays it out
ESTABLISHED = TcpState.ESTABLISHED
_ACK, _PSH = 0x8000 | ACK, 0x8000 | ACK | PSH  # a super-segment's data offset (8 words) and flags
_new = object.__new__


def _unset(*_a: object) -> Any:
    raise AssertionError("push: a template local used before the template was read")


def push(conn: Connection, now: float) -> int:  # noqa: PLR0912, PLR0915 - output()'s loop, inlined on purpose
    """`output(conn, now)` when the connection is ESTABLISHED with timestamps, TSO on, no FIN queued, nothing
    deemed lost, not in recovery, no SACKed ranges, no D-SACK or receive holes to report, and snd_nxt at
    snd_max: returns 1 when a segment went out, 0 when none did. -1: not that case, nothing changed (call
    output)."""
    layer = conn.layer
    tso = layer.tso_max
    if not FAST or not tso or conn.state is not ESTABLISHED or conn.fin_queued or not conn.ts_ok:
        return -1
    rec = conn.rec
    if rec is not None:
        sb = rec.sb
        if sb.lostq or conn.in_recovery or sb.ranges:
            return -1
    nxt = conn.snd_nxt
    if nxt != conn.snd_max or (conn.sack_ok and (conn.dsack is not None or conn.rcvbuf.has_holes)):
        return -1
    mss = conn.mss
    eff = mss - 12  # options_len: timestamps only
    big = (tso - 52) // eff * eff if eff > 0 else 0  # output's: tso - 40 - (mss - eff), whole segments
    if big <= eff:
        return -1  # TSO too small to matter: output's run of plain segments
    end = (conn.buf_seq + conn.sndbuf.queued) & MASK
    una = conn.snd_una
    cc = conn.cc
    # Sending changes neither window nor the scoreboard's byte counts (only input does): the limit on the
    # flight, min(send window, cwnd + sacked + lost - retransmitted), is computed once, offsets from snd_una
    flight = ((nxt - una + HALF) & MASK) - HALF
    qend = ((end - una + HALF) & MASK) - HALF  # queued bytes from snd_una: unsent = qend - flight
    if rec is not None:
        sb = rec.sb
        cap = cc.cwnd + sb.sacked_bytes + sb.lost_bytes - sb.retrans_bytes
        segs = sb.segs
    else:
        cap = cc.cwnd
        segs = []
    swnd = conn.snd_wnd
    cap = swnd if swnd < cap else cap
    # The loop's first round would stop at once, sending nothing: nothing waits, no room, or room for a runt
    # only (less than a segment and than what waits: tso_defer or sender SWS stop it): its tail only
    unsent = qend - flight
    free = cap - flight
    if unsent <= 0 or (free < unsent and (free <= 0 or (free < eff and free < conn.max_snd_wnd >> 1))):
        if unsent > 0 and conn.rexmit_at is None and una == conn.snd_max:
            conn.persist = True  # data waits for the window with nothing in flight: probe it
            conn.rexmit_at = now + out.persist_interval(conn)
        return 0
    sent = 0
    base = -1  # > -1 once the first super-segment set the fields all of this call's share (see _super)
    window = tsv = tsr = ack = frames = segs_out = src = dst = sp = dp = ipsum = ttlp = buf_seq = 0
    room = -1  # > 0: super-segments up to this size go out from the template `g` (see below)
    g: GsoTemplate | None = None
    pre = vh = b""
    keep: Callable[[Seg], object] | None = None
    order: dict[Seg, None] = {}
    view_parts: Callable[[int, int], list[memoryview]] = _unset
    ident: Callable[[int], int] = _unset
    add: Callable[[tuple[Any, ...]], None] = _unset
    while True:
        unsent = qend - flight
        if unsent <= 0:
            break
        n = cap - flight  # min(wnd, room) as output computes them
        n = unsent if unsent < n else n  # min() without its call
        n = big if big < n else n
        if n <= 0:
            break
        if n < big and n < unsent and flight > 0 and rec is not None and segs and now - segs[-1].xmit <= 0.001 \
                and n < (cc.cwnd if cc.cwnd < swnd else swnd) // 3 and now - segs[0].xmit >= conn.srtt / 2:
            break  # tso_defer(conn, segs, n, now), inlined: an ACK is due, it will open room for a bigger one
        if eff < n < unsent:
            n -= n % eff  # whole segments: no runt in the middle
        if n < eff:
            if n < unsent:
                if n < conn.max_snd_wnd >> 1:  # a runt the window forces: wait (sender SWS)
                    break
            elif not conn.nodelay and flight > 0:  # Nagle
                break
        if n > eff:
            if base < 0:  # _emit's fields: the same for every super-segment of this call (nothing here
                # changes the receive side, and window_field given the same state gives the same field)
                ack = conn.last_ack_sent = conn.rcvbuf.rcv_nxt
                conn.delack_at = None
                conn.ack_pending = 0
                window = window_field(conn)
                tsv = (int(now * 1000.0) + conn.ts_offset) & MASK
                tsr = conn.ts_recent
                src, dst = conn.local_addr, conn.remote_addr
                base = (src >> 16) + (src & 0xFFFF) + (dst >> 16) + (dst & 0xFFFF) + 38  # TCP, 32-byte header
                # the headers' template: its Path still the one routing.path() hands out (checked once here:
                # nothing in this call changes routes or neighbours), else rebuilt (None: send_gso per frame)
                g = conn.gso_tpl
                if g is None or g.mss != eff or not g.fresh(now):
                    g = conn.gso_tpl = gso_template(layer.send_gso, src, dst, eff, now)
                if g is not None:  # the loop's constants for the template's frames
                    room = g.tso_max - 52
                    view_parts = conn.sndbuf.view_parts
                    buf_seq = conn.buf_seq
                    pre, vh, ipsum, ttlp, ident, add = g.pre, g.vh, g.ipsum, g.ttl_proto, g.ident, g.tx.append
                    sp, dp = conn.local_port, conn.remote_port
                    if rec is not None:
                        keep, order = rec.sb.segs.append, rec.sb.tsorder
            if n <= room:  # _super's frame from the template, inlined (per super-segment)
                parts = view_parts(((nxt - buf_seq + HALF) & MASK) - HALF, n)
                e = (nxt + n) & MASK
                if conn.rtt_seq is None:
                    conn.rtt_seq, conn.rtt_time = e, now
                if keep is not None:  # rec.sb.sent(nxt, e, now) without its call
                    r = _new(Seg)
                    r.start = nxt
                    r.end = e
                    r.xmit = now
                    r.flags = 0
                    keep(r)
                    order[r] = None
                c = base + n  # the pseudo-header's partial sum, folded twice (below 2**19), not complemented
                c = (c & 0xFFFF) + (c >> 16)
                c = (c & 0xFFFF) + (c >> 16)
                total = 52 + n
                i = ident(dst)
                x = ipsum + total + i
                add((vh, _FRAME_TS.pack(pre, total, i, 0x4000, ttlp, 0xFFFE - (x - 1) % 0xFFFF, src, dst, sp, dp, nxt,
                                        ack, _PSH if e == end else _ACK, window, c, 0, _OPT_TS, tsv, tsr), *parts))
                conn.snd_max = e
                segs_out += -(-n // eff)
                frames += 1
            else:
                _super(conn, nxt, n, eff, now, ack, window, tsv, tsr, base)
        else:
            out.send_data(conn, nxt, n, False, now, 0)
        nxt = conn.snd_nxt = (nxt + n) & MASK
        flight += n
        sent = 1
    if frames:
        assert g is not None
        g.sent(frames)
        stats = layer.stats
        stats.out_segs += segs_out
        stats.tx_tso_frames += frames
    if sent:
        if conn.rexmit_at is None or conn.persist:
            conn.persist = False
            conn.persist_backoff = 0
            conn.rexmit_at = now + conn.rto
        if rec is not None:
            # rec.schedule_pto: push's own conditions (not in recovery, snd_nxt at snd_max, data in
            # flight, no persist) leave only these to test
            if rec.timer == T_REO or rec.tlp_end is not None or rec.loss_until is not None:
                rec.schedule_pto(conn, now)
            else:
                rec.arm_pto(conn, ((conn.snd_max - una + HALF) & MASK) - HALF, now)
    elif conn.rexmit_at is None and una == conn.snd_max and ((end - nxt + HALF) & MASK) - HALF > 0:
        conn.persist = True  # data waits for the window with nothing in flight: probe it
        conn.rexmit_at = now + out.persist_interval(conn)
    return sent


def _super(conn: Connection, seq: int, n: int, gso: int, now: float, ack: int, window: int, tsv: int, tsr: int,
           base: int) -> None:
    """`send_data(conn, seq, n, False, now, gso)` for new data (seq == snd_max) without SACK blocks, _emit's
    connection fields already set by push (`ack`, `window`, the timestamps; `base`: the pseudo-header sum
    without the payload length), through send_gso (push builds the frame itself from a fresh template)."""
    sndbuf = conn.sndbuf
    off = ((seq - conn.buf_seq + HALF) & MASK) - HALF
    parts = sndbuf.view_parts(off, n)
    flags = ACK | PSH if off + n == sndbuf.queued else ACK
    end = (seq + n) & MASK
    if conn.rtt_seq is None:
        conn.rtt_seq, conn.rtt_time = end, now
    rec = conn.rec
    if rec is not None:
        rec.sb.sent(seq, end, now)
    # gso_header + emit_gso: the pseudo-header's partial sum (TCP length 32 + n), folded, not complemented
    c = base + n
    c = (c & 0xFFFF) + (c >> 16)
    c = (c & 0xFFFF) + (c >> 16)  # twice: the sum is below 2**19, one fold leaves at most 0xFFFF + 7
    hdr = _TS_HDR.pack(conn.local_port, conn.remote_port, seq, ack, 0x8000 | flags, window, c, 0, 1, 1, 8, 10,
                       tsv, tsr)
    layer = conn.layer
    stats = layer.stats
    stats.out_segs += -(-n // gso)
    stats.tx_tso_frames += 1
    send = layer.send_gso
    assert send is not None  # tso_max > 0 only with a send_gso (enable_tso)
    try:
        send(conn.local_addr, conn.remote_addr, (hdr, *parts), 32, gso, now)
    except NoRouteError as e:
        stats.send_errors += 1
        conn.send_error = e
    except TcpipError:
        stats.send_errors += 1
    conn.snd_max = end
