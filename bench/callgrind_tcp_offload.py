"""Callgrind driver for TCP bulk transfer in offload mode (TSO out, GRO super-frames in), per MB, both ways.

`python bench/callgrind_tcp_offload.py WHAT N` under `valgrind --tool=callgrind` (bench/callgrind.py's method:
PYTHONHASHSEED=0, ASLR off, PYTHONPATH=src:.); Host + TcpLayer with offload on, wired as the aio driver does:
- both: the Output as TcpDriver has it (pure ACKs through `tcp_send_ack`, i.e. burst.send_one);
- send: N application writes of 64 KiB (`bytes`, as bench/tcp_peer.py writes read-only views of bytes):
  `conn.send` -> `tso.push` (frames from the connection's header template, `Host.send_gso` without one; no
  second output() call: TcpTransport.write makes none),
  each frame through a TAP's `_transmit_vnet` (to /dev/null:
  valgrind counts no kernel work), then the peer ACKs everything sent (one ACK per super-segment);
- send-clocked: the real run's pattern (send buffer full, sends ACK-driven): per iteration one ACK of
  CLOCK_ACK bytes (~4 super-segments go out from its output), then the transport's refill of queued 64 KiB
  pieces (`send_clocked`); per MB of CLOCK_ACK;
- recv: N super-frames of 45 * 1448 bytes (gso_size 1448, checksum trusted) through the device's
  `_received_offloaded` -> `Host.receive_offloaded` -> `TcpLayer.input_offloaded`, the ACKs to /dev/null;
  after every DRAIN of them (a TAP drain) the transport's read (`conn.recv_piece(64 KiB)` per piece,
  one `window_update`) through asyncio's StreamReaderProtocol.data_received into a ChunkReader (as
  open_connection wires them) and `reader.read(256 KiB)` calls as the application reads (N: a multiple of
  DRAIN). (A real run against the kernel gets ~58 KB super-frames,
  not 65160: ~13 % more of them per MB; per super-frame it makes ~1.08 ACKs and ~1.1 TAP reads.)
`WHAT-build` only builds the input frames. `python bench/callgrind_tcp_offload.py report [WHAT...]` prints
instructions per MB: ((I(120) - I(20)) - (I(build 120) - I(build 20))) / MB moved by 100 iterations;
`... ops WHAT` (no valgrind) the Python bytecodes and calls per iteration by function (driver included).
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent.parent / "src")]

from bench import callgrind_tcp_paths as paths  # noqa: E402
from tcpip.aio.reader import ChunkReader  # noqa: E402
from tcpip.core.burst import send_one  # noqa: E402
from tcpip.core.host import Host  # noqa: E402
from tcpip.core.ipv4 import header_into  # noqa: E402
from tcpip.core.tcp.conn import Connection  # noqa: E402
from tcpip.netif.device import BaseDevice, DeviceStats  # noqa: E402
from tcpip.netif.tap_vnet import VnetIO  # noqa: E402
from tcpip.wire import virtio  # noqa: E402
from tcpip.wire.mac import MacAddress  # noqa: E402
from tcpip.wire.tcp import ACK, TcpRepr  # noqa: E402

WRITE = 1 << 16
READ = 1 << 18
SEG = 1448
SUPER = 45 * SEG  # 65160: what Linux's TSO hands a TAP reader at this MSS with timestamps
DRAIN = 10  # super-frames per TAP drain, then one delivery to the transport (the real run: ~10)
_ACK_TS = struct.Struct("!IIHH")


class _Tap(BaseDevice, VnetIO):
    """A TAP in offload mode whose fd is /dev/null: `_transmit_vnet` does all its Python work."""

    def __init__(self) -> None:
        BaseDevice.__init__(self, MacAddress(paths.OMAC), 1500)
        self.offload = True
        self.fd = os.open(os.devnull, os.O_WRONLY)
        self.name = "cg0"
        self._maxframe = 1514
        self.stats = DeviceStats()


class _AioOut(paths._Out):
    """The Output as TcpDriver has it: pure ACKs through `tcp_send_ack` (burst.send_one), as the real run sends them."""

    def tcp_send_ack(self, src: int, dst: int, hdr: bytes, now: float) -> bool:
        return send_one(self.host, dst, 6, hdr, now, src)


def _established() -> tuple[Host, Connection, int, int]:
    """paths.established(offload=True) with the aio driver's Output: (host, conn, snd_una, our first TSval)."""
    host, layer, conn, una, tse = paths.established(offload=True)
    layer.output = _AioOut(host)
    conn.ack_tpl = None  # its sender is the Output's: rebuilt at the first ACK
    return host, conn, una, tse


