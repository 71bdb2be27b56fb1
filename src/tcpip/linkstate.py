"""StackLink: how a Stack follows its device's link (a TAP deleted and re-created, an MTU changed on the kernel side).

`stack.link.lost` is an asyncio.Event set while the device's kernel interface is gone (`stack.link.reason`
says why); meanwhile sends fail as they do on a closed device (the runner counts `tx_errors`; `ping`
reports the error) and the TAP raises `LinkLostError`. On loss the learned ARP entries are forgotten (a
re-created interface has a new MAC); when the device is back, our addresses are announced again
(gratuitous ARP). An MTU change on the kernel side becomes the stack's MTU for new flows.
`await stack.link.reopen()` waits for the interface to come back (retrying with backoff); `tcpip up`
does that unless `--exit-on-link-loss`. Devices without a link life (a Hub port) never report anything.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from tcpip.core.arp import STATIC
from tcpip.core.interface import Interface
from tcpip.netif.taplink import LinkEvent, LinkListener
from tcpip.runner import Runner

__all__ = ["StackLink", "link_device"]

log = logging.getLogger("tcpip")


def link_device(device: object) -> Any | None:
    """The device under wrappers (PcapWriter, FaultInjector, ...) that reports link events, if any."""
    seen = 0
    d: object | None = device
    while d is not None and seen < 8:
        if callable(getattr(d, "add_link_listener", None)):
            return d
        d = getattr(d, "device", None) or getattr(d, "inner", None)
        seen += 1
    return None


class StackLink:
    """The link state of one Stack (`stack.link`). See the module docstring."""

    def __init__(self, device: object, core: Interface, runner: Runner) -> None:
        self.device = link_device(device)
        self.core = core
        self.runner = runner
        self.lost = asyncio.Event()
        self.reason: str | None = None
        self._listeners: list[LinkListener] = []
        if self.device is not None:
            self.device.add_link_listener(self._on_event)

    def add_listener(self, cb: LinkListener) -> None:
        """`cb(LinkEvent)` after the stack has handled it: "lost", "retrying", "back", "mtu"."""
        self._listeners.append(cb)

    async def reopen(self, *, first: float = 0.1, cap: float = 2.0) -> bool:
        """Wait until the lost interface is back and attached (True), retrying with backoff; False if
        the device was closed meanwhile or has no link life."""
        if self.device is None:
            return False
        back: bool = await self.device.reopen_when_back(first=first, cap=cap)
        return back

    def kernel_stats(self) -> dict[str, int]:
        """The kernel interface's counters (`kernel_tx_dropped`, ...), or {} without one."""
        if self.device is None:
            return {}
        stats: dict[str, int] = self.device.kernel_stats()
        return stats

    def _on_event(self, ev: LinkEvent) -> None:
        core = self.core
        if ev.kind == "lost":
            self.reason = ev.detail
            self.lost.set()
            arp = core.arp
            for ip in [ip for ip, e in arp.entries.items() if e.state != STATIC and e.mac is not None]:
                arp.remove(ip)  # the next interface of that name has another MAC
            core.routing.routes += 1  # paths cached with those MACs are stale
        elif ev.kind == "back":
            self.reason = None
            self.lost.clear()
            if core.addr:
                core.arp.announce()
                for other in core.arp.others:
                    core.arp.announce(other)
                self.runner.kick()
        elif ev.kind == "mtu" and ev.mtu != core.config.mtu:
            log.info("link MTU is now %d: the stack follows it for new flows", ev.mtu)
            core.set_mtu(ev.mtu)
        for cb in list(self._listeners):
            try:
                cb(ev)
            except Exception:
                log.exception("link listener raised")

    def close(self) -> None:
        if self.device is not None:
            self.device.remove_link_listener(self._on_event)
