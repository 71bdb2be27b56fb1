"""Modular 32-bit TCP sequence-number arithmetic (RFC 9293 3.4): every sequence comparison goes through it.

Comparisons follow Linux's before()/after(): `a` precedes `b` when the signed 32-bit difference a - b is
negative. Two numbers exactly 2**31 apart each "precede" the other; windows never get that large.
"""

from __future__ import annotations

MOD = 1 << 32
MASK = MOD - 1
HALF = 1 << 31


def seq_lt(a: int, b: int) -> bool:
    """a < b modulo 2**32."""
    return ((a - b) & MASK) >= HALF


def seq_le(a: int, b: int) -> bool:
    """a <= b modulo 2**32."""
    d = (a - b) & MASK
    return d == 0 or d >= HALF


def seq_gt(a: int, b: int) -> bool:
    """a > b modulo 2**32."""
    return ((b - a) & MASK) >= HALF


def seq_ge(a: int, b: int) -> bool:
    """a >= b modulo 2**32."""
    d = (b - a) & MASK
    return d == 0 or d >= HALF


def seq_add(a: int, n: int) -> int:
    """a + n wrapped to 32 bits (n may be negative)."""
    return (a + n) & MASK


def seq_sub(a: int, b: int) -> int:
    """Signed distance a - b, in -2**31 .. 2**31 - 1."""
    return ((a - b + HALF) & MASK) - HALF


def seq_in(x: int, lo: int, hi: int) -> bool:
    """lo <= x < hi modulo 2**32 (empty when lo == hi): x's offset from lo is below the range's length."""
    return ((x - lo) & MASK) < ((hi - lo) & MASK)


def seq_max(a: int, b: int) -> int:
    """The later of a and b."""
    return b if ((a - b) & MASK) >= HALF else a


def seq_min(a: int, b: int) -> int:
    """The earlier of a and b."""
    return a if ((a - b) & MASK) >= HALF else b
