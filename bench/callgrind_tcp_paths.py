"""Callgrind driver for TCP's plain per-segment paths (Host + TcpLayer wired as the aio driver does, no loop).

`python bench/callgrind_tcp_paths.py WHAT N` under `valgrind --tool=callgrind` with PYTHONHASHSEED=0 and ASLR off
(the method of bench/callgrind.py), for N = 200 and 1200; per iteration = (I(1200) - I(200)) / 1000, less the
same difference for WHAT with `-build` (which only builds the input frames):
- rx-data: one in-order 1448-byte data segment through `Host.receive` -> `TcpLayer.input`, the
  application's `recv`, and the ACK that may follow;
- tx-data: `send` of 1448 bytes + `output` -> `Host.send`, then the peer's ACK for it received.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Sequence

from tcpip.core.config import InterfaceConfig
from tcpip.core.host import Host
from tcpip.core.ipv4 import header_into
from tcpip.core.tcp import output as out
from tcpip.core.tcp.config import TcpConfig
from tcpip.core.tcp.conn import Connection
from tcpip.core.tcp.layer import TcpLayer
from tcpip.wire.mac import MacAddress
from tcpip.wire.tcp import ACK, SYN, TcpRepr, fill_checksum

OUR, PEER = 0xC6120002, 0xC6120001
OMAC, PMAC = bytes.fromhex("020000000002"), bytes.fromhex("020000000001")
Buffer = bytes | bytearray | memoryview


class _Out:
    def __init__(self, host: Host) -> None:
        self.host = host

    def tcp_send(self, src: int, dst: int, parts: Sequence[Buffer], now: float) -> None:
        self.host.send(dst, 6, parts, now, src=src)

    def tcp_send_run(self, src: int, dst: int, segs: Sequence[tuple[Buffer, Buffer]], now: float) -> bool:
        return self.host.send_run(dst, 6, segs, now, src=src)

    def tcp_mss(self, dst: int, now: float) -> int:
        return 1460

    def is_local(self, addr: int) -> bool:
        return addr == OUR


def _frame(seq: int, ack: int, flags: int, payload: bytes = b"", ts: tuple[int, int] | None = None,
           **opts: object) -> memoryview:
    r = TcpRepr(40000, 80, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, flags, 4000, **opts)  # type: ignore[arg-type]
    r.timestamp = ts
    h = bytearray(r.header_len())
    r.emit(h)
    fill_checksum(h, PEER, OUR, payload)
    ip = bytearray(20)
    header_into(ip, 0, PEER, OUR, 6, 20 + len(h) + len(payload), 1, 0x4000, 64)
    return memoryview(OMAC + PMAC + b"\x08\x00" + bytes(ip) + bytes(h) + payload)


def established(*, timers: bool = True, offload: bool = False) -> tuple[Host, TcpLayer, Connection, int, int]:
    """Host + TcpLayer wired as the aio driver wires them (`timers`: the timer wheel's push hook; `offload`:
    TSO out and super-frames in, as TcpDriver.enable_offload), and one connection accepted from the peer
    (timestamps, SACK, window scale 7): (host, layer, conn, snd_una, our first TSval)."""
    host = Host(InterfaceConfig(mac=MacAddress(OMAC), address=OUR, netmask=0xFFFFFF00, mtu=1500), now=0.0,
                rng=random.Random(1))
    host.arp.add_static(PEER, PMAC)
    layer = TcpLayer(TcpConfig(timestamps=True, sack=True, window_scaling=True), _Out(host), random.Random(2),
                     b"k" * 32)
    if timers:
        layer.timers.on_push = host.timers_changed
    host.register(6, layer.input)
    if offload:
        host.set_offload(65535)
        host.offload_input = layer.input_offloaded
        layer.enable_tso(65535, host.send_gso)
    lst = layer.listen(OUR, 80, 8)
    host.receive(_frame(1000, 0, SYN, ts=(1, 0), mss=1460, wscale=7, sack_permitted=True), 0.0)
    synack, _ = TcpRepr.parse(memoryview(b"".join(bytes(p) for p in host.tx[-1][2:])))
    assert synack.timestamp is not None
    host.tx.clear()
    host.receive(_frame(1001, synack.seq + 1, ACK, ts=(2, synack.timestamp[0])), 0.0)
    conn = lst.accept()
    assert conn is not None
    return host, layer, conn, synack.seq + 1, synack.timestamp[0]


def main(what: str, n: int) -> None:
    host, _layer, conn, una, tsval = established()
    build_only = what.endswith("-build")
    now, data, tx = 1.0, bytes(1448), host.tx
    if what.startswith("rx"):
        frames = [_frame(1001 + i * 1448, una, ACK, data, ts=(10 + i, tsval)) for i in range(n)]
        for f in [] if build_only else frames:
            host.receive(f, now)
            conn.recv(now)
            tx.clear()
            now += 0.0001
    else:
        acks = [_frame(1001, una + (i + 1) * 1448, ACK, ts=(10 + i, 0)) for i in range(n)]
        for a in [] if build_only else acks:
            conn.send(data, now)
            out.output(conn, now)
            tx.clear()
            host.receive(a, now)
            tx.clear()
            now += 0.0001
    assert conn.state.name == "ESTABLISHED", conn.state


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
