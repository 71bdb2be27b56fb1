"""Where the per-echo work goes, by Python function: bytecodes executed and calls per echo (not a timing).

`python bench/wakeup_ops.py [icmp|udp] [plain|vnet] [tcpip|responder]` runs `bench/callgrind_wakeup.py`'s
workload (one echo in flight through a real asyncio loop) for N = 50 and 250 under a `sys.settrace` opcode
counter and prints (count(250) - count(50)) / 200 per function: deterministic, and the tracer's own cost is
not counted. Pair it with `python -m bench.wakeup` (instructions per echo): with ~25-40 instructions per
bytecode on this path, bytecodes and Python calls are what tcpip adds beyond the responder.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def count(n: int, impl: str, kind: str, mode: str) -> tuple[Counter[str], Counter[str]]:
    from bench.callgrind_wakeup import _run
    from bench.opcount import tracer

    trace, ops, calls = tracer()
    sys.settrace(trace)
    try:
        asyncio.run(_run(n, impl, kind, mode))
    finally:
        sys.settrace(None)
    return ops, calls


def main() -> int:
    sys.path.insert(0, str(ROOT))
    kind = sys.argv[1] if len(sys.argv) > 1 else "udp"
    mode = sys.argv[2] if len(sys.argv) > 2 else "vnet"
    impl = sys.argv[3] if len(sys.argv) > 3 else "tcpip"
    (o1, c1), (o2, c2) = count(50, impl, kind, mode), count(250, impl, kind, mode)
    per = {k: (o2[k] - o1[k]) / 200 for k in o2}
    total = 0.0
    for k, v in sorted(per.items(), key=lambda kv: -kv[1]):
        if v >= 1:
            total += v
            print(f"{v:7.1f} bytecodes {(c2[k] - c1[k]) / 200:5.2f} calls  {k}")
    print(f"{total:7.1f} bytecodes per echo in all ({impl} {kind} {mode}, loop and peer included)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
