"""Segment arrival (RFC 9293 3.10.7) for a connection: acceptability, RFC 5961 checks, ACKs, data, FIN."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tcpip.core.tcp import autotune
from tcpip.core.tcp import output as out
from tcpip.core.tcp.ack_field import process_ack
from tcpip.core.tcp.opening import established, syn_sent, time_wait
from tcpip.core.tcp.rx_ack import bulk_ack, pure_ack
from tcpip.core.tcp.seq import MASK, seq_add, seq_ge, seq_gt, seq_in, seq_le, seq_lt, seq_sub
from tcpip.core.tcp.state import EV_DATA, EV_EOF, TcpState, refused, reset
from tcpip.wire.tcp import ACK, FIN, PSH, RST, SYN, TcpRepr

if TYPE_CHECKING:
    from tcpip.core.tcp.conn import Connection

S = TcpState
_HALF = 1 << 31
_ESTABLISHED_OR_CLOSE_WAIT = (S.ESTABLISHED, S.CLOSE_WAIT)
FAST_ACK = True  # rx_ack.pure_ack for the bulk sender's ACKs (off: the general path; tests compare the two)


def segment_arrives(conn: Connection, seg: TcpRepr, data: memoryview, now: float) -> bool:
    """Process one segment. True means: this TIME_WAIT 4-tuple was freed for a new SYN; hand it on."""
    st = conn.state
    flags = seg.flags
    seq = seg.seq
    dlen = len(data)
    ts = seg.timestamp
    rcv_nxt = conn.rcvbuf.rcv_nxt
    if st == S.ESTABLISHED and (flags & ~PSH) == ACK and seq == rcv_nxt and \
            (not dlen or conn.rcv_adv != rcv_nxt):
        # Header prediction: the next in-order segment, no SYN/FIN/RST, window open. Checks one to
        # four cannot fail (PAWS aside), so straight to the ACK and the text.
        if ts is not None and conn.ts_ok:
            if (ts[0] - conn.ts_recent) & MASK >= _HALF:  # seq_lt(ts[0], ts_recent), inlined (per segment)
                if dlen:
                    conn.layer.stats.paws_rejected += 1
                    out.oow_ack(conn, now, True)
                    return False
            elif seq == conn.last_ack_sent or (seq - conn.last_ack_sent) & MASK >= _HALF:  # seq_le
                conn.ts_recent = ts[0]
        if (not seg.sack and bulk_data(conn, seg.ack, seg.window, data, dlen, seq, now)) if dlen else \
                FAST_ACK and pure_ack(conn, seg, now):
            return False
        if process_ack(conn, seg, dlen, now):
            _text(conn, seg, data, dlen, seq, flags, rcv_nxt, False, now)
        return False
    if st == S.SYN_SENT:
        syn_sent(conn, seg, data, now)
        return False
    if st == S.TIME_WAIT:
        return time_wait(conn, seg, data, now)
    layer = conn.layer
    stats = layer.stats
    if st == S.SYN_RECEIVED and flags & SYN and seq == conn.irs:
        if conn.listener is None and flags & ACK and seg.ack == conn.snd_max:
            flags &= ~SYN  # simultaneous open: the peer's SYN-ACK completes ours (as Linux does)
            seq = rcv_nxt
            seg.seq = seq
        else:
            if not flags & (ACK | RST):  # the peer retransmitted its SYN: so do we (SYN-ACK)
                out.send_syn(conn, now)
                conn.arm()
            return False
    seglen = dlen + (1 if flags & SYN else 0) + (flags & FIN)
    # RFC 7323 5.3 PAWS
    # (Like Linux's tcp_disordered_ack, a bare ACK is exempt: reordered ACKs are harmless.)
    if conn.ts_ok and ts is not None and (dlen or flags & (SYN | FIN)) and seq_lt(ts[0], conn.ts_recent):
        stats.paws_rejected += 1
        _dsack(conn, seq, dlen, rcv_nxt)
        out.oow_ack(conn, now, dlen > 0)
        return False
    # first: sequence number (RFC 9293 3.10.7.4, the four cases)
    wnd = seq_sub(conn.rcv_adv, rcv_nxt)
    wnd = max(wnd, 0)
    if seglen == 0:
        # Linux's tcp_sequence: an empty segment exactly at the right edge is acceptable (a peer's pure
        # ACK after it filled our window sits there; rejecting it stalls the connection).
        ok = seq == rcv_nxt if wnd == 0 else seq_in(seq, rcv_nxt, seq_add(rcv_nxt, wnd + 1))
    elif wnd == 0:
        ok = False
    else:
        edge = seq_add(rcv_nxt, wnd)
        ok = seq_in(seq, rcv_nxt, edge) or seq_in(seq_add(seq, seglen - 1), rcv_nxt, edge)
    zero_window = False
    if not ok:
        if wnd == 0 and seq == rcv_nxt and not flags & (SYN | RST) and flags & ACK:
            zero_window = True  # 3.10.7.4: still process the ACK; the data is dropped and ACKed below
        else:
            if flags & RST:
                stats.rx_rst_ignored += 1
                return False
            stats.rx_not_acceptable += 1
            if flags & SYN:
                stats.syn_challenges += 1
                out.challenge_ack(conn, now)
            else:
                # RFC 7323 5.3 R3 comes before the window test: a duplicate (its ACK was lost) updates
                # TS.Recent, so our ACK dates the retransmission, not the original. Only from within
                # the last window's worth of sequence space (a blind segment cannot move it far).
                if dlen and conn.ts_ok and ts is not None and seq_ge(ts[0], conn.ts_recent) and \
                        seq_in(seq, seq_add(rcv_nxt, -conn.config.rcvbuf), rcv_nxt):
                    conn.ts_recent = ts[0]
                _dsack(conn, seq, dlen, rcv_nxt)
                out.oow_ack(conn, now, dlen > 0)
            return False
    # RFC 7323 4.3: TS.Recent from a segment covering Last.ACK.sent
    if conn.ts_ok and ts is not None and seq_le(seq, conn.last_ack_sent) and \
            seq_ge(ts[0], conn.ts_recent):
        conn.ts_recent = ts[0]
    # second: RST (RFC 5961 3.2: reset only at exactly rcv_nxt, else challenge)
    if flags & RST:
        if seq == rcv_nxt:
            stats.rx_rst_accepted += 1
            if st == S.SYN_RECEIVED:
                layer.terminate(conn, refused() if conn.listener is None else None)
            else:
                if st in _ESTABLISHED_OR_CLOSE_WAIT:
                    stats.estab_resets += 1
                layer.terminate(conn, reset())
        else:
            stats.rx_rst_challenged += 1
            out.challenge_ack(conn, now)
        return False
    # fourth: SYN on a synchronized connection (RFC 5961 4.2)
    if flags & SYN:
        stats.syn_challenges += 1
        stats.rx_syn_in_window += 1
        out.challenge_ack(conn, now)
        return False
    # fifth: ACK
    if not flags & ACK:
        stats.rx_no_ack += 1
        return False
    if st == S.SYN_RECEIVED:
        ack = seg.ack
        if not (seq_lt(conn.snd_una, ack) and seq_le(ack, conn.snd_max)):
            stats.rx_synrecv_bad_ack += 1
            layer.send_reset(conn.local_addr, conn.remote_addr, seg, dlen, now)
            return False
        if not established(conn, seg, now):
            return False
        st = conn.state
    if process_ack(conn, seg, dlen, now):
        _text(conn, seg, data, dlen, seq, flags, rcv_nxt, zero_window, now)
    return False


def bulk_data(conn: Connection, ack: int, window: int, data: memoryview, dlen: int, seq: int, now: float) -> bool:
    """Header prediction's receiver half (Van Jacobson; Linux tcp_rcv_established) for a segment without SACK
    blocks (its ACK and window fields given): in-order data that acknowledges nothing new while nothing of ours
    is in flight, nothing held out of order. Does exactly what ack_field.process_ack + _text would, without their
    general checks. False: not that case, and nothing changed."""
    rb = conn.rcvbuf
    if ack != conn.snd_una or ack != conn.snd_max or conn.app_closed or not (conn.sack_ok or conn.rec is None):
        return False
    wl1 = conn.snd_wl1
    if not ((wl1 - seq) & MASK >= _HALF or (wl1 == seq and seq_le(conn.snd_wl2, ack))) \
            or not rb.append_next(seq, data):
        return False  # (append_next changes nothing when it cannot take the whole segment)
    n = dlen
    # process_ack: a window update at most (acked == 0, nothing outstanding: no RTT, cwnd or dupack work)
    conn.rcv_tstamp = now
    conn.probes = 0
    wnd = window << conn.snd_wscale
    if wnd != conn.snd_wnd:
        conn.snd_wnd = wnd
        conn.max_snd_wnd = max(conn.max_snd_wnd, wnd)
    conn.snd_wl1 = seq
    conn.snd_wl2 = ack
    # _text for in-order data in ESTABLISHED
    if conn.config.autotune:
        t = conn.tune
        if t is None or (rb.rcv_nxt - t.rtt_seq) & MASK < _HALF:  # else on_data has nothing to do
            autotune.on_data(conn, now)
    if dlen > conn.rcv_mss:
        conn.rcv_mss = dlen if dlen < conn.adv_mss else conn.adv_mss
    if not conn.data_ev:
        conn.data_ev = True
        conn.layer.events.append((EV_DATA, conn, None))
    conn.ack_pending += n
    ack_now = conn.ack_pending >= 2 * conn.rcv_mss
    if ack_now and dlen > conn.adv_mss:
        # An offloaded super-segment (many MSS at once): Linux's __tcp_ack_snd_check. ACK at once only while
        # quick ACKs last (the transfer's start) or when the window we would offer now is at least the one
        # last offered (the reader keeps up). Otherwise the bytes wait unread, as in Linux before recvmsg:
        # the read's window_update sends the ACK (tcp_cleanup_rbuf), else the delayed-ACK timer does, and a
        # TAP drain of ~10 super-segments costs one ACK, not ten.
        if conn.quick:  # ack_super(conn), inlined (per super-segment)
            conn.quick -= 1
        elif rb.capacity - rb.readable < (conn.rcv_adv - conn.last_ack_sent) & MASK:
            ack_now = False
    if not ack_now and conn.delack_at is None:
        conn.delack_at = now + conn.config.delack
    rec = conn.rec
    # output() sends nothing without queued data, a FIN or SACK recovery work: skip the call
    if conn.sndbuf.queued or conn.fin_queued or (rec is not None and (rec.sb.lostq or conn.in_recovery)):
        if out.output(conn, now):
            ack_now = False  # the data segment carried the ACK
        if ack_now:
            bulk_ack(conn, now)
        conn.arm()
        return True
    if ack_now:
        bulk_ack(conn, now)
    # Only the delayed-ACK deadline changed. A cleared one leaves the heap entry where it is: it fires
    # early, finds nothing due and re-arms (once per delayed-ACK interval) instead of a cancel and a
    # push per two segments. A new one earlier than the entry (or with no entry) is armed.
    x = conn.delack_at
    if x is not None and (conn.timer_at is None or x < conn.timer_at):
        conn.arm()
    return True


def ack_super(conn: Connection) -> bool:
    """Whether in-order super-segment data owed an ACK (two segments' worth or more) gets it at once: while
    quick ACKs last, or when the window we would offer now is at least the one last offered (bulk_data)."""
    if conn.quick:
        conn.quick -= 1
        return True
    rb = conn.rcvbuf
    return rb.capacity - rb.readable >= (conn.rcv_adv - conn.last_ack_sent) & MASK


def _dsack(conn: Connection, seq: int, dlen: int, rcv_nxt: int) -> None:
    """RFC 2883: a duplicate of data already received is reported in the first SACK block of our ACK."""
    if dlen and conn.sack_ok and seq_le(seq_add(seq, dlen), rcv_nxt):
        conn.dsack = (seq, seq_add(seq, dlen))


def _text(conn: Connection, seg: TcpRepr, data: memoryview, dlen: int, seq: int, flags: int, rcv_nxt: int,
          zero_window: bool, now: float) -> None:
    """The seventh (segment text) and eighth (FIN) steps, then what goes out in answer."""
    st = conn.state
    layer = conn.layer
    stats = layer.stats
    rb = conn.rcvbuf
    ack_now = False
    fin = flags & FIN
    if zero_window:
        if dlen:
            stats.zero_window_drop += 1
            ack_now = True
            dlen = 0
            data = data[:0]
        # a bare FIN at rcv_nxt is taken even with a zero window (as Linux does)
    if (dlen or fin) and st in (S.ESTABLISHED, S.FIN_WAIT_1, S.FIN_WAIT_2):
        if conn.app_closed and dlen and seq_gt(seq_add(seq, dlen), rcv_nxt):
            stats.abort_on_data += 1  # nobody will read it: RST (Linux tcp_rcv_state_process)
            out.send_rst(conn, now)
            layer.terminate(conn, None)
            return
        had_holes = rb.has_holes
        ooo_before = rb.ooo_dropped
        n, fin_now = rb.add(seq, data, bool(fin))
        if n and conn.config.autotune:
            autotune.on_data(conn, now)
        if dlen > conn.rcv_mss:
            conn.rcv_mss = dlen if dlen < conn.adv_mss else conn.adv_mss
        if n and not conn.data_ev:
            conn.data_ev = True
            layer.events.append((EV_DATA, conn, None))
        if seq != rcv_nxt or had_holes or fin_now or rb.has_holes:
            ack_now = True  # out of order, a hole filled, or a FIN: ACK at once (RFC 5681 4.2)
            if seq != rcv_nxt:
                if rb.ooo_dropped != ooo_before:
                    stats.ofo_drop += 1
                else:
                    stats.ofo_queue += 1
        elif n:
            conn.ack_pending += n
            if conn.ack_pending >= 2 * conn.rcv_mss and (dlen <= conn.adv_mss or ack_super(conn)):
                ack_now = True  # (a super-segment: bulk_data's rule; else RFC 1122 4.2.3.2's second segment)
            elif conn.delack_at is None:
                conn.delack_at = now + conn.config.delack
        if fin_now:
            if not conn.app_closed:
                layer.events.append((EV_EOF, conn, None))
            st = conn.state
            if st == S.ESTABLISHED:
                conn.set_state(S.CLOSE_WAIT)
            elif st == S.FIN_WAIT_1:
                conn.set_state(S.CLOSING)
            elif st == S.FIN_WAIT_2:
                out.send_ack(conn, now)
                layer.enter_time_wait(conn, now)
                return
    elif dlen or fin:
        ack_now = seq_gt(seq_add(seq, dlen + fin), rcv_nxt)  # after the peer's FIN: ignore the text, but ACK
    if not out.output(conn, now) and ack_now:
        out.send_ack(conn, now)
    layer.maybe_report_end(conn)
    conn.arm()
    return
