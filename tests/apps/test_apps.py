"""The TCP applications (echo, discard, HTTP on h11) over asyncio's own kernel sockets on 127.0.0.1:
byte-exact results, half-close, keep-alive, the /bytes/N body and its bounded streaming."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import shutil
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import h11
import pytest

from tcpip.apps import MAX_BYTES, body_chunks, http_handler, status_page, tcp_discard, tcp_echo
from tcpip.apps.stream import Handler

PAGE = "tcpip\ncounters: test\n"


def expected_body(n: int) -> bytes:
    return (bytes(range(251)) * (n // 251 + 1))[:n]


class Tracked:
    """Wraps a handler: counts finished runs and records the largest single write and exceptions."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.done = 0
        self.finished = asyncio.Event()
        self.errors: list[BaseException] = []
        self.max_write = 0

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        spy = self

        class SpyWriter:
            def __getattr__(self, name: str) -> Any:
                return getattr(writer, name)

            def write(self, data: bytes) -> None:
                spy.max_write = max(spy.max_write, len(data))
                writer.write(data)

        try:
            await self.handler(reader, SpyWriter())  # type: ignore[arg-type]
        except BaseException as e:
            self.errors.append(e)
            raise
        finally:
            self.done += 1
            self.finished.set()


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[tuple[int, Tracked]]:
    t = Tracked(handler)
    server = await asyncio.start_server(t, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], t
    finally:
        server.close()
        await server.wait_closed()


async def read_all(reader: asyncio.StreamReader) -> bytes:
    out = bytearray()
    while chunk := await reader.read(1 << 16):
        out += chunk
    return bytes(out)


# -- echo --------------------------------------------------------------------------------------------
async def test_echo_one_mebibyte_then_fin() -> None:
    data = os.urandom(1 << 20)
    async with serving(tcp_echo) as (port, t):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)

        async def send() -> None:
            for i in range(0, len(data), 10000):
                writer.write(data[i:i + 10000])
                await writer.drain()
            writer.write_eof()

        _, got = await asyncio.gather(send(), read_all(reader))
        assert got == data
        assert reader.at_eof()
        writer.close()
        await asyncio.wait_for(t.finished.wait(), 5)
    assert t.done == 1
    assert t.errors == []


async def test_echo_returns_data_that_came_with_the_fin() -> None:
    """One segment carrying data and FIN (write then shutdown at once): every byte still comes back."""
    async with serving(tcp_echo) as (port, t):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)  # data and FIN leave together
        s.sendall(b"last words")
        s.shutdown(socket.SHUT_WR)
        s.settimeout(5)
        got = b""
        while chunk := await asyncio.to_thread(s.recv, 4096):
            got += chunk
        s.close()
        assert got == b"last words"
        await asyncio.wait_for(t.finished.wait(), 5)
    assert t.errors == []


async def test_echo_client_fin_without_data() -> None:
    async with serving(tcp_echo) as (port, t):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        await asyncio.wait_for(t.finished.wait(), 5)
    assert t.done == 1


async def test_echo_survives_a_reset() -> None:
    async with serving(tcp_echo) as (port, t):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"x" * 100000)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()  # RST: unread echoed bytes pending
        await asyncio.wait_for(t.finished.wait(), 5)
    assert t.errors == []


# -- discard -----------------------------------------------------------------------------------------
async def test_discard_reads_everything_sends_nothing() -> None:
    async with serving(tcp_discard) as (port, t):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(64):
            writer.write(b"\xa5" * 65536)
            await writer.drain()
        assert not reader.at_eof()
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # FIN, and no data before it
        writer.close()
        await asyncio.wait_for(t.finished.wait(), 5)
    assert t.max_write == 0
    assert t.errors == []


async def test_discard_keeps_the_connection_open_until_the_peer_fin() -> None:
    async with serving(tcp_discard) as (port, t):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"hello")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(1), 0.2)
        assert t.done == 0
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        await asyncio.wait_for(t.finished.wait(), 5)


