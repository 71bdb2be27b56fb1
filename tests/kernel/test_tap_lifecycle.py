"""A TAP's life under a running stack, against the kernel: deleted and re-created (`tcpip up` and the API),
its MTU adopted, restored and followed, SIGUSR1's state dump, and the kernel's tx_dropped toward us."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kernel_support import KERNEL_IP, PREFIX, STACK_IP, TAP, Peer, ping_summary

import tcpip
from tcpip.errors import LinkLostError
from tcpip.netns import Namespace

pytestmark = pytest.mark.tap

SRC = str(Path(tcpip.__file__).resolve().parents[1])  # this checkout's src, for the subprocess


class Up:
    """A `tcpip up` subprocess on `tap0` of a namespace (opened with --netns), its output collected."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [asyncio.ensure_future(self._read(proc.stdout, self.out)),
                         asyncio.ensure_future(self._read(proc.stderr, self.err))]

    @staticmethod
    async def _read(stream: asyncio.StreamReader | None, into: list[str]) -> None:
        assert stream is not None
        while line := await stream.readline():
            into.append(line.decode())

    async def line(self, pattern: str, *, err: bool = False, timeout: float = 8.0) -> str:
        """The first line (stdout, or stderr) matching `pattern`, waiting for it."""
        lines = self.err if err else self.out
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for ln in lines:
                if re.search(pattern, ln):
                    return ln
            if loop.time() > deadline or (self.proc.returncode is not None and all(r.done() for r in self._readers)):
                raise AssertionError(f"no line matching {pattern!r}:\n{''.join(self.out)}---\n{''.join(self.err)}")
            await asyncio.sleep(0.02)

    async def finish(self, sig: int | None = signal.SIGINT, timeout: float = 8.0) -> int:
        if sig is not None and self.proc.returncode is None:
            self.proc.send_signal(sig)
        rc = await asyncio.wait_for(self.proc.wait(), timeout)
        await asyncio.wait_for(asyncio.gather(*self._readers), 2)
        return rc


@pytest.fixture
async def up_factory(kernel_ns: Namespace) -> AsyncIterator[list[Up]]:
    started: list[Up] = []
    yield started
    for u in started:
        if u.proc.returncode is None:
            u.proc.kill()  # by its own handle (PID), never by name
            await u.proc.wait()


async def start_up(started: list[Up], ns: Namespace, *flags: str, loop: str = "") -> Up:
    """`loop` "asyncio": asyncio's own loop (TCPIP_LOOP); else the CLI's default (uvloop when installed)."""
    env = {**os.environ, "PYTHONPATH": SRC, "TCPIP_LOOP": loop}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tcpip", "up", "--netns", ns.name, "--tap", TAP, "--ipv4", f"{STACK_IP}/{PREFIX}",
        *flags, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    u = Up(proc)
    started.append(u)
    await u.line(r"SIGINT/SIGTERM to stop")
    return u


async def ip(ns: Namespace, *args: str) -> str:
    r = await ns.run_async(["ip", *args], timeout=10)
    assert r.returncode == 0, r.stderr
    return r.stdout


async def recreate_tap(ns: Namespace, *, mtu: int | None = None) -> None:
    await ip(ns, "tuntap", "add", TAP, "mode", "tap")
    if mtu is not None:
        await ip(ns, "link", "set", TAP, "mtu", str(mtu))
    await ip(ns, "addr", "add", f"{KERNEL_IP}/{PREFIX}", "dev", TAP)
    await ip(ns, "link", "set", TAP, "up")


async def kernel_mtu(ns: Namespace) -> int:
    m = re.search(r" mtu (\d+) ", await ip(ns, "link", "show", TAP))
    assert m is not None
    return int(m.group(1))


async def kernel_pings(ns: Namespace, count: int = 2) -> int:
    r = await ns.run_async(["ping", "-n", "-c", str(count), "-i", "0.2", "-W", "1", STACK_IP], timeout=15)
    return int(ping_summary(r.stdout)["received"])


