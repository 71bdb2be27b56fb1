"""Bulk TCP throughput: tcpip over TAP against the kernel, both ways, beside the same transfer between
two kernel stacks over a veth pair; Mbit/s and the ratio tcpip / kernel.

Both servers run the same asyncio stream handler (`bench/tcp_peer.py`): on tcpip through
`stack.start_server` in this process (uvloop when installed), on the kernel as `python bench/tcp_peer.py
server` in a namespace. The client is always a blocking kernel socket in a namespace, timing from connect
to the last byte: `get` = the server sends N bytes (tcpip -> kernel), `put` = the client sends N bytes
(kernel -> tcpip). Namespaces are tcpip-b<pid>-<n> on 198.18.0.0/15, removed in finally blocks; the only
process stopped is the server started here, by its PID. Run alone: `python -m bench.tcp [--quick]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import e2e
from bench.tcp_peer import bulk_handler

Log = Callable[[str], None]
PEER = str(Path(__file__).resolve().parent / "tcp_peer.py")
PORT = 5001
STACK_IP = "198.18.0.2"
VETH_SERVER_IP = e2e.VETH_SERVER.split("/", maxsplit=1)[0]


async def _client(ns: Any, host: str, cmd: str, n: int) -> dict[str, Any]:
    r = await ns.run_async([sys.executable, PEER, "client", host, str(PORT), cmd, str(n)], timeout=120)
    try:
        res: dict[str, Any] = json.loads(r.stdout)
    except ValueError:
        return {"error": (r.stderr.strip().splitlines() or [f"exit {r.returncode}, no output"])[-1]}
    if not res.get("ok"):
        res["error"] = f"got {res.get('bytes')} of {n} bytes"
    return res


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    good = [r["mbit_s"] for r in runs if "error" not in r]
    errors = [r["error"] for r in runs if "error" in r]
    if not good:
        return {"error": "; ".join(errors) or "no run"}
    return {"mbit_s": round(statistics.median(good), 1), "runs": [round(x, 1) for x in good], "errors": errors}


async def _measure(ns: Any, host: str, n: int, reps: int, label: str, log: Log) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for cmd in ("get", "put"):
        runs = [await _client(ns, host, cmd, n) for _ in range(reps)]
        out[cmd] = _median(runs)
        log(f"  {label} {cmd} {n // 1_000_000} MB: {out[cmd].get('mbit_s', out[cmd].get('error'))} Mbit/s")
    return out


def run_tap(n: int, reps: int, log: Log) -> dict[str, Any]:
    from tcpip.cli import loop_factory

    factory = loop_factory()

    async def session(ns: Any) -> dict[str, Any]:
        from tcpip.stack import Stack

        dev = await ns.open_tap("tap0", mac=e2e.MAC)
        stack = await Stack.connect(dev, ipv4=f"{STACK_IP}/24")
        try:
            server = await stack.start_server(bulk_handler, None, PORT)
            try:
                res = await _measure(ns, STACK_IP, n, reps, "tcpip (TAP)", log)
            finally:
                server.close()
                await asyncio.wait_for(server.wait_closed(), 10)
            res["counters"] = {k: v for k, v in stack.stats().get("tcp", {}).items() if v}
            return res
        finally:
            await stack.disconnect()

    ns = e2e.tap_namespace()
    try:
        res = e2e._run_loop(factory, lambda: session(ns))
    finally:
        ns.remove()
    res["loop"] = "uvloop" if factory is not None else "asyncio"
    return dict(res)


def run_veth(n: int, reps: int, log: Log) -> dict[str, Any]:
    from tcpip.netns import Namespace

    async def session(client: Any, server: Any) -> dict[str, Any]:
        proc = await server.start([sys.executable, PEER, "server", VETH_SERVER_IP, str(PORT)])
        try:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 10)
            if line.strip() != b"ready":
                return {"error": f"kernel server did not start: {line!r}"}
            return await _measure(client, VETH_SERVER_IP, n, reps, "kernel (veth)", log)
        finally:
            await Namespace.stop(proc)  # this PID only

    client = Namespace.create("b")
    try:
        server = Namespace.create("b")
        try:
            client.add_veth("veth0", server, "veth1")
            client.add_address("veth0", e2e.VETH_CLIENT)
            server.add_address("veth1", e2e.VETH_SERVER)
            return dict(e2e._run_loop(None, lambda: session(client, server)))
        finally:
            server.remove()
    finally:
        client.remove()


def run(quick: bool, log: Log) -> dict[str, Any]:
    why = e2e.unavailable()
    if why:
        log(f"  skipped: {why}")
        return {"skipped": why}
    n = 20_000_000 if quick else 100_000_000
    reps = 1 if quick else 3
    return {"bytes": n, "repeats": reps, "tap": run_tap(n, reps, log), "veth": run_veth(n, reps, log)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20 MB once instead of 100 MB three times")
    a = ap.parse_args(argv)
    res = run(a.quick, print)
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
