"""The TCP part of `tcpip demo`: HTTP (h11), echo, discard and bulk transfers between tcpip and its peer
(the Linux kernel in a namespace, or a second tcpip host on the hub), each a checked step with figures."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tcpip.apps import body_chunks, http_handler, status_page, tcp_discard, tcp_echo

if TYPE_CHECKING:
    from tcpip.netns import Namespace
    from tcpip.stack import Stack

HTTP_PORT, ECHO_PORT, DISCARD_PORT, PEER_HTTP_PORT = 80, 7, 9, 8000
ECHO_SIZE = 1 << 20
FILE_SIZE = 10_000_000
BULK = 100_000_000

Step = Callable[[str, bool, str], None]


def mbit(n: int, seconds: float) -> str:
    return f"{n * 8 / seconds / 1e6:.1f} Mbit/s" if seconds > 0 else "-"


def pattern_sha256(n: int) -> str:
    """sha256 of tcpip's /bytes/n body."""
    h = hashlib.sha256()
    for c in body_chunks(n):
        h.update(c)
    return h.hexdigest()


async def start_services(stack: Stack) -> list[Any]:
    page = http_handler(lambda: status_page(stack))
    return [await stack.start_server(tcp_echo, None, ECHO_PORT),
            await stack.start_server(tcp_discard, None, DISCARD_PORT),
            await stack.start_server(page, None, HTTP_PORT)]


async def stop_services(servers: list[Any]) -> None:
    for s in servers:
        s.close()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(s.wait_closed() for s in servers)), 5)


# -- tcpip as the client --------------------------------------------------------------------------
async def http_get(stack: Stack, host: str, port: int, target: str,
                   sink: Callable[[bytes], None]) -> int:
    """GET `target` over tcpip with h11 (Connection: close); the body goes to `sink`; returns the status."""
    import h11  # noqa: PLC0415 - optional dependency (tcpip[http])

    reader, writer = await stack.open_connection(host, port)
    try:
        conn = h11.Connection(h11.CLIENT)
        writer.write(conn.send(h11.Request(method="GET", target=target,
                                           headers=[("Host", host), ("Connection", "close")])))
        writer.write(conn.send(h11.EndOfMessage()))
        status = 0
        while True:
            ev = conn.next_event()
            if ev is h11.NEED_DATA:
                conn.receive_data(await reader.read(1 << 18))
            elif isinstance(ev, h11.Response):
                status = ev.status_code
            elif isinstance(ev, h11.Data):
                sink(bytes(ev.data))
            elif isinstance(ev, h11.EndOfMessage | h11.ConnectionClosed):
                return status
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def echo_through(stack: Stack, host: str, data: bytes) -> bytes:
    reader, writer = await stack.open_connection(host, ECHO_PORT)

    async def send() -> None:
        for i in range(0, len(data), 1 << 16):
            writer.write(data[i:i + (1 << 16)])
            await writer.drain()
        writer.write_eof()

    try:
        got: bytes = (await asyncio.gather(send(), reader.read()))[1]
        return got
    finally:
        writer.close()
        await writer.wait_closed()


async def upload(stack: Stack, host: str, n: int) -> tuple[bool, float]:
    """Push n bytes into the peer's discard service, FIN, and wait for its FIN: (no data came back, s)."""
    block = bytes(range(256)) * 1024
    t0 = time.perf_counter()
    reader, writer = await stack.open_connection(host, DISCARD_PORT)
    try:
        sent = 0
        while sent < n:
            writer.write(block[:min(len(block), n - sent)])
            sent += min(len(block), n - sent)
            await writer.drain()
        writer.write_eof()
        back = await reader.read()
        return back == b"", time.perf_counter() - t0
    finally:
        writer.close()
        await writer.wait_closed()


async def download(stack: Stack, host: str, n: int) -> tuple[bool, float]:
    """GET /bytes/n from the peer's tcpip HTTP server, checked by sha256: (ok, seconds)."""
    h = hashlib.sha256()
    size = 0

    def sink(b: bytes) -> None:
        nonlocal size
        h.update(b)
        size += len(b)

    t0 = time.perf_counter()
    status = await http_get(stack, host, HTTP_PORT, f"/bytes/{n}", sink)
    dt = time.perf_counter() - t0
    return status == 200 and size == n and h.hexdigest() == pattern_sha256(n), dt


