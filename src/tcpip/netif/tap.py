"""TapDevice: a Linux TAP interface (`/dev/net/tun`, IFF_TAP | IFF_NO_PI) driven from the asyncio loop.

The kernel side of a TAP is the interface itself (`tap0` with its own MAC and addresses); the stack on
our side has its own MAC. Frames the kernel sends out of `tap0` are read from the file descriptor, and
frames we write are received by the kernel as if they came in on `tap0`.

Receive: one `loop.add_reader` callback reads frames until EAGAIN (at most `max_burst` per wake-up, then
it returns to the loop; the reader is level-triggered, so a longer backlog wakes it again at once).
Each frame is read into a fresh buffer, because the stack may keep views of what it was given.
Transmit: `os.writev` of the frame's parts (scatter-gather); a full or unavailable kernel queue
(EAGAIN, ENOBUFS, EIO while the link is down) is counted in `stats.tx_dropped`, never raised.

The device is created in the network namespace of the calling thread when it does not exist; see
`tcpip.netns.open_tap` for opening it inside another namespace. Its life on the link (the interface
deleted and re-created, the MTU the link owns, the kernel's drops toward us) is `tcpip.netif.taplink`.

Offload mode (`offload=None`: where the kernel supports it; True: required; False: plain): IFF_VNET_HDR,
a 10-byte virtio_net_hdr before every frame both ways (TUNSETVNETHDRSZ 10) and TUNSETOFFLOAD
TUN_F_CSUM | TUN_F_TSO4, so the kernel hands us TCP super-frames of up to 64 KiB with checksums it
vouches for, and segments the super-frames we write. Plain mode sets TUNSETOFFLOAD 0 every time: the
flags live on the (persistent) device, and a reader without the header must not inherit them; for the same
reason an offload-mode device clears them when it closes, for whatever reads the device after us. Offload
mode writes with `_transmit_vnet`; `_drain` reads both framings; `dev.offload` says which mode is on.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import io
import logging
import os
import socket
import struct
from collections.abc import Callable, Sequence

from tcpip.errors import DeviceClosedError, MessageTooLongError
from tcpip.netif.device import BaseDevice, Buffer
from tcpip.netif.link import SIOCGIFINDEX, get_ifint, in_netns, netns_of
from tcpip.netif.tap_vnet import (
    IFF_VNET_HDR,
    TapError,
    VnetIO,
    _no_clock,
    clear_offloads,
    fd_has_vnet,
    set_offloads,
    vnet_supported,
)
from tcpip.netif.taplink import LOST_ERRNOS, TXQUEUELEN, TapLink, prepare_link
from tcpip.wire import virtio
from tcpip.wire.mac import MacAddress

__all__ = ["TUN_PATH", "TXQUEUELEN", "TapDevice", "TapError"]

log = logging.getLogger(__name__)

TUN_PATH = "/dev/net/tun"

# <linux/if_tun.h>, <linux/sockios.h>, <net/if.h>
_TUNSETIFF = 0x400454CA
_IFF_TAP = 0x0002
_IFF_NO_PI = 0x1000
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_IFF_RUNNING = 0x40
_IFNAMSIZ = 16

_TX_DROP_ERRNOS = frozenset({errno.EAGAIN, errno.ENOBUFS, errno.EIO, errno.ENOMEM})


def _ifreq(name: str, fmt: str = "", *values: int) -> bytes:
    raw = name.encode()
    if not raw or len(raw) >= _IFNAMSIZ or b"/" in raw or b"\0" in raw or name != name.strip():
        raise ValueError(f"invalid interface name: {name!r}")
    req = struct.pack(f"{_IFNAMSIZ}s{fmt}", raw, *values)
    return req.ljust(40, b"\0")  # sizeof(struct ifreq)


def _open_tap_fd(name: str, offload: bool | None = False) -> tuple[int, str, socket.socket, bool]:
    """Open (creating if absent) TAP `name` in the calling thread's namespace and set it up: returns
    the fd, the interface name, a control socket bound to that namespace and whether offload is on.
    (The MTU is set by `TapDevice.adopt`, which remembers the old one.)"""
    try:
        fd = os.open(TUN_PATH, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise TapError(errno.ENOENT, f"{TUN_PATH} is missing (load the 'tun' kernel module)") from None
    except PermissionError:
        raise TapError(errno.EACCES, f"no permission to open {TUN_PATH} (run as root or with CAP_NET_ADMIN)") from None
    try:
        vnet = offload is not False and vnet_supported(fd, offload)
        try:
            res = fcntl.ioctl(fd, _TUNSETIFF, _ifreq(name, "H", _IFF_TAP | _IFF_NO_PI | (IFF_VNET_HDR if vnet else 0)))
        except OSError as e:
            raise TapError(e.errno, f"cannot attach TAP {name!r}: {os.strerror(e.errno or 0)}") from None
        ifname = res[:_IFNAMSIZ].rstrip(b"\0").decode()
        if not set_offloads(fd, ifname, vnet, offload):
            os.close(fd)
            return _open_tap_fd(name, False)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            try:
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
    return fd, ifname, s, vnet


def _if_flags(ctl: socket.socket, ifname: str) -> int:
    flags: int = struct.unpack_from("H", fcntl.ioctl(ctl, _SIOCGIFFLAGS, _ifreq(ifname)), _IFNAMSIZ)[0]
    return flags


class TapDevice(BaseDevice, VnetIO, TapLink):
    """A TAP interface as a tcpip device. Open with `await TapDevice.open("tap0")`."""

    _answer = VnetIO._answer  # an answer written directly, both framings (not BaseDevice's transmit)
    _answer_parts = VnetIO._answer_parts
    MAX_BURST = 256  # frames per wake-up: under a flood, timers and the application still get loop turns
    # Called after each wake-up that pushed frames to the driver (Runner: application deliveries once per
    # burst; not after one whose frames the fast answer all took: nothing to flush); declared
    # here so that a driver can tell a bursting device from a wrapper that forwards attribute reads.
    on_burst_end: Callable[[], None] | None = None

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
        offload: bool = False,
    ) -> None:
        """Wrap an already opened, non-blocking TAP file descriptor (normally use `open`). `ctl` is a
        socket in the interface's namespace for flag queries; the device closes it. `offload`: the fd
        was attached with IFF_VNET_HDR and offloads (every frame carries a virtio_net_hdr)."""
        super().__init__(mac if mac is not None else MacAddress.random_local(), mtu)
        self.name = name
        self.fd = fd
        self._ctl = ctl
        self.max_burst = max_burst
        self._wakeups = 0  # reader callbacks (rx_wakeups)
        # The reads: FileIO.read returns None on EAGAIN where os.read raises (see _drain); it never closes fd
        self._rfile = io.FileIO(fd, "rb", closefd=False)
        self.on_burst_end = None
        self._fast_answer = None  # attach_fast: the core's echo answer, tried first for each frame read
        self._fast_table = None  # ...as the drain calls it: protocol -> answer(buf, off, now, csum_ok)
        self._fast_clock = _no_clock
        self._readsize = mtu + 18  # Ethernet header + room for one VLAN tag
        self._maxframe = mtu + 14
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        self.offload = offload
        self._hl = virtio.VNET_HDR_LEN if offload else 0  # the framing header each read starts with
        if offload:
            self._readsize = virtio.VNET_HDR_LEN + virtio.MAX_GSO_FRAME
            self.transmit = self._transmit_vnet  # type: ignore[method-assign]
        self._on_readable = self._drain  # both framings (VnetIO)
        self._loop.add_reader(fd, self._on_readable)
        self._link_init()

    @classmethod
    def open_fd(cls, name: str, *, mtu: int | None = None,
                offload: bool | None = None) -> tuple[int, str, socket.socket]:
        """Synchronous part of `open`: the non-blocking fd, the kernel's interface name and a control
        socket in the interface's namespace (pass it to the constructor as `ctl`). `mtu` is applied by
        `adopt` (it is accepted here for callers that pass it to both). `offload` as `open`; `adopt`
        reads the mode back from the fd.

        Everything namespace-dependent happens here, without yielding to the event loop, so a caller
        that has switched its thread into another namespace can switch back right after."""
        del mtu
        return _open_tap_fd(name, offload)[:3]

    @classmethod
    async def open(
        cls, name: str, *, mac: MacAddress | str | None = None, mtu: int | None = None,
        txqueuelen: int | None = TXQUEUELEN, offload: bool | None = None,
    ) -> TapDevice:
        """Open TAP `name` (created if absent, in the current namespace), bring it up, start reading.

        `mac` is the stack's address (a random locally administered one by default); the kernel
        interface keeps its own. `mtu` None adopts the interface's MTU; a value is set on the interface
        and the old one restored on close. The kernel's queue toward us is lengthened to `txqueuelen`
        frames if shorter (None: left alone). `offload`: None = on where the kernel supports it, True =
        required (TapError if not), False = plain; `dev.offload` says which. Raises `TapError`."""
        fd, ifname, ctl, _vnet = _open_tap_fd(name, offload)
        return await cls.adopt(fd, ifname, ctl, mac=mac, mtu=mtu, txqueuelen=txqueuelen, offload=offload)

    @classmethod
    async def adopt(cls, fd: int, ifname: str, ctl: socket.socket, *, mac: MacAddress | str | None = None,
                    mtu: int | None = None, txqueuelen: int | None = TXQUEUELEN,
                    offload: bool | None = None) -> TapDevice:
        """A device on an fd from `open_fd` (closed on failure), once the kernel side is running. `mtu`
        and `txqueuelen` as in `open`. The mode is the fd's (TUNGETIFF); `offload=True`/`False` insists
        on one (TapError otherwise)."""
        try:
            vnet = fd_has_vnet(fd)
            if offload is not None and vnet != offload:
                raise TapError(errno.EINVAL, f"TAP {ifname!r} was opened {'with' if vnet else 'without'} "
                                             f"offloads, asked offload={offload}")
            try:
                cur, restore = prepare_link(ctl, ifname, mtu, txqueuelen)
            except OSError as e:
                raise TapError(e.errno, f"cannot configure {ifname!r}: {os.strerror(e.errno or 0)}") from None
            dev = cls(fd, ifname, mac=None if mac is None else MacAddress(mac), mtu=cur, ctl=ctl, offload=vnet)
        except BaseException:
            os.close(fd)
            ctl.close()
            raise
        dev._want_mtu, dev._want_txqlen, dev._restore = mtu, txqueuelen, restore
        dev._nsfd = netns_of(ctl)
        dev._schedule_watch()
        await dev.wait_running()
        return dev

    def reopen(self) -> bool:
        """One attempt to attach again after a loss: True once an interface named `name` exists again in
        the same namespace and is attached (reading resumes, `lost` is cleared, listeners hear "back")."""
        if self._closed:
            raise DeviceClosedError(f"TAP {self.name} is closed")
        if not self.lost.is_set():
            return True
        if self._ctl is None:
            return False
        try:
            get_ifint(self._ctl, SIOCGIFINDEX, self.name)  # never create it: wait until it is back
            with in_netns(self._nsfd):
                fd, _, ctl, vnet = _open_tap_fd(self.name, self.offload)
            if vnet != self.offload:  # cannot happen with a strict True/False; keep the fd's framing honest
                os.close(fd)
                ctl.close()
                return False
        except OSError as e:
            log.debug("TAP %s: not back yet (%s)", self.name, e)
            return False
        try:
            mtu, restore = prepare_link(ctl, self.name, self._want_mtu, self._want_txqlen)
        except OSError as e:
            log.debug("TAP %s: cannot configure it yet (%s)", self.name, e)
            os.close(fd)
            return False
        finally:
            ctl.close()  # the old control socket is in the same namespace
        self._back(fd, mtu, restore)
        return True

    @property
    def rx_wakeups(self) -> int:
        """Reader callbacks so far (rx_frames / rx_wakeups = frames per wake-up)."""
        return self._wakeups

    @property
    def running(self) -> bool:
        """The kernel reports the interface operationally up (IFF_RUNNING)."""
        if self._ctl is None or self._closed:
            return False
        try:
            return bool(_if_flags(self._ctl, self.name) & _IFF_RUNNING)
        except OSError:  # the interface is gone (lost)
            return False

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

    def transmit(self, parts: Sequence[Buffer]) -> None:
        """One frame out with os.writev; a full kernel queue is counted, never raised."""
        if self._closed:
            raise DeviceClosedError(f"TAP {self.name} is closed")
        # The frame's size, one or two parts (an echo reply; headers + payload) without sum(map()):
        # a third of its cost per frame.
        k = len(parts)
        if (len(parts[0]) if k == 1 else len(parts[0]) + len(parts[1]) if k == 2
                else sum(map(len, parts))) > self._maxframe:
            self.stats.tx_oversize += 1
            raise MessageTooLongError(f"frame exceeds MTU {self.mtu} + 14")
        try:
            n = os.writev(self.fd, parts)
        except OSError as e:
            if e.errno in _TX_DROP_ERRNOS:
                self.stats.tx_dropped += 1
                return
            self._write_failed(e)
            raise
        st = self.stats
        st.tx_frames += 1
        st.tx_bytes += n

    def _write_failed(self, e: OSError) -> None:
        """A write error other than a full queue: a lost link or a closed fd raise DeviceClosedError."""
        if e.errno in LOST_ERRNOS:
            self._link_lost(f"interface deleted (write failed: {errno.errorcode.get(e.errno or 0, e.errno)})")
        if e.errno == errno.EBADF or e.errno in LOST_ERRNOS:
            raise self._closed_error() from None

    def _read_failed(self, e: OSError) -> None:
        if e.errno in LOST_ERRNOS:  # `ip link del`: EPOLLERR, then EBADFD on every read and write
            self._link_lost(f"interface deleted (read failed: {errno.errorcode.get(e.errno or 0, e.errno)})")
        else:
            log.warning("TAP %s: read failed (%s); closing the device", self.name, e)
            self.close()

    def _on_close(self) -> None:
        self._link_close()
        if self.fd >= 0:
            try:
                self._loop.remove_reader(self.fd)
            except (RuntimeError, ValueError):  # loop already closed
                pass
            if self.offload:  # the flags outlive us on a persistent device: a plain reader after us (another
                # program, without the virtio header) would be handed partial checksums it cannot finish
                clear_offloads(self.fd)
            os.close(self.fd)
        self.fd = -1
        if self._ctl is not None:
            self._ctl.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "lost" if self.lost.is_set() else f"fd={self.fd}"
        mode = " offload" if self.offload else ""
        return f"<TapDevice {self.name} mac={self.mac} mtu={self.mtu}{mode} {state}>"
