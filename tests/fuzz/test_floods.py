"""Floods, bounded in time: random and mutated frames from many sources; ARP requests from 100k senders;
unfinished fragment sets. No table grows past its cap, memory after a flood is within a constant of
memory before (tracemalloc, after gc), and the stack still answers a ping.

`FLOOD_FRAMES` (env TCPIP_FLOOD_FRAMES) sizes the CI flood; the `slow` one sends a million frames.
Figures (frames/s, memory) are printed: `pytest -s tests/fuzz/test_floods.py`."""

from __future__ import annotations

import gc
import os
import random
import time
import tracemalloc
from collections.abc import Callable

import pytest
from fuzz_support import (
    OUR_IP,
    FloodGen,
    balanced,
    check_emitted,
    make_iface,
    over_caps,
    ping_answered,
    seed_frames,
    table_caps,
    table_sizes,
)
from scapy.layers.inet import IP, UDP, fragment
from scapy.layers.l2 import Ether
from testlib import neighbours, queued, sent, settle

from tcpip import Stack
from tcpip.core.interface import Interface
from tcpip.core.stats import as_dict, unbalanced
from tcpip.netif import Hub

FLOOD_FRAMES = int(os.environ.get("TCPIP_FLOOD_FRAMES", "100000"))
# What the capped tables may hold at most with the default caps (1024 ARP entries, 4096 idents, PMTU and
# ICMP rate entries, 4 MiB of reassembly accounting + its metadata), measured at ~3.5 MiB, with room.
TABLES_BOUND = 8 * 1024 * 1024
LEAK_BOUND = 256 * 1024  # growth allowed between the half and the end of a flood (tables full by then)


def traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def run_flood(iface: Interface, gen: Callable[[], bytes], n: int, now: float,
              check_every: int = 10_000, on_check: Callable[[], None] | None = None) -> float:
    """`n` frames at 25.6k frames per virtual second; timers run when due; every `check_every` frames
    the caps are checked (and `on_check` called). Emitted frames are dropped (the checks of what the
    stack emits live in test_fuzz_input.py), except a sample checked here."""
    receive = iface.receive
    for i in range(n):
        receive(memoryview(gen()), now)
        if queued(iface):
            out = sent(iface)
            if i % 997 == 0:
                for f in out:
                    check_emitted(f)
        if iface.loopback:
            iface.loopback.clear()
        if not i & 255:
            now += 0.01
            at = iface.poll_at()
            if at is not None and at <= now:
                iface.handle_timeout(now)
                sent(iface)
        if i % check_every == 0:
            assert over_caps(iface) == [], i
            if on_check is not None:
                on_check()
    return now


