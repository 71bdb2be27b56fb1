"""DNS messages (RFC 1035) for a stub resolver: header, questions, A and CNAME answers, EDNS0 OPT (RFC 6891).

Names are `str`: labels joined by ".", no trailing dot, case kept (compare with `name_key`); a label byte that is
not printable ASCII, or is "." or "\\", is written as a decimal escape `\\DDD` (RFC 1035 5.1). Records of other
types are validated (owner name, lengths) and skipped; `skipped` counts them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from tcpip.errors import BadLength, BadName, BadOption, PointerLoop, Truncated

Buffer = bytes | bytearray | memoryview

PORT = 53
HEADER_LEN = 12
EDNS_PAYLOAD = 1232  # RFC 6891 payload size recommended by DNS flag day 2020: fits any path MTU of 1280
MAX_LABEL = 63
MAX_NAME = 255  # wire length, length bytes and the root label included
_HDR = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")  # type class ttl rdlength
_QQ = struct.Struct("!HH")

QR = 0x8000
AA = 0x0400
TC = 0x0200
RD = 0x0100
RA = 0x0080


class Rcode(IntEnum):
    NOERROR = 0
    FORMERR = 1
    SERVFAIL = 2
    NXDOMAIN = 3
    NOTIMP = 4
    REFUSED = 5


class RType(IntEnum):
    A = 1
    NS = 2
    CNAME = 5
    SOA = 6
    PTR = 12
    MX = 15
    TXT = 16
    AAAA = 28
    OPT = 41


CLASS_IN = 1


@dataclass(frozen=True, slots=True)
class Question:
    name: str
    qtype: int = RType.A
    qclass: int = CLASS_IN


@dataclass(frozen=True, slots=True)
class Record:
    """An A record (data: the address as int) or a CNAME (data: the target name)."""

    name: str
    rtype: int
    ttl: int
    data: int | str
    rclass: int = CLASS_IN


@dataclass(frozen=True, slots=True)
class Edns:
    """The OPT pseudo-record (RFC 6891 6.1.2); its options are skipped."""

    udp_payload: int = EDNS_PAYLOAD
    ext_rcode: int = 0  # upper 8 bits of the 12-bit rcode
    version: int = 0
    dnssec_ok: bool = False


@dataclass(frozen=True, slots=True)
class DnsMessage:
    id: int
    flags: int  # the header's second word: QR, opcode, AA, TC, RD, RA, Z, AD, CD, low 4 rcode bits
    questions: tuple[Question, ...] = ()
    answers: tuple[Record, ...] = ()
    edns: Edns | None = None
    skipped: int = 0  # records of other types, in any section (never emitted)

    @property
    def is_response(self) -> bool:
        return bool(self.flags & QR)

    @property
    def truncated(self) -> bool:
        return bool(self.flags & TC)

    @property
    def opcode(self) -> int:
        return (self.flags >> 11) & 0xF

    @property
    def rcode(self) -> int:
        """The full rcode: the header's 4 bits, extended by EDNS's 8 (RFC 6891 6.1.3)."""
        ext = self.edns.ext_rcode << 4 if self.edns is not None else 0
        return ext | (self.flags & 0xF)

    @classmethod
    def query(cls, id_: int, name: str, qtype: int = RType.A, *, edns: Edns | None = None) -> DnsMessage:
        """A recursive query (RD set) for one question."""
        return cls(id_, RD, (Question(name, qtype),), edns=edns)

    @classmethod
    def parse(cls, buf: Buffer) -> DnsMessage:  # noqa: PLR0912 - one branch per checked rule
        """Parse a whole message; counts must match the data exactly. Raises a WireError subclass."""
        n = len(buf)
        if n < HEADER_LEN:
            raise Truncated("dns", f"{n} bytes, header needs 12")
        id_, flags, qd, an, ns, ar = _HDR.unpack_from(buf, 0)
        pos = HEADER_LEN
        questions = []
        for _ in range(qd):
            name, pos = read_name(buf, pos)
            if pos + 4 > n:
                raise Truncated("dns", "question runs past the message")
            qtype, qclass = _QQ.unpack_from(buf, pos)
            pos += 4
            questions.append(Question(name, qtype, qclass))
        answers: list[Record] = []
        edns: Edns | None = None
        skipped = 0
        for section, count in ((0, an), (1, ns), (2, ar)):
            for _ in range(count):
                name, pos = read_name(buf, pos)
                if pos + 10 > n:
                    raise Truncated("dns", "record header runs past the message")
                rtype, rclass, ttl, rdlen = _RR.unpack_from(buf, pos)
                pos += 10
                end = pos + rdlen
                if end > n:
                    raise Truncated("dns", f"rdata length {rdlen} runs past the message")
                if rtype == RType.OPT:
                    if section != 2 or edns is not None or name != "":
                        raise BadOption("dns", "OPT must be one root-named record in the additional section")
                    edns = Edns(rclass, ttl >> 24, (ttl >> 16) & 0xFF, bool(ttl & 0x8000))
                elif section == 0 and rtype == RType.A:
                    if rdlen != 4:
                        raise BadLength("dns", f"A record of {rdlen} bytes")
                    answers.append(Record(name, rtype, _ttl(ttl), int.from_bytes(buf[pos:end], "big"), rclass))
                elif section == 0 and rtype == RType.CNAME:
                    target, after = read_name(buf, pos)
                    if after != end:
                        raise BadLength("dns", "CNAME target does not fill its rdata")
                    answers.append(Record(name, rtype, _ttl(ttl), target, rclass))
                else:
                    skipped += 1
                pos = end
        if pos != n:
            raise BadLength("dns", f"{n - pos} bytes after the last record")
        return cls(id_, flags, tuple(questions), tuple(answers), edns, skipped)

    def emit(self) -> bytes:
        """The whole message, owner names and CNAME targets compressed."""
        out = bytearray(HEADER_LEN)
        _HDR.pack_into(out, 0, self.id, self.flags, len(self.questions), len(self.answers), 0,
                       1 if self.edns is not None else 0)
        table: dict[tuple[bytes, ...], int] = {}
        for q in self.questions:
            write_name(out, q.name, table)
            out += _QQ.pack(q.qtype, q.qclass)
        for r in self.answers:
            write_name(out, r.name, table)
            if isinstance(r.data, int):
                out += _RR.pack(r.rtype, r.rclass, r.ttl, 4) + r.data.to_bytes(4, "big")
            else:
                at = len(out)
                out += _RR.pack(r.rtype, r.rclass, r.ttl, 0)
                write_name(out, r.data, table)
                struct.pack_into("!H", out, at + 8, len(out) - at - 10)
        if (e := self.edns) is not None:
            ttl = e.ext_rcode << 24 | e.version << 16 | (0x8000 if e.dnssec_ok else 0)
            out += b"\0" + _RR.pack(RType.OPT, e.udp_payload, ttl, 0)
        return bytes(out)


def _ttl(ttl: int) -> int:
    return 0 if ttl >= 0x80000000 else ttl  # RFC 2181 8: a TTL with the top bit set means zero


def name_key(name: str) -> str:
    """Case-insensitive comparison key (RFC 4343: only ASCII letters fold)."""
    return name.translate(_FOLD)


_FOLD = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}
_PLAIN = frozenset(range(0x21, 0x7F)) - {ord("."), ord("\\")}


def read_name(buf: Buffer, pos: int) -> tuple[str, int]:
    """Decode the name at `pos`; return it and the offset after it (after the first pointer, if any).

    A pointer must point strictly before the start of the labels it continues (the name's start, or the last
    pointer's target), so every jump goes further back and no chain can loop."""
    n = len(buf)
    limit = pos
    labels: list[bytes] = []
    wire_len = 1
    after = -1
    while True:
        if pos >= n:
            raise Truncated("dns", "name runs past the message")
        length = buf[pos]
        if length >= 0xC0:
            if pos + 1 >= n:
                raise Truncated("dns", "compression pointer cut short")
            target = ((length & 0x3F) << 8) | buf[pos + 1]
            if after < 0:
                after = pos + 2
            if target >= limit or target < HEADER_LEN:
                raise PointerLoop("dns", f"pointer at {pos} to {target}")
            pos = limit = target
            continue
        if length > MAX_LABEL:
            raise BadName("dns", f"label type {length >> 6:#x} (RFC 6891 removed extended labels)")
        if length == 0:
            return to_text(labels), (after if after >= 0 else pos + 1)
        wire_len += length + 1
        if wire_len > MAX_NAME:
            raise BadName("dns", f"name longer than {MAX_NAME} bytes")
        if pos + 1 + length > n:
            raise Truncated("dns", "label runs past the message")
        labels.append(bytes(buf[pos + 1:pos + 1 + length]))
        pos += 1 + length


def encode_name(name: str) -> list[bytes]:
    """Labels of a presentation-form name (`\\DDD` and `\\X` escapes); raises BadName if it breaks RFC 1035."""
    if name in ("", "."):
        return []
    labels: list[bytes] = []
    cur = bytearray()
    i, n = 0, len(name)
    while i < n:
        c = name[i]
        if c == ".":
            labels.append(_label(cur, name))
            cur = bytearray()
        elif c == "\\":
            ddd = name[i + 1:i + 4]
            if len(ddd) == 3 and all(d in "0123456789" for d in ddd) and int(ddd) < 256:
                cur.append(int(ddd))
                i += 3
            elif i + 1 < n and ord(name[i + 1]) < 128:
                cur.append(ord(name[i + 1]))
                i += 1
            else:
                raise BadName("dns", f"bad escape in {name!r}")
        elif ord(c) < 128:
            cur.append(ord(c))
        else:
            raise BadName("dns", f"non-ASCII name {name!r} (IDNA is not done here)")
        i += 1
    if cur or not name.endswith("."):
        labels.append(_label(cur, name))
    if sum(len(lb) + 1 for lb in labels) + 1 > MAX_NAME:
        raise BadName("dns", f"name longer than {MAX_NAME} bytes")
    return labels


def _label(b: bytearray, name: str) -> bytes:
    if not b:
        raise BadName("dns", f"empty label in {name!r}")
    if len(b) > MAX_LABEL:
        raise BadName("dns", f"label longer than {MAX_LABEL} bytes in {name!r}")
    return bytes(b)


def to_text(labels: list[bytes]) -> str:
    """Presentation form of wire labels, as `read_name` returns it."""
    return ".".join("".join(chr(b) if b in _PLAIN else f"\\{b:03d}" for b in lb) for lb in labels)


def canonical(name: str) -> str:
    """The form `read_name` would return for `name` (escapes normalised, no trailing dot); BadName if invalid."""
    return to_text(encode_name(name))


def write_name(out: bytearray, name: str, table: dict[tuple[bytes, ...], int]) -> None:
    """Append `name`, pointing at an earlier copy of its longest known suffix (RFC 1035 4.1.4). Suffixes
    match byte for byte: a pointer to a copy in another case would change the name's case, which a
    message must carry as it was given (RFC 4343 4; hypothesis found "W" then "w" read back as "W", "W")."""
    labels = encode_name(name)
    for i in range(len(labels)):
        key = tuple(labels[i:])
        if key in table:
            out += struct.pack("!H", 0xC000 | table[key])
            return
        if len(out) < 0x4000:  # pointers reach 14 bits
            table[key] = len(out)
        out.append(len(labels[i]))
        out += labels[i]
    out.append(0)