class _AckMaker:
    """The peer's pure ACK (timestamps) of `ack`: a template with seq/ack/ts packed in, checksum filled."""

    def __init__(self) -> None:
        self.t = bytearray(paths._frame(1001, 0, ACK, ts=(10, 0)))

    def __call__(self, ack: int, tsv: int) -> memoryview:
        f = bytearray(self.t)
        struct.pack_into("!I", f, 42, ack & 0xFFFFFFFF)
        struct.pack_into("!II", f, 58, tsv, 0)
        f[50:52] = b"\0\0"
        s = sum(struct.unpack_from("!16H", f, 34)) + (paths.PEER >> 16) + (paths.PEER & 0xFFFF) \
            + (paths.OUR >> 16) + (paths.OUR & 0xFFFF) + 6 + 32
        while s >> 16:
            s = (s & 0xFFFF) + (s >> 16)
        struct.pack_into("!H", f, 50, ~s & 0xFFFF)
        return memoryview(bytes(f))


def _sender(n: int, build: bool, window: bytes = b"") -> tuple[Host, Connection, int, _Tap, _AckMaker] | None:
    """The send drivers' set-up: an established connection, a TAP writing to /dev/null and the peer's ACK
    maker (`window`: its window field); None after a `-build` run, which only builds the N ACK frames."""
    host, conn, una, _ = _established()
    tap = _Tap()
    make = _AckMaker()
    if window:
        make.t[48:50] = window
    if build:
        for i in range(n):
            make(una + i, i)
        return None
    return host, conn, una, tap, make


