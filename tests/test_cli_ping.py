"""`tcpip ping` against the Linux kernel (issue 11 item 2), each flag checked on the wire: tcpdump on the
kernel's side of the TAP, in the test's own namespace, decoded by tshark; and the kernel's replies."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from kernel.kernel_support import require_tap, tshark_fields

from tcpip import cli
from tcpip.netns import Namespace

pytestmark = pytest.mark.tap

KERNEL, US, BCAST = "198.18.0.1", "198.18.0.2", "198.18.0.255"
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    [str(Path(cli.__file__).resolve().parents[1]), *filter(None, [os.environ.get("PYTHONPATH")])])}
REQ = "icmp.type == 8"
REPLY = "icmp.type == 0"


@pytest.fixture
def ns() -> Iterator[Namespace]:
    require_tap("tcpdump", "tshark")
    n = Namespace.create("cp")
    try:
        n.add_tap("tap0")
        n.add_address("tap0", f"{KERNEL}/24")
        yield n
    finally:
        n.remove()


@asynccontextmanager
async def capture(ns: Namespace, path: Path) -> AsyncIterator[Path]:
    """tcpdump on the kernel side of tap0 while the body runs."""
    dump = await ns.start(["tcpdump", "-n", "-U", "--immediate-mode", "-i", "tap0", "-w", str(path), "icmp"])
    try:
        assert dump.stderr is not None
        line = await asyncio.wait_for(dump.stderr.readline(), 10)
        assert b"listening on" in line, line
        yield path
    finally:
        await asyncio.sleep(0.2)
        await Namespace.stop(dump, signal=signal.SIGINT)


async def start(ns: Namespace, dest: str, *flags: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tcpip", "ping", "--netns", ns.name, "--tap", "tap0", "--ipv4", f"{US}/24", dest,
        *flags, env=ENV, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def finish(p: asyncio.subprocess.Process, timeout: float = 60) -> tuple[int, str, str]:
    try:
        out, err = await asyncio.wait_for(p.communicate(), timeout)
    finally:
        if p.returncode is None:
            p.kill()
            await p.wait()
    assert p.returncode is not None
    return p.returncode, out.decode(), err.decode()


async def ping(ns: Namespace, dest: str, *flags: str) -> tuple[int, str, str]:
    return await finish(await start(ns, dest, *flags))


def fields(path: Path, flt: str) -> list[tuple[str, ...]]:
    return [tuple(r) for r in tshark_fields(path, flt, "ip.ttl", "ip.dsfield", "ip.flags.df", "data.data")]


async def test_ttl_tos_df_and_pattern_on_the_wire(ns: Namespace, tmp_path: Path) -> None:
    async with capture(ns, tmp_path / "set.pcap") as pcap:
        rc, out, err = await ping(ns, KERNEL, "-c", "2", "-i", "0.05", "-s", "10",
                                  "-t", "3", "-Q", "0x10", "-M", "do", "-p", "abcd")
    assert (rc, err) == (0, ""), out + err
    assert out.startswith(f"PATTERN: 0xabcd\nPING {KERNEL} ({KERNEL}) 10(38) bytes of data.\n")
    assert len(re.findall(rf"^18 bytes from {KERNEL}: icmp_seq=[12] ttl=64 time=[\d.]+ ms$", out, re.M)) == 2
    assert fields(pcap, REQ) == [("3", "0x10", "1", "abcd" * 5)] * 2
    # the kernel's replies: its own TTL, our TOS kept (RFC 1122 3.2.2.6), the pattern echoed
    assert fields(pcap, REPLY) == [("64", "0x10", "0", "abcd" * 5)] * 2

    async with capture(ns, tmp_path / "default.pcap") as pcap:
        rc, out, err = await ping(ns, KERNEL, "-c", "1", "-s", "10", "-M", "dont")
    assert rc == 0, out + err
    assert fields(pcap, REQ) == [("64", "0x00", "0", bytes(range(1, 11)).hex())]


async def test_dont_fragment_too_big_is_a_local_error(ns: Namespace, tmp_path: Path) -> None:
    async with capture(ns, tmp_path / "df.pcap") as pcap:
        rc, out, err = await ping(ns, KERNEL, "-c", "2", "-i", "0.05", "-s", "2000", "-M", "do")
        assert rc == 1, out + err
        assert err.splitlines() == ["tcpip ping: local error: message too long, mtu=1500"] * 2
        assert "2 packets transmitted, 0 received, +2 errors, 100% packet loss" in out
        rc, out, err = await ping(ns, KERNEL, "-c", "1", "-s", "2000")  # -M dont: fragmented
    assert rc == 0, out + err
    assert re.search(rf"^2008 bytes from {KERNEL}: icmp_seq=1 ttl=64", out, re.M)
    assert tshark_fields(pcap, f"ip.src == {US}", "ip.flags.df", "ip.flags.mf") == [["0", "1"], ["0", "0"]]


async def test_broadcast_refused_without_b(ns: Namespace, tmp_path: Path) -> None:
    await asyncio.to_thread(ns.sysctl, "net.ipv4.icmp_echo_ignore_broadcasts", 0)
    async with capture(ns, tmp_path / "b.pcap") as pcap:
        rc, out, err = await ping(ns, BCAST, "-c", "1")
        assert (rc, out) == (2, "")
        assert err == ("tcpip ping: error: Do you want to ping broadcast? Then -b. "
                       "If not, check your local firewall rules\n")
        rc, out, err = await ping(ns, BCAST, "-c", "2", "-i", "0.05", "-b")
    assert rc == 0, out + err
    assert err == "tcpip ping: warning: pinging broadcast address\n"
    assert len(re.findall(rf"^64 bytes from {KERNEL}: icmp_seq=[12] ttl=64", out, re.M)) == 2
    assert tshark_fields(pcap, REQ, "eth.dst", "ip.dst") == [["ff:ff:ff:ff:ff:ff", BCAST]] * 2


async def test_probes_every_interval_whatever_is_outstanding(ns: Namespace, tmp_path: Path) -> None:
    """The kernel ignores echo requests: with -W 3 and -i 0.1 all three probes still go out, the third
    while the first is still waiting for its reply (ping(8) timing, not one probe at a time)."""
    await asyncio.to_thread(ns.sysctl, "net.ipv4.icmp_echo_ignore_all", 1)
    async with capture(ns, tmp_path / "i.pcap") as pcap:
        rc, out, err = await ping(ns, KERNEL, "-c", "3", "-i", "0.1", "-W", "3")
    assert rc == 1, out + err
    assert "3 packets transmitted, 0 received, 100% packet loss" in out
    sent = [(int(seq), float(t)) for seq, t in tshark_fields(pcap, REQ, "icmp.seq", "frame.time_relative")]
    assert [s for s, _ in sent] == [1, 2, 3]
    assert sent[2][1] - sent[0][1] < 3.0  # probe 3 left inside probe 1's -W


@pytest.mark.parametrize("answered", [True, False])
async def test_sigint_stops_at_once_with_the_summary(ns: Namespace, answered: bool) -> None:
    """-c 1000 -i 0.05 -W 30: SIGINT ends the run long before either bound, summary printed; status 0
    with replies, 1 without (as ping(8))."""
    if not answered:
        await asyncio.to_thread(ns.sysctl, "net.ipv4.icmp_echo_ignore_all", 1)
    p = await start(ns, KERNEL, "-c", "1000", "-i", "0.05", "-W", "30")
    try:
        assert p.stdout is not None
        seen = [(await asyncio.wait_for(p.stdout.readline(), 10)).decode()]
        assert seen[0].startswith("PING "), seen
        if answered:
            while len(seen) < 3:
                seen.append((await asyncio.wait_for(p.stdout.readline(), 10)).decode())
            assert all(" bytes from " in s for s in seen[1:]), seen
        else:
            await asyncio.sleep(0.3)
        p.send_signal(signal.SIGINT)
        rc, out, err = await finish(p, timeout=10)  # far less than -W 30
    finally:
        if p.returncode is None:
            p.kill()
            await p.wait()
    m = re.search(r"^(\d+) packets transmitted, (\d+) received", out, re.M)
    assert m is not None, out + err
    sent, got = int(m.group(1)), int(m.group(2))
    assert 2 <= sent < 1000
    assert err == ""
    if answered:
        assert (rc, got >= 2) == (0, True)
        assert "rtt min/avg/max/mdev" in out
    else:
        assert (rc, got) == (1, 0)


async def _in_echos(ns: Namespace) -> int:
    """The namespace kernel's Icmp InEchos counter (/proc/net/snmp is per network namespace)."""
    r = await ns.run_async(["cat", "/proc/net/snmp"])
    head, vals = [ln.split() for ln in r.stdout.splitlines() if ln.startswith("Icmp:")][:2]
    return int(vals[head.index("InEchos")])


async def test_flood_bounded_by_count_prints_dots(ns: Namespace, tmp_path: Path) -> None:
    before = await _in_echos(ns)
    async with capture(ns, tmp_path / "f.pcap") as pcap:
        rc, out, err = await ping(ns, KERNEL, "-f", "-c", "50")
    assert (rc, err) == (0, ""), out + err
    body = out.split("bytes of data.\n", 1)[1].split("\n--- ", 1)[0]
    assert (body.count("."), body.count("\b \b"), body.replace(".", "").replace("\b \b", "")) == (50, 50, "")
    assert "50 packets transmitted, 50 received, 0% packet loss" in out
    assert re.search(r"rtt min/avg/max/mdev = [\d./]+ ms, ipg/ewma [\d.]+/[\d.]+ ms", out)
    # Exactly 50 requests reached the kernel (its counter; a capture under a flood may miss one), and
    # what the capture saw are distinct sequence numbers 1..50.
    assert await _in_echos(ns) - before == 50
    seqs = [int(f[0]) for f in tshark_fields(pcap, REQ, "icmp.seq")]
    assert len(set(seqs)) == len(seqs) >= 45
    assert set(seqs) <= set(range(1, 51))
