"""Helpers shared by the test modules: address conversions, a reference RFC 1071 checksum written out
word by word, independently of tcpip's own (an oracle must not share the code it checks), and the one way
tests build a bare sans-I/O host and read what it sent or learnt (`make_iface`, `sent`, `neighbours`)."""

from __future__ import annotations

import asyncio
import hashlib
import random
import socket
import struct
from collections.abc import Callable, Mapping, Sequence
from ipaddress import IPv4Address
from typing import Any

from tcpip.core.arp import ArpEntry
from tcpip.core.config import InterfaceConfig
from tcpip.core.interface import Interface
from tcpip.wire.mac import MacAddress


def ip_int(s: str) -> int:
    return int(IPv4Address(s))


def mac_bytes(s: str) -> bytes:
    return MacAddress(s).packed


def ref_ones_sum(data: bytes) -> int:
    """One's-complement sum of 16-bit words, odd length padded with a zero byte."""
    if len(data) & 1:
        data += b"\x00"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def csum(data: bytes) -> int:
    """The Internet checksum of `data` (RFC 1071), the reference way."""
    return ~ref_ones_sum(data) & 0xFFFF


async def settle(cond: Callable[[], bool] | None = None, rounds: int = 500) -> None:
    """Let the loop deliver hub frames (each hop is one call_soon): until `cond()` holds, or `rounds`
    iterations; asserts the condition was reached."""
    for _ in range(rounds):
        if cond is not None and cond():
            return
        await asyncio.sleep(0)
    if cond is not None:
        assert cond(), "condition not reached"


class Recorder(asyncio.DatagramProtocol):
    """A datagram protocol that keeps what it receives and the errors it is given."""

    def __init__(self) -> None:
        self.got: list[tuple[bytes, tuple[str, int]]] = []
        self.errors: list[Exception] = []

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.got.append((data, addr))

    def error_received(self, exc: Exception) -> None:
        self.errors.append(exc)


# -- a bare sans-I/O host, and what it sent and learnt ---------------------------------------------
def make_iface(*, mac: str = "02:00:00:00:00:02", address: str = "198.18.0.2", netmask: int = 0xFFFFFF00,
               gateways: Sequence[str] = (), static: Mapping[str, str] | None = None, seed: int = 1,
               **config: Any) -> Interface:
    """A host (default 198.18.0.2/24 at 02:00:00:00:00:02) built the way the stack builds one; `static`
    neighbours (ip -> mac) are added, and whatever the set-up queued is dropped."""
    cfg = InterfaceConfig(mac=MacAddress(mac), address=ip_int(address), netmask=netmask,
                          gateways=[ip_int(g) for g in gateways], **config)
    iface = Interface(cfg, now=0.0, rng=random.Random(seed))
    for ip, m in (static or {}).items():
        iface.arp.add_static(ip_int(ip), mac_bytes(m))
    iface.poll_transmit()
    return iface


def sent(iface: Interface) -> list[bytes]:
    """The frames the host queued since the last call, oldest first, each joined into bytes (this drains
    `poll_transmit()`: a second call returns only what was queued in between)."""
    return [b"".join(bytes(p) for p in f) for f in iface.poll_transmit()]


def queued(iface: Interface) -> int:
    """How many frames the host has queued (nothing is drained)."""
    return len(iface.tx)


def neighbours(iface: Interface) -> dict[int, ArpEntry]:
    """The neighbour table by IP (ints), resolved and pending entries alike (a copy)."""
    return dict(iface.arp.entries)


def neighbour(iface: Interface, ip: str | int) -> ArpEntry | None:
    """The neighbour entry for `ip`, if any."""
    return iface.arp.entries.get(ip if isinstance(ip, int) else ip_int(ip))


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes, *,
               chunk: int = 65536, read_size: int = 65536) -> tuple[int, str]:
    """Send `data` in `chunk` writes (each drained) then half-close, while reading until the peer's EOF:
    (bytes received, their sha256)."""
    async def send() -> None:
        for i in range(0, len(data), chunk):
            writer.write(data[i:i + chunk])
            await writer.drain()
        writer.write_eof()

    async def receive() -> tuple[int, str]:
        h, n = hashlib.sha256(), 0
        while piece := await reader.read(read_size):
            h.update(piece)
            n += len(piece)
        return n, h.hexdigest()

    return (await asyncio.gather(send(), receive()))[1]


async def sockpair_stack(offload: bool, *, mac: bytes = bytes.fromhex("020000000002"),
                         peer_ip: str = "198.18.0.1", peer_mac: bytes = bytes.fromhex("020000000001"),
                         ) -> tuple[Any, Any, socket.socket, list[int]]:
    """A Stack (198.18.0.2/24, `peer_ip` static at `peer_mac`) on a TapDevice whose fd is one end of an
    AF_UNIX datagram socketpair: (stack, device, the other end (non-blocking), [transmit calls so far])."""
    from tcpip.netif.tap import TapDevice
    from tcpip.stack import Stack

    ours, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    ours.setblocking(False)
    peer.setblocking(False)
    dev = TapDevice(ours.detach(), "sockpair", mac=MacAddress(mac), loop=asyncio.get_running_loop(),
                    offload=offload)
    transmits = [0]
    inner = dev.transmit

    def counting(parts: Any) -> None:
        transmits[0] += 1
        inner(parts)

    dev.transmit = counting  # type: ignore[method-assign]
    stack = await Stack.connect(dev, ipv4="198.18.0.2/24")
    stack.core.arp.add_static(ip_int(peer_ip), peer_mac)
    return stack, dev, peer, transmits


class SockPeer:
    """The far end of `sockpair_stack`'s socketpair: frames out with `hdr` (a virtio header, or none) before
    each, frames in checked to start with that header and returned past it. In offload mode a reply may
    instead keep a UDP request's NEEDS_CSUM header (`Udp.fast_echo`): its checksum is finished, as the
    kernel does, and counted in `partial`."""

    def __init__(self, sock: socket.socket, hdr: bytes = b"") -> None:
        self.sock = sock
        self.hdr = hdr
        self.partial = 0
        sock.setblocking(False)

    def send(self, frame: bytes) -> None:
        self.sock.send(self.hdr + frame)

    def drain(self) -> list[bytes]:
        out = []
        n = len(self.hdr)
        while True:
            try:
                f = self.sock.recv(65600)
            except BlockingIOError:
                return out
            if n and f[:n] != self.hdr:
                # only a UDP echo's kept partial sum: NEEDS_CSUM at UDP's checksum, never a super-frame
                assert struct.unpack_from("<BBHHHH", f) == (1, 0, 0, 0, 34, 6), f[:n].hex()
                self.partial += 1
                r = (int.from_bytes(f[n + 34:], "big") << (8 if (len(f) - n) & 1 else 0)) % 0xFFFF
                c = 0xFFFF - r if r else 0xFFFF  # a zero checksum goes out as 0xFFFF (RFC 768)
                f = f[:n + 40] + c.to_bytes(2, "big") + f[n + 42:]
            out.append(f[n:])

    async def recv(self, n: int) -> list[bytes]:
        got: list[bytes] = []
        for _ in range(600):
            await asyncio.sleep(0)
            got += self.drain()
            if len(got) >= n:
                return got
        raise AssertionError(f"{len(got)} of {n} replies")
