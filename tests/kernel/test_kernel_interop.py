"""tcpip against the Linux kernel's stack over a TAP device in a private namespace: each test asserts
on what the kernel (ping, arping, ip neigh, its sockets, tcpdump + tshark) reports."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from kernel_support import (
    KERNEL_IP,
    STACK_IP,
    TAP,
    Peer,
    ping_summary,
    require_tap,
    running_stack,
    tshark_fields,
    tshark_problems,
)

from tcpip.netif.pcap import read_pcap
from tcpip.netns import Namespace

pytestmark = pytest.mark.tap


# -- the kernel pings us ---------------------------------------------------------------------------
async def test_kernel_ping_no_loss(peer: Peer) -> None:
    r = await peer.run("ping", "-n", "-c", "20", "-i", "0.05", "-W", "1", STACK_IP)
    s = ping_summary(r.stdout)
    assert (s["transmitted"], s["received"], s["loss"]) == (20, 20, 0.0), r.stdout
    assert r.returncode == 0
    icmp = peer.stack.stats()["icmp"]
    assert icmp["rx_echo_requests"] == icmp["tx_echo_replies"] == 20


async def test_kernel_ping_full_mtu_dont_fragment(peer: Peer) -> None:
    r = await peer.run("ping", "-n", "-s", "1472", "-M", "do", "-c", "2", "-i", "0.1", "-W", "1", STACK_IP)
    assert ping_summary(r.stdout)["received"] == 2, r.stdout + r.stderr
    assert "1480 bytes from 198.18.0.2" in r.stdout  # 1472 data + 8 ICMP header = a 1500-byte datagram
    peer.pcap.flush()
    replies = tshark_fields(peer.pcap_path, "icmp.type == 0", "ip.len", "ip.flags.mf", "ip.frag_offset")
    assert replies == [["1500", "0", "0"]] * 2


async def test_kernel_ping_reply_data_matches(peer: Peer) -> None:
    r = await peer.run("ping", "-n", "-c", "3", "-i", "0.1", "-s", "200", "-p", "a5c3f00fdeadbeef", STACK_IP)
    s = ping_summary(r.stdout)
    assert s["received"] == 3, r.stdout
    assert "wrong data byte" not in r.stdout, r.stdout  # ping(8) compares the reply data itself
    assert "DUP!" not in r.stdout, r.stdout
    # and byte for byte in our capture: every reply carries its request's data
    peer.pcap.flush()
    _, recs = read_pcap(peer.pcap_path)
    echoes: dict[int, list[tuple[bytes, bytes]]] = {}
    for rec in recs:
        f = rec.data
        if len(f) > 42 and f[12:14] == b"\x08\x00" and f[23] == 1:
            ihl = (f[14] & 15) * 4
            icmp = f[14 + ihl:]
            echoes.setdefault(icmp[0], []).append((icmp[4:8], icmp[8:]))
    assert len(echoes[8]) == len(echoes[0]) == 3
    assert sorted(echoes[8]) == sorted(echoes[0])
    assert all(bytes.fromhex("a5c3f00fdeadbeef") in data for _, data in echoes[0])


# -- ARP -------------------------------------------------------------------------------------------
async def test_kernel_arping_gets_our_mac(peer: Peer) -> None:
    require_tap("arping")
    r = await peer.run("arping", "-c", "3", "-w", "5", "-I", TAP, STACK_IP)
    replies = re.findall(r"reply from 198\.18\.0\.2 \[([0-9A-Fa-f:]{17})\]", r.stdout)
    assert len(replies) == 3, r.stdout + r.stderr
    assert {m.lower() for m in replies} == {str(peer.stack.mac)}
    assert "Received 3 response" in r.stdout
    assert r.returncode == 0


async def test_kernel_neighbour_table_shows_our_mac(peer: Peer) -> None:
    r = await peer.run("ping", "-n", "-c", "1", "-W", "1", STACK_IP)
    assert r.returncode == 0, r.stdout
    neigh = await asyncio.to_thread(peer.ns.neighbours, TAP)
    mac, state = neigh[STACK_IP]
    assert mac == str(peer.stack.mac)
    assert state in ("reachable", "stale", "delay", "probe"), state
    text = (await peer.run("ip", "neigh", "show", "dev", TAP)).stdout  # what an admin would look at
    assert f"{STACK_IP} lladdr {peer.stack.mac}" in text


async def test_stack_pings_kernel_and_resolves_its_mac(peer: Peer) -> None:
    rtts = await peer.stack.ping(IPv4Address(KERNEL_IP), count=3, interval=0.05, timeout=1.0)
    assert all(t is not None and 0 < t < 1.0 for t in rtts), rtts
    st = peer.stack.stats()
    assert st["arp"]["requests_sent"] >= 1
    assert st["arp"]["replies_received"] >= 1
    mac = peer.stack.core.arp.lookup(int(IPv4Address(KERNEL_IP)), peer.stack.runner.now())
    assert mac is not None
    assert mac.hex(":") == peer.kernel_mac
    assert st["icmp"]["rx_echo_replies"] == 3


async def test_gratuitous_announcement_and_probes(peer: Peer) -> None:
    """Our start-up announcement (sender IP = target IP = ours) is accepted quietly; the kernel's
    RFC 5227 duplicate-address probe for our address is answered by us, not for any other one."""
    require_tap("arping")
    peer.pcap.flush()
    announcements = tshark_fields(
        peer.pcap_path, "arp.isgratuitous == 1", "arp.opcode", "arp.src.hw_mac", "arp.dst.proto_ipv4")
    assert announcements
    assert announcements[0] == ["1", str(peer.stack.mac), STACK_IP]
    # the kernel, probing for our address (sender IP 0.0.0.0), finds it taken by our MAC:
    r = await peer.run("arping", "-D", "-c", "2", "-w", "3", "-I", TAP, STACK_IP)
    assert r.returncode == 1, r.stdout  # arping -D: 1 = address in use
    assert str(peer.stack.mac) in r.stdout.lower()
    # ...and a free address is not claimed by us
    r = await peer.run("arping", "-D", "-c", "2", "-w", "2", "-I", TAP, "198.18.0.3")
    assert r.returncode == 0, r.stdout
    # a second announcement (set_ipv4 again) keeps everyone happy: no conflict either side, and the
    # kernel still reaches us by the same MAC
    await peer.stack.ipv4.set_ipv4(IPv4Address(STACK_IP))
    r = await peer.run("ping", "-n", "-c", "2", "-i", "0.1", "-W", "1", STACK_IP)
    assert ping_summary(r.stdout)["received"] == 2
    assert peer.stack.stats()["arp"]["conflicts"] == 0
    assert (await asyncio.to_thread(peer.ns.neighbours, TAP))[STACK_IP][0] == str(peer.stack.mac)
    peer.pcap.flush()
    assert tshark_problems(peer.pcap_path) == []


# -- UDP -------------------------------------------------------------------------------------------
_UDP_ECHO_CLIENT = """
import json, os, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2.0)
s.bind(("198.18.0.1", 0))
out = []
for n in map(int, sys.argv[1:]):
    data = os.urandom(n)
    s.sendto(data, ("198.18.0.2", 7))
    echo, addr = s.recvfrom(65535)
    out.append({"size": n, "same": echo == data, "from": list(addr)})
