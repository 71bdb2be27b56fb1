"""The fast answer: an echo request read by a device answered in one call, or declined with nothing changed.

A device that reads a frame into a buffer, maybe behind a framing header of its own (a TAP's virtio_net_hdr),
calls `answer(buf, off, csum_ok)`: the Ethernet frame is `buf[off:]`; `csum_ok` nonzero, the device vouches
for the L4 checksum. `now` comes from the driver's clock, given to `fast_answer` (read for each ICMP frame and
each frame of an answerer's protocol: the core reads no clock of its own). An ICMP echo request or a
datagram for an answerer (`Host.set_answerer`: the UDP echo service) that `Host.receive` would answer on
its fast path gets the same reply here, from the same code (`Icmp.fast_echo`, the answerer), as a copy of
`buf` with the reply frame at `off`; the device writes it whole. The bytes before the frame are the device's
framing, copied as they were, except a virtio_net_hdr (off 10) whose flags vouched for the request's checksum:
zeroed (the reply carries full checksums), or, for a UDP echo of the kernel's NEEDS_CSUM datagram, kept with
the kernel's partial sum for the kernel to finish (`Udp.fast_echo`). Anything else is declined (None) with
no counter, queue or ident changed (at most the route cache consulted), and the device hands the frame to
the driver as usual, so every rule and counter of the general path still applies to it.

Why a second entry beside `Host.receive`: under one-in-flight traffic each echo runs on a cold CPU (the
vCPU halted between echoes), where its cost is the cache lines it touches. Going device -> driver -> host
-> protocol and back touched ~200 more lines per ping than the minimal responder, this path about as many
(`python -m bench.cold`: callgrind's cache simulation, caches flushed between echoes). Its checks are
`Host.receive`'s fast-path rules (issue 10), made by `Icmp.fast_echo` and the answerer themselves, each
from one unpack (Host.receive calls Icmp.fast_echo the same way, before its own checks, and an answerer
after them).
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from tcpip.core.host import _FAST, Host  # Host.receive's unpack, the same one
from tcpip.core.icmp import UNICAST_SRC

__all__ = ["AnswerFn", "FastAnswer", "fast_answer", "plain_unicast"]

# (buffer, offset of the Ethernet frame, csum_ok) -> the buffer to write back, or None: declined
AnswerFn = Callable[[bytes, int, int], "bytearray | None"]

_from = int.from_bytes


def plain_unicast(host: Host, buf: memoryview | bytes, off: int) -> tuple[int, int, int] | None:
    """(IPv4 total length, source, destination) of the datagram in the Ethernet frame at `off` in `buf` if
    Host.receive's fast path takes it: to our MAC and address, from a unicast MAC and host address, IPv4
    with a 20-byte header, not a fragment, its length within the frame and its header checksum verified
    (the same expression as there). None: the usual path decides (and counts). For an answerer
    (`Host.set_answerer`) that does not spell the rules out itself."""
    try:
        dmac, smac0, etv, total, ff, _, src, dst = _FAST.unpack_from(buf, off)
    except struct.error:
        return None
    n = len(buf) - off
    h = host
    if (dst != h._fast_dst or dmac != h.mac or etv >> 8 != 0x080045 or ff & 0x3FFF
            or total + 14 > n or total < 20 or n > h.max_frame or not UNICAST_SRC[src >> 24]
            or src in h._fast_martians or smac0 & 1):
        return None
    if h._verify and ((x := _from(buf[off + 14:off + 34], "big")) % 0xFFFF or not x):
        return None
    return total, src, dst


class FastAnswer:
    """The answer function of a host on the driver's `clock` (see the module docstring), and its parts for a
    device that dispatches itself: `table` (the host's `fast_answers`, never replaced: protocol -> answerer
    `(buf, off, now, csum_ok)`, ICMP's echo and the host's current answerers) and `clock`. A TAP looks the
    protocol byte up in `table` and calls the answerer with `clock()` (`TapDevice.attach_fast`): no call in
    between, ~800 instructions per echo (issue 10)."""

    __slots__ = ("clock", "table")

    def __init__(self, host: Host, clock: Callable[[], float]) -> None:
        self.table = host.fast_answers
        self.clock = clock

    def __call__(self, buf: bytes, off: int, csum_ok: int) -> bytearray | None:
        if len(buf) - off < 42:  # shorter than an ICMP echo or a UDP header behind IPv4's
            return None
        # The protocol byte first: a frame no echo answers (a TCP segment) is declined in two tests. Every
        # answer makes Host.receive's fast-path checks itself, from one unpack.
        if (a := self.table.get(buf[off + 23])) is None:
            return None
        return a(buf, off, self.clock(), csum_ok)


def fast_answer(host: Host, clock: Callable[[], float]) -> FastAnswer:
    """The answer function of `host` on the driver's `clock` (`FastAnswer`). It reads the host's current
    answerers on every call: nothing to rebuild when they change."""
    return FastAnswer(host, clock)