def flood_and_measure(n: int, label: str) -> None:
    gen = FloodGen(random.Random(n)).next  # the generator's own memory is not the stack's
    tracemalloc.start()
    try:
        iface, _ = make_iface()
        assert ping_answered(iface, 0.5)
        before = traced()
        now = run_flood(iface, gen, n // 2, 1.0)  # the first half fills the tables to their caps
        half = traced()
        t = time.perf_counter()
        now = run_flood(iface, gen, n - n // 2, now)
        dt = time.perf_counter() - t
        full = traced()
        assert over_caps(iface) == []
        sizes = table_sizes(iface)
        caps = table_caps(iface)
        # the flood did reach the caps that bound memory
        for k in ("arp_entries", "icmp_rate_table", "ident_table", "pmtu_table"):
            assert sizes[k] > caps[k] * 0.9, (k, sizes[k])
        assert sizes["reassembly_memory"] > caps["reassembly_memory"] * 0.9
        assert balanced(iface) == []
        assert ping_answered(iface, now)
        iface.handle_timeout(now + 3600.0)  # every reassembly queue and ARP query times out
        sent(iface)
        after = traced()
    finally:
        tracemalloc.stop()
    print(f"\n[{label}] {n} frames; second half {(n - n // 2) / dt:,.0f} frames/s under tracemalloc; "
          f"memory before {before / 1024:.0f} KiB, at half {half / 1024:.0f} KiB, full {full / 1024:.0f} KiB, "
          f"after expiry {after / 1024:.0f} KiB; tables {sizes}")
    assert full - half < LEAK_BOUND, "memory grows with the number of frames"
    assert after - before < TABLES_BOUND


def test_flood_ci_sized() -> None:
    flood_and_measure(FLOOD_FRAMES, "CI flood")


@pytest.mark.slow
def test_flood_one_million_frames() -> None:
    flood_and_measure(1_000_000, "1M flood")


def test_flood_speed_without_tracemalloc() -> None:
    """The same flood untraced: the frames/s figure of docs/ROBUSTNESS.md (asserted loosely)."""
    iface, _ = make_iface()
    gen = FloodGen(random.Random(7))
    frames = [gen.next() for _ in range(50_000)]
    it = iter(frames * 2)
    t = time.perf_counter()
    run_flood(iface, it.__next__, 100_000, 1.0, check_every=100_000)
    dt = time.perf_counter() - t
    print(f"\n[flood speed] 100000 frames in {dt:.2f} s: {100_000 / dt:,.0f} frames/s")
    assert dt < 20.0


def test_arp_flood_from_100k_sources_keeps_the_cache_at_its_bound() -> None:
    iface, _ = make_iface()
    t = bytearray(seed_frames()["arp_request"])
    size = iface.config.arp_cache_size
    tracemalloc.start()
    try:
        before = traced()
        peak_entries = 0
        for i in range(100_000):
            ip = (0x0A000000 + i + 1).to_bytes(4, "big")  # 10.0.0.1 ... : 100k distinct senders
            t[6:12] = t[22:28] = b"\x02\x01" + (i + 1).to_bytes(4, "big")
            t[28:32] = ip
            iface.receive(memoryview(t), 1.0 + i * 1e-5)
            sent(iface)
            if i % 5000 == 0:
                peak_entries = max(peak_entries, len(neighbours(iface)))
        after = traced()
    finally:
        tracemalloc.stop()
    st = iface.arp.stats
    assert len(neighbours(iface)) == size
    assert peak_entries <= size
    assert st.entries_created == 100_000
    assert st.evictions == 100_000 - size
    assert st.replies_sent == 100_000  # each asker was answered
    assert balanced(iface) == []
    assert ping_answered(iface, 3.0)
    print(f"\n[ARP flood] 100k senders: cache {len(neighbours(iface))}/{size}, "
          f"memory +{(after - before) / 1024:.0f} KiB")
    assert after - before < 2 * 1024 * 1024


def test_unfinished_fragment_flood_keeps_reassembly_memory_at_its_bound() -> None:
    iface, udp = make_iface()
    r = iface.reassembler
    assert r is not None
    cfg = r.config
    t = bytearray(seed_frames()["frag_first"])  # 1000 bytes of a 2400-byte datagram, MF set
    rng = random.Random(5)
    peak = 0
    now = 1.0
    for i in range(30_000):
        src = (0xC6120000 | rng.randrange(3, 250)) if i % 2 else rng.getrandbits(24) | 0x0B000000
        t[26:30] = src.to_bytes(4, "big")
        t[18:20] = (i & 0xFFFF).to_bytes(2, "big")
        t[24:26] = b"\x00\x00"
        s = int.from_bytes(t[14:34], "big") % 0xFFFF
        t[24:26] = (~s & 0xFFFF).to_bytes(2, "big")
        iface.receive(memoryview(t), now)
        now += 1e-4
        peak = max(peak, r.memory)
        assert r.memory <= cfg.max_memory
        assert len(r) <= cfg.max_datagrams
        assert all(r.source_memory(x) <= cfg.per_source_memory for x in (src,))
    assert r.memory > cfg.max_memory - 2 * (1000 + cfg.fragment_overhead)  # at the bound, not below
    assert r.stats.evicted > 0
    assert r.stats.reassembled == 0
    # a legitimate datagram whose fragments arrive promptly still completes (oldest queues are evicted)
    big = IP(src="198.18.0.1", dst=OUR_IP, id=0x7777) / UDP(sport=4000, dport=7) / (b"L" * 2400)
    for frag in fragment(big, fragsize=1000):
        iface.receive(memoryview(bytes(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01") / frag)), now)
    assert r.stats.reassembled == 1
    assert as_dict(udp.stats)["rx_delivered"] == 1
    sent(iface)
    # and when the flood stops, everything times out: memory back to zero, Time Exceeded rate limited
    iface.handle_timeout(now + cfg.timeout + 1)
    assert r.memory == 0
    assert len(r) == 0
    out = sent(iface)
    for f in out:
        check_emitted(f)
    assert len(out) <= iface.config.icmp_burst_global
    assert balanced(iface) == []
    assert ping_answered(iface, now + cfg.timeout + 2)
    print(f"\n[fragment flood] 30000 unfinished sets: peak {peak} bytes of {cfg.max_memory}, "
          f"evicted {r.stats.evicted}, timeouts {r.stats.timeouts}")


async def test_flood_through_a_running_stack_on_a_hub() -> None:
    """20k flood frames through the whole driver path (Hub -> Runner -> Interface -> timers)."""
    hub = Hub()
    attacker = hub.port("02:00:00:00:00:01")
    attacker.attach(lambda f: None)
    gen = FloodGen(random.Random(11))
    async with await Stack.connect(hub.port(), ipv4=f"{OUR_IP}/24", mac="02:00:00:00:00:02",
                                   gateways=["198.18.0.1"]) as b, \
            await Stack.connect(hub.port(), ipv4="198.18.0.3/24") as a:
        await b.udp_echo(7)
        t = time.perf_counter()
        for i in range(20_000):
            f = gen.next()
            if len(f) <= 1514:
                attacker.transmit((f,))
            if i % 500 == 0:
                await settle()
                assert over_caps(b.core) == []
        await settle()
        dt = time.perf_counter() - t
        c = b.core
        assert unbalanced(c.eth_stats, c.arp.stats, c.ip_stats) == []
        assert over_caps(c) == []
        assert (await a.ping(OUR_IP, timeout=1.0))[0] is not None
        print(f"\n[hub flood] 20000 frames through Hub+Runner in {dt:.2f} s: {20_000 / dt:,.0f} frames/s")
