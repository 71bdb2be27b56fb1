"""Cache lines an echo touches on a cold CPU: callgrind's cache simulation, caches flushed between echoes.

`python -m bench.cold [--kinds icmp,udp] [--impls tcpip,responder] [--n 60]` (needs valgrind; ~15 s per
figure, both runs of a figure in parallel). Why: under one-in-flight traffic that lets the CPU idle between
echoes (`python -m bench --e2e --no-pin`), the vCPU halts after each reply and each echo then runs with
cold caches, so what it costs is mostly the cache lines it touches, not its instructions (issue 10: tcpip's
read-to-write time was 2-3x its warm time, and tracked these counts, not instruction counts).

The workload is `bench/callgrind_wakeup.py`'s (a TapDevice in offload mode, or the minimal responder, on one
end of an AF_UNIX datagram socketpair; the peer sends the request as the kernel would), but synchronous:
each round copies 4 MiB (twice the simulated last-level cache: every line is evicted), sends one request,
calls the reader callback and receives the reply. A second run does only the copies; (I(echo rounds) -
I(copy rounds)) / N, with PYTHONHASHSEED=0 and ASLR off, is printed per echo: instructions (Ir) and
last-level misses for instructions (ILmr), data reads (DLmr) and writes (DLmw), the peer's send and recv
included (the same for every implementation). Simulated caches: L1 64 KiB 8-way, LL 2 MiB 16-way, 64-byte
lines. `--workload IMPL KIND N ECHO` is the measured process itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLUSH = 4 << 20  # bytes copied between echoes: twice the simulated LL
CACHES = ["--I1=65536,8,64", "--D1=65536,8,64", "--LL=2097152,16,64"]
EVENTS = ("Ir", "ILmr", "DLmr", "DLmw")


async def _workload(impl: str, kind: str, n: int, echo: bool) -> None:
    from bench.callgrind_wakeup import vnet_request
    from bench.e2e import Responder
    from bench.frames import OUR_IP_S, OUR_MAC, PEER_IP, PEER_MAC, icmp_echo, udp_frame

    big, src = bytearray(FLUSH), bytes(FLUSH)
    ours, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    ours.setblocking(False)
    peer.setblocking(False)
    req = icmp_echo(56) if kind == "icmp" else udp_frame(32)
    closer = None
    drain: Callable[[], None]
    if impl == "tcpip":
        from tcpip.netif.tap import TapDevice
        from tcpip.stack import Stack
        from tcpip.wire.mac import MacAddress

        loop = asyncio.get_running_loop()
        dev = TapDevice(ours.detach(), "sockpair", mac=MacAddress(OUR_MAC), loop=loop, offload=True)
        stack = await Stack.connect(dev, ipv4=f"{OUR_IP_S}/24")
        stack.core.arp.add_static(PEER_IP, PEER_MAC)
        await stack.udp_echo(7)
        loop.remove_reader(dev.fd)  # driven by hand below
        drain = dev._on_readable
        req = vnet_request(req, kind)
        closer = stack.disconnect
    else:
        drain = Responder(ours.fileno(), OUR_MAC, bytes.fromhex("c6120002")).drain
    await asyncio.sleep(0.01)
    while True:  # the stack's start-up announcements
        try:
            peer.recv(4096)
        except BlockingIOError:
            break
    for _ in range(40):  # warm: the path cache, the code
        peer.send(req)
        drain()
        peer.recv(4096)
    send, recv = peer.send, peer.recv
    for _ in range(n):
        big[:] = src
        if echo:
            send(req)
            drain()
            if not recv(4096):
                raise SystemExit("no answer")
    if closer is not None:
        await closer()


def _run(impl: str, kind: str, n: int, echo: bool, out: str) -> dict[str, int]:
    py = os.path.realpath(sys.executable)  # not a pyenv shim: valgrind would measure the shim's exec
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)]))
    cmd = ["setarch", "-R", "valgrind", "--tool=callgrind", "--cache-sim=yes", *CACHES,
           f"--callgrind-out-file={out}", py, "-m", "bench.cold", "--workload", impl, kind, str(n), str(int(echo))]
    subprocess.run(cmd, env=env, cwd=ROOT, check=True, capture_output=True)
    events: list[str] = []
    totals: list[int] = []
    with open(out) as f:
        for line in f:
            if line.startswith("events:"):
                events = line.split()[1:]
            elif line.startswith("summary:"):
                totals = [int(x) for x in line.split()[1:]]
    return dict(zip(events, totals, strict=True))


def figure(impl: str, kind: str, n: int) -> dict[str, float]:
    """Per echo: Ir and last-level misses (see the module docstring)."""
    with tempfile.TemporaryDirectory() as d, ThreadPoolExecutor(2) as ex:
        a = ex.submit(_run, impl, kind, n, True, f"{d}/echo.out")
        b = ex.submit(_run, impl, kind, n, False, f"{d}/copy.out")
        e, c = a.result(), b.result()
    return {k: (e[k] - c[k]) / n for k in EVENTS}


def main() -> int:
    sys.path.insert(0, str(ROOT))
    ap = argparse.ArgumentParser()
    ap.add_argument("--kinds", default="icmp,udp")
    ap.add_argument("--impls", default="tcpip,responder")
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--workload", nargs=4, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.workload is not None:
        impl, kind, n, echo = a.workload
        asyncio.run(_workload(impl, kind, int(n), echo == "1"))
        return 0
    if not (shutil.which("valgrind") and shutil.which("setarch")):
        print("unavailable: valgrind and setarch are needed")
        return 1
    for kind in a.kinds.split(","):
        for impl in a.impls.split(","):
            x = figure(impl, kind, a.n)
            print(f"{kind:5} {impl:10} Ir {x['Ir']:8.0f}  LL misses {x['ILmr'] + x['DLmr'] + x['DLmw']:6.0f} "
                  f"(instructions {x['ILmr']:4.0f}, data read {x['DLmr']:4.0f}, written {x['DLmw']:4.0f}) per echo",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
