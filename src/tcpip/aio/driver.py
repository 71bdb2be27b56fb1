"""TcpDriver: the glue between a Stack's Interface and its sans-I/O TcpLayer (input, output, timers, events)."""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tcpip.core.burst import send_one
from tcpip.core.tcp.config import TcpConfig
from tcpip.core.tcp.layer import TcpLayer
from tcpip.core.tcp.state import EV_ACCEPT, EV_CLOSED, EV_EOF, ConnInfo
from tcpip.errors import HostUnreachableError, NoRouteError, TcpipError
from tcpip.netif.device import Buffer
from tcpip.wire.ipv4 import ip_str
from tcpip.wire.tcp import PROTO

if TYPE_CHECKING:
    import random

    from tcpip.aio.server import TcpServer
    from tcpip.aio.transport import TcpTransport
    from tcpip.core.interface import Interface
    from tcpip.core.tcp.conn import Connection
    from tcpip.runner import Runner

log = logging.getLogger("tcpip.tcp")


class Early:
    """What happened to a connection before a transport took it (accept queue): EOF and close are kept
    here (in `Connection.user`) so that the transport replays them in order."""

    __slots__ = ("closed", "exc", "fin")

    def __init__(self) -> None:
        self.fin = False
        self.closed = False
        self.exc: BaseException | None = None


DETACHED = object()  # Connection.user once its transport is gone: later events are dropped


def os_error(e: BaseException) -> BaseException:
    """tcpip's routing errors as the OSError connect(2) would give (errno 101 / 113)."""
    if isinstance(e, HostUnreachableError):
        return OSError(errno.EHOSTUNREACH, f"No route to host: {e}")
    if isinstance(e, NoRouteError):
        return OSError(errno.ENETUNREACH, f"Network is unreachable: {e}")
    return e


