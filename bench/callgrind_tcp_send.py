"""Callgrind driver for TCP bulk send through the sans-I/O core (Host + TcpLayer as in callgrind_tcp_paths.py).

`python bench/callgrind_tcp_send.py MODE N` under `valgrind --tool=callgrind` with PYTHONHASHSEED=0, ASLR off and
PYTHONPATH=src:. (bench/callgrind.py's method); frames are dropped. Two modes, each with a `-build` twin that only
builds the peer's ACK frames (subtracted):
- bulk: N application writes of 64 KiB, each sent as far as the windows allow (`send` + `output` -> `Host.send`),
  the peer ACKing every second segment like Linux. Instructions per MB = ((I(bulk 120) - I(bulk 20)) -
  (I(bulk-build 120) - I(bulk-build 20))) / 6.5536 (100 writes of 64 KiB).
- clocked: the real bulk sender's steady state: past start-up (CUBIC in congestion avoidance, the flight held by
  the peer's window), the send buffer kept full by 64 KiB writes, and N peer ACKs (Linux's receiver: each
  covers two segments, with a 1 ms TSecr echo), each releasing the next two. Instructions per MB =
  ((I(clocked 2463) - I(clocked 200)) - (the same for clocked-build)) / 6.5536 (2263 ACKs of 2 * 1448 bytes).
`python bench/callgrind_tcp_send.py ops [clocked|bulk]` (no valgrind): bytecodes and Python calls per ACK by
function (a sys.settrace opcode counter, (count(N2) - count(N1)) / (N2 - N1), as bench/wakeup_ops.py).
`python bench/callgrind_tcp_send.py figures`: both modes' instructions per MB under callgrind.
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

from bench import callgrind_tcp_paths as paths
from bench.opcount import tracer
from tcpip.core.ipv4 import header_into
from tcpip.core.tcp import output as out
from tcpip.wire.tcp import ACK, TcpRepr, fill_checksum

WRITE = 1 << 16
SEG = 1448  # MSS 1460 less the timestamps option
WINDOW = 64 * SEG  # the peer's window in clocked mode: a multiple of 2**7 (window scale 7) and of SEG
CLOCKED = (200, 2463)  # ACK counts: 2263 * 2 * 1448 bytes = 6.55 MB, as bulk's 100 writes of 64 KiB
BULK = (20, 120)


def bulk(n: int, build: bool) -> None:
    # no timer push hook: as every figure of this driver since it was written
    host, _layer, conn, una, _ts = paths.established(timers=False)
    total = n * WRITE
    ends = [*range(2 * 1448, total, 2 * 1448), total]  # the peer's ACKs: every second segment, then the rest
    acks = [paths._frame(1001, una + k, ACK, ts=(10, 0)) for k in ends]
    if build:
        return
    _started()
    data = memoryview(bytes(range(256)) * (WRITE // 256))
    now, tx, ai = 1.0, host.tx, 0
    for _ in range(n):
        sent = 0
        while sent < WRITE:
            sent += conn.send(data[sent:], now)
            out.output(conn, now)
            tx.clear()
            top = (conn.snd_max - una) & 0xFFFFFFFF
            while ai < len(ends) and ends[ai] <= top:  # the peer ACKs what is out
                host.receive(acks[ai], now)
                tx.clear()
                ai += 1
            now += 0.001
    assert conn.state.name == "ESTABLISHED", conn.state


def clocked(n: int, build: bool) -> None:
    """N ACK-clocked rounds: ACK two segments at `now`, the application tops the send buffer up."""
    host, _layer, conn, una, _ts = paths.established(timers=False)
    c = conn.cc
    c.cwnd = c.ssthresh = 4 * WINDOW  # past start-up: congestion avoidance, window-limited
    dt = 0.0001  # one ACK every 100 us (~230 Mbit/s); each echoes the TSval of 1 ms before
    acks = []
    for k in range(n):
        now = 1.0 + k * dt
        echo = (int((now - 0.001) * 1000.0) + conn.ts_offset) & 0xFFFFFFFF
        acks.append(_ack(una + (k + 1) * 2 * SEG, (10 + k // 10, echo)))
    if build:
        return
    _started()
    data = memoryview(bytes(range(256)) * (WRITE // 256))
    tx = host.tx
    now = 1.0 - dt
    conn.snd_wnd = WINDOW  # as the peer's ACKs say
    while conn.sndbuf.free >= WRITE:  # the first flight: the window's worth
        conn.send(data, now)
    tx.clear()
    flight = (conn.snd_max - conn.snd_una) & 0xFFFFFFFF
    for k, f in enumerate(acks):
        now = 1.0 + k * dt
        host.receive(f, now)
        while conn.sndbuf.free >= WRITE:  # write(64 KiB) + drain: the buffer kept full
            conn.send(data, now)
        tx.clear()
    assert conn.state.name == "ESTABLISHED", conn.state
    assert (conn.snd_una - una) & 0xFFFFFFFF == n * 2 * SEG
    assert (conn.snd_max - conn.snd_una) & 0xFFFFFFFF == flight, "each ACK must release two segments"


def _ack(ack: int, ts: tuple[int, int]) -> memoryview:
    """The peer's pure ACK with a window field of WINDOW >> 7 (paths._frame's, whose window is fixed)."""
    r = TcpRepr(40000, 80, 1001, ack & 0xFFFFFFFF, ACK, WINDOW >> 7)
    r.timestamp = ts
    h = bytearray(r.header_len())
    r.emit(h)
    fill_checksum(h, paths.PEER, paths.OUR, b"")
    ip = bytearray(20)
    header_into(ip, 0, paths.PEER, paths.OUR, 6, 20 + len(h), 1, 0x4000, 64)
    return memoryview(paths.OMAC + paths.PMAC + b"\x08\x00" + bytes(ip) + bytes(h))


_TRACER: list[Any] = []  # set by `count`: the opcode counter, started once the frames are built


def _started() -> None:
    if _TRACER:
        sys.settrace(_TRACER[0])


MODES = {"bulk": bulk, "clocked": clocked}


def count(mode: str, n: int) -> tuple[Counter[str], Counter[str]]:
    """Bytecodes and calls by function for `mode` with N, counted once the peer's frames are built (the
    driver's own loop is not counted: its frame started before the tracer)."""
    trace, ops, calls = tracer()
    _TRACER[:] = [trace]
    try:
        MODES[mode](n, False)
    finally:
        sys.settrace(None)
        _TRACER.clear()
    return ops, calls


