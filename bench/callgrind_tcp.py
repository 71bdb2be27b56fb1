"""Deterministic figure: instructions per received 1448-byte in-order TCP segment under callgrind (tcpip, floor).

Workload (`python bench/callgrind_tcp.py N tcpip|floor`, run under valgrind by `run()`): an established
connection (our side passive, the peer with timestamps and SACK like Linux: 1448 payload bytes per
segment), then N in-order data frames through `Interface.receive` (Ethernet + IPv4 + TCP, checksums
verified); tcpip ACKs every second segment itself (its ACKs are built and queued, the queue is cleared), the
application reads the receive buffer every 32 segments. The floor (`bench.floor.FloorTcpReceiver`) does the
least: parse, both checksums, 4-tuple and sequence check, append the payload to a bytearray, an ACK frame
every two segments, the same read every 32. N2 frames are always built (a constant), so
(instructions(N2) - instructions(N1)) / (N2 - N1) counts only the receiving.
"""

from __future__ import annotations

import random
import shutil
import struct
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

Log = Callable[[str], None]
HERE = Path(__file__).resolve().parent
N1, N2 = 200, 1200
PAYLOAD = 1448
SPORT, DPORT = 40000, 80
PEER_ISS = 1_000_000
READ_EVERY = 32
_HDR = struct.Struct("!6s6sHBBHHHBBHIIHHIIBBHHHBBBBII")  # Ethernet, IPv4, TCP with NOP NOP TS
Buffer = bytes | bytearray | memoryview


def _sum(b: Buffer) -> int:
    x = int.from_bytes(b, "big") << (8 if len(b) & 1 else 0)
    return x % 0xFFFF


