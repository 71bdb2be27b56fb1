"""Stack.connect(dhcp=True) and stack.resolve on a Hub, against a DHCP/DNS server written here on a second
Stack, and hostile input (forged offers, overrunning options, compression loops, spoofed DNS replies): each
is a counted drop, nothing raises, the cache is never poisoned."""

from __future__ import annotations

import asyncio
import random
import socket
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from ipaddress import IPv4Address

import pytest
from testlib import settle

from tcpip import Stack
from tcpip.core.dhcp import Bound, DhcpState, Lost
from tcpip.errors import DhcpTimeoutError, NameNotFoundError, ResolveTimeoutError
from tcpip.netif import Hub
from tcpip.wire.dhcp import DhcpMessage, DhcpOptions, MessageType, Op
from tcpip.wire.dns import DnsMessage, Question, Record, RType

SERVER = "198.18.0.1"
S = int(IPv4Address(SERVER))
OFFERED = int(IPv4Address("198.18.0.77"))
NAMES = {"server.test": "198.18.0.1", "www.test": "198.18.0.9"}


class Server:
    """A minimal DHCP server (one address) and DNS server (A records) on a tcpip Stack."""

    def __init__(self, stack: Stack, *, lease: int = 3600) -> None:
        self.stack = stack
        self.lease = lease
        self.requests: list[DhcpMessage] = []
        self.dns_queries: list[tuple[DnsMessage, int, int]] = []  # (query, src ip, src port)
        self.answer_dns = True
        self.forge: Callable[[DhcpMessage], list[bytes]] | None = None  # extra replies sent first
        stack.udp.bind(67, 0, self._dhcp)
        stack.udp.bind(53, 0, self._dns)

    def _dhcp(self, payload: memoryview, src: int, sport: int, dst: int, now: float) -> None:
        m = DhcpMessage.parse(payload)
        self.requests.append(m)
        for extra in self.forge(m) if self.forge else []:
            self.stack.udp.send(67, 0xFFFFFFFF, 68, extra, now)
        mt = m.options.message_type
        if mt == MessageType.DISCOVER:
            self._reply(m, MessageType.OFFER, now)
        elif mt == MessageType.REQUEST:
            self._reply(m, MessageType.ACK, now)
        self.stack.runner.kick()

    def _reply(self, m: DhcpMessage, mt: int, now: float) -> None:
        opts = DhcpOptions(message_type=mt, subnet_mask=0xFFFFFF00, routers=(S,), dns_servers=(S,),
                           lease_time=self.lease, server_id=S)
        r = DhcpMessage(Op.BOOTREPLY, m.xid, m.chaddr, opts, yiaddr=OFFERED)
        self.stack.udp.send(67, 0xFFFFFFFF if not m.ciaddr else m.ciaddr, 68, r.emit(), now)

    def _dns(self, payload: memoryview, src: int, sport: int, dst: int, now: float) -> None:
        q = DnsMessage.parse(payload)
        self.dns_queries.append((q, src, sport))
        if not self.answer_dns:
            return
        name = q.questions[0].name
        ip = NAMES.get(name.lower())
        rcode = 0 if ip else 3
        answers = (Record(name, RType.A, 300, int(IPv4Address(ip))),) if ip else ()
        r = DnsMessage(q.id, 0x8180 | rcode, q.questions, answers)
        self.stack.udp.send(53, src, sport, r.emit(), now)
        self.stack.runner.kick()


@asynccontextmanager
async def network(**kw: object) -> AsyncIterator[tuple[Hub, Server, Stack]]:
    hub = Hub()
    async with await Stack.connect(hub.port(), ipv4=f"{SERVER}/24", rng=random.Random(1)) as s:
        server = Server(s)
        client = await Stack.connect(hub.port(), dhcp=True, dhcp_timeout=5.0, rng=random.Random(2),
                                     **kw)  # type: ignore[arg-type]
        try:
            yield hub, server, client
        finally:
            await client.disconnect()
            await settle()  # the RELEASE reaches the server before it goes down


