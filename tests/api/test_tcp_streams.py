"""TCP through asyncio streams over two stacks on a Hub: echo, half-close, errors, servers, TLS, counters."""

from __future__ import annotations

import asyncio
import errno
import gc
import hashlib
import socket
import ssl
import sys
from ipaddress import IPv4Address
from typing import Any

import pytest
import trustme
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from tcp_support import A, B, blob, two_stacks

from tcpip import Stack
from tcpip.core.tcp.config import TcpConfig
from tcpip.netif import Hub, VirtualClock

pytestmark = pytest.mark.timeout(30)


async def echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    while data := await r.read(65536):
        w.write(data)
        await w.drain()
    w.close()
    await w.wait_closed()


@pytest.fixture(scope="module")
def tls() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    ca = trustme.CA()
    cert = ca.issue_cert(B)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


async def test_stream_echo_readuntil_readexactly_async_for_and_counters() -> None:
    async with two_stacks() as (a, b, _):
        server = await b.start_server(echo, B, 7)
        r, w = await a.open_connection(B, 7)
        assert w.get_extra_info("peername") == (B, 7)
        host, port = w.get_extra_info("sockname")
        assert host == A
        assert 32768 <= port <= 60999
        sock = w.get_extra_info("socket")  # socket-shaped, as asyncio's (anyio reads it), but no fd
        assert (sock.fileno(), sock.getpeername(), sock.getsockname()) == (-1, (B, 7), (A, port))
        w.write(b"hello\r\nworld\r\n")
        assert await r.readuntil(b"\r\n") == b"hello\r\n"
        assert await r.readuntil(b"\r\n") == b"world\r\n"
        w.write(bytes(range(256)) * 40)
        assert await r.readexactly(10240) == bytes(range(256)) * 40
        w.write(b"".join(b"line %d\n" % i for i in range(100)))
        w.write_eof()
        lines = [line async for line in r]
        assert lines == [b"line %d\n" % i for i in range(100)]
        assert r.at_eof()
        w.close()
        await w.wait_closed()
        server.close()
        await server.wait_closed()
        sa, sb = a.stats()["tcp"], b.stats()["tcp"]
        assert (sa["ActiveOpens"], sa["PassiveOpens"], sb["ActiveOpens"], sb["PassiveOpens"]) == (1, 0, 0, 1)
        assert sa["AttemptFails"] == sb["AttemptFails"] == 0
        assert sa["EstabResets"] == sb["EstabResets"] == 0
        assert sa["OutRsts"] == sb["OutRsts"] == 0
        assert sa["InErrs"] == sb["InErrs"] == sa["InCsumErrors"] == 0
        assert sa["CurrEstab"] == sb["CurrEstab"] == 0
        # every segment one side sent, the other received (no loss on a hub)
        assert sa["OutSegs"] + sa["RetransSegs"] == sb["InSegs"]
        assert sb["OutSegs"] + sb["RetransSegs"] == sa["InSegs"]
        assert sa["InSegs"] >= 5


async def test_one_mebibyte_each_way_byte_identical() -> None:
    data_a, data_b = blob(1 << 20, 1), blob(1 << 20, 2)
    got_by_server = bytearray()

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        async def send() -> None:
            w.write(data_b)
            await w.drain()
        sender = asyncio.ensure_future(send())
        while chunk := await r.read(65536):
            got_by_server.extend(chunk)
        await sender
        w.close()
        await w.wait_closed()

    async with two_stacks() as (a, b, _):
        server = await b.start_server(handle, None, 9000)
        r, w = await a.open_connection(B, 9000)
        w.write(data_a)
        await w.drain()
        w.write_eof()
        got = await r.read()
        w.close()
        await w.wait_closed()
        assert hashlib.sha256(got).digest() == hashlib.sha256(data_b).digest()
        assert len(got) == 1 << 20
        assert bytes(got_by_server) == data_a
        server.close()
        await server.wait_closed()
        assert a.stats()["tcp"]["RetransSegs"] == 0


