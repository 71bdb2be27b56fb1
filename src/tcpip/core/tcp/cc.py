"""Pluggable congestion controllers: the `CongestionControl` interface, NewReno (RFC 5681/6582) and CUBIC
(RFC 9438) with HyStart++ (RFC 9406) slow start. Windows are in bytes; time is the caller's `now`."""

from __future__ import annotations

from collections.abc import Callable

from tcpip.core.tcp.seq import HALF, MASK

_INF = float("inf")


class CongestionControl:
    """The interface every controller implements. The connection calls:
    `on_ack(acked, ack, snd_max, rtt, now)` for each ACK of new data outside recovery (rtt: a sample in
    seconds or 0.0), `on_loss(flight, now)` when fast recovery starts (sets ssthresh; PRR then brings
    cwnd down to it), `on_rto(flight, now)` on a retransmission timeout, `on_recovery_end(now)` when
    recovery ends. `cwnd`/`ssthresh` are read (and, during PRR, written) by the connection; `save()`
    and `undo()` snapshot and restore the state for spurious-retransmission undo (RFC 2883, 3708)."""

    name = "base"
    __slots__ = ("cwnd", "mss", "saved", "ssthresh")

    def __init__(self, mss: int, cwnd: int) -> None:
        self.mss = mss
        self.cwnd = cwnd
        self.ssthresh = 1 << 30
        self.saved: tuple[object, ...] | None = None

    def on_ack(self, acked: int, ack: int, snd_max: int, rtt: float, now: float) -> None:
        raise NotImplementedError

    def on_loss(self, flight: int, now: float) -> None:
        raise NotImplementedError

    def on_rto(self, flight: int, now: float) -> None:
        self.on_loss(flight, now)
        self.cwnd = self.mss  # RFC 5681 3.1: loss window of one segment

    def on_recovery_end(self, now: float) -> None:
        self.cwnd = self.ssthresh if self.ssthresh < self.cwnd or self.cwnd < self.mss else self.cwnd

    def _state(self) -> tuple[object, ...]:
        return (self.cwnd, self.ssthresh)

    def _restore(self, state: tuple[object, ...]) -> None:
        cwnd, ssthresh = state[0], state[1]
        assert isinstance(cwnd, int)
        assert isinstance(ssthresh, int)
        self.cwnd = max(self.cwnd, cwnd)
        self.ssthresh = max(self.ssthresh, ssthresh)

    def save(self) -> None:
        self.saved = self._state()

    def undo(self) -> bool:
        """Restore the state saved before the last reduction; whether there was one."""
        if self.saved is None:
            return False
        self._restore(self.saved)
        self.saved = None
        return True


class NewReno(CongestionControl):
    """RFC 5681 slow start (RFC 3465 byte counting, L = 2) and congestion avoidance; halve on loss."""

    name = "newreno"
    __slots__ = ("acc",)

    def __init__(self, mss: int, cwnd: int) -> None:
        super().__init__(mss, cwnd)
        self.acc = 0

    def on_ack(self, acked: int, ack: int, snd_max: int, rtt: float, now: float) -> None:
        mss = self.mss
        if self.cwnd < self.ssthresh:
            self.cwnd += acked if acked < 2 * mss else 2 * mss
        else:
            self.acc += acked  # one MSS per cwnd of acknowledged bytes
            if self.acc >= self.cwnd:
                self.acc -= self.cwnd
                self.cwnd += mss

    def on_loss(self, flight: int, now: float) -> None:
        self.ssthresh = max(flight >> 1, 2 * self.mss)  # RFC 5681 eq. 4
        self.acc = 0


# RFC 9438 constants
C = 0.4
BETA = 0.7
ALPHA = 3.0 * (1.0 - BETA) / (1.0 + BETA)
# RFC 9406 constants
MIN_RTT_THRESH, MAX_RTT_THRESH, MIN_RTT_DIVISOR = 0.004, 0.016, 8
N_RTT_SAMPLE, CSS_GROWTH_DIVISOR, CSS_ROUNDS = 8, 4, 5


def w_cubic(t: float, w_max: float, k: float) -> float:
    """RFC 9438 eq. 1: the window (segments) t seconds into a congestion-avoidance epoch."""
    return C * (t - k) ** 3 + w_max


