"""StackLoop without a kernel: its network methods against a second Stack on an in-memory Hub (same loop)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import tcpip
from tcpip import Stack, StackLoop
from tcpip.loop import StackNetwork
from tcpip.netif import Hub

A, B = "198.18.0.1", "198.18.0.2"
UVLOOP = False


@pytest.fixture(autouse=True, params=["asyncio", "uvloop"])
def base_loop(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test on StackLoop (asyncio's loop) and on UvStackLoop (uvloop's), where uvloop is installed."""
    global UVLOOP  # noqa: PLW0603
    if request.param == "uvloop":
        pytest.importorskip("uvloop")
    UVLOOP = request.param == "uvloop"
    yield
    UVLOOP = False


class Peers:
    """The loop's stack (A) and a peer stack (B) on one hub; B is built inside the loop's connect()."""

    peer: Stack

    async def connect(self) -> Stack:
        hub = Hub()
        self.peer = await Stack.connect(hub.port(), ipv4=f"{B}/24")
        return await Stack.connect(hub.port(), ipv4=f"{A}/24")


def run(main: Callable[[Peers], Awaitable[Any]]) -> tuple[Any, Peers, StackNetwork]:
    peers = Peers()
    with asyncio.Runner(loop_factory=tcpip.loop_factory(peers.connect, uvloop=UVLOOP)) as r:
        loop = r.get_loop()
        assert isinstance(loop, StackNetwork)
        assert isinstance(loop, StackLoop) != UVLOOP
        result = r.run(asyncio.wait_for(main(peers), 10))
        r.run(peers.peer.disconnect())
    return result, peers, loop


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(await reader.read(100) + b"!")
    await writer.drain()
    writer.close()


def test_streams_both_ways_and_the_stack_goes_down_with_the_loop() -> None:
    async def main(p: Peers) -> list[bytes]:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, StackNetwork)
        out = []
        server = await p.peer.start_server(echo, None, 7)
        r, w = await asyncio.open_connection(B, 7)  # plain asyncio: through the loop's create_connection
        assert w.get_extra_info("peername") == (B, 7)
        assert w.get_extra_info("sockname")[0] == A
        w.write(b"hello")
        out.append(await r.read())
        w.close()
        server.close()
        ours = await asyncio.start_server(echo, None, 8080, family=socket.AF_UNSPEC, flags=socket.AI_PASSIVE,
                                          backlog=100, reuse_address=None, reuse_port=None)
        assert ours.sockets[0].getsockname() == ("0.0.0.0", 8080)
        r, w = await p.peer.open_connection(A, 8080)
        w.write(b"back")
        out.append(await r.read())
        w.close()
        ours.close()
        await ours.wait_closed()
        return out

    out, _, loop = run(main)
    assert out == [b"hello!", b"back!"]
    assert loop.is_closed()
    with pytest.raises(RuntimeError, match="closed"):
        _ = loop.stack


def test_getaddrinfo_literals_and_the_stack_resolver() -> None:
    async def main(p: Peers) -> list[Any]:
        loop = asyncio.get_running_loop()
        out: list[Any] = [await loop.getaddrinfo(B, 80, type=socket.SOCK_STREAM),
                          len(await loop.getaddrinfo(B, "80")), await loop.getnameinfo((B, 80), socket.NI_NUMERICSERV)]
        with pytest.raises(socket.gaierror, match="no DNS servers configured"):  # the stack resolver, never the host's
            await loop.getaddrinfo("peer.test", 80)
        with pytest.raises(socket.gaierror):
            await loop.getaddrinfo(B, 80, family=socket.AF_INET6)
        asked: list[str] = []

        async def resolve(name: str) -> list[str]:  # what the resolver branch's Stack.resolve returns
            asked.append(name)
            return [B]

        loop.stack.resolve = resolve  # type: ignore[attr-defined]
        server = await p.peer.start_server(echo, None, 7)
        r, w = await asyncio.open_connection("peer.test", 7)
        w.write(b"by name")
        out += [await r.read(), asked]
        w.close()
        server.close()
        return out

    out, _, _ = run(main)
    assert out[0] == [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (B, 80))]
    assert out[1] == 3  # stream, datagram, raw: like the kernel's
    assert out[2] == (B, "80")
    assert out[3:] == [b"by name!", ["peer.test"]]