class TcpDriver:
    """One per Stack: implements the core's `Output` on the Interface, feeds it segments and ICMP errors,
    keeps one loop timer at `layer.poll_at()`, and drains `layer.poll_events()` once per loop turn (never
    from inside `Interface.receive()`, so protocol code never runs inside the core)."""

    def __init__(self, iface: Interface, runner: Runner, rng: random.Random,
                 config: TcpConfig | None = None) -> None:
        self.iface = iface
        self.runner = runner
        self.clock = runner.clock
        self.now = runner.clock.now
        self.layer = TcpLayer(config if config is not None else TcpConfig(), self, rng,
                              secrets.token_bytes(32))
        self.servers: dict[int, TcpServer] = {}  # id(listener) -> server (Listener need not be hashable)
        self.transports: set[TcpTransport] = set()  # live transports, for disconnect()
        self.connecting: set[TcpTransport] = set()  # active opens waiting for EV_CONNECTED
        self.closed = False
        # One bound method for every segment queued behind ARP: the ARP cache calls each hook once.
        self._on_arp_fail = self._arp_failed
        # Segments go straight to the core; a deadline that moved earlier (the only reason to re-read
        # poll_at after a segment) says so through the heap's hook, not a call per segment.
        self.layer.timers.on_push = iface.timers_changed
        iface.register(PROTO, self.layer.input, self._icmp_error)
        iface.add_timer_source(self.layer.poll_at, self.layer.handle_timeout)
        # Drains with no TCP event (every drain of a UDP/ICMP-only load) skip the hook: a C-level test
        runner.add_after_batch(self._deliver, functools.partial(getattr, self.layer, "events"))
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    # -- the core's Output --------------------------------------------------------------------------
    def tcp_send(self, src: int, dst: int, parts: Sequence[Buffer], now: float) -> None:
        self.iface.send(dst, 6, parts, now, on_fail=self._on_arp_fail, src=src)

    def tcp_send_run(self, src: int, dst: int, segs: Sequence[tuple[Buffer, Buffer]], now: float) -> bool:
        """A burst of segments (header, payload) in one call; False: none sent (send them one by one)."""
        return self.iface.send_run(dst, 6, segs, now, src=src)

    def tcp_send_ack(self, src: int, dst: int, hdr: bytes, now: float) -> bool:
        """A segment of one buffer (a pure ACK) in one call; False: not sent (use tcp_send)."""
        return send_one(self.iface, dst, 6, hdr, now, src)

    def enable_offload(self, tso_max: int) -> None:
        """The device offloads: trusted/super-frame input, and TCP super-segments up to `tso_max`."""
        self.iface.offload_input = self.layer.input_offloaded
        self.layer.enable_tso(tso_max, self.iface.send_gso)

    def tcp_mss(self, dst: int, now: float) -> int:
        return self.iface.path_mtu(dst, now) - 40

    def is_local(self, addr: int) -> bool:
        return addr != 0 and addr in self.iface.routing.locals

    # -- input (inside Interface.receive: no protocol code here) -----------------------------------
    def _icmp_error(self, icmp_type: int, code: int, rest: int, quote: memoryview, now: float) -> None:
        self.layer.icmp_error(icmp_type, code, rest, quote, now)
        self.iface.timers_changed()

    def _arp_failed(self, ip: int) -> None:
        """ARP gave up on a next hop. Established connections treat it as loss (the core retransmits);
        a connect in SYN_SENT fails with EHOSTUNREACH, as Linux reports a neighbour failure."""
        for t in list(self.connecting):
            try:
                hop = self.iface.next_hop(t.remote_addr)
            except NoRouteError:
                continue
            if hop == ip:
                t.connect_failed(OSError(errno.EHOSTUNREACH,
                                         f"No route to host: no ARP reply from {ip_str(ip)}"))
        self.kick()

    # -- after API calls, timers, input ---------------------------------------------------------------
    def kick(self) -> None:
        """After an API call into the core: its segments go out and its events are delivered on this
        loop turn (one runner drain for every kick of the turn)."""
        self.iface.timers_changed()
        self.runner.kick()

    def _deliver(self) -> None:
        """The runner's after-batch hook: core events to transports and servers, outside receive()."""
        if not self.layer.events:
            return
        for kind, subject, detail in self.layer.poll_events():
            if kind == EV_ACCEPT:
                server = self.servers.get(id(subject))
                if server is not None:
                    server.accept_ready(subject)
                continue
            user = subject.user
            if user is None or type(user) is Early:
                if kind in (EV_EOF, EV_CLOSED):
                    early = user if user is not None else Early()
                    subject.user = early
                    if kind == EV_EOF:
                        early.fin = True
                    else:
                        early.closed, early.exc = True, detail
                continue
            if user is DETACHED:
                continue
            try:
                user.core_event(kind, detail)
            except Exception:  # a bug of ours: never stop delivering to the other connections
                log.exception("TCP event %d for %r", kind, user)
        # Protocol callbacks may have called into the core again: their segments and events go in the
        # next drain of this turn.
        if self.layer.events:
            self.runner.kick()
        self.iface.timers_changed()

    # -- registry ------------------------------------------------------------------------------------
    def connections(self) -> list[ConnInfo]:
        return self.layer.connections()

    def stats(self) -> dict[str, int]:
        return self.layer.stats.as_dict()

    def connect(self, src: int, sport: int, dst: int, dport: int) -> Connection:
        try:
            conn = self.layer.connect(src, sport, dst, dport, self.now())
        except TcpipError as e:
            mapped = os_error(e)
            if mapped is e:
                raise
            raise mapped from e
        finally:
            self.kick()
        return conn

    def close(self) -> None:
        """The stack goes down: servers close, connections are reset (the RSTs still go out)."""
        if self.closed:
            return
        for s in list(self.servers.values()):
            s.close()
        exc = ConnectionAbortedError(errno.ECONNABORTED, "Software caused connection abort: stack disconnected")
        for t in list(self.connecting):
            t.connect_failed(exc)
        for t in list(self.transports):
            t._force_close(exc)
        self.runner.transmit()  # the RSTs leave before the device closes
        self.closed = True
        self.runner.remove_after_batch(self._deliver)
        self.iface.unregister(PROTO)

    def __repr__(self) -> str:
        return f"<TcpDriver {ip_str(self.iface.addr)} {len(self.transports)} transports>"

