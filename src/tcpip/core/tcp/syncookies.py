"""SYN cookies (RFC 4987 3.6): a stateless SYN-ACK when the half-open table is full, and its validation.

The cookie is our ISS: bits 31-30 a coarse time counter (COOKIE_PERIOD-second ticks, modulo 4), bits
29-28 an index into MSS_TABLE (the largest entry not above the peer's MSS), bits 27-0 a keyed BLAKE2b MAC
over the 4-tuple, the peer's ISN, the full counter and the MSS index. The ACK completing the handshake
acknowledges cookie + 1; the cookie is valid for COOKIE_MAX_AGE ticks (the current one and the one before).

As Linux does, the peer's window scale (4 bits, 0xF = none) and SACK-permitted (1 bit) ride in the low
6 bits of our TSval on the SYN-ACK, and come back in the ACK's TSecr; without timestamps neither option
is offered (the SYN-ACK carries only the MSS).
"""

from __future__ import annotations

import hashlib
import struct

from tcpip.core.tcp.seq import MASK, seq_gt

MSS_TABLE = (536, 1300, 1440, 1460)  # Linux msstab (IPv4): the common MSS values
COOKIE_PERIOD = 64.0  # seconds per counter tick
COOKIE_MAX_AGE = 2  # ticks: a cookie is valid for 64 to 128 s
TS_BITS = 6
_TS_MASK = (1 << TS_BITS) - 1
_WS_NONE = 0xF
_SACK_BIT = 0x10
_MAC_BITS = 28
_MAC = struct.Struct("!IHIHIIB")
_TUPLE = struct.Struct("!IHIH")


class SynCookies:
    """Make and check cookies with a secret of the layer (keyed hashing; no state per SYN)."""

    __slots__ = ("_mac", "_ts")

    def __init__(self, secret: bytes) -> None:
        key = hashlib.blake2b(secret, person=b"tcpip-syncookie").digest()
        self._mac = hashlib.blake2b(key=key, digest_size=4)
        self._ts = hashlib.blake2b(key=key, digest_size=4, person=b"ts-offset")

    def _tag(self, src: int, sport: int, dst: int, dport: int, peer_isn: int, count: int, idx: int) -> int:
        h = self._mac.copy()
        h.update(_MAC.pack(src, sport, dst, dport, peer_isn, count & MASK, idx))
        return int.from_bytes(h.digest(), "big") >> (32 - _MAC_BITS)

    def make(self, src: int, sport: int, dst: int, dport: int, peer_isn: int, peer_mss: int,
             now: float) -> tuple[int, int]:
        """(cookie, the MSS it encodes) for a SYN from (dst, dport) to our (src, sport)."""
        idx = 0
        for i, m in enumerate(MSS_TABLE):
            if m <= peer_mss:
                idx = i
        count = int(now // COOKIE_PERIOD)
        tag = self._tag(src, sport, dst, dport, peer_isn, count, idx)
        return ((count & 3) << 30) | (idx << _MAC_BITS) | tag, MSS_TABLE[idx]

    def check(self, src: int, sport: int, dst: int, dport: int, peer_isn: int, cookie: int,
              now: float) -> int | None:
        """The MSS a valid, unexpired cookie encodes; None for a forged, stale or mistyped one."""
        count_now = int(now // COOKIE_PERIOD)
        low = cookie >> 30
        idx = (cookie >> _MAC_BITS) & 3
        age = (count_now - low) & 3
        if age >= COOKIE_MAX_AGE:
            return None
        count = count_now - age
        if self._tag(src, sport, dst, dport, peer_isn, count, idx) != cookie & ((1 << _MAC_BITS) - 1):
            return None
        return MSS_TABLE[idx]

    def ts_offset(self, src: int, sport: int, dst: int, dport: int) -> int:
        """The TSval offset of a cookie connection: derived, not random, since no state is kept."""
        h = self._ts.copy()
        h.update(_TUPLE.pack(src, sport, dst, dport))
        return int.from_bytes(h.digest(), "big")


def encode_ts(tsval: int, wscale: int | None, sack: bool) -> int:
    """Our SYN-ACK TSval carrying the peer's options in its low bits, never ahead of the clock."""
    ts = (tsval & ~_TS_MASK & MASK) | (_WS_NONE if wscale is None else wscale) | (_SACK_BIT if sack else 0)
    if seq_gt(ts, tsval):
        ts = (ts - (1 << TS_BITS)) & MASK
    return ts


def decode_ts(tsecr: int) -> tuple[int | None, bool]:
    """(peer window scale or None, SACK permitted) from the TSecr of the cookie's ACK."""
    ws = tsecr & _WS_NONE
    return (None if ws == _WS_NONE else min(ws, 14)), bool(tsecr & _SACK_BIT)
