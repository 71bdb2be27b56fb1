"""DnsAgent (`stack.resolver`): runs the sans-I/O Resolver on a stack: `await stack.resolve(name)`.

Each lookup gets its own random UDP source port (bound on the stack's UDP layer for the lookup's life and
unbound when it finishes); its queries go through the stack's UDP send path to port 53 of the configured
servers. Servers are those given (`dns=[...]`, `--dns`), else those of the DHCP lease in its order; the
router is never assumed to be one. Names never go to the host machine's resolver.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from ipaddress import IPv4Address
from typing import TYPE_CHECKING

from tcpip.core.resolver import QueryHandle, Resolver, ResolverConfig
from tcpip.core.stats import as_dict
from tcpip.errors import (
    NameNotFoundError,
    NoAddressError,
    ResolveError,
    ResolveTruncatedError,
    ServerFailureError,
    TcpipError,
    WireError,
)
from tcpip.wire.dns import CLASS_IN, PORT, DnsMessage, Rcode, RType, name_key
from tcpip.wire.ipv4 import ip_str

if TYPE_CHECKING:
    from tcpip.core.udp import Binding
    from tcpip.stack import Stack

log = logging.getLogger("tcpip.dns")


def is_literal(host: object) -> bool:
    """An IPv4 address (or None/empty: the wildcard), which needs no lookup."""
    if host is None or host == "" or isinstance(host, IPv4Address | int):
        return True
    try:
        IPv4Address(str(host))
    except ValueError:
        return False
    return True


class DnsAgent:
    """The stub resolver of one stack."""

    def __init__(self, stack: Stack, servers: Iterable[int] = (), *,
                 hosts: Mapping[str, Iterable[int]] | None = None, config: ResolverConfig | None = None) -> None:
        self.stack = stack
        self.configured = list(servers)  # given servers win over DHCP's
        self.dhcp_servers: list[int] = []
        self.resolver = Resolver(self.configured, stack.rng, hosts=hosts, config=config,
                                 port_in_use=lambda p: p in stack.udp.ports)
        self._waiting: dict[int, tuple[QueryHandle, asyncio.Future[tuple[int, ...]]]] = {}  # by port
        self._bindings: dict[int, Binding] = {}
        self._timer = False  # the host's timer source is added on the first query that goes out
        self.tcp_fallbacks = 0  # truncated UDP replies asked again over TCP
        self.tcp_rejected = 0  # TCP replies that did not match the question

    @property
    def servers(self) -> list[int]:
        return list(self.resolver.servers)

    def set_dhcp_servers(self, servers: Iterable[int]) -> None:
        """The lease's DNS servers (used unless servers were configured); a change flushes the cache."""
        new = list(servers)
        if new != self.dhcp_servers:
            self.dhcp_servers = new
            self.resolver.flush_cache()
        if not self.configured:
            self.resolver.set_servers(new)

    def set_servers(self, servers: Iterable[int]) -> None:
        self.configured = list(servers)
        self.resolver.set_servers(self.configured or self.dhcp_servers)
        self.resolver.flush_cache()

    async def resolve(self, name: str) -> tuple[int, ...]:
        """The IPv4 addresses of `name` (first one preferred). Raises a ResolveError (a socket.gaierror)."""
        st = self.stack
        h = self.resolver.query(name, st.runner.now())
        if h.done:
            return self._result(h)
        addrs = await self._udp(h)
        if addrs is None:  # the reply was truncated: once over TCP (RFC 7766)
            return await self._over_tcp(h)
        return addrs

    async def _udp(self, h: QueryHandle) -> tuple[int, ...] | None:
        st = self.stack
        fut: asyncio.Future[tuple[int, ...]] = asyncio.get_running_loop().create_future()
        self._waiting[h.port] = (h, fut)
        if not self._timer:  # stacks that never resolve pay nothing in the host's poll_at()
            self._timer = True
            st.core.add_timer_source(self.resolver.poll_at, self._timeout)
        self._flush()
        try:
            return await fut
        except ResolveTruncatedError:
            if h.truncated and h.truncated_server:
                return None
            raise
        finally:
            if not h.done:  # cancelled: forget the lookup, free its port
                self._waiting.pop(h.port, None)
                self._unbind(h.port)

    async def _over_tcp(self, h: QueryHandle) -> tuple[int, ...]:
        """Ask `h.target` again over TCP (2-byte length prefix, RFC 1035 4.2.2) of the server that truncated."""
        st = self.stack
        self.tcp_fallbacks += 1
        err = h.error or ResolveTruncatedError(h.name, "truncated reply")
        qid = st.rng.getrandbits(16)
        query = DnsMessage.query(qid, h.target).emit()

        async def exchange() -> bytes:
            r, w = await st.open_connection(ip_str(h.truncated_server), PORT)
            try:
                w.write(len(query).to_bytes(2, "big") + query)
                n = int.from_bytes(await r.readexactly(2), "big")
                return await r.readexactly(n)
            finally:
                w.close()

        try:
            m = DnsMessage.parse(await asyncio.wait_for(exchange(), 2 * self.resolver.config.timeout))
        except (OSError, TimeoutError, asyncio.IncompleteReadError, WireError) as e:
            log.debug("DNS over TCP to %s: %s", ip_str(h.truncated_server), e)
            raise err from None
        q = m.questions
        if (not m.is_response or m.id != qid or len(q) != 1 or name_key(q[0].name) != name_key(h.target)
                or q[0].qtype != RType.A):
            self.tcp_rejected += 1
            raise err
        if m.rcode == Rcode.NXDOMAIN:
            raise NameNotFoundError(h.name, "name not found (NXDOMAIN)")
        if m.rcode != Rcode.NOERROR:
            raise ServerFailureError(h.name, f"DNS server error (rcode {m.rcode})", m.rcode)
        target = name_key(h.target)
        for _ in range(self.resolver.config.max_cname + 1):  # the CNAME chain inside this answer only
            a = [int(r.data) for r in m.answers if r.rtype == RType.A and r.rclass == CLASS_IN
                 and name_key(r.name) == target]
            if a:
                return tuple(a)
            c = next((r for r in m.answers if r.rtype == RType.CNAME and name_key(r.name) == target), None)
            if c is None:
                break
            target = name_key(str(c.data))
        raise NoAddressError(h.name, "no IPv4 address")

    def close(self) -> None:
        for _h, fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(ResolveError("", "stack disconnected"))
        self._waiting.clear()
        for port in list(self._bindings):
            self._unbind(port)

    def stats_dict(self) -> dict[str, int]:
        out = as_dict(self.resolver.stats)
        out["tcp_fallbacks"], out["tcp_rejected"] = self.tcp_fallbacks, self.tcp_rejected
        return out

    # -- plumbing ---------------------------------------------------------------------------------
    @staticmethod
    def _result(h: QueryHandle) -> tuple[int, ...]:
        if h.error is not None:
            raise h.error
        return h.addresses

    def _done(self, handles: list[QueryHandle]) -> None:
        for h in handles:
            w = self._waiting.pop(h.port, None)
            self._unbind(h.port)
            if w is None or w[1].done():
                continue
            if h.error is not None:
                w[1].set_exception(h.error)
            else:
                w[1].set_result(h.addresses)

    def _unbind(self, port: int) -> None:
        b = self._bindings.pop(port, None)
        if b is not None:
            self.stack.udp.unbind(b)

    def _received(self, payload: memoryview | bytes, src: int, sport: int, dst: int, now: float, port: int) -> None:
        self._done(self.resolver.receive(payload, src, sport, port, now))
        self._flush()

    def _timeout(self, now: float) -> None:
        at = self.resolver.poll_at()
        if at is None or now < at:
            return
        self._done(self.resolver.handle_timeout(now))
        self._flush()

    def _flush(self) -> None:
        st = self.stack
        udp = st.udp
        now = st.runner.now()
        for q in self.resolver.poll_transmit():
            port = q.src_port
            if port not in self._bindings:
                def rx(payload: memoryview | bytes, src: int, sport: int, dst: int, now: float,
                       port: int = port) -> None:
                    self._received(payload, src, sport, dst, now, port)
                try:
                    self._bindings[port] = udp.bind(port, 0, rx)
                except TcpipError as e:  # taken since the resolver drew it: the lookup will time out
                    log.debug("DNS source port %d: %s", port, e)
                    continue
            try:
                udp.send(port, q.dst_ip, q.dst_port, q.payload, now)
            except TcpipError as e:  # no route: the resolver retries, then times out
                log.debug("DNS query to %s: %s", ip_str(q.dst_ip), e)
        st.core.timers_changed()
        st.runner.kick()
