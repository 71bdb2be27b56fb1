"""The DHCP client and the DNS resolver against a real dnsmasq in the test's own namespace.

Until they are wired into Stack, a small harness here drives them over the TAP: scapy builds and parses the
Ethernet/IP/UDP around them and answers the kernel's ARP requests. dnsmasq hands out a 2-minute lease with
T1 = 4 s and T2 = 7 s, so renewal and rebinding happen within seconds. Skips without root/netns or dnsmasq.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from kernel_support import KERNEL_IP, TAP, require_tap
from scapy.all import ARP, IP, UDP, Ether, Raw, raw

from tcpip.core.dhcp import Bound, DhcpClient, DhcpEvent, DhcpState, Lost, Renewed
from tcpip.core.resolver import QueryHandle, Resolver
from tcpip.errors import NameNotFoundError
from tcpip.netif.tap import TapDevice
from tcpip.netns import Namespace

pytestmark = pytest.mark.tap

SERVER = int(IPv4Address(KERNEL_IP))
SERVER_NAME_IP = "198.18.0.7"


def dnsmasq_conf(tmp: Path) -> Path:
    conf = tmp / "dnsmasq.conf"
    conf.write_text(f"""\
interface={TAP}
bind-interfaces
listen-address={KERNEL_IP}
no-resolv
no-hosts
local=/test/
host-record=server.test,{SERVER_NAME_IP}
cname=alias.test,server.test
dhcp-range=198.18.0.50,198.18.0.60,255.255.255.0,2m
dhcp-option=option:router,{KERNEL_IP}
dhcp-option=option:dns-server,{KERNEL_IP}
dhcp-option=option:T1,4
dhcp-option=option:T2,7
dhcp-leasefile={tmp / "leases"}
dhcp-authoritative
log-dhcp
user=root
pid-file=
""")
    return conf


class Harness:
    """Our MAC on the TAP: the DHCP client and the resolver, with Ethernet/IP/UDP done by scapy."""

    def __init__(self, dev: TapDevice, kernel_mac: str) -> None:
        self.dev = dev
        self.mac = bytes(dev.mac)
        self.kernel_mac = kernel_mac
        self.loop = asyncio.get_running_loop()
        self.rng = random.Random(16)
        self.dhcp = DhcpClient(self.mac, self.rng, hostname="tcpip-test")
        self.resolver = Resolver([], self.rng)
        self.addr = 0
        self.events: list[DhcpEvent] = []
        self.done: list[QueryHandle] = []
        self.sent: list[tuple[str, bool]] = []  # (DHCP state when sent, broadcast)
        self.frames: asyncio.Queue[bytes] = asyncio.Queue()
        dev.attach(lambda f: self.frames.put_nowait(bytes(f)))

    def now(self) -> float:
        return self.loop.time()

    def udp(self, src: int, dst: int, sport: int, dport: int, payload: bytes, broadcast: bool) -> None:
        eth_dst = "ff:ff:ff:ff:ff:ff" if broadcast else self.kernel_mac
        frame = Ether(src=str(self.dev.mac), dst=eth_dst) / IP(src=str(IPv4Address(src)), dst=str(
            IPv4Address(dst))) / UDP(sport=sport, dport=dport) / Raw(payload)
        self.dev.transmit([raw(frame)])

    def flush(self) -> None:
        for o in self.dhcp.poll_transmit():
            self.sent.append((self.dhcp.state.value, o.broadcast))
            self.udp(o.src_ip, o.dst_ip, 68, 67, o.payload, o.broadcast)
        for q in self.resolver.poll_transmit():
            self.udp(self.addr, q.dst_ip, q.src_port, q.dst_port, q.payload, False)

    def on_events(self, events: list[DhcpEvent]) -> None:
        for e in events:
            self.events.append(e)
            if isinstance(e, Bound | Renewed):
                self.addr = e.lease.address
                self.resolver.set_servers(e.lease.dns_servers)
            elif isinstance(e, Lost):
                self.addr = 0

    def on_frame(self, data: bytes) -> None:
        now = self.now()
        pkt = Ether(data)
        if ARP in pkt and pkt[ARP].op == 1 and self.addr and pkt[ARP].pdst == str(IPv4Address(self.addr)):
            reply = Ether(src=str(self.dev.mac), dst=pkt.src) / ARP(
                op=2, hwsrc=str(self.dev.mac), psrc=pkt[ARP].pdst, hwdst=pkt[ARP].hwsrc, pdst=pkt[ARP].psrc)
            self.dev.transmit([raw(reply)])
        elif IP in pkt and UDP in pkt:
            src = int(IPv4Address(pkt[IP].src))
            u = pkt[UDP]
            payload = bytes(u.payload)
            if u.dport == 68 and u.sport == 67:
                self.on_events(self.dhcp.receive(memoryview(payload), src, now))
            elif self.addr and pkt[IP].dst == str(IPv4Address(self.addr)):
                self.done += self.resolver.receive(memoryview(payload), src, u.sport, u.dport, now)

    async def run_until(self, cond: Callable[[], bool], timeout: float) -> None:
        end = self.now() + timeout
        while not cond():
            self.flush()
            now = self.now()
            if now >= end:
                raise TimeoutError(f"condition not met; events {self.events}, state {self.dhcp.state}")
            wake = min(t for t in (self.dhcp.poll_at(), self.resolver.poll_at(), end) if t is not None)
            try:
                frame = await asyncio.wait_for(self.frames.get(), max(wake - now, 0.0))
            except TimeoutError:
                pass
            else:
                self.on_frame(frame)
            now = self.now()
            self.on_events(self.dhcp.handle_timeout(now))
            self.done += self.resolver.handle_timeout(now)
        self.flush()

    async def resolve(self, name: str) -> QueryHandle:
        h = self.resolver.query(name, self.now())
        if not h.done:
            await self.run_until(lambda: h.done, 10.0)
        return h


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


Setup = tuple[Harness, Namespace, Path, list[asyncio.subprocess.Process]]


@pytest.fixture
async def setup(kernel_ns: Namespace, tmp_path: Path) -> AsyncIterator[Setup]:
    require_tap("dnsmasq")
    kernel_mac = await asyncio.to_thread(kernel_ns.link_mac, TAP)
    conf = dnsmasq_conf(tmp_path)
    procs = [await start_dnsmasq(kernel_ns, conf)]
    dev = await kernel_ns.open_tap(TAP)
    try:
        yield Harness(dev, kernel_mac), kernel_ns, conf, procs
    finally:
        dev.close()
        for p in procs:
            await Namespace.stop(p)


async def test_lease_resolve_release(setup: Setup, tmp_path: Path) -> None:
    h, _ns, _conf, _procs = setup
    h.dhcp.start(h.now())
    await h.run_until(lambda: any(isinstance(e, Bound) for e in h.events), 15.0)
    lease = next(e.lease for e in h.events if isinstance(e, Bound))
    assert int(IPv4Address("198.18.0.50")) <= lease.address <= int(IPv4Address("198.18.0.60"))
    assert (lease.netmask, lease.routers, lease.dns_servers, lease.server_id) == (
        0xFFFFFF00, (SERVER,), (SERVER,), SERVER)
    assert (lease.lease_time, lease.t1, lease.t2) == (120.0, 4.0, 7.0)
    assert str(IPv4Address(lease.address)) in leases(tmp_path)
    assert h.sent[:2] == [("SELECTING", True), ("REQUESTING", True)]

    r = await h.resolve("server.test")
    assert (r.error, r.addresses) == (None, (int(IPv4Address(SERVER_NAME_IP)),))
    r = await h.resolve("ALIAS.test")
    assert r.addresses == (int(IPv4Address(SERVER_NAME_IP)),)
    assert r.canonical_name.lower() == "server.test"
    r = await h.resolve("nope.test")
    assert isinstance(r.error, NameNotFoundError)
    assert h.resolver.stats.rx_accepted == 3

    h.on_events(h.dhcp.release(h.now()))
    h.flush()
    assert h.sent[-1] == ("STOPPED", False)  # RELEASE: unicast to the server
    for _ in range(40):
        if str(IPv4Address(lease.address)) not in leases(tmp_path):
            break
        await asyncio.sleep(0.05)
    assert str(IPv4Address(lease.address)) not in leases(tmp_path)
    assert h.dhcp.stats.rx_malformed == 0


async def test_renew_then_rebind_after_server_restart(setup: Setup) -> None:
    h, ns, conf, procs = setup
    h.dhcp.start(h.now())
    await h.run_until(lambda: h.dhcp.state is DhcpState.BOUND, 15.0)
    # T1: a unicast renewal, answered
    await h.run_until(lambda: any(isinstance(e, Renewed) for e in h.events), 10.0)
    assert ("RENEWING", False) in h.sent
    lease = h.dhcp.lease
    assert lease is not None
    # the server goes away: the next T1 renewal is not answered; it is back before T2, so the broadcast
    # REBINDING request is answered and the lease goes on
    await Namespace.stop(procs.pop())
    await h.run_until(lambda: h.dhcp.state is DhcpState.RENEWING, 10.0)
    procs.append(await start_dnsmasq(ns, conf))
    renewed = sum(isinstance(e, Renewed) for e in h.events)
    await h.run_until(lambda: sum(isinstance(e, Renewed) for e in h.events) > renewed, 15.0)
    assert h.sent[-1] == ("REBINDING", True)
    assert h.dhcp.lease is not None
    assert h.dhcp.lease.address == lease.address
    assert not any(isinstance(e, Lost) for e in h.events)