print(json.dumps(out))
"""


async def test_udp_echo_from_kernel_socket(peer: Peer) -> None:
    r = await peer.python(_UDP_ECHO_CLIENT, "1", "512", "1472")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res == [{"size": n, "same": True, "from": [STACK_IP, 7]} for n in (1, 512, 1472)]
    assert peer.stack.stats()["udp"]["rx_delivered"] == 3
    # Answered from Host.receive (udp.fast_echo) with the kernel's partial checksums (offload framing): the
    # kernel checks ours, so "same" above means they were right; the first may wait for ARP (general path)
    assert peer.stack.core.fast.udp_echoes >= 2


_UDP_SINK = """
import json, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("198.18.0.1", 9999))
s.settimeout(3.0)
print("ready", flush=True)
out = []
for _ in range(int(sys.argv[1])):
    data, addr = s.recvfrom(65535)
    out.append({"hex": data.hex(), "from": list(addr)})
print(json.dumps(out), flush=True)
"""


async def test_kernel_socket_receives_our_datagrams(peer: Peer) -> None:
    proc = await peer.ns.start([sys.executable, "-u", "-c", _UDP_SINK, "3"])
    peer.procs.append(proc)
    assert proc.stdout is not None
    assert (await asyncio.wait_for(proc.stdout.readline(), 5)).strip() == b"ready"
    transport, _ = await peer.stack.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("0.0.0.0", 4242))
    payloads = [b"\x01", bytes(range(256)) * 2, bytes(1472)]
    try:
        for p in payloads:
            transport.sendto(p, (KERNEL_IP, 9999))
            await asyncio.sleep(0.01)
        line = await asyncio.wait_for(proc.stdout.readline(), 5)
    finally:
        transport.close()
    got = json.loads(line)
    assert [bytes.fromhex(g["hex"]) for g in got] == payloads
    assert all(g["from"] == [STACK_IP, 4242] for g in got)


# -- through a router ------------------------------------------------------------------------------
async def test_gateway_reaches_host_beyond_router(kernel_ns: Namespace, tmp_path: Path) -> None:
    """kernel_ns routes (forwarding on) between tap0 (198.18.0.1/24) and a veth to a second
    namespace holding 198.18.1.2/24; our stack reaches it through --ipv4-gateway 198.18.0.1."""
    far = await asyncio.to_thread(Namespace.create, "r")
    try:
        def plumb() -> None:
            kernel_ns.add_veth("veth0", far, "veth1")
            kernel_ns.add_address("veth0", "198.18.1.1/24")
            far.add_address("veth1", "198.18.1.2/24")
            far.add_route("default", "198.18.1.1")
            kernel_ns.set_forwarding(True)

        await asyncio.to_thread(plumb)
        async with running_stack(kernel_ns, tmp_path / "gw.pcap", gateways=[KERNEL_IP]) as (stack, pcap):
            rtts = await stack.ping(IPv4Address("198.18.1.2"), count=3, interval=0.05, timeout=2.0)
            assert all(t is not None for t in rtts), rtts
            # and the far host reaches us back through the router (UDP echo too)
            r = await far.run_async(["ping", "-n", "-c", "3", "-i", "0.05", "-W", "1", STACK_IP], timeout=10)
            assert ping_summary(r.stdout)["received"] == 3, r.stdout
            pcap.flush()
            ttls = tshark_fields(tmp_path / "gw.pcap", "icmp.type == 0 && ip.src == 198.18.1.2", "ip.ttl")
            assert ttls == [["63"]] * 3  # one hop: the kernel router decremented TTL 64 -> 63
            macs = tshark_fields(tmp_path / "gw.pcap", "ip.dst == 198.18.1.2", "eth.dst")
            gw_mac = await asyncio.to_thread(kernel_ns.link_mac, TAP)
            assert {m[0] for m in macs} == {gw_mac}  # sent to the gateway's MAC
    finally:
        await asyncio.to_thread(far.remove)


# -- captures --------------------------------------------------------------------------------------
def _ipv4_datagrams(path: Path) -> list[bytes]:
    return sorted(r.data[14:] for r in read_pcap(path)[1] if r.data[12:14] == b"\x08\x00")


async def _until_captured_alike(kernel_pcap: Path, ours: Path, flush: Callable[[], None],
                                timeout: float = 10.0) -> None:
    """Wait (polling, no fixed sleep) until tcpdump's file holds the same IPv4 datagrams as our capture, or
    `timeout` passes (the assertions after it then show the difference)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        flush()
        try:
            if _ipv4_datagrams(kernel_pcap) == _ipv4_datagrams(ours):
                return
        except (ValueError, OSError):  # tcpdump is mid-record, or has not created the file yet
            pass
        await asyncio.sleep(0.01)


