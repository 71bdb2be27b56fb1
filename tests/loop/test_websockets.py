"""websockets over tcpip, unchanged: a server on tcpip that a kernel-side client exchanges 1,000 messages with,
and the reverse (tcpip client, kernel server), with text and binary messages of many sizes."""

from __future__ import annotations

import asyncio
import hashlib
import sys

import pytest
from loop_support import KERNEL_IP, STACK_IP, Kernel, kernel_python, stack_runner
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

pytestmark = pytest.mark.tap
N = 1000


def message(i: int) -> str | bytes:
    """Message i: text for even i, binary for odd i, 0 to ~20 KB."""
    body = hashlib.sha256(str(i).encode()).digest() * ((i * 37) % 640)
    return f"text {i} {body.hex()[:i % 200]}" if i % 2 == 0 else body


KERNEL_CLIENT = f'''
import hashlib, sys
from websockets.sync.client import connect
def message(i):
    body = hashlib.sha256(str(i).encode()).digest() * ((i * 37) % 640)
    return f"text {{i}} {{body.hex()[:i % 200]}}" if i % 2 == 0 else body
with connect(sys.argv[1], max_size=None) as ws:
    ok = 0
    for i in range({N}):
        ws.send(message(i))
        ok += ws.recv(timeout=10) == message(i)
    print("echoed", ok, flush=True)
'''

KERNEL_SERVER = '''
import sys
from websockets.sync.server import serve
def echo(ws):
    for m in ws:
        ws.send(m)
with serve(echo, sys.argv[1], int(sys.argv[2]), max_size=None) as server:
    server.serve_forever()
'''


def test_tcpip_server_kernel_client(kernel: Kernel) -> None:
    async def main() -> tuple[int, bytes]:
        received = 0

        async def echo(ws: ServerConnection) -> None:
            nonlocal received
            async for m in ws:
                received += 1
                await ws.send(m)

        async with serve(echo, None, 8765, max_size=None):
            r = await kernel.arun([sys.executable, "-c", KERNEL_CLIENT, f"ws://{STACK_IP}:8765"], timeout=60)
        assert r.returncode == 0, r.stderr
        return received, r.stdout

    with stack_runner(kernel) as r:
        received, out = r.run(main())
    assert (received, out) == (N, f"echoed {N}\n".encode())


def test_tcpip_client_kernel_server(kernel: Kernel) -> None:
    kernel_python(kernel, KERNEL_SERVER, KERNEL_IP, "8766", port=8766)

    async def main() -> list[bool]:
        async with connect(f"ws://{KERNEL_IP}:8766", max_size=None) as ws:
            async def sender() -> None:  # pipelined: sends run ahead of the echoes
                for i in range(N):
                    await ws.send(message(i))

            task = asyncio.create_task(sender())
            ok = [await ws.recv() == message(i) for i in range(N)]
            await task
            return ok

    with stack_runner(kernel) as r:
        ok = r.run(main())
    assert ok == [True] * N