# -- HTTP --------------------------------------------------------------------------------------------
class Client:
    """A keep-alive h11 client on one connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.conn = h11.Connection(h11.CLIENT)

    async def next_event(self) -> Any:
        while True:
            ev = self.conn.next_event()
            if ev is not h11.NEED_DATA:
                return ev
            self.conn.receive_data(await asyncio.wait_for(self.reader.read(1 << 16), 10))

    async def request(self, target: str, *, method: str = "GET", close: bool = False,
                      sink: Callable[[bytes], None] | None = None) -> tuple[h11.Response, bytes]:
        headers = [("Host", "test")] + ([("Connection", "close")] if close else [])
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
        self.writer.write(self.conn.send(h11.Request(method=method, target=target, headers=headers))
                          + self.conn.send(h11.EndOfMessage()))
        resp = await self.next_event()
        assert isinstance(resp, h11.Response), resp
        body = bytearray()
        while not isinstance(ev := await self.next_event(), h11.EndOfMessage):
            assert isinstance(ev, h11.Data)
            if sink is not None:
                sink(bytes(ev.data))
            else:
                body += ev.data
        return resp, bytes(body)


@asynccontextmanager
async def http_client() -> AsyncIterator[tuple[Client, Tracked]]:
    async with serving(http_handler(lambda: PAGE)) as (port, t):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            yield Client(reader, writer), t
        finally:
            writer.close()
            await asyncio.wait_for(t.finished.wait(), 5)
            assert t.errors == []


def header(resp: h11.Response, name: bytes) -> bytes:
    (v,) = [v for k, v in resp.headers if k == name.lower()]
    return v


async def test_http_keep_alive_page_bytes_and_404_on_one_connection() -> None:
    async with http_client() as (c, t):
        resp, body = await c.request("/")
        assert resp.status_code == 200
        assert header(resp, b"content-type").startswith(b"text/plain")
        assert body == PAGE.encode()
        for n in (0, 1, 250, 251, 252, 64256, 64257, 1_000_003):
            resp, body = await c.request(f"/bytes/{n}")
            assert resp.status_code == 200
            assert header(resp, b"content-type") == b"application/octet-stream"
            assert header(resp, b"content-length") == str(n).encode()
            assert body == expected_body(n)
        for bad in ("/nope", "/bytes/", "/bytes/x", "/bytes/-1", f"/bytes/{MAX_BYTES + 1}", "/bytes/1/2"):
            resp, body = await c.request(bad)
            assert (resp.status_code, resp.reason, body) == (404, b"Not Found", b"not found\n"), bad
        resp, body = await c.request("/", method="POST")
        assert resp.status_code == 404
        resp, body = await c.request("/bytes/1000", method="HEAD")
        assert (resp.status_code, header(resp, b"content-length"), body) == (200, b"1000", b"")
        resp, body = await c.request("/bytes/7?x=1")
        assert body == bytes(range(7))
        assert t.done == 0  # all on one connection
        # the client closes its side: the server finishes and closes too
        c.writer.write_eof()
        assert await asyncio.wait_for(c.reader.read(), 5) == b""
        await asyncio.wait_for(t.finished.wait(), 5)


async def test_http_connection_close_is_honoured() -> None:
    async with http_client() as (c, t):
        resp, body = await c.request("/bytes/10", close=True)
        assert body == bytes(range(10))
        assert header(resp, b"connection") == b"close"
        assert await asyncio.wait_for(c.reader.read(), 5) == b""
        await asyncio.wait_for(t.finished.wait(), 5)


async def test_http_large_body_is_streamed_in_bounded_chunks() -> None:
    n = 30_000_003
    h = hashlib.sha256()
    async with http_client() as (c, t):
        resp, _ = await c.request(f"/bytes/{n}", sink=h.update)
        assert header(resp, b"content-length") == str(n).encode()
    assert h.digest() == hashlib.sha256(expected_body(n)).digest()
    assert 0 < t.max_write <= 64256 + 512  # one chunk (plus headers), never the whole body


async def test_http_gigabyte_request_and_client_goes_away() -> None:
    """N = 10**9 is accepted and streamed; a client that leaves mid-body ends the handler quietly."""
    async with http_client() as (c, t):
        c.writer.write(b"GET /bytes/1000000000 HTTP/1.1\r\nHost: t\r\n\r\n")
        head = await asyncio.wait_for(c.reader.readuntil(b"\r\n\r\n"), 5)
        assert b"Content-Length: 1000000000" in head
        first = await asyncio.wait_for(c.reader.readexactly(100000), 5)
        assert first == expected_body(100000)
        c.writer.transport.abort()
        await asyncio.wait_for(t.finished.wait(), 5)
    assert t.max_write <= 64256 + 512


async def test_http_garbage_gets_400_and_close() -> None:
    async with http_client() as (c, t):
        c.writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        data = await asyncio.wait_for(c.reader.read(), 5)
        assert data.startswith(b"HTTP/1.1 400 ")
        await asyncio.wait_for(t.finished.wait(), 5)


async def test_http_pipelined_requests_answered_in_order() -> None:
    async with http_client() as (c, _):
        c.writer.write(b"GET /bytes/3 HTTP/1.1\r\nHost: t\r\n\r\nGET /bytes/5 HTTP/1.1\r\nHost: t\r\n"
                       b"Connection: close\r\n\r\n")
        data = await asyncio.wait_for(c.reader.read(), 5)
        assert data.count(b"HTTP/1.1 200 ") == 2
        assert data.endswith(b"\r\n\r\n\x00\x01\x02\x03\x04")
        assert b"\r\n\r\n\x00\x01\x02HTTP/1.1 200" in data


def test_body_chunks_cover_the_pattern() -> None:
    assert b"".join(body_chunks(5000, 502)) == expected_body(5000)
    assert [len(c) for c in body_chunks(1004, 502)] == [502, 502]
    assert list(body_chunks(0)) == []
    with pytest.raises(ValueError, match="multiple"):
        list(body_chunks(10, 500))


def test_status_page_lists_counters_and_connections() -> None:
    class Fake:
        def stats(self) -> dict[str, dict[str, int]]:
            return {"ipv4": {"rx": 3, "tx": 0}, "tcp": {"ActiveOpens": 0}}

        def tcp_connections(self) -> list[str]:
            return ["198.18.0.2:80 198.18.0.1:40000 ESTABLISHED"]

    page = status_page(Fake())
    assert "  ipv4      rx=3\n" in page
    assert "  tcp       -\n" in page
    assert "tcp connections: 1\n  198.18.0.2:80 198.18.0.1:40000 ESTABLISHED\n" in page


def test_status_page_formats_connection_rows_like_ss() -> None:
    @dataclasses.dataclass
    class Row:
        local_addr: int
        local_port: int
        remote_addr: int
        remote_port: int
        state: str
        recv_q: int
        send_q: int
        cwnd: int = 0
        srtt: float = 0.0

    class Fake:
        def stats(self) -> dict[str, dict[str, int]]:
            return {}

        def tcp_connections(self) -> list[Row]:
            return [Row(0, 80, 0, 0, "LISTEN", 0, 128),
                    Row(0xC6120002, 80, 0xC6120001, 40000, "ESTABLISHED", 5, 7, 14480, 0.0004)]

    lines = status_page(Fake()).splitlines()
    assert lines[-3:] == [
        "  State         Recv-Q  Send-Q Local                 Peer                  details",
        "  LISTEN             0     128 0.0.0.0:80            0.0.0.0:*             cwnd=0 srtt=0.000ms",
        "  ESTABLISHED        5       7 198.18.0.2:80         198.18.0.1:40000      cwnd=14480 srtt=0.400ms",
    ]


# -- curl, when installed ------------------------------------------------------------------------------
async def test_curl_keep_alive_and_sha256() -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    async with serving(http_handler(lambda: PAGE)) as (port, t):
        base = f"http://127.0.0.1:{port}"
        p = await asyncio.create_subprocess_exec(
            "curl", "-sS", "-v", "--fail", f"{base}/", f"{base}/bytes/2000000", "-o", "/dev/null", "-o", "-",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(p.communicate(), 30)
        assert p.returncode == 0, err
        assert hashlib.sha256(out).hexdigest() == hashlib.sha256(expected_body(2000000)).hexdigest()
        assert b"Re-using existing connection" in err or b"Reusing existing connection" in err
        p = await asyncio.create_subprocess_exec(
            "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", f"{base}/missing",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, _ = await asyncio.wait_for(p.communicate(), 30)
        assert out == b"404"
        await asyncio.wait_for(t.finished.wait(), 5)