# -- `tcpip up` ------------------------------------------------------------------------------------
@pytest.mark.parametrize("loop", ["", "asyncio"])
async def test_up_reopens_a_deleted_tap_when_it_reappears(kernel_ns: Namespace, up_factory: list[Up],
                                                          loop: str) -> None:
    up = await start_up(up_factory, kernel_ns, loop=loop)
    assert await kernel_pings(kernel_ns) == 2
    await ip(kernel_ns, "link", "del", TAP)
    assert "interface deleted (read failed: EBADFD)" in await up.line(r"tap0 lost: ")
    await up.line(r"tap0 retrying: ")
    await asyncio.sleep(0.3)
    await recreate_tap(kernel_ns)
    await up.line(r"tap0 back: ")
    assert await kernel_pings(kernel_ns, 3) == 3  # a new kernel MAC: learned again
    rc = await up.finish(signal.SIGINT)
    out = "".join(up.out)
    assert rc == 0, out + "".join(up.err)
    assert re.search(r"icmp .*rx_echo_requests=5 .*tx_echo_replies=5", out), out
    assert re.search(r"kernel +tap0 tx_dropped=0 .*rx_dropped=0", out), out


@pytest.mark.parametrize("loop", ["", "asyncio"])
async def test_up_exit_on_link_loss(kernel_ns: Namespace, up_factory: list[Up], loop: str) -> None:
    up = await start_up(up_factory, kernel_ns, "--exit-on-link-loss", loop=loop)
    await ip(kernel_ns, "link", "del", TAP)
    rc = await up.finish(None)
    assert rc == 1
    errors = [ln for ln in up.err if ln.startswith("tcpip up: error:")]
    assert errors == ["tcpip up: error: tap0 lost: interface deleted (read failed: EBADFD) (--exit-on-link-loss)\n"]


async def test_up_sigint_while_the_link_is_lost_exits_1(kernel_ns: Namespace, up_factory: list[Up]) -> None:
    up = await start_up(up_factory, kernel_ns)
    await ip(kernel_ns, "link", "del", TAP)
    await up.line(r"tap0 retrying: ")
    rc = await up.finish(signal.SIGINT)
    assert rc == 1
    assert any("tap0 was lost (interface deleted" in ln and "had not come back" in ln for ln in up.err), up.err


async def test_up_adopts_restores_and_follows_the_mtu(kernel_ns: Namespace, up_factory: list[Up]) -> None:
    await ip(kernel_ns, "link", "set", TAP, "mtu", "1400")
    up = await start_up(up_factory, kernel_ns)  # no --mtu: the TAP's own
    assert " mtu 1400, " in up.out[0]
    assert await kernel_mtu(kernel_ns) == 1400
    await ip(kernel_ns, "link", "set", TAP, "mtu", "1300")  # changed on the kernel side while running
    await up.line(r"tap0 MTU 1400 -> 1300; the stack follows it", timeout=4)
    up.proc.send_signal(signal.SIGUSR1)
    await up.line(r"state of tap0 198\.18\.0\.2/24 mtu 1300", err=True)
    assert await up.finish() == 0
    assert await kernel_mtu(kernel_ns) == 1300  # adopted, so left as it is

    up = await start_up(up_factory, kernel_ns, "--mtu", "1280")
    assert " mtu 1280, " in up.out[0]
    assert await kernel_mtu(kernel_ns) == 1280
    assert await up.finish() == 0
    assert await kernel_mtu(kernel_ns) == 1300  # given with --mtu: the previous one restored


async def test_sigusr1_dumps_arp_cache_without_stopping(kernel_ns: Namespace, up_factory: list[Up]) -> None:
    kmac = await asyncio.to_thread(kernel_ns.link_mac, TAP)
    up = await start_up(up_factory, kernel_ns)
    assert await kernel_pings(kernel_ns) == 2
    up.proc.send_signal(signal.SIGUSR1)
    line = await up.line(rf"^\s+{re.escape(KERNEL_IP)}\s", err=True)
    assert line.split()[:3] == [KERNEL_IP, kmac, "REACHABLE"]
    assert re.search(r"age \d+\.\ds", line)
    await up.line(r"path MTU \(0 entries\)", err=True)
    await up.line(r"icmp +.*rx_echo_requests=2", err=True)
    assert up.proc.returncode is None  # still running, still answering
    assert await kernel_pings(kernel_ns) == 2
    assert await up.finish() == 0


