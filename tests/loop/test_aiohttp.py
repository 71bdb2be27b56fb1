"""aiohttp over tcpip, unchanged: its server fetched by the kernel's curl, its client against the kernel's
`python3 -m http.server` and a kernel TLS server (the client connects through sock_connect +
create_connection(sock=), with ssl= for HTTPS)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import ssl
import sys

import aiohttp
import pytest
import trustme
from aiohttp import web
from loop_support import KERNEL_IP, STACK_IP, TLS_SERVER, Kernel, kernel_python, stack_runner

pytestmark = pytest.mark.tap
BODY = os.urandom(1 << 20)


@pytest.fixture(params=["asyncio", "uvloop"])
def uv(request: pytest.FixtureRequest) -> bool:
    """asyncio's loop, and uvloop's (UvStackLoop) where installed."""
    if request.param == "uvloop":
        pytest.importorskip("uvloop")
    return bool(request.param == "uvloop")


def test_aiohttp_server_fetched_by_kernel_curl(kernel: Kernel, uv: bool) -> None:
    async def main() -> list[bytes]:
        async def hello(request: web.Request) -> web.Response:
            return web.Response(text=f"hello {request.match_info['name']} from {request.remote}")

        async def big(request: web.Request) -> web.Response:
            return web.Response(body=BODY)

        app = web.Application()
        app.add_routes([web.get("/hello/{name}", hello), web.get("/big", big)])
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "0.0.0.0", 8080).start()
        try:
            out = []
            for path in ("/hello/kernel", "/big"):
                r = await kernel.arun(["curl", "-sS", "--fail", "-m", "20", f"http://{STACK_IP}:8080{path}"])
                assert r.returncode == 0, r.stderr
                out.append(r.stdout)
            r = await kernel.arun(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "10",
                                   f"http://{STACK_IP}:8080/nope"])
            out.append(r.stdout)
            return out
        finally:
            await runner.cleanup()

    with stack_runner(kernel, uvloop=uv) as r:
        hello, big, missing = r.run(main())
    assert hello == f"hello kernel from {KERNEL_IP}".encode()
    assert hashlib.sha256(big).digest() == hashlib.sha256(BODY).digest()
    assert missing == b"404"


def test_aiohttp_client_against_kernel_http_server(kernel: Kernel, uv: bool) -> None:
    (kernel.tmp / "www").mkdir()
    (kernel.tmp / "www" / "big.bin").write_bytes(BODY)
    kernel.start([sys.executable, "-m", "http.server", "8000", "--bind", KERNEL_IP, "--directory",
                  str(kernel.tmp / "www")], port=8000)
    ca = trustme.CA()
    ca.issue_cert(KERNEL_IP).private_key_and_cert_chain_pem.write_to_path(str(kernel.tmp / "server.pem"))
    kernel_python(kernel, TLS_SERVER, KERNEL_IP, "8443", str(kernel.tmp / "server.pem"), str(kernel.tmp / "www"),
                  port=8443)
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)

    async def main() -> tuple[int, bytes, int, str, bytes]:
        stack = asyncio.get_running_loop().stack  # type: ignore[attr-defined]
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://{KERNEL_IP}:8000/big.bin") as resp:
                status, body = resp.status, await resp.read()
            async with session.get(f"http://{KERNEL_IP}:8000/missing") as resp:
                missing = resp.status
            async with session.get(f"http://{KERNEL_IP}:8000/") as resp:
                listing = await resp.text()
            async with session.get(f"https://{KERNEL_IP}:8443/big.bin", ssl=ctx) as resp:  # TLS on the token path
                tls_body = await resp.read()
        assert stack.stats()["tcp"]["ActiveOpens"] >= 1  # through tcpip: sock_connect + create_connection(sock=)
        return status, body, missing, listing, tls_body

    with stack_runner(kernel, uvloop=uv) as r:
        status, body, missing, listing, tls_body = r.run(main())
    assert tls_body == BODY
    assert (status, missing) == (200, 404)
    assert hashlib.sha256(body).digest() == hashlib.sha256(BODY).digest()
    assert "big.bin" in listing