# -- the kernel as the peer -------------------------------------------------------------------------
_KERNEL_CLIENT = r"""
import hashlib, json, socket, sys, time
mode, host, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
t0 = time.perf_counter()
if mode == "echo":
    import threading
    data = bytes(i * 7 % 256 for i in range(256)) * (n // 256)
    s = socket.create_connection((host, 7), timeout=30)
    def send():
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
    t = threading.Thread(target=send)
    t.start()
    got = bytearray()
    while c := s.recv(1 << 16):
        got += c
    t.join()
    ok, size = bytes(got) == data, len(got)
elif mode == "download":
    s = socket.create_connection((host, 80), timeout=30)
    s.sendall(f"GET /bytes/{n} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        c = s.recv(65536)
        if not c:
            raise SystemExit("connection closed before the response head")
        buf += c
    head, body = buf.split(b"\r\n\r\n", 1)
    h, size = hashlib.sha256(body), len(body)
    while c := s.recv(1 << 18):
        h.update(c)
        size += len(c)
    ok = head.startswith(b"HTTP/1.1 200") and h.hexdigest() == sys.argv[4]
else:
    block = memoryview(bytes(range(256)) * 4096)
    s = socket.create_connection((host, 9), timeout=30)
    left = n
    while left:
        left -= s.send(block[:min(left, len(block))])
    s.shutdown(socket.SHUT_WR)
    ok, size = s.recv(1) == b"", n
s.close()
print(json.dumps({"ok": ok, "bytes": size, "seconds": time.perf_counter() - t0}))
"""


async def kernel_steps(ns: Namespace, stack: Stack, kernel_ip: str, stack_ip: str, step: Step,
                       bulk: int = BULK) -> None:
    """The kernel uses tcpip's servers (curl, a socket through echo, bulk both ways); tcpip downloads a
    file from the kernel's `python3 -m http.server`."""
    servers = await start_services(stack)
    try:
        if shutil.which("curl"):
            r = await ns.run_async(["curl", "-sS", "-m", "10", "-w", "\n%{http_code} %{size_download}",
                                    f"http://{stack_ip}/"], timeout=15)
            code, _, size = r.stdout.rpartition("\n")[2].partition(" ")
            ok = r.returncode == 0 and code == "200" and "\n  tcp " in r.stdout
            step("kernel curl GET / from tcpip's HTTP server", ok,
                 f"HTTP {code}, {size} bytes of counters" if ok else (r.stderr.strip() or r.stdout[-200:]))
        else:
            step("kernel curl GET / from tcpip's HTTP server", False, "curl is not installed")

        res = await _kernel_client(ns, "echo", stack_ip, ECHO_SIZE)
        step("kernel socket: 1 MiB through tcpip's TCP echo", res.get("ok") is True,
             _figures(res, "echoed back identical"))

        await _kernel_file_download(ns, stack, kernel_ip, step)

        res = await _kernel_client(ns, "download", stack_ip, bulk, pattern_sha256(bulk))
        step(f"kernel downloads {bulk // 1_000_000} MB from tcpip (GET /bytes/N)", res.get("ok") is True,
             _figures(res, "sha256 ok"))
        res = await _kernel_client(ns, "upload", stack_ip, bulk)
        step(f"kernel uploads {bulk // 1_000_000} MB to tcpip (discard)", res.get("ok") is True,
             _figures(res, "FIN, no data back"))
    finally:
        await stop_services(servers)


async def _kernel_client(ns: Namespace, mode: str, host: str, n: int, *extra: str) -> dict[str, Any]:
    r = await ns.run_async([sys.executable, "-c", _KERNEL_CLIENT, mode, host, str(n), *extra], timeout=60)
    try:
        res: dict[str, Any] = json.loads(r.stdout)
    except ValueError:
        return {"error": (r.stderr.strip().splitlines() or ["no output"])[-1]}
    return res


