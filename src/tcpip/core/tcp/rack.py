"""RACK (RFC 8985 6): time-based loss detection. A segment is lost when one sent after it was delivered and
more than RTT + reordering window has passed since it was sent; the window adapts to D-SACKs."""

from __future__ import annotations

from tcpip.core.tcp.scoreboard import BY_RACK, Scoreboard, Seg
from tcpip.core.tcp.seq import seq_ge, seq_gt

DUP_THRESH = 3
REO_PERSIST = 16  # recoveries a widened reordering window survives (RFC 8985 6.2 step 4)


class Rack:
    """RACK state: the most recently sent segment that was delivered, the RTT it measured, min RTT and the
    reordering window multiplier."""

    __slots__ = ("dsack_round", "end_seq", "min_rtt", "reo_persist", "reo_wnd_mult", "reordering_seen", "rtt",
                 "xmit_ts")

    def __init__(self) -> None:
        self.xmit_ts = -1.0
        self.end_seq = 0
        self.rtt = 0.0
        self.min_rtt = 0.0  # 0: no sample yet
        self.reo_wnd_mult = 1
        self.reo_persist = 0
        self.dsack_round: int | None = None
        self.reordering_seen = False

    def update(self, sb: Scoreboard, now: float) -> None:
        """Steps 1-2 after the scoreboard took an ACK: adopt the newest delivered segment."""
        if sb.reordered:
            self.reordering_seen = True
            sb.reordered = False
        x = sb.d_xmit
        if x < 0.0:
            return
        sb.d_xmit = -1.0
        rtt = now - x
        self.rtt = rtt
        if rtt > 0.0 and (self.min_rtt == 0.0 or rtt < self.min_rtt):
            self.min_rtt = rtt
            sb.min_rtt = rtt
        if x > self.xmit_ts or (x == self.xmit_ts and seq_gt(sb.d_end, self.end_seq)):
            self.xmit_ts, self.end_seq = x, sb.d_end

    def on_dsack(self, snd_una: int, snd_max: int) -> None:
        """Step 4: widen the window once per round trip in which D-SACKs arrive."""
        if self.dsack_round is not None and seq_ge(snd_una, self.dsack_round):
            self.dsack_round = None
        if self.dsack_round is None:
            self.dsack_round = snd_max
            self.reo_wnd_mult += 1
            self.reo_persist = REO_PERSIST
            self.reordering_seen = True

    def on_recovery_end(self) -> None:
        if self.reo_persist > 0:
            self.reo_persist -= 1
            if self.reo_persist == 0:
                self.reo_wnd_mult = 1

    def reo_wnd(self, in_recovery: bool, sacked_bytes: int, mss: int, srtt: float) -> float:
        if not self.reordering_seen and (in_recovery or sacked_bytes >= DUP_THRESH * mss):
            return 0.0
        w = self.reo_wnd_mult * self.min_rtt / 4.0
        return w if w < srtt or srtt == 0.0 else srtt

    def detect_loss(self, sb: Scoreboard, reo_wnd: float, now: float) -> float | None:
        """Step 5: mark lost every outstanding segment sent before the RACK segment whose time is up;
        returns when the next one would be (for the reordering timer), or None."""
        if self.xmit_ts < 0.0:
            return None
        xmit_ts, end_seq = self.xmit_ts, self.end_seq
        wait = self.rtt + reo_wnd
        lost: list[Seg] = []
        timeout = None
        for s in sb.tsorder:  # oldest first; stops at the first one not yet due
            x = s.xmit
            if x > xmit_ts or (x == xmit_ts and seq_ge(s.end, end_seq)):
                break
            remaining = x + wait - now
            if remaining > 0.0:
                timeout = remaining
                break
            lost.append(s)
        for s in lost:
            sb.mark_lost(s, BY_RACK)
        return timeout
