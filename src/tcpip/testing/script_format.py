"""The TCP script text format (docs/tcp-scripts.md): parsing lines into steps, and printing segments back
in the same notation (relative sequence numbers) for mismatch reports."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from tcpip.wire.tcp import ACK, CWR, ECE, FIN, PSH, RST, SYN, URG, TcpRepr

FLAG_CHARS = {"S": SYN, "F": FIN, "R": RST, "P": PSH, ".": ACK, "U": URG, "E": ECE, "W": CWR}
_ORDER = "SFRPUEW."
_OPTS = re.compile(r"<(?=[A-Za-z])")
_SEQ = re.compile(r"^(\d+):(\d+)\((\d+)\)$")
DEFAULT_PORT = 40000
LOCAL = int(IPv4Address("198.18.0.1"))  # our TcpLayer (port LPORT)
REMOTE = int(IPv4Address("198.18.0.2"))  # the scripted peer
LPORT = 80
PEER_BASE = 1_000_000  # the peer's ISN: inbound sequence numbers are relative to it
MASK = 0xFFFFFFFF


def pattern(offset: int, n: int) -> bytes:
    """The bytes at stream offsets offset..offset+n of every scripted stream (both directions)."""
    return bytes((i * 7 + 3) & 0xFF for i in range(offset, offset + n))


class ScriptError(Exception):
    """A script that cannot be parsed, or a run that does not match it."""


@dataclass(slots=True)
class TsSpec:
    val: int | None  # None: any (outbound) ; on inbound `val` is always given
    ecr: int | None  # None: any (outbound); on inbound None means `$` (echo our last TSval)


@dataclass(slots=True)
class SegSpec:
    """One `<` or `>` line's segment, numbers relative (see docs/tcp-scripts.md)."""

    flags: int
    seq: int
    length: int
    ack: int | None = None
    win: int | None = None
    urg: int = 0
    doff: int | None = None  # inbound: force the data offset field
    csum: str | None = None  # inbound: "0" (field zero) or "bad"
    options: list[tuple[str, object]] | None = None  # None: not given (outbound: not checked)


@dataclass(slots=True)
class Step:
    lineno: int
    text: str
    time: float
    relative: bool
    kind: str  # "in", "out", "cmd"
    port: int = DEFAULT_PORT
    seg: SegSpec | None = None
    args: list[str] = field(default_factory=list)


def flags_str(flags: int) -> str:
    s = "".join(c for c in _ORDER if flags & FLAG_CHARS[c])
    return s or "_"


def _parse_flags(tok: str) -> int:
    if tok == "_":
        return 0
    flags = 0
    for c in tok:
        if c not in FLAG_CHARS:
            raise ScriptError(f"unknown flag {c!r} in {tok!r}")
        flags |= FLAG_CHARS[c]
    return flags


def _parse_options(text: str, inbound: bool) -> list[tuple[str, object]]:
    opts: list[tuple[str, object]] = []
    for item in (x.strip() for x in text.split(",")):
        if not item:
            continue
        w = item.split()
        name = w[0]
        if name in ("nop", "eol", "sackOK"):
            opts.append((name, None))
        elif name in ("mss", "wscale"):
            opts.append((name, int(w[1])))
        elif name == "TS":  # TS val N ecr M
            if len(w) != 5 or w[1] != "val" or w[3] != "ecr":
                raise ScriptError(f"bad timestamp option {item!r}")
            val = None if w[2] == "*" else int(w[2])
            ecr = None if w[4] in ("*", "$") else int(w[4])
            if inbound and val is None:
                raise ScriptError("an inbound TS val must be a number")
            opts.append(("TS", TsSpec(val, ecr)))
        elif name == "sack":
            blocks = []
            for b in w[1:]:
                left, right = b.split(":")
                blocks.append((int(left), int(right)))
            opts.append(("sack", tuple(blocks)))
        elif name == "raw":  # inbound only: bytes written as they are (malformed options)
            opts.append(("raw", bytes(int(x, 16) for x in w[1:])))
        else:
            raise ScriptError(f"unknown option {name!r}")
    return opts


