"""StackLoop: asyncio's default event loop whose network methods go through a tcpip Stack.

`asyncio.Runner(loop_factory=tcpip.loop_factory(tap="tap0", ipv4="198.18.0.2/24"))` runs unchanged asyncio
code (and the libraries that open their connections through the running loop) over tcpip. Nothing here
changes the loop of a program that does not ask for it: importing tcpip installs no policy.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable
from ipaddress import IPv4Address, IPv4Interface
from typing import Any

from tcpip.aio.loopnet import Connect, StackNetwork
from tcpip.netif.device import NetworkDevice
from tcpip.stack import Stack
from tcpip.wire.mac import MacAddress


class StackLoop(StackNetwork, asyncio.SelectorEventLoop):  # type: ignore[misc]
    """asyncio's default event loop (selector-based on Linux) with its network on a tcpip Stack
    (`loop.stack`); see StackNetwork for the methods that change."""


_uv_class: type[StackNetwork] | None = None


def uvloop_class() -> type[StackNetwork]:
    """UvStackLoop: the same network methods on uvloop's loop (ImportError without uvloop)."""
    global _uv_class  # noqa: PLW0603 - made once, on first use: uvloop is optional
    if _uv_class is None:
        import uvloop  # noqa: PLC0415

        class UvStackLoop(StackNetwork, uvloop.Loop):  # type: ignore[misc]
            """uvloop's event loop with its network on a tcpip Stack."""

        _uv_class = UvStackLoop
    return _uv_class


# -- factories --------------------------------------------------------------------------------------
async def open_stack(*, tap: str | None = None, device: NetworkDevice | None = None, netns: str | None = None,
                     ipv4: str | IPv4Interface | None = None, gateways: Iterable[str | IPv4Address] = (),
                     mac: MacAddress | str | None = None, mtu: int = 1500, pcap: str | None = None,
                     **stack_options: Any) -> Stack:
    """Open the device (a TAP by name, optionally inside namespace `netns`, or `device`), then the Stack."""
    if (tap is None) == (device is None):
        raise ValueError("give exactly one of tap= or device=")
    if device is None:
        assert tap is not None
        if netns is not None:
            from tcpip.netns import Namespace  # noqa: PLC0415

            device = await Namespace(netns).open_tap(tap, mac=mac, mtu=mtu)
        else:
            from tcpip.netif.tap import TapDevice  # noqa: PLC0415

            device = await TapDevice.open(tap, mac=mac, mtu=mtu)
    if pcap is not None:
        from tcpip.netif.pcap import PcapWriter  # noqa: PLC0415

        device = PcapWriter(device, pcap)
    try:
        return await Stack.connect(device, ipv4=ipv4, gateways=list(gateways), **stack_options)
    except BaseException:
        await device.disconnect()
        raise


def loop_factory(connect: Connect | None = None, *, uvloop: bool = False,
                 **options: Any) -> Callable[[], StackNetwork]:
    """A `loop_factory` for asyncio.Runner / asyncio.run: each call makes a StackLoop on a fresh stack,
    either `connect()` or `open_stack(**options)` (tap=, netns=, ipv4=, gateways=, mac=, mtu=, pcap=,
    device=, and Stack.connect's own keywords). `uvloop=True`: uvloop's loop underneath (UvStackLoop)."""
    if connect is not None and options:
        raise TypeError("pass connect or stack options, not both")
    cls: type[StackNetwork] = uvloop_class() if uvloop else StackLoop

    def factory() -> StackNetwork:
        return cls(connect if connect is not None else lambda: open_stack(**options))

    return factory


class StackLoopPolicy(asyncio.DefaultEventLoopPolicy):
    """An event-loop policy whose new loops, in the thread that installed it, are StackLoops (other
    threads get asyncio's default loop: one TAP serves one loop)."""

    def __init__(self, factory: Callable[[], StackNetwork]) -> None:
        super().__init__()
        self._factory = factory
        self._thread = threading.get_ident()

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        if threading.get_ident() != self._thread:
            return super().new_event_loop()
        return self._factory()


__all__ = ["StackLoop", "StackLoopPolicy", "StackNetwork", "loop_factory", "open_stack", "uvloop_class"]
