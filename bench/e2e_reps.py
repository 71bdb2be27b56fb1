"""Consecutive loads against one end-to-end server: is a slow repeat the server's or the machine's?

`python -m bench.e2e_reps [--impl tcpip|responder|floor] [--loop asyncio|uvloop] [--kind ping|udp] [--reps N]
[--warm N] [--no-pin] [--framing default|plain]` (root): one namespace and one `bench/e2e_server.py`, `--warm`
unmeasured 20,000-echo ping floods, then N measured loads of `python -m bench --e2e`'s kind, each printed with
its rate, CPU per echo (user + sys), user share and context switches per echo, and at the end the server's
counters (frames per wake-up). Runs of the e2e part that straddle a slow period show here as a run of slow
repeats in one process, in the same regime (switches and frames per wake-up unchanged).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


async def _session(ns: Any, a: argparse.Namespace) -> None:
    from bench import e2e
    from bench.frames import OUR_IP_S
    from tcpip.netns import Namespace

    extra = ("--framing", a.framing) if a.impl == "tcpip" else ()
    proc = await e2e.start_server(ns, a.impl, a.loop, 1800, extra)
    try:
        await ns.run_async(e2e.pinned(["ping", "-c", "3", "-i", "0.2", "-W", "1", OUR_IP_S]), timeout=10)
        for _ in range(a.warm):
            await e2e.ping_flood(ns, OUR_IP_S, 20000, 20, warm=False)
        for r in range(a.reps):
            load = (e2e.ping_flood(ns, OUR_IP_S, 20000, 20, warm=False) if a.kind == "ping"
                    else e2e.udp_rtt(ns, OUR_IP_S, 20000, 20))
            x = await e2e.measured(proc.pid, load)
            print(f"{a.impl}/{a.loop} {a.kind} #{r + 1}: {x.get('per_s', 0):8.0f}/s {x.get('cpu_us_per_echo')} us/echo"
                  f"  user share {x.get('cpu_user_share')}  switches per echo {x.get('ctx_vol_per_echo')} voluntary"
                  f" + {x.get('ctx_invol_per_echo')} involuntary  lost {x.get('lost', 0)}", flush=True)
    finally:
        out, _err = await Namespace.stop(proc)
        c: dict[str, Any] = {}
        for line in reversed(out.strip().splitlines()):
            try:
                c = json.loads(line)
                break
            except json.JSONDecodeError:
                continue
        frames = c.get("device", {}).get("rx_frames") or c.get("answered")
        wakeups = c.get("rx_wakeups")
        if frames and wakeups:
            print(f"server: {frames} frames in {wakeups} wake-ups ({frames / wakeups:.1f} per wake-up)")


def main() -> int:
    sys.path.insert(0, str(HERE.parent))
    ap = argparse.ArgumentParser()
    ap.add_argument("--impl", choices=("tcpip", "responder", "floor"), default="tcpip")
    ap.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    ap.add_argument("--kind", choices=("ping", "udp"), default="ping")
    ap.add_argument("--reps", type=int, default=6)
    ap.add_argument("--warm", type=int, default=0)
    ap.add_argument("--no-pin", action="store_true")
    ap.add_argument("--framing", choices=("default", "plain"), default="default")
    a = ap.parse_args()
    from bench import e2e

    if (why := e2e.unavailable()) is not None:
        print(f"unavailable: {why}")
        return 1
    e2e.PIN = None if a.no_pin else e2e.default_pin()
    ns = e2e.tap_namespace()
    try:
        e2e._run_loop(None, lambda: _session(ns, a))
    finally:
        ns.remove()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
