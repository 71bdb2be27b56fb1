"""IPv4 fragmentation (RFC 791): split one datagram into zero-copy fragments that fit an MTU."""

from __future__ import annotations

import struct
from collections.abc import Sequence

from tcpip.errors import MessageTooLongError, WouldFragmentError
from tcpip.wire.ipv4 import FLAG_DF, FLAG_MF, HEADER_LEN, MAX_LEN, OFFSET_MASK, fill_checksum

Buffer = bytes | bytearray | memoryview
MIN_MTU = 68  # RFC 791: every host must forward 68 bytes without further fragmentation
_U16 = struct.Struct("!H")


def copied_options(options: Buffer) -> bytes:
    """The options of a non-first fragment: those with the copied flag (0x80), padded to 4 bytes."""
    out = bytearray()
    i, n = 0, len(options)
    while i < n:
        t = options[i]
        if t == 0:  # end of option list
            break
        if t == 1:  # no-operation: not copied
            i += 1
            continue
        if i + 1 >= n or options[i + 1] < 2 or i + options[i + 1] > n:
            raise ValueError(f"malformed IPv4 option at byte {i}")
        ln = options[i + 1]
        if t & 0x80:
            out += options[i:i + ln]
        i += ln
    out += bytes(-len(out) % 4)  # end-of-list padding
    return bytes(out)


def _rooms(header: Buffer, mtu: int) -> tuple[int, int, bytes]:
    """Data bytes per first / later fragment and the later fragments' options."""
    if mtu < MIN_MTU:
        raise ValueError(f"mtu {mtu} < {MIN_MTU}")
    hl = (header[0] & 15) << 2
    opts = copied_options(memoryview(header)[HEADER_LEN:hl])
    first = (min(mtu, MAX_LEN) - hl) & ~7
    later = (min(mtu, MAX_LEN) - HEADER_LEN - len(opts)) & ~7
    if first < 8:
        raise ValueError(f"a {hl}-byte header leaves no room for 8 data bytes in mtu {mtu}")
    return first, later, opts


def fragment_count(header: Buffer, payload_len: int, mtu: int) -> int:
    """How many fragments fragment() returns for `payload_len` bytes, without building them."""
    hl = (header[0] & 15) << 2
    if hl + payload_len <= mtu:
        return 1
    first, later, _ = _rooms(header, mtu)
    return 1 + -(-(payload_len - first) // later)


def fragment(header: Buffer, payload: Sequence[Buffer], mtu: int) -> list[list[Buffer]]:  # noqa: PLR0915 - one pass, kept flat for speed
    """Split a datagram into fragments of at most `mtu` bytes: per fragment [header, *payload views].

    `header` is the datagram's header (IHL*4 bytes, ident set; total length and checksum are fixed here).
    Payload parts are sliced as memoryviews, never copied. Fragmenting a fragment keeps its offset and
    MF. Raises ValueError (mtu < 68, bad header or options), WouldFragmentError (DF set and too big),
    MessageTooLongError (beyond what IPv4 offsets and lengths can express).
    """
    hl = (header[0] & 15) << 2
    if hl < HEADER_LEN or len(header) < hl:
        raise ValueError(f"IPv4 header of {len(header)} bytes with IHL {hl // 4}")
    views: list[memoryview] = []
    for p in payload:
        v = memoryview(p)
        if v.itemsize != 1 or v.ndim != 1:
            v = v.cast("B")
        if v.nbytes:
            views.append(v)
    plen = sum(map(len, views))
    ff = _U16.unpack_from(header, 6)[0]
    base = (ff & OFFSET_MASK) << 3
    if base + hl + plen > MAX_LEN:
        raise MessageTooLongError(f"offset {base} + {hl + plen} bytes exceeds {MAX_LEN}")

    if hl + plen <= mtu:
        h = bytearray(header[:hl])
        _U16.pack_into(h, 2, hl + plen)
        fill_checksum(h)
        return [[bytes(h), *payload]]
    if ff & FLAG_DF:
        raise WouldFragmentError(f"{hl + plen} bytes with DF set exceed mtu {mtu}")

    first, later, opts = _rooms(header, mtu)
    later_hdr = bytearray(header[:HEADER_LEN])
    later_hdr[0] = 0x40 | ((HEADER_LEN + len(opts)) >> 2)
    later_hdr += opts
    flags = ff & ~OFFSET_MASK & 0xFFFF  # keeps MF of a fragment being refragmented, and reserved bit
    tmpl = bytearray(header[:hl])
    room = first
    frags: list[list[Buffer]] = []
    pi = po = pos = 0  # part index, offset in that part, offset in the payload
    while pos < plen:
        size = min(room, plen - pos)
        h = bytearray(tmpl)
        more = FLAG_MF if pos + size < plen else 0
        _U16.pack_into(h, 2, len(h) + size)
        _U16.pack_into(h, 6, flags | more | ((base + pos) >> 3))
        fill_checksum(h)
        frag: list[Buffer] = [bytes(h)]
        need = size
        while need:
            v = views[pi]
            take = min(len(v) - po, need)
            frag.append(v[po:po + take])
            po += take
            need -= take
            if po == len(v):
                pi += 1
                po = 0
        frags.append(frag)
        pos += size
        room = later
        tmpl = later_hdr
    return frags