# -- the API ---------------------------------------------------------------------------------------
async def test_api_link_lost_and_back(peer: Peer) -> None:
    stack = peer.stack
    r = await peer.run("ping", "-n", "-c", "1", "-W", "1", STACK_IP)
    assert ping_summary(r.stdout)["received"] == 1
    await ip(peer.ns, "link", "del", TAP)
    await asyncio.wait_for(stack.link.lost.wait(), 2)
    assert stack.link.reason is not None
    assert "EBADFD" in stack.link.reason
    with pytest.raises(LinkLostError):
        stack.device.transmit((bytes(60),))
    probe = (await stack.ping(KERNEL_IP, timeout=0.3)).probes[0]
    assert probe.rtt is None
    await recreate_tap(peer.ns, mtu=1400)
    assert await asyncio.wait_for(stack.link.reopen(first=0.05), 5)
    assert not stack.link.lost.is_set()
    # open_tap asked for MTU 1500 (its default): applied again to the new interface, as at open
    assert await kernel_mtu(peer.ns) == 1500
    assert stack.ethif.mtu == 1500
    kmac = await asyncio.to_thread(peer.ns.link_mac, TAP)
    rtts = await stack.ping(KERNEL_IP, count=2, timeout=1.0)
    assert None not in rtts
    assert stack.core.arp.entries[int.from_bytes(bytes(map(int, KERNEL_IP.split("."))), "big")].mac == \
        bytes.fromhex(kmac.replace(":", ""))


async def test_api_follows_a_kernel_side_mtu_change(peer: Peer) -> None:
    stack = peer.stack
    assert stack.ethif.mtu == 1500
    await ip(peer.ns, "link", "set", TAP, "mtu", "1280")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 3
    while stack.ethif.mtu != 1280 and loop.time() < deadline:
        await asyncio.sleep(0.05)
    assert stack.ethif.mtu == 1280
    assert stack.tcp.iface.path_mtu(int.from_bytes(bytes([198, 18, 0, 1]), "big")) == 1280
    # the kernel's view agrees: a 1280-byte datagram with DF goes through, 1281 does not
    r = await peer.run("ping", "-n", "-s", "1252", "-M", "do", "-c", "1", "-W", "1", STACK_IP)
    assert ping_summary(r.stdout)["received"] == 1, r.stdout + r.stderr


async def test_kernel_tx_dropped_visible_in_stats(peer: Peer) -> None:
    stack = peer.stack
    before = stack.stats()["device"]
    assert before["kernel_tx_dropped"] == 0
    assert before["kernel_txqueuelen"] >= 4096  # lengthened at open (tun's default is 500)
    flood = before["kernel_txqueuelen"] + 2000
    # The kernel floods us while our loop is blocked (this synchronous run): its queue toward us overflows.
    r = await peer.run("ping", "-n", "-c", "1", "-W", "1", STACK_IP)  # the kernel knows our MAC
    assert ping_summary(r.stdout)["received"] == 1
    script = ("import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nsent = 0\n"
              f"for _ in range({flood}):\n"
              "    try:\n"
              f"        s.sendto(b'x' * 64, ('{STACK_IP}', 9))\n"
              "        sent += 1\n"
              "    except OSError:\n"
              "        pass\n"
              "print(sent)\n")
    res = peer.ns.run([sys.executable, "-c", script], timeout=20).check()
    assert int(res.stdout) > flood - 1000, res.stdout
    after = stack.stats()["device"]
    r = await peer.run("cat", f"/sys/class/net/{TAP}/statistics/tx_dropped")  # sysfs, inside the namespace
    assert after["kernel_tx_dropped"] == int(r.stdout) > 0
    assert after["kernel_tx_dropped"] >= int(res.stdout) - after["kernel_txqueuelen"] - 50


async def test_api_a_renamed_tap_is_not_lost(peer: Peer) -> None:
    await ip(peer.ns, "link", "set", TAP, "down")
    await ip(peer.ns, "link", "set", TAP, "name", "tap9")
    await ip(peer.ns, "link", "set", "tap9", "up")
    await asyncio.sleep(1.5)  # past one MTU poll, which no longer finds "tap0"
    assert not peer.stack.link.lost.is_set()
    r = await peer.run("ping", "-n", "-c", "2", "-i", "0.2", "-W", "1", STACK_IP)
    assert ping_summary(r.stdout)["received"] == 2, r.stdout  # the fd still serves the renamed interface
