"""Segment output: building headers (options, window, SACK), segmentation, Nagle/SWS, ACKs, RSTs, probes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tcpip.core.tcp import tso as fused  # (not `tso`: output() has a local of that name)
from tcpip.core.tcp.emit import emit_gso, emit_plain, gso_header, tso_defer, window_field
from tcpip.core.tcp.emit import emit_run as emit_run  # noqa: PLC0414 (re-exported: rx_ack checks whether a test swapped it)
from tcpip.core.tcp.seq import HALF, MASK, seq_add, seq_gt, seq_le, seq_lt, seq_sub
from tcpip.core.tcp.state import TcpState
from tcpip.errors import NoRouteError, TcpipError
from tcpip.wire.tcp import ACK, FIN, PSH, RST, SYN, TcpRepr, fill_checksum

if TYPE_CHECKING:
    from tcpip.core.tcp.conn import Connection

S = TcpState
_EMPTY = b""
# States in which data and FIN segments may go out.
SENDING = frozenset({S.ESTABLISHED, S.CLOSE_WAIT, S.FIN_WAIT_1, S.CLOSING, S.LAST_ACK})


def ts_now(conn: Connection, now: float) -> int:
    """Our TSval: a 1 ms clock plus the connection's random offset."""
    return (int(now * 1000.0) + conn.ts_offset) & MASK


def _emit(conn: Connection, seq: int, flags: int, payload: memoryview | bytes, now: float,
          syn: bool = False, gso: int = 0, parts: list[memoryview] | None = None) -> None:
    """Build, checksum and hand one segment to the Output. A failed send counts as a lost segment.
    `gso`: a super-segment (TSO) the device cuts into segments of `gso` payload bytes; its checksum
    field holds the pseudo-header partial sum and the counters count the segments it stands for."""
    layer = conn.layer
    rb = conn.rcvbuf
    if flags & ACK:
        ack = rb.rcv_nxt
        conn.last_ack_sent = ack
        conn.delack_at = None
        conn.ack_pending = 0
    else:
        ack = 0
    if syn:
        window = min(rb.window(), 0xFFFF)  # RFC 7323 2.2: never scaled on a SYN
        if flags & ACK:
            conn.rcv_adv = seq_add(ack, window)
    elif flags & RST:
        window = 0
    else:
        window = window_field(conn)
        if not conn.sack_ok or (conn.dsack is None and not rb.has_holes):
            if not gso:
                emit_plain(conn, seq, ack, flags, window, payload, now)
                return
            hdr = gso_header(conn, seq, ack, flags, window, now)  # the same bytes as TcpRepr's below
            emit_gso(conn, seq, flags, hdr, parts if parts is not None else [payload], gso, now)
            return
    r = TcpRepr(conn.local_port, conn.remote_port, seq, ack, flags, window)
    if syn:
        cfg = conn.config
        r.mss = conn.adv_mss
        if flags & ACK:  # SYN-ACK: only what the peer's SYN offered
            r.wscale = conn.rcv_wscale if conn.ws_ok else None
            r.sack_permitted = conn.sack_ok
            if conn.ts_ok:
                r.timestamp = (ts_now(conn, now), conn.ts_recent)
        else:
            r.wscale = conn.rcv_wscale if cfg.window_scaling else None
            r.sack_permitted = cfg.sack
            if cfg.timestamps:
                r.timestamp = (ts_now(conn, now), 0)
    elif not flags & RST:
        if conn.ts_ok:
            r.timestamp = (ts_now(conn, now), conn.ts_recent)
        if conn.sack_ok:
            r.sack = _sack_blocks(conn)
    hdr = bytearray(r.header_len())
    r.emit(hdr)
    if gso:
        emit_gso(conn, seq, flags, hdr, parts if parts is not None else [payload], gso, now)
        return
    fill_checksum(hdr, conn.local_addr, conn.remote_addr, payload)
    stats = layer.stats
    if (payload or flags & (SYN | FIN)) and seq_lt(seq, conn.snd_max):
        stats.retrans_segs += 1
    else:
        stats.out_segs += 1
    if flags & RST:
        stats.out_rsts += 1
    try:
        layer.output.tcp_send(conn.local_addr, conn.remote_addr, (hdr, payload) if payload else (hdr,), now)
    except NoRouteError as e:
        stats.send_errors += 1
        conn.send_error = e
    except TcpipError:  # any other refusal below us (too long, device closed): a lost segment
        stats.send_errors += 1


def _sack_blocks(conn: Connection) -> tuple[tuple[int, int], ...]:
    """SACK blocks for our next segment: a pending D-SACK first (RFC 2883), then the receive queue's."""
    rb = conn.rcvbuf
    room = 3 if conn.ts_ok else 4
    d = conn.dsack
    if d is not None:
        conn.dsack = None
        return (d, *rb.sack_blocks(room - 1)) if rb.has_holes else (d,)
    return tuple(rb.sack_blocks(room)) if rb.has_holes else ()


