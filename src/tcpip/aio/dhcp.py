"""DhcpAgent (`stack.dhcp`): runs the sans-I/O DhcpClient on a stack and applies its lease to the host.

The client's datagrams go through the stack's one UDP send path: from port 68 to port 67, broadcast from
0.0.0.0 before an address exists (the host writes source 0.0.0.0 and the broadcast MAC for 255.255.255.255),
unicast from the leased address to the server identifier (option 54) when renewing or releasing. Port 68
is bound on any address for the client's life; replies arrive as broadcasts while we have no address.

A lease drives the ordinary configuration calls (netmask, address with its gratuitous ARP, default
gateways, MTU when smaller) and the resolver's servers, in the order DHCP gave them. Observers: `lease`,
`bound` (an asyncio.Event set while a lease is held), `history` and `add_listener(cb)`; listeners run on a
later loop turn, never inside the core's receive.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tcpip.core.dhcp import Bound, DhcpClient, DhcpEvent, DhcpState, Lease, Lost, Renewed
from tcpip.core.stats import as_dict
from tcpip.errors import TcpipError
from tcpip.wire.dhcp import CLIENT_PORT, SERVER_PORT
from tcpip.wire.ipv4 import ip_str

if TYPE_CHECKING:
    from tcpip.core.udp import Binding
    from tcpip.stack import Stack

log = logging.getLogger("tcpip.dhcp")
Listener = Callable[[DhcpEvent], None]


@dataclass(slots=True)
class AgentStats:
    rx_wrong_port: int = 0  # a datagram to port 68 not from port 67
    tx_errors: int = 0  # the UDP send raised (no route to the server...)
    leases: int = 0  # Bound events applied
    renewals: int = 0
    losses: int = 0


class DhcpAgent:
    """The DHCP client of one stack: `await stack.dhcp.bound.wait()`, `stack.dhcp.lease`."""

    def __init__(self, stack: Stack, *, hostname: str | None = None, requested: int | None = None) -> None:
        self.stack = stack
        self.client = DhcpClient(stack.core.mac, stack.rng, hostname=hostname, requested=requested)
        self.bound = asyncio.Event()
        self.lease: Lease | None = None
        self.history: list[DhcpEvent] = []
        self.stats = AgentStats()
        self._listeners: list[Listener] = []
        self._binding: Binding | None = None
        self._base_mtu = stack.core.config.mtu
        self._loop = asyncio.get_running_loop()

    @property
    def state(self) -> DhcpState:
        return self.client.state

    def add_listener(self, cb: Listener) -> None:
        """`cb(event)` for each Bound, Renewed and Lost, on a later loop turn."""
        self._listeners.append(cb)

    def remove_listener(self, cb: Listener) -> None:
        if cb in self._listeners:
            self._listeners.remove(cb)

    # -- life cycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Bind port 68, join the host's timers and send the first DISCOVER (or INIT-REBOOT REQUEST)."""
        st = self.stack
        self._binding = st.udp.bind(CLIENT_PORT, 0, self._received)
        st.core.add_timer_source(self.client.poll_at, self._timeout)
        events = self.client.start(st.runner.now())
        self._flush()
        self._apply(events)

    async def release(self, arp_wait: float = 1.0) -> None:
        """Send DHCPRELEASE for a held lease (unicast to its server: its MAC is resolved first, waiting at
        most `arp_wait` s) and stop the client."""
        st = self.stack
        lease = self.lease
        if lease is not None and self.client.state in (DhcpState.BOUND, DhcpState.RENEWING, DhcpState.REBINDING):
            try:
                hop = st.core.next_hop(lease.server_id)
                if isinstance(hop, int):
                    await asyncio.wait_for(st.runner.resolve(hop), arp_wait)
            except (TimeoutError, TcpipError) as e:
                log.debug("DHCPRELEASE: server %s not resolved: %s", ip_str(lease.server_id), e)
        events = self.client.release(st.runner.now())
        self._flush()  # before the address goes: the RELEASE is sent from it
        self._apply(events)
        st.runner.transmit()  # the RELEASE leaves before the device closes
        self.stop()

    def stop(self) -> None:
        """Forget the client without a RELEASE (the stack goes down)."""
        st = self.stack
        if self._binding is not None:
            st.udp.unbind(self._binding)
            self._binding = None
        srcs = st.core.timer_sources
        for s in [s for s in srcs if s[1] == self._timeout]:
            srcs.remove(s)

    def stats_dict(self) -> dict[str, int]:
        out = as_dict(self.client.stats)
        out.update(as_dict(self.stats))
        return out

    # -- the core's callbacks -----------------------------------------------------------------------
    def _received(self, payload: memoryview | bytes, src: int, sport: int, dst: int, now: float) -> None:
        if sport != SERVER_PORT:
            self.stats.rx_wrong_port += 1
            return
        events = self.client.receive(payload, src, now)
        self._flush()
        self._apply(events)

    def _timeout(self, now: float) -> None:
        at = self.client.poll_at()
        if at is None or now < at:
            return
        events = self.client.handle_timeout(now)
        self._flush()
        self._apply(events)

    def _flush(self) -> None:
        st = self.stack
        now = st.runner.now()
        for o in self.client.poll_transmit():
            try:
                st.udp.send(CLIENT_PORT, o.dst_ip, SERVER_PORT, o.payload, now, src=o.src_ip)
            except TcpipError as e:
                self.stats.tx_errors += 1
                log.debug("DHCP send to %s failed: %s", ip_str(o.dst_ip), e)
        st.core.timers_changed()
        st.runner.kick()

    # -- applying the lease -----------------------------------------------------------------------
    def _apply(self, events: list[DhcpEvent]) -> None:
        for e in events:
            self.history.append(e)
            if isinstance(e, Bound):
                self.stats.leases += 1
                self._configure(e.lease, new=True)
            elif isinstance(e, Renewed):
                self.stats.renewals += 1
                self._configure(e.lease, new=False)
            else:
                self.stats.losses += 1
                self._unconfigure(e)
            for cb in self._listeners:
                self._loop.call_soon(cb, e)

    def _configure(self, lease: Lease, *, new: bool) -> None:
        st = self.stack
        core = st.core
        now = st.runner.now()
        old = self.lease
        self.lease = lease
        if new:
            core.set_netmask(lease.netmask)
            core.set_address(lease.address, now)  # announced with a gratuitous ARP
            log.info("DHCP bound %s/%s from %s", ip_str(lease.address), ip_str(lease.netmask),
                     ip_str(lease.server_id))
        if old is None or new or old.routers != lease.routers:
            core.set_gateways(list(lease.routers))
        mtu = lease.mtu if lease.mtu is not None and 68 <= lease.mtu < self._base_mtu else self._base_mtu
        if mtu != core.config.mtu:
            core.set_mtu(mtu)
        st.resolver.set_dhcp_servers(lease.dns_servers)
        self.bound.set()

    def _unconfigure(self, e: Lost) -> None:
        st = self.stack
        core = st.core
        self.lease = None
        self.bound.clear()
        log.info("DHCP lease of %s lost: %s", ip_str(e.address), e.reason)
        if core.addr == e.address:
            core.set_address(0, st.runner.now())
            core.set_netmask(0)
            core.set_gateways([])
        if core.config.mtu != self._base_mtu:
            core.set_mtu(self._base_mtu)
        st.resolver.set_dhcp_servers(())
