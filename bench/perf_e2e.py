"""Where an end-to-end echo's CPU goes: perf(1) on one responder process, kernel against user space.

`python -m bench.perf_e2e [--impls tcpip,responder] [--kinds ping,udp] [--framing default,plain] [--count N]
[--reps R] [--no-pin] [--record]` (root, perf installed). Each run starts `bench/e2e_server.py` in a fresh
namespace as `python -m bench --e2e` does (the server and the load on one CPU unless --no-pin), attaches
`perf stat -e task-clock,context-switches -p PID` for one load of N echoes (`ping -f` or the one-in-flight UDP
client) and prints on-CPU µs and context switches per echo. `--record` runs `perf record -F 5000 -p PID`
instead and prints the samples per echo in the kernel and in user space (libpython, libc, extension
modules): the kernel's share is the same for every implementation, the rest is Python. Runs of the
implementations and framings alternate, `--reps` times. Only processes started here are stopped, by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from typing import Any

from bench import e2e
from bench.frames import OUR_IP_S

_STAT = re.compile(r"^\s*([\d.,]+)\s+(msec task-clock|context-switches)", re.M)


def _stat(path: str) -> dict[str, float]:
    with open(path) as f:
        text = f.read()
    out = {}
    for value, what in _STAT.findall(text):
        out["task_ms" if what.startswith("msec") else "cs"] = float(value.replace(",", ""))
    return out


def _samples(path: str) -> dict[str, int]:
    """Samples by where they fell: kernel or user space (perf report --sort dso)."""
    r = subprocess.run(["perf", "report", "-i", path, "--sort", "dso", "-n", "--stdio"], capture_output=True,
                       text=True, check=False, timeout=120)
    out = {"kernel": 0, "user": 0}
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and not line.startswith("#") and parts[0].endswith("%"):
            out["kernel" if "kernel" in parts[2] else "user"] += int(parts[1])
    return out


async def one(impl: str, kind: str, framing: str, count: int, record: bool) -> dict[str, Any]:
    ns = e2e.tap_namespace()
    proc = None
    try:
        extra = ("--framing", "plain") if framing == "plain" else ()
        proc = await e2e.start_server(ns, impl, "asyncio", 120, extra)
        await ns.run_async(e2e.pinned(["ping", "-c", "3", "-i", "0.2", "-W", "1", OUR_IP_S]), timeout=10)
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "perf.out")
            what = (["record", "-F", "5000", "-o", out] if record
                    else ["stat", "-e", "task-clock,context-switches", "-o", out])
            perf = await asyncio.create_subprocess_exec("perf", *what, "-p", str(proc.pid),
                                                        stdout=asyncio.subprocess.DEVNULL,
                                                        stderr=asyncio.subprocess.DEVNULL)
            await asyncio.sleep(0.3)  # attached before the load starts
            try:
                if kind == "ping":
                    r = await e2e.ping_flood(ns, OUR_IP_S, count, 60, warm=False)
                else:
                    r = await e2e.udp_rtt(ns, OUR_IP_S, count, 60)
            finally:
                perf.send_signal(signal.SIGINT)  # this PID only
                await perf.wait()
            n = int(r.get("received", 0)) or 1
            res: dict[str, Any] = {"impl": impl, "kind": kind, "framing": framing, "per_s": round(r.get("per_s", 0))}
            if record:
                s = _samples(out)
                res.update({k + "_samples_per_kecho": round(v * 1000 / n, 1) for k, v in s.items()})
            else:
                st = _stat(out)
                res["cpu_us_per_echo"] = round(st.get("task_ms", 0.0) * 1000 / n, 1)
                res["cs_per_echo"] = round(st.get("cs", 0.0) / n, 2)
            return res
    finally:
        if proc is not None:
            from tcpip.netns import Namespace

            with contextlib.suppress(Exception):
                await Namespace.stop(proc)
        ns.remove()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.perf_e2e", description=__doc__.splitlines()[0])
    ap.add_argument("--impls", default="tcpip,responder")
    ap.add_argument("--kinds", default="ping,udp")
    ap.add_argument("--framing", default="default", help="tcpip's TAP framing(s): default (offload), plain")
    ap.add_argument("--count", type=int, default=50000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-pin", action="store_true")
    ap.add_argument("--record", action="store_true", help="perf record: kernel vs user-space samples")
    a = ap.parse_args(argv)
    if shutil.which("perf") is None:
        print("perf is not installed", file=sys.stderr)
        return 2
    e2e.PIN = None if a.no_pin else e2e.default_pin()
    runs = [(impl, kind, fr) for impl in a.impls.split(",") for kind in a.kinds.split(",")
            for fr in (a.framing.split(",") if impl == "tcpip" else ["default"])]
    for rep in range(a.reps):
        for impl, kind, fr in runs:
            res = asyncio.run(one(impl, kind, fr, a.count, a.record))
            print(f"#{rep + 1} " + "  ".join(f"{k} {v}" for k, v in res.items()), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
