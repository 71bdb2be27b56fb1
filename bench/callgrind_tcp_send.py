"""Callgrind driver for TCP bulk send through the sans-I/O core (Host + TcpLayer as in callgrind_tcp_paths.py).

`python bench/callgrind_tcp_send.py bulk|bulk-build N` under `valgrind --tool=callgrind` with PYTHONHASHSEED=0,
ASLR off and PYTHONPATH=src:. (bench/callgrind.py's method): N application writes of 64 KiB, each sent as far
as the windows allow (`send` + `output` -> `Host.send`, frames dropped), the peer ACKing every second
segment like Linux. Instructions per MB = ((I(bulk 120) - I(bulk 20)) - (I(bulk-build 120) - I(bulk-build 20)))
/ 6.5536 (100 writes of 64 KiB); the `-build` runs only build the ACK frames.
"""

from __future__ import annotations

import sys

from bench import callgrind_tcp_paths as paths
from tcpip.core.tcp import output as out
from tcpip.wire.tcp import ACK

WRITE = 1 << 16


def main(what: str, n: int) -> None:
    # no timer push hook: as every figure of this driver since it was written
    host, _layer, conn, una, _ts = paths.established(timers=False)
    total = n * WRITE
    ends = [*range(2 * 1448, total, 2 * 1448), total]  # the peer's ACKs: every second segment, then the rest
    acks = [paths._frame(1001, una + k, ACK, ts=(10, 0)) for k in ends]
    if what.endswith("-build"):
        return
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


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
