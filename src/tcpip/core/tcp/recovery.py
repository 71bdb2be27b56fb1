"""Loss recovery of a SACK connection: the scoreboard (RFC 6675), RACK-TLP (RFC 8985), Proportional Rate
Reduction (RFC 6937), rescue retransmission, and D-SACK (RFC 2883) undo of spurious retransmissions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tcpip.core.tcp import autotune
from tcpip.core.tcp import output as out
from tcpip.core.tcp.rack import Rack
from tcpip.core.tcp.resend import resend, send_one_new
from tcpip.core.tcp.scoreboard import BY_RACK, BY_RTO, LOST, RETRANS, SACKED, Scoreboard
from tcpip.core.tcp.seq import seq_add, seq_ge, seq_gt, seq_le, seq_lt, seq_sub

if TYPE_CHECKING:
    from tcpip.core.tcp.conn import Connection
    from tcpip.wire.tcp import TcpRepr

WC_DELACK = 0.2  # RFC 8985 7.2 WCDelAckT: the longest a receiver may delay the ACK of one segment
PTO_MIN = 0.01
T_REO, T_PTO = 1, 2


class Recovery:
    """Per-connection recovery state (created when SACK is negotiated)."""

    __slots__ = ("loss_until", "prr_delivered", "prr_out", "rack", "recover_fs", "rescued", "sb", "timer",
                 "tlp_end", "tlp_retrans", "undo_marker", "undo_seqs", "wmemo")

    def __init__(self) -> None:
        self.sb = Scoreboard()
        self.rack = Rack()
        self.timer = 0  # what conn.loss_at means: T_REO (reordering timer) or T_PTO (probe timeout)
        self.prr_delivered = self.prr_out = self.recover_fs = 0
        self.rescued = False  # RFC 6675 rescue retransmission done in this episode
        self.tlp_end: int | None = None  # a loss probe is outstanding up to this sequence
        self.tlp_retrans = False
        self.undo_marker: int | None = None  # snd_una when the episode began: D-SACKs above it count
        # where the episode's retransmissions start, until a D-SACK proves each one spurious (only those
        # count: a network duplicate of another segment proves nothing)
        self.undo_seqs: set[int] | None = None
        self.loss_until: int | None = None  # after a timeout: resending from the scoreboard up to here
        # emit.window_field's last (rcv_nxt, free, rcv_adv after, scale, adv_mss, field): the same inputs give
        # the same field (config.rcvbuf, its other input, is the connection's for good)
        self.wmemo: tuple[int, int, int, int, int, int] = (-1, 0, 0, 0, 0, 0)

    # -- hooks from output -------------------------------------------------------------------------------
    def on_send(self, conn: Connection, seq: int, end: int, now: float) -> None:
        """Every data/FIN segment goes through here: new ones are recorded, old ones marked resent."""
        if not seq_gt(end, seq):
            return
        if seq_ge(seq, conn.snd_max):
            self.sb.sent(seq, end, now)
        else:
            go_back = conn.snd_nxt != conn.snd_max
            self.sb.resent(seq, end, now, not go_back)
            if self.undo_marker is not None:
                if self.undo_seqs is None:
                    self.undo_seqs = set()
                self.undo_seqs.add(seq)
        if conn.in_recovery:
            self.prr_out += seq_sub(end, seq)

    def pipe(self, conn: Connection) -> int:
        sb = self.sb
        return seq_sub(conn.snd_max, conn.snd_una) - sb.sacked_bytes - sb.lost_bytes + sb.retrans_bytes

    def retransmit_lost(self, conn: Connection, now: float) -> None:
        """NextSeg rule 1 while pipe < cwnd: lost segments first, oldest first."""
        sb = self.sb
        if not sb.lostq or conn.snd_nxt != conn.snd_max:
            return
        stats = conn.layer.stats
        while self.pipe(conn) < conn.cwnd:
            s = sb.next_lost()
            if s is None:
                break
            if s.flags & BY_RACK:
                stats.rack_retrans += 1
            elif s.flags & BY_RTO:
                stats.rto_retrans += 1
            else:
                stats.fast_retrans += 1
            if s.start == conn.snd_una:  # the head went again: its timer starts over (as Linux)
                conn.rexmit_at = now + conn.rto
            resend(conn, s, now)

    # -- ACK processing ----------------------------------------------------------------------------------
    def on_ack(self, conn: Connection, seg: TcpRepr, acked: int, now: float) -> None:
        """Everything an acceptable ACK means for recovery (snd_una already advanced). Sends nothing itself:
        the caller's output() follows (lost segments first, then new data, then the rescue)."""
        sb = self.sb
        rack = self.rack
        una = conn.snd_una
        sb.now = now
        if acked > 0 and seq_add(una, -acked) == conn.iss:
            acked -= 1  # the SYN is no data
        if not seg.sack and not (sb.sacked_bytes or sb.lost_bytes or sb.retrans_bytes) and \
                self.timer != T_REO and not conn.in_recovery and self.loss_until is None and \
                self.tlp_end is None and conn.snd_nxt == conn.snd_max:
            # fast path: in-order delivery with no SACK state; nothing RACK could judge lost
            if acked > 0:
                sb.ack(una)
                rack.update(sb, now)
                c = conn.cc  # _grow, inlined: this runs per ACK
                c.on_ack(acked, una, conn.snd_max, rack.rtt, now)
                if conn.config.autotune and 2 * c.cwnd > conn.sndbuf.capacity:  # expand_sndbuf's own test
                    autotune.expand_sndbuf(conn)
                cap = 2 * conn.sndbuf.capacity + conn.mss
                c.cwnd = min(c.cwnd, cap)
            self.schedule_pto(conn, now)
            return
        delivered = 0
        if acked > 0:
            delivered = acked - sb.ack(una)
        dsack = None
        if seg.sack:
            newly, dsack = sb.sack(seg.sack, una, conn.snd_max, seg.ack)
            delivered += newly
        rack.update(sb, now)
        stats = conn.layer.stats
        if dsack is not None:
            stats.dsack_recv += 1
            rack.on_dsack(una, conn.snd_max)
            self._dsack_undo(conn, dsack, now)
        if self.tlp_end is not None and (dsack is not None or seq_ge(una, self.tlp_end)):
            self._tlp_done(conn, dsack is not None, now)
        head = sb.head()
        if head is not None and head.flags & SACKED and acked > 0:
            stats.sack_reneging += 1  # the peer dropped what it SACKed: resend it (RFC 2018 8)
            sb.forget_sacks()
        mss = conn.mss
        if conn.snd_nxt == conn.snd_max:  # not going back after a timeout
            if head is not None and sb.sacked_bytes > 2 * mss and not head.flags & (SACKED | LOST):
                sb.mark_lost(head, 0)  # RFC 6675 IsLost(HighACK + 1)
            self._detect(conn, now)
            if self.loss_until is not None and seq_ge(una, self.loss_until):
                self.loss_until = None  # everything outstanding at the timeout is acknowledged
            if not conn.in_recovery and sb.lost_bytes and self.loss_until is None:
                self._enter(conn, now)
        if conn.in_recovery:
            if seq_ge(una, conn.recover):
                self._exit(conn, now)
            else:
                self._prr(conn, delivered)
        elif acked > 0:
            self._grow(conn, acked, now)
        self.schedule_pto(conn, now)

    def _grow(self, conn: Connection, acked: int, now: float) -> None:
        c = conn.cc
        c.on_ack(acked, conn.snd_una, conn.snd_max, self.rack.rtt, now)
        if conn.config.autotune:
            autotune.expand_sndbuf(conn)
        cap = 2 * conn.sndbuf.capacity + conn.mss  # beyond what the send buffer can keep in flight
        c.cwnd = min(c.cwnd, cap)

    def _detect(self, conn: Connection, now: float) -> None:
        rack = self.rack
        wnd = rack.reo_wnd(conn.in_recovery, self.sb.sacked_bytes, conn.mss, conn.srtt)
        timeout = rack.detect_loss(self.sb, wnd, now)
        if timeout is not None:
            self.timer = T_REO
            conn.loss_at = now + timeout
        elif self.timer == T_REO:
            self.timer = 0
            conn.loss_at = None

    def _enter(self, conn: Connection, now: float) -> None:
        """RFC 6675 5 / RFC 6937: one window reduction per episode; PRR paces the way down."""
        flight = seq_sub(conn.snd_max, conn.snd_una)
        conn.layer.stats.recoveries += 1
        c = conn.cc
        c.save()
        c.on_loss(flight, now)
        conn.in_recovery = True
        conn.recover = conn.snd_max
        self.recover_fs = flight
        self.prr_delivered = self.prr_out = 0
        self.rescued = False
        self.undo_marker = conn.snd_una
        self.undo_seqs = None
        self._prr(conn, 0)

    def _exit(self, conn: Connection, now: float) -> None:
        conn.in_recovery = False
        conn.cc.on_recovery_end(now)
        self.rack.on_recovery_end()

    def _prr(self, conn: Connection, delivered: int) -> None:
        """RFC 6937: cwnd = pipe + sndcnt, rounded up to whole segments."""
        self.prr_delivered += delivered
        pipe = self.pipe(conn)
        mss = conn.mss
        ssthresh = conn.cc.ssthresh
        if pipe > ssthresh:  # proportional part
            sndcnt = -(-self.prr_delivered * ssthresh // max(self.recover_fs, 1)) - self.prr_out
        else:  # slow-start reduction bound (PRR-SSRB)
            limit = max(self.prr_delivered - self.prr_out, delivered) + mss
            sndcnt = min(ssthresh - pipe, limit)
        if sndcnt <= 0:
            sndcnt = 0 if self.prr_out else 1  # the first ACK of the episode sends one (as Linux)
        segs = sndcnt // mss  # whole segments; a positive remainder alone still sends one
        conn.cc.cwnd = pipe + (segs if segs or sndcnt <= 0 else 1) * mss

    def rescue(self, conn: Connection, now: float) -> None:
        """RFC 6675 NextSeg rule 4 (after output() tried rules 1-2): nothing lost left, no new data: resend
        the last unSACKed segment, once per recovery."""
        sb = self.sb
        if sb.lostq and sb.next_lost() is not None:
            return
        if self.pipe(conn) >= conn.cwnd or conn.snd_nxt != conn.snd_max:
            return
        if seq_sub(seq_add(conn.buf_seq, conn.sndbuf.queued), conn.snd_max) > 0:
            return  # new data waits (for the peer's window): rule 2 comes first
        for s in reversed(sb.segs):
            if not s.flags & SACKED:
                if not s.flags & RETRANS:
                    self.rescued = True
                    conn.layer.stats.rescue_retrans += 1
                    resend(conn, s, now)
                return

    # -- D-SACK undo ----------------------------------------------------------------------------------------
    def _dsack_undo(self, conn: Connection, dsack: tuple[int, int], now: float) -> None:
        """A D-SACK covering one of the episode's retransmissions proves it spurious; when all are, the
        window reduction is undone (RFC 3708's idea, Linux tcp_try_undo_dsack)."""
        left, right = dsack
        todo = self.undo_seqs
        if self.undo_marker is None or not todo:
            return
        proven = [x for x in todo if seq_le(left, x) and seq_lt(x, right)]
        if not proven:
            return
        todo.difference_update(proven)
        if not todo and conn.cc.undo():
            conn.layer.stats.dsack_undo += 1
            self.undo_marker = None
            if conn.in_recovery:
                conn.in_recovery = False
                self.rack.on_recovery_end()

    # -- timers: reordering window and tail loss probe -------------------------------------------------------
    def schedule_pto(self, conn: Connection, now: float) -> None:
        """RFC 8985 7.2: arm the probe timeout when data is outstanding outside recovery."""
        if self.timer == T_REO or self.tlp_end is not None or conn.in_recovery or \
                self.loss_until is not None or conn.snd_una == conn.snd_max or \
                conn.snd_nxt != conn.snd_max or conn.persist:
            if self.timer == T_PTO and (conn.in_recovery or conn.snd_una == conn.snd_max):
                self.timer = 0
                conn.loss_at = None
            return
        self.arm_pto(conn, seq_sub(conn.snd_max, conn.snd_una), now)

    def arm_pto(self, conn: Connection, flight: int, now: float) -> None:
        """schedule_pto once its conditions hold (`flight` bytes outstanding): the fast paths call this."""
        srtt = conn.srtt
        pto = 2.0 * srtt if srtt else 1.0
        if flight <= conn.mss:
            pto += WC_DELACK
        pto = pto if pto > PTO_MIN else PTO_MIN
        at = conn.rexmit_at
        if at is not None and at - now <= pto:
            if self.timer == T_PTO:
                self.timer = 0
                conn.loss_at = None
        else:
            self.timer = T_PTO
            conn.loss_at = now + pto

    def on_timer(self, conn: Connection, now: float) -> None:
        kind, self.timer = self.timer, 0
        if conn.state not in out.SENDING or conn.snd_una == conn.snd_max:
            return
        if kind == T_REO and conn.snd_nxt == conn.snd_max:  # (going back after ICMP: no judging)
            self._detect(conn, now)
            if not conn.in_recovery and self.sb.lost_bytes and conn.snd_nxt == conn.snd_max and \
                    self.loss_until is None:
                self._enter(conn, now)
            self.retransmit_lost(conn, now)
            out.output(conn, now)
        elif kind == T_PTO:
            self._probe(conn, now)
        conn.rexmit_at = now + conn.rto if conn.rexmit_at is None or kind == T_PTO else conn.rexmit_at

    def _probe(self, conn: Connection, now: float) -> None:
        """RFC 8985 7.3: send one new segment if the window allows, else resend the last one."""
        stats = conn.layer.stats
        stats.tlp_probes += 1
        self.undo_marker = self.undo_seqs = None  # the last episode is over: a probe's D-SACK is not its
        unsent = seq_sub(seq_add(conn.buf_seq, conn.sndbuf.queued), conn.snd_max)
        flight = seq_sub(conn.snd_max, conn.snd_una)
        self.tlp_retrans = False
        if not (unsent > 0 and conn.snd_wnd - flight >= min(unsent, conn.mss) and send_one_new(conn, now)):
            segs = self.sb.segs
            if not segs:
                return
            s = segs[-1]
            if s.flags & SACKED:
                return
            self.tlp_retrans = True
            stats.tlp_retrans += 1
            resend(conn, s, now)
        self.tlp_end = conn.snd_max

    def _tlp_done(self, conn: Connection, dsack: bool, now: float) -> None:
        """RFC 8985 7.4: a probe ACKed without a D-SACK repaired a real loss: reduce the window once."""
        self.tlp_end = None
        if self.tlp_retrans and not dsack and not conn.in_recovery:
            conn.layer.stats.tlp_recoveries += 1
            c = conn.cc
            c.on_loss(seq_sub(conn.snd_max, conn.snd_una), now)
            c.cwnd = c.ssthresh
        self.tlp_retrans = False

    def after_rto(self, conn: Connection, now: float) -> bool:
        """The timer's retransmission: the first lost segment (cwnd is one segment now). False if the
        scoreboard has nothing to resend (the caller goes back to snd_una instead)."""
        if self.sb.next_lost() is None or conn.snd_nxt != conn.snd_max:
            return False
        self.retransmit_lost(conn, now)
        return True

    def on_rto(self, conn: Connection) -> None:
        """Retransmission timeout: everything unSACKed is lost and goes again from the scoreboard under
        the slow-start window (no go-back over SACKed data); a second one in a row means the peer may
        have reneged (RFC 2018 8): forget its SACKs."""
        sb = self.sb
        if conn.retries > 1:
            sb.forget_sacks()
        sb.all_lost()
        self.loss_until = conn.snd_max
        self.timer = 0
        conn.loss_at = None
        self.tlp_end = None
        if conn.in_recovery:
            self.rack.on_recovery_end()
        conn.in_recovery = False
        self.undo_marker = conn.snd_una
        self.undo_seqs = None

