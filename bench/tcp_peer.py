"""The bulk-TCP application of bench/tcp.py, the same asyncio streams code on every stack, and its CLI.

`bulk_handler` is the server: it runs on the kernel's stack in the TAP namespace (the peer of the floor
and of tcpip) and in the veth server namespace. `bulk_client` is the client: `reader.read(256 KiB)` loop
to receive, `write(64 KiB)` + `drain()` to send. Run inside a namespace:

  python bench/tcp_peer.py server HOST PORT                  asyncio server on kernel sockets
  python bench/tcp_peer.py client HOST PORT get|put N        asyncio client on kernel sockets (veth row)
  python bench/tcp_peer.py tcpip HOST PORT get|put N --tap tap0 --ipv4 198.18.0.2/24 [--offload] [--gateway GW]
                                                             the client on tcpip over the TAP

Protocol: `get N\\n` (the server sends N bytes of `PATTERN`, then FIN) or `put N\\n` + N bytes + FIN (the
server reads to EOF and answers `COUNT SHA256HEX\\n`, then FIN). Both ends check the sha256 of the data.
Clients print one JSON line: bytes, seconds (connect to last byte), mbit_s, cpu_s (user+sys from
os.times of this process over the same span), cpu_ru_s (the same from getrusage, in microseconds), ok (count
and sha256 both right).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import hashlib
import inspect
import json
import os
import random
import resource
import sys
import time
from typing import Any

READ = 1 << 18  # reader.read(256 KiB)
WRITE = 1 << 16  # write(64 KiB) + drain()
PATTERN_LEN = 1_048_573  # prime: a misplaced 64 KiB block or segment changes the sha256
_P = random.Random(14).randbytes(PATTERN_LEN)
_DOUBLE = memoryview(_P + _P[:READ])  # any slice of <= 256 KiB at (offset % PATTERN_LEN) is contiguous


def chunk(offset: int, k: int) -> memoryview:
    """Bytes offset..offset+k of the endless data stream (k <= 256 KiB), without copying."""
    i = offset % PATTERN_LEN
    return _DOUBLE[i:i + k]


@functools.cache
def expected_sha256(n: int) -> str:
    h = hashlib.sha256()
    off = 0
    while off < n:
        k = min(READ, n - off)
        h.update(chunk(off, k))
        off += k
    return h.hexdigest()


async def bulk_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        cmd, n_text = (await reader.readline()).split()
        n = int(n_text)
        if cmd == b"get":
            sent = 0
            while sent < n:
                k = min(WRITE, n - sent)
                writer.write(chunk(sent, k))
                sent += k
                await writer.drain()
        else:
            h = hashlib.sha256()
            got = 0
            while data := await reader.read(READ):
                got += len(data)
                h.update(data)
            writer.write(f"{got} {h.hexdigest()}\n".encode())
            await writer.drain()
    except (ConnectionError, ValueError):
        pass
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass


async def bulk_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, cmd: str,
                      n: int) -> dict[str, Any]:
    """The client half on any stack: returns bytes moved and whether count and sha256 match."""
    writer.write(f"{cmd} {n}\n".encode())
    if cmd == "get":
        h = hashlib.sha256()
        got = 0
        while data := await reader.read(READ):
            got += len(data)
            h.update(data)
        digest = h.hexdigest()
    else:
        sent = 0
        while sent < n:
            k = min(WRITE, n - sent)
            writer.write(chunk(sent, k))
            sent += k
            await writer.drain()
        writer.write_eof()
        reply = (await reader.read(1024)).split()
        while not reply or len(reply) < 2:  # the reply line may arrive in pieces
            more = await reader.read(1024)
            if not more:
                break
            reply += more.split()
        got = int(reply[0]) if reply else -1
        digest = reply[1].decode() if len(reply) > 1 else ""
    writer.close()
    try:
        await writer.wait_closed()
    except ConnectionError:
        pass
    return {"bytes": got, "sha256_ok": digest == expected_sha256(n), "ok": got == n and digest == expected_sha256(n)}


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def _cpu_ru() -> tuple[float, float]:
    """The same user and sys as os.times(), in microseconds rather than 10 ms ticks."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime


async def _timed(connect: Any, cmd: str, n: int) -> dict[str, Any]:
    expected_sha256(n)  # computed before the clock starts
    t0, c0, r0 = time.perf_counter(), _cpu(), _cpu_ru()
    reader, writer = await connect()
    res = await bulk_client(reader, writer, cmd, n)
    dt, cpu, r1 = time.perf_counter() - t0, _cpu() - c0, _cpu_ru()
    user, system = r1[0] - r0[0], r1[1] - r0[1]
    res.update(seconds=dt, mbit_s=n * 8 / dt / 1e6, cpu_s=cpu, cpu_ru_s=user + system, cpu_sys_s=system)
    return res