def tcp_frame(seq: int, ack: int, flags: int, payload: bytes, tsval: int, tsecr: int,
              opts: bytes | None = None) -> bytearray:
    """Peer -> us: Ethernet/IPv4/TCP, both checksums filled; NOP NOP TS unless other options are given."""
    from bench.frames import OUR_IP, OUR_MAC, PEER_IP, PEER_MAC

    o = opts if opts is not None else struct.pack("!BBBBII", 1, 1, 8, 10, tsval, tsecr)
    thl = 20 + len(o)
    total = 20 + thl + len(payload)
    f = bytearray(14 + total)
    struct.pack_into("!6s6sHBBHHHBBHII", f, 0, OUR_MAC, PEER_MAC, 0x0800, 0x45, 0, total, 0, 0x4000, 64, 6, 0,
                     PEER_IP, OUR_IP)
    s = _sum(f[14:34])
    struct.pack_into("!H", f, 24, 0xFFFF - s if s else 0)
    struct.pack_into("!HHIIBBHHH", f, 34, SPORT, DPORT, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, (thl // 4) << 4,
                     flags, 1024, 0, 0)
    f[54:54 + len(o)] = o
    f[34 + thl:] = payload
    pseudo = struct.pack("!IIHH", PEER_IP, OUR_IP, 6, thl + len(payload))
    s = (_sum(pseudo) + _sum(f[34:])) % 0xFFFF
    struct.pack_into("!H", f, 50, 0xFFFF - s if s else 0)
    return f


def data_frames(n: int, ack: int) -> list[memoryview]:
    payload = bytes(range(256)) * 5 + bytes(PAYLOAD - 1280)
    return [memoryview(tcp_frame(PEER_ISS + 1 + i * PAYLOAD, ack, 0x18, payload, 1000 + i // 16, 5000))
            for i in range(n)]


class _Out:
    """TcpLayer's Output on an Interface (what tcpip.aio.driver does, without the event loop)."""

    def __init__(self, iface: Any) -> None:
        from tcpip.core.burst import send_one

        self.iface = iface
        self._send_one = send_one

    def tcp_send(self, src: int, dst: int, parts: Sequence[Buffer], now: float) -> None:
        self.iface.send(dst, 6, parts, now, src=src)

    def tcp_send_ack(self, src: int, dst: int, hdr: bytes, now: float) -> bool:
        return bool(self._send_one(self.iface, dst, 6, hdr, now, src))

    def tcp_mss(self, dst: int, now: float) -> int:
        return int(self.iface.path_mtu(dst, now)) - 40

    def is_local(self, addr: int) -> bool:
        return bool(addr == self.iface.addr)


def tcpip_receiver() -> tuple[Any, Any, Any, int]:
    """An Interface with a TcpLayer and one established passive connection: (iface, layer, conn, our ISS + 1)."""
    from bench.frames import OUR_IP, OUR_MAC, PEER_IP, PEER_MAC
    from tcpip.core.config import InterfaceConfig
    from tcpip.core.interface import Interface
    from tcpip.core.tcp.config import TcpConfig
    from tcpip.core.tcp.layer import TcpLayer
    from tcpip.wire.mac import MacAddress

    iface = Interface(InterfaceConfig(mac=MacAddress(OUR_MAC), address=OUR_IP, netmask=0xFFFFFF00), now=0.0,
                      rng=random.Random(1))
    iface.arp.add_static(PEER_IP, PEER_MAC)
    layer = TcpLayer(TcpConfig(), _Out(iface), random.Random(2), b"callgrind-tcp-secret-0123456789ab")

    layer.timers.on_push = iface.timers_changed  # as the driver wires it
    iface.register(6, layer.input)
    lst = layer.listen(OUR_IP, DPORT, 16)
    syn_opts = struct.pack("!BBHBBBBBBBBII", 2, 4, 1460, 1, 3, 3, 7, 4, 2, 8, 10, 900, 0)
    iface.receive(memoryview(tcp_frame(PEER_ISS, 0, 0x02, b"", 900, 0, syn_opts)), 1.0)
    synack = bytes(iface.tx[-1][0]) if len(iface.tx[-1]) == 1 else b"".join(bytes(p) for p in iface.tx[-1])
    iss = int.from_bytes(synack[38:42], "big")
    iface.tx.clear()
    iface.receive(memoryview(tcp_frame(PEER_ISS + 1, iss + 1, 0x10, b"", 901, 5000)), 1.001)
    conn = lst.accept()
    if conn is None or conn.state.name != "ESTABLISHED" or not conn.ts_ok:
        raise SystemExit(f"handshake failed: {conn!r}")
    layer.poll_events()
    return iface, layer, conn, iss + 1


def main() -> int:
    sys.path.insert(0, str(HERE.parent))
    n = int(sys.argv[1])
    impl = sys.argv[2] if len(sys.argv) > 2 else "tcpip"
    if impl == "floor":
        from bench.floor import FloorTcpReceiver
        from bench.frames import OUR_IP, OUR_MAC, PEER_IP, PEER_MAC

        fl = FloorTcpReceiver(OUR_MAC, OUR_IP, PEER_MAC, PEER_IP, DPORT, SPORT, PEER_ISS + 1, 7777)
        frames = data_frames(N2, 7777)
        frecv, ftx = fl.receive, fl.tx
        for i in range(n):
            frecv(frames[i])
            if i % READ_EVERY == READ_EVERY - 1:
                fl.read()
                ftx.clear()
        got, acks = fl.rcv_nxt - PEER_ISS - 1, fl.acks
    else:
        iface, layer, conn, ack = tcpip_receiver()
        frames = data_frames(N2, ack)
        recv, tx, recv_app, events = iface.receive, iface.tx, conn.recv, layer.poll_events
        now = 2.0
        for i in range(n):
            recv(frames[i], now)
            if i % READ_EVERY == READ_EVERY - 1:
                recv_app(now)
                tx.clear()
                events()
            now += 0.00001
        got, acks = (conn.rcvbuf.rcv_nxt - PEER_ISS - 1) & 0xFFFFFFFF, layer.stats.out_segs - 1
    if got != n * PAYLOAD or not n // 2 <= acks <= n // 2 + 1 + n // READ_EVERY:
        raise SystemExit(f"{impl}: {got} bytes in order (expected {n * PAYLOAD}), {acks} ACKs for {n} segments")
    return 0


def _instructions(n: int, impl: str) -> int:
    from bench.callgrind import instructions

    return instructions("callgrind_tcp.py", n, impl)


def run(log: Log, n1: int = N1, n2: int = N2) -> dict[str, Any]:
    if shutil.which("valgrind") is None:
        log("  callgrind TCP skipped: valgrind is not installed")
        return {"skipped": "valgrind is not installed"}
    out: dict[str, Any] = {"n1": n1, "n2": n2, "payload": PAYLOAD}
    for impl in ("tcpip", "floor"):
        a, b = _instructions(n1, impl), _instructions(n2, impl)
        again = _instructions(n2, impl) if impl == "tcpip" else b
        out[impl] = {"instructions_per_segment": round((b - a) / (n2 - n1)), "n1_total": a, "n2_total": b,
                     "bit_identical": again == b}
        log(f"  callgrind {impl:6} {out[impl]['instructions_per_segment']:7} instructions per 1448-byte segment"
            + ("" if impl != "tcpip" else f"  (repeat bit-identical: {again == b})"))
    out["ratio"] = round(out["tcpip"]["instructions_per_segment"] / out["floor"]["instructions_per_segment"], 3)
    log(f"  callgrind TCP receive: tcpip / floor = {out['ratio']}")
    return out


if __name__ == "__main__":
    raise SystemExit(main())
