"""TapDevice's life on the link: loss of the kernel interface, the MTU and txqueuelen it owns, its counters.

A TAP whose interface is deleted (`ip link del tap0`) reports EPOLLERR and then EBADFD on every read and
write of the fd. The device does not close then: it drops the fd, sets `lost` (an asyncio.Event), tells
its listeners (`LinkEvent("lost", reason)`), raises `LinkLostError` on transmit, and can attach again when
an interface of that name exists in the same namespace (`reopen`, `reopen_when_back`).

The MTU belongs to the link: opened without `mtu`, the device adopts the interface's; with `mtu`, the old
one is restored on close (if nobody changed it meanwhile). A SIOCGIFMTU every `WATCH_INTERVAL` seconds
follows changes made on the kernel side (`LinkEvent("mtu", ...)`).
"""

from __future__ import annotations

import asyncio
import errno
import io
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass

from tcpip.errors import DeviceClosedError, LinkLostError
from tcpip.netif.link import (
    SIOCGIFMTU,
    SIOCGIFTXQLEN,
    SIOCSIFMTU,
    SIOCSIFTXQLEN,
    KernelLink,
    get_ifint,
    set_ifint,
)

__all__ = ["TXQUEUELEN", "LinkEvent", "LinkListener", "TapLink", "prepare_link"]

log = logging.getLogger("tcpip.netif.tap")

# The kernel's queue toward our reader, in frames, set at open time when the interface's is shorter
# (tun's own default is 500). bench/txqueuelen.py: a 5,000-datagram burst from the kernel lost ~60% at
# 1000 and 0% at 4096; the queue absorbs a burst about its length, no more. Bounded cost: at most ~9 MB
# of 1514-byte frames, ~0.2 s of queueing at the ~20k frames/s tcpip drains.
TXQUEUELEN = 4096
# errno values of a read or write on a TAP fd whose interface is gone
LOST_ERRNOS = frozenset({errno.EBADFD, errno.ENODEV, errno.ENXIO})


@dataclass(frozen=True, slots=True)
class LinkEvent:
    """`kind` is "lost", "retrying", "back" or "mtu"; `detail` says why or what; `mtu` is the device's now."""

    kind: str
    detail: str
    mtu: int


LinkListener = Callable[[LinkEvent], None]
Restore = dict[int, tuple[int, int]]  # SIOCSIF* request -> (value before us, value we set)


def prepare_link(ctl: socket.socket, name: str, mtu: int | None, txqueuelen: int | None) -> tuple[int, Restore]:
    """Apply `mtu` (None: keep the interface's) and lengthen the kernel queue to `txqueuelen` (never
    shorten it; None or 0: leave it); returns the MTU in force and what to restore on close. Raises OSError."""
    restore: Restore = {}
    cur = get_ifint(ctl, SIOCGIFMTU, name)
    if mtu is not None and mtu != cur:
        set_ifint(ctl, SIOCSIFMTU, name, mtu)
        restore[SIOCSIFMTU] = (cur, mtu)
        cur = mtu
    if txqueuelen:  # None or 0: leave it alone
        q = get_ifint(ctl, SIOCGIFTXQLEN, name)
        if q < txqueuelen:
            set_ifint(ctl, SIOCSIFTXQLEN, name, txqueuelen)
            restore[SIOCSIFTXQLEN] = (q, txqueuelen)
    return cur, restore


