"""UDP endpoints with asyncio's datagram API over tcpip: two stacks on a Hub, virtual time.

Covers issue 3: exchange of 0/1/1472-byte datagrams, EADDRINUSE/EADDRNOTAVAIL, ephemeral ports,
broadcast permission, connected endpoints, ARP that never blocks sendto, ICMP errors reported to the
protocol, and one DatagramProtocol class run unchanged over asyncio's own loopback sockets and tcpip.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import random
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import pytest
from testlib import settle

import tcpip
from tcpip import Stack
from tcpip.netif.clock import VirtualClock
from tcpip.netif.hub import Hub

ROOT = Path(__file__).resolve().parents[2]
A, B, C = "198.18.0.1", "198.18.0.2", "198.18.0.3"
ABSENT = "198.18.0.99"  # on-link, but nobody answers ARP for it
EPHEMERAL = range(49152, 65536)


class Recorder(asyncio.DatagramProtocol):
    """Records every protocol callback, in order."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.made = 0
        self.lost: list[Exception | None] = []
        self.got: list[tuple[bytes, tuple[str, int]]] = []
        self.errors: list[Exception] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.made += 1
        self.transport = cast(asyncio.DatagramTransport, transport)  # asyncio's own: no subclass

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert type(data) is bytes  # a copy the protocol may keep, as asyncio gives
        self.got.append((data, addr))

    def error_received(self, exc: Exception) -> None:
        self.errors.append(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.append(exc)


class Net:
    def __init__(self, hub: Hub, clock: VirtualClock, stacks: list[Stack]) -> None:
        self.hub = hub
        self.clock = clock
        self.a, self.b, self.c = stacks

    async def endpoint(self, stack: Stack, local_addr: Any = None, remote_addr: Any = None,
                       **kw: Any) -> tuple[Any, Recorder]:
        return await stack.create_datagram_endpoint(Recorder, local_addr, remote_addr, **kw)


@pytest.fixture
async def net() -> AsyncIterator[Net]:
    hub = Hub()
    clock = VirtualClock(1000.0)
    stacks = [await Stack.connect(hub.port(), ipv4=f"{ip}/24", clock=clock, rng=random.Random(i))
              for i, ip in enumerate((A, B, C), 1)]
    await settle()  # gratuitous ARP announcements
    yield Net(hub, clock, stacks)
    for s in stacks:
        await s.disconnect()


# -- data exchange ---------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [0, 1, 1472])
async def test_two_stacks_exchange_exact_bytes_both_ways(net: Net, size: int) -> None:
    ta, pa = await net.endpoint(net.a, (A, 4000))
    tb, pb = await net.endpoint(net.b, (B, 5000))
    out = bytes((i * 7 + size) & 0xFF for i in range(size))
    back = out[::-1]
    ta.sendto(out, (B, 5000))
    await settle(lambda: len(pb.got) == 1)
    tb.sendto(back, (A, 4000))
    await settle(lambda: len(pa.got) == 1)
    assert pb.got == [(out, (A, 4000))]
    assert pa.got == [(back, (B, 5000))]
    assert pa.errors == pb.errors == []
    for s in (net.a, net.b):
        u = s.stats()["udp"]
        assert (u["tx_datagrams"], u["rx_delivered"]) == (1, 1)
    if size == 1472:  # the largest datagram of a 1500-byte MTU: one frame each, not fragmented
        assert net.a.stats()["ipv4"]["tx_fragments"] == 0


async def test_bytearray_and_memoryview_payloads(net: Net) -> None:
    ta, _ = await net.endpoint(net.a)
    _, pb = await net.endpoint(net.b, (B, 5000))
    ta.sendto(bytearray(b"abc"), (B, 5000))
    ta.sendto(memoryview(b"xxdefxx")[2:5], (B, 5000))
    await settle(lambda: len(pb.got) == 2)
    assert [d for d, _ in pb.got] == [b"abc", b"def"]
    with pytest.raises(TypeError):
        ta.sendto("text", (B, 5000))


async def test_payload_reaches_the_device_uncopied(net: Net) -> None:
    """The payload object itself is one of the parts handed to the device (header, then data), once the
    neighbour is resolved (a datagram that has to wait for ARP is copied: the caller may reuse its buffer)."""
    assert (await net.a.ping(B))[0] is not None
    dev = net.a.device
    parts_seen: list[tuple[Any, ...]] = []
    real_transmit = dev.transmit

    def spy(parts: Any) -> None:
        parts_seen.append(tuple(parts))
        real_transmit(parts)

    dev.transmit = spy  # type: ignore[method-assign]
    ta, _ = await net.endpoint(net.a)
    _, pb = await net.endpoint(net.b, (B, 5000))
    payloads = (bytearray(b"z" * 1000), memoryview(b"m" * 500))
    for payload in payloads:
        ta.sendto(payload, (B, 5000))
    await settle(lambda: len(pb.got) == 2)
    for payload in payloads:
        [frame] = [f for f in parts_seen if any(p is payload for p in f)]
        assert frame[-1] is payload
        assert sum(len(p) for p in frame) == 14 + 20 + 8 + len(payload)


# -- binding ---------------------------------------------------------------------------------------
async def test_eaddrinuse_same_port_twice(net: Net) -> None:
    await net.endpoint(net.a, (A, 5353))
    with pytest.raises(OSError, match="in use") as ei:
        await net.endpoint(net.a, ("0.0.0.0", 5353))
    assert ei.value.errno == errno.EADDRINUSE
    # Another stack's port space is its own.
    await net.endpoint(net.b, (B, 5353))


@pytest.mark.parametrize("addr", [B, "127.0.0.1", "10.1.2.3"])
async def test_eaddrnotavail_for_an_address_not_ours(net: Net, addr: str) -> None:
    with pytest.raises(OSError, match="not an address of this stack") as ei:
        await net.endpoint(net.a, (addr, 6000))
    assert ei.value.errno == errno.EADDRNOTAVAIL
    await net.endpoint(net.a, (A, 6000))  # the failed attempt did not take the port


async def test_ephemeral_ports_in_range_distinct_and_randomised(net: Net) -> None:
    ports_a = [(await net.endpoint(net.a))[0].get_extra_info("sockname")[1] for _ in range(300)]
    ports_b = [(await net.endpoint(net.b))[0].get_extra_info("sockname")[1] for _ in range(5)]
    assert all(p in EPHEMERAL for p in ports_a + ports_b)
    assert len(set(ports_a)) == len(ports_a)
    assert ports_a[:5] != ports_b  # different rng seeds, different ports
    # Not a counter: consecutive ports are not simply p, p+1, p+2...
    assert sum(1 for x, y in itertools.pairwise(ports_a) if y == x + 1) < 30


async def test_ephemeral_never_reuses_a_bound_port_even_with_a_stuck_rng() -> None:
    class Stuck(random.Random):
        def randrange(self, *args: Any, **kw: Any) -> int:
            return 7  # every pick starts at the same port

    hub = Hub()
    s = await Stack.connect(hub.port(), ipv4=f"{A}/24", clock=VirtualClock(), rng=Stuck(0))
    await s.create_datagram_endpoint(Recorder, (A, 49152 + 8))  # an explicit bind in the way
    ports = [(await s.create_datagram_endpoint(Recorder))[0].get_extra_info("sockname")[1]
             for _ in range(50)]
    assert len(set(ports)) == 50
    assert 49152 + 8 not in ports
    assert all(p in EPHEMERAL for p in ports)
    await s.disconnect()


async def test_close_frees_the_port_and_calls_connection_lost(net: Net) -> None:
    t, p = await net.endpoint(net.a, (A, 7000))
    assert p.made == 1
    assert p.transport is t
    assert not t.is_closing()
    t.close()
    assert t.is_closing()
    await settle(lambda: p.lost == [None])
    t.close()  # idempotent
    await settle()
    assert p.lost == [None]
    t2, p2 = await net.endpoint(net.a, (A, 7000))  # free again
    # A closed endpoint hears nothing; the new one on the same port does.
    tb, _ = await net.endpoint(net.b)
    tb.sendto(b"after", (A, 7000))
    await settle(lambda: len(p2.got) == 1)
    assert p.got == []
    t2.close()


# -- broadcast -------------------------------------------------------------------------------------
@pytest.mark.parametrize("bcast", ["255.255.255.255", "198.18.0.255"])
async def test_broadcast_needs_allow_broadcast(net: Net, bcast: str) -> None:
    _, pb = await net.endpoint(net.b, ("0.0.0.0", 6767))
    _, pc = await net.endpoint(net.c, ("0.0.0.0", 6767))
    t, p = await net.endpoint(net.a)
    frames = net.hub.frames
    with pytest.raises(PermissionError) as ei:  # like a socket without SO_BROADCAST: EACCES, nothing sent
        t.sendto(b"nope", (bcast, 6767))
    assert ei.value.errno == errno.EACCES
    assert p.errors == []
    await settle()
    assert net.hub.frames == frames
    assert pb.got == pc.got == []

    tok, pok = await net.endpoint(net.a, allow_broadcast=True)
    tok.sendto(b"to all", (bcast, 6767))
    await settle(lambda: len(pb.got) == len(pc.got) == 1)
    port = tok.get_extra_info("sockname")[1]
    assert pb.got == pc.got == [(b"to all", (A, port))]
    assert pok.errors == []


async def test_connected_to_broadcast_needs_allow_broadcast(net: Net) -> None:
    with pytest.raises(PermissionError):
        await net.endpoint(net.a, remote_addr=("255.255.255.255", 6767))
    t, _ = await net.endpoint(net.a, remote_addr=("255.255.255.255", 6767), allow_broadcast=True)
    assert t.get_extra_info("peername") == ("255.255.255.255", 6767)


# -- connected endpoints ---------------------------------------------------------------------------
async def test_connected_endpoint_hears_only_its_peer(net: Net) -> None:
    tb, pb = await net.endpoint(net.b, (B, 8000))
    tb_other, _ = await net.endpoint(net.b, (B, 8001))
    tc, _ = await net.endpoint(net.c, (C, 8000))
    ta, pa = await net.endpoint(net.a, remote_addr=(B, 8000))
    name = ta.get_extra_info("sockname")
    assert name[0] == A
    assert name[1] in EPHEMERAL
    assert ta.get_extra_info("peername") == (B, 8000)
    assert ta.get_extra_info("nonexistent", "dflt") == "dflt"

    ta.sendto(b"hi")
    ta.sendto(b"hi again", (B, 8000))  # the peer's own address is allowed
    with pytest.raises(ValueError, match="Invalid address"):
        ta.sendto(b"x", (C, 8000))
    await settle(lambda: len(pb.got) == 2)
    assert pb.got == [(b"hi", name), (b"hi again", name)]

    tc.sendto(b"intruder: other host", name)
    tb_other.sendto(b"intruder: other port", name)
    tb.sendto(b"reply", name)
    await settle(lambda: len(pa.got) == 1)
    await settle()
    assert pa.got == [(b"reply", (B, 8000))]
    assert pa.errors == []


async def test_unconnected_endpoint_has_no_peername_and_needs_an_address(net: Net) -> None:
    t, p = await net.endpoint(net.a, (A, 8100))
    assert t.get_extra_info("sockname") == (A, 8100)
    assert t.get_extra_info("peername") is None
    t.sendto(b"where to?")
    assert len(p.errors) == 1
    assert p.errors[0].errno == errno.EDESTADDRREQ


# -- ARP never blocks sendto; failures reach error_received ----------------------------------------
async def test_sendto_never_waits_for_arp_and_reports_host_unreachable(net: Net) -> None:
    seen: list[bytes] = []
    raw = net.hub.port()
    raw.attach(lambda f: seen.append(bytes(f)))
    t, p = await net.endpoint(net.a)
    for i in range(3):
        assert t.sendto(b"lost %d" % i, (ABSENT, 9)) is None  # synchronous, returns at once
    await settle()
    assert p.errors == []
    arp_requests = [f for f in seen if f[12:14] == b"\x08\x06" and f[38:42] == bytes([198, 18, 0, 99])]
    assert len(arp_requests) == 1
    net.clock.advance(1.0)
    await settle()
    assert p.errors == []  # still retrying
    net.clock.advance(2.5)
    await settle()
    assert len(p.errors) == 1, p.errors  # one report for the endpoint, not one per datagram
    assert isinstance(p.errors[0], tcpip.HostUnreachableError)
    assert "198.18.0.99" in str(p.errors[0])
    assert len([f for f in seen if f[12:14] == b"\x08\x06" and f[38:42] == bytes([198, 18, 0, 99])]) == 3
    assert net.a.stats()["udp"]["tx_arp_failed"] == 1
    # No datagram ever left for the absent host.
    assert not [f for f in seen if f[12:14] == b"\x08\x00" and f[30:34] == bytes([198, 18, 0, 99])]


async def test_arp_failure_goes_to_each_sending_endpoint(net: Net) -> None:
    t1, p1 = await net.endpoint(net.a)
    t2, p2 = await net.endpoint(net.a)
    t1.sendto(b"1", (ABSENT, 9))
    t2.sendto(b"2", (ABSENT, 9))
    net.clock.advance(5)
    await settle()
    assert [type(e) for e in p1.errors] == [tcpip.HostUnreachableError]
    assert [type(e) for e in p2.errors] == [tcpip.HostUnreachableError]


async def test_no_route_goes_to_error_received(net: Net) -> None:
    t, p = await net.endpoint(net.a)
    t.sendto(b"off-link", ("192.0.2.1", 53))  # no gateway configured
    assert len(p.errors) == 1
    assert p.errors[0].errno == errno.ENETUNREACH


# -- ICMP errors reach the sender ------------------------------------------------------------------
async def test_port_unreachable_gives_connection_refused(net: Net) -> None:
    t, p = await net.endpoint(net.a)
    t.sendto(b"anyone?", (B, 9999))
    await settle(lambda: len(p.errors) == 1)
    assert isinstance(p.errors[0], ConnectionRefusedError)
    assert p.errors[0].errno == errno.ECONNREFUSED
    assert net.b.stats()["udp"]["rx_no_port"] == 1
    assert net.b.stats()["icmp"]["tx_dest_unreachable"] == 1
    assert net.a.stats()["udp"]["rx_icmp_errors"] == 1
    assert p.got == []


async def test_connected_endpoint_gets_connection_refused_only_about_its_peer(net: Net) -> None:
    t, p = await net.endpoint(net.a, remote_addr=(B, 9999))
    t.sendto(b"anyone?")
    await settle(lambda: len(p.errors) == 1)
    assert isinstance(p.errors[0], ConnectionRefusedError)


async def test_closed_endpoint_hears_no_errors(net: Net) -> None:
    t, p = await net.endpoint(net.a)
    t.sendto(b"anyone?", (B, 9999))
    t.close()
    await settle()
    await settle()
    assert p.errors == []
    assert p.lost == [None]
    t.sendto(b"after close", (B, 9999))  # silently dropped, like asyncio
    assert p.errors == []


# -- asyncio compatibility: one protocol class over asyncio's sockets and over tcpip --------------
class EchoServer(asyncio.DatagramProtocol):
    """A plain asyncio echo server: sends every datagram back, upper-cased."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # asyncio's own: no subclass

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(data.upper(), addr)


class EchoClient(asyncio.DatagramProtocol):
    """A plain asyncio echo client: sends its messages on connection, collects the replies, closes
    when all have come back. Written for asyncio's own UDP transports."""

    def __init__(self, messages: list[bytes], done: asyncio.Future[list[Any]]) -> None:
        self.messages = messages
        self.done = done
        self.events: list[Any] = []
        self.replies = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # asyncio's own: no subclass
        self.events.append("made")
        self.events.append(("connected", transport.get_extra_info("peername") is not None))
        for m in self.messages:
            transport.sendto(m)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.events.append(("reply", data, addr == self.transport.get_extra_info("peername")))
        self.replies += 1
        if self.replies == len(self.messages):
            try:
                self.transport.sendto(b"x", ("127.0.0.2", 1))  # not the peer
            except ValueError as e:
                self.events.append(("refused other address", "Invalid address" in str(e)))
            self.transport.close()

    def error_received(self, exc: Exception) -> None:
        self.events.append(("error", type(exc).__name__))

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.append(("lost", exc))
        if not self.done.done():
            self.done.set_result(self.events)


MESSAGES = [b"a", b"hello world", bytes(range(256)) * 5]


async def _run_client(create: Callable[..., Any], server: tuple[str, int]) -> list[Any]:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[list[Any]] = loop.create_future()
    await create(lambda: EchoClient(MESSAGES, done), remote_addr=server)
    return await asyncio.wait_for(done, 5)


async def test_same_protocol_over_asyncio_loopback_and_tcpip() -> None:
    loop = asyncio.get_running_loop()
    # (a) asyncio's own UDP sockets on the loopback interface.
    srv_t, _ = await loop.create_datagram_endpoint(EchoServer, local_addr=("127.0.0.1", 0))
    try:
        real = await _run_client(loop.create_datagram_endpoint, srv_t.get_extra_info("sockname"))
    finally:
        srv_t.close()
    # (b) the same classes over two tcpip stacks on a Hub (real time: replies come on the loop).
    hub = Hub()
    async with await Stack.connect(hub.port(), ipv4=f"{A}/24") as a, \
            await Stack.connect(hub.port(), ipv4=f"{B}/24") as b:
        srv, _ = await b.create_datagram_endpoint(EchoServer, local_addr=(B, 7))
        ours = await _run_client(a.create_datagram_endpoint, (B, 7))
        srv.close()
    expected = ["made", ("connected", True), *[("reply", m.upper(), True) for m in MESSAGES],
                ("refused other address", True), ("lost", None)]
    assert real == expected
    assert ours == real


async def test_sockname_peername_shapes_match_asyncio() -> None:
    loop = asyncio.get_running_loop()
    rt, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
    hub = Hub()
    async with await Stack.connect(hub.port(), ipv4=f"{A}/24") as a:
        tt, _ = await a.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=(A, 0))
        for t in (rt, tt):
            name = t.get_extra_info("sockname")
            assert isinstance(name, tuple)
            assert len(name) == 2
            assert isinstance(name[0], str)
            assert isinstance(name[1], int)
            assert name[1] != 0
            assert t.get_extra_info("peername") is None
        tt.close()
    rt.close()


# -- the examples ----------------------------------------------------------------------------------
def _run_example(*args: str) -> str:
    r = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=30,
                       check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_example_udp_echo_runs() -> None:
    out = _run_example("examples/udp_echo.py")
    assert "server listening on 198.18.0.1:7" in out
    assert "client got b'hello' back from 198.18.0.1:7" in out
    assert "client got b'' back from 198.18.0.1:7" in out
    assert "client got b'xxxxxxxx'... (1472 bytes) back from 198.18.0.1:7" in out
    assert "3 of 3 echoes received" in out


def test_example_dns_query_self_test_runs() -> None:
    out = _run_example("examples/dns_query.py", "--self-test", "www.example.test")
    assert "www.example.test has address 198.18.0.80" in out
    assert "www.example.test has address 198.18.0.81" in out
    out = _run_example("examples/dns_query.py", "--self-test", "missing.example.test")
    assert "missing.example.test: NXDOMAIN" in out
