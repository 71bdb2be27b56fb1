"""Connection: one TCP control block (RFC 9293 3.3.1 variables) and its application-facing calls."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tcpip.core.tcp import autotune, tso
from tcpip.core.tcp import output as out
from tcpip.core.tcp.cc import CongestionControl
from tcpip.core.tcp.cc import make as make_cc
from tcpip.core.tcp.rcvbuf import RecvBuffer
from tcpip.core.tcp.rx_ack import bulk_ack
from tcpip.core.tcp.seq import seq_add, seq_sub
from tcpip.core.tcp.sndbuf import SendBuffer
from tcpip.core.tcp.state import EV_CLOSED, TcpState

if TYPE_CHECKING:
    from tcpip.core.offload import GsoTemplate
    from tcpip.core.tcp.autotune import RcvSpace
    from tcpip.core.tcp.layer import TcpLayer
    from tcpip.core.tcp.listener import Listener
    from tcpip.core.tcp.recovery import Recovery
    from tcpip.core.tcp.rx_ack import AckTemplate

Buffer = bytes | bytearray | memoryview

S = TcpState
QUICKACKS = 16  # Linux TCP_MAX_QUICKACKS
# States in which the application may queue data, and in which segments carry it.
_WRITABLE = frozenset({S.SYN_SENT, S.SYN_RECEIVED, S.ESTABLISHED, S.CLOSE_WAIT})
# States whose window updates matter: we still receive data.
_RECEIVING = frozenset({S.SYN_RECEIVED, S.ESTABLISHED, S.FIN_WAIT_1, S.FIN_WAIT_2})
SYNCHRONIZED = frozenset({S.SYN_RECEIVED, S.ESTABLISHED, S.FIN_WAIT_1, S.FIN_WAIT_2, S.CLOSE_WAIT,
                          S.CLOSING, S.LAST_ACK})


class Connection:
    """A TCP connection. The layer feeds it segments and timer expiries; the application calls send/recv/close."""

    __slots__ = (
        "ack_pending", "ack_tpl", "adv_mss", "app_closed", "buf_seq", "ca_acc", "cc", "closed_reported", "config",
        "data_ev", "delack_at", "dsack", "dupacks", "fin_queued", "gso_tpl", "in_recovery", "irs", "iss", "key",
        "last_ack_sent", "layer", "linger_at", "listener", "local_addr", "local_port", "loss_at",
        "max_snd_wnd", "mss", "nodelay", "oow_last", "persist", "persist_backoff", "probes", "quick", "rcv_adv",
        "rcv_mss", "rcv_tstamp", "rcv_wscale", "rcvbuf", "rec", "recover", "remote_addr", "remote_port",
        "reported", "retries", "rexmit_at", "rexmit_hint", "rto", "rtt_seq", "rtt_time", "rttvar",
        "sack_ok", "send_error", "sent_ev", "snd_max", "snd_nxt", "snd_una", "snd_wl1", "snd_wl2",
        "snd_wnd", "snd_wscale", "sndbuf", "soft_error", "srtt", "state", "timer_at", "ts_offset", "ts_ok",
        "ts_recent", "ts_recent_at", "tune", "user", "ws_ok",
    )

    def __init__(self, layer: TcpLayer, local_addr: int, local_port: int, remote_addr: int, remote_port: int,
                 listener: Listener | None = None) -> None:
        cfg = self.config = layer.config
        self.layer = layer
        self.state = S.CLOSED
        self.local_addr = local_addr
        self.local_port = local_port
        self.remote_addr = remote_addr
        self.remote_port = remote_port
        self.key = (local_addr, local_port, remote_addr, remote_port)
        self.listener = listener
        self.user: Any = None
        self.nodelay = cfg.nodelay
        self.rcvbuf = RecvBuffer(cfg.rcvbuf, cfg.max_ooo_holes)
        self.sndbuf = SendBuffer(cfg.sndbuf)
        # send sequence space; snd_max is the highest sequence ever sent (snd_nxt goes back on RTO)
        self.iss = self.snd_una = self.snd_nxt = self.snd_max = self.buf_seq = 0
        self.snd_wnd = self.snd_wl1 = self.snd_wl2 = self.max_snd_wnd = 0
        self.fin_queued = False  # FIN follows the queued data (shutdown/close called)
        # receive side (rcv_nxt lives in rcvbuf); rcv_adv = right edge of the window we advertised
        self.irs = self.rcv_adv = self.last_ack_sent = 0
        self.ack_tpl: AckTemplate | None = None  # rx_ack.bulk_ack's header template, built on first use
        self.gso_tpl: GsoTemplate | None = None  # tso.push's super-frame headers (offload.gso_template)
        self.ack_pending = 0  # in-order bytes received and not yet acknowledged (delayed ACK)
        self.rcv_mss = cfg.default_mss  # largest segment seen: "full-sized" for the every-2nd-segment rule
        self.quick = QUICKACKS  # super-segment ACKs still sent at once (Linux's quickack mode at the start)
        # options (RFC 7323, 2018); mss = payload bytes per segment before options
        self.mss = cfg.default_mss
        self.adv_mss = 0
        self.snd_wscale = self.rcv_wscale = 0
        self.sack_ok = self.ts_ok = self.ws_ok = False
        self.ts_recent = 0
        self.ts_recent_at = 0.0  # when ts_recent last changed (RFC 7323 5.5 aging; set by the layer)
        self.ts_offset = layer.rng.getrandbits(32)  # RFC 7323 5.4: random per-connection TS offset
        # RFC 6298 estimator and retransmission state
        self.srtt = self.rttvar = 0.0
        self.rto = cfg.rto_initial
        self.retries = 0  # consecutive retransmission timeouts (SYN, SYN-ACK, data)
        self.rtt_seq: int | None = None  # the timed segment's end (Karn: none while retransmitting)
        self.rtt_time = 0.0
        # congestion control (RFC 5681, NewReno RFC 6582), in bytes
        self.cc: CongestionControl = make_cc(cfg.congestion, cfg.default_mss, 1 << 30)  # cwnd, ssthresh
        self.rec: Recovery | None = None  # SACK scoreboard, RACK-TLP, PRR (once SACK is negotiated)
        self.tune: RcvSpace | None = None  # receive-buffer autotuning measurement (autotune.py)
        self.dsack: tuple[int, int] | None = None  # a duplicate to report in our next ACK (RFC 2883)
        self.loss_at: float | None = None  # RACK reordering timer or tail loss probe (rec.timer says which)
        self.ca_acc = self.dupacks = self.recover = 0
        self.in_recovery = False
        self.rexmit_hint = 0  # next sequence to consider for a hole retransmission in recovery
        # timers: each connection has one heap entry at the earliest of these
        self.timer_at: float | None = None
        self.rexmit_at: float | None = None  # retransmission or, when persist, zero-window probe
        self.persist = False
        self.persist_backoff = self.probes = 0
        self.delack_at: float | None = None
        self.linger_at: float | None = None  # TIME_WAIT or orphaned FIN_WAIT_2
        self.oow_last = -1e9  # last ACK sent for an unacceptable segment (rate limit)
        self.rcv_tstamp = 0.0  # when an acceptable ACK last arrived
        # application
        self.app_closed = False  # close() called: the connection is an orphan
        self.reported = False  # EV_CONNECTED/EV_ACCEPT sent, or an active open: EV_CLOSED owed
        self.closed_reported = False
        self.data_ev = self.sent_ev = False
        self.send_error: Exception | None = None
        self.soft_error: OSError | None = None  # last ICMP soft error (Linux sk_err_soft), informational

    def __repr__(self) -> str:
        return (f"<Connection {self.local_port}->{self.remote_port} {self.state.name} una={self.snd_una} "
                f"nxt={self.snd_nxt} rcv_nxt={self.rcvbuf.rcv_nxt}>")

    # -- application API ----------------------------------------------------------------------------------
    @property
    def cwnd(self) -> int:
        return self.cc.cwnd

    @cwnd.setter
    def cwnd(self, value: int) -> None:
        self.cc.cwnd = value

    @property
    def ssthresh(self) -> int:
        return self.cc.ssthresh

    @ssthresh.setter
    def ssthresh(self, value: int) -> None:
        self.cc.ssthresh = value

    @property
    def sacked(self) -> list[tuple[int, int]]:
        """The peer's SACKed ranges above snd_una (sorted)."""
        return self.rec.sb.ranges if self.rec is not None else []

    def set_congestion(self, name: str) -> None:
        """Switch this connection's congestion controller ("cubic", "newreno"), keeping cwnd and ssthresh."""
        new = make_cc(name, self.cc.mss, self.cc.cwnd)
        new.ssthresh = self.cc.ssthresh
        self.cc = new

    @property
    def send_free(self) -> int:
        return self.sndbuf.free

    @property
    def send_queued(self) -> int:
        return self.sndbuf.queued

    @property
    def readable(self) -> int:
        return self.rcvbuf.readable

    @property
    def eof(self) -> bool:
        return self.rcvbuf.fin_received and not self.rcvbuf.readable

    def send(self, data: Buffer, now: float, flush: bool = True) -> int:
        """Copy up to send_free bytes of `data` into the send buffer and transmit what the windows allow.
        `flush=False`: only queue them; the caller queues more pieces, then calls `flush` once (a refill of
        many pieces then costs one output, as one large write would)."""
        if self.state not in _WRITABLE or self.fin_queued:
            return 0
        n = self.sndbuf.write(data)
        if n and flush:
            self.flush(now)
        return n

    def flush(self, now: float) -> None:
        """Transmit what the windows allow of the queued data (what send() does after its write)."""
        if self.state >= S.ESTABLISHED:  # output() itself sends nothing in states past sending
            rx = self.rexmit_at
            r = tso.push(self, now)  # the bulk sender's super-segments in one call, else the general output
            if r < 0:
                out.output(self, now)
                self.arm()
            elif r or self.rexmit_at is not rx:  # push sent nothing and set no timer: the heap stands
                self.arm()

    def recv(self, now: float, n: int | None = None, update: bool = True) -> bytes:
        """Consume readable bytes; send a window update once the window has grown enough (RFC 1122 SWS).
        `update=False`: not yet, the caller reads more pieces first and then calls window_update once."""
        data = self.rcvbuf.read(n)
        self.data_ev = False
        if update:
            if data:
                self.window_update(now)
            elif self.tune is not None:
                autotune.on_read(self, now)
        return data

    def recv_piece(self, n: int) -> bytes:
        """`recv(now, n, False)` for the transport's delivery loop: up to n bytes, a super-segment's payload
        whole when it fits (RecvBuffer.read_piece); window_update follows the loop."""
        self.data_ev = False
        return self.rcvbuf.read_piece(n)

    def window_update(self, now: float) -> None:
        """The window update recv() sends after a read, when the read opened the window enough."""
        if self.tune is not None:  # once per read, not per piece of one (recv(update=False) leaves it here)
            autotune.on_read(self, now)  # may grow the buffer: the window update below announces it
        if self.state in _RECEIVING and self.state != S.SYN_RECEIVED:
            if self.ack_pending >= 2 * self.rcv_mss:
                # The every-second-segment ACK that input deferred to the read (a super-segment found the
                # reader behind: input.bulk_data): send it now, as Linux's tcp_cleanup_rbuf does.
                if self.state is S.ESTABLISHED:
                    bulk_ack(self, now)  # (it clears only the delayed ACK: no timer to re-arm)
                else:
                    out.send_ack(self, now)
                    self.arm()
                return
            rb = self.rcvbuf
            # What the window field can carry: without scaling a big buffer still advertises 65535, and
            # a read that cannot move the edge must not cost an ACK.
            wnd = min(rb.window(), 0xFFFF << self.rcv_wscale)
            grow = seq_sub(seq_add(rb.rcv_nxt, wnd), self.rcv_adv)
            # Linux's tcp_cleanup_rbuf: a read costs an ACK only when it at least doubles what the
            # peer may still send (or reopens a window below one MSS); otherwise the next data ACK
            # carries the new edge, and a bulk receiver ACKs every second segment, not every read.
            cur = seq_sub(self.rcv_adv, rb.rcv_nxt)
            if grow >= min(self.config.rcvbuf >> 1, self.adv_mss) and (
                cur < self.adv_mss or wnd >= 2 * cur
            ):
                out.send_ack(self, now)
                self.arm()

    def shutdown(self, now: float) -> None:
        """Send a FIN after the queued data (half-close); keep receiving."""
        st = self.state
        if self.fin_queued or st not in _WRITABLE:
            return
        self.fin_queued = True
        if st == S.ESTABLISHED:
            self.set_state(S.FIN_WAIT_1)
        elif st == S.CLOSE_WAIT:
            self.set_state(S.LAST_ACK)
        else:
            return  # SYN_SENT / SYN_RECEIVED: the FIN goes out once established
        out.output(self, now)
        self.arm()

    def close(self, now: float) -> None:
        """shutdown() and orphan: data arriving later gets a RST; unread data makes it a RST now (Linux)."""
        if self.app_closed:
            return
        self.app_closed = True
        st = self.state
        if st in (S.CLOSED, S.LISTEN):
            return
        if st == S.SYN_SENT:
            self.layer.terminate(self, None)
            return
        if st == S.TIME_WAIT:
            self.layer.report_closed(self, None)
            return
        if self.rcvbuf.readable:  # in-order bytes never read (Linux: out-of-order ones do not count)
            self.layer.stats.abort_on_close += 1
            self.abort(now)
            return
        self.shutdown(now)
        if self.state == S.FIN_WAIT_2:
            self.linger_at = now + self.config.fin_wait2
            self.arm()
        self.layer.maybe_report_end(self)
        if self.state not in (S.CLOSED, S.TIME_WAIT):
            self.layer.note_orphan(self, now)

    def abort(self, now: float) -> None:
        """RST if synchronized, then CLOSED."""
        if self.state in SYNCHRONIZED:
            out.send_rst(self, now)
        self.layer.terminate(self, None)

    # -- state and timers ---------------------------------------------------------------------------------
    def set_state(self, new: TcpState) -> None:
        old = self.state
        if old == new:
            return
        self.state = new
        stats = self.layer.stats
        if old in (S.ESTABLISHED, S.CLOSE_WAIT):
            stats.curr_estab -= 1
        if new in (S.ESTABLISHED, S.CLOSE_WAIT):
            stats.curr_estab += 1
        if old == S.SYN_RECEIVED and self.listener is not None:
            self.listener.half_open_done(self)
        if new == S.TIME_WAIT:
            self.layer.time_wait_count += 1
        elif old == S.TIME_WAIT:
            self.layer.time_wait_count -= 1

    def arm(self) -> None:
        """Make the heap entry no later than the earliest timer (a later one fires early and re-arms)."""
        d = self.rexmit_at
        x = self.delack_at
        if x is not None and (d is None or x < d):
            d = x
        x = self.linger_at
        if x is not None and (d is None or x < d):
            d = x
        x = self.loss_at
        if x is not None and (d is None or x < d):
            d = x
        if d is None:
            if self.timer_at is not None:
                self.layer.timers.cancel(self)
        elif (self.timer_at is None or d < self.timer_at) and self.state != S.CLOSED:
            self.layer.timers.schedule(self, d)

    def report_closed_event(self, exc: BaseException | None) -> None:
        if self.reported and not self.closed_reported:
            self.closed_reported = True
            self.layer.events.append((EV_CLOSED, self, exc))
