"""An HTTP/1.1 server with keep-alive on h11 (the optional `tcpip[http]` extra, imported on first use):
`GET /` shows a status page, `GET /bytes/N` streams N verifiable bytes (byte k is k % 251), else 404."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import http
import ipaddress
import logging
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from tcpip.apps.stream import Handler, finish

if TYPE_CHECKING:
    import h11

log = logging.getLogger(__name__)

MAX_BYTES = 10**9
PERIOD = 251
CHUNK = PERIOD * 256  # 64256: every chunk starts at a multiple of 251, so all full chunks are the same bytes
_PATTERN = bytes(range(PERIOD)) * (CHUNK // PERIOD)
_BYTES_PATH = re.compile(rb"/bytes/(\d{1,10})")
SERVER = b"tcpip"


def body_chunks(n: int, chunk: int = CHUNK) -> Iterator[bytes]:
    """The body of /bytes/n in pieces of at most `chunk` bytes (a multiple of 251), byte k = k % 251."""
    if chunk % PERIOD or not 0 < chunk <= CHUNK:
        raise ValueError(f"chunk must be a positive multiple of {PERIOD} up to {CHUNK}")
    block = _PATTERN[:chunk]
    full, rest = divmod(n, chunk)
    for _ in range(full):
        yield block
    if rest:
        yield block[:rest]


class StatusSource(Protocol):
    def stats(self) -> dict[str, dict[str, int]]: ...


def status_page(stack: StatusSource) -> str:
    """Plain-text page: every non-zero counter by layer, then the open TCP connections (like `ss -tin`)
    when the stack lists them."""
    lines = ["tcpip", "", "counters:"]
    for layer, counters in stack.stats().items():
        nz = " ".join(f"{k}={v}" for k, v in counters.items() if v)
        lines.append(f"  {layer:<9} {nz}" if nz else f"  {layer:<9} -")
    listing: Callable[[], list[Any]] | None = getattr(stack, "tcp_connections", None)
    conns = listing() if listing is not None else []
    lines += ["", f"tcp connections: {len(conns)}"]
    if conns and all(hasattr(c, f) for c in conns for f in _SS_FIELDS):
        lines.append(f"  {'State':<12} {'Recv-Q':>7} {'Send-Q':>7} {'Local':<21} {'Peer':<21} details")
        lines += [_ss_row(c) for c in conns]
    else:
        lines += [f"  {c}" for c in conns]
    return "\n".join(lines) + "\n"


_SS_FIELDS = ("state", "recv_q", "send_q", "local_addr", "local_port", "remote_addr", "remote_port")


def _ss_row(c: Any) -> str:
    """One connection like a line of `ss -tin`: state, queues, endpoints, then the other fields."""
    def ep(addr: int | str, port: int) -> str:
        return f"{ipaddress.ip_address(addr) if isinstance(addr, int) else addr}:{port if port else '*'}"

    extra = ""
    if dataclasses.is_dataclass(c) and not isinstance(c, type):
        rest = [(f.name, getattr(c, f.name)) for f in dataclasses.fields(c) if f.name not in _SS_FIELDS]
        # float fields of a connection row are times in seconds: shown in ms, as ss(8) does
        extra = " ".join(f"{k}={v * 1000:.3f}ms" if isinstance(v, float) else f"{k}={v}" for k, v in rest)
    return (f"  {c.state:<12} {c.recv_q:>7} {c.send_q:>7} {ep(c.local_addr, c.local_port):<21} "
            f"{ep(c.remote_addr, c.remote_port):<21} {extra}").rstrip()


def http_handler(page: Callable[[], str]) -> Handler:
    """A stream handler serving HTTP/1.1 with keep-alive; `page()` is the body of `GET /`."""
    import h11  # noqa: PLC0415 - optional dependency (tcpip[http])

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            await _serve(conn, reader, writer, page)
        except h11.RemoteProtocolError as e:
            log.debug("http %s: %s", writer.get_extra_info("peername"), e)
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                with contextlib.suppress(ConnectionError, h11.LocalProtocolError):
                    await _simple(conn, writer, e.error_status_hint, f"{e}\n".encode(), head=False)
        except ConnectionError as e:
            log.debug("http %s: %r", writer.get_extra_info("peername"), e)
        finally:
            await finish(writer)

    return handler


async def _serve(conn: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 page: Callable[[], str]) -> None:
    import h11  # noqa: PLC0415

    request: h11.Request | None = None
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await reader.read(1 << 16))  # b"" = the client closed its side
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.EndOfMessage) and request is not None:
            await _respond(conn, writer, request, page)
            request = None
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return  # Connection: close, HTTP/1.0, or the client is gone
            conn.start_next_cycle()
        elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            return
        # h11.Data (a request body) is read and ignored


async def _respond(conn: h11.Connection, writer: asyncio.StreamWriter, req: h11.Request,
                   page: Callable[[], str]) -> None:
    import h11  # noqa: PLC0415

    head = req.method == b"HEAD"
    path = req.target.split(b"?", 1)[0]
    m = _BYTES_PATH.fullmatch(path)
    if req.method not in (b"GET", b"HEAD"):
        await _simple(conn, writer, 404, b"not found\n", head=False)
    elif path == b"/":
        await _simple(conn, writer, 200, page().encode(), head=head)
    elif m is not None and int(m.group(1)) <= MAX_BYTES:
        n = int(m.group(1))
        writer.write(conn.send(h11.Response(status_code=200, reason=b"OK", headers=[
            (b"Content-Type", b"application/octet-stream"), (b"Content-Length", str(n).encode()),
            (b"Server", SERVER)])))
        if not head:
            for chunk in body_chunks(n):
                writer.write(conn.send(h11.Data(data=chunk)))
                await writer.drain()  # never more than a chunk beyond the high-water mark
        writer.write(conn.send(h11.EndOfMessage()))
        await writer.drain()
    else:
        await _simple(conn, writer, 404, b"not found\n", head=head)


async def _simple(conn: h11.Connection, writer: asyncio.StreamWriter, status: int, body: bytes, *,
                  head: bool) -> None:
    import h11  # noqa: PLC0415

    ctype = b"text/plain; charset=utf-8"
    reason = http.HTTPStatus(status).phrase.encode()
    writer.write(conn.send(h11.Response(status_code=status, reason=reason, headers=[
        (b"Content-Type", ctype), (b"Content-Length", str(len(body)).encode()), (b"Server", SERVER)])))
    if not head:
        writer.write(conn.send(h11.Data(data=body)))
    writer.write(conn.send(h11.EndOfMessage()))
    await writer.drain()
