"""The API and check commands of TCP scripts: listen, connect, accept, write, read, shutdown, close, abort,
icmp, wait, and `expect state|stat|event|readable|eof` (docs/tcp-scripts.md)."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from tcpip.core.tcp.state import EV_ACCEPT, EV_CLOSED, EV_CONNECTED, EV_DATA, EV_EOF, EV_SENT
from tcpip.testing.script_format import LOCAL, LPORT, MASK, REMOTE, ScriptError, Step, pattern

if TYPE_CHECKING:
    from tcpip.testing.scripts import ScriptRunner

_EVENTS = {"CONNECTED": EV_CONNECTED, "ACCEPT": EV_ACCEPT, "DATA": EV_DATA, "EOF": EV_EOF, "SENT": EV_SENT,
           "CLOSED": EV_CLOSED}
_OPS = {"==": lambda a, b: a == b, ">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b, "<": lambda a, b: a < b}


def run_command(r: ScriptRunner, step: Step) -> None:
    cmd, *args = step.args
    layer = r._get_layer()
    port = step.port
    now = r.now
    if cmd == "wait":
        return
    if cmd == "listen":
        r.listener = layer.listen(LOCAL, LPORT, int(args[0]) if args else 128)
    elif cmd == "connect":
        r.conns[port] = layer.connect(LOCAL, LPORT, REMOTE, port, now)
    elif cmd == "accept":
        if r.listener is None:
            raise ScriptError("accept without listen")
        c = r.listener.accept()
        if c is None:
            raise ScriptError("accept: no established connection is queued")
        r.conns[c.remote_port] = c
    elif cmd == "write":
        n = int(args[0])
        off = r.write_off.get(port, 0)
        took = r._conn(port).send(pattern(off, n), now)
        r.write_off[port] = off + took
        if took != n:
            raise ScriptError(f"write {n}: the send buffer took {took}")
    elif cmd == "read":
        c = r._conn(port)
        off = r.read_off.get(port, 0)
        data = c.recv(now, int(args[0]) if args else None)
        if args and len(data) != int(args[0]):
            raise ScriptError(f"read {args[0]}: got {len(data)} bytes")
        if data != pattern(off, len(data)):
            raise ScriptError("read: the bytes differ from what the peer sent")
        r.read_off[port] = off + len(data)
    elif cmd in ("shutdown", "close", "abort"):
        getattr(r._conn(port), cmd)(now)
    elif cmd == "icmp":
        _icmp(r, port, args)
    elif cmd == "expect":
        _expect(r, port, args)
    else:
        raise ScriptError(f"unknown command {cmd!r}")


def _icmp(r: ScriptRunner, port: int, args: list[str]) -> None:
    """icmp TYPE CODE seq REL [mtu N]: an ICMP error quoting our segment with relative sequence REL."""
    icmp_type, code = int(args[0]), int(args[1])
    kv = dict(zip(args[2::2], args[3::2], strict=False))
    seq = (r.our_iss.get(port, 0) + int(kv.get("seq", "0"))) & MASK
    quote = struct.pack("!BBHHHBBHII", 0x45, 0, 60, 0, 0, 64, 6, 0, LOCAL, REMOTE)
    quote += struct.pack("!HHI", LPORT, port, seq)
    r._get_layer().icmp_error(icmp_type, code, int(kv.get("mtu", "0")), memoryview(quote), r.now)


def _expect(r: ScriptRunner, port: int, args: list[str]) -> None:
    what = args[0]
    layer = r._get_layer()
    if what == "state":
        c = r.conns.get(port)
        have = c.state.name if c is not None else "NONE"
        if have != args[1]:
            raise ScriptError(f"state: expected {args[1]}, have {have}")
    elif what == "stat":
        name = args[1]
        op, want = ("==", args[2]) if len(args) == 3 else (args[2], args[3])
        stats = layer.stats.as_dict()
        snake = {f: getattr(layer.stats, f) for f in type(layer.stats).__slots__}
        if name not in stats and name not in snake:
            raise ScriptError(f"no counter {name!r}")
        have_n = stats.get(name, snake.get(name, 0))
        if not _OPS[op](have_n, int(want)):
            raise ScriptError(f"stat {name}: expected {op} {want}, have {have_n}")
    elif what == "event":
        kind = _EVENTS[args[1]]
        exc = args[2] if len(args) > 2 else None
        for i, (k, subject, detail) in enumerate(r.events):
            conn = detail if k == 2 else subject
            if k != kind or getattr(conn, "remote_port", port) != port:
                continue
            if exc is not None and type(detail).__name__ != exc and not (exc == "None" and detail is None):
                continue
            del r.events[i]
            return
        raise ScriptError(f"no {args[1]} event{' ' + exc if exc else ''} for :{port}; have "
                          f"{[(k, type(d).__name__) for k, _, d in r.events]}")
    elif what == "readable":
        have_r = r._conn(port).readable
        if have_r != int(args[1]):
            raise ScriptError(f"readable: expected {args[1]}, have {have_r}")
    elif what == "eof":
        if not r._conn(port).eof:
            raise ScriptError("eof: the peer's FIN has not been consumed")
    elif what == "conns":
        n = len(layer.conns)
        if n != int(args[1]):
            raise ScriptError(f"conns: expected {args[1]}, have {n}")
    else:
        raise ScriptError(f"unknown expectation {what!r}")
