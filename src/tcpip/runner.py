"""Runner: the thin driver between a device and the sans-I/O core: frames in, frames out, timers, ARP waiters."""

from __future__ import annotations

import asyncio
import logging
import random

from tcpip.core.interface import Interface
from tcpip.errors import DeviceClosedError, HostUnreachableError, TcpipError
from tcpip.netif.clock import Clock, LoopClock, TimerHandle
from tcpip.netif.device import NetworkDevice
from tcpip.wire.ipv4 import ip_str

log = logging.getLogger("tcpip")



class Runner:
    """Owns the timer and the transmit flush of one Interface on one device."""

    def __init__(self, device: NetworkDevice, core: Interface, clock: Clock) -> None:
        self.device = device
        self.core = core
        self.clock = clock
        self._timer: TimerHandle | None = None
        self._timer_at: float | None = None
        self._arp_waiters: dict[int, list[asyncio.Future[bytes]]] = {}
        self.tx_errors = 0
        self.rx_errors = 0
        core.arp.on_resolved = self._arp_resolved
        core.arp.on_failed = self._arp_failed
        self._loop_scheduled = False
        # The per-frame clock read: the loop's own time() when the clock is the loop's.
        self._time = clock.now

    def now(self) -> float:
        return self.clock.now()

    # -- the per-frame path --------------------------------------------------------------------
    def on_frame(self, frame: memoryview) -> None:
        """Push-model receive: one frame through the core, then flush what it queued."""
        core = self.core
        try:
            core.receive(frame, self._time())
        except Exception:
            self.rx_errors += 1  # a bug by definition (bad input is a counted drop): never kill the loop
            log.exception("unexpected error on input")
        if core.tx or core.loopback:
            self.flush()
        elif core.arp.pending or core.timers_dirty:
            self.schedule()

    def flush(self) -> None:
        core = self.core
        if core.loopback and not self._loop_scheduled:
            self._loop_scheduled = True
            asyncio.get_running_loop().call_soon(self._loop_in)
        tx = core.tx
        if not tx:
            return
        core.tx = []
        transmit = self.device.transmit
        for f in tx:
            try:
                transmit(f)
            except (DeviceClosedError, OSError, TcpipError) as e:
                self.tx_errors += 1
                log.debug("transmit failed: %s", e)
        if core.arp.pending or core.timers_dirty:  # only then can a new deadline exist
            self.schedule()

    def _loop_in(self) -> None:
        self._loop_scheduled = False
        self.core.loopback_input(self.clock.now())
        self.flush()

    # -- timers --------------------------------------------------------------------------------
    def schedule(self) -> None:
        self.core.timers_dirty = False
        at = self.core.poll_at()
        if at is None:
            return
        if self._timer_at is not None and self._timer_at <= at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = self.clock.call_at(at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.core.handle_timeout(self.clock.now())
        self.flush()
        self.schedule()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for ip, futs in self._arp_waiters.items():
            for f in futs:
                if not f.done():
                    f.set_exception(HostUnreachableError(f"{ip_str(ip)}: interface closed"))
        self._arp_waiters.clear()

    # -- ARP waiters for the async API ---------------------------------------------------------
    async def resolve(self, ip: int) -> bytes:
        """The MAC of on-link `ip`, querying ARP and waiting for the answer if needed."""
        core = self.core
        mac = core.arp.lookup(ip, self.clock.now())
        if mac is not None:
            if core.tx:
                self.flush()
            return mac
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._arp_waiters.setdefault(ip, []).append(fut)
        core.arp.resolve(ip, None, self.clock.now())
        self.flush()
        return await fut

    def _arp_resolved(self, ip: int, mac: bytes) -> None:
        for f in self._arp_waiters.pop(ip, ()):
            if not f.done():
                f.set_result(mac)

    def _arp_failed(self, ip: int) -> None:
        tries = self.core.config.arp_tries
        for f in self._arp_waiters.pop(ip, ()):
            if not f.done():
                f.set_exception(HostUnreachableError(
                    f"{ip_str(ip)}: no ARP reply after {tries} requests"))


def default_clock(clock: Clock | None) -> Clock:
    return clock if clock is not None else LoopClock()


def default_rng(rng: random.Random | None) -> random.Random:
    return rng if rng is not None else random.Random()