def send(n: int, build: bool) -> None:
    s = _sender(n, build)
    if s is None:
        return
    host, conn, _una, tap, make = s
    data = bytes(range(256)) * (WRITE // 256)
    now, tx, tsv = 1.0, host.tx, 10
    transmit = tap._transmit_vnet
    for _ in range(n):
        sent = 0
        while sent < WRITE:
            sent += conn.send(data if not sent else memoryview(data)[sent:], now)  # (output() inside, as in aio)
            for f in tx:
                transmit(f)
            tx.clear()
            tsv += 1
            host.receive(make(conn.snd_max, tsv), now)
            for f in tx:
                transmit(f)
            tx.clear()
            now += 0.001
    assert conn.state.name == "ESTABLISHED", conn.state
    assert tap.stats.tx_gso_frames >= n, tap.stats


CLOCK_ACK = 4 * 45 * 1436  # bytes each ACK of the clocked send takes: ~4 super-segments (the real run: 3.8)


def send_clocked(n: int, build: bool) -> None:
    """The real bulk sender's pattern: the send buffer stays full and sends are ACK-driven. Each iteration
    the peer ACKs CLOCK_ACK more bytes (its ACK's output sends what the windows open), then the transport's
    push refills the buffer from queued 64 KiB writes (`conn.send` per piece until one is cut short)."""
    s = _sender(n, build, b"\xff\xff")  # the peer's window: 65535 << 7, as a kernel receiver's grows (not the limit)
    if s is None:
        return
    host, conn, una, tap, make = s
    data = bytes(range(256)) * (WRITE // 256)
    now, tx, tsv = 1.0, host.tx, 10
    transmit = tap._transmit_vnet
    piece: bytes | memoryview = data
    acked = una

    # TcpTransport._push: the pieces that fit, then one output (a tree without Connection.flush, measured
    # for comparison: one output per piece, as its transport did)
    split = hasattr(conn, "flush")

    def refill() -> None:
        nonlocal piece
        took = 0
        while True:
            k = conn.send(piece, now, False) if split else conn.send(piece, now)
            took += k
            if k < len(piece):
                piece = memoryview(piece)[k:] if k else piece
                break
            piece = data
        if took and split:
            conn.flush(now)

    def flush() -> None:
        for f in tx:
            transmit(f)
        tx.clear()

    # The real run's steady state (after its first second): cwnd and the send buffer grown (autotuning
    # to sndbuf_max), far more in flight than one ACK takes. One ACK per iteration would need thousands of
    # iterations of slow start (2 MSS per ACK) to get there.
    conn.cc.cwnd = conn.cc.ssthresh = 2 << 20
    conn.sndbuf.capacity = conn.config.sndbuf_max
    for _ in range(6):  # warm-up: the window filled
        refill()
        flush()
        tsv += 1
        acked = conn.snd_max
        host.receive(make(acked, tsv), now)
        flush()
        now += 0.001
    for _ in range(n):
        tsv += 1
        assert ((conn.snd_max - acked) & 0xFFFFFFFF) >= CLOCK_ACK, "window-limited: not the real run's pattern"
        acked += CLOCK_ACK
        host.receive(make(acked, tsv), now)
        flush()
        refill()
        flush()
        now += 0.0005
    assert conn.state.name == "ESTABLISHED", conn.state


def _super(seq: int, ack: int, tsv: int, tse: int, payload: bytes) -> bytes:
    """A GRO super-frame as a TAP read gives it: virtio header (DATA_VALID, GSO TCPv4) + Ethernet + IP + TCP."""
    r = TcpRepr(40000, 80, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, ACK, 4000)
    r.timestamp = (tsv, tse)
    h = bytearray(r.header_len())
    r.emit(h)
    ip = bytearray(20)
    header_into(ip, 0, paths.PEER, paths.OUR, 6, 20 + len(h) + len(payload), 1, 0x4000, 64)
    vh = virtio.HDR.pack(virtio.DATA_VALID, virtio.GSO_TCPV4, 66, SEG, 0, 0)
    return vh + paths.OMAC + paths.PMAC + b"\x08\x00" + bytes(ip) + bytes(h) + payload


def recv(n: int, build: bool) -> None:
    host, conn, una, tse = _established()
    # the bulk transfer's steady state: the buffer autotuned to its cap, the start's quick ACKs spent
    conn.rcvbuf.capacity = conn.config.rcvbuf_max
    if hasattr(conn, "quick"):
        conn.quick = 0
    payload = bytes(range(256)) * (SUPER // 256) + bytes(SUPER % 256)
    frames = [_super(1001 + i * SUPER, una, 10 + i, tse, payload) for i in range(n)]
    if build:
        return
    tap = _Tap()
    now = 1.0
    tap.attach_offload(lambda f, ok, g: host.receive_offloaded(f, now, ok, g))
    loop = asyncio.new_event_loop()
    reader = ChunkReader(limit=READ, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)  # as open_connection wires it
    received = protocol.data_received
    piece = conn.recv_piece
    tx = host.tx
    transmit = tap._transmit_vnet
    unpack = virtio.HDR.unpack_from
    got = 0
    for i, f in enumerate(frames):
        flags, gso_type, _hl, gso_size, start, off = unpack(f)
        tap._received_offloaded(memoryview(f)[10:], flags, gso_type, gso_size, start, off)
        for t in tx:
            transmit(t)
        tx.clear()
        if i % DRAIN != DRAIN - 1:
            continue  # the TAP drain goes on: the delivery comes after its last frame
        while conn.readable:
            received(piece(WRITE))  # TcpTransport._read's piece
        conn.window_update(now)
        for t in tx:
            transmit(t)
        tx.clear()
        while reader._queued or reader._buffer:  # the application's reads of this delivery
            coro = reader.read(READ)
            try:
                coro.send(None)
            except StopIteration as e:
                got += len(e.value)
        now += 0.001
    assert got == n * SUPER, got
    assert conn.state.name == "ESTABLISHED", conn.state
    loop.close()


def report(whats: tuple[str, ...] = ("send", "recv"), n1: int = 20, n2: int = 120) -> dict[str, float]:
    from bench.callgrind import instructions

    def count(what: str, n: int) -> int:
        return instructions("callgrind_tcp_offload.py", what, n)

    res: dict[str, float] = {}
    for what, per in (("send", WRITE), ("recv", SUPER), ("send-clocked", CLOCK_ACK)):
        if what not in whats:
            continue
        cost = (count(what, n2) - count(what, n1)) - (count(what + "-build", n2) - count(what + "-build", n1))
        res[f"{what}_instructions_per_mb"] = round(cost / ((n2 - n1) * per / 1e6))
    return res


def ops(what: str, n1: int = 10, n2: int = 30) -> list[tuple[str, float, float]]:
    """Where the per-iteration work goes, by Python function: (function, bytecodes, calls) per iteration of
    `what` ((count(n2) - count(n1)) / (n2 - n1), under a sys.settrace opcode counter, as bench/wakeup_ops.py
    does), most bytecodes first. Deterministic; pairs with `report` (instructions)."""
    from collections import Counter

    from bench.opcount import tracer

    def count(n: int) -> tuple[Counter[str], Counter[str]]:
        trace, code, calls = tracer()
        sys.settrace(trace)
        try:
            main(what, n)
        finally:
            sys.settrace(None)
        return code, calls

    (o1, c1), (o2, c2) = count(n1), count(n2)
    d = n2 - n1
    rows = [(k, (o2[k] - o1[k]) / d, (c2[k] - c1[k]) / d) for k in o2]
    return sorted((r for r in rows if r[1] or r[2]), key=lambda r: -r[1])


def main(what: str, n: int) -> None:
    fn = send_clocked if what.startswith("send-clocked") else send if what.startswith("send") else recv
    fn(n, what.endswith("-build"))


if __name__ == "__main__":
    if sys.argv[1] == "report":
        print(json.dumps(report(tuple(sys.argv[2:]) or ("send", "recv"))))
    elif sys.argv[1] == "ops":
        table = ops(sys.argv[2])
        print(f"{sum(r[1] for r in table):9.1f} bytecodes {sum(r[2] for r in table):6.1f} calls per iteration")
        for name, code, calls in table[:40]:
            print(f"{code:9.1f} {calls:6.1f}  {name}")
    else:
        main(sys.argv[1], int(sys.argv[2]))
