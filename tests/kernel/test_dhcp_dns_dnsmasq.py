"""The real Stack joins a network run by dnsmasq in the test's own namespace: DHCP lease, renewal, DNS names,
a kernel-side UDP and TCP server reached by name, RELEASE on disconnect, REBINDING across a dnsmasq restart.

dnsmasq (started by the test with the config it writes, stopped by PID) hands out a 2-minute lease with
T1 = 4 s and T2 = 7 s, so renewal and rebinding happen within seconds. Skips without root/netns or dnsmasq.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
from collections.abc import AsyncIterator, Callable
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from kernel_support import KERNEL_IP, TAP, python_exe, require_tap
from scapy.all import IP, UDP, rdpcap

from tcpip import Stack
from tcpip.core.dhcp import Bound, DhcpState, Lost, Renewed
from tcpip.errors import NameNotFoundError
from tcpip.netif.pcap import PcapWriter
from tcpip.netns import Namespace

pytestmark = pytest.mark.tap

SERVER = int(IPv4Address(KERNEL_IP))
SERVER_NAME_IP = "198.18.0.7"
UDP_PORT, TCP_PORT = 5353, 5300


def dnsmasq_conf(tmp: Path) -> Path:
    conf = tmp / "dnsmasq.conf"
    conf.write_text(f"""\
interface={TAP}
bind-interfaces
listen-address={KERNEL_IP}
no-resolv
no-hosts
local=/test/
local-ttl=60
host-record=server.test,{SERVER_NAME_IP}
host-record=kernel.test,{KERNEL_IP}
cname=alias.test,server.test
dhcp-range=198.18.0.50,198.18.0.60,255.255.255.0,2m
dhcp-option=option:router,{KERNEL_IP}
dhcp-option=option:dns-server,{KERNEL_IP}
dhcp-option=option:T1,4
dhcp-option=option:T2,7
dhcp-leasefile={tmp / "leases"}
dhcp-authoritative
no-ping
user=root
pid-file=
""")
    return conf


# A kernel-side UDP echo and TCP echo server, reached by name from our stack.
_SERVERS = f"""
import socket, threading
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("{KERNEL_IP}", {UDP_PORT}))
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); t.bind(("{KERNEL_IP}", {TCP_PORT}))
t.listen()
def udp():
    while True:
        d, a = u.recvfrom(2048); u.sendto(b"udp:" + d, a)
threading.Thread(target=udp, daemon=True).start()
print("ready", flush=True)
while True:
    c, _ = t.accept(); d = c.recv(100); c.sendall(b"tcp:" + d); c.close()