async def test_connect_dhcp_configures_the_stack_and_releases() -> None:
    async with network(hostname="h1") as (_hub, server, c):
        d = c.dhcp
        assert d is not None
        assert d.lease is not None
        assert d.state is DhcpState.BOUND
        assert d.bound.is_set()
        assert (d.lease.address, d.lease.server_id, d.lease.dns_servers) == (OFFERED, S, (S,))
        assert str(c.interface) == "198.18.0.77/24"
        assert c.ipv4.get_ipv4_gateways() == [IPv4Address(SERVER)]
        assert c.resolver.servers == [S]
        assert [type(e) for e in d.history] == [Bound]
        assert [m.options.message_type for m in server.requests] == [MessageType.DISCOVER, MessageType.REQUEST]
        assert server.requests[0].options.hostname == "h1"
        assert (await c.ping(SERVER))[0] is not None  # the address works
    await settle()
    assert server.requests[-1].options.message_type == MessageType.RELEASE
    assert server.requests[-1].ciaddr == OFFERED
    assert d.history[-1] == Lost(OFFERED, "released")
    assert c.address == IPv4Address("0.0.0.0")


async def test_dhcp_timeout_is_a_clear_error() -> None:
    hub = Hub()
    t0 = asyncio.get_running_loop().time()
    with pytest.raises(DhcpTimeoutError, match=r"no lease within 0\.3 s \(1 DISCOVERs, 0 offers"):
        await Stack.connect(hub.port(), dhcp=True, dhcp_timeout=0.3)
    assert asyncio.get_running_loop().time() - t0 < 1.0


