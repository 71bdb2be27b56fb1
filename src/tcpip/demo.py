"""`tcpip demo`: tcpip talking to the Linux kernel over a TAP device in a private network namespace
(kernel 198.18.0.1/24, tcpip 198.18.0.2/24), or, without root or /dev/net/tun, to a second tcpip
host on an in-memory hub. The same exchanges either way: the peer pings us, ARPs for us and uses our
UDP echo service; we ping the peer; then TCP (demo_tcp): HTTP, echo, a file download and 100 MB each way.
Prints what happened and the counters; removes what it created."""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any

from tcpip import demo_tcp
from tcpip.netif.device import NetworkDevice
from tcpip.netif.hub import Hub
from tcpip.netif.pcap import PcapWriter
from tcpip.stack import Stack

KERNEL_IP = "198.18.0.1"
STACK_IP = "198.18.0.2"
PREFIX = 24
ECHO_PORT = 7
UDP_SIZES = (1, 512, 1472)

Out = Callable[[str], None]


@dataclass
class DemoReport:
    mode: str
    steps: list[tuple[str, bool, str]] = field(default_factory=list)

    def step(self, out: Out, name: str, ok: bool, detail: str) -> None:
        self.steps.append((name, ok, detail))
        out(f"  [{'ok' if ok else 'FAIL'}] {name}: {detail}")

    @property
    def ok(self) -> bool:
        return all(ok for _, ok, _ in self.steps)


def _ms(rtts: Sequence[float | None]) -> str:
    got = [r * 1000 for r in rtts if r is not None]
    if not got:
        return f"0/{len(rtts)} replies"
    return (f"{len(got)}/{len(rtts)} replies, rtt min/avg/max = "
            f"{min(got):.3f}/{statistics.fmean(got):.3f}/{max(got):.3f} ms")


def format_counters(stats: dict[str, dict[str, int]]) -> list[str]:
    """The non-zero counters, one line per layer."""
    lines = []
    for layer, counters in stats.items():
        nz = [f"{k}={v}" for k, v in counters.items() if v]
        if nz:
            lines.append(f"    {layer:<9} " + " ".join(nz))
    return lines


# -- the kernel as the peer ---------------------------------------------------------------------
_UDP_CLIENT = """
import json, os, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2.0)
out = []
for n in map(int, sys.argv[2:]):
    data = os.urandom(n)
    t = time.monotonic()
    s.sendto(data, (sys.argv[1], 7))
    try:
        echo, _ = s.recvfrom(65535)
        out.append([n, echo == data, time.monotonic() - t])
    except socket.timeout:
        out.append([n, False, None])
print(json.dumps(out))
"""


async def kernel_demo(out: Out, *, pcap: str | None = None, bulk: int = demo_tcp.BULK) -> DemoReport:  # noqa: PLR0915 - a script of checks, read top to bottom
    from tcpip.netns import Namespace  # noqa: PLC0415 - needs pyroute2, only on this path

    rep = DemoReport("kernel")
    out("tcpip demo: the Linux kernel and tcpip on the two ends of a TAP device")
    ns = await asyncio.to_thread(Namespace.create, "d")
    try:
        def plumb() -> None:
            ns.add_tap("tap0")
            ns.add_address("tap0", f"{KERNEL_IP}/{PREFIX}")

        await asyncio.to_thread(plumb)
        kmac = await asyncio.to_thread(ns.link_mac, "tap0")
        dev: NetworkDevice = await ns.open_tap("tap0")
        if pcap is not None:
            dev = PcapWriter(dev, pcap)
        async with await Stack.connect(dev, ipv4=f"{STACK_IP}/{PREFIX}") as stack:
            await stack.udp_echo(ECHO_PORT)
            out(f"  namespace {ns.name}: kernel tap0 {kmac} {KERNEL_IP}/{PREFIX}")
            out(f"  tcpip on tap0:        {stack.mac} {STACK_IP}/{PREFIX} (UDP echo on port {ECHO_PORT})")

            r = await ns.run_async(["ping", "-n", "-c", "3", "-i", "0.2", "-W", "1", STACK_IP], timeout=10)
            m = re.search(r"(\d+) received.*\n.*= ([\d.]+)/([\d.]+)/([\d.]+)", r.stdout)
            got = int(m.group(1)) if m else 0
            rtt = f", rtt min/avg/max = {m.group(2)}/{m.group(3)}/{m.group(4)} ms" if m else ""
            rep.step(out, "kernel pings tcpip", got == 3, f"{got}/3 replies{rtt}")

            r = await ns.run_async(["arping", "-c", "2", "-w", "3", "-I", "tap0", STACK_IP], timeout=10)
            macs = {x.lower() for x in re.findall(r"reply from \S+ \[([0-9A-Fa-f:]{17})\]", r.stdout)}
            n = len(re.findall(r"reply from", r.stdout))
            rep.step(out, "kernel arpings tcpip", n == 2 and macs == {str(stack.mac)},
                     f"{n}/2 replies from {', '.join(sorted(macs)) or 'nobody'}")

            neigh = await asyncio.to_thread(ns.neighbours, "tap0")
            entry = neigh.get(STACK_IP)
            rep.step(out, "kernel neighbour table", entry is not None and entry[0] == str(stack.mac),
                     f"{STACK_IP} lladdr {entry[0]} {entry[1]}" if entry else "no entry")

            r = await ns.run_async([sys.executable, "-c", _UDP_CLIENT, STACK_IP,
                                    *map(str, UDP_SIZES)], timeout=15)
            try:
                res: list[list[Any]] = json.loads(r.stdout)
            except ValueError:
                res = []
            good = [x for x in res if x[1]]
            detail = ", ".join(f"{x[0]} B {'echoed' if x[1] else 'LOST'}"
                               + (f" in {x[2] * 1000:.3f} ms" if x[2] is not None else "") for x in res)
            if not detail:
                detail = (r.stderr.strip().splitlines() or ["no output"])[-1]
            rep.step(out, "kernel UDP socket <-> tcpip echo", len(good) == len(UDP_SIZES), detail)

            rtts = await stack.ping(IPv4Address(KERNEL_IP), count=3, interval=0.2, timeout=1.0)
            rep.step(out, "tcpip pings the kernel", all(x is not None for x in rtts), _ms(rtts))

            t0 = time.monotonic()
            r = await ns.run_async(["ping", "-n", "-q", "-f", "-c", "2000", "-w", "5", STACK_IP], timeout=10)
            m = re.search(r"(\d+) packets transmitted, (\d+) received", r.stdout)
            dt = time.monotonic() - t0
            if m:
                rate = int(m.group(2)) / dt
                rep.step(out, "kernel ping -f -c 2000", int(m.group(2)) >= 0.99 * int(m.group(1)),
                         f"{m.group(2)}/{m.group(1)} replies in {dt:.2f} s ({rate:.0f}/s)")
            else:
                rep.step(out, "kernel ping -f -c 2000", False, r.stderr.strip() or "no output")

            await demo_tcp.kernel_steps(ns, stack, KERNEL_IP, STACK_IP,
                                        lambda name, ok, detail: rep.step(out, name, ok, detail), bulk)

            out("  tcpip counters:")
            for line in format_counters(stack.stats()):
                out(line)
    finally:
        await asyncio.to_thread(ns.remove)
        out(f"  removed namespace {ns.name} (and its tap0)")
    return rep


