"""Scale: memory per emulated host, and per-operation cost of the ARP and reassembly tables as they fill.

- Memory: N stacks (N = 1, 100, 1000) on one switching Hub, each with an address (so each announces
  itself with a gratuitous ARP that every other host receives); traced with tracemalloc after the
  loop is idle and a collection; bytes per host = (traced after - traced before) / N.
- ARP: an Interface learns neighbours from ARP requests addressed to it (the real input path);
  lookup ns of a known neighbour and learn ns of a new one, at growing fill up to the cache size and
  beyond it (evictions). Flat is the target.
- Reassembly (`tcpip.core.reassembly.Reassembler`, skipped when absent): ns to reassemble a 2-fragment
  datagram with K incomplete datagrams held, K up to the limits (and beyond: evictions).
"""

from __future__ import annotations

import asyncio
import functools
import gc
import itertools
import random
import statistics
import struct
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

from bench.frames import OUR_IP, OUR_MAC, cksum
from bench.timing import measure

Log = Callable[[str], None]
_ARP = struct.Struct("!6s6sHHHBBH6s4s6s4s")


# -- memory per host -------------------------------------------------------------------------------
async def _hosts(n: int) -> dict[str, Any]:
    from tcpip.netif.hub import Hub
    from tcpip.stack import Stack

    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        hub = Hub(switch=True)
        stacks = []
        t0 = time.perf_counter()
        for i in range(n):
            a = 0xC6120000 + 10 + i
            stacks.append(await Stack.connect(hub.port(), ipv4=f"{a >> 24}.{(a >> 16) & 255}.{(a >> 8) & 255}."
                                              f"{a & 255}/15", rng=random.Random(i)))
        for _ in range(5):  # let every announcement reach every port
            await asyncio.sleep(0)
        gc.collect()
        after, peak = tracemalloc.get_traced_memory()
        elapsed = time.perf_counter() - t0
    finally:
        tracemalloc.stop()
    for s in stacks:
        await s.disconnect()
    return {"hosts": n, "bytes_per_host": round((after - before) / n), "peak_bytes": peak - before,
            "hub_frames": hub.frames, "seconds": round(elapsed, 2)}


def memory(ns: tuple[int, ...], log: Log) -> list[dict[str, Any]]:
    out = []
    for n in ns:
        r = asyncio.run(_hosts(n))
        out.append(r)
        log(f"  memory   {n:5} hosts: {r['bytes_per_host'] / 1024:7.1f} KiB/host  (announcements: {r['hub_frames']},"
            f" {r['seconds']} s)")
    return out


# -- ARP -----------------------------------------------------------------------------------------
def _arp_request(i: int) -> bytes:
    mac = b"\x02\x10" + i.to_bytes(4, "big")
    ip = (0xC6130000 + i).to_bytes(4, "big")  # 198.19.x.y: on-link for a /15
    return _ARP.pack(OUR_MAC, mac, 0x0806, 1, 0x0800, 6, 4, 1, mac, ip, bytes(6), OUR_IP.to_bytes(4, "big")) \
        + bytes(18)


def _lookup_next(lookup: Callable[[int, float], object], it: Iterator[int]) -> object:
    return lookup(next(it), 2.0)


def arp(fills: tuple[int, ...], repeats: int, target_s: float, log: Log) -> dict[str, Any]:
    from tcpip.core.config import InterfaceConfig
    from tcpip.core.interface import Interface
    from tcpip.wire.mac import MacAddress

    cfg = InterfaceConfig(mac=MacAddress(OUR_MAC), address=OUR_IP, netmask=0xFFFE0000)
    iface = Interface(cfg, now=0.0, rng=random.Random(1))
    size = cfg.arp_cache_size
    rows = []
    learned = 0
    for fill in fills:
        while learned < fill:  # learn neighbours up to this fill (beyond the cap: evictions)
            iface.receive(memoryview(_arp_request(learned)), 1.0)
            learned += 1
        iface.tx.clear()
        present = [ip for ip, e in iface.arp.entries.items() if e.mac is not None]
        it = itertools.cycle(random.Random(3).sample(present, min(len(present), 512)))
        lookup = iface.arp.lookup
        step: Callable[[], object] = functools.partial(_lookup_next, lookup, it)
        t_lookup = measure(step, repeats=repeats, target_s=target_s)
        # learning new neighbours at this fill (each one evicts the oldest once the table is full)
        batches: list[float] = []
        for _ in range(repeats):
            base = learned if fill >= size else 0x100000 + len(batches) * 200  # below the cap: temporary ones
            frames = [memoryview(_arp_request(base + k)) for k in range(200)]
            recv, tx = iface.receive, iface.tx
            t0 = time.perf_counter_ns()
            for f in frames:
                recv(f, 1.0)
                tx.clear()
            batches.append((time.perf_counter_ns() - t0) / len(frames))
            if fill < size:  # forget them again: the next batch sees the same fill
                for k in range(200):
                    iface.arp.remove(0xC6130000 + base + k)
            else:
                learned += 200
        row = {"fill": fill, "entries": len(iface.arp.entries), "lookup_ns": round(t_lookup.ns, 1),
               "learn_ns": round(statistics.median(batches), 1)}
        rows.append(row)
        log(f"  arp      fill {fill:6} ({row['entries']:5} entries, cap {size}): lookup {row['lookup_ns']:6.0f} ns"
            f"  learn {row['learn_ns']:6.0f} ns")
    return {"cache_size": size, "rows": rows, "evictions": iface.arp.stats.evictions}


