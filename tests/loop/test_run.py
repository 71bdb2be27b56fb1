"""`tcpip run`: unchanged programs (a script, `-m aiohttp.web`) whose asyncio loop is a StackLoop on a TAP,
their own argv and __main__, their exit status, and SIGTERM freeing the TAP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from loop_support import KERNEL_IP, SRC, STACK_IP, TAP, Kernel

pytestmark = pytest.mark.tap

WEBAPP = '''
from aiohttp import web

async def hello(request):
    return web.Response(text="served by " + request.app["name"])

def init_app(argv):
    app = web.Application()
    app["name"] = "init_app"
    app.router.add_get("/", hello)
    return app
'''

SCRIPT = '''
import asyncio, sys

async def main():
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection(sys.argv[1], int(sys.argv[2]))
    writer.write(b"GET / HTTP/1.0\\r\\n\\r\\n")
    head = (await reader.readline()).decode().strip()
    writer.close()
    return type(loop).__name__, head

first = asyncio.run(main())
assert asyncio.run(main()) == first  # a second loop opens the TAP again: the first one released it
print(__name__, sys.argv[1:], *first, flush=True)
sys.exit(3)
'''

SLEEPER = '''
import asyncio
async def main():
    server = await asyncio.start_server(lambda r, w: None, None, 7000)
    print("ready", flush=True)
    await asyncio.sleep(60)
asyncio.run(main())
'''


def tcpip_run(k: Kernel, *program: str, flags: tuple[str, ...] = ()) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": f"{SRC}:{k.tmp}"}
    return subprocess.Popen([sys.executable, "-m", "tcpip", "run", "--netns", k.ns.name, "--tap", TAP, "--ipv4",
                             f"{STACK_IP}/24", *flags, "--", *program], env=env, cwd=k.tmp, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def tap_free(k: Kernel) -> bool:
    """Nobody holds the TAP open: the kernel reports NO-CARRIER."""
    return "NO-CARRIER" in k.run(["ip", "-o", "link", "show", TAP]).stdout.decode()


def finish(p: subprocess.Popen[str], timeout: float = 20) -> tuple[int, str, str]:
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    return p.returncode, out, err


@pytest.mark.parametrize("flags", [(), ("--uvloop",)], ids=["asyncio", "uvloop"])
def test_script_gets_its_argv_main_and_exit_status(kernel: Kernel, flags: tuple[str, ...]) -> None:
    if flags:
        pytest.importorskip("uvloop")
    (kernel.tmp / "www").mkdir()
    kernel.start([sys.executable, "-m", "http.server", "8000", "--bind", KERNEL_IP, "--directory",
                  str(kernel.tmp / "www")], port=8000)
    (kernel.tmp / "client.py").write_text(SCRIPT)
    rc, out, err = finish(tcpip_run(kernel, "client.py", KERNEL_IP, "8000", flags=flags))
    assert rc == 3, err
    loop = "UvStackLoop" if flags else "StackLoop"
    assert out.split() == ["__main__", f"['{KERNEL_IP}',", "'8000']", loop, "HTTP/1.0", "200", "OK"], out
    assert tap_free(kernel)


def test_aiohttp_web_module_serves_kernel_curl_until_sigterm(kernel: Kernel) -> None:
    (kernel.tmp / "webapp.py").write_text(WEBAPP)
    p = tcpip_run(kernel, "-m", "aiohttp.web", "-H", "0.0.0.0", "-P", "8080", "webapp:init_app")
    try:
        deadline = time.monotonic() + 20
        r = None
        while time.monotonic() < deadline:
            r = kernel.run(["curl", "-sS", "-m", "2", f"http://{STACK_IP}:8080/"], timeout=5)
            if r.returncode == 0 or p.poll() is not None:
                break
            time.sleep(0.2)
        assert r is not None
        assert r.stdout == b"served by init_app", (r.stderr, p.poll())
        assert not tap_free(kernel)
        p.send_signal(signal.SIGTERM)
        rc, _, err = finish(p)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert rc == 0, err  # aiohttp's run_app turns SIGTERM into a graceful exit
    assert tap_free(kernel)


def test_sigterm_ends_a_plain_asyncio_program_and_frees_the_tap(kernel: Kernel) -> None:
    (kernel.tmp / "sleeper.py").write_text(SLEEPER)
    p = tcpip_run(kernel, "sleeper.py")
    try:
        assert p.stdout is not None
        assert p.stdout.readline().strip() == "ready"
        r = kernel.run([sys.executable, "-c", f"import socket; socket.create_connection(('{STACK_IP}', 7000), 5)"])
        assert r.returncode == 0, r.stderr  # the program's listener is tcpip's
        p.send_signal(signal.SIGTERM)
        rc, _, err = finish(p)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert rc == 143, err
    assert tap_free(kernel)


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": SRC}
    for program in ([], ["--", "missing.py"], ["--", "-X", "dev"]):
        p = subprocess.run([sys.executable, "-m", "tcpip", "run", "--tap", "tapx", "--ipv4", "198.18.0.2/24",
                            *program], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False)
        assert p.returncode == 2, p.stderr
        assert p.stderr.startswith("tcpip run: error: "), p.stderr
        assert p.stderr.count("\n") == 1, p.stderr