# -- a second tcpip host as the peer ------------------------------------------------------------
class _EchoClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.q: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.q.put_nowait(bytes(data))


async def hub_demo(out: Out, *, pcap: str | None = None, bulk: int = demo_tcp.BULK) -> DemoReport:
    rep = DemoReport("hub")
    out("tcpip demo: two tcpip hosts on an in-memory Ethernet hub")
    hub = Hub()
    dev_a: NetworkDevice = hub.port()
    if pcap is not None:
        dev_a = PcapWriter(dev_a, pcap)
    async with (await Stack.connect(dev_a, ipv4=f"{STACK_IP}/{PREFIX}") as a,
                await Stack.connect(hub.port(), ipv4=f"{KERNEL_IP}/{PREFIX}") as b):
        await a.udp_echo(ECHO_PORT)
        out(f"  host B (in the kernel's role): {b.mac} {KERNEL_IP}/{PREFIX}")
        out(f"  host A (tcpip under test):     {a.mac} {STACK_IP}/{PREFIX} (UDP echo on port {ECHO_PORT})")

        rtts = await b.ping(IPv4Address(STACK_IP), count=3, interval=0.2, timeout=1.0)
        rep.step(out, "B pings A", all(x is not None for x in rtts), _ms(rtts))

        mac = b.core.arp.lookup(int(IPv4Address(STACK_IP)), b.runner.now())
        rep.step(out, "B resolved A by ARP", mac == a.mac.packed,
                 f"{STACK_IP} is at {mac.hex(':') if mac else 'unknown'}")

        transport, proto = await b.create_datagram_endpoint(_EchoClient, local_addr=("0.0.0.0", 0))
        try:
            results = []
            for n in UDP_SIZES:
                data = bytes((i * 7 + n) & 0xFF for i in range(n))
                t = time.monotonic()
                transport.sendto(data, (STACK_IP, ECHO_PORT))
                try:
                    echo = await asyncio.wait_for(proto.q.get(), 1.0)
                    results.append((n, echo == data, time.monotonic() - t))
                except TimeoutError:
                    results.append((n, False, 0.0))
        finally:
            transport.close()
        rep.step(out, "B's UDP socket <-> A's echo", all(ok for _, ok, _ in results),
                 ", ".join(f"{n} B {'echoed' if ok else 'LOST'} in {t * 1000:.3f} ms"
                           for n, ok, t in results))

        rtts = await a.ping(IPv4Address(KERNEL_IP), count=3, interval=0.2, timeout=1.0)
        rep.step(out, "A pings B", all(x is not None for x in rtts), _ms(rtts))

        await demo_tcp.hub_steps(a, b, STACK_IP, KERNEL_IP,
                                 lambda name, ok, detail: rep.step(out, name, ok, detail), bulk)

        out("  host A counters:")
        for line in format_counters(a.stats()):
            out(line)
    return rep


async def run(mode: str = "auto", *, out: Out = print, pcap: str | None = None,
              bulk: int = demo_tcp.BULK) -> DemoReport:
    """mode: "auto" (kernel when possible, else hub), "kernel" or "hub"; `bulk`: bytes of each TCP transfer."""
    if mode != "hub":
        from tcpip.netns import netns_available  # noqa: PLC0415

        why = netns_available()
        if why is None:
            return await kernel_demo(out, pcap=pcap, bulk=bulk)
        if mode == "kernel":
            raise RuntimeError(f"cannot run against the kernel: {why}")
        out(f"tcpip demo: no kernel peer ({why}); using two tcpip hosts on an in-memory hub instead")
    return await hub_demo(out, pcap=pcap, bulk=bulk)