def test_sock_connect_then_create_connection_sock_is_aiohttps_path() -> None:
    async def main(p: Peers) -> list[Any]:
        loop = asyncio.get_running_loop()
        server = await p.peer.start_server(echo, None, 7)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        await loop.sock_connect(sock, (B, 7))
        with pytest.raises(OSError, match="already connected"):
            await loop.sock_connect(sock, (B, 7))
        r = asyncio.StreamReader()
        t, _ = await loop.create_connection(lambda: asyncio.StreamReaderProtocol(r), sock=sock)
        t.write(b"token")
        data = await r.read()
        open_before = sock.fileno() != -1
        t.close()
        await asyncio.sleep(0.05)
        out = [data, open_before, sock.fileno()]
        refused = socket.socket()
        refused.setblocking(False)
        with pytest.raises(ConnectionRefusedError):
            await loop.sock_connect(refused, (B, 9))
        refused.close()
        kernel = socket.socket()
        with pytest.raises(NotImplementedError, match="no kernel sockets"):
            await loop.sock_recv(kernel, 10)
        with pytest.raises(NotImplementedError, match="no kernel sockets"):
            await loop.create_connection(asyncio.Protocol, sock=kernel)
        with pytest.raises(NotImplementedError, match="no kernel sockets"):
            await loop.create_server(asyncio.Protocol, sock=kernel)
        kernel.close()
        a, b = socket.socketpair()  # Unix sockets stay the kernel's
        await loop.sock_sendall(a, b"unix")
        out.append(await loop.sock_recv(b, 10))
        a.close()
        b.close()
        server.close()
        return out

    out, _, _ = run(main)
    assert out == [b"token!", True, -1, b"unix"]


def test_a_token_socket_closed_unused_resets_its_connection() -> None:
    """Happy eyeballs closes the sockets whose connect lost: their tcpip connections must not linger."""
    async def main(p: Peers) -> tuple[list[str], list[str]]:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, StackNetwork)
        server = await p.peer.start_server(echo, None, 7)
        loser, winner = socket.socket(), socket.socket()
        for s in (loser, winner):
            s.setblocking(False)
            await loop.sock_connect(s, (B, 7))
        before = sorted(c.state for c in loop.stack.tcp_connections())
        loser.close()
        other = socket.socket()
        other.setblocking(False)
        await loop.sock_connect(other, (B, 7))  # the next sock_connect sweeps closed token sockets
        await asyncio.sleep(0.05)
        after = sorted(c.state for c in loop.stack.tcp_connections())
        for s in (winner, other):
            s.close()
        server.close()
        return before, after

    (before, after), _, _ = run(main)
    assert before == ["ESTABLISHED", "ESTABLISHED"]
    assert after == ["ESTABLISHED", "ESTABLISHED"]  # the loser's connection was reset, `other` took its place


def test_unbound_datagram_endpoint_then_sendto_as_dnspython_does() -> None:
    async def main(p: Peers) -> tuple[bytes, Any]:
        loop = asyncio.get_running_loop()
        await p.peer.udp_echo(7)
        got: asyncio.Future[tuple[bytes, Any]] = loop.create_future()

        class Proto(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                got.set_result((data, addr))

        t, _ = await loop.create_datagram_endpoint(Proto, local_addr=None, remote_addr=None,
                                                   family=socket.AF_INET, proto=0)
        t.sendto(b"query", (B, 7))
        res = await got
        t.close()
        return res

    (data, addr), _, _ = run(main)
    assert (data, addr) == (b"query", (B, 7))


def test_unsupported_arguments_name_themselves() -> None:
    async def main(p: Peers) -> None:
        loop = asyncio.get_running_loop()
        with pytest.raises(NotImplementedError, match="keep_alive"):
            await loop.create_server(asyncio.Protocol, None, 80, keep_alive=True)
        with pytest.raises(NotImplementedError, match="reuse_port"):
            await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=(A, 53), reuse_port=True)
        with pytest.raises(NotImplementedError, match="no kernel sockets"):
            await loop.sock_connect(socket.socket(socket.AF_INET, socket.SOCK_DGRAM), (B, 53))

    run(main)


def test_importing_tcpip_changes_no_loop() -> None:
    code = ("import asyncio, tcpip, tcpip.loop, tcpip.cli\n"
            "loop = asyncio.new_event_loop()\n"
            "print(type(asyncio.get_event_loop_policy()).__name__, type(loop).__name__)\n"
            "async def main() -> str:\n"
            "    return type(asyncio.get_running_loop()).__name__\n"
            "print(asyncio.run(main()))\n")
    src = str(Path(__file__).resolve().parents[2] / "src")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
                       env={"PYTHONPATH": src, "PATH": "/usr/bin:/bin"}, check=False)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["_UnixDefaultEventLoopPolicy", "_UnixSelectorEventLoop", "_UnixSelectorEventLoop"]
