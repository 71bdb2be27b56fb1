"""Host.send's common case in one call: a burst of datagrams to one destination (a TCP run of full segments),
or one datagram of one buffer (a pure ACK)."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tcpip.core.host import Host

Buffer = bytes | bytearray | memoryview
_IPV4 = struct.Struct("!BBHHHHHII")  # version/IHL, TOS, length, ident, flags+fragment, TTL+protocol, checksum, src, dst


def send_run(host: Host, dst: int, proto: int, segs: Sequence[tuple[Buffer, Buffer]], now: float,
             src: int | None = None) -> bool:
    """`host.send(dst, proto, (header, payload), now, src=src)` for each pair, when all take its common case
    (resolved neighbour, no PMTU entries, each fits the MTU): one path lookup, one ident allocation, the
    IPv4 headers built in one loop. False: nothing sent (the caller sends them one by one)."""
    routing = host.routing
    path = routing.path(dst, now)
    if path is None or routing.pmtu or not segs:
        return False
    ids = host.idents.idents
    v = ids.get(dst)
    if v is None:  # a new destination: its random start first (rare), then the loop below as for any other
        v = (host.idents.next(dst) - 1) & 0xFFFF
        ids[dst] = v  # (next's eviction and rng draw stay; the run takes its idents from v + 1 on)
    mtu = host.config.mtu
    a = path.src if src is None else src
    t = host.config.ttl << 8 | proto
    # Host.send's common case per datagram (DF clear, TOS 0): the checksum from the fields; ident and total
    # are summed whole (a 16-bit value), the addresses too (a 32-bit value's words sum to it mod 0xFFFF).
    # Sizes are checked in the loop: on a datagram Host.send would not take this way, the frames added
    # are taken back and nothing is counted (the idents are stored only after the loop).
    base = 0x4500 + t + a + dst - 1
    eth, pack, tx = path.eth, _IPV4.pack, host.tx
    add = tx.append
    n0 = len(tx)
    ident = v
    for h, p in segs:
        ident = (ident + 1) & 0xFFFF
        total = 20 + len(h) + len(p)
        if total > mtu or total < 46:
            del tx[n0:]
            return False
        add((eth, pack(0x45, 0, total, ident, 0, t, 0xFFFE - (base + total + ident) % 0xFFFF, a, dst), h, p))
    ids[dst] = ident
    k = len(segs)
    host.ip_stats.tx_packets += k
    host.eth_stats.tx_frames += k
    return True


def send_one(host: Host, dst: int, proto: int, data: Buffer, now: float, src: int | None) -> bool:
    """`host.send(dst, proto, (data,), now, src=src)` when it takes its common case (resolved neighbour, no PMTU
    entries, no padding, fits the MTU): the same frame, without the parts loop and the keyword arguments.
    False: nothing sent (the caller uses host.send)."""
    total = 20 + len(data)
    routing = host.routing
    path = routing.path(dst, now)
    if path is None or routing.pmtu or total > host.config.mtu or total < 46:
        return False
    a = path.src if src is None else src
    ident = host.idents.next(dst)
    t = host.config.ttl << 8 | proto
    x = 0x4500 + total + ident + t + a + dst  # a 32-bit address's two words sum to itself mod 0xFFFF
    host.ip_stats.tx_packets += 1
    host.eth_stats.tx_frames += 1
    host.tx.append((path.eth, _IPV4.pack(0x45, 0, total, ident, 0, t, 0xFFFE - (x - 1) % 0xFFFF, a, dst), data))
    return True
