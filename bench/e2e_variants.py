"""Which part of an end-to-end echo costs what: the minimal responder changed one thing at a time, measured
against tcpip and the plain responder, each load in a fresh namespace, implementations alternated.

`python -m bench.e2e_variants [--loop asyncio|uvloop] [--kind ping|udp] [--reps N] [--count N]
[--regime nopin|cross|pinned] IMPL [IMPL ...]` (root). IMPL is `tcpip`, `tcpip:plain` (plain framing),
`responder` (`bench.e2e.Responder`) or `variant:FLAGS`, the responder of this module with comma-separated
FLAGS:
  vnet     the TAP opened with IFF_VNET_HDR and tcpip's offloads (TUN_F_CSUM | TUN_F_TSO4), 64 KiB reads;
  full     (vnet) a UDP reply's checksum finished here, written with a zero virtio header (as tcpip does),
           not handed back to the kernel as partial;
  small    (vnet) 2 KiB reads;
  one      one frame per wake-up, no read ending in EAGAIN (what tcpip's TAP did until issue 10's stop 30);
  fat      300 attribute loads before each write, on 300 objects apart in memory;
  warm     (fat) the same 300 loads on one object (the instructions without the footprint);
  env      two tcpip Stacks on a Hub in the same process (tcpip's imports, objects and timers, idle);
  timer    a 1 s timer always pending (as tcpip's TAP watch): the loop sleeps in epoll_wait with a timeout.
Regimes: `nopin` lets the scheduler place server and load (`python -m bench --e2e --no-pin`); `cross` pins
the server to CPU 0 and the load to CPU 1 (every echo crosses CPUs); `pinned` puts both on the last CPU
(`python -m bench --e2e`). Prints each load's rate and CPU per echo and each IMPL's median rate over the
first IMPL's. Namespaces tcpip-b<pid>-<n>, 198.18.0.0/15 only, removed after each load; only processes
started here are stopped, by PID. `--serve FLAGS` is the variant server itself (run inside a namespace).
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import os
import signal
import statistics
import struct
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
_TUNSETIFF = 0x400454CA


class _Obj:
    __slots__ = ("x",)

    def __init__(self) -> None:
        self.x = 1


class VariantResponder:
    """`bench.e2e.Responder`'s answers (ARP, ICMP echo, UDP port 7), with the switches of FLAGS."""

    def __init__(self, fd: int, mac: bytes, ip: bytes, flags: set[str]) -> None:
        self.fd, self.mac, self.ip = fd, mac, ip
        self.vnet = "vnet" in flags
        self.full = "full" in flags
        self.one = "one" in flags
        self.readsize = 2048 if "small" in flags or not self.vnet else 65600
        self.fat = "fat" in flags
        pad, objs = [], []
        for _ in range(300):
            objs.append(_Obj())
            pad.append(bytearray(200))  # keeps the objects apart: a cache line or more each
        self._pad = pad
        self.objs = tuple([objs[0]] * 300 if "warm" in flags else objs)
        self.answered = 0

    def drain(self) -> None:
        fd, ip, hl = self.fd, self.ip, 10 if self.vnet else 0
        zero = bytes(10)
        for _ in range(256):
            try:
                v = os.read(fd, self.readsize)
            except (BlockingIOError, InterruptedError):
                return
            f = v[hl:] if hl else v
            hdr = zero
            if f[12:14] == b"\x08\x00":
                if f[30:34] != ip:
                    continue
                if f[23] == 1 and f[34] == 8:
                    out = bytearray(f)
                    out[0:12] = f[6:12] + f[0:6]
                    out[26:34] = f[30:34] + f[26:30]
                    out[34] = 0
                    c = ((f[36] << 8) | f[37]) + 0x0800  # RFC 1624: type 8 -> 0
                    c = (c & 0xFFFF) + (c >> 16)
                    out[36], out[37] = c >> 8, c & 0xFF
                elif f[23] == 17 and f[36:38] == b"\x00\x07":
                    out = bytearray(f)
                    out[0:12] = f[6:12] + f[0:6]
                    out[26:34] = f[30:34] + f[26:30]
                    out[34:38] = f[36:38] + f[34:36]
                    if hl and v[0] & 1:  # NEEDS_CSUM: the field holds the pseudo-header sum only
                        if self.full:
                            _finish_udp(out)
                        else:
                            hdr = v[:10]  # partial stays partial: the kernel trusts it
                else:
                    continue
            elif f[12:14] == b"\x08\x06" and f[20:22] == b"\x00\x01" and f[38:42] == ip:
                out = bytearray(f[6:12] + self.mac + b"\x08\x06" + f[14:20] + b"\x00\x02" + self.mac + ip
                                + f[22:32])
            else:
                continue
            if self.fat:
                t = 0
                for o in self.objs:
                    t += o.x
            try:
                if hl:
                    os.writev(fd, (hdr, out))
                else:
                    os.write(fd, out)
            except OSError:
                continue
            self.answered += 1
            if self.one:
                return


def _finish_udp(out: bytearray) -> None:
    out[40] = out[41] = 0
    n = len(out) - 34
    body = bytes(out[34:]) + (b"\0" if n & 1 else b"")
    x = int.from_bytes(body, "big") % 0xFFFF + int.from_bytes(out[26:34], "big") % 0xFFFF + 17 + n
    c = 0xFFFF - x % 0xFFFF
    out[40], out[41] = c >> 8, c & 0xFF


