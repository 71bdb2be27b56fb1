"""What a user would otherwise write: an asyncio UDP echo server on the kernel's own stack.

Run inside a namespace; prints "ready" once bound; stops on SIGTERM/SIGINT or after --cap seconds."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.transport.sendto(data, addr)


async def serve(host: str, port: int, cap: float) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    def done() -> None:
        if not stop.done():
            stop.set_result(None)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done)
    transport, _ = await loop.create_datagram_endpoint(Echo, local_addr=(host, port))
    print("ready", flush=True)
    try:
        await asyncio.wait_for(stop, cap)
    except TimeoutError:
        pass
    finally:
        transport.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="0.0.0.0")
    ap.add_argument("--port", type=int, default=7)
    ap.add_argument("--cap", type=float, default=300.0)
    a = ap.parse_args()
    asyncio.run(serve(a.host, a.port, a.cap))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
