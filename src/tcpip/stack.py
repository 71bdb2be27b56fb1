"""Stack: an assembled host (device -> Ethif -> Ipv4 -> ICMP, UDP, TCP) with ping, endpoints and counters."""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from types import TracebackType
from typing import Any

from tcpip.aio import server as aio_server
from tcpip.aio import tcp as aio_tcp
from tcpip.aio.dhcp import DhcpAgent
from tcpip.aio.dns import DnsAgent, is_literal
from tcpip.aio.driver import TcpDriver
from tcpip.aio.udp import UdpEndpoints, UdpTransport, create_datagram_endpoint
from tcpip.core.config import InterfaceConfig
from tcpip.core.resolver import ResolverConfig
from tcpip.core.stats import as_dict
from tcpip.core.tcp.config import TcpConfig
from tcpip.core.tcp.state import ConnInfo
from tcpip.core.udp import Binding, UdpLayer
from tcpip.errors import DhcpTimeoutError, NoAddressError, TcpipError
from tcpip.ethif import Ethif
from tcpip.hostconfig import check_gateways, host_interface
from tcpip.ipv4 import Ipv4
from tcpip.linkstate import StackLink
from tcpip.netif.clock import Clock, LoopClock
from tcpip.netif.device import NetworkDevice
from tcpip.ping import Pinger, PingResult, PingResults, broadcast_refused, check_options, echo_data, is_broadcast
from tcpip.wire.mac import MacAddress

log = logging.getLogger("tcpip")


