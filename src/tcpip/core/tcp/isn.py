"""Initial sequence numbers (RFC 6528) and ephemeral local ports (RFC 6056 simple randomization)."""

from __future__ import annotations

import hashlib
import random
import struct
from collections.abc import Callable

EPHEMERAL_LOW = 32768    # Linux net.ipv4.ip_local_port_range
EPHEMERAL_HIGH = 60999
TICKS_PER_SECOND = 250_000  # RFC 6528: M is a timer that ticks every 4 microseconds

_TUPLE = struct.Struct("!IHIH")


class IsnGenerator:
    """ISN = (M + F(local addr, local port, remote addr, remote port, secret)) mod 2**32.

    F is keyed BLAKE2b truncated to 32 bits, so ISNs of different connections are unpredictable to an
    off-path attacker, while one 4-tuple's ISNs keep increasing with the clock (old duplicates of an
    earlier incarnation fall behind the new sequence space)."""

    __slots__ = ("_keyed",)

    def __init__(self, secret: bytes) -> None:
        if not secret:
            raise ValueError("the ISN secret must not be empty")
        if len(secret) > hashlib.blake2b.MAX_KEY_SIZE:
            secret = hashlib.blake2b(secret).digest()
        self._keyed = hashlib.blake2b(key=secret, digest_size=4)

    def offset(self, src: int, sport: int, dst: int, dport: int) -> int:
        """F(4-tuple, secret): the per-connection part of the ISN."""
        h = self._keyed.copy()
        h.update(_TUPLE.pack(src, sport, dst, dport))
        return int.from_bytes(h.digest(), "big")

    def isn(self, src: int, sport: int, dst: int, dport: int, now: float) -> int:
        """ISN for a connection from our (src, sport) to (dst, dport) at monotonic time `now` (seconds)."""
        return (int(now * TICKS_PER_SECOND) + self.offset(src, sport, dst, dport)) & 0xFFFFFFFF


def ephemeral_port(src: int, dst: int, dport: int, rng: random.Random,
                   in_use: Callable[[int], bool]) -> int | None:
    """A local port in 32768..60999 for which `in_use(port)` is false, or None when every one is taken.

    RFC 6056 algorithm 1: start at a random port and step through the range from there."""
    count = EPHEMERAL_HIGH - EPHEMERAL_LOW + 1
    start = rng.randrange(count)
    for i in range(count):
        port = EPHEMERAL_LOW + (start + i) % count
        if not in_use(port):
            return port
    return None
