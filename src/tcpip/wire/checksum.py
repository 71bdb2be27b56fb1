"""The Internet checksum (RFC 1071): whole-buffer checksums, partial sums, incremental update (RFC 1624).

Every checksum in tcpip goes through these helpers. Partial sums are plain non-negative ints: add them
with `+` (or `add`), reduce with `fold`, and turn a sum into the field value with `finish`. All of them
rest on 2**16 == 1 (mod 0xFFFF): the one's-complement sum of a big-endian integer is that integer mod
0xFFFF, except that a non-zero multiple of 0xFFFF folds to 0xFFFF (end-around carry), never to 0.
"""

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


def fold(x: int) -> int:
    """A partial sum (any non-negative int) folded to 16 bits with end-around carry: 0 only for 0."""
    return (x - 1) % 0xFFFF + 1 if x else 0


def addr_sum(address: int) -> int:
    """Partial sum of a 32-bit field (an IPv4 address as an int): its two 16-bit words."""
    return (address >> 16) + (address & 0xFFFF)


def finish(x: int) -> int:
    """The checksum field for a partial sum `x` (any non-negative int): ~fold(x). A sum that folds to
    0xFFFF gives 0 (UDP, which reserves 0 for "no checksum", sends `finish(x) or 0xFFFF`)."""
    return 0xFFFE - (x - 1) % 0xFFFF if x else 0xFFFF  # fold inlined: this runs per datagram


def update(checksum: int, old: int, new: int) -> int:
    """RFC 1624 eqn 3, HC' = ~(~HC + ~m + m'): the checksum after a 16-bit word changes from `old` to
    `new`, without a pass over the data. (For a message whose every other word is 0 this may give 0 where
    a full computation gives 0xFFFF; both verify. ICMP echo replies use `update(...) or 0xFFFF`.)"""
    c = (~checksum & 0xFFFF) + (~old & 0xFFFF) + new
    c = (c & 0xFFFF) + (c >> 16)
    c = (c & 0xFFFF) + (c >> 16)
    return ~c & 0xFFFF


def echo_reply_checksum(request_checksum: int) -> int:
    """The ICMP checksum once type 8 (echo request) becomes 0 (reply): `update(c, 0x0800, 0)` in one step,
    never 0x0000 (eqn 3 gives 0 for an all-zero reply, whose only valid checksum is 0xFFFF; for any other
    message both forms verify)."""
    c = (~request_checksum & 0xFFFF) + 0xF7FF
    c = (c & 0xFFFF) + (c >> 16)
    return (~c & 0xFFFF) or 0xFFFF


def update32(checksum: int, old: int, new: int) -> int:
    """`update` for a 32-bit field (an address or a sequence number): both of its words."""
    return update(update(checksum, old >> 16, new >> 16), old & 0xFFFF, new & 0xFFFF)


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


def ipv4_header_checksum(total: int, ident: int, flags_frag: int, ttl: int, proto: int, src: int, dst: int) -> int:
    """The checksum of a 20-byte IPv4 header (version 4, IHL 5, TOS 0) from its fields' words: no pass
    over packed bytes."""
    x = (0x4500 + total + ident + flags_frag + (ttl << 8 | proto) + (src >> 16) + (src & 0xFFFF) + (dst >> 16)
         + (dst & 0xFFFF))
    return 0xFFFE - (x - 1) % 0xFFFF  # finish(x) inlined (x > 0): this runs per datagram


def pseudo_header_sum(src: int, dst: int, proto: int, length: int) -> int:
    """Partial sum of the IPv4 pseudo-header (RFC 768/793) from integer addresses."""
    s = (src >> 16) + (src & 0xFFFF) + (dst >> 16) + (dst & 0xFFFF) + proto + length
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return s
