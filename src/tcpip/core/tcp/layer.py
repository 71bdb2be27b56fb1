"""TcpLayer: demultiplexing, listeners, active opens, RSTs for closed ports, ICMP errors, timers and events."""

from __future__ import annotations

import errno
import random
import struct
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from tcpip.core.tcp import bounds, icmp, reset, rx_ack, rx_bulk, validate
from tcpip.core.tcp import input as tcp_input
from tcpip.core.tcp import output as out
from tcpip.core.tcp.config import TcpConfig
from tcpip.core.tcp.conn import Connection
from tcpip.core.tcp.isn import IsnGenerator, ephemeral_port
from tcpip.core.tcp.listener import Listener
from tcpip.core.tcp.seq import seq_add, seq_lt
from tcpip.core.tcp.state import EV_SENT, ConnInfo, TcpState, os_error
from tcpip.core.tcp.stats import TcpStats
from tcpip.core.tcp.syncookies import SynCookies
from tcpip.core.tcp.timeouts import on_timer
from tcpip.core.tcp.timers import TimerHeap
from tcpip.errors import AddressInUseError, HostUnreachableError
from tcpip.wire.tcp import ACK, FIN, PSH, RST, SYN, TcpRepr

Buffer = bytes | bytearray | memoryview
# (src, dst, (header, payload), header length, gso_size, now): a TSO super-segment to the device
GsoSend = Callable[[int, int, Sequence[Buffer], int, int, float], None]
S = TcpState
_SYN_FIN = SYN | FIN
_NOT_FAST = ~PSH & 0xFF  # flags of the one-unpack path: exactly ACK, or ACK + PSH
_HDR_TS_WORD = struct.Struct("!HHIIBBHHHIII")  # TCP header + NOP NOP TS (one 32-bit word) + TSval + TSecr
_NOP_NOP_TS = 0x0101080A
# rx_ack's pure ACK straight from input() (no TcpRepr, no segment_arrives); off: through segment_arrives (tests
# compare the two). It stands aside when input.FAST_ACK is off or input.pure_ack is replaced (a test's counter).
FAST_PURE_ACK = True
_PURE_ACK = rx_ack.pure_ack
_PORT_LOW, _PORT_HIGH = 32768, 60999


class Output(Protocol):
    """Implemented by the host: sends our segments and answers route questions."""

    def tcp_send(self, src: int, dst: int, parts: Sequence[Buffer], now: float) -> None: ...
    def tcp_mss(self, dst: int, now: float) -> int: ...
    def is_local(self, addr: int) -> bool: ...