async def test_half_close_peer_keeps_sending_after_eof() -> None:
    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        req = await r.read()  # until the client's FIN
        assert r.at_eof()
        for i in range(50):  # CLOSE_WAIT: we still send
            w.write(b"%d:%s\n" % (i, req))
            await w.drain()
        w.close()
        await w.wait_closed()

    async with two_stacks() as (a, b, _):
        server = await b.start_server(handle, B, 80)
        r, w = await a.open_connection(B, 80)
        w.write(b"GET")
        assert w.can_write_eof()
        w.write_eof()
        with pytest.raises(RuntimeError):
            w.write(b"late")
        assert not w.is_closing()
        body = await r.read()
        assert body == b"".join(b"%d:GET\n" % i for i in range(50))
        w.close()
        await w.wait_closed()
        server.close()
        await server.wait_closed()
        assert [c for c in a.tcp_connections() if c.state not in ("TIME_WAIT", "CLOSED")] == []


async def test_refused_connect_raises_connection_refused_quickly() -> None:
    async with two_stacks() as (a, b, _):
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(ConnectionRefusedError) as e:
            await a.open_connection(B, 4444)
        assert e.value.errno == errno.ECONNREFUSED
        assert loop.time() - t0 < 0.5
        assert a.stats()["tcp"]["AttemptFails"] == 1
        assert b.stats()["tcp"]["OutRsts"] == 1
        with pytest.raises(ConnectionRefusedError):
            await a.create_connection(asyncio.Protocol, B, 4445)


async def test_address_errors() -> None:
    async with two_stacks() as (a, _b, _):
        with pytest.raises(socket.gaierror):
            await a.open_connection("example.org", 80)  # never the host's resolver
        with pytest.raises(OSError, match=r"(?i)unreachable") as e:
            await a.open_connection("203.0.113.9", 80)  # off-link, no gateway
        assert e.value.errno == errno.ENETUNREACH
        with pytest.raises(OSError, match=r"(?i)assign") as e:
            await a.open_connection(B, 80, local_addr=("198.18.0.77", 0))
        assert e.value.errno == errno.EADDRNOTAVAIL
        with pytest.raises(OSError, match=r"(?i)assign") as e:
            await a.start_server(echo, "198.18.0.77", 80)
        assert e.value.errno == errno.EADDRNOTAVAIL


async def test_connect_to_absent_host_is_host_unreachable_after_arp_gives_up() -> None:
    clock = VirtualClock(10.0)
    hub = Hub()
    a = await Stack.connect(hub.port(), ipv4=f"{A}/24", clock=clock)
    task = asyncio.ensure_future(a.open_connection("198.18.0.99", 80))
    for _ in range(40):
        await asyncio.sleep(0)
        clock.advance(0.25)
        if task.done():
            break
    with pytest.raises(OSError, match=r"(?i)no route") as e:
        await task
    assert e.value.errno == errno.EHOSTUNREACH
    assert [c for c in a.tcp_connections() if c.state == "SYN_SENT"] == []
    await a.disconnect()


async def test_syn_retries_exhausted_is_timeout_error() -> None:
    clock = VirtualClock(10.0)
    async with two_stacks(tcp_a=TcpConfig(syn_retries=2), clock=clock) as (a, b, _):
        b.core.register(6, lambda *args: None)  # b answers ARP but swallows every TCP segment
        task = asyncio.ensure_future(a.open_connection(B, 80))
        for _ in range(200):
            await asyncio.sleep(0)
            clock.advance(0.1)
            if task.done():
                break
        with pytest.raises(TimeoutError) as e:
            await task
        assert e.value.errno == errno.ETIMEDOUT
        assert a.stats()["tcp"]["AttemptFails"] == 1


async def test_data_retries_exhausted_is_timeout_error_from_read() -> None:
    clock = VirtualClock(10.0)
    async with two_stacks(tcp_a=TcpConfig(retries2=3), clock=clock) as (a, b, _):
        await b.start_server(echo, B, 7)
        task = asyncio.ensure_future(a.open_connection(B, 7))
        await settle_virtual(clock, task)
        r, w = task.result()
        b.core.register(6, lambda *args: None)  # b vanishes: nothing is acknowledged any more
        w.write(b"into the void")
        read = asyncio.ensure_future(r.read())
        await settle_virtual(clock, read, step=1.0, rounds=400)
        with pytest.raises(TimeoutError) as e:
            read.result()
        assert e.value.errno == errno.ETIMEDOUT
        assert a.stats()["tcp"]["RetransSegs"] == 3