async def test_captures_decode_cleanly_in_tshark(kernel_ns: Namespace, tmp_path: Path) -> None:
    """tcpdump on the kernel side and our own PcapWriter record the same exchange (ARP, ICMP both
    ways, UDP echo); both decode in tshark with no malformed packets or bad checksums."""
    require_tap("tcpdump", "tshark", "arping")
    kernel_pcap = tmp_path / "kernel.pcap"
    ours = tmp_path / "ours.pcap"
    dump = await kernel_ns.start(["tcpdump", "-n", "-U", "--immediate-mode", "-i", TAP, "-w", str(kernel_pcap)])
    try:
        assert dump.stderr is not None
        line = await asyncio.wait_for(dump.stderr.readline(), 5)
        assert b"listening on" in line, line
        # Plain TAP: with checksum offload the kernel leaves its UDP checksums partial for the device to
        # finish, and tcpdump on its side records them so (as on any offloading NIC).
        async with running_stack(kernel_ns, ours, offload=False) as (stack, pcap):
            ns = kernel_ns
            assert (await ns.run_async(["ping", "-n", "-c", "3", "-i", "0.05", STACK_IP])).returncode == 0
            assert (await ns.run_async(["arping", "-c", "2", "-I", TAP, STACK_IP])).returncode == 0
            r = await ns.run_async([sys.executable, "-c", _UDP_ECHO_CLIENT, "1", "512", "1472"])
            assert r.returncode == 0, r.stderr
            assert all(t is not None for t in await stack.ping(KERNEL_IP, count=2, interval=0.05))
            await _until_captured_alike(kernel_pcap, ours, pcap.flush)
    finally:
        _, dump_err = await Namespace.stop(dump, signal=2)
    assert "0 packets dropped" in dump_err, dump_err
    for path in (kernel_pcap, ours):
        assert tshark_problems(path) == [], path.name
        protos = {row[0] for row in tshark_fields(path, "arp || icmp || udp", "_ws.col.Protocol")}
        assert {"ARP", "ICMP"} <= protos, (path.name, protos)
        assert tshark_fields(path, "udp.port == 7 && udp.length == 1480", "ip.src"), path.name
    # our capture saw the same IPv4 datagrams as the kernel's (order aside)
    assert _ipv4_datagrams(ours) == _ipv4_datagrams(kernel_pcap)