class TcpLayer:
    """All TCP connections and listeners of a host (sans-I/O)."""

    def __init__(self, config: TcpConfig, output: Output, rng: random.Random, secret: bytes) -> None:
        self.config = config
        self.output = output
        self.rng = rng
        self.isn = IsnGenerator(secret)
        self.cookies = SynCookies(secret)
        self.stats = TcpStats()
        self.conns: dict[tuple[int, int, int, int], Connection] = {}
        self.listeners: dict[tuple[int, int], Listener] = {}
        self.timers: TimerHeap[Connection] = TimerHeap()
        self.events: list[tuple[int, Any, Any]] = []
        self.time_wait_count = 0
        self.mem = 0  # buffer bytes held, as of each connection's last segment (exact under pressure)
        self.mem_by_conn: dict[Connection, int] = {}
        self.orphan_conns: set[Connection] = set()
        self.half_open_total = 0
        self.tso_max = 0  # > 0: super-segments up to this IPv4 length go to send_gso (enable_tso)
        self.send_gso: GsoSend | None = None
        self._challenge_second = -1
        self._challenge_budget = 0
        s = 0
        most = max(config.rcvbuf, config.rcvbuf_max) if config.autotune else config.rcvbuf
        while s < 14 and most >> s > 0xFFFF:
            s += 1
        self._wscale = s  # the smallest shift that lets the whole (autotuned) receive buffer be advertised

    # -- driver API ---------------------------------------------------------------------------------------
    def enable_tso(self, tso_max: int, send_gso: GsoSend | None) -> None:
        """The device cuts TCP super-segments: output builds them up to `tso_max` bytes of IPv4 datagram
        and hands them to `send_gso` (None / 0: off)."""
        self.tso_max = tso_max if send_gso is not None else 0
        self.send_gso = send_gso

    def input_offloaded(self, src: int, dst: int, payload: memoryview, packet: memoryview, now: float,
                        csum_ok: bool, gso_size: int) -> None:
        """`input` for a segment from an offloading device: the checksum is not checked when `csum_ok`,
        and a super-segment (`gso_size` > 0) counts as the segments it stands for. Everything else (ACK
        clocking: an ACK at once for two segments' worth of in-order bytes) already works in bytes."""
        if csum_ok and rx_bulk.FAST and rx_bulk.bulk_in(self, src, dst, payload, now, gso_size):
            return  # (its counters, the ones below included, counted there)
        stats = self.stats
        if gso_size:
            stats.rx_gso_frames += 1
            n = len(payload)
            if n > 12 and (segs := -(-(n - ((payload[12] >> 4) << 2)) // gso_size)) > 1:
                stats.in_segs += segs - 1
        if csum_ok:
            stats.rx_csum_trusted += 1
        self.input(src, dst, payload, packet, now, False, csum_ok)

    def input(self, src: int, dst: int, payload: memoryview, packet: memoryview, now: float,
              broadcast: bool, trusted: bool = False) -> None:
        """One TCP segment addressed to us (IP checks done); checksum verified here unless `trusted`
        (the device vouched for it: see input_offloaded)."""
        stats = self.stats
        stats.in_segs += 1
        if broadcast:
            stats.rx_broadcast += 1
            return
        # wire.tcp.verify, inlined (per segment), with one big-integer operation (the mod) instead of three:
        # 256 * s (mod 0xFFFF) pads an odd length, and the pseudo-header's words need no folding (never 0)
        n = len(payload)
        if not trusted and ((int.from_bytes(payload, "big") % 0xFFFF << (8 if n & 1 else 0)) + (src >> 16) + (
                src & 0xFFFF) + (dst >> 16) + (dst & 0xFFFF) + 6 + n) % 0xFFFF:
            stats.in_csum_errors += 1
            stats.in_errs += 1
            if len(payload) >= 18 and payload[16] == 0 and payload[17] == 0:
                stats.rx_csum_zero += 1
            return
        # The segment of nearly every bulk transfer: a 32-byte header of NOP NOP TS, ACK (PSH), no SYN, FIN,
        # RST or URG: one unpack, and validate.check has nothing to say about it (flags and options fine).
        seg: TcpRepr | None = None
        if n >= 32 and payload[12] == 0x80:
            sp, dp, sq, ak, _, flags, win, _, urg, opts, tsv, tse = _HDR_TS_WORD.unpack_from(payload, 0)
            if flags & _NOT_FAST == ACK and opts == _NOP_NOP_TS:
                if n == 32 and FAST_PURE_ACK and tcp_input.FAST_ACK and \
                        tcp_input.pure_ack is _PURE_ACK:  # type: ignore[attr-defined]  # (input's import of it)
                    conn = self.conns.get((dst, dp, src, sp))
                    if conn is not None and rx_ack.header_ack(conn, sq, ak, win, tsv, tse, now):
                        return
                seg = TcpRepr(sp, dp, sq, ak, flags, win, urg, None, None, False, (), (tsv, tse))  # positional: cheaper
                data = payload[32:]
        if seg is None:
            parsed = validate.parse(stats, payload)
            if parsed is None:
                return
            seg, data = parsed
        conn = self.conns.get((dst, seg.dst_port, src, seg.src_port))
        iss = None
        if conn is not None:
            if seg.flags & _SYN_FIN == _SYN_FIN and conn.state == S.TIME_WAIT:
                stats.rx_syn_fin += 1  # never lets a new connection take the 4-tuple
                return
            if seg.sack:
                validate.filter_sack(conn, seg, stats)
            stripped = False
            if data and self.mem >= self.config.mem_limit and not bounds.relieve(self, conn):
                stats.mem_drops += 1  # keep the ACK, drop the text (ACKed below): the peer sends it again
                data = data[:0]
                seg.flags &= ~FIN
                stripped = True
            ts = seg.timestamp
            if conn.ts_ok and ts is not None:
                recent = conn.ts_recent
                if now - conn.ts_recent_at > validate.PAWS_24DAYS and seq_lt(ts[0], recent) and \
                        not seg.flags & RST:
                    stats.paws_aged += 1  # RFC 7323 5.5: TS.Recent is stale, not a reason to drop
                    conn.ts_recent = recent = ts[0]
                again = tcp_input.segment_arrives(conn, seg, data, now)
                if conn.ts_recent != recent:
                    conn.ts_recent_at = now
            else:
                again = tcp_input.segment_arrives(conn, seg, data, now)
            if conn.state != S.CLOSED:
                # account(conn), inlined: this runs per segment
                rb = conn.rcvbuf
                cur = rb.readable + rb.ooo_bytes + conn.sndbuf.queued
                by_conn = self.mem_by_conn
                self.mem += cur - by_conn.get(conn, 0)
                by_conn[conn] = cur
                if stripped:
                    out.send_ack(conn, now)
            if not again:
                return
            iss = seq_add(conn.snd_nxt, 65537)  # TIME_WAIT reuse: start above the old sequence space
        lst = self.find_listener(dst, seg.dst_port)
        if lst is not None:
            lst.segment(seg, data, src, dst, now, iss)
            return
        if seg.flags & RST:
            stats.rx_rst_no_socket += 1
            return
        stats.rx_no_socket += 1
        self.send_reset(dst, src, seg, len(data), now)

    def icmp_error(self, icmp_type: int, code: int, rest: int, quote: memoryview, now: float) -> None:
        """An ICMP error quoting one of our segments (quoted IPv4 header + at least 8 bytes of TCP)."""
        icmp.icmp_error(self, icmp_type, code, rest, quote, now)

    def listen(self, addr: int, port: int, backlog: int) -> Listener:
        if port == 0:
            for _ in range(64):
                p = self.rng.randint(_PORT_LOW, _PORT_HIGH)
                if not self._port_busy(addr, p):
                    port = p
                    break
            else:
                raise AddressInUseError("no free port to listen on")
        if (addr, port) in self.listeners:
            raise AddressInUseError()
        lst = self.listeners[(addr, port)] = Listener(self, addr, port, backlog)
        return lst

    def connect(self, src: int, sport: int, dst: int, dport: int, now: float) -> Connection:
        """Active open: sends the SYN. A send failure shows up as EV_CLOSED(OSError), not an exception."""
        if sport == 0:
            p = ephemeral_port(src, dst, dport, self.rng, lambda q: self._tuple_busy(src, q, dst, dport))
            if p is None:
                raise OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address")
            sport = p
        elif (src, sport, dst, dport) in self.conns:
            raise AddressInUseError()
        conn = Connection(self, src, sport, dst, dport)
        iss = self.isn.isn(src, sport, dst, dport, now)
        conn.iss = conn.snd_una = conn.snd_nxt = conn.snd_max = conn.recover = iss
        conn.buf_seq = seq_add(iss, 1)
        conn.adv_mss = self.adv_mss(dst, now)
        conn.mss = conn.adv_mss
        conn.rcv_wscale = self._wscale if self.config.window_scaling else 0
        conn.state = S.SYN_SENT
        conn.ts_recent_at = now
        conn.reported = True
        self.stats.active_opens += 1
        self.register(conn)
        out.send_syn(conn, now)
        if conn.send_error is not None:
            self.fail_connect(conn)
            return conn
        conn.rexmit_at = now + conn.rto
        conn.arm()
        return conn

    def poll_at(self) -> float | None:
        return self.timers.poll_at()

    def handle_timeout(self, now: float) -> None:
        for conn in self.timers.expired(now):
            on_timer(conn, now)

    def poll_events(self) -> list[tuple[int, Any, Any]]:
        ev = self.events
        if not ev:
            return ev
        self.events = []
        for kind, subject, _ in ev:
            if kind == EV_SENT:
                subject.sent_ev = False
        return ev

    def connections(self) -> list[ConnInfo]:
        rows = [ConnInfo(lst.addr, lst.port, 0, 0, "LISTEN", len(lst.accept_queue), lst.backlog)
                for lst in self.listeners.values()]
        rows.extend(ConnInfo(c.local_addr, c.local_port, c.remote_addr, c.remote_port, c.state.name,
                             c.rcvbuf.readable, c.sndbuf.queued, c.cwnd, c.ssthresh, c.srtt, c.rttvar,
                             c.rto, c.mss, c.retries) for c in self.conns.values())
        return rows

    # -- used by connections and listeners ----------------------------------------------------------------
    def register(self, conn: Connection) -> None:
        self.conns[conn.key] = conn

    def find_listener(self, addr: int, port: int) -> Listener | None:
        """The listener on addr:port, else on any address:port."""
        return self.listeners.get((addr, port)) or self.listeners.get((0, port))

    def unlisten(self, lst: Listener) -> None:
        if self.listeners.get((lst.addr, lst.port)) is lst:
            del self.listeners[(lst.addr, lst.port)]

    def adv_mss(self, dst: int, now: float) -> int:
        return max(min(self.output.tcp_mss(dst, now), 0xFFFF), self.config.min_mss)

    def our_wscale(self) -> int:
        return self._wscale if self.config.window_scaling else 0

    def terminate(self, conn: Connection, exc: BaseException | None) -> None:
        """Move to CLOSED, forget the connection, report EV_CLOSED if owed."""
        st = conn.state
        if st == S.CLOSED:
            return
        if st in (S.SYN_SENT, S.SYN_RECEIVED):
            self.stats.attempt_fails += 1
        conn.set_state(S.CLOSED)
        if self.conns.get(conn.key) is conn:
            del self.conns[conn.key]
        self.mem -= self.mem_by_conn.pop(conn, 0)
        self.orphan_conns.discard(conn)
        conn.rexmit_at = conn.delack_at = conn.linger_at = None
        if conn.timer_at is not None:
            self.timers.cancel(conn)
        conn.report_closed_event(exc)

    def fail_connect(self, conn: Connection) -> None:
        e = conn.send_error
        code = errno.EHOSTUNREACH if isinstance(e, HostUnreachableError) else errno.ENETUNREACH
        self.terminate(conn, os_error(code))

    def report_closed(self, conn: Connection, exc: BaseException | None) -> None:
        conn.report_closed_event(exc)

    def maybe_report_end(self, conn: Connection) -> None:
        """EV_CLOSED(None) once our FIN is acknowledged and either the application closed or the peer's
        FIN arrived (the connection may linger in FIN_WAIT_2 / TIME_WAIT without the application)."""
        if conn.closed_reported or not conn.reported:
            return
        st = conn.state
        fin_acked = st in (S.FIN_WAIT_2, S.TIME_WAIT)
        if fin_acked and (conn.app_closed or conn.rcvbuf.fin_received):
            conn.report_closed_event(None)

    def enter_time_wait(self, conn: Connection, now: float) -> None:
        if self.time_wait_count >= self.config.max_time_wait:
            self.stats.time_wait_overflow += 1
            conn.report_closed_event(None)
            self.terminate(conn, None)
            return
        conn.set_state(S.TIME_WAIT)
        self.orphan_conns.discard(conn)
        conn.rexmit_at = conn.delack_at = None
        conn.persist = False
        conn.linger_at = now + self.config.time_wait
        conn.report_closed_event(None)
        conn.arm()

    # -- resource bounds (bounds.py) ----------------------------------------------------------------------
    @property
    def orphans(self) -> int:
        return len(self.orphan_conns)

    def note_orphan(self, conn: Connection, now: float) -> None:
        bounds.note_orphan(self, conn, now)

    def account(self, conn: Connection) -> None:
        """Record the buffer bytes `conn` holds now (readable + out of order + send queue) in self.mem."""
        cur = conn.rcvbuf.readable + conn.rcvbuf.ooo_bytes + conn.sndbuf.queued
        self.mem += cur - self.mem_by_conn.get(conn, 0)
        self.mem_by_conn[conn] = cur

    def challenge_allowed(self, now: float) -> bool:
        return reset.challenge_allowed(self, now)

    def send_reset(self, src: int, dst: int, seg: TcpRepr, dlen: int, now: float) -> None:
        reset.send_reset(self, src, dst, seg, dlen, now)

    def _tuple_busy(self, src: int, sport: int, dst: int, dport: int) -> bool:
        return (src, sport, dst, dport) in self.conns or self._port_busy(src, sport)

    def _port_busy(self, addr: int, port: int) -> bool:
        return (addr, port) in self.listeners or (0, port) in self.listeners