async def test_icmp_host_unreachable_fails_the_connect() -> None:
    hub = Hub()
    a = await Stack.connect(hub.port(), ipv4=f"{A}/24")
    router = hub.port()
    syns: list[bytes] = []
    router.attach(lambda f: syns.append(bytes(f)) if len(f) > 47 and f[23] == 6 else None)
    target = "198.18.0.3"
    a.core.arp.add_static(int(IPv4Address(target)), router.mac.packed)
    task = asyncio.ensure_future(a.open_connection(target, 80))
    for _ in range(100):
        await asyncio.sleep(0)
        if syns:
            break
    ip_packet = syns[0][14:]
    quote = ip_packet[:28]  # the SYN's IPv4 header and 8 bytes of TCP
    icmp = Ether(dst=str(a.mac), src=str(router.mac)) / IP(src=target, dst=A) / \
        ICMP(type=3, code=1) / Raw(quote)
    router.transmit([bytes(icmp)])
    with pytest.raises(OSError, match=r"(?i)no route|unreachable") as e:
        await asyncio.wait_for(task, 5)
    assert e.value.errno == errno.EHOSTUNREACH
    tcp = a.stats()["tcp"]
    assert (tcp["ActiveOpens"], tcp["AttemptFails"], tcp["icmp_unreachable"]) == (1, 1, 1)
    await a.disconnect()


async def settle_virtual(clock: VirtualClock, fut: asyncio.Future[Any], step: float = 0.1,
                         rounds: int = 200) -> None:
    """Let the loop run and virtual time pass in steps until `fut` is done."""
    for _ in range(rounds):
        for _ in range(5):
            await asyncio.sleep(0)
        if fut.done():
            return
        clock.advance(step)
    raise AssertionError("not done")


async def test_reset_gives_connection_reset_from_read_and_drain() -> None:
    accepted: asyncio.Future[asyncio.StreamWriter] = asyncio.get_running_loop().create_future()

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        accepted.set_result(w)

    async with two_stacks() as (a, b, _):
        await b.start_server(handle, B, 80)
        r, w = await a.open_connection(B, 80)
        (await accepted).transport.abort()
        with pytest.raises(ConnectionResetError) as e:
            await r.read()
        assert e.value.errno == errno.ECONNRESET
        w.write(b"after the reset: no exception here")
        with pytest.raises(ConnectionResetError):
            await w.drain()
        assert w.is_closing()
        assert a.stats()["tcp"]["EstabResets"] == 1
        assert b.stats()["tcp"]["OutRsts"] == 1


async def test_ephemeral_port_in_sockets_and_address_in_use() -> None:
    async with two_stacks() as (a, b, _):
        server = await b.start_server(echo, None, 0)
        assert len(server.sockets) == 1
        host, port = server.sockets[0].getsockname()
        assert host == "0.0.0.0"
        assert 32768 <= port <= 60999
        with pytest.raises(OSError, match=r"(?i)in use") as e:
            await b.start_server(echo, None, port)
        assert e.value.errno == errno.EADDRINUSE
        r, w = await a.open_connection(B, port)
        w.write(b"ping")
        assert await r.readexactly(4) == b"ping"
        w.close()
        await w.wait_closed()
        server.close()
        assert list(server.sockets) == []
        await server.wait_closed()
        assert any(c.state == "LISTEN" for c in b.tcp_connections()) is False


async def test_server_wait_closed_waits_for_connections_then_close_clients() -> None:
    async with two_stacks() as (a, b, _):
        server = await b.start_server(echo, B, 80)
        r, w = await a.open_connection(B, 80)
        w.write(b"x")
        assert await r.readexactly(1) == b"x"
        early = asyncio.ensure_future(server.wait_closed())
        server.close()
        assert not server.is_serving()
        await asyncio.sleep(0.05)
        assert not early.done()  # a client is still connected (3.12 semantics)
        with pytest.raises(ConnectionRefusedError):
            await a.open_connection(B, 80)
        w.write(b"y")  # the accepted connection lives on
        assert await r.readexactly(1) == b"y"
        server.close_clients()
        assert await r.read() == b""  # FIN from the server
        await asyncio.wait_for(early, 5)
        w.close()
        await w.wait_closed()