async def _serve(flags: set[str]) -> None:
    from bench.e2e import MAC
    from bench.frames import OUR_IP_S
    from tcpip.netif.tap_vnet import IFF_VNET_HDR, set_offloads

    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    vnet = "vnet" in flags
    fcntl.ioctl(fd, _TUNSETIFF, struct.pack("16sH", b"tap0", 0x0002 | 0x1000 | (IFF_VNET_HDR if vnet else 0))
                .ljust(40, b"\0"))
    set_offloads(fd, "tap0", vnet, vnet)
    keep: list[Any] = []
    if "timer" in flags:  # a timer always pending, as tcpip's (the TAP's MTU watch): epoll_wait with a timeout
        loop0 = asyncio.get_running_loop()
        timer: list[asyncio.TimerHandle] = []

        def tick() -> None:
            timer[:] = [loop0.call_later(1.0, tick)]

        tick()
    if "env" in flags:
        from tcpip import Stack
        from tcpip.netif import Hub

        hub = Hub()
        keep += [hub, await Stack.connect(hub.port(), ipv4="198.18.9.1/24"),
                 await Stack.connect(hub.port(), ipv4="198.18.9.2/24")]
        await keep[1].udp_echo(7)
    r = VariantResponder(fd, bytes.fromhex(MAC.replace(":", "")), bytes(map(int, OUR_IP_S.split("."))), flags)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    loop.add_reader(fd, r.drain)
    print("ready", flush=True)
    await stop
    loop.remove_reader(fd)
    if vnet:
        set_offloads(fd, "tap0", False, False)
    os.close(fd)
    print(json.dumps({"answered": r.answered}), flush=True)


async def _start(ns: Any, impl: str, loop: str) -> Any:
    from bench import e2e

    if impl.startswith("variant"):
        import tcpip

        src = str(Path(tcpip.__file__).resolve().parent.parent)
        proc = await ns.start(e2e.pinned([sys.executable, str(HERE / "e2e_variants.py"), "--serve",
                                          impl.partition(":")[2], "--loop", loop, "--src", src]))
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        if line.strip() != b"ready":
            raise RuntimeError(f"{impl} did not start: {line!r}")
        return proc
    name, _, framing = impl.partition(":")
    return await e2e.start_server(ns, name, loop, 600, ("--framing", framing) if framing else ())


async def _one(impl: str, a: argparse.Namespace, server_cpu: int | None, load_cpu: int | None) -> dict[str, Any]:
    from bench import e2e
    from bench.frames import OUR_IP_S
    from tcpip.netns import Namespace

    ns = e2e.tap_namespace()
    try:
        e2e.PIN = server_cpu
        proc = await _start(ns, impl, a.loop)
        e2e.PIN = load_cpu
        try:
            await ns.run_async(e2e.pinned(["ping", "-c", "3", "-i", "0.2", "-W", "1", OUR_IP_S]), timeout=10)
            def load(n: int) -> Any:
                return (e2e.ping_flood(ns, OUR_IP_S, n, 30, warm=False) if a.kind == "ping"
                        else e2e.udp_rtt(ns, OUR_IP_S, n, 30))
            await load(3000)  # a warm path, not counted
            return await e2e.measured(proc.pid, load(a.count))
        finally:
            await Namespace.stop(proc)
    finally:
        ns.remove()


async def _session(a: argparse.Namespace) -> None:
    last = max(os.sched_getaffinity(0))
    server_cpu, load_cpu = {"nopin": (None, None), "cross": (0, 1), "pinned": (last, last)}[a.regime]
    rates: dict[str, list[float]] = {i: [] for i in a.impls}
    for rep in range(a.reps):
        for impl in a.impls:
            x = await _one(impl, a, server_cpu, load_cpu)
            rates[impl].append(x.get("per_s", 0.0))
            print(f"{impl:24} #{rep + 1} {x.get('per_s', 0):8.0f}/s  cpu {x.get('cpu_us_per_echo')} us/echo"
                  f"  switches {x.get('ctx_vol_per_echo')}+{x.get('ctx_invol_per_echo')}  lost {x.get('lost', 0)}"
                  + (f"  {x['error']}" if "error" in x else ""), flush=True)
    base = statistics.median(rates[a.impls[0]]) or 1.0
    for impl in a.impls:
        m = statistics.median(rates[impl])
        print(f"{impl:24} median {m:8.0f}/s  / {a.impls[0]}: {m / base:.3f}")


def main() -> int:
    sys.path.insert(0, str(HERE.parent))
    ap = argparse.ArgumentParser()
    ap.add_argument("impls", nargs="*")
    ap.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    ap.add_argument("--kind", choices=("ping", "udp"), default="ping")
    ap.add_argument("--reps", type=int, default=6)
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--regime", choices=("nopin", "cross", "pinned"), default="nopin")
    ap.add_argument("--serve", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--src", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.src:
        sys.path.insert(0, a.src)
    factory = None
    if a.loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    if a.serve is not None:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(_serve({f for f in a.serve.split(",") if f}))
        return 0
    from bench import e2e

    if (why := e2e.unavailable()) is not None:
        print(f"unavailable: {why}")
        return 1
    if len(a.impls) < 2:
        ap.error("give two or more IMPLs")
    e2e._run_loop(None, lambda: _session(a))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
