"""A soak of tcpip's TCP under random loss, for rare stalls: the same routed site and loss rules as the loss
runs of `python -m bench --tcp`, one transfer after another, each under a watchdog.

`python -m bench.tcp_soak [--runs N] [--loss PCT] [--cmd put|get] [--bytes N] [--watch S] [--offload]` (root,
nft). Each run is `bench/tcp_peer.py tcpip ... --watchdog S` (the tcpip client in a fresh process): a transfer
not done after S seconds prints its connections' send and timer state, its TCP counters and where its tasks
wait, then exits 3; that dump is printed here. At the end: runs, failures, median Mbit/s. The namespaces are
tcpip-t<pid>-<n> (198.18.0.0/15 only) and removed at the end; only processes started here are stopped.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


async def _soak(a: argparse.Namespace) -> int:
    from bench import e2e, tcp

    row = "tcpip-offload" if a.offload else "tcpip-plain"
    site = tcp.Site(row, "routed")
    failures, rates = 0, []
    try:
        await site.open()
        if a.loss:
            (await site.ns.run_async(["nft", "-f", "-"], input=tcp.nft_rules(a.loss), timeout=10)).check()
        for i in range(a.runs):
            argv = [*tcp.subject(row, a.cmd, a.bytes, site.host), "--watchdog", str(a.watch)]
            r = await site.ns.run_async(argv, timeout=a.watch + 30)
            res = e2e._counters(r.stdout)  # the client's JSON line
            if r.returncode != 0 or not res.get("ok"):
                failures += 1
                print(f"run {i + 1}: FAILED (exit {r.returncode}, timed out {r.timed_out})\n{r.stderr[-8000:]}",
                      flush=True)
            else:
                rates.append(res["mbit_s"])
                if (i + 1) % 50 == 0:
                    print(f"run {i + 1}: {statistics.median(rates):.0f} Mbit/s median so far, {failures} failed",
                          flush=True)
    finally:
        await site.close()
    med = f"{statistics.median(rates):.0f}" if rates else "-"
    print(f"{row} {a.cmd} {a.bytes} bytes at {a.loss} % loss: {a.runs} runs, {failures} failed, median {med} Mbit/s")
    return 1 if failures else 0


def main() -> int:
    sys.path.insert(0, str(HERE.parent))
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--loss", type=int, default=5, help="percent, both ways on the forwarding path")
    ap.add_argument("--cmd", choices=("put", "get"), default="put")
    ap.add_argument("--bytes", type=int, default=10_000_000)
    ap.add_argument("--watch", type=float, default=15.0, help="seconds before a run counts as stalled")
    ap.add_argument("--offload", action="store_true")
    a = ap.parse_args()
    from bench import e2e

    if (why := e2e.unavailable()) is not None:
        print(f"unavailable: {why}")
        return 1
    rc: int = e2e._run_loop(None, lambda: _soak(a))
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