async def test_abort_clients_resets_and_async_with_closes() -> None:
    async with two_stacks() as (a, b, _):
        async with await b.start_server(echo, B, 80) as server:
            pairs = [await a.open_connection(B, 80) for _ in range(3)]
            for r, w in pairs:
                w.write(b"hi")
                assert await r.readexactly(2) == b"hi"
            server.abort_clients()
            for r, w in pairs:
                with pytest.raises(ConnectionResetError):
                    await r.read()
                w.close()
        assert not server.is_serving()
        assert list(server.sockets) == []
        await asyncio.wait_for(server.wait_closed(), 1)


async def test_serve_forever_and_start_serving_later() -> None:
    async with two_stacks() as (a, b, _):
        server = await b.start_server(echo, B, 80, start_serving=False)
        assert not server.is_serving()
        task = asyncio.ensure_future(a.open_connection(B, 80))  # waits in the accept queue
        await asyncio.sleep(0.05)
        forever = asyncio.ensure_future(server.serve_forever())
        r, w = await asyncio.wait_for(task, 5)
        assert server.is_serving()
        w.write(b"queued")
        assert await r.readexactly(6) == b"queued"
        forever.cancel()
        w.close()
        with pytest.raises(asyncio.CancelledError):
            await forever
        assert not server.is_serving()


async def test_tls_through_ssl_argument(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_ctx, client_ctx = tls
    async with two_stacks() as (a, b, _), await b.start_server(echo, B, 443, ssl=server_ctx):
        r, w = await a.open_connection(B, 443, ssl=client_ctx)
        assert w.get_extra_info("ssl_object").version() in ("TLSv1.2", "TLSv1.3")
        assert ("IP Address", B) in w.get_extra_info("peercert")["subjectAltName"]
        payload = blob(300_000)
        w.write(payload)
        assert await r.readexactly(len(payload)) == payload
        w.close()
        await w.wait_closed()
        with pytest.raises(ssl.SSLCertVerificationError):
            await a.open_connection(B, 443, ssl=ssl.create_default_context())


async def test_tls_through_streamwriter_start_tls(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_ctx, client_ctx = tls
    seen: list[Any] = []

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        seen.append(await r.readline())
        w.write(b"220 go ahead\r\n")
        await w.start_tls(server_ctx)
        seen.append(w.get_extra_info("ssl_object") is not None)
        await echo(r, w)

    async with two_stacks() as (a, b, _), await b.start_server(handle, B, 25):
        r, w = await a.open_connection(B, 25)
        w.write(b"STARTTLS\r\n")
        assert await r.readline() == b"220 go ahead\r\n"
        await w.start_tls(client_ctx, server_hostname=B)
        assert w.get_extra_info("ssl_object") is not None
        w.write(b"secret\n" + blob(50_000))
        assert await r.readline() == b"secret\n"
        assert await r.readexactly(50_000) == blob(50_000)
        w.close()
        await w.wait_closed()
    assert seen == [b"STARTTLS\r\n", True]


def test_unclosed_writer_garbage_collected_after_loop_closed() -> None:
    """A writer left open when the loop ends: collecting it later raises nothing (not even unraisable)."""
    problems: list[Any] = []
    old = sys.unraisablehook
    sys.unraisablehook = lambda u: problems.append(u.exc_value)

    async def main() -> None:
        hub = Hub()
        a = await Stack.connect(hub.port(), ipv4=f"{A}/24")
        b = await Stack.connect(hub.port(), ipv4=f"{B}/24")
        await b.start_server(lambda r, w: None, B, 80)
        _r, w = await a.open_connection(B, 80)
        w.write(b"left open")
        await asyncio.sleep(0.01)

    try:
        asyncio.run(main())
        gc.collect()
        gc.collect()
    finally:
        sys.unraisablehook = old
    assert [p for p in problems if not isinstance(p, ResourceWarning)] == []