def _parse_segment(tokens: list[str], inbound: bool) -> SegSpec:
    if len(tokens) < 2:
        raise ScriptError("a segment needs flags and seq:end(len)")
    flags = _parse_flags(tokens[0])
    m = _SEQ.match(tokens[1])
    if not m:
        raise ScriptError(f"bad sequence {tokens[1]!r} (want start:end(len))")
    start, end, n = (int(x) for x in m.groups())
    if end - start != n:
        raise ScriptError(f"{tokens[1]}: end - start != len")
    spec = SegSpec(flags, start, n)
    i = 2
    while i < len(tokens):
        t = tokens[i]
        if t.startswith("<"):
            if not t.endswith(">") or i != len(tokens) - 1:
                raise ScriptError("options must come last and end with '>'")
            spec.options = _parse_options(t[1:-1], inbound)
            break
        if i + 1 >= len(tokens):
            raise ScriptError(f"{t!r} needs a value")
        v = tokens[i + 1]
        if t == "ack":
            spec.ack = int(v)
        elif t == "win":
            spec.win = int(v)
        elif t == "urg":
            spec.urg = int(v)
        elif t == "doff" and inbound:
            spec.doff = int(v)
        elif t == "csum" and inbound:
            spec.csum = v
        else:
            raise ScriptError(f"unknown segment field {t!r}")
        i += 2
    return spec


def parse(text: str) -> list[Step]:
    """Every step of a script; ScriptError names the line of the first problem."""
    steps: list[Step] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            steps.append(_parse_line(lineno, line))
        except (ScriptError, ValueError, IndexError) as e:
            raise ScriptError(f"line {lineno}: {raw.strip()!r}: {e}") from None
    return steps


def _parse_line(lineno: int, line: str) -> Step:
    tokens = _split_keep_options(line)
    time, relative = 0.0, True
    t0 = tokens[0]
    if t0.startswith("+") or re.match(r"^\d+(\.\d+)?$", t0):
        relative = t0.startswith("+")
        time = float(t0[1:] if relative else t0)
        tokens = tokens[1:]
    head = tokens[0]
    if head in ("<", ">"):
        port = DEFAULT_PORT
        tokens = tokens[1:]
        if tokens and tokens[0].startswith(":"):
            port = int(tokens[0][1:])
            tokens = tokens[1:]
        seg = _parse_segment(tokens, head == "<")
        return Step(lineno, line, time, relative, "in" if head == "<" else "out", port, seg)
    port = DEFAULT_PORT
    args = []
    for a in tokens[1:]:
        if a.startswith(":"):
            port = int(a[1:])
        else:
            args.append(a)
    return Step(lineno, line, time, relative, "cmd", port, None, [head, *args])


def _split_keep_options(line: str) -> list[str]:
    """Split on blanks, except the `<...>` option list (a '<' right before a letter), kept as one token."""
    m = _OPTS.search(line)
    if m is None:
        return line.split()
    return [*line[:m.start()].split(), line[m.start():].strip()]


def format_segment(r: TcpRepr, dlen: int, seq: int, ack: int, ecr_base: int = 0) -> str:
    """`FLAGS s:e(n) ack a win w <options>` with the given relative seq/ack."""
    parts = [flags_str(r.flags), f"{seq}:{seq + dlen}({dlen})"]
    if r.flags & ACK:
        parts.append(f"ack {ack}")
    parts.append(f"win {r.window}")
    if r.urgent:
        parts.append(f"urg {r.urgent}")
    opts = []
    if r.mss is not None:
        opts.append(f"mss {r.mss}")
    if r.sack_permitted:
        opts.append("sackOK")
    if r.timestamp is not None:
        opts.append(f"TS val {r.timestamp[0]} ecr {r.timestamp[1]}")
    if r.wscale is not None:
        opts.append(f"wscale {r.wscale}")
    if r.sack:
        opts.append("sack " + " ".join(f"{a}:{b}" for a, b in r.sack))
    if opts:
        parts.append("<" + ",".join(opts) + ">")
    return " ".join(parts)