def options_len(conn: Connection) -> int:
    """Option bytes on a data segment now: timestamps, and SACK blocks while the receive queue has holes
    or a D-SACK is pending."""
    n = 12 if conn.ts_ok else 0
    if conn.sack_ok:
        k = len(conn.rcvbuf.sack_blocks(4)) if conn.rcvbuf.has_holes else 0
        if conn.dsack is not None:
            k += 1
        if k:
            n += 4 + 8 * min(k, 3 if conn.ts_ok else 4)
    return n


def send_syn(conn: Connection, now: float) -> None:
    """SYN (active open) or SYN-ACK (passive open, or simultaneous open), always at ISS."""
    flags = SYN | ACK if conn.state == S.SYN_RECEIVED else SYN
    if conn.retries == 0:
        conn.rtt_seq, conn.rtt_time = seq_add(conn.iss, 1), now
        conn.snd_max = conn.iss
    else:
        conn.rtt_seq = None  # Karn
    _emit(conn, conn.iss, flags, _EMPTY, now, syn=True)
    conn.snd_nxt = conn.snd_max = seq_add(conn.iss, 1)


def acceptable_seq(conn: Connection) -> int:
    """The sequence number for a segment without data (Linux tcp_acceptable_seq): the highest sent, so the
    peer finds it in its window even while we retransmit from an earlier point, unless that lies
    beyond the window the peer offered."""
    edge = seq_add(conn.snd_una, conn.snd_wnd)
    return conn.snd_max if not seq_gt(conn.snd_max, edge) else edge


def send_ack(conn: Connection, now: float) -> None:
    _emit(conn, acceptable_seq(conn), ACK, _EMPTY, now)


def send_rst(conn: Connection, now: float) -> None:
    """RST|ACK at the highest sequence sent (Linux tcp_send_active_reset)."""
    _emit(conn, conn.snd_max, RST | ACK, _EMPTY, now)


def send_probe(conn: Connection, now: float) -> None:
    """Zero-window probe like Linux: an ACK at snd_una - 1, which the peer must answer with an ACK."""
    _emit(conn, seq_add(conn.snd_una, -1), ACK, _EMPTY, now)


def send_data(conn: Connection, seq: int, n: int, fin: bool, now: float, gso: int = 0) -> None:
    """One data (and/or FIN) segment at seq; the recovery scoreboard records it. `gso`: the segment size
    when n is larger (a TSO super-segment)."""
    off = ((seq - conn.buf_seq + HALF) & MASK) - HALF  # seq_sub, inlined: this runs per segment
    sndbuf = conn.sndbuf
    parts = None
    if gso:  # a super-segment's payload goes out in place, a slice per send-buffer block (writev)
        parts = sndbuf.view_parts(off, n)
        payload: memoryview | bytes = _EMPTY
    else:
        payload = sndbuf.view(off, n) if n else _EMPTY
    flags = ACK
    if fin:
        flags |= FIN
    if n and off + n == sndbuf.queued:
        flags |= PSH
    end = (seq + n + fin) & MASK
    snd_max = conn.snd_max
    if conn.rtt_seq is None and not seq_lt(seq, snd_max):
        conn.rtt_seq, conn.rtt_time = end, now
    rec = conn.rec
    if rec is not None:
        if seq == snd_max and end != seq and not conn.in_recovery:
            rec.sb.sent(seq, end, now)  # new data outside recovery: all rec.on_send would do
        else:
            rec.on_send(conn, seq, end, now)
    _emit(conn, seq, flags, payload, now, False, gso, parts)
    if seq_gt(end, snd_max):
        conn.snd_max = end


