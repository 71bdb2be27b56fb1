"""Helpers for the kernel interop tests: constants, our stack on a namespace's TAP, tshark and
ping(8) output parsing."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tcpip import Stack
from tcpip.netif.pcap import PcapWriter
from tcpip.netns import CommandResult, Namespace, netns_available

KERNEL_IP = "198.18.0.1"
STACK_IP = "198.18.0.2"
PREFIX = 24
TAP = "tap0"


def require_tap(*tools: str) -> None:
    reason = netns_available()
    if reason is not None:
        pytest.skip(f"kernel interop needs root, /dev/net/tun and pyroute2: {reason}")
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")


@dataclass
class Peer:
    """Our stack on the TAP, and the kernel namespace at the other end."""

    ns: Namespace
    stack: Stack
    pcap_path: Path
    pcap: PcapWriter
    kernel_mac: str
    tmp: Path
    procs: list[asyncio.subprocess.Process] = field(default_factory=list)

    async def run(self, *cmd: str, timeout: float = 15.0, input: str | None = None) -> CommandResult:
        return await self.ns.run_async(cmd, timeout=timeout, input=input)

    async def python(self, script: str, *args: str, timeout: float = 15.0) -> CommandResult:
        """Run a Python script inside the namespace (a kernel socket peer)."""
        return await self.run(python_exe(), "-c", script, *args, timeout=timeout)


def python_exe() -> str:
    return sys.executable


@asynccontextmanager
async def running_stack(
    ns: Namespace, pcap_path: Path, *, ipv4: str = f"{STACK_IP}/{PREFIX}",
    gateways: Sequence[str] = (), udp_echo: int | None = 7, offload: bool | None = None,
) -> AsyncIterator[tuple[Stack, PcapWriter]]:
    """Our stack on `tap0` of `ns`, recording to `pcap_path`; disconnected (fd closed) afterwards.
    `offload` as `TapDevice.open` (the PcapWriter takes frames the plain way either way)."""
    dev = await ns.open_tap(TAP, offload=offload)
    pcap = PcapWriter(dev, pcap_path)
    try:
        stack = await Stack.connect(pcap, ipv4=ipv4, gateways=gateways)
    except BaseException:
        pcap.close()
        raise
    try:
        if udp_echo is not None:
            await stack.udp_echo(udp_echo)
        yield stack, pcap
    finally:
        await stack.disconnect()
        pcap.close()


# -- tshark as an oracle ---------------------------------------------------------------------------
_EXPERT_ROW = re.compile(r"^\s+(\d+)\s+(\S+)\s+(\S+)\s+(.*)$")


def tshark_problems(path: Path, *, allow: Callable[[str, str, str], bool] | None = None) -> list[str]:
    """Expert-info problems tshark finds in `path` with IP/UDP checksum checking on: every Error,
    and anything in the Malformed or Checksum groups, at any severity. Empty means clean."""
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")
    p = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-o", "ip.check_checksum:TRUE",
         "-o", "udp.check_checksum:TRUE", "-q", "-z", "expert,chat"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert p.returncode == 0, p.stderr
    problems: list[str] = []
    severity = ""
    for line in p.stdout.splitlines():
        head = re.match(r"^(Errors|Warns|Notes|Chats|Comments) \(\d+\)", line)
        if head:
            severity = head.group(1)
            continue
        m = _EXPERT_ROW.match(line)
        if m is None or m.group(1) == "Frequency":
            continue
        _, group, proto, summary = m.groups()
        bad = severity == "Errors" or group in ("Malformed", "Checksum")
        if bad and not (allow is not None and allow(group, proto, summary)):
            problems.append(f"{severity}: {group} {proto} {summary}")
    return problems


def tshark_fields(path: Path, display_filter: str, *fields: str) -> list[list[str]]:
    args = ["tshark", "-n", "-r", str(path), "-Y", display_filter, "-T", "fields"]
    for f in fields:
        args += ["-e", f]
    p = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert p.returncode == 0, p.stderr
    return [line.split("\t") for line in p.stdout.splitlines() if line]


def ping_summary(out: str) -> dict[str, Any]:
    """Parse ping(8)'s summary: transmitted, received, loss (percent), time (ms), rtt dict."""
    m = re.search(r"(\d+) packets transmitted, (\d+) received,.*?([\d.]+)% packet loss(?:, time (\d+)ms)?", out)
    assert m is not None, out
    res: dict[str, Any] = {
        "transmitted": int(m.group(1)), "received": int(m.group(2)),
        "loss": float(m.group(3)), "time_ms": int(m.group(4) or 0),
    }
    r = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms", out)
    if r:
        res["rtt"] = dict(zip(("min", "avg", "max", "mdev"), map(float, r.groups()), strict=True))
    return res