async def serve(host: str, port: int) -> None:
    server = await asyncio.start_server(bulk_handler, host, port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


async def kernel_client(host: str, port: int, cmd: str, n: int) -> dict[str, Any]:
    return await _timed(lambda: asyncio.open_connection(host, port, limit=READ), cmd, n)


async def tcpip_client(a: argparse.Namespace) -> dict[str, Any]:
    from tcpip.netif.tap import TapDevice
    from tcpip.stack import Stack

    has_offload = "offload" in inspect.signature(TapDevice.open).parameters
    if a.offload and not has_offload:
        return {"unavailable": "TapDevice has no offload mode"}
    kw: dict[str, Any] = {"offload": a.offload} if has_offload else {}
    dev = await TapDevice.open(a.tap, mac=a.mac, **kw)
    mode = bool(getattr(dev, "offload", False))
    if mode != a.offload:
        dev.close()
        return {"unavailable": f"TapDevice opened with offload={mode}, asked {a.offload}"}
    stack = await Stack.connect(dev, ipv4=a.ipv4, gateways=[a.gateway] if a.gateway else [])
    if a.watchdog:
        asyncio.get_running_loop().call_later(a.watchdog, _watchdog, stack)
    try:
        res = await _timed(lambda: stack.open_connection(a.host, a.port, limit=READ), a.cmd, a.n)
        st = stack.stats()
        res["counters"] = {k: v for k, v in st.get("tcp", {}).items() if v}
        res["device"] = {k: v for k, v in st.get("device", {}).items() if v}
        res["offload"] = mode
        return res
    finally:
        await stack.disconnect()


_CONN_FIELDS = ("state", "snd_una", "snd_nxt", "snd_max", "snd_wnd", "fin_queued", "rto", "retries", "timer_at",
                "rexmit_at", "persist", "delack_at", "linger_at", "in_recovery", "recover", "loss_at", "app_closed",
                "cwnd", "ssthresh")


def _watchdog(stack: Any) -> None:
    """`--watchdog S`: the transfer is not done after S seconds. Print what a stall needs to be understood
    (every connection's send and timer state, sequence numbers relative to the ISS; the TCP counters; the
    host's next deadline; where each task waits) to stderr and exit 3."""
    out = sys.stderr
    now = stack.runner.now()
    print(f"watchdog: not done after the deadline; now {now:.3f}, next deadline {stack.core.poll_at()}", file=out)
    print("tcp counters", {k: v for k, v in stack.stats().get("tcp", {}).items() if v}, file=out)
    for c in stack.tcp.layer.conns.values():
        d = {k: getattr(c, k, None) for k in _CONN_FIELDS}
        for k in ("snd_una", "snd_nxt", "snd_max", "recover"):
            d[k] = (d[k] - c.iss) & 0xFFFFFFFF
        d["rcv_nxt"] = (c.rcvbuf.rcv_nxt - c.irs) & 0xFFFFFFFF
        print("connection", c.key, d, file=out)
    for t in asyncio.all_tasks():
        chain, co = [], t.get_coro()
        while co is not None:
            f = getattr(co, "cr_frame", None)
            chain.append(f"{getattr(co, '__qualname__', type(co).__name__)}:{f.f_lineno if f else '?'}")
            co = getattr(co, "cr_await", None)
        print("task", " -> ".join(chain), file=out)
    out.flush()
    os._exit(3)


def _loop_factory() -> Any:
    if os.environ.get("TCPIP_LOOP", "").lower() == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=("server", "client", "tcpip"))
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("cmd", nargs="?", choices=("get", "put"))
    ap.add_argument("n", nargs="?", type=int, default=0)
    ap.add_argument("--tap", default="tap0")
    ap.add_argument("--ipv4", default="198.18.0.2/24")
    ap.add_argument("--mac", default="02:00:00:00:00:02")
    ap.add_argument("--gateway", default=None, help="tcpip: a router for off-link peers (the loss runs)")
    ap.add_argument("--offload", action="store_true")
    ap.add_argument("--watchdog", type=float, default=0.0,
                    help="tcpip: after this many seconds, print the connections' state to stderr and exit 3")
    a = ap.parse_args(argv)
    if a.mode == "server":
        asyncio.run(serve(a.host, a.port))
        return 0
    factory = _loop_factory()
    with asyncio.Runner(loop_factory=factory) as runner:
        if a.mode == "client":
            res = runner.run(kernel_client(a.host, a.port, a.cmd, a.n))
        else:
            res = runner.run(tcpip_client(a))
    res["loop"] = "uvloop" if factory is not None else "asyncio"
    print(json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