"""


def leases(tmp: Path) -> str:
    p = tmp / "leases"
    return p.read_text() if p.exists() else ""


async def start_dnsmasq(ns: Namespace, conf: Path) -> asyncio.subprocess.Process:
    proc = await ns.start(["dnsmasq", "--keep-in-foreground", f"--conf-file={conf}", "--log-facility=-"])
    await asyncio.sleep(0.3)  # let it bind its sockets
    if proc.returncode is not None:
        out, err = await Namespace.stop(proc)
        pytest.fail(f"dnsmasq exited: {out} {err}")
    return proc


class Env:
    def __init__(self, ns: Namespace, conf: Path, tmp: Path) -> None:
        self.ns, self.conf, self.tmp = ns, conf, tmp
        self.procs: list[asyncio.subprocess.Process] = []
        self.pcap_path = tmp / "stack.pcap"
        self.pcap: PcapWriter | None = None

    async def stack(self, **kw: object) -> tuple[Stack, PcapWriter]:
        dev = await self.ns.open_tap(TAP)
        pcap = self.pcap = PcapWriter(dev, self.pcap_path)
        try:
            return await Stack.connect(pcap, dhcp=True, hostname="tcpip-test", rng=random.Random(16),
                                       **kw), pcap  # type: ignore[arg-type]
        except BaseException:
            pcap.close()
            raise

    def dhcp_requests(self) -> list[tuple[str, str]]:
        """(IP source, IP destination) of each DHCPREQUEST we sent, from our pcap."""
        if self.pcap is not None and not self.pcap.closed:
            self.pcap.flush()
        return [(p[IP].src, p[IP].dst) for p in rdpcap(str(self.pcap_path))
                if IP in p and UDP in p and p[UDP].dport == 67 and bytes(p[UDP].payload)[240:243] == b"\x35\x01\x03"]


@pytest.fixture
async def env(kernel_ns: Namespace, tmp_path: Path) -> AsyncIterator[Env]:
    require_tap("dnsmasq")
    e = Env(kernel_ns, dnsmasq_conf(tmp_path), tmp_path)
    e.procs.append(await start_dnsmasq(kernel_ns, e.conf))
    try:
        yield e
    finally:
        for p in e.procs:
            await Namespace.stop(p)


async def until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_lease_renew_names_udp_tcp_release(env: Env) -> None:
    servers = await env.ns.start([python_exe(), "-c", _SERVERS])
    env.procs.append(servers)
    assert servers.stdout is not None
    assert (await asyncio.wait_for(servers.stdout.readline(), 10)).strip() == b"ready"
    stack, pcap = await env.stack(dhcp_timeout=15.0)
    try:
        dhcp = stack.dhcp
        assert dhcp is not None
        lease = dhcp.lease
        assert lease is not None
        assert int(IPv4Address("198.18.0.50")) <= lease.address <= int(IPv4Address("198.18.0.60"))
        assert (lease.netmask, lease.routers, lease.dns_servers, lease.server_id) == (
            0xFFFFFF00, (SERVER,), (SERVER,), SERVER)
        assert (lease.lease_time, lease.t1, lease.t2) == (120.0, 4.0, 7.0)
        # the lease drove the ordinary configuration
        assert (int(stack.address), str(stack.interface.netmask)) == (lease.address, "255.255.255.0")
        assert stack.ipv4.get_ipv4_gateways() == [IPv4Address(KERNEL_IP)]
        assert stack.resolver.servers == [SERVER]
        assert str(IPv4Address(lease.address)) in leases(env.tmp)
        mine = str(IPv4Address(lease.address))

        # names through dnsmasq
        assert await stack.resolve("server.test") == [IPv4Address(SERVER_NAME_IP)]
        assert await stack.resolve("ALIAS.test") == [IPv4Address(SERVER_NAME_IP)]
        with pytest.raises(NameNotFoundError):
            await stack.resolve("nope.test")
        # a kernel-side server by name over UDP and TCP, and ping by name
        got: asyncio.Queue[bytes] = asyncio.Queue()

        class P(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                got.put_nowait(data)

        t, _ = await stack.create_datagram_endpoint(P, remote_addr=("kernel.test", UDP_PORT))
        t.sendto(b"hello")
        assert await asyncio.wait_for(got.get(), 5) == b"udp:hello"
        t.close()
        r, w = await asyncio.wait_for(stack.open_connection("kernel.test", TCP_PORT), 5)
        w.write(b"hi")
        assert await asyncio.wait_for(r.read(), 5) == b"tcp:hi"
        w.close()
        (rtt,) = await stack.ping("kernel.test", timeout=2.0)
        assert rtt is not None
        assert stack.resolver.resolver.stats.rx_accepted == 4  # kernel.test came from the cache twice

        # T1: a unicast renewal from the leased address to the server identifier, answered
        await until(lambda: any(isinstance(e, Renewed) for e in dhcp.history), 10.0, "renewal")
        assert dhcp.state is DhcpState.BOUND
        reqs = env.dhcp_requests()
        assert reqs[0] == ("0.0.0.0", "255.255.255.255")
        assert (mine, KERNEL_IP) in reqs
    finally:
        await stack.disconnect()  # DHCPRELEASE
        pcap.close()
    assert dhcp.history[-1] == Lost(lease.address, "released")
    await until(lambda: mine not in leases(env.tmp), 3.0, "the lease to leave dnsmasq's lease file")
    assert dhcp.client.stats.rx_malformed == dhcp.stats.rx_wrong_port == 0


async def test_rebinding_then_bound_across_dnsmasq_restart(env: Env) -> None:
    stack, pcap = await env.stack(dhcp_timeout=15.0)
    try:
        dhcp = stack.dhcp
        assert dhcp is not None
        assert dhcp.lease is not None
        address = dhcp.lease.address
        await until(lambda: any(isinstance(e, Renewed) for e in dhcp.history), 10.0, "the first renewal")
        await Namespace.stop(env.procs.pop())  # the server goes away: the next renewal is not answered
        await until(lambda: dhcp.state is DhcpState.RENEWING, 10.0, "RENEWING")
        env.procs.append(await start_dnsmasq(env.ns, env.conf))
        renewed = sum(isinstance(e, Renewed) for e in dhcp.history)
        await until(lambda: sum(isinstance(e, Renewed) for e in dhcp.history) > renewed, 15.0, "rebinding")
        assert dhcp.state is DhcpState.BOUND
        mine = str(IPv4Address(address))
        reqs = env.dhcp_requests()
        # ... RENEWING: unicast to the server (unanswered while it was down), then REBINDING: broadcast, answered
        assert reqs[-2:] == [(mine, KERNEL_IP), (mine, "255.255.255.255")], reqs
        assert dhcp.lease is not None
        assert dhcp.lease.address == address
        assert not any(isinstance(e, Lost) for e in dhcp.history)
        assert [type(e) for e in dhcp.history][:1] == [Bound]
        assert int(stack.address) == address
    finally:
        await stack.disconnect()
        pcap.close()


def _cli(*args: str) -> list[str]:
    return [python_exe(), "-m", "tcpip", *args]


async def test_cli_up_dhcp_prints_the_lease_and_releases_on_sigterm(env: Env) -> None:
    pyenv = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    proc = await asyncio.create_subprocess_exec(
        *_cli("up", "--netns", env.ns.name, "--tap", TAP, "--dhcp", "--hostname", "cli-test", "--udp-echo", "7"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=pyenv)
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 15)).decode()
        assert line.startswith("tcpip up: DHCP bound 198.18.0."), line
        assert f"/24 router {KERNEL_IP} dns {KERNEL_IP} server {KERNEL_IP} lease 120s (renew 4s, rebind 7s)" in line
        mine = line.split()[4].split("/")[0]
        banner = (await asyncio.wait_for(proc.stdout.readline(), 5)).decode()
        assert f"{mine}/24 mtu 1500, gateways {KERNEL_IP}" in banner, banner
        assert "cli-test" in leases(env.tmp)
        renewed = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
        assert renewed.startswith(f"tcpip up: DHCP renewed {mine}/24"), renewed  # at T1, kept renewed
        r = await env.ns.run_async(["ping", "-n", "-c", "1", "-W", "2", mine])
        assert " 0% packet loss" in r.stdout, r.stdout
        t0 = asyncio.get_running_loop().time()
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 10)
        assert asyncio.get_running_loop().time() - t0 < 5.0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    assert re.search(r"dhcp .*tx_release=1", out.decode()), out.decode()
    await until(lambda: mine not in leases(env.tmp), 3.0, "the RELEASE to reach dnsmasq")


async def test_cli_ping_by_name_with_dhcp(env: Env) -> None:
    pyenv = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    proc = await asyncio.create_subprocess_exec(
        *_cli("ping", "kernel.test", "--netns", env.ns.name, "--tap", TAP, "--dhcp", "-c", "1"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=pyenv)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    text = out.decode()
    assert proc.returncode == 0, text + err.decode()
    assert text.startswith(f"PING kernel.test ({KERNEL_IP}) 56(84) bytes of data.\n"), text
    line = rf"^64 bytes from kernel\.test \({re.escape(KERNEL_IP)}\): icmp_seq=1 ttl=64 time=[\d.]+ ms$"
    assert re.search(line, text, re.M), text
    proc = await asyncio.create_subprocess_exec(
        *_cli("ping", "nope.test", "--netns", env.ns.name, "--tap", TAP, "--dhcp", "-c", "1"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=pyenv)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert "nope.test" in err.decode()
