"""The kernel side of a TAP: its namespace, MTU, txqueuelen and statistics (netlink RTM_GETLINK), stdlib only.

Everything here goes through a socket bound to the interface's namespace (`ctl`, made when the TAP was
opened), so it works from a thread that sits in another namespace; sysfs would show the wrong one.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["KernelLink", "LinkInfo", "get_ifint", "in_netns", "netns_of", "set_ifint"]

# <linux/sockios.h>
SIOCGIFINDEX = 0x8933
SIOCGIFMTU = 0x8921
SIOCSIFMTU = 0x8922
SIOCGIFTXQLEN = 0x8942
SIOCSIFTXQLEN = 0x8943
_SIOCGSKNS = 0x894C  # a file descriptor for the socket's network namespace (Linux 4.10+)
_CLONE_NEWNET = 0x40000000
_IFNAMSIZ = 16

# <linux/netlink.h>, <linux/rtnetlink.h>, <linux/if_link.h>
_NLMSG_ERROR = 2
_RTM_NEWLINK = 16
_RTM_GETLINK = 18
_NLM_F_REQUEST = 1
_IFLA_IFNAME = 3
_IFLA_MTU = 4
_IFLA_TXQLEN = 13
_IFLA_STATS64 = 23
_NLMSGHDR = struct.Struct("=IHHII")
_IFINFOMSG = struct.Struct("=BxHiII")
_RTATTR = struct.Struct("=HH")


def _ifreq(name: str, fmt: str = "", *values: int) -> bytes:
    return struct.pack(f"{_IFNAMSIZ}s{fmt}", name.encode(), *values).ljust(40, b"\0")


def get_ifint(ctl: socket.socket, request: int, name: str) -> int:
    """An int-valued SIOCGIF* ioctl (index, MTU, txqueuelen) of interface `name`; OSError ENODEV if absent."""
    value: int = struct.unpack_from("i", fcntl.ioctl(ctl, request, _ifreq(name)), _IFNAMSIZ)[0]
    return value


def set_ifint(ctl: socket.socket, request: int, name: str, value: int) -> None:
    fcntl.ioctl(ctl, request, _ifreq(name, "i", value))


# -- namespaces -------------------------------------------------------------------------------
_libc: ctypes.CDLL | None = None


def setns(fd: int) -> None:
    """Move the calling thread into the network namespace of `fd` (setns(2)); OSError on failure."""
    global _libc  # noqa: PLW0603 - loaded once
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def netns_of(ctl: socket.socket) -> int | None:
    """A new fd for the namespace `ctl` lives in (the caller closes it); None if the kernel can't say."""
    try:
        fd: int = fcntl.ioctl(ctl, _SIOCGSKNS, 0)
    except OSError:
        return None
    return fd


@contextlib.contextmanager
def in_netns(nsfd: int | None) -> Iterator[None]:
    """Run the body with the calling thread in namespace `nsfd` (no switch when it is already there or
    None). Never `await` inside: the loop's other tasks would run in that namespace."""
    if nsfd is None:
        yield
        return
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if os.fstat(home).st_ino == os.fstat(nsfd).st_ino:
            yield
            return
        setns(nsfd)
        try:
            yield
        finally:
            setns(home)
    finally:
        os.close(home)


# -- netlink ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LinkInfo:
    """What RTM_GETLINK says about the kernel interface. `tx_dropped`: frames the kernel could not queue
    toward our reader (its queue of `txqueuelen` frames was full); `rx_dropped`: frames we wrote that it
    dropped."""

    index: int
    mtu: int
    txqueuelen: int
    rx_packets: int
    tx_packets: int
    rx_dropped: int
    tx_dropped: int


class KernelLink:
    """A NETLINK_ROUTE socket in the interface's namespace that asks the kernel about one interface."""

    def __init__(self, name: str, nsfd: int | None) -> None:
        self.name = name
        with in_netns(nsfd):
            self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                       socket.NETLINK_ROUTE)
        self._sock.settimeout(1.0)  # the kernel answers RTM_GETLINK synchronously; this is a backstop
        self._sock.bind((0, 0))
        self._seq = 0

    def query(self) -> LinkInfo | None:
        """The interface's state now, or None when it does not exist (ENODEV)."""
        self._seq += 1
        name = self.name.encode() + b"\0"
        attr = _RTATTR.pack(4 + len(name), _IFLA_IFNAME) + name
        attr += b"\0" * (-len(attr) % 4)
        body = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + attr
        self._sock.send(_NLMSGHDR.pack(16 + len(body), _RTM_GETLINK, _NLM_F_REQUEST, self._seq, 0) + body)
        while True:
            data = self._sock.recv(65536)
            length, kind, _flags, seq, _pid = _NLMSGHDR.unpack_from(data)
            if seq != self._seq:
                continue  # an answer to an earlier, timed-out request
            if kind == _NLMSG_ERROR:
                err = -struct.unpack_from("=i", data, 16)[0]
                if err == errno.ENODEV:
                    return None
                raise OSError(err, f"RTM_GETLINK {self.name}: {os.strerror(err)}")
            if kind != _RTM_NEWLINK:
                raise OSError(errno.EPROTO, f"RTM_GETLINK {self.name}: unexpected message type {kind}")
            return _parse_link(memoryview(data)[:length])

    def close(self) -> None:
        self._sock.close()


def _parse_link(msg: memoryview) -> LinkInfo:
    index = _IFINFOMSG.unpack_from(msg, 16)[2]
    mtu = txqlen = 0
    stats: tuple[int, ...] = (0,) * 8
    off = 32
    while off + 4 <= len(msg):
        alen, atype = _RTATTR.unpack_from(msg, off)
        if alen < 4:
            break
        val = msg[off + 4:off + alen]
        atype &= 0x3FFF  # NLA_F_NESTED / NLA_F_NET_BYTEORDER
        if atype == _IFLA_MTU:
            mtu = struct.unpack_from("=I", val)[0]
        elif atype == _IFLA_TXQLEN:
            txqlen = struct.unpack_from("=I", val)[0]
        elif atype == _IFLA_STATS64 and len(val) >= 64:
            stats = struct.unpack_from("=8Q", val)  # rx/tx packets, rx/tx bytes, rx/tx errors, rx/tx dropped
        off += (alen + 3) & ~3
    return LinkInfo(index, mtu, txqlen, stats[0], stats[1], stats[6], stats[7])
