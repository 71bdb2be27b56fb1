"""httpx's AsyncClient (httpcore on anyio) over tcpip, unchanged: GET and a streaming download from the kernel's
`python3 -m http.server`, and HTTPS (a trustme certificate) against a kernel-side TLS server."""

from __future__ import annotations

import hashlib
import os
import ssl
import sys

import httpx
import pytest
import trustme
from loop_support import KERNEL_IP, TLS_SERVER, Kernel, kernel_python, stack_runner

pytestmark = pytest.mark.tap
BIG = os.urandom(3 << 20)


def test_httpx_get_stream_and_https(kernel: Kernel) -> None:
    www = kernel.tmp / "www"
    www.mkdir()
    (www / "small.txt").write_text("over tcpip\n")
    (www / "big.bin").write_bytes(BIG)
    ca = trustme.CA()
    ca.issue_cert(KERNEL_IP).private_key_and_cert_chain_pem.write_to_path(str(kernel.tmp / "server.pem"))
    kernel.start([sys.executable, "-m", "http.server", "8000", "--bind", KERNEL_IP, "--directory", str(www)],
                 port=8000)
    kernel_python(kernel, TLS_SERVER, KERNEL_IP, "8443", str(kernel.tmp / "server.pem"), str(www), port=8443)

    async def main() -> dict[str, object]:
        out: dict[str, object] = {}
        async with httpx.AsyncClient() as client:
            r = await client.get(f"http://{KERNEL_IP}:8000/small.txt")
            out["get"] = (r.status_code, r.text, r.http_version)
            h, n, chunks = hashlib.sha256(), 0, 0
            async with client.stream("GET", f"http://{KERNEL_IP}:8000/big.bin") as resp:
                out["length"] = int(resp.headers["content-length"])
                async for chunk in resp.aiter_bytes():
                    h.update(chunk)
                    n += len(chunk)
                    chunks += 1
            out["stream"] = (n, h.hexdigest(), chunks > 10)
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)
        async with httpx.AsyncClient(verify=ctx) as client:
            r = await client.get(f"https://{KERNEL_IP}:8443/small.txt")
            out["https"] = (r.status_code, r.text)
            r = await client.get(f"https://{KERNEL_IP}:8443/big.bin")
            out["https_big"] = hashlib.sha256(r.content).hexdigest()
        async with httpx.AsyncClient() as client:  # an untrusted certificate fails as it should
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await client.get(f"https://{KERNEL_IP}:8443/small.txt")
        return out

    with stack_runner(kernel) as r:
        out = r.run(main())
    digest = hashlib.sha256(BIG).hexdigest()
    assert out == {"get": (200, "over tcpip\n", "HTTP/1.0"), "length": len(BIG), "stream": (len(BIG), digest, True),
                   "https": (200, "over tcpip\n"), "https_big": digest}