class Stack:
    """One emulated host. `async with await Stack.connect(dev, ipv4="198.18.0.2/24") as s: ...`"""

    def __init__(self, ethif: Ethif, ipv4: Ipv4, rng: random.Random, tcp: TcpConfig | None = None) -> None:
        self.ethif = ethif
        self.ipv4 = ipv4
        self.device = ethif.device
        self.core = ethif.core
        self.runner = ethif.runner
        self.rng = rng
        self.udp = UdpLayer(self.core, rng)
        self.tcp = TcpDriver(self.core, self.runner, rng, tcp)
        self._ping_ident = rng.getrandbits(16)
        # Round-trip times need better than uvloop's millisecond loop clock; virtual clocks stay virtual.
        clock = self.runner.clock
        self._pinger = Pinger(self.core, self.runner.kick,
                              time.perf_counter if isinstance(clock, LoopClock) else clock.now)
        self._endpoints = UdpEndpoints(self.udp, self.runner)
        self._services: list[Binding] = []
        self._transports: weakref.WeakSet[UdpTransport] = weakref.WeakSet()  # closed on disconnect
        self._closed = False
        self.resolver = DnsAgent(self)
        self.dhcp: DhcpAgent | None = None  # set by connect(..., dhcp=True)
        self.link = StackLink(self.device, self.core, self.runner)  # link lost/back, MTU (tcpip.linkstate)
        # Frames as bytes where the device can (cheaper than a view for a small one), the fast echo's reply
        # written by the device itself where it can (Runner.attach).
        self.runner.attach()
        if getattr(self.device, "offload", False):  # TAP/Hub offload mode: super-frames both ways
            self.runner.attach_offload()
            self.core.set_offload(0xFFFF)
            self.tcp.enable_offload(self.core.tso_max)

    @classmethod
    async def connect(cls, device: NetworkDevice, *, ipv4: str | IPv4Interface | None = None,
                      gateways: Sequence[str | IPv4Address] = (),
                      mac: MacAddress | str | None = None, config: InterfaceConfig | None = None,
                      clock: Clock | None = None, rng: random.Random | None = None,
                      tcp: TcpConfig | None = None, dhcp: bool = False, dhcp_timeout: float = 30.0,
                      hostname: str | None = None, requested: str | IPv4Address | None = None,
                      dns: Sequence[str | IPv4Address] = (), hosts: Mapping[str, Iterable[str]] | None = None,
                      resolver: ResolverConfig | None = None) -> Stack:
        """Wire a host on `device`. `ipv4` is "ADDR/PREFIX" (a bare "ADDR" is ADDR/32); it is announced with
        a gratuitous ARP. Raises ConfigurationError for what Linux refuses (tcpip.hostconfig).

        `dhcp=True`: run a DHCP client (option 12 `hostname`; `requested`: a remembered address for
        INIT-REBOOT) and return once it is bound, or raise DhcpTimeoutError after `dhcp_timeout` s (the
        stack is then disconnected). `dns`: DNS servers, in order (else the lease's); `hosts`: static
        names, /etc/hosts-like ({name: [addresses]}); `resolver`: timeouts, retries, cache size."""
        r = rng if rng is not None else random.Random()
        eth = await Ethif.connect(device, mac=mac, config=config, clock=clock, rng=r)
        ip = await Ipv4.connect(eth)
        stack = cls(eth, ip, r, tcp)
        res = stack.resolver
        if resolver is not None:
            res.resolver.config = resolver
        for name, addrs in (hosts or {}).items():
            res.resolver.add_host(name, [int(IPv4Address(a)) for a in addrs])
        if dns:
            res.set_servers([int(IPv4Address(a)) for a in dns])
        if ipv4 is not None:
            iface = host_interface(ipv4)  # ConfigurationError for what Linux refuses; "ADDR" is ADDR/32
            check_gateways(iface, [IPv4Address(g) for g in gateways])
            await ip.set_ipv4_netmask(iface.netmask)
            await ip.set_ipv4(iface.ip)
        if gateways:
            await ip.set_ipv4_gateways([IPv4Address(g) for g in gateways])
        if dhcp:
            await stack.start_dhcp(timeout=dhcp_timeout, hostname=hostname,
                                   requested=None if requested is None else IPv4Address(requested))
        return stack

    async def start_dhcp(self, *, timeout: float | None = 30.0, hostname: str | None = None,
                         requested: IPv4Address | None = None) -> DhcpAgent:
        """Start the DHCP client and wait until it is bound (`timeout` None: do not wait). On timeout the
        stack is disconnected and DhcpTimeoutError raised."""
        if self.dhcp is None:
            self.dhcp = DhcpAgent(self, hostname=hostname, requested=None if requested is None else int(requested))
            self.dhcp.start()
        if timeout is not None:
            try:
                await asyncio.wait_for(self.dhcp.bound.wait(), timeout)
            except TimeoutError:
                st = self.dhcp.client.stats
                await self.disconnect()
                raise DhcpTimeoutError(
                    f"DHCP: no lease within {timeout:g} s ({st.tx_discover} DISCOVERs, {st.offers} offers, "
                    f"{st.tx_request} REQUESTs, {st.naks} NAKs)") from None
        return self.dhcp

    # -- addresses and routes --------------------------------------------------------------------
    def add_address(self, cidr: str | IPv4Interface) -> None:
        """Another address, e.g. "198.18.0.3/24", with its connected route and broadcast (the first
        address of a stack is its primary). Announced with a gratuitous ARP. ValueError if present."""
        iface = cidr if isinstance(cidr, IPv4Interface) else IPv4Interface(cidr)
        self.core.add_address(int(iface.ip), iface.network.prefixlen, self.runner.now())
        self.runner.kick()

    def remove_address(self, address: str | IPv4Address | IPv4Interface) -> None:
        """Remove an address (ValueError if absent); a primary's place goes to the next address."""
        a = address.ip if isinstance(address, IPv4Interface) else IPv4Address(str(address).split("/")[0])
        self.core.remove_address(int(a), self.runner.now())
        self.runner.kick()

    def addresses(self) -> list[IPv4Interface]:
        """Every configured address, the primary first."""
        out = [self.interface] if self.core.addr else []
        out += [IPv4Interface(str(a)) for a in self.core.routing.table.addresses if a.address != self.core.addr]
        return out

    def add_route(self, network: str | IPv4Network, *, via: str | IPv4Address | None = None, metric: int = 0,
                  src: str | IPv4Address | None = None) -> None:
        """A static route, e.g. add_route("198.19.0.0/16", via="198.18.0.1"); without `via`, on-link.
        Longest prefix wins, then the lowest metric. ValueError for host bits set or a duplicate."""
        net = network if isinstance(network, IPv4Network) else IPv4Network(network)
        self.core.add_route(int(net.network_address), net.prefixlen, int(IPv4Address(via)) if via else 0, metric,
                            int(IPv4Address(src)) if src else 0)

    def remove_route(self, network: str | IPv4Network, *, via: str | IPv4Address | None = None,
                     metric: int | None = None) -> None:
        net = network if isinstance(network, IPv4Network) else IPv4Network(network)
        self.core.remove_route(int(net.network_address), net.prefixlen,
                               int(IPv4Address(via)) if via else None, metric)

    def routes(self) -> list[str]:
        """The route table like `ip route`: connected, default (gateways, DHCP) and static routes."""
        return [str(r) for r in self.core.routing.table.routes]

    # -- names ---------------------------------------------------------------------------------
    async def resolve(self, name: str, family: int = socket.AF_INET) -> list[IPv4Address]:
        """The IPv4 addresses of `name` through this stack's resolver (DNS over this stack, static hosts,
        the cache; an IPv4 literal as is). Raises a ResolveError, which is a socket.gaierror."""
        if family not in (socket.AF_INET, socket.AF_UNSPEC):
            raise NoAddressError(name, "tcpip resolves IPv4 (AF_INET) only")
        return [IPv4Address(a) for a in await self.resolver.resolve(name)]

    async def _address_of(self, host: str | IPv4Address) -> int:
        if isinstance(host, IPv4Address):
            return int(host)
        if is_literal(host):
            return int(IPv4Address(host))
        return int((await self.resolve(host))[0])

    # -- properties ----------------------------------------------------------------------------
    @property
    def mac(self) -> MacAddress:
        return self.ethif.mac

    @property
    def address(self) -> IPv4Address:
        return self.ipv4.get_ipv4()

    @property
    def interface(self) -> IPv4Interface:
        return IPv4Interface(f"{self.ipv4.get_ipv4()}/{self.ipv4.get_ipv4_netmask()}")

    # -- ICMP echo -----------------------------------------------------------------------------
    async def ping(self, dst: IPv4Address | str, count: int = 1, size: int = 56,
                   timeout: float = 1.0, interval: float = 0.0, *, ident: int | None = None,
                   seq: int = 0, ttl: int | None = None, tos: int = 0, dont_frag: bool = False,
                   pattern: bytes | None = None, allow_broadcast: bool = False) -> PingResults:
        """Send `count` echo requests of `size` data bytes, one after the other: each waits for its reply
        (at most `timeout` seconds), and consecutive requests start at least `interval` seconds apart
        (ping(8) uses 1 s). Returns each round-trip time in seconds, None for a lost probe (a list), with
        each probe's PingResult (rtt, ttl, replier, or the error: ARP failure, no route, an ICMP error
        answering it) in `.probes`. The echo identifier is fresh per call unless given; sequence numbers
        count up from `seq`. As ping(8)'s -t, -Q, -M do and -p: `ttl`, `tos` (the whole TOS byte),
        `dont_frag` (DF set; too big for the path MTU is a "local error" result) and `pattern` (data
        filled with it). A broadcast `dst` raises PermissionError unless `allow_broadcast` (ping -b)."""
        check_options(size, ttl, tos, pattern)
        d = await self._address_of(dst)
        if not allow_broadcast and is_broadcast(self.core, d):
            raise broadcast_refused()
        if ident is None:
            self._ping_ident = ident = (self._ping_ident + 1) & 0xFFFF
        results: list[PingResult] = []
        loop = asyncio.get_running_loop()
        for i in range(count):
            start = loop.time()
            s = (seq + i) & 0xFFFF
            results.append(await self._pinger.probe(d, ident, s, echo_data(size, s, pattern), timeout,
                                                    ttl=ttl, tos=tos, dont_frag=dont_frag))
            rest = interval - (loop.time() - start)
            if rest > 0 and i + 1 < count:
                await asyncio.sleep(rest)
        return PingResults(results)

    # -- UDP -----------------------------------------------------------------------------------
    async def create_datagram_endpoint(self, protocol_factory: Callable[[], Any],
                                       local_addr: tuple[str, int] | None = None,
                                       remote_addr: tuple[str, int] | None = None, *,
                                       allow_broadcast: bool = False) -> tuple[UdpTransport, Any]:
        """asyncio's `loop.create_datagram_endpoint`, over this stack (a name in `remote_addr` is resolved
        through this stack's resolver)."""
        if remote_addr is not None and isinstance(remote_addr, tuple) and len(remote_addr) >= 2 \
                and not is_literal(remote_addr[0]):
            remote_addr = (str(IPv4Address(await self._address_of(remote_addr[0]))), remote_addr[1])
        t, p = await create_datagram_endpoint(self._endpoints, protocol_factory, local_addr, remote_addr,
                                              allow_broadcast=allow_broadcast)
        self._transports.add(t)
        return t, p

    async def udp_echo(self, port: int = 7) -> Binding:
        """A zero-copy UDP echo service on `port` (RFC 862), answered by the UDP layer itself."""
        b = self.udp.bind_echo(port)
        self._services.append(b)
        return b

    # -- TCP: asyncio's stream and protocol API (tcpip.aio), each taking this stack as `self` ---------
    open_connection = aio_tcp.open_connection
    create_connection = aio_tcp.create_connection
    start_server = aio_server.start_server
    create_server = aio_server.create_server

    def tcp_connections(self) -> list[ConnInfo]:
        """Every TCP connection and listener, like `ss -tin`: 4-tuple, state, queues, cwnd, RTT."""
        return self.tcp.connections()

    # -- counters and life cycle ---------------------------------------------------------------
    def stats(self) -> dict[str, dict[str, int]]:
        c = self.core
        out = {
            "ethernet": as_dict(c.eth_stats),
            "arp": as_dict(c.arp.stats),
            "ipv4": as_dict(c.ip_stats),
            "icmp": as_dict(c.icmp_stats),
            "udp": as_dict(self.udp.stats),
            "tcp": self.tcp.stats(),
        }
        out["arp"]["cache_entries"] = len(c.arp.entries)
        if self.dhcp is not None:
            out["dhcp"] = self.dhcp.stats_dict()
        out["dns"] = self.resolver.stats_dict()
        out["driver"] = {"rx_errors": self.runner.rx_errors, "tx_errors": self.runner.tx_errors}
        r = c.reassembler
        if r is not None:
            out["reassembly"] = as_dict(r.stats)
            out["reassembly"]["memory"] = r.memory
            out["reassembly"]["datagrams"] = len(r)
        ds = getattr(self.device, "stats", None)
        if ds is not None:
            out["device"] = as_dict(ds)
        kernel = self.link.kernel_stats()  # the kernel interface's drops toward us (a TAP), by netlink
        if kernel:
            out.setdefault("device", {}).update(kernel)
        return out

    async def disconnect(self) -> None:
        if self._closed:
            return
        if self.dhcp is not None and not self.device.closed:
            try:
                await self.dhcp.release()
            except TcpipError as e:
                log.debug("DHCPRELEASE failed: %s", e)
        self._closed = True
        if self.dhcp is not None:
            self.dhcp.stop()
        self.resolver.close()
        self._pinger.close()
        for t in list(self._transports):
            t.close()
        self.tcp.close()
        self.link.close()
        self.runner.detach()
        await self.ethif.disconnect()

    async def __aenter__(self) -> Stack:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.disconnect()