def ops(mode: str) -> None:
    n1, n2 = (CLOCKED if mode == "clocked" else BULK)
    n1, n2 = (n1, n1 + 500) if mode == "clocked" else (n1, n2)
    (o1, c1), (o2, c2) = count(mode, n1), count(mode, n2)
    per = (n2 - n1) if mode == "clocked" else (n2 - n1) * WRITE / (2 * SEG)  # per ACK (bulk: per 2 segments)
    total = 0.0
    rows = {k: (o2[k] - o1[k]) / per for k in o2}
    for k, v in sorted(rows.items(), key=lambda kv: -kv[1]):
        total += v
        if v >= 1:
            print(f"{v:7.1f} bytecodes {(c2[k] - c1[k]) / per:5.2f} calls  {k}")
    print(f"{total:7.1f} bytecodes per ACK in all ({mode})")


def figures() -> None:
    from bench.callgrind import instructions

    for mode, (n1, n2) in (("bulk", BULK), ("clocked", CLOCKED)):
        i = {(m, k): instructions("callgrind_tcp_send.py", m, k) for m in (mode, mode + "-build") for k in (n1, n2)}
        d = (i[mode, n2] - i[mode, n1]) - (i[mode + "-build", n2] - i[mode + "-build", n1])
        mb = 6.5536 if mode == "bulk" else (n2 - n1) * 2 * SEG / 1e6
        print(f"{mode:8} {d / mb:12.0f} instructions per MB  {d / (mb * 1e6 / (2 * SEG)):9.0f} per ACK")


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "ops":
        ops(sys.argv[2] if len(sys.argv) > 2 else "clocked")
    elif what == "figures":
        figures()
    else:
        MODES[what.removesuffix("-build")](int(sys.argv[2]), what.endswith("-build"))
