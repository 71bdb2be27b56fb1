"""One end-to-end responder in its own process, so its CPU time (user+sys) can be read per echo.

Run inside a namespace that has `tap0` (`ip netns exec NS python bench/e2e_server.py --impl tcpip`):
`--impl tcpip` is a `Stack` on a `TapDevice` with `stack.udp_echo(7)`; `--impl responder` is the minimal
hand-written responder (`bench.e2e.Responder`). `--loop uvloop` runs either on uvloop. Prints "ready" once
answering; on SIGTERM/SIGINT (or after --cap seconds) prints one JSON line of counters and exits.
`--src` puts that tcpip source tree first on sys.path, so the child runs the same tcpip as the bench.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


async def _serve_tcpip(stop: asyncio.Future[None], plain: bool = False) -> dict[str, Any]:
    from bench.e2e import MAC
    from bench.frames import OUR_IP_S
    from tcpip.netif.tap import TapDevice
    from tcpip.stack import Stack

    dev = await TapDevice.open("tap0", mac=MAC, offload=False if plain else None)
    stack = await Stack.connect(dev, ipv4=f"{OUR_IP_S}/24")
    await stack.udp_echo(7)
    print("ready", flush=True)
    try:
        await stop
    finally:
        st = stack.stats()
        out = {"device": st.get("device", {}), "icmp_tx_echo_replies": st["icmp"]["tx_echo_replies"],
               "udp": {k: v for k, v in st["udp"].items() if v}, "rx_wakeups": dev.rx_wakeups,
               "driver": st.get("driver", {})}
        await stack.disconnect()
    return out


async def _serve_responder(stop: asyncio.Future[None], floor: bool = False) -> dict[str, Any]:
    from bench.e2e import MAC, Responder, open_tap_fd
    from bench.e2e_floor import FloorResponder
    from bench.frames import OUR_IP_S

    fd = open_tap_fd("tap0")
    r = (FloorResponder if floor else Responder)(fd, bytes.fromhex(MAC.replace(":", "")),
                                                 bytes(map(int, OUR_IP_S.split("."))))
    loop = asyncio.get_running_loop()
    loop.add_reader(fd, r.drain)
    print("ready", flush=True)
    try:
        await stop
    finally:
        loop.remove_reader(fd)
    return {"answered": r.answered, "tx_dropped": getattr(r, "tx_dropped", 0), "rx_wakeups": r.wakeups}


async def _main(impl: str, cap: float, plain: bool = False) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()

    def done() -> None:
        if not stop.done():
            stop.set_result(None)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done)
    loop.call_later(cap, done)
    if impl == "tcpip":
        return await _serve_tcpip(stop, plain)
    return await _serve_responder(stop, impl == "floor")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--impl", choices=("tcpip", "responder", "floor"), required=True)
    ap.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    ap.add_argument("--src", default=None, help="tcpip source directory to import first")
    ap.add_argument("--cap", type=float, default=900.0, help="exit after this many seconds at most")
    ap.add_argument("--framing", choices=("default", "plain"), default="default",
                    help="tcpip's TAP: default (offload where the kernel has it) or plain")
    a = ap.parse_args()
    if a.src:
        sys.path.insert(0, a.src)
    sys.path.insert(0, str(HERE.parent))
    factory = None
    if a.loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        counters = runner.run(_main(a.impl, a.cap, a.framing == "plain"))
    print(json.dumps(counters), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
