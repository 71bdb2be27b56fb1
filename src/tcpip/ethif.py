"""Ethif: the seed's Ethernet layer (ARP inside) as an asyncio facade over the sans-I/O Interface."""

from __future__ import annotations

import inspect
import random
from collections.abc import Awaitable, Callable, Sequence

from tcpip.core.config import InterfaceConfig
from tcpip.core.interface import Interface
from tcpip.guard import CallbackGuard
from tcpip.hostconfig import check_mac
from tcpip.netif.clock import Clock
from tcpip.netif.device import Buffer, NetworkDevice
from tcpip.runner import Runner, default_clock, default_rng
from tcpip.wire.mac import MacAddress

PacketCallback = Callable[[memoryview], Awaitable[None] | None]


class Ethif:
    """Ethernet II + ARP on one device. `await Ethif.connect(device)`; `await eth.input(frame, ipv4=cb)`."""

    def __init__(self, device: NetworkDevice, core: Interface, runner: Runner) -> None:
        self.device = device
        self.core = core
        self.runner = runner
        # Whether the last IPv4 payload handed to `ipv4=` came in a link broadcast/multicast frame: the
        # seed's layering passes only the packet on, and Ipv4.input needs this for RFC 1122 3.3.6.
        self._l2_broadcast = False
        self._guard = CallbackGuard("Ethif.input callback")

    @classmethod
    async def connect(cls, netif: NetworkDevice, *, mac: MacAddress | str | None = None,
                      config: InterfaceConfig | None = None, clock: Clock | None = None,
                      rng: random.Random | None = None) -> Ethif:
        """Wrap `netif`. The MAC is the device's unless `mac` (or `config.mac`) says otherwise."""
        clk = default_clock(clock)
        # Our own copy: the caller's config may build other interfaces too (never mutated).
        config = InterfaceConfig() if config is None else config.copy()
        if mac is not None:
            config.mac = check_mac(MacAddress(mac))
        elif config.mac is None:
            config.mac = netif.mac
        else:
            check_mac(config.mac)
        config.mtu = min(config.mtu, netif.mtu) if config.mtu else netif.mtu
        core = Interface(config, now=clk.now(), rng=default_rng(rng))
        return cls(netif, core, Runner(netif, core, clk))

    @property
    def mac(self) -> MacAddress:
        return MacAddress(self.core.mac)

    @property
    def mtu(self) -> int:
        return self.core.config.mtu

    async def input(self, frame: Buffer, *, ipv4: PacketCallback,
                    ipv6: PacketCallback | None = None) -> None:
        """Demultiplex one Ethernet frame: ARP is answered here, IPv4 (and IPv6) payloads go to the
        callbacks. Bad frames are counted and dropped."""
        r = self.core.eth_demux(frame if isinstance(frame, memoryview) else memoryview(frame),
                                self.runner.now())
        self.runner.kick()  # ARP answers
        if r is None:
            return
        if r[0] != 0x0800 and ipv6 is None:
            self.core.eth_stats.rx_ipv6_no_handler += 1
            return
        try:  # the application's exception is contained: `device.listen` goes on (counted)
            if r[0] == 0x0800:
                self._l2_broadcast = r[2]
                res = ipv4(r[1])
            else:
                self.core.eth_stats.rx_ipv6 += 1
                res = ipv6(r[1])  # type: ignore[misc]
            if inspect.isawaitable(res):
                await res
        except Exception:
            self.core.eth_stats.rx_callback_errors += 1
            self._guard.failed()

    def take_l2_broadcast(self) -> bool:
        """Whether the IPv4 payload being handled came in a link broadcast frame (read once, then reset)."""
        b, self._l2_broadcast = self._l2_broadcast, False
        return b

    async def write(self, frame: Buffer) -> None:
        await self.device.write(frame)

    async def writev(self, parts: Sequence[Buffer]) -> None:
        await self.device.writev(parts)

    async def disconnect(self) -> None:
        self.runner.close()
        await self.device.disconnect()
