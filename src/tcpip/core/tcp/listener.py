"""Listener: a passive open with a bounded half-open table and a bounded accept queue (backlog)."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from tcpip.core.tcp import input as tcp_input
from tcpip.core.tcp import output as out
from tcpip.core.tcp.conn import Connection
from tcpip.core.tcp.cookie_io import COOKIE_LIFETIME, cookie_connection, send_cookie
from tcpip.core.tcp.opening import negotiate
from tcpip.core.tcp.seq import seq_add
from tcpip.core.tcp.state import TcpState
from tcpip.wire.tcp import ACK, FIN, PSH, RST, SYN, TcpRepr

if TYPE_CHECKING:
    from tcpip.core.tcp.layer import TcpLayer

S = TcpState


class Listener:
    """Accepts connections on (addr, port); addr 0 means any local address."""

    __slots__ = ("accept_queue", "addr", "backlog", "closed", "half_open", "last_overflow", "layer", "port",
                 "user")

    def __init__(self, layer: TcpLayer, addr: int, port: int, backlog: int) -> None:
        self.layer = layer
        self.addr = addr
        self.port = port
        self.backlog = max(backlog, 1)
        self.accept_queue: deque[Connection] = deque()
        self.half_open: dict[tuple[int, int, int, int], Connection] = {}  # SYN_RECEIVED, oldest first
        self.closed = False
        self.last_overflow = -1e18  # when a SYN last got a cookie: cookie ACKs are checked for a while after
        self.user: object = None

    def __repr__(self) -> str:
        return f"<Listener {self.addr}:{self.port} backlog={self.backlog} queued={len(self.accept_queue)}>"

    def accept(self) -> Connection | None:
        """Pop the oldest established connection, or None."""
        return self.accept_queue.popleft() if self.accept_queue else None

    def close(self, now: float) -> None:
        """Stop listening; reset every connection not yet accepted (half-open ones included)."""
        if self.closed:
            return
        self.closed = True
        self.layer.unlisten(self)
        for conn in [*self.half_open.values(), *self.accept_queue]:
            conn.abort(now)
        self.half_open.clear()
        self.accept_queue.clear()

    # -- used by the connection and the layer -------------------------------------------------------------
    def queue_full(self) -> bool:
        return len(self.accept_queue) >= self.backlog

    def queue(self, conn: Connection) -> None:
        self.accept_queue.append(conn)

    def half_open_done(self, conn: Connection) -> None:
        if self.half_open.pop(conn.key, None) is not None:
            self.layer.half_open_total -= 1

    def segment(self, seg: TcpRepr, data: memoryview, src: int, dst: int, now: float, iss: int | None) -> None:
        """RFC 9293 3.10.7.2 (LISTEN): RST ignored, ACK answered by RST (unless it carries a valid SYN
        cookie), SYN opens a half-open connection or, with the half-open table full, gets a cookie."""
        layer = self.layer
        stats = layer.stats
        flags = seg.flags
        if flags & RST:
            stats.rx_listen_bad += 1
            return
        if flags & ACK:
            if not flags & SYN and self._cookie_ack(seg, data, src, dst, now):
                return
            stats.rx_listen_bad += 1
            layer.send_reset(dst, src, seg, len(data), now)
            return
        if not flags & SYN:
            stats.rx_listen_bad += 1
            return
        if flags & FIN:
            stats.rx_syn_fin += 1  # Linux tcp_rcv_state_process: discarded in LISTEN
            return
        if self.queue_full():
            stats.listen_drops += 1  # Linux drops SYNs while the accept queue is full, cookies or not
            stats.listen_overflows += 1
            return
        cookies = layer.config.syncookies
        table_full = len(self.half_open) >= self.backlog or layer.half_open_total >= layer.config.max_syn_backlog
        if cookies >= 2 or (table_full and cookies):
            self.last_overflow = now
            send_cookie(self, seg, src, dst, now)
            return
        if table_full:
            stats.listen_drops += 1
            if layer.half_open_total >= layer.config.max_syn_backlog:
                stats.syn_backlog_full += 1
            return
        conn = Connection(layer, dst, self.port, src, seg.src_port, listener=self)
        if iss is None:
            iss = layer.isn.isn(dst, self.port, src, seg.src_port, now)
        conn.iss = conn.snd_una = conn.snd_nxt = conn.snd_max = conn.recover = iss
        conn.buf_seq = seq_add(iss, 1)
        conn.adv_mss = conn.mss = layer.adv_mss(src, now)
        conn.rcv_wscale = layer.our_wscale()
        negotiate(conn, seg, now)
        conn.ts_recent_at = now
        conn.state = S.SYN_RECEIVED
        layer.register(conn)
        self.half_open[conn.key] = conn
        layer.half_open_total += 1
        out.send_syn(conn, now)
        conn.rexmit_at = now + conn.rto
        conn.arm()

    def _cookie_ack(self, seg: TcpRepr, data: memoryview, src: int, dst: int, now: float) -> bool:
        """An ACK that may complete a cookie handshake (only ACK, ACK+PSH, ACK+FIN); False: answer RST."""
        layer = self.layer
        cfg = layer.config
        if not cfg.syncookies or (cfg.syncookies < 2 and now - self.last_overflow > COOKIE_LIFETIME):
            return False
        if seg.flags & ~(PSH | FIN) != ACK:
            return False
        conn = cookie_connection(self, seg, src, dst, now)
        if conn is None:
            layer.stats.syncookies_failed += 1
            layer.send_reset(dst, src, seg, len(data), now)
            return True
        if self.queue_full():
            layer.stats.listen_overflows += 1
            layer.stats.listen_drops += 1
            return True
        layer.stats.syncookies_recv += 1
        layer.register(conn)
        tcp_input.segment_arrives(conn, seg, data, now)
        if conn.state == S.SYN_RECEIVED:  # not taken (PAWS, window): no state may stay behind
            layer.terminate(conn, None)
        elif conn.state != S.CLOSED:
            layer.account(conn)
        return True
