"""Deterministic per-wake-up figure: instructions per echo through a real event loop, tcpip and responder.

`python -m bench.wakeup [--loops asyncio,uvloop] [--kinds icmp,udp] [--modes plain,vnet]` runs
`bench/callgrind_wakeup.py` under `valgrind --tool=callgrind` for N = 200 and 1200 (PYTHONHASHSEED=0, ASLR
off) and prints the instructions per echo of each implementation and tcpip - responder: what tcpip costs per
wake-up beyond the floor (the peer's half of the ping-pong is the same code in both and cancels out).
`vnet` is tcpip's TapDevice in offload mode (a virtio_net_hdr on every frame, what `python -m bench --e2e`
runs on a real TAP); the responder is always plain, so its figure is the same in both modes and measured
once per loop and kind.
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def instructions(n: int, impl: str, loop: str, kind: str, mode: str = "plain") -> int:
    from bench import callgrind

    return callgrind.instructions("callgrind_wakeup.py", n, impl, loop, kind, mode)


def run(loops: list[str], kinds: list[str], impls: list[str], n1: int = 200, n2: int = 1200,
        modes: tuple[str, ...] = ("plain",)) -> dict[str, Any]:
    out: dict[str, Any] = {}
    responder: dict[tuple[str, str], int] = {}  # plain only: one figure per loop and kind
    for mode in modes:
        for loop in loops:
            for kind in kinds:
                row: dict[str, int] = {}
                for impl in impls:
                    if impl == "responder" and (loop, kind) in responder:
                        row[impl] = responder[loop, kind]
                        continue
                    m = mode if impl == "tcpip" else "plain"
                    row[impl] = round((instructions(n2, impl, loop, kind, m)
                                       - instructions(n1, impl, loop, kind, m)) / (n2 - n1))
                    if impl == "responder":
                        responder[loop, kind] = row[impl]
                line = "  ".join(f"{impl} {row[impl]:7}" for impl in impls)
                if len(row) == 2:
                    row["tcpip_minus_responder"] = row["tcpip"] - row["responder"]
                    line += f"  tcpip - responder {row['tcpip_minus_responder']:7}"
                out[f"{loop}/{kind}" if mode == "plain" else f"{loop}/{kind}/{mode}"] = row
                print(f"{loop:8} {kind:5} {mode:5} {line} instructions per echo", flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.wakeup", description=__doc__)
    ap.add_argument("--loops", default="asyncio,uvloop")
    ap.add_argument("--kinds", default="icmp,udp")
    ap.add_argument("--impls", default="tcpip,responder")
    ap.add_argument("--modes", default="plain", help="tcpip's TAP framing: plain, vnet (offload) or both")
    ap.add_argument("--n", default="200,1200", help="the two echo counts N1,N2")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    n1, n2 = map(int, a.n.split(","))
    res = run(a.loops.split(","), a.kinds.split(","), a.impls.split(","), n1, n2, tuple(a.modes.split(",")))
    if a.json:
        print(json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
