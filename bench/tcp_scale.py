"""TCP at scale: N idle connections between two stacks on a Hub: memory per connection, idle timer work, and a
bulk transfer on one more connection beside them against the same transfer with none open.

- Memory: N connections (asyncio Protocols at both ends) opened between stacks A and B on one Hub, in
  batches; tracemalloc bytes per connection (both ends: A's client + B's accepted server connection, their
  transports and protocols) after a collection; RSS growth per connection from /proc/self/statm in a run
  without tracemalloc.
- Idle timers: for `idle_s` real seconds the loop runs with the N connections open beside a pair with
  none; counted per pair: calls of the TCP layer's poll_at / handle_timeout, connections whose timer ran
  (`on_timer`), loop timer wake-ups of the runner, and the timer heap's size. A cProfile of the idle window
  shows where the time went (nothing, if no scan exists).
- Bulk: `bulk_mb` MB over a fresh stream connection on each pair (write(64 KiB) + drain, read(256 KiB)),
  runs interleaved (none, N, none, N, ...); speed = MB per CPU second of this process (both stacks
  run in it: `time.process_time`, not wall time); ratio = median(with N) / median(none).
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import io
import os
import pstats
import random
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

Log = Callable[[str], None]
A, B = "198.18.0.1", "198.18.0.2"
PORT, BULK_PORT = 7000, 7001
_BATCH = 250  # connects in flight at once (below the listener's SYN backlog)


class Idle(asyncio.Protocol):
    """Holds its transport and does nothing."""

    __slots__ = ("transport",)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport


class Pair:
    """Two stacks on one Hub, A the client side, B the server (idle protocols on PORT, a sink on BULK_PORT)."""

    def __init__(self, a: Any, b: Any, seed: int) -> None:
        self.a, self.b, self.seed = a, b, seed
        self.conns: list[tuple[asyncio.BaseTransport, Idle]] = []
        self.accepted: list[Idle] = []
        self.counts = {"poll_at": 0, "handle_timeout": 0, "runner_wakeups": 0}
        for s in (a, b):
            _count_timers(s, self.counts)

    @classmethod
    async def make(cls, seed: int) -> Pair:
        from tcpip import Stack
        from tcpip.netif import Hub

        hub = Hub()
        a = await Stack.connect(hub.port(), ipv4=f"{A}/24", rng=random.Random(seed))
        b = await Stack.connect(hub.port(), ipv4=f"{B}/24", rng=random.Random(seed + 1))
        p = cls(a, b, seed)

        def accept() -> Idle:
            x = Idle()
            p.accepted.append(x)
            return x

        await b.create_server(accept, B, PORT, backlog=4096)
        await b.start_server(_sink, B, BULK_PORT)
        return p

    async def open_idle(self, n: int) -> None:
        a = self.a
        while len(self.conns) < n:
            k = min(_BATCH, n - len(self.conns))
            self.conns.extend(await asyncio.gather(*(a.create_connection(Idle, B, PORT) for _ in range(k))))
        for _ in range(50):  # the server side's connection_made runs on a later turn
            if len(self.accepted) >= n:
                break
            await asyncio.sleep(0)
        if len(self.accepted) < n:
            raise RuntimeError(f"only {len(self.accepted)} of {n} connections accepted")

    def timer_entries(self) -> int:
        return len(self.a.tcp.layer.timers) + len(self.b.tcp.layer.timers)

    async def close(self) -> None:
        await self.a.disconnect()
        await self.b.disconnect()


def _count_timers(stack: Any, counts: dict[str, int]) -> None:
    """Wrap the TCP layer's timer source and the runner's wake-up so that every call is counted."""
    layer, core, runner = stack.tcp.layer, stack.core, stack.runner
    poll, handle = layer.poll_at, layer.handle_timeout

    def poll_at() -> float | None:
        counts["poll_at"] += 1
        return poll()  # type: ignore[no-any-return]

    def handle_timeout(now: float) -> None:
        counts["handle_timeout"] += 1
        handle(now)

    core.timer_sources = [(poll_at, handle_timeout) if s == (poll, handle) else s for s in core.timer_sources]
    wake = runner._on_timer

    def on_timer() -> None:
        counts["runner_wakeups"] += 1
        wake()

    runner._on_timer = on_timer


async def _sink(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    n = 0
    while data := await r.read(262144):
        n += len(data)
    w.write(n.to_bytes(8, "big"))
    await w.drain()
    w.close()


async def _bulk(p: Pair, nbytes: int) -> float:
    """CPU seconds to move nbytes from A to B over a new connection (the count is echoed back and checked)."""
    chunk = bytes(65536)
    t0 = time.process_time()
    r, w = await p.a.open_connection(B, BULK_PORT)
    left = nbytes
    while left > 0:
        w.write(chunk if left >= len(chunk) else chunk[:left])
        left -= len(chunk)
        await w.drain()
    w.write_eof()
    got = int.from_bytes(await r.readexactly(8), "big")
    cpu = time.process_time() - t0
    w.close()
    if got != nbytes:
        raise RuntimeError(f"bulk: {got} of {nbytes} bytes arrived")
    return cpu


def _rss() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def _on_timer_counter() -> tuple[dict[str, int], Callable[[], None]]:
    """Count the connections whose timers run (layer.on_timer); returns the counts and an undo."""
    from tcpip.core.tcp import layer as layer_mod

    real = layer_mod.on_timer
    counts = {"n": 0}

    def counting(conn: Any, now: float) -> None:
        counts["n"] += 1
        real(conn, now)

    layer_mod.on_timer = counting  # type: ignore[assignment]

    def undo() -> None:
        layer_mod.on_timer = real

    return counts, undo


async def _run(n: int, bulk_mb: int, repeats: int, idle_s: float, log: Log) -> dict[str, Any]:
    out: dict[str, Any] = {"connections": n, "bulk_mb": bulk_mb, "idle_seconds": idle_s}
    # -- the measured pairs: `none` without, `full` with n idle connections (RSS growth measured)
    none = await Pair.make(1)
    full = await Pair.make(3)
    gc.collect()
    rss0 = _rss()
    t0 = time.process_time()
    await full.open_idle(n)
    out["open_cpu_seconds"] = round(time.process_time() - t0, 2)
    gc.collect()
    out["rss_bytes_per_connection"] = round((_rss() - rss0) / n)
    out["established"] = {"a": full.a.stats()["tcp"]["CurrEstab"], "b": full.b.stats()["tcp"]["CurrEstab"]}
    log(f"  RSS growth {out['rss_bytes_per_connection']} B per connection; {out['open_cpu_seconds']} CPU s "
        f"to open; CurrEstab {out['established']}")
    # -- idle: both pairs side by side, every timer call counted
    await asyncio.sleep(0.3)  # the last handshakes' delayed work, if any
    touched, undo = _on_timer_counter()
    for p in (none, full):
        p.counts.update(dict.fromkeys(p.counts, 0))
    heap = {"none": none.timer_entries(), "full": full.timer_entries()}
    prof = cProfile.Profile()
    t0 = time.process_time()
    prof.enable()
    await asyncio.sleep(idle_s)
    prof.disable()
    idle_cpu = time.process_time() - t0
    undo()
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(8)
    excerpt = [ln for ln in text.getvalue().splitlines() if ln.strip()][:16]
    out["idle"] = {"none": dict(none.counts), "full": dict(full.counts), "connections_touched": touched["n"],
                   "timer_heap_entries": heap, "cpu_seconds": round(idle_cpu, 4), "profile": excerpt}
    log(f"  idle {idle_s} s: timer calls with none open {none.counts}, with {n} open {full.counts}; "
        f"connections whose timer ran: {touched['n']}; timer heap entries {heap}; {idle_cpu * 1e3:.1f} ms CPU")
    for ln in excerpt:
        log(f"    | {ln}")
    # -- bulk: interleaved, CPU time per run, after one warm-up run on each pair
    nbytes = bulk_mb * 1_000_000
    for p in (none, full):
        await _bulk(p, nbytes // 4)
    runs: dict[str, list[float]] = {"none": [], "full": []}
    for _ in range(repeats):
        for name, p in (("none", none), ("full", full)):
            runs[name].append(nbytes / 1e6 / await _bulk(p, nbytes))
    med = {k: statistics.median(v) for k, v in runs.items()}
    out["bulk_mb_per_cpu_s"] = {k: [round(x, 1) for x in v] for k, v in runs.items()}
    out["bulk_ratio"] = round(med["full"] / med["none"], 3)
    out["still_established"] = full.a.stats()["tcp"]["CurrEstab"]
    log(f"  bulk {bulk_mb} MB: {med['none']:.1f} MB/CPU-s with none open, {med['full']:.1f} with {n} open: "
        f"ratio {out['bulk_ratio']} (median of {repeats}; target >= 0.8)")
    await none.close()
    await full.close()
    del none, full
    # -- memory: tracemalloc over opening n connections on a pair of their own (last: RSS is measured
    # first, in a process that has not yet freed the memory of another n connections)
    gc.collect()
    tracemalloc.start()
    m = await Pair.make(100)
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    t0 = time.process_time()
    await m.open_idle(n)
    open_cpu = time.process_time() - t0
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    await m.close()
    del m
    gc.collect()
    out["tracemalloc_bytes_per_connection"] = round((after - before) / n)
    log(f"  {n} idle connections: {out['tracemalloc_bytes_per_connection']} B per connection "
        f"(tracemalloc, client + server end, with transports and protocols; opened in {open_cpu:.1f} CPU s "
        "under tracemalloc)")
    return out


def run(quick: bool, log: Log, n: int | None = None) -> dict[str, Any]:
    n = n if n is not None else (2000 if quick else 10_000)
    return asyncio.run(_run(n, 5 if quick else 20, 1 if quick else 3, 1.0 if quick else 3.0, log))


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    res = run("--quick" in sys.argv, print)
