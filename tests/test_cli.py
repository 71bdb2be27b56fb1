"""The `tcpip` command: flag validation (one-line errors, status 2), `demo` on the hub, and - in a
private namespace when root - `demo`, `up` and `ping` against the kernel."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

import pytest

from tcpip import cli
from tcpip.netif import tap as tap_mod
from tcpip.netns import Namespace, netns_available

UP = ["up", "--tap", "tap0", "--ipv4", "198.18.0.2/24"]


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        rc = cli.main(list(argv))
    except SystemExit as e:
        rc = int(e.code or 0)
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "required"),
        (["frobnicate"], "invalid choice"),
        (["up", "--ipv4", "198.18.0.2/24"], "--tap"),
        (["up", "--tap", "tap0", "--ipv4", "198.18.0.2/"], "bad IPv4 address"),  # bare 198.18.0.2 is /32
        (["up", "--tap", "tap0", "--ipv4", "198.18.0.300/24"], "bad IPv4 address"),
        (["up", "--tap", "tap0", "--ipv4", "198.18.0.2/33"], "bad IPv4 address"),
        (["up", "--tap", "tap0", "--ipv4", "198.18.0.0/24"], "network address"),
        ([*UP, "--ipv4-gateway", "198.18.0.x"], "bad IPv4 address"),
        ([*UP, "--mac", "01:00:5e:00:00:01"], "multicast"),
        ([*UP, "--mac", "zz:00:00:00:00:01"], "bad MAC"),
        ([*UP, "--mtu", "40"], "outside 68..65535"),
        ([*UP, "--udp-echo", "70000"], "outside 1..65535"),
        ([*UP, "--log-level", "loud"], "invalid choice"),
        (["ping", "--tap", "tap0", "--ipv4", "198.18.0.2/24"], "DEST"),
        (["ping", "198.18.0.1", *UP[1:], "-c", "0"], "outside"),
        (["ping", "198.18.0.1", *UP[1:], "-i", "-1"], "bad timing interval: -1 (allowed: 0.002 to 3600 seconds)"),
    ],
)
def test_bad_flags_exit_2_with_one_line_error(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    rc, out, err = run_main(capsys, *argv)
    assert rc == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("tcpip")
    assert message in lines[0]


def test_missing_tun_device_exit_2(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tap_mod, "TUN_PATH", "/nonexistent/net/tun")
    rc, _, err = run_main(capsys, *UP)
    assert rc == 2
    assert err.strip().splitlines() == [err.strip()]
    assert "/nonexistent/net/tun is missing" in err


def test_no_permission_exit_2(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tap_mod, "TUN_PATH", "/dev/null")
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    rc, _, err = run_main(capsys, "ping", "198.18.0.1", *UP[1:])
    assert rc == 2
    assert "no permission" in err
    assert len(err.strip().splitlines()) == 1


def test_gateway_flag_repeats_and_splits_commas() -> None:
    args = cli.build_parser().parse_args(
        [*UP, "--ipv4-gateway", "198.18.0.1,198.18.0.254", "--ipv4-gateway", "198.18.0.253"])
    assert cli._all_gateways(args) == [IPv4Address("198.18.0.1"), IPv4Address("198.18.0.254"),
                                       IPv4Address("198.18.0.253")]
    assert args.ipv4 == IPv4Interface("198.18.0.2/24")


def test_demo_on_the_hub(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run_main(capsys, "demo", "--hub")
    assert rc == 0, out
    assert "in-memory Ethernet hub" in out
    assert "[FAIL]" not in out
    assert out.count("[ok]") == 9  # 4 IPv4/UDP checks + 5 TCP ones
    assert re.search(r"icmp .*tx_echo_replies=3", out)
    assert "demo passed (hub peer" in out


def test_python_dash_m_entry_point() -> None:
    p = subprocess.run([sys.executable, "-m", "tcpip", "up", "--tap", "tap0", "--ipv4", "nope"],
                       capture_output=True, text=True, timeout=30, check=False)
    assert p.returncode == 2
    assert p.stderr.startswith("tcpip up: error:")


# -- against the kernel ------------------------------------------------------------------------------
@pytest.fixture
def cli_ns() -> Iterator[Namespace]:
    why = netns_available()
    if why is not None:
        pytest.skip(f"needs root, /dev/net/tun and pyroute2: {why}")
    ns = Namespace.create("c")
    try:
        ns.add_tap("tap0")
        ns.add_address("tap0", "198.18.0.1/24")
        yield ns
    finally:
        ns.remove()


def _ours(pid: int) -> list[str]:
    try:
        return [n for n in os.listdir("/run/netns") if n.startswith("tcpip-") and f"{pid}-" in n]
    except FileNotFoundError:
        return []


@pytest.mark.tap
def test_demo_against_the_kernel() -> None:
    why = netns_available()
    if why is not None:
        pytest.skip(f"needs root, /dev/net/tun and pyroute2: {why}")
    p = subprocess.Popen([sys.executable, "-m", "tcpip", "demo"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    print(out)
    assert p.returncode == 0, out + err
    assert "demo passed (kernel peer, 11/11 checks)" in out
    assert "[FAIL]" not in out
    assert _ours(p.pid) == []  # it removed its namespace


@pytest.mark.tap
async def test_up_serves_the_kernel_until_sigterm(cli_ns: Namespace, tmp_path: Path) -> None:
    pcap = tmp_path / "up.pcap"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tcpip", "up", "--netns", cli_ns.name, "--tap", "tap0", "--ipv4", "198.18.0.2/24",
        "--udp-echo", "7", "--pcap", str(pcap), "--mac", "02:00:00:00:be:ef",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        banner = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
        assert banner.startswith("tcpip up: tap0 02:00:00:00:be:ef 198.18.0.2/24"), banner
        r = await cli_ns.run_async(["ping", "-n", "-c", "3", "-i", "0.05", "-W", "1", "198.18.0.2"])
        assert " 0% packet loss" in r.stdout, r.stdout
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 10)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err
    text = out.decode()
    assert "tcpip down; counters:" in text
    assert re.search(r"icmp .*rx_echo_requests=3 .*tx_echo_replies=3", text), text
    assert pcap.stat().st_size > 24 + 3 * (16 + 98)


@pytest.mark.tap
async def test_ping_command_against_the_kernel(cli_ns: Namespace) -> None:
    base = [sys.executable, "-m", "tcpip", "ping", "--netns", cli_ns.name, "--tap", "tap0",
            "--ipv4", "198.18.0.2/24", "-i", "0.05", "-W", "0.5"]
    p = await asyncio.create_subprocess_exec(*base[:4], "198.18.0.1", *base[4:], "-c", "3", "-s", "100",
                                             stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(p.communicate(), 20)
    text = out.decode()
    assert p.returncode == 0, text + err.decode()
    assert text.startswith("PING 198.18.0.1 (198.18.0.1) 100(128) bytes of data.")
    assert len(re.findall(r"^108 bytes from 198\.18\.0\.1: icmp_seq=\d ttl=64 time=[\d.]+ ms$", text, re.M)) == 3
    assert "3 packets transmitted, 3 received, 0% packet loss" in text
    assert re.search(r"rtt min/avg/max/mdev = [\d.]+/[\d.]+/[\d.]+/[\d.]+ ms", text)
    # nobody at .9: no reply, exit status 1 like ping(8)
    p = await asyncio.create_subprocess_exec(*base[:4], "198.18.0.9", *base[4:], "-c", "1",
                                             stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(p.communicate(), 20)
    assert p.returncode == 1, out.decode()
    assert "1 packets transmitted, 0 received, 100% packet loss" in out.decode()
    # off-link with no gateway: as ping(8), "connect: Network is unreachable" and status 2
    p = await asyncio.create_subprocess_exec(*base[:4], "10.9.9.9", *base[4:], "-c", "1",
                                             stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(p.communicate(), 20)
    assert p.returncode == 2, out.decode() + err.decode()
    assert "connect: Network is unreachable" in err.decode()
