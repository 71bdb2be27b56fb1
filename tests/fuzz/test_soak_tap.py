"""Soak: our stack on a TAP device in a private namespace (tcpip-s<pid>-<n>, 198.18.0.0/24) against the
kernel's ping (small and fragmented) and a kernel UDP client (sizes up to 8000 bytes, fragmented both ways),
while the stack pings the kernel, for TCPIP_SOAK_SECONDS (default 180) or 10 s; both run in real time, so
both are marked `slow` (run them with --run-slow or TCPIP_SLOW=1).
At the end it reports counters and memory (printed, and as JSON in the test's tmp dir) and asserts: no
loss beyond a trickle, no corrupted or duplicated echo, books balanced, tables under their caps, memory
growth within a constant (tracemalloc, after gc).

Network safety: only inside the namespace created here (removed afterwards, also on failure); loads are
bounded in rate and time; processes started here are stopped by their PID.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import time
import tracemalloc
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "kernel"))
from fuzz_support import over_caps
from kernel_support import KERNEL_IP, PREFIX, STACK_IP, TAP, ping_summary, python_exe, require_tap

from tcpip import Stack
from tcpip.core.stats import unbalanced
from tcpip.netif.fault import FaultInjector
from tcpip.netns import Namespace

pytestmark = pytest.mark.tap

UDP_CLIENT = r"""
import json, random, socket, sys, time
dur, rate = float(sys.argv[1]), float(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("198.18.0.1", 0))
s.setblocking(False)
rng = random.Random(1)
sizes = (0, 1, 18, 100, 512, 1468, 1469, 3000, 8000)
base = {n: bytes(rng.randrange(256) for _ in range(n)) for n in sizes}
sent = received = bad = 0
waiting = {}
t0 = time.monotonic()
due = t0
def drain():
    global received, bad
    while True:
        try:
            d = s.recv(65535)
        except BlockingIOError:
            return
        if waiting.pop(d[:4], None) == d:
            received += 1
        else:
            bad += 1
while time.monotonic() - t0 < dur:
    if time.monotonic() >= due:
        d = sent.to_bytes(4, "big") + base[rng.choice(sizes)]
        s.sendto(d, ("198.18.0.2", 7))
        waiting[d[:4]] = d
        sent += 1
        due += 1.0 / rate
    drain()
    time.sleep(max(0.0, min(0.002, due - time.monotonic())))
end = time.monotonic() + 1.0
while waiting and time.monotonic() < end:
    drain()
    time.sleep(0.01)
