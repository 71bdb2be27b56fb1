"""The configuration surface of a Host: its MAC, multicast groups, addresses, routes and MTU."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tcpip.wire.mac import MacAddress

if TYPE_CHECKING:
    from tcpip.core.arp import ArpCache
    from tcpip.core.config import InterfaceConfig
    from tcpip.core.ethernet import Ethernet
    from tcpip.core.host import Answerer
    from tcpip.core.routing import Routing


class HostSetup:
    """Mixed into `Host`: every change keeps the layers and the fast path's mirrors consistent."""

    if TYPE_CHECKING:
        config: InterfaceConfig
        arp: ArpCache
        eth: Ethernet
        routing: Routing
        groups: set[int]
        mac: bytes
        addr: int
        mask: int
        bcast: int
        _fast_dst: int
        _fast_martians: frozenset[int]
        answerers: dict[int, Answerer]
        fast_answers: dict[int, Answerer]

    def set_answerer(self, proto: int, answer: Answerer | None) -> None:
        """Try `answer` first for `proto`'s plain unicast datagrams (see Host); None removes it. A device's fast
        answer (core.echo) offers it the frames of `proto` too, except ICMP's (the echo's own)."""
        if answer is None:
            self.answerers.pop(proto, None)
            if proto != 1:
                self.fast_answers.pop(proto, None)
        else:
            self.answerers[proto] = answer
            if proto != 1:
                self.fast_answers[proto] = answer

    def set_mac(self, mac: bytes) -> None:
        self.config.mac = MacAddress(mac)
        self.mac = mac
        self.arp.mac = mac
        self.eth.set_mac(mac)
        self.routing.set_mac(mac)
        self.eth.set_groups(self.groups)

    def join(self, group: int) -> None:
        self.groups.add(group)
        self.eth.set_groups(self.groups)

    def leave(self, group: int) -> None:
        if group != 0xE0000001:
            self.groups.discard(group)
            self.eth.set_groups(self.groups)

    def set_address(self, address: int, now: float) -> None:
        self.config.address = address
        self._apply_address()
        if address:
            self.arp.announce()

    def set_netmask(self, netmask: int) -> None:
        self.config.netmask = netmask
        self._apply_address()

    def set_gateways(self, gateways: Sequence[int]) -> None:
        self.config.gateways = list(gateways)
        self.routing.set_gateways(self.config.gateways)

    def add_address(self, address: int, prefix_len: int, now: float) -> None:
        """Another address (the first one becomes the primary, as set_address), announced by ARP."""
        if not self.config.address:
            self.config.netmask = (0xFFFFFFFF << (32 - prefix_len)) & 0xFFFFFFFF
            self.set_address(address, now)
            return
        if address in self.routing.locals:
            raise ValueError(f"address {address:#010x} already configured")
        self.routing.add_address(address, prefix_len)
        self._apply_locals()
        self.arp.announce(address)

    def remove_address(self, address: int, now: float) -> None:
        """Remove an address; when it is the primary, the next configured one takes its place."""
        r = self.routing
        if address not in r.locals:
            raise ValueError(f"address {address:#010x} not configured")
        if address != self.config.address:
            r.remove_address(address)
            self._apply_locals()
            return
        heir = next((a for a in r.table.addresses if a.address != address), None)
        if heir is None:
            self.config.netmask = 0
            self.set_address(0, now)
            return
        r.remove_address(heir.address)  # it comes back as the primary
        self.config.netmask = heir.netmask
        self.set_address(heir.address, now)

    def add_route(self, network: int, prefix_len: int, gateway: int = 0, metric: int = 0,
                  source: int = 0) -> None:
        self.routing.add_route(network, prefix_len, gateway, metric, source)

    def remove_route(self, network: int, prefix_len: int, gateway: int | None = None,
                     metric: int | None = None) -> None:
        self.routing.remove_route(network, prefix_len, gateway, metric)

    def _apply_locals(self) -> None:
        self.arp.others = self.routing.locals - {self.config.address}

    def set_mtu(self, mtu: int) -> None:
        """The IP MTU for output (DHCP option 26); input still takes frames up to the device's size."""
        if not 68 <= mtu <= 65535:
            raise ValueError(f"MTU {mtu} outside 68..65535")
        self.config.mtu = mtu
        self.routing.mtu = mtu
        self.routing.routes += 1  # cached paths and flows were sized for the old MTU

    def _apply_address(self) -> None:
        c = self.config
        r = self.routing
        r.set_address(c.address, c.netmask)
        r.set_gateways(c.gateways)
        # Mirrors of the routing state read by the per-frame fast path (plain attributes are cheapest).
        self.addr, self.mask, self.bcast = r.addr, r.mask, r.bcast
        self.arp.ip = c.address
        self._apply_locals()
        self.arp.mask = c.netmask
        self._fast_dst = c.address if c.address else -1
        self._fast_martians = frozenset((r.addr, r.bcast))  # sources the fast path refuses (general: counted)