async def test_resolve_and_names_in_the_api() -> None:
    async with network() as (_hub, server, c):
        assert await c.resolve("WWW.test") == [IPv4Address("198.18.0.9")]
        assert await c.resolve("www.test") == [IPv4Address("198.18.0.9")]  # cached
        assert len(server.dns_queries) == 1
        with pytest.raises(NameNotFoundError) as e:
            await c.resolve("nope.test")
        assert isinstance(e.value, socket.gaierror)
        assert e.value.errno == socket.EAI_NONAME
        assert await c.resolve("198.18.0.5") == [IPv4Address("198.18.0.5")]  # a literal: no query
        assert len(server.dns_queries) == 2
        # each lookup from its own random port (never 53, never fixed); the ports are freed after
        ports = {p for _q, _s, p in server.dns_queries}
        assert len(ports) == 2
        assert all(p >= 1024 for p in ports)
        assert not ports & set(c.udp.ports)
        # names in ping, UDP and TCP
        assert (await c.ping("server.test"))[0] is not None
        got: asyncio.Queue[bytes] = asyncio.Queue()

        class P(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                got.put_nowait(data)

        await server.stack.udp_echo(7)
        t, _ = await c.create_datagram_endpoint(P, remote_addr=("server.test", 7))
        assert t.get_extra_info("peername") == (SERVER, 7)
        t.sendto(b"by name")
        assert await asyncio.wait_for(got.get(), 2) == b"by name"
        t.close()

        async def echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            w.write(await r.read(100))
            w.close()

        srv = await server.stack.start_server(echo, None, 8000)
        r, w = await c.open_connection("server.test", 8000)
        w.write(b"tcp by name")
        assert await asyncio.wait_for(r.read(), 2) == b"tcp by name"
        w.close()
        srv.close()
        assert len(server.dns_queries) == 3  # server.test once, then from the cache


async def test_configured_dns_wins_over_dhcp_and_times_out_cleanly() -> None:
    async with network(dns=["198.18.0.53"]) as (_hub, server, c):
        assert c.resolver.servers == [int(IPv4Address("198.18.0.53"))]  # never the router or the lease's
        c.resolver.resolver.config = type(c.resolver.resolver.config)(timeout=0.05, attempts=2)
        with pytest.raises(ResolveTimeoutError):
            await c.resolve("www.test")
        assert server.dns_queries == []
        assert c.stats()["dns"]["timeouts"] == 1
        assert not [p for p in c.udp.ports if p not in (68,)]  # its port was unbound


# -- hostile input ---------------------------------------------------------------------------------
def _raw_udp(src: int, dst: int, sport: int, dport: int, payload: bytes, dmac: bytes, smac: bytes) -> bytes:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw

    return bytes(Ether(dst=dmac, src=smac) / IP(src=str(IPv4Address(src)), dst=str(IPv4Address(dst)))
                 / UDP(sport=sport, dport=dport) / Raw(payload))


async def test_forged_and_malformed_dhcp_replies_are_counted_drops() -> None:
    def forge(m: DhcpMessage) -> list[bytes]:
        if m.options.message_type != MessageType.DISCOVER:
            return []
        evil = int(IPv4Address("198.18.0.66"))
        opts = DhcpOptions(message_type=MessageType.OFFER, subnet_mask=0xFFFFFF00, lease_time=60, server_id=evil)
        good = DhcpMessage(Op.BOOTREPLY, m.xid, m.chaddr, opts, yiaddr=evil).emit()
        wrong_xid = DhcpMessage(Op.BOOTREPLY, m.xid ^ 1, m.chaddr, opts, yiaddr=evil).emit()
        wrong_mac = DhcpMessage(Op.BOOTREPLY, m.xid, b"\x02" * 6, opts, yiaddr=evil).emit()
        overrun = bytearray(good)
        overrun[240:] = b"\x35\x01\x02\x36\x20\xc6\x12"  # server id claims 32 bytes, 2 follow; no END
        no_end = good[:good.rindex(b"\xff")]
        loop = bytearray(good)
        loop[0] = 1  # a BOOTREQUEST (another client's)
        return [wrong_xid, wrong_mac, bytes(overrun), no_end, bytes(loop), b"\x00" * 10]

    hub = Hub()
    async with await Stack.connect(hub.port(), ipv4=f"{SERVER}/24", rng=random.Random(1)) as s:
        server = Server(s)
        server.forge = forge
        async with await Stack.connect(hub.port(), dhcp=True, dhcp_timeout=5.0, rng=random.Random(2)) as c:
            d = c.dhcp
            assert d is not None
            assert d.lease is not None
            assert d.lease.address == OFFERED  # none of the forgeries was taken
            st = d.client.stats
            assert (st.rx_wrong_xid, st.rx_wrong_chaddr, st.rx_not_reply) == (1, 1, 1)
            assert st.rx_malformed == 3  # overrun, no END, 10 bytes
            # a reply from the wrong source port, and a forged NAK from another server after binding
            port = hub.port()
            frame = _raw_udp(S, 0xFFFFFFFF, 68, 68, b"x" * 300, b"\xff" * 6, port.mac.packed)
            port.transmit([frame])
            nak = DhcpMessage(Op.BOOTREPLY, 0, c.mac.packed, DhcpOptions(message_type=MessageType.NAK,
                                                                          server_id=S)).emit()
            port.transmit([_raw_udp(S, 0xFFFFFFFF, 67, 68, nak, b"\xff" * 6, port.mac.packed)])
            await settle()
            assert d.stats.rx_wrong_port == 1
            assert st.rx_wrong_xid == 2  # no exchange open while BOUND
            assert d.state is DhcpState.BOUND
            assert c.runner.rx_errors == 0


async def test_spoofed_and_hostile_dns_replies_never_poison_the_cache() -> None:
    async with network() as (hub, server, c):
        server.answer_dns = False
        evil = hub.port()
        task = asyncio.create_task(c.resolve("www.test"))
        await settle(lambda: bool(server.dns_queries))
        q, _src, port = server.dns_queries[0]
        ours = c.address
        dmac, smac = c.mac.packed, evil.mac.packed
        qd = q.questions

        def reply(id_: int, questions: tuple[Question, ...], ip: str = "203.0.113.66") -> bytes:
            return DnsMessage(id_, 0x8180, questions, (Record(questions[0].name if questions else "www.test",
                                                              RType.A, 300, int(IPv4Address(ip))),)).emit()

        good_id = q.id
        frames = [
            _raw_udp(int(IPv4Address("198.18.0.66")), int(ours), 53, port, reply(good_id, qd), dmac, smac),  # server
            _raw_udp(S, int(ours), 5353, port, reply(good_id, qd), dmac, smac),  # source port
            _raw_udp(S, int(ours), 53, port, reply(good_id ^ 1, qd), dmac, smac),  # id
            _raw_udp(S, int(ours), 53, port, reply(good_id, (Question("evil.test"),)), dmac, smac),  # question
            _raw_udp(S, int(ours), 53, port ^ 1, reply(good_id, qd), dmac, smac),  # port
        ]
        hdr = struct.pack("!HHHHHH", good_id, 0x8180, 1, 0, 0, 0)
        frames.append(_raw_udp(S, int(ours), 53, port, hdr + b"\xc0\x0c" + b"\x00\x01\x00\x01", dmac, smac))  # loop
        frames.append(_raw_udp(S, int(ours), 53, port, hdr + b"\x3f" + b"a" * 63 + b"\x3f" + b"b" * 63
                               + b"\x3f" + b"c" * 63 + b"\x3f" + b"d" * 63 + b"\x00\x00\x01\x00\x01", dmac, smac))
        for f in frames:
            evil.transmit([f])
        await settle()
        st = c.resolver.resolver.stats
        assert (st.rx_wrong_server, st.rx_wrong_port, st.rx_wrong_id, st.rx_wrong_question) == (1, 1, 1, 1)
        assert st.rx_datagrams == 6  # the one to another port never reached it (no such UDP port)
        assert c.stats()["udp"]["rx_no_port"] == 1
        assert st.rx_malformed == 2  # the pointer loop and the 256-byte name
        assert not task.done()
        server.answer_dns = True  # the real server's retransmission answers
        assert await asyncio.wait_for(task, 5) == [IPv4Address("198.18.0.9")]
        assert await c.resolve("www.test") == [IPv4Address("198.18.0.9")]
        assert c.runner.rx_errors == 0


async def test_truncated_reply_is_asked_again_over_tcp() -> None:
    async with network() as (_hub, server, c):
        s = server.stack
        orig = server._dns

        def truncating(payload: memoryview, src: int, sport: int, dst: int, now: float) -> None:
            q = DnsMessage.parse(payload)
            server.dns_queries.append((q, src, sport))
            r = DnsMessage(q.id, 0x8380, q.questions)  # TC set, no answer
            s.udp.send(53, src, sport, r.emit(), now)
            s.runner.kick()

        s.udp.ports[53].receiver = truncating
        tcp_questions: list[str] = []

        async def dns_over_tcp(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            n = int.from_bytes(await r.readexactly(2), "big")
            q = DnsMessage.parse(await r.readexactly(n))
            tcp_questions.append(q.questions[0].name)
            name = q.questions[0].name
            answers = (Record(name, RType.CNAME, 60, "www.test"), Record("www.test", RType.A, 60,
                                                                         int(IPv4Address("198.18.0.9"))))
            out = DnsMessage(q.id, 0x8180, q.questions, answers).emit()
            w.write(len(out).to_bytes(2, "big") + out)
            await w.drain()
            w.close()

        srv = await s.start_server(dns_over_tcp, None, 53)
        assert await c.resolve("big.test") == [IPv4Address("198.18.0.9")]
        assert tcp_questions == ["big.test"]
        assert c.stats()["dns"]["tcp_fallbacks"] == 1
        assert c.stats()["dns"]["truncated"] == 1
        srv.close()
        s.udp.ports[53].receiver = orig
