"""The Internet checksum (RFC 1071) and the IPv4 pseudo-header sum."""

from __future__ import annotations

from collections.abc import Iterable

Buffer = bytes | bytearray | memoryview
_from = int.from_bytes


def ones_sum(data: Buffer) -> int:
    """One's-complement 16-bit sum of `data` (odd length padded with a zero byte), in 0..0xFFFF.

    2**16 == 1 (mod 0xFFFF), so the folded word sum of a big-endian integer is that integer mod 0xFFFF;
    one C-level from_bytes and one modulo beat any per-word loop in CPython.
    """
    if len(data) & 1:
        x = _from(data, "big") << 8
    else:
        x = _from(data, "big")
    s = x % 0xFFFF
    if s == 0 and x:
        return 0xFFFF
    return s


def add(a: int, b: int) -> int:
    """One's-complement addition of two partial sums."""
    s = a + b
    return (s & 0xFFFF) + (s >> 16)


def checksum(data: Buffer, initial: int = 0) -> int:
    """RFC 1071 checksum of `data`, starting from a partial sum (e.g. a pseudo-header)."""
    x = _from(data, "big") << 8 if len(data) & 1 else _from(data, "big")
    s = x % 0xFFFF
    if initial:  # added after the modulo: never a second big-integer operation
        s = (s + initial) % 0xFFFF
        return 0xFFFF - s if s else 0
    return 0xFFFF - s if s or not x else 0  # a sum of 0xFFFF (not all zero) has checksum 0


def checksum_parts(parts: Iterable[Buffer], initial: int = 0) -> int:
    """Checksum over several buffers as if concatenated (parts of any length, odd ones included).

    256**2 == 1 (mod 0xFFFF): a part's value counts times 256 when an odd number of bytes follows it,
    and with the pad byte of an odd total that is exactly when the part ends at an odd offset."""
    s = initial
    end = 0
    nonzero = initial != 0
    for p in parts:
        n = len(p)
        if not n:
            continue
        x = _from(p, "big")
        end += n
        if x:
            nonzero = True
            s += (x % 0xFFFF) << 8 if end & 1 else x % 0xFFFF
    s %= 0xFFFF
    return 0xFFFF - s if s or not nonzero else 0


def verify(data: Buffer, initial: int = 0) -> bool:
    """True when `data` (checksum field included) sums to 0xFFFF (with `initial`)."""
    x = (_from(data, "big") << 8 if len(data) & 1 else _from(data, "big")) + initial
    return not x % 0xFFFF and x != 0


def pseudo_header_sum(src: int, dst: int, proto: int, length: int) -> int:
    """Partial sum of the IPv4 pseudo-header (RFC 768/793) from integer addresses."""
    s = (src >> 16) + (src & 0xFFFF) + (dst >> 16) + (dst & 0xFFFF) + proto + length
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return s
