"""Every `tcpip` subcommand given bad input fails with one line `tcpip <command>: error: ...` and status 2,
never a raw "[Errno N]", and a permission failure names CAP_NET_ADMIN; the examples exit 1 when their
check fails (issue 11 item 8)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tcpip import cli
from tcpip.netns import Namespace, netns_available

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    [str(Path(cli.__file__).resolve().parents[1]), *filter(None, [os.environ.get("PYTHONPATH")])])}
ABSENT = f"tcpip-absent{os.getpid()}-0"  # no such namespace: fails before any TAP is opened
DEV = ["--tap", "tap0", "--ipv4", "198.18.0.2/24"]
PING = ["ping", "198.18.0.1", "--netns", ABSENT, *DEV]

CASES = [
    (["demo", "--hub", "--pcap", "/nonexistent-dir/x.pcap"], "/nonexistent-dir/x.pcap: No such file or directory"),
    (["demo", "--frob"], "unrecognized arguments: --frob"),
    (["up", "--tap", "tap0", "--ipv4", "198.18.0.2/33"], "bad IPv4 address"),
    (["up", "--tap", "tap0"], "give --ipv4 ADDR/PREFIX or --dhcp"),
    (["up", "--netns", ABSENT, *DEV], f"no network namespace named '{ABSENT}'"),
    (["up", "--netns", ABSENT, *DEV, "--pcap", "/nonexistent-dir/x.pcap"], "no network namespace named"),
    ([*PING], f"no network namespace named '{ABSENT}'"),
    ([*PING, "-i", "0"], "bad timing interval: 0 (allowed: 0.002 to 3600 seconds)"),
    ([*PING, "-W", "0"], "bad linger time: 0 (allowed: 0.001 to 3600 seconds)"),
    ([*PING, "-t", "256"], "bad TTL: 256 (allowed: 1 to 255"),
    ([*PING, "-Q", "0x100"], "bad TOS: 0x100 (allowed: 0 to 255"),
    ([*PING, "-M", "want"], "wrong value: want (do, dont are available)"),
    ([*PING, "-p", "xyz"], "patterns must be specified as 1 to 32 hex digits: xyz"),
    ([*PING, "-c", "0"], "count 0 outside 1..1000000"),
    (["run", "--netns", ABSENT, *DEV, "--", "-c", "pass"], f"no network namespace named '{ABSENT}'"),
    (["run", *DEV, "--", "/nonexistent-dir/missing.py"], "can't open file"),
    (["run", *DEV, "--", "-X", "dev"], "unsupported python option '-X'"),
]


def tcpip(*argv: str, wrap: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*wrap, sys.executable, "-m", "tcpip", *argv], env=ENV, capture_output=True,
                          text=True, timeout=60, check=False)


def assert_one_error_line(p: subprocess.CompletedProcess[str], command: str, message: str) -> None:
    assert p.returncode == 2, p.stdout + p.stderr
    assert "[Errno" not in p.stderr + p.stdout
    lines = p.stderr.splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith(f"tcpip {command}: error: "), lines[0]
    assert message in lines[0], lines[0]


def test_every_command_reports_bad_input_on_one_prefixed_line(capsys: pytest.CaptureFixture[str]) -> None:
    """In-process (an interpreter start per case would take a minute); the subprocess path is the same
    `main` (the permission test below and tests/test_cli.py run it)."""
    commands = {argv[0] for argv, _ in CASES}
    assert commands == set(cli.build_parser().commands)  # every subcommand is covered
    for argv, message in CASES:
        try:
            rc = cli.main(argv)
        except SystemExit as e:  # argparse
            rc = int(e.code or 0)
        out, err = capsys.readouterr()
        assert_one_error_line(subprocess.CompletedProcess(argv, rc, out, err), argv[0], message)


# -- permission failures (root needed to make them: a private namespace, capabilities dropped) ------------
@pytest.fixture
def ns() -> Iterator[Namespace]:
    why = netns_available()
    if why is not None:
        pytest.skip(f"needs root, /dev/net/tun and pyroute2: {why}")
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv is not installed")
    n = Namespace.create("cm")
    try:
        yield n
    finally:
        n.remove()


@pytest.mark.tap
@pytest.mark.parametrize("command", ["up", "ping", "run"])
def test_permission_failures_name_cap_net_admin(ns: Namespace, command: str) -> None:
    """Without CAP_NET_ADMIN creating the TAP fails; without CAP_SYS_ADMIN too, entering the namespace does.
    Both say what is missing. (tap9 does not exist in the namespace, so nothing is created anywhere.)"""
    argv = [command, *(["198.18.0.1"] if command == "ping" else []), "--netns", ns.name, "--tap", "tap9",
            "--ipv4", "198.18.0.2/24", *(["--", "-c", "pass"] if command == "run" else [])]
    for drop, message in (("-net_admin", "TAP 'tap9': Operation not permitted (run as root or with "
                                         "CAP_NET_ADMIN)"),
                          ("-net_admin,-sys_admin", "setns failed: Operation not permitted (run as root or with "
                                                    "CAP_NET_ADMIN)")):
        assert_one_error_line(tcpip(*argv, wrap=("setpriv", f"--bounding-set={drop}")), command, message)


# -- the examples say when their check fails (exit status 1) ------------------------------------------------
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def example(name: str, monkeypatch: pytest.MonkeyPatch, *argv: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(sys, "argv", [f"{name}.py", *argv])
    return mod


def test_udp_echo_example_exits_1_when_an_echo_is_missing(monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    ex = example("udp_echo", monkeypatch)
    real = ex.EchoServerProtocol.datagram_received

    def lossy(self: Any, data: bytes, addr: tuple[str, int]) -> None:
        if data != b"hello":  # the server "loses" one message
            real(self, data, addr)

    monkeypatch.setattr(ex.EchoServerProtocol, "datagram_received", lossy)
    assert ex.main() == 1
    out, err = capsys.readouterr()
    assert "2 of 3 echoes received" in out
    assert err == "udp_echo: FAILED, 1 echo(es) missing\n"


def test_dns_query_example_exits_1_on_no_answer_or_a_wrong_one(monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    ex = example("dns_query", monkeypatch, "--self-test", "www.example.test", "--timeout", "0.2")
    monkeypatch.setattr(ex.FakeResolver, "datagram_received", lambda self, data, addr: None)
    assert ex.main() == 1
    assert capsys.readouterr().err == "no answer from 198.18.0.53 within 0.2 s\n"
    ex = example("dns_query", monkeypatch, "--self-test", "www.example.test")
    monkeypatch.setattr(ex, "parse_response", lambda msg, ident: ("NOERROR", ["198.18.0.99"]))
    assert ex.main() == 1
    assert "self-test FAILED: expected ('NOERROR', ['198.18.0.80', '198.18.0.81'])" in capsys.readouterr().err
    ex = example("dns_query", monkeypatch, "--self-test", "missing.example.test")
    assert ex.main() == 0  # NXDOMAIN is the right answer there


@pytest.mark.tap
def test_udp_echo_example_on_kernel_sockets_does_not_count_the_empty_message(ns: Namespace) -> None:
    """--kernel uses asyncio's own sockets on 127.0.0.1, run inside the test's namespace."""
    r = ns.run([sys.executable, str(EXAMPLES / "udp_echo.py"), "--kernel"])
    assert r.returncode == 0, r.stdout + r.stderr
    if sys.version_info >= (3, 13):
        assert "3 of 3 echoes received\n" in r.stdout
    else:
        assert "client got b'' back" not in r.stdout
        assert (f"2 of 2 echoes received (the empty message was never sent: asyncio on Python "
                f"{sys.version_info.major}.{sys.version_info.minor} does not send empty datagrams on kernel "
                "sockets)") in r.stdout
