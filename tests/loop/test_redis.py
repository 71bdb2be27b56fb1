"""redis-py's asyncio client over tcpip, unchanged, against the kernel's redis-server (Debian's binary, started
in the test's namespace with its own settings, no config file and no persistence, stopped by PID)."""

from __future__ import annotations

import asyncio
import shutil

import pytest
import redis.asyncio as redis
from loop_support import KERNEL_IP, Kernel, stack_runner

pytestmark = pytest.mark.tap
N = 10_000
BATCH = 500
SINGLE = 300


async def set_batch(client: redis.Redis, start: int) -> list[bool]:
    async with client.pipeline(transaction=False) as pipe:
        for i in range(start, start + BATCH):
            pipe.set(f"key:{i}", f"value {i}")
        return list(await pipe.execute())


async def get_batch(client: redis.Redis, start: int) -> list[bytes | None]:
    async with client.pipeline(transaction=False) as pipe:
        for i in range(start, start + BATCH):
            pipe.get(f"key:{i}")
        return list(await pipe.execute())


def test_redis_set_get_10000_keys(kernel: Kernel) -> None:
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed (scripts/setup.sh installs it)")
    kernel.start([server, "--bind", KERNEL_IP, "--port", "6379", "--save", "", "--appendonly", "no",
                  "--protected-mode", "no", "--dir", str(kernel.tmp), "--daemonize", "no"], port=6379)

    async def main() -> dict[str, object]:
        pool = redis.BlockingConnectionPool(host=KERNEL_IP, port=6379, max_connections=8)
        client = redis.Redis(connection_pool=pool)
        try:
            single = []
            for i in range(SINGLE):  # one command, one round trip
                await client.set(f"single:{i}", i)
                single.append(await client.get(f"single:{i}") == str(i).encode())
            # 10,000 SETs then 10,000 GETs, in pipelines of 500, 8 connections at once
            sets = await asyncio.gather(*(set_batch(client, s) for s in range(0, N, BATCH)))
            gets = await asyncio.gather(*(get_batch(client, s) for s in range(0, N, BATCH)))
            got = [g for batch in gets for g in batch]
            return {"single": single.count(True), "set": sum(map(sum, sets)),
                    "get": [g == f"value {i}".encode() for i, g in enumerate(got)].count(True),
                    "dbsize": await client.dbsize(), "connections": len(pool._in_use_connections) + len(
                        pool._available_connections), "info": (await client.info("clients"))["connected_clients"]}
        finally:
            await client.aclose()
            await pool.disconnect()

    with stack_runner(kernel) as r:
        out = r.run(main())
    assert {k: v for k, v in out.items() if k not in ("connections", "info")} == {
        "single": SINGLE, "set": N, "get": N, "dbsize": N + SINGLE}
    assert out["connections"] == out["info"] == 8  # redis-server counts the same 8 clients