# -- reassembly ----------------------------------------------------------------------------------
def _frag(src: int, ident: int, off: int, more: bool, payload: bytes) -> tuple[bytes, bytes]:
    h = bytearray(struct.pack("!BBHHHBBHII", 0x45, 0, 20 + len(payload), ident, (0x2000 if more else 0) | off // 8,
                              64, 17, 0, src, OUR_IP))
    struct.pack_into("!H", h, 10, cksum(h))
    return bytes(h), payload


def reassembly(fills: tuple[int, ...], repeats: int, log: Log) -> dict[str, Any]:
    try:
        from tcpip.core.reassembly import Reassembler
    except ImportError as e:
        log(f"  reassembly skipped: {e}")
        return {"skipped": str(e)}
    r = Reassembler()
    cfg = r.config
    rows = []
    held = 0
    now = 1.0
    seq = itertools.count()
    p8 = bytes(8)
    p1 = bytes(1472)
    for fill in fills:
        while held < fill:  # incomplete datagrams: a first fragment each, from many sources
            i = next(seq)
            h, p = _frag(0xC6130000 + (i & 0xFFFF), i >> 16 & 0xFFFF, 0, True, p8)
            r.process(memoryview(h), memoryview(p), now)
            held += 1
        samples = []
        for _ in range(repeats):
            pairs = []
            for _k in range(200):
                i = next(seq)
                src = 0xC6130000 + (i & 0xFFFF)
                pairs.append((_frag(src, i >> 16 & 0xFFFF, 0, True, p1), _frag(src, i >> 16 & 0xFFFF, 1472, False, p1)))
            proc = r.process
            done = 0
            t0 = time.perf_counter_ns()
            for (h1, d1), (h2, d2) in pairs:
                proc(memoryview(h1), memoryview(d1), now)
                if proc(memoryview(h2), memoryview(d2), now) is not None:
                    done += 1
            samples.append((time.perf_counter_ns() - t0) / len(pairs))
            if done != len(pairs):
                log(f"  ! reassembly: only {done}/{len(pairs)} datagrams completed at fill {fill}")
        row = {"fill": fill, "held": len(r), "memory": r.memory,
               "ns_per_datagram": round(statistics.median(samples), 1)}
        rows.append(row)
        log(f"  reasm    fill {fill:6} ({row['held']:6} held, {row['memory'] / 2**20:5.2f} MiB):"
            f" {row['ns_per_datagram']:6.0f} ns per 2-fragment datagram")
    return {"max_memory": cfg.max_memory, "max_datagrams": cfg.max_datagrams, "rows": rows,
            "stats": {k: getattr(r.stats, k) for k in ("evicted", "datagram_limit", "source_limit", "memory_limit")}}


def run(quick: bool, repeats: int, target_s: float, log: Log) -> dict[str, Any]:
    hosts = (1, 100, 300) if quick else (1, 100, 1000)
    return {
        "memory": memory(hosts, log),
        "arp": arp((16, 256, 1024, 4096) if quick else (16, 128, 512, 1024, 4096, 16384), repeats, target_s, log),
        "reassembly": reassembly((0, 1000, 10000, 40000) if quick else (0, 100, 1000, 10000, 30000, 60000),
                                 repeats, log),
    }
