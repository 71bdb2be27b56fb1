"""TCP header (RFC 9293) with its options (MSS, window scale, SACK, timestamps): parse, emit, checksum.

Options are parsed like Linux's tcp_parse_options: a malformed option (length < 2 or running past the
header) ends option parsing and the segment keeps the options seen so far; a known option with the wrong
length is ignored; unknown options are skipped; EOL ends the list. The wire layer takes every option on
every segment: which options count on which segments (MSS only on SYN, ...) is the core's decision.
Options are emitted in Linux's order and NOP alignment (tcp_options_write), so headers are byte-identical.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from tcpip.errors import BadLength, Truncated
from tcpip.wire import checksum as ck

Buffer = bytes | bytearray | memoryview

FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80
PROTO = 6
HEADER_LEN = 20
MAX_HEADER_LEN = 60

OPT_EOL, OPT_NOP, OPT_MSS, OPT_WS, OPT_SACK_PERM, OPT_SACK, OPT_TS = 0, 1, 2, 3, 4, 5, 8

HDR = struct.Struct("!HHIIBBHHH")
# the common data segment: fixed header + NOP,NOP,TS in one pack/unpack
_HDR_TS = struct.Struct("!HHIIBBHHHBBBBII")
_TS_BODY = struct.Struct("!II")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_MSS = struct.Struct("!BBH")
_SACKPERM_TS = struct.Struct("!BBBBII")  # SACK_PERM,2,TS,10 (SYN layout) and NOP,NOP,TS,10 (data layout)
_NOP_WS = struct.Struct("!BBBB")
_SACK_EDGES = [struct.Struct("!" + "I" * (2 * n)) for n in range(5)]
_NOPNOP_SACKPERM = b"\x01\x01\x04\x02"


def _flags_str(flags: int) -> str:
    return "".join(c for c, b in zip("FSRPAUEC", (FIN, SYN, RST, PSH, ACK, URG, ECE, CWR), strict=True) if flags & b)


@dataclass(slots=True)
class TcpRepr:
    """A parsed TCP header; `window` is the raw 16-bit field, `wscale` the raw shift as received."""

    src_port: int
    dst_port: int
    seq: int
    ack: int
    flags: int
    window: int
    urgent: int = 0
    mss: int | None = None
    wscale: int | None = None
    sack_permitted: bool = False
    sack: tuple[tuple[int, int], ...] = ()
    timestamp: tuple[int, int] | None = None

    def options_len(self) -> int:
        """Bytes of options emit() writes (always a multiple of 4)."""
        n = 0
        if self.mss is not None:
            n += 4
        if self.timestamp is not None:
            n += 12  # SACK_PERM rides in the TS word's NOPs when both are present
        elif self.sack_permitted:
            n += 4
        if self.wscale is not None:
            n += 4
        if self.sack:
            n += 4 + 8 * len(self.sack)
        return n

    def header_len(self) -> int:
        """20 + options (at most 60); ValueError when the options do not fit 40 bytes."""
        if self.mss is None and self.wscale is None and not self.sack and not self.sack_permitted:
            return 32 if self.timestamp is not None else 20
        n = 20 + self.options_len()
        if n > MAX_HEADER_LEN:
            raise ValueError(f"TCP options need {n - 20} bytes, at most 40 fit (too many SACK blocks?)")
        return n

    buffer_len = header_len

    def emit(self, buf: bytearray | memoryview, offset: int = 0) -> int:
        """Write the header at `offset` with the checksum field 0 (see fill_checksum); returns its length."""
        ts = self.timestamp
        if self.mss is None and self.wscale is None and not self.sack and not self.sack_permitted:
            if ts is None:
                HDR.pack_into(buf, offset, self.src_port, self.dst_port, self.seq, self.ack, 0x50,
                              self.flags, self.window, 0, self.urgent)
                return 20
            _HDR_TS.pack_into(buf, offset, self.src_port, self.dst_port, self.seq, self.ack, 0x80,
                              self.flags, self.window, 0, self.urgent, 1, 1, OPT_TS, 10, ts[0], ts[1])
            return 32
        hl = self.header_len()
        HDR.pack_into(buf, offset, self.src_port, self.dst_port, self.seq, self.ack, hl << 2,
                      self.flags, self.window, 0, self.urgent)
        p = offset + 20
        if self.mss is not None:
            _MSS.pack_into(buf, p, OPT_MSS, 4, self.mss)
            p += 4
        if ts is not None:
            if self.sack_permitted:
                _SACKPERM_TS.pack_into(buf, p, OPT_SACK_PERM, 2, OPT_TS, 10, ts[0], ts[1])
            else:
                _SACKPERM_TS.pack_into(buf, p, OPT_NOP, OPT_NOP, OPT_TS, 10, ts[0], ts[1])
            p += 12
        elif self.sack_permitted:
            buf[p:p + 4] = _NOPNOP_SACKPERM
            p += 4
        if self.wscale is not None:
            _NOP_WS.pack_into(buf, p, OPT_NOP, OPT_WS, 3, self.wscale)
            p += 4
        if self.sack:
            n = len(self.sack)
            _NOP_WS.pack_into(buf, p, OPT_NOP, OPT_NOP, OPT_SACK, 2 + 8 * n)
            _SACK_EDGES[n].pack_into(buf, p + 4, *(e for block in self.sack for e in block))
        return hl

    @classmethod
    def parse(cls, segment: Buffer) -> tuple[TcpRepr, memoryview]:
        """(header, payload view) of a TCP segment (the whole IP payload; checksum not checked here).

        Raises Truncated when shorter than 20 bytes or than the data offset says, BadLength when the data
        offset is below 5. Pass a memoryview for a zero-copy payload."""
        if not isinstance(segment, memoryview):
            segment = memoryview(segment)
        n = len(segment)
        if n < 20:
            raise Truncated("tcp", f"{n} bytes, header needs 20")
        off = segment[12] >> 4
        if off == 5:
            sp, dp, seq, ack, _, flags, win, _, urg = HDR.unpack_from(segment, 0)
            return cls(sp, dp, seq, ack, flags, win, urg), segment[20:]
        hl = off << 2
        if off < 5:
            raise BadLength("tcp", f"data offset {off} < 5")
        if hl > n:
            raise Truncated("tcp", f"data offset says {hl} bytes, segment has {n}")
        if hl == 32:
            sp, dp, seq, ack, _, flags, win, _, urg, o1, o2, o3, o4, tsv, tse = _HDR_TS.unpack_from(segment, 0)
            if o1 == 1 and o2 == 1 and o3 == OPT_TS and o4 == 10:
                return cls(sp, dp, seq, ack, flags, win, urg, timestamp=(tsv, tse)), segment[32:]
        sp, dp, seq, ack, _, flags, win, _, urg = HDR.unpack_from(segment, 0)
        r = cls(sp, dp, seq, ack, flags, win, urg)
        _parse_options(r, segment, hl)
        return r, segment[hl:]

    def __str__(self) -> str:
        return (f"tcp {self.src_port} > {self.dst_port} [{_flags_str(self.flags)}] seq {self.seq} "
                f"ack {self.ack} win {self.window}")


def _parse_options(r: TcpRepr, seg: memoryview, end: int) -> None:
    """Fill r's option fields from seg[20:end], Linux tcp_parse_options style."""
    p = 20
    while p < end:
        kind = seg[p]
        if kind == OPT_EOL:
            return
        if kind == OPT_NOP:
            p += 1
            continue
        if p + 1 >= end:
            return  # a kind byte without its length
        size = seg[p + 1]
        if size < 2 or p + size > end:
            return  # silly or partial option: stop parsing, keep what was seen
        if kind == OPT_TS:
            if size == 10:
                r.timestamp = _TS_BODY.unpack_from(seg, p + 2)
        elif kind == OPT_MSS:
            if size == 4:
                r.mss = _U16.unpack_from(seg, p + 2)[0]
        elif kind == OPT_WS:
            if size == 3:
                r.wscale = seg[p + 2]
        elif kind == OPT_SACK_PERM:
            if size == 2:
                r.sack_permitted = True
        elif kind == OPT_SACK:
            if size >= 10 and (size - 2) % 8 == 0:
                e = _SACK_EDGES[(size - 2) >> 3].unpack_from(seg, p + 2)
                r.sack = tuple(zip(e[0::2], e[1::2], strict=True))
        p += size


def checksum(src: int, dst: int, segment_parts: Sequence[Buffer]) -> int:
    """TCP checksum over the pseudo-header and the segment given as parts (checksum field zero)."""
    length = 0
    for part in segment_parts:
        length += len(part)
    return ck.checksum_parts(segment_parts, ck.pseudo_header_sum(src, dst, PROTO, length))


def fill_checksum(header: bytearray | memoryview, src: int, dst: int, payload: Buffer) -> None:
    """Compute the checksum of header + payload and store it in header[16:18] (whatever was there)."""
    header[16] = 0
    header[17] = 0
    c = ck.checksum_parts((header, payload), ck.pseudo_header_sum(src, dst, PROTO, len(header) + len(payload)))
    header[16] = c >> 8
    header[17] = c & 0xFF


def verify(segment: Buffer, src: int, dst: int) -> bool:
    """True when the segment's checksum is right for the src -> dst pseudo-header."""
    return ck.verify(segment, ck.pseudo_header_sum(src, dst, PROTO, len(segment)))