class TapLink:
    """Mixin of TapDevice (see the module docstring). Public: `lost`, `lost_reason`, `link_losses`,
    `add_link_listener`, `reopen_when_back`, `kernel_stats`."""

    WATCH_INTERVAL = 1.0

    # provided by TapDevice
    name: str
    fd: int
    mtu: int
    _closed: bool
    _ctl: socket.socket | None
    _loop: asyncio.AbstractEventLoop
    _readsize: int
    _maxframe: int
    offload: bool
    _on_readable: Callable[[], None]  # _drain (tcpip.netif.tap_vnet.VnetIO: both framings)

    def reopen(self) -> bool:  # one attempt; TapDevice implements it (it knows how to open)
        raise NotImplementedError

    async def wait_running(self, timeout: float = 2.0) -> bool:
        raise NotImplementedError

    def _drain(self) -> None:
        raise NotImplementedError

    def _link_init(self) -> None:
        self.lost = asyncio.Event()  # set while the kernel interface is gone
        self.lost_reason: str | None = None
        self.link_losses = 0
        self._listeners: list[LinkListener] = []
        self._want_mtu: int | None = None  # an MTU we were asked for: applied again on reopen
        self._want_txqlen: int | None = None
        self._restore: Restore = {}
        self._nsfd: int | None = None  # the interface's namespace, to reopen there
        self._klink: KernelLink | None = None
        self._watch: asyncio.TimerHandle | None = None

    def add_link_listener(self, cb: LinkListener) -> None:
        """`cb(LinkEvent)` on each state change: lost, retrying, back, and an MTU the kernel side changed."""
        self._listeners.append(cb)

    def remove_link_listener(self, cb: LinkListener) -> None:
        if cb in self._listeners:
            self._listeners.remove(cb)

    def _emit(self, kind: str, detail: str) -> None:
        ev = LinkEvent(kind, detail, self.mtu)
        for cb in list(self._listeners):
            try:
                cb(ev)
            except Exception:
                log.exception("link listener raised")

    # -- the watch: the kernel side's MTU ------------------------------------------------------------
    def _schedule_watch(self) -> None:
        if self._watch is None and self._ctl is not None and not self._closed:
            self._watch = self._loop.call_later(self.WATCH_INTERVAL, self._watch_tick)

    def _watch_tick(self) -> None:
        self._watch = None
        if self._closed or self.lost.is_set() or self._ctl is None:
            return
        try:
            mtu = get_ifint(self._ctl, SIOCGIFMTU, self.name)
        except OSError as e:
            # Loss is told by the fd (EPOLLERR, EBADFD): ENODEV here may be a rename, and the fd still works.
            log.debug("TAP %s: SIOCGIFMTU failed: %s", self.name, e)
            mtu = self.mtu
        if mtu != self.mtu:
            self._mtu_changed(mtu)
        self._schedule_watch()

    def _mtu_changed(self, mtu: int) -> None:
        old, self.mtu = self.mtu, mtu
        if not self.offload:  # offload mode always reads room for a 64 KiB super-frame
            self._readsize = mtu + 18
        self._maxframe = mtu + 14
        log.info("TAP %s: MTU changed %d -> %d on the kernel side", self.name, old, mtu)
        self._emit("mtu", f"MTU {old} -> {mtu}")

    # -- loss and return -----------------------------------------------------------------------
    def _link_lost(self, reason: str) -> None:
        if self._closed or self.lost.is_set():
            return
        if self.fd >= 0:
            try:
                self._loop.remove_reader(self.fd)
            except (RuntimeError, ValueError):
                pass
            os.close(self.fd)
            self.fd = -1
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        self._restore = {}  # the interface they belonged to is gone
        self.lost_reason = reason
        self.link_losses += 1
        self.lost.set()
        log.info("TAP %s lost: %s", self.name, reason)
        self._emit("lost", reason)

    def _closed_error(self) -> DeviceClosedError:
        if self.lost.is_set() and not self._closed:
            return LinkLostError(f"TAP {self.name} lost: {self.lost_reason}")
        return DeviceClosedError(f"TAP {self.name} is closed")

    def _back(self, fd: int, mtu: int, restore: Restore) -> None:
        """The fd of the re-created interface is attached: resume reading, following its MTU."""
        self.fd = fd
        self._rfile = io.FileIO(fd, "rb", closefd=False)  # the reads (TapDevice.__init__)
        self._restore = restore
        self._loop.add_reader(fd, self._on_readable)
        self.lost.clear()
        self.lost_reason = None
        if mtu != self.mtu:
            self._mtu_changed(mtu)
        self._schedule_watch()
        log.info("TAP %s back", self.name)
        self._emit("back", f"{self.name} reopened")

    async def reopen_when_back(self, *, first: float = 0.1, cap: float = 2.0) -> bool:
        """After a loss: try `reopen` with exponential backoff (`first` s doubling up to `cap` s) until the
        interface is back and running (True) or the device is closed (False)."""
        delay = first
        announced = False
        while not self._closed:
            if self.reopen():
                await self.wait_running()
                return True
            if not announced:
                announced = True
                self._emit("retrying", f"waiting for {self.name} to reappear (retries back off to {cap:g} s)")
            await asyncio.sleep(delay)
            delay = min(cap, delay * 2)
        return False

    # -- kernel counters and clean-up ----------------------------------------------------------
    def kernel_stats(self) -> dict[str, int]:
        """The kernel interface's drops, by netlink RTM_GETLINK in its namespace: `kernel_tx_dropped` (frames
        toward us lost because its queue of `kernel_txqueuelen` frames was full: we read too slowly) and
        `kernel_rx_dropped` (frames we wrote that it dropped). Empty when unavailable (closed, lost)."""
        if self._closed or self.lost.is_set():
            return {}
        try:
            if self._klink is None:
                self._klink = KernelLink(self.name, self._nsfd)
            info = self._klink.query()
        except OSError as e:
            log.debug("TAP %s: RTM_GETLINK failed: %s", self.name, e)
            return {}
        if info is None:
            return {}
        return {"kernel_tx_dropped": info.tx_dropped, "kernel_rx_dropped": info.rx_dropped,
                "kernel_txqueuelen": info.txqueuelen}

    def _link_close(self) -> None:
        """On close: stop watching, give back the MTU/txqueuelen we changed (unless changed since)."""
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        ctl = self._ctl
        if ctl is not None:
            for req, (before, ours) in self._restore.items():
                get = SIOCGIFMTU if req == SIOCSIFMTU else SIOCGIFTXQLEN
                try:
                    if get_ifint(ctl, get, self.name) == ours:
                        set_ifint(ctl, req, self.name, before)
                except OSError as e:
                    log.debug("TAP %s: cannot restore setting: %s", self.name, e)
        self._restore = {}
        if self._klink is not None:
            self._klink.close()
            self._klink = None
        if self._nsfd is not None:
            os.close(self._nsfd)
            self._nsfd = None
