"""Segment arrival outside the synchronized path: SYN_SENT (RFC 9293 3.10.7.3), option negotiation from
the peer's SYN, the move to ESTABLISHED (accept queue or EV_CONNECTED), and TIME_WAIT."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tcpip.core.tcp import congestion as cc
from tcpip.core.tcp import output as out
from tcpip.core.tcp.seq import seq_add, seq_gt, seq_le, seq_lt
from tcpip.core.tcp.state import EV_ACCEPT, EV_CONNECTED, TcpState, refused
from tcpip.wire.tcp import ACK, FIN, RST, SYN, TcpRepr

if TYPE_CHECKING:
    from tcpip.core.tcp.conn import Connection

S = TcpState


def negotiate(conn: Connection, seg: TcpRepr, now: float) -> None:
    """Options from the peer's SYN (or SYN-ACK): MSS, window scale, SACK-permitted, timestamps."""
    cfg = conn.config
    peer = seg.mss if seg.mss is not None else cfg.default_mss
    mss = min(peer, conn.mss)  # conn.mss: our path's limit so far (ICMP may have lowered it)
    conn.mss = max(mss, cfg.min_mss)
    if seg.wscale is not None and cfg.window_scaling:
        conn.ws_ok = True
        conn.snd_wscale = min(seg.wscale, 14)  # RFC 7323 2.3
    else:
        conn.ws_ok = False
        conn.snd_wscale = conn.rcv_wscale = 0
    conn.sack_ok = seg.sack_permitted and cfg.sack
    conn.ts_ok = seg.timestamp is not None and cfg.timestamps
    if conn.ts_ok and seg.timestamp is not None:
        conn.ts_recent = seg.timestamp[0]
    conn.irs = seg.seq
    conn.rcvbuf.init(seq_add(seg.seq, 1))
    conn.last_ack_sent = conn.rcvbuf.rcv_nxt
    conn.rcv_adv = seq_add(conn.rcvbuf.rcv_nxt, min(conn.rcvbuf.window(), 0xFFFF))  # as our SYN said
    cc.init_cwnd(conn)


def established(conn: Connection, seg: TcpRepr, now: float) -> bool:
    """SYN_RECEIVED -> ESTABLISHED (or FIN_WAIT_1 when a FIN waits); False if the accept queue is full."""
    lst = conn.listener
    layer = conn.layer
    if lst is not None and lst.queue_full():
        layer.stats.listen_overflows += 1  # drop the ACK: the SYN-ACK timer retries (Linux)
        layer.stats.listen_drops += 1  # Linux counts every overflow as a drop too
        return False
    conn.snd_wnd = seg.window << conn.snd_wscale
    conn.max_snd_wnd = conn.snd_wnd
    conn.snd_wl1, conn.snd_wl2 = seg.seq, seg.ack
    conn.retries = 0
    conn.set_state(S.FIN_WAIT_1 if conn.fin_queued else S.ESTABLISHED)
    conn.reported = True
    if lst is not None:
        layer.stats.passive_opens += 1
        lst.queue(conn)
        layer.events.append((EV_ACCEPT, lst, conn))
    else:
        layer.events.append((EV_CONNECTED, conn, None))
    return True


def syn_sent(conn: Connection, seg: TcpRepr, data: memoryview, now: float) -> None:
    """RFC 9293 3.10.7.3."""
    flags = seg.flags
    layer = conn.layer
    ack_ok = False
    if flags & ACK:
        if seq_le(seg.ack, conn.iss) or seq_gt(seg.ack, conn.snd_max):
            layer.stats.rx_syn_ack_bad += 1
            layer.send_reset(conn.local_addr, conn.remote_addr, seg, len(data), now)
            return
        ack_ok = True
    if flags & RST:
        if ack_ok:
            layer.stats.rx_rst_accepted += 1
            layer.terminate(conn, refused())
        else:
            layer.stats.rx_rst_ignored += 1
        return
    if not flags & SYN:
        return
    negotiate(conn, seg, now)
    if ack_ok:
        conn.snd_una = seg.ack
        conn.buf_seq = seg.ack
        if conn.rtt_seq is not None:  # not retransmitted (Karn)
            conn.rtt_seq = None
            cc.rtt_sample(conn, now - conn.rtt_time)
        elif conn.srtt == 0.0:
            conn.rto = min(3.0, conn.config.rto_max)  # RFC 6298 5.7: the SYN was retransmitted
        conn.rexmit_at = None
        conn.recover = conn.snd_una
        established(conn, seg, now)
        conn.snd_wnd = seg.window  # RFC 7323 2.2: the SYN-ACK's window is not scaled
        conn.max_snd_wnd = conn.snd_wnd
        if not out.output(conn, now):
            out.send_ack(conn, now)
        conn.arm()
    else:
        conn.set_state(S.SYN_RECEIVED)  # simultaneous open
        conn.retries = 0
        conn.rtt_seq = None
        out.send_syn(conn, now)
        conn.rexmit_at = now + conn.rto
        conn.arm()


def time_wait(conn: Connection, seg: TcpRepr, data: memoryview, now: float) -> bool:
    """TIME_WAIT: re-ACK a retransmitted FIN (restarting 2*MSL); a new SYN above rcv_nxt may reuse the pair."""
    flags = seg.flags
    layer = conn.layer
    rcv_nxt = conn.rcvbuf.rcv_nxt
    if flags & RST:
        if seg.seq == rcv_nxt:
            layer.terminate(conn, None)
        return False
    ts = seg.timestamp
    if flags & SYN and not flags & ACK:
        # Linux tcp_timewait_state_process: a higher sequence number or a newer timestamp, and no PAWS
        # rejection, lets a new connection take over the 4-tuple.
        newer_ts = conn.ts_ok and ts is not None and seq_gt(ts[0], conn.ts_recent)
        paws = conn.ts_ok and ts is not None and seq_lt(ts[0], conn.ts_recent)
        if not paws and (seq_gt(seg.seq, rcv_nxt) or newer_ts) and \
                layer.find_listener(conn.local_addr, conn.local_port) is not None:
            layer.stats.tw_recycled += 1
            layer.terminate(conn, None)
            return True
        out.oow_ack(conn, now, False)
        return False
    end = seq_add(seg.seq, len(data) + (flags & FIN))
    if flags & FIN and end == rcv_nxt:
        layer.stats.time_wait_fin_reacked += 1
        conn.linger_at = now + conn.config.time_wait
        out.send_ack(conn, now)
        conn.arm()
        return False
    if len(data) or flags & FIN or seg.seq != rcv_nxt:
        out.oow_ack(conn, now, len(data) > 0)
    return False
