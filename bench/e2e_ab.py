"""A/B of tcpip source trees end to end on a TAP: each tree's server beside the minimal responder, the loads
alternated, so that a change is compared with its base in the same minutes of a noisy machine.

`python -m bench.e2e_ab [--reps N] [--count N] [--no-pin] [--loop asyncio|uvloop] SRC [SRC ...]` (root; `SRC:plain`:
that tree's TAP in plain framing, so one tree can be compared in both framings): one
namespace and one `bench/e2e_server.py` per source tree (`--src SRC`: e.g. a `git worktree` of the base
commit's `src`) and one for the minimal responder, all up at once; per repeat, for each server in turn, the
loads of `python -m bench --e2e` (ping -f, then the one-in-flight UDP echo), and each tree's rate and CPU per
echo as ratios to the responder's in the same repeat. Prints every ratio and their medians.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


async def _start(ns: Any, impl: str, loop: str, src: str) -> Any:
    from bench import e2e

    src, _, framing = src.partition(":")  # SRC:plain runs that tree's TAP in plain framing
    argv = [sys.executable, str(HERE / "e2e_server.py"), "--impl", impl, "--loop", loop, "--src", src,
            "--cap", "1800", *(("--framing", framing) if framing and impl == "tcpip" else ())]
    proc = await ns.start(e2e.pinned(argv))
    line = await asyncio.wait_for(proc.stdout.readline(), 20)
    if line.strip() != b"ready":
        raise RuntimeError(f"{impl} ({src}) did not start: {line!r}")
    return proc


async def _session(srcs: list[str], loop: str, reps: int, count: int) -> None:
    from bench import e2e
    from bench.frames import OUR_IP_S
    from tcpip.netns import Namespace

    servers = [("tcpip", s) for s in srcs] + [("responder", srcs[0].partition(":")[0])]
    nss = {s: e2e.tap_namespace() for s in servers}
    procs: dict[tuple[str, str], Any] = {}
    res: dict[tuple[tuple[str, str], str], list[tuple[float, float]]] = {
        (s, k): [] for s in servers for k in ("ping", "udp")}
    try:
        for s, ns in nss.items():
            procs[s] = await _start(ns, s[0], loop, s[1])
            await ns.run_async(e2e.pinned(["ping", "-c", "3", "-i", "0.2", "-W", "1", OUR_IP_S]), timeout=10)
        for rep in range(reps):
            for s, ns in nss.items():
                p = await e2e.measured(procs[s].pid, e2e.ping_flood(ns, OUR_IP_S, count, 60, warm=False))
                u = await e2e.measured(procs[s].pid, e2e.udp_rtt(ns, OUR_IP_S, count, 60))
                res[s, "ping"].append((p.get("per_s", 0.0), p.get("cpu_us_per_echo") or 0.0))
                res[s, "udp"].append((u.get("per_s", 0.0), u.get("cpu_us_per_echo") or 0.0))
            print(f"  repeat {rep + 1} of {reps} done", flush=True)
    finally:
        for proc in procs.values():
            await Namespace.stop(proc)
        for ns in nss.values():
            ns.remove()
    base = servers[-1]
    for k in ("ping", "udp"):
        for s in servers[:-1]:
            pairs = list(zip(res[s, k], res[base, k], strict=True))
            rate = [a[0] / b[0] for a, b in pairs if b[0]]
            cpu = [a[1] / b[1] for a, b in pairs if b[1]]
            print(f"{k:4} {s[1]}: rate / responder {statistics.median(rate):.2f} {[round(x, 2) for x in rate]}"
                  f"  CPU per echo / responder {statistics.median(cpu):.2f} {[round(x, 2) for x in cpu]}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.e2e_ab", description=__doc__.splitlines()[0])
    ap.add_argument("srcs", nargs="+", help="tcpip source directories (each holding the tcpip package); "
                    "SRC:plain runs that one's TAP in plain framing")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    ap.add_argument("--no-pin", action="store_true")
    a = ap.parse_args(argv)
    sys.path.insert(0, str(HERE.parent))
    from bench import e2e

    e2e.PIN = None if a.no_pin else e2e.default_pin()
    print(f"A/B, {a.loop}, {'not pinned' if a.no_pin else f'pinned to CPU {e2e.PIN}'}, {a.reps} repeats", flush=True)
    with e2e.pin_self():
        asyncio.run(_session(a.srcs, a.loop, a.reps, a.count))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
