"""TapDevice: a Linux TAP interface (`/dev/net/tun`, IFF_TAP | IFF_NO_PI) driven from the asyncio loop.

The kernel side of a TAP is the interface itself (`tap0` with its own MAC and addresses); the stack on
our side has its own MAC. Frames the kernel sends out of `tap0` are read from the file descriptor, and
frames we write are received by the kernel as if they came in on `tap0`.

Receive: one `loop.add_reader` callback reads frames until EAGAIN (at most `max_burst` per wake-up, then
it returns to the loop; the reader is level-triggered, so a longer backlog wakes it again at once); under
one-frame-per-wake-up traffic it returns after the frame instead of reading on to EAGAIN (see `_drain`).
Each frame is read into a fresh buffer, because the stack may keep views of what it was given.
Transmit: `os.writev` of the frame's parts (scatter-gather); a full or unavailable kernel queue
(EAGAIN, ENOBUFS, EIO while the link is down) is counted in `stats.tx_dropped`, never raised.

The device is created in the network namespace of the calling thread when it does not exist; see
`tcpip.netns.open_tap` for opening it inside another namespace.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import os
import socket
import struct
from collections.abc import Sequence

from tcpip.errors import DeviceClosedError, MessageTooLongError
from tcpip.netif.device import BaseDevice, Buffer
from tcpip.wire.mac import MacAddress

__all__ = ["TUN_PATH", "TapDevice", "TapError"]

log = logging.getLogger(__name__)

TUN_PATH = "/dev/net/tun"

# <linux/if_tun.h>, <linux/sockios.h>, <net/if.h>
_TUNSETIFF = 0x400454CA
_IFF_TAP = 0x0002
_IFF_NO_PI = 0x1000
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_SIOCGIFMTU = 0x8921
_SIOCSIFMTU = 0x8922
_IFF_UP = 0x1
_IFF_RUNNING = 0x40
_IFNAMSIZ = 16

_TX_DROP_ERRNOS = frozenset({errno.EAGAIN, errno.ENOBUFS, errno.EIO, errno.ENOMEM})


class TapError(OSError):
    """The TAP device could not be opened or configured (missing /dev/net/tun, no permission...)."""


def _ifreq(name: str, fmt: str = "", *values: int) -> bytes:
    raw = name.encode()
    if not raw or len(raw) >= _IFNAMSIZ or b"/" in raw or b"\0" in raw or name != name.strip():
        raise ValueError(f"invalid interface name: {name!r}")
    req = struct.pack(f"{_IFNAMSIZ}s{fmt}", raw, *values)
    return req.ljust(40, b"\0")  # sizeof(struct ifreq)


def _open_tap_fd(name: str, mtu: int | None) -> tuple[int, str, socket.socket]:
    """Open (creating if absent) TAP `name` in the calling thread's namespace and set it up: returns
    the fd, the interface name and a control socket bound to that namespace."""
    try:
        fd = os.open(TUN_PATH, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise TapError(errno.ENOENT, f"{TUN_PATH} is missing (load the 'tun' kernel module)") from None
    except PermissionError:
        raise TapError(errno.EACCES, f"no permission to open {TUN_PATH} (run as root or with CAP_NET_ADMIN)") from None
    try:
        try:
            res = fcntl.ioctl(fd, _TUNSETIFF, _ifreq(name, "H", _IFF_TAP | _IFF_NO_PI))
        except OSError as e:
            raise TapError(e.errno, f"cannot attach TAP {name!r}: {os.strerror(e.errno or 0)}") from None
        ifname = res[:_IFNAMSIZ].rstrip(b"\0").decode()
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            try:
                if mtu is not None:
                    cur = struct.unpack_from("i", fcntl.ioctl(s, _SIOCGIFMTU, _ifreq(ifname)), _IFNAMSIZ)[0]
                    if cur != mtu:
                        fcntl.ioctl(s, _SIOCSIFMTU, _ifreq(ifname, "i", mtu))
                flags = _if_flags(s, ifname)
                if not flags & _IFF_UP:
                    fcntl.ioctl(s, _SIOCSIFFLAGS, _ifreq(ifname, "H", flags | _IFF_UP))
            except OSError as e:
                raise TapError(e.errno, f"cannot configure {ifname!r}: {os.strerror(e.errno or 0)}") from None
        except BaseException:
            s.close()
            raise
    except BaseException:
        os.close(fd)
        raise
    return fd, ifname, s


def _if_flags(ctl: socket.socket, ifname: str) -> int:
    flags: int = struct.unpack_from("H", fcntl.ioctl(ctl, _SIOCGIFFLAGS, _ifreq(ifname)), _IFNAMSIZ)[0]
    return flags


class TapDevice(BaseDevice):
    """A TAP interface as a tcpip device. Open with `await TapDevice.open("tap0")`."""

    MAX_BURST = 256  # frames per wake-up: under a flood, timers and the application still get loop turns

    def __init__(
        self,
        fd: int,
        name: str,
        *,
        mac: MacAddress | None = None,
        mtu: int = 1500,
        loop: asyncio.AbstractEventLoop | None = None,
        max_burst: int = MAX_BURST,
        ctl: socket.socket | None = None,
    ) -> None:
        """Wrap an already opened, non-blocking TAP file descriptor (normally use `open`). `ctl` is a
        socket in the interface's namespace for flag queries; the device closes it."""
        super().__init__(mac if mac is not None else MacAddress.random_local(), mtu)
        self.name = name
        self.fd = fd
        self._ctl = ctl
        self.max_burst = max_burst
        self.rx_wakeups = 0  # reader callbacks; rx_frames / rx_wakeups = frames per wake-up
        self._quiet = 0  # consecutive wake-ups that found exactly one frame (see _drain)
        self._readsize = mtu + 18  # Ethernet header + room for one VLAN tag
        self._maxframe = mtu + 14
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        self._loop.add_reader(fd, self._drain)

    @classmethod
    def open_fd(cls, name: str, *, mtu: int = 1500) -> tuple[int, str, socket.socket]:
        """Synchronous part of `open`: the non-blocking fd, the kernel's interface name and a control
        socket in the interface's namespace (pass it to the constructor as `ctl`).

        Everything namespace-dependent happens here, without yielding to the event loop, so a caller
        that has switched its thread into another namespace can switch back right after."""
        return _open_tap_fd(name, mtu)

    @classmethod
    async def open(
        cls, name: str, *, mac: MacAddress | str | None = None, mtu: int = 1500
    ) -> TapDevice:
        """Open TAP `name` (created if absent, in the current namespace), bring it up, start reading.

        `mac` is the stack's address (a random locally administered one by default); the kernel
        interface keeps its own. The kernel interface's MTU is set to `mtu`. Raises `TapError`."""
        fd, ifname, ctl = _open_tap_fd(name, mtu)
        return await cls.adopt(fd, ifname, ctl, mac=mac, mtu=mtu)

    @classmethod
    async def adopt(cls, fd: int, ifname: str, ctl: socket.socket, *, mac: MacAddress | str | None = None,
                    mtu: int = 1500) -> TapDevice:
        """A device on an fd from `open_fd` (closed on failure), once the kernel side is running."""
        try:
            dev = cls(fd, ifname, mac=None if mac is None else MacAddress(mac), mtu=mtu, ctl=ctl)
        except BaseException:
            os.close(fd)
            ctl.close()
            raise
        await dev.wait_running()
        return dev

    @property
    def running(self) -> bool:
        """The kernel reports the interface operationally up (IFF_RUNNING)."""
        if self._ctl is None or self._closed:
            return False
        return bool(_if_flags(self._ctl, self.name) & _IFF_RUNNING)

    async def wait_running(self, timeout: float = 2.0) -> bool:
        """Wait until the kernel side is operationally up. Attaching the fd turns the carrier on, but
        the kernel activates the interface's transmit queue asynchronously (link watch); frames it
        sends before that, such as its first ARP reply, are silently dropped. False on timeout."""
        deadline = self._loop.time() + timeout
        while not self.running:
            if self._closed or self._loop.time() >= deadline:
                log.warning("TAP %s: not running after %.1f s", self.name, timeout)
                return False
            await asyncio.sleep(0.005)
        return True

    def _drain(self) -> None:
        self.rx_wakeups += 1
        fd = self.fd
        size = self._readsize
        read = os.read
        deliver = self._deliver
        # After a run of wake-ups that each found one frame, skip the read that would end this drain with
        # EAGAIN (a syscall and a raised exception, per frame under one-in-flight traffic). Safe because the
        # reader is level-triggered (asyncio's selectors and libuv's epoll both are): a frame that is already
        # queued wakes us again on the next loop turn. Every 16th such wake-up still probes, so a backlog
        # (bursts, bulk TCP) is noticed within 16 wake-ups and then drained up to max_burst at a time.
        quiet = self._quiet
        skip = quiet >= 2 and quiet & 15 != 0
        got = nbytes = 0
        try:
            for _ in range(self.max_burst):
                if self._closed:
                    return
                try:
                    f = read(fd, size)  # a fresh bytes object: views of it stay valid
                except (BlockingIOError, InterruptedError):
                    return
                except OSError as e:
                    # The interface went away (e.g. its namespace was deleted): stop, don't spin.
                    log.warning("TAP %s: read failed (%s); closing the device", self.name, e)
                    self.close()
                    return
                if not f:
                    return
                if deliver is None:
                    self._received(memoryview(f))
                    continue
                got += 1
                nbytes += len(f)
                deliver(memoryview(f))  # push model: the stack's receive path, no queue
                if skip:
                    return
        finally:
            self._quiet = quiet + 1 if got == 1 else 0
            if got:
                st = self.stats
                st.rx_frames += got
                st.rx_bytes += nbytes

    def transmit(self, parts: Sequence[Buffer]) -> None:
        """One frame out with os.writev; a full kernel queue is counted, never raised."""
        if self._closed:
            raise DeviceClosedError(f"TAP {self.name} is closed")
        if sum(map(len, parts)) > self._maxframe:
            self.stats.tx_oversize += 1
            raise MessageTooLongError(f"frame exceeds MTU {self.mtu} + 14")
        try:
            n = os.writev(self.fd, parts)
        except OSError as e:
            if e.errno in _TX_DROP_ERRNOS:
                self.stats.tx_dropped += 1
                return
            if e.errno == errno.EBADF:
                raise DeviceClosedError(f"TAP {self.name} is closed") from None
            raise
        st = self.stats
        st.tx_frames += 1
        st.tx_bytes += n

    def _on_close(self) -> None:
        try:
            self._loop.remove_reader(self.fd)
        except (RuntimeError, ValueError):  # loop already closed
            pass
        os.close(self.fd)
        self.fd = -1
        if self._ctl is not None:
            self._ctl.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"fd={self.fd}"
        return f"<TapDevice {self.name} mac={self.mac} mtu={self.mtu} {state}>"