def _figures(res: dict[str, Any], good: str) -> str:
    if "error" in res:
        return str(res["error"])
    return (f"{res['bytes']} bytes in {res['seconds']:.2f} s, {mbit(res['bytes'], res['seconds'])}, "
            f"{good if res['ok'] else 'MISMATCH'}")


async def _kernel_file_download(ns: Namespace, stack: Stack, kernel_ip: str, step: Step) -> None:
    name = "tcpip open_connection downloads a file from kernel http.server"
    www = tempfile.mkdtemp(prefix="tcpip-demo-")
    try:
        blob = random.Random(FILE_SIZE).randbytes(FILE_SIZE)
        with open(os.path.join(www, "file.bin"), "wb") as f:
            f.write(blob)
        proc = await ns.start([sys.executable, "-u", "-m", "http.server", str(PEER_HTTP_PORT),
                               "--bind", kernel_ip, "--directory", www])
        try:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 10)
            if b"Serving HTTP" not in line:
                step(name, False, f"http.server did not start: {line!r}")
                return
            h = hashlib.sha256()
            t0 = time.perf_counter()
            status = await asyncio.wait_for(http_get(stack, kernel_ip, PEER_HTTP_PORT, "/file.bin", h.update), 30)
            dt = time.perf_counter() - t0
            ok = status == 200 and h.hexdigest() == hashlib.sha256(blob).hexdigest()
            step(name, ok, f"HTTP {status}, {FILE_SIZE} bytes in {dt:.2f} s, {mbit(FILE_SIZE, dt)}, "
                 f"sha256 {'ok' if ok else 'MISMATCH'}")
        finally:
            await ns.stop(proc)  # by its PID
    except (OSError, TimeoutError) as e:
        step(name, False, f"{type(e).__name__}: {e}")
    finally:
        shutil.rmtree(www, ignore_errors=True)


# -- a second tcpip host as the peer ------------------------------------------------------------------
async def hub_steps(a: Stack, b: Stack, a_ip: str, b_ip: str, step: Step, bulk: int = BULK) -> None:
    """B (in the kernel's role) uses A's servers; A downloads from B's HTTP server; bulk both ways."""
    servers = await start_services(a)
    servers.append(await b.start_server(http_handler(lambda: status_page(b)), None, PEER_HTTP_PORT))
    try:
        page = bytearray()
        status = await http_get(b, a_ip, HTTP_PORT, "/", page.extend)
        step("B GETs / from A's HTTP server", status == 200 and b"\n  tcp " in page,
             f"HTTP {status}, {len(page)} bytes of counters")

        data = random.Random(1).randbytes(ECHO_SIZE)
        t0 = time.perf_counter()
        got = await echo_through(b, a_ip, data)
        dt = time.perf_counter() - t0
        step("B pushes 1 MiB through A's TCP echo", got == data,
             f"{len(got)} bytes back in {dt:.2f} s, {'identical' if got == data else 'MISMATCH'}")

        h = hashlib.sha256()
        t0 = time.perf_counter()
        status = await http_get(a, b_ip, PEER_HTTP_PORT, f"/bytes/{FILE_SIZE}", h.update)
        dt = time.perf_counter() - t0
        ok = status == 200 and h.hexdigest() == pattern_sha256(FILE_SIZE)
        step("A downloads a file from B's HTTP server", ok,
             f"HTTP {status}, {FILE_SIZE} bytes in {dt:.2f} s, sha256 {'ok' if ok else 'MISMATCH'}")

        ok, dt = await download(b, a_ip, bulk)
        step(f"B downloads {bulk // 1_000_000} MB from A (GET /bytes/N)", ok,
             f"{bulk} bytes in {dt:.2f} s, {mbit(bulk, dt)}, sha256 {'ok' if ok else 'MISMATCH'}")
        ok, dt = await upload(b, a_ip, bulk)
        step(f"B uploads {bulk // 1_000_000} MB to A (discard)", ok,
             f"{bulk} bytes in {dt:.2f} s, {mbit(bulk, dt)}, {'FIN, no data back' if ok else 'got data back'}")
    finally:
        await stop_services(servers)
