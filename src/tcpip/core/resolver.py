"""The DNS stub resolver, sans-I/O: A lookups over UDP with random IDs and ports, retries, rotation, CNAME chains,
a bounded TTL cache and static hosts; replies must match (port, server, id, question) or are counted drops."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from tcpip.errors import (
    NameNotFoundError,
    NoAddressError,
    ResolveError,
    ResolveTimeoutError,
    ResolveTruncatedError,
    ServerFailureError,
    WireError,
)
from tcpip.wire.dns import CLASS_IN, PORT, DnsMessage, Edns, Rcode, RType, canonical, name_key

PORT_LOW = 1024  # source ports are drawn from 1024-65535 (RFC 6056 3.2): ~16 bits of entropy beside the ID


@dataclass(frozen=True, slots=True)
class ResolverConfig:
    timeout: float = 2.0  # per attempt
    attempts: int = 2  # per server; servers are tried in turn, so at most attempts * len(servers) sends
    max_cname: int = 8  # CNAME links followed for one lookup
    cache_size: int = 512
    max_ttl: float = 86400.0
    edns: bool = True


@dataclass(frozen=True, slots=True)
class DnsOutgoing:
    """A UDP datagram to send from our address, port `src_port` (bound for the handle), to `dst_ip`:`dst_port`."""

    dst_ip: int
    dst_port: int
    src_port: int
    payload: bytes


@dataclass(slots=True)
class ResolverStats:
    queries: int = 0
    hosts_hits: int = 0
    cache_hits: int = 0
    tx_queries: int = 0
    retransmissions: int = 0
    rx_datagrams: int = 0
    rx_unmatched_port: int = 0  # no lookup waits on that port
    rx_wrong_server: int = 0  # not from a server this lookup asked
    rx_wrong_port: int = 0  # from the server, but not from port 53
    rx_malformed: int = 0
    rx_not_response: int = 0  # QR clear or opcode not QUERY
    rx_wrong_id: int = 0
    rx_wrong_question: int = 0
    rx_accepted: int = 0
    truncated: int = 0
    nxdomain: int = 0
    nodata: int = 0
    server_failures: int = 0
    timeouts: int = 0
    cname_followed: int = 0
    edns_fallbacks: int = 0
    cache_evictions: int = 0


@dataclass(eq=False, slots=True)
class QueryHandle:
    """One lookup. `done` once `addresses` or `error` is set; `port` is bound by the host until then."""

    name: str
    port: int = 0
    addresses: tuple[int, ...] = ()
    canonical_name: str = ""
    ttl: float = 0.0
    error: ResolveError | None = None
    truncated: bool = False  # the server said TC: retry over TCP (server in `truncated_server`)
    truncated_server: int = 0
    from_cache: bool = False
    done: bool = False
    no_edns: bool = False  # the server answered FORMERR to EDNS: plain queries from now on
    # in flight
    asked: str = ""  # `name` in canonical form: the cache key
    target: str = ""  # the name asked now (moves along a CNAME chain)
    chain_ttl: float = float("inf")
    links: int = 0
    tries: int = 0
    server_index: int = 0
    deadline: float = 0.0
    outstanding: dict[int, int] = field(default_factory=dict)  # id -> server, every attempt for `target`


@dataclass(slots=True)
class _Cached:
    addresses: tuple[int, ...]
    canonical_name: str
    expires_at: float


def parse_hosts(text: str) -> dict[str, list[int]]:
    """/etc/hosts-style lines ("ADDRESS NAME [ALIAS...]", "#" comments) -> {name: [IPv4 addresses]}.

    Lines with IPv6 or malformed addresses are skipped, as the C library does."""
    out: dict[str, list[int]] = {}
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2:
            continue
        try:
            addr = int(IPv4Address(fields[0]))
        except ValueError:
            continue
        for name in fields[1:]:
            out.setdefault(name, []).append(addr)
    return out


class Resolver:
    """Stub resolver for one stack. Feed replies with receive(); completed handles are returned by
    query(), receive() and handle_timeout(); drain poll_transmit() and sleep until poll_at()."""

    def __init__(self, servers: Iterable[int], rng: random.Random, *, hosts: Mapping[str, Iterable[int]] | None = None,
                 config: ResolverConfig | None = None, port_in_use: Callable[[int], bool] | None = None) -> None:
        self.servers = list(servers)
        self.rng = rng
        self.config = config or ResolverConfig()
        self.port_in_use = port_in_use or (lambda _p: False)
        self.hosts: dict[str, tuple[int, ...]] = {}
        for name, addrs in (hosts or {}).items():
            self.add_host(name, addrs)
        self.stats = ResolverStats()
        self._cache: dict[str, _Cached] = {}
        self._by_port: dict[int, QueryHandle] = {}
        self._tx: list[DnsOutgoing] = []

    # -- configuration --------------------------------------------------------------------------------
    def set_servers(self, servers: Iterable[int]) -> None:
        """New servers (e.g. from a DHCP lease), in order of preference; lookups in flight keep their own."""
        self.servers = list(servers)

    def add_host(self, name: str, addresses: Iterable[int]) -> None:
        self.hosts[name_key(canonical(name))] = tuple(addresses)

    def flush_cache(self) -> None:
        self._cache.clear()

    # -- API --------------------------------------------------------------------------------------------
    def query(self, name: str, now: float) -> QueryHandle:  # noqa: PLR0911 - one return per way a lookup ends at once
        """Start resolving `name` to IPv4 addresses. The handle may come back already done."""
        self.stats.queries += 1
        h = QueryHandle(name)
        try:
            h.asked = h.target = canonical(name)
        except WireError as e:
            return self._fail(h, NameNotFoundError(name, f"not a valid DNS name ({e.reason})"))
        if not h.target:
            return self._fail(h, NameNotFoundError(name, "empty name"))
        try:
            return self._finish(h, (int(IPv4Address(h.target)),), h.target, 0.0)  # a literal address
        except ValueError:
            pass
        key = name_key(h.target)
        if key in self.hosts:
            self.stats.hosts_hits += 1
            return self._finish(h, self.hosts[key], h.target, 0.0)
        if (hit := self._cached(key, now)) is not None:
            self.stats.cache_hits += 1
            h.from_cache = True
            return self._finish(h, hit.addresses, hit.canonical_name, hit.expires_at - now)
        if not self.servers:
            return self._fail(h, ResolveTimeoutError(name, "no DNS servers configured"))
        port = self._free_port()
        if port is None:
            return self._fail(h, ResolveError(name, "no free UDP source port"))
        h.port = port
        self._by_port[port] = h
        h.server_index = 0
        self._send(h, now)
        return h

    def poll_transmit(self) -> list[DnsOutgoing]:
        out, self._tx = self._tx, []
        return out

    def poll_at(self) -> float | None:
        return min((h.deadline for h in self._by_port.values()), default=None)

    def handle_timeout(self, now: float) -> list[QueryHandle]:
        done = []
        for h in [h for h in self._by_port.values() if h.deadline <= now]:
            if h.tries >= self.config.attempts * len(self.servers):
                self.stats.timeouts += 1
                done.append(self._fail(h, ResolveTimeoutError(h.name, "no reply from the DNS servers")))
            else:
                self.stats.retransmissions += 1
                h.server_index += 1  # rotate
                self._send(h, now)
        return done

    def receive(self, payload: memoryview | bytes, src_ip: int, src_port: int, dst_port: int,  # noqa: PLR0911 - one return per counted drop
                now: float) -> list[QueryHandle]:
        """A UDP datagram that arrived on `dst_port`. Only an exact match moves a lookup on."""
        st = self.stats
        st.rx_datagrams += 1
        h = self._by_port.get(dst_port)
        if h is None:
            st.rx_unmatched_port += 1
            return []
        if src_ip not in h.outstanding.values():
            st.rx_wrong_server += 1
            return []
        if src_port != PORT:
            st.rx_wrong_port += 1
            return []
        try:
            m = DnsMessage.parse(payload)
        except WireError:
            st.rx_malformed += 1
            return []
        if not m.is_response or m.opcode != 0:
            st.rx_not_response += 1
            return []
        if h.outstanding.get(m.id) != src_ip:
            st.rx_wrong_id += 1
            return []
        q = m.questions
        if len(q) != 1 or name_key(q[0].name) != name_key(h.target) or (q[0].qtype, q[0].qclass) != (RType.A,
                                                                                                        CLASS_IN):
            st.rx_wrong_question += 1
            return []
        st.rx_accepted += 1
        return self._answer(h, m, src_ip, now)

    # -- internals --------------------------------------------------------------------------------------
    def _answer(self, h: QueryHandle, m: DnsMessage, server: int, now: float) -> list[QueryHandle]:  # noqa: PLR0911 - one return per rcode outcome
        st = self.stats
        if m.truncated:
            st.truncated += 1
            h.truncated, h.truncated_server = True, server
            return [self._fail(h, ResolveTruncatedError(h.name, "truncated reply (TCP needed)"))]
        rc = m.rcode
        if rc == Rcode.FORMERR and m.edns is None and not h.no_edns and self.config.edns:
            st.edns_fallbacks += 1  # RFC 6891 7: a server that does not know OPT; ask it again without
            h.no_edns = True
            self._send(h, now)
            return []
        if rc == Rcode.NXDOMAIN:
            st.nxdomain += 1
            return [self._fail(h, NameNotFoundError(h.name, "name not found (NXDOMAIN)"))]
        if rc != Rcode.NOERROR:
            st.server_failures += 1
            h.outstanding = {i: s for i, s in h.outstanding.items() if s != server}
            if h.tries >= self.config.attempts * len(self.servers):
                return [self._fail(h, ServerFailureError(h.name, f"DNS server error (rcode {rc})", rc))]
            h.server_index += 1  # ask the next server at once
            self._send(h, now)
            return []
        # follow the chain from the name asked, using only records on that chain: nothing else is cached
        target, ttl = h.target, h.chain_ttl
        while True:
            key = name_key(target)
            a = [r for r in m.answers if r.rtype == RType.A and r.rclass == CLASS_IN and name_key(r.name) == key]
            if a:
                addrs = tuple(int(r.data) for r in a)
                ttl = min(ttl, self.config.max_ttl, *(r.ttl for r in a))
                self._store(name_key(h.asked), addrs, target, ttl, now)
                return [self._finish(h, addrs, target, ttl)]
            cname = next((r for r in m.answers if r.rtype == RType.CNAME and r.rclass == CLASS_IN
                          and name_key(r.name) == key), None)
            if cname is None:
                break
            h.links += 1
            st.cname_followed += 1
            if h.links > self.config.max_cname:
                return [self._fail(h, NoAddressError(h.name, "CNAME chain too long"))]
            ttl = min(ttl, cname.ttl)
            target = str(cname.data)
        if target == h.target:
            st.nodata += 1
            return [self._fail(h, NoAddressError(h.name, "no IPv4 address"))]
        # the chain leads off this answer: ask for its end (same port, new ID, first server again)
        h.target, h.chain_ttl, h.tries, h.server_index = target, ttl, 0, 0
        h.outstanding.clear()
        self._send(h, now)
        return []

    def _send(self, h: QueryHandle, now: float) -> None:
        server = self.servers[h.server_index % len(self.servers)]
        qid = self.rng.getrandbits(16)
        while qid in h.outstanding:
            qid = self.rng.getrandbits(16)
        h.outstanding[qid] = server
        h.tries += 1
        h.deadline = now + self.config.timeout
        msg = DnsMessage.query(qid, h.target, edns=Edns() if self.config.edns and not h.no_edns else None)
        self._tx.append(DnsOutgoing(server, PORT, h.port, msg.emit()))
        self.stats.tx_queries += 1

    def _free_port(self) -> int | None:
        """A random free port; when random draws keep hitting used ones, scan on from a random start."""
        span = 0x10000 - PORT_LOW
        start = self.rng.randrange(span)
        for i in range(span + 16):
            port = PORT_LOW + (self.rng.randrange(span) if i < 16 else (start + i - 16) % span)
            if port not in self._by_port and not self.port_in_use(port):
                return port
        return None

    def _cached(self, key: str, now: float) -> _Cached | None:
        c = self._cache.get(key)
        if c is not None and c.expires_at <= now:
            del self._cache[key]
            return None
        return c

    def _store(self, key: str, addrs: tuple[int, ...], cname: str, ttl: float, now: float) -> None:
        if ttl <= 0 or self.config.cache_size <= 0:
            return
        self._cache.pop(key, None)
        while len(self._cache) >= self.config.cache_size:  # evict the oldest insertion
            del self._cache[next(iter(self._cache))]
            self.stats.cache_evictions += 1
        self._cache[key] = _Cached(addrs, cname, now + ttl)

    def _finish(self, h: QueryHandle, addrs: tuple[int, ...], cname: str, ttl: float) -> QueryHandle:
        h.addresses, h.canonical_name, h.ttl = addrs, cname, ttl
        return self._close(h)

    def _fail(self, h: QueryHandle, err: ResolveError) -> QueryHandle:
        h.error = err
        return self._close(h)

    def _close(self, h: QueryHandle) -> QueryHandle:
        h.done = True
        h.outstanding.clear()
        if self._by_port.get(h.port) is h:
            del self._by_port[h.port]
        return h
