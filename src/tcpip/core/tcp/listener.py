"""Listener: a passive open with a bounded half-open table and a bounded accept queue (backlog)."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from tcpip.core.tcp import output as out
from tcpip.core.tcp.conn import Connection
from tcpip.core.tcp.opening import negotiate
from tcpip.core.tcp.seq import seq_add
from tcpip.core.tcp.state import TcpState
from tcpip.wire.tcp import ACK, RST, SYN, TcpRepr

if TYPE_CHECKING:
    from tcpip.core.tcp.layer import TcpLayer

S = TcpState


class Listener:
    """Accepts connections on (addr, port); addr 0 means any local address."""

    __slots__ = ("accept_queue", "addr", "backlog", "closed", "half_open", "layer", "port", "user")

    def __init__(self, layer: TcpLayer, addr: int, port: int, backlog: int) -> None:
        self.layer = layer
        self.addr = addr
        self.port = port
        self.backlog = max(backlog, 1)
        self.accept_queue: deque[Connection] = deque()
        self.half_open: dict[tuple[int, int, int, int], Connection] = {}  # SYN_RECEIVED, oldest first
        self.closed = False
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
        """RFC 9293 3.10.7.2 (LISTEN): RST ignored, ACK answered by RST, SYN opens a half-open connection."""
        layer = self.layer
        stats = layer.stats
        flags = seg.flags
        if flags & RST:
            stats.rx_listen_bad += 1
            return
        if flags & ACK:
            stats.rx_listen_bad += 1
            layer.send_reset(dst, src, seg, len(data), now)
            return
        if not flags & SYN:
            stats.rx_listen_bad += 1
            return
        if self.queue_full() or len(self.half_open) >= self.backlog:
            stats.listen_drops += 1
            if self.queue_full():
                stats.listen_overflows += 1
            return
        if layer.half_open_total >= layer.config.max_syn_backlog:
            stats.listen_drops += 1
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
        conn.state = S.SYN_RECEIVED
        layer.register(conn)
        self.half_open[conn.key] = conn
        layer.half_open_total += 1
        out.send_syn(conn, now)
        conn.rexmit_at = now + conn.rto
        conn.arm()