def output(conn: Connection, now: float, force: bool = False, max_segs: int = 1 << 30) -> bool:
    """Send new data (and the FIN) as the send window, cwnd, Nagle and sender SWS avoidance allow.
    `force` (persist timer, loss probe) overrides SWS avoidance. With SACK, segments deemed lost go first
    and cwnd is compared with pipe (RFC 6675), not with the flight. Returns whether a segment went out;
    arms the timers."""
    if not force and max_segs == 1 << 30 and (r := fused.push(conn, now)) >= 0:  # TSO bulk: one call
        return r > 0
    if conn.state not in SENDING:
        return False
    rec = conn.rec
    if rec is not None and rec.sb.lostq:
        rec.retransmit_lost(conn, now)
    sent = False
    eff = conn.mss - options_len(conn)
    big = eff
    tso = conn.layer.tso_max
    if tso and max_segs > 1:  # TSO: up to tso_max bytes of datagram, whole segments (the device cuts them)
        big = max(eff, (tso - 40 - (conn.mss - eff)) // eff * eff)
    end = seq_add(conn.buf_seq, conn.sndbuf.queued)
    while True:
        nxt = conn.snd_nxt
        limit = -1
        if conn.sacked and seq_lt(nxt, conn.snd_max):  # resending after a timeout: skip what the peer has
            for left, right in conn.sacked:
                if seq_le(right, nxt):
                    continue
                if seq_le(left, nxt):
                    nxt = right
                    continue
                limit = seq_sub(left, nxt)
                break
            conn.snd_nxt = nxt
        unsent = ((end - nxt + HALF) & MASK) - HALF  # seq_sub, inlined (twice): this runs per segment
        flight = ((nxt - conn.snd_una + HALF) & MASK) - HALF
        if unsent > 0:
            wnd = conn.snd_wnd - flight
            if rec is not None and nxt == conn.snd_max:
                sb = rec.sb
                room = conn.cc.cwnd - flight + sb.sacked_bytes + sb.lost_bytes - sb.retrans_bytes
            else:
                room = conn.cc.cwnd - flight
            avail = wnd if wnd < room else room
            if (big == eff and limit < 0 and avail >= eff and unsent > eff and max_segs > 0
                    and nxt == conn.snd_max and not conn.in_recovery and (not conn.sack_ok or (
                        conn.dsack is None and not conn.rcvbuf.has_holes))):
                # full segments, none the last of the data (no PSH/FIN): one call for the run
                k = min(avail // eff, (unsent - 1) // eff, max_segs)
                emit_run(conn, nxt, k, eff, now)
                sent = True
                force = False
                max_segs -= k
                if max_segs <= 0:
                    break
                continue
            n = min(unsent, big, avail)
            if 0 <= limit < n:
                n = limit
            if n <= 0:
                break
            if (n < big and n < unsent and big > eff and flight > 0 and not force and rec is not None
                    and nxt == conn.snd_max and not conn.in_recovery and tso_defer(conn, rec.sb.segs, n, now)):
                break  # an ACK is due: it will open room for a bigger super-segment
            if n > eff and n < unsent:
                n -= n % eff  # a super-segment of whole segments: no runt in its middle
            if n < eff and not force:
                if n < unsent:
                    if n < conn.max_snd_wnd >> 1:  # a runt the window forces: wait (sender SWS)
                        break
                elif not conn.nodelay and flight > 0:  # Nagle: one small segment in flight at a time
                    break
            fin = conn.fin_queued and n == unsent
            if nxt != conn.snd_max:
                conn.layer.stats.rto_retrans += 1  # going back after a timeout
            send_data(conn, nxt, n, fin, now, eff if n > eff else 0)
            conn.snd_nxt = (nxt + n + fin) & MASK
            sent = True
            force = False
            max_segs -= 1
            if fin or max_segs <= 0:
                break
        elif unsent == 0 and conn.fin_queued:  # FIN alone (not yet sent when snd_nxt == end)
            if nxt != conn.snd_max:
                conn.layer.stats.rto_retrans += 1
            send_data(conn, nxt, 0, True, now)
            conn.snd_nxt = seq_add(nxt, 1)
            sent = True
            break
        else:
            break
    if sent:
        if conn.rexmit_at is None or conn.persist:
            conn.persist = False
            conn.persist_backoff = 0
            conn.rexmit_at = now + conn.rto
        if rec is not None:
            rec.schedule_pto(conn, now)
    elif conn.rexmit_at is None and conn.snd_una == conn.snd_max and seq_sub(end, conn.snd_nxt) > 0:
        conn.persist = True  # data waits for the window with nothing in flight: probe it
        conn.rexmit_at = now + persist_interval(conn)
    if rec is not None and conn.in_recovery and not rec.rescued:
        rec.rescue(conn, now)
    return sent


def persist_interval(conn: Connection) -> float:
    t = conn.rto * (1 << min(conn.persist_backoff, 16))
    return t if t < conn.config.persist_max else conn.config.persist_max


def retransmit_first(conn: Connection, now: float) -> None:
    """Retransmit the segment at snd_una (fast retransmit, partial ACK, RTO), ignoring the windows."""
    una = conn.snd_una
    end = seq_add(conn.buf_seq, conn.sndbuf.queued)
    left = seq_sub(end, una)
    n = min(conn.mss - options_len(conn), left)
    n = max(n, 0)
    fin = conn.fin_queued and n == left and seq_gt(conn.snd_max, end)
    if n or fin:
        conn.rtt_seq = None  # Karn: no RTT sample from a retransmitted segment
        send_data(conn, una, n, fin, now)
        nxt = seq_add(una, n + fin)
        conn.rexmit_hint = nxt
        if seq_gt(nxt, conn.snd_nxt):
            conn.snd_nxt = nxt


def oow_ack(conn: Connection, now: float, has_data: bool) -> None:
    """ACK an unacceptable segment; zero-length ones at most once per invalid_ratelimit (Linux: data
    segments are never part of an ACK loop, so they are always answered)."""
    stats = conn.layer.stats
    if not has_data:
        if now - conn.oow_last < conn.config.invalid_ratelimit:
            stats.oow_ratelimited += 1
            return
        conn.oow_last = now
    stats.oow_acks += 1
    send_ack(conn, now)


def challenge_ack(conn: Connection, now: float) -> None:
    """RFC 5961 challenge ACK, under the per-connection and the global (challenge_ack_limit/s) limits."""
    layer = conn.layer
    stats = layer.stats
    if now - conn.oow_last < conn.config.invalid_ratelimit:
        stats.oow_ratelimited += 1
        return
    if not layer.challenge_allowed(now):
        stats.challenge_ack_limited += 1
        return
    conn.oow_last = now
    stats.challenge_acks += 1
    send_ack(conn, now)
