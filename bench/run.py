"""The benchmark suite's command: `python -m bench [--quick] [--parts micro,e2e,tcp,scale,tcp-scale,callgrind]`.

Also runnable as `python bench/run.py`. Results go to bench/results/ (results.json, results.md, *.png).
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/run.py`: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PARTS = ("micro", "e2e", "tcp", "scale", "tcp-scale", "callgrind")


def log(msg: str) -> None:
    print(msg, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="short run (< 2 minutes): fewer repeats and packets")
    ap.add_argument("--parts", default=None,
                    help=f"comma-separated subset of {','.join(PARTS)} (default: all; quick: all but callgrind)")
    for p in PARTS:
        ap.add_argument(f"--{p}", action="append_const", const=p, dest="only", help=f"run only {p} (combinable)")
    ap.add_argument("--repeats", type=int, default=None, help="micro repeats (default 7, quick 5)")
    ap.add_argument("--no-pin", action="store_true", help="do not pin the end-to-end runs to one CPU")
    ap.add_argument("--profile", action="store_true",
                    help="also profile tcpip under a ping flood and UDP round trips (pyinstrument)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    a = ap.parse_args(argv)
    parts: list[str]
    if a.only:
        parts = list(dict.fromkeys(a.only))
    elif a.parts:
        parts = [p.strip() for p in a.parts.split(",") if p.strip()]
    else:
        parts = [p for p in PARTS if not (a.quick and p == "callgrind")]
    bad = [p for p in parts if p not in PARTS]
    if bad:
        ap.error(f"unknown part(s): {', '.join(bad)}")
    repeats = a.repeats or (5 if a.quick else 7)
    target_s = 0.02 if a.quick else 0.05

    from bench import micro

    res: dict[str, Any] = {"meta": {
        "mode": "quick" if a.quick else "full", "parts": parts, "repeats": repeats,
        "command": " ".join(["python -m bench", *(argv if argv is not None else sys.argv[1:])]),
        "python": platform.python_version(), "cpu": micro._cpu_model(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}}
    a.out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    if "micro" in parts:
        log("micro (ns per frame)")
        res["micro"] = micro.run(repeats, target_s, log)
    if "scale" in parts:
        from bench import scale

        log("scale")
        res["scale"] = scale.run(a.quick, repeats, target_s, log)
    if "e2e" in parts:
        from bench import e2e

        log("end to end (TAP / veth in private namespaces)")
        res["e2e"] = e2e.run(a.quick, log, pin=not a.no_pin)
        if a.profile:
            res["profile"] = e2e.profile(5000 if a.quick else 20000, 30, a.out, log)
    if "tcp" in parts:
        from bench import tcp

        log("TCP bulk throughput (tcpip on TAP / kernel on veth)")
        res["tcp"] = tcp.run(a.quick, log)
    if "tcp-scale" in parts:
        from bench import tcp_scale

        log("TCP scale (idle connections on a Hub: memory, idle timers, bulk beside them)")
        res["tcp_scale"] = tcp_scale.run(a.quick, log)
    if "callgrind" in parts:
        from bench import callgrind, callgrind_tcp

        log("callgrind (instructions per received echo)")
        try:
            res["callgrind"] = callgrind.run(log)
        except (RuntimeError, OSError) as e:
            log(f"  callgrind failed: {e}")
            res["callgrind"] = {"error": str(e)}
        log("callgrind (instructions per received 1448-byte TCP segment)")
        try:
            res["callgrind_tcp"] = callgrind_tcp.run(log)
        except (RuntimeError, OSError) as e:
            log(f"  callgrind TCP failed: {e}")
            res["callgrind_tcp"] = {"error": str(e)}
    res["meta"]["seconds"] = round(time.monotonic() - t0, 1)
    from bench import report

    report.write(res, a.out, log)
    log(f"done in {res['meta']['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