# -- load --------------------------------------------------------------------------------------------
async def test_survives_kernel_ping_flood(peer: Peer, record_property: Callable[[str, object], None]) -> None:
    """`ping -f -c 5000` bounded by a 15 s deadline; then a normal ping is still answered."""
    t0 = time.monotonic()
    r = await peer.run("ping", "-n", "-q", "-f", "-c", "5000", "-w", "15", STACK_IP, timeout=25)
    elapsed = time.monotonic() - t0
    s = ping_summary(r.stdout)
    rate = s["received"] / max(s["time_ms"] / 1000, 1e-3)
    print(f"\nping -f -c 5000: {s['received']}/{s['transmitted']} replies in {s['time_ms']} ms "
          f"= {rate:.0f} replies/s (wall {elapsed:.2f} s)")
    record_property("ping_flood_rate", round(rate))
    assert s["transmitted"] >= 1000, r.stdout
    assert s["loss"] <= 1.0, r.stdout
    r = await peer.run("ping", "-n", "-c", "3", "-i", "0.1", "-W", "1", STACK_IP)
    assert ping_summary(r.stdout)["loss"] == 0.0, r.stdout
    dev = peer.stack.stats()["device"]
    assert dev["tx_dropped"] == 0 or dev["tx_dropped"] < s["transmitted"] // 100


# -- fragmentation ---------------------------------------------------------------------------------
async def test_kernel_reassembles_our_fragmented_ping(peer: Peer) -> None:
    """Our 4000-byte echo requests go out in 3 fragments; the kernel reassembles and answers in
    fragments, which we reassemble."""
    rtts = await peer.stack.ping(KERNEL_IP, count=3, size=4000, timeout=2.0, interval=0.05)
    assert all(r is not None for r in rtts), rtts
    st = peer.stack.stats()
    assert st["ipv4"]["tx_fragments"] == 3 * 3
    assert st["ipv4"]["rx_reassembled"] == 3
    assert st["icmp"]["rx_echo_replies"] == 3
    peer.pcap.flush()
    ours = tshark_fields(peer.pcap_path, "icmp.type == 8 || (ip.flags.mf == 1 && ip.src == 198.18.0.2)"
                         " || (ip.frag_offset > 0 && ip.src == 198.18.0.2)", "ip.len", "ip.flags.mf",
                         "ip.frag_offset")
    # tshark gives the offset in 8-byte units: 0, 1480, 2960 bytes; 4008 = 1480 + 1480 + 1048
    assert ours[:3] == [["1500", "1", "0"], ["1500", "1", "185"], ["1068", "0", "370"]]


async def test_we_reassemble_the_kernels_fragmented_ping(peer: Peer) -> None:
    r = await peer.run("ping", "-n", "-c", "3", "-i", "0.1", "-W", "2", "-s", "4000", "-p", "5aa5", STACK_IP)
    s = ping_summary(r.stdout)
    assert s["received"] == 3, r.stdout + r.stderr
    assert "wrong data byte" not in r.stdout
    st = peer.stack.stats()
    assert st["ipv4"]["rx_reassembled"] == 3
    assert st["ipv4"]["tx_fragments"] == 3 * 3  # our 4008-byte replies, fragmented for a 1500 MTU
    assert st["reassembly"]["memory"] == 0
    assert st["reassembly"]["datagrams"] == 0


async def test_kernel_udp_datagram_of_8000_bytes_echoed(peer: Peer) -> None:
    script = (
        "import socket,sys\n"
        "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.settimeout(3)\n"
        "data=bytes(range(256))*31+b'end'\n"
        "s.sendto(data,('198.18.0.2',7)); got,a=s.recvfrom(65535)\n"
        "print(len(got), got==data)\n"
    )
    r = await peer.python(script)
    assert r.stdout.split() == ["7939", "True"], r.stdout + r.stderr
