"""`tcpip up`'s TCP services (--tcp-echo, --tcp-discard, --http): flag checks (one-line errors, status 2)
and, in a private namespace when root, the kernel's curl and sockets using them until SIGTERM."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import os
import re
import shutil
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tcpip import cli
from tcpip.netns import Namespace, netns_available

UP = ["up", "--tap", "tap0", "--ipv4", "198.18.0.2/24"]
# `python -m tcpip` in a subprocess must run this checkout's tcpip, not whichever one is installed
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    [str(Path(cli.__file__).resolve().parents[1]), *filter(None, [os.environ.get("PYTHONPATH")])])}


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        rc = cli.main(list(argv))
    except SystemExit as e:
        rc = int(e.code or 0)
    out, err = capsys.readouterr()
    return rc, out, err


def test_tcp_flags_repeat_and_collect() -> None:
    args = cli.build_parser().parse_args(
        [*UP, "--tcp-echo", "7", "--tcp-echo", "1007", "--tcp-discard", "9", "--http", "80", "--http", "8080",
         "--udp-echo", "7"])
    assert cli.tcp_services(args) == [("echo", 7), ("echo", 1007), ("discard", 9), ("http", 80), ("http", 8080)]
    assert args.udp_echo == [7]  # UDP and TCP port spaces are separate


def test_no_tcp_flags_no_services() -> None:
    assert cli.tcp_services(cli.build_parser().parse_args(UP)) == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([*UP, "--tcp-echo", "0"], "outside 1..65535"),
        ([*UP, "--tcp-discard", "65536"], "outside 1..65535"),
        ([*UP, "--http", "http"], "bad port"),
        ([*UP, "--tcp-echo", "7", "--tcp-discard", "7"], "TCP port 7 is given to both echo and discard"),
        ([*UP, "--http", "80", "--http", "80"], "TCP port 80 is given to both http and http"),
    ],
)
def test_bad_tcp_flags_exit_2_with_one_line_error(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    rc, out, err = run_main(capsys, *argv)
    assert rc == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert message in lines[0]


def test_http_without_h11_exit_2(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "h11" else real(name, *a))
    rc, out, err = run_main(capsys, *UP, "--http", "80")
    assert rc == 2
    assert out == ""
    assert err.strip() == "tcpip up: error: --http needs the h11 library: pip install 'tcpip[http]'"


# -- against the kernel ------------------------------------------------------------------------------
@pytest.fixture
def cli_ns() -> Iterator[Namespace]:
    why = netns_available()
    if why is not None:
        pytest.skip(f"needs root, /dev/net/tun and pyroute2: {why}")
    ns = Namespace.create("ct")
    try:
        ns.add_tap("tap0")
        ns.add_address("tap0", "198.18.0.1/24")
        yield ns
    finally:
        ns.remove()


_ECHO_CLIENT = """
import hashlib, socket, sys
data = bytes(range(256)) * 4096  # 1 MiB
s = socket.create_connection(("198.18.0.2", 7), timeout=10)
s.sendall(data)
s.shutdown(socket.SHUT_WR)
got = bytearray()
while chunk := s.recv(65536):
    got += chunk
s.close()
print(len(got), got == data)
s = socket.create_connection(("198.18.0.2", 9), timeout=10)
s.sendall(data)
s.shutdown(socket.SHUT_WR)
print("discard", s.recv(10))
s.close()
"""


def _expected(n: int) -> bytes:
    return (bytes(range(251)) * (n // 251 + 1))[:n]


@pytest.mark.tap
async def test_up_serves_tcp_to_the_kernel_until_sigterm(cli_ns: Namespace) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tcpip", "up", "--netns", cli_ns.name, "--tap", "tap0", "--ipv4", "198.18.0.2/24",
        "--tcp-echo", "7", "--tcp-discard", "9", "--http", "80", "--http", "8080",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=ENV,
    )
    try:
        assert proc.stdout is not None
        banner = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
        assert "TCP echo on 7, TCP discard on 9, HTTP on 80, 8080;" in banner, banner
        r = await cli_ns.run_async([sys.executable, "-c", _ECHO_CLIENT], timeout=30)
        assert r.stdout.splitlines() == ["1048576 True", "discard b''"], r.stdout + r.stderr
        r = await cli_ns.run_async(["curl", "-sS", "--fail", "-m", "10", "http://198.18.0.2/"])
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith("tcpip\n")
        assert re.search(r"^  tcp +.*PassiveOpens=\d+", r.stdout, re.M), r.stdout
        r = await cli_ns.run_async(["sh", "-c", "curl -sS --fail -m 10 http://198.18.0.2:8080/bytes/3000000 "
                                    "| sha256sum"])
        assert r.stdout.split()[0] == hashlib.sha256(_expected(3000000)).hexdigest(), r.stdout + r.stderr
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 15)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err
    text = out.decode()
    assert "tcpip down; counters:" in text
    m = re.search(r"^    tcp +(.*)$", text, re.M)
    assert m is not None, text
    tcp = dict(kv.split("=") for kv in m.group(1).split())
    assert int(tcp["PassiveOpens"]) == 4, text  # echo, discard, two curls
    assert "InCsumErrors" not in tcp  # zero counters are not printed


@pytest.mark.tap
async def test_up_refuses_a_port_nobody_listens_on(cli_ns: Namespace) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tcpip", "up", "--netns", cli_ns.name, "--tap", "tap0", "--ipv4", "198.18.0.2/24",
        "--tcp-echo", "7", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=ENV,
    )
    try:
        assert proc.stdout is not None
        await asyncio.wait_for(proc.stdout.readline(), 10)
        r = await cli_ns.run_async([sys.executable, "-c", (
            "import socket\n"
            "try:\n socket.create_connection(('198.18.0.2', 8), timeout=5)\n"
            "except ConnectionRefusedError:\n print('refused')\n")], timeout=15)
        assert r.stdout.strip() == "refused", r.stdout + r.stderr
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), 15)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0