print(json.dumps({"sent": sent, "received": received, "bad": bad}))
"""


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


async def soak(seconds: float, tmp_path: Path) -> dict[str, Any]:
    require_tap("ip", "ping")
    ns = Namespace.create("s")  # tcpip-s<pid>-<n>
    procs: list[asyncio.subprocess.Process] = []
    try:
        ns.add_tap(TAP)
        ns.add_address(TAP, f"{KERNEL_IP}/{PREFIX}")
        dev = await ns.open_tap(TAP)
        async with await Stack.connect(dev, ipv4=f"{STACK_IP}/{PREFIX}") as stack:
            await stack.udp_echo(7)
            assert (await stack.ping(KERNEL_IP, timeout=2.0))[0] is not None  # warm: ARP both ways
            tracemalloc.start()
            mem0, rss0 = traced(), rss_kib()
            t0 = time.monotonic()
            secs = str(max(1, round(seconds)))
            small = await ns.start(["ping", "-n", "-q", "-i", "0.01", "-w", secs, "-W", "1", STACK_IP])
            big = await ns.start(["ping", "-n", "-q", "-i", "0.1", "-s", "3000", "-w", secs, "-W", "1",
                                  STACK_IP])
            udp = await ns.start([python_exe(), "-c", UDP_CLIENT, str(seconds), "200"])
            procs += [small, big, udp]
            ours = answered = 0
            while time.monotonic() - t0 < seconds:  # we ping the kernel meanwhile
                ours += 1
                answered += (await stack.ping(IPv4Address(KERNEL_IP), timeout=1.0))[0] is not None
                await asyncio.sleep(0.2)
            outs = [await asyncio.wait_for(p.communicate(), seconds + 30) for p in (small, big, udp)]
            procs.clear()
            elapsed = time.monotonic() - t0
            mem1, rss1 = traced(), rss_kib()
            tracemalloc.stop()
            c = stack.core
            report: dict[str, Any] = {
                "seconds": round(elapsed, 1),
                "kernel_ping": ping_summary(outs[0][0].decode()),
                "kernel_ping_3000": ping_summary(outs[1][0].decode()),
                "kernel_udp": json.loads(outs[2][0].decode().strip().splitlines()[-1]),
                "our_pings": {"sent": ours, "answered": answered},
                "memory_traced_kib": [mem0 // 1024, mem1 // 1024],
                "rss_kib": [rss0, rss1],
                "unbalanced": unbalanced(c.eth_stats, c.arp.stats, c.ip_stats),
                "over_caps": over_caps(c),
                "stats": stack.stats(),
            }
    finally:
        for p in procs:
            await Namespace.stop(p)
        if tracemalloc.is_tracing():
            tracemalloc.stop()
        await asyncio.to_thread(ns.remove)
    assert not ns.exists
    (tmp_path / "soak.json").write_text(json.dumps(report, indent=1))
    out = os.environ.get("TCPIP_SOAK_REPORT")
    if out:
        Path(out).write_text(json.dumps(report, indent=1))
    summary = {k: v for k, v in report.items() if k != "stats"}
    print(f"\n[soak] {json.dumps(summary)}")
    return report


def check(report: dict[str, Any]) -> None:
    for k in ("kernel_ping", "kernel_ping_3000"):
        s = report[k]
        assert s["transmitted"] > 0, (k, s)
        assert s["received"] >= 0.98 * s["transmitted"], (k, s)
    u = report["kernel_udp"]
    assert u["bad"] == 0, u  # never a corrupted, foreign or duplicated echo
    assert u["sent"] > 0, u
    assert u["received"] >= 0.98 * u["sent"], u
    o = report["our_pings"]
    assert o["answered"] >= 0.98 * o["sent"], o
    assert report["unbalanced"] == []
    assert report["over_caps"] == []
    m0, m1 = report["memory_traced_kib"]
    assert m1 - m0 < 2048, f"traced memory grew by {m1 - m0} KiB"
    st = report["stats"]
    assert st["ipv4"]["rx_reassembled"] > 0
    assert st["ipv4"]["tx_fragments"] > 0
    assert st["udp"]["rx_bad_checksum"] == 0
    assert st["ipv4"]["rx_bad_checksum"] == 0


@pytest.mark.slow
async def test_soak_short(tmp_path: Path) -> None:
    check(await soak(10.0, tmp_path))


@pytest.mark.slow
@pytest.mark.timeout(3600)
async def test_soak_long(tmp_path: Path) -> None:
    seconds = float(os.environ.get("TCPIP_SOAK_SECONDS", "180"))
    check(await soak(seconds, tmp_path))



async def test_fault_injector_on_a_tap_device() -> None:
    """The same middleware on a real device: 10% loss each way between the kernel and us."""
    require_tap("ip", "ping")
    ns = Namespace.create("f")
    try:
        ns.add_tap(TAP)
        ns.add_address(TAP, f"{KERNEL_IP}/{PREFIX}")
        lossy = FaultInjector(await ns.open_tap(TAP), seed=3, drop=0.1)
        async with await Stack.connect(lossy, ipv4=f"{STACK_IP}/{PREFIX}") as stack:
            r = await ns.run_async(["ping", "-n", "-q", "-c", "200", "-i", "0.005", "-W", "1", STACK_IP],
                                   timeout=30)
            s = ping_summary(r.stdout)
            st = lossy.fault_stats
            assert s["transmitted"] == 200
            assert 0.05 * 200 <= 200 - s["received"] <= 0.35 * 200, s  # ~19% expected
            assert st.dropped >= 200 - s["received"]
            assert stack.stats()["device"]["rx_dropped"] + stack.stats()["device"]["tx_dropped"] >= st.dropped
            c = stack.core
            assert unbalanced(c.eth_stats, c.arp.stats, c.ip_stats) == []
    finally:
        await asyncio.to_thread(ns.remove)
    assert not ns.exists