class Cubic(CongestionControl):
    """CUBIC (RFC 9438) with fast convergence and the Reno-friendly region; slow start is HyStart++."""

    name = "cubic"
    __slots__ = ("acc", "css_baseline", "css_rounds", "cur_min_rtt", "epoch", "k", "last_min_rtt",
                 "rtt_count", "srtt_min", "w_est", "w_max", "window_end")

    def __init__(self, mss: int, cwnd: int) -> None:
        super().__init__(mss, cwnd)
        self.acc = 0.0  # fractional bytes of growth carried between ACKs
        self.w_max = 0.0  # segments
        self.k = 0.0
        self.epoch: float | None = None  # start of the current congestion-avoidance epoch
        self.w_est = 0.0  # Reno-friendly estimate (segments)
        self.srtt_min = _INF  # smallest RTT seen (for the RFC's target at t + RTT)
        # HyStart++ round state
        self.window_end: int | None = None
        self.last_min_rtt = self.cur_min_rtt = _INF
        self.rtt_count = 0
        self.css_baseline = _INF
        self.css_rounds = -1  # -1: not in conservative slow start

    # -- slow start (HyStart++, RFC 9406 4.2), then congestion avoidance (RFC 9438 4.2-4.4) ----------------
    def on_ack(self, acked: int, ack: int, snd_max: int, rtt: float, now: float) -> None:  # noqa: PLR0912, PLR0915 - per ACK
        if 0.0 < rtt < self.srtt_min:
            self.srtt_min = rtt
        if self.cwnd < self.ssthresh:  # slow start: HyStart++ (RFC 9406 4.2), inlined (per ACK)
            mss = self.mss
            we = self.window_end
            d = (we - ack) & MASK if we is not None else 0
            if we is None or d == 0 or d >= HALF:  # a new round (seq_ge(ack, window_end), inlined)
                self.window_end = snd_max
                self.last_min_rtt, self.cur_min_rtt = self.cur_min_rtt, _INF
                self.rtt_count = 0
                if self.css_rounds >= 0:
                    self.css_rounds += 1
                    if self.css_rounds >= CSS_ROUNDS:  # CSS lasted long enough: go to avoidance
                        self.ssthresh = self.cwnd
                        self.css_rounds = -1
                        return
            if rtt > 0.0:
                self.rtt_count += 1
                self.cur_min_rtt = min(self.cur_min_rtt, rtt)
            inc = acked if acked < 2 * mss else 2 * mss
            if self.css_rounds < 0:
                self.cwnd += inc
                if self.rtt_count >= N_RTT_SAMPLE and self.last_min_rtt < _INF and self.cur_min_rtt < _INF:
                    thresh = min(max(self.last_min_rtt / MIN_RTT_DIVISOR, MIN_RTT_THRESH), MAX_RTT_THRESH)
                    if self.cur_min_rtt >= self.last_min_rtt + thresh:  # delay is rising: be conservative
                        self.css_baseline = self.cur_min_rtt
                        self.css_rounds = 0
            else:
                self.cwnd += inc // CSS_GROWTH_DIVISOR
                if self.rtt_count >= N_RTT_SAMPLE and self.cur_min_rtt < self.css_baseline:
                    self.css_baseline = _INF  # the RTT rise was spurious: back to slow start
                    self.css_rounds = -1
            return
        mss = self.mss
        w = self.cwnd / mss
        if self.epoch is None:  # first ACK of this avoidance stage (RFC 9438 4.2, 4.8)
            self.epoch = now
            if self.w_max < w:
                self.w_max = w
                self.k = 0.0
            else:
                self.k = ((self.w_max - w) / C) ** (1.0 / 3.0)
            self.w_est = w
        t = now - self.epoch
        seg_acked = acked / mss
        w_est = self.w_est = self.w_est + ALPHA * seg_acked / w
        k, w_max = self.k, self.w_max
        if C * (t - k) ** 3 + w_max < w_est:  # w_cubic(t) (inlined: per ACK) in the Reno-friendly region (4.3)
            grow = w_est - w
        else:
            srtt_min = self.srtt_min
            target = C * (t + (srtt_min if srtt_min < _INF else 0.0) - k) ** 3 + w_max  # w_cubic(t + RTT)
            target = w if target < w else 1.5 * w if target > 1.5 * w else target
            grow = (target - w) / w * seg_acked
        if grow > 0.0:
            self.acc += grow * mss
            n = int(self.acc)
            self.cwnd += n
            self.acc -= n

    def on_loss(self, flight: int, now: float) -> None:
        mss = self.mss
        w = self.cwnd / mss
        # fast convergence (4.7): release bandwidth when the last maximum was not reached
        self.w_max = w * (1.0 + BETA) / 2.0 if w < self.w_max else w
        self.ssthresh = max(flight * 7 // 10, 2 * mss)  # RFC 9438 4.6: flight_size * beta_cubic
        self.epoch = None
        self.acc = 0.0
        self.css_rounds = -1
        self.window_end = None

    def on_rto(self, flight: int, now: float) -> None:
        self.on_loss(flight, now)
        self.cwnd = self.mss

    def _state(self) -> tuple[object, ...]:
        return (self.cwnd, self.ssthresh, self.w_max, self.k, self.epoch)

    def _restore(self, state: tuple[object, ...]) -> None:
        super()._restore(state)
        w_max, k, epoch = state[2], state[3], state[4]
        assert isinstance(w_max, float)
        assert isinstance(k, float)
        self.w_max, self.k = w_max, k
        self.epoch = epoch if isinstance(epoch, float) else None


CONTROLLERS: dict[str, Callable[[int, int], CongestionControl]] = {"newreno": NewReno, "cubic": Cubic}


def make(name: str, mss: int, cwnd: int) -> CongestionControl:
    """A controller by name (TcpConfig.congestion or Connection.set_congestion); ValueError if unknown."""
    try:
        return CONTROLLERS[name](mss, cwnd)
    except KeyError:
        raise ValueError(f"unknown congestion control {name!r} (known: {sorted(CONTROLLERS)})") from None
