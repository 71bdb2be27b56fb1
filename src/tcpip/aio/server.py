"""TcpServer: tcpip listeners behind asyncio.Server's surface, and create_server / start_server."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl as ssl_module
from asyncio import sslproto
from collections.abc import Awaitable, Callable, Iterable
from ipaddress import IPv4Address
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from tcpip.aio.driver import TcpDriver
from tcpip.aio.reader import ChunkReader
from tcpip.aio.tcp import check_family, check_sock, parse_host, parse_port, ssl_context
from tcpip.aio.transport import TcpTransport
from tcpip.wire.ipv4 import ip_str

if TYPE_CHECKING:
    from tcpip.core.tcp.conn import Connection
    from tcpip.core.tcp.listener import Listener
    from tcpip.stack import Stack

log = logging.getLogger("tcpip.tcp")
Host = str | IPv4Address | None
ClientConnected = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None] | None]


class TcpSocket:
    """An entry of `TcpServer.sockets`: enough of a socket for code that reads the bound address."""

    family = socket.AF_INET
    type = socket.SOCK_STREAM
    proto = socket.IPPROTO_TCP

    def __init__(self, addr: int, port: int) -> None:
        self._name = (ip_str(addr), port)

    def getsockname(self) -> tuple[str, int]:
        return self._name

    def fileno(self) -> int:
        return -1

    def __repr__(self) -> str:
        return f"<TcpSocket laddr={self._name}>"


class TcpServer(asyncio.AbstractServer):
    """asyncio.Server over tcpip listeners: wait_closed() has 3.12 semantics (returns once the server is
    closed and every accepted connection is gone); close_clients()/abort_clients() as in 3.13."""

    def __init__(self, driver: TcpDriver, listeners: list[Listener],
                 factory: Callable[[], asyncio.BaseProtocol], ctx: ssl_module.SSLContext | None,
                 ssl_handshake_timeout: float | None, ssl_shutdown_timeout: float | None) -> None:
        self._driver = driver
        self._loop = driver.loop
        self._listeners: list[Listener] | None = listeners
        self._sockets = tuple(TcpSocket(x.addr, x.port) for x in listeners)
        self._factory = factory
        self._ssl = ctx
        # (typeshed says int; asyncio takes seconds as float)
        self._ssl_timeouts: dict[str, Any] = {"ssl_handshake_timeout": ssl_handshake_timeout,
                                              "ssl_shutdown_timeout": ssl_shutdown_timeout}
        self._serving = False
        self._clients: set[TcpTransport] = set()
        self._waiters: list[asyncio.Future[None]] | None = []
        self._serving_forever_fut: asyncio.Future[None] | None = None
        for x in listeners:
            driver.servers[id(x)] = self

    def __repr__(self) -> str:
        return f"<TcpServer sockets={self.sockets!r}>"

    # -- accepted connections -------------------------------------------------------------------------
    def attach(self, t: TcpTransport) -> None:
        self._clients.add(t)

    def detach(self, t: TcpTransport) -> None:
        self._clients.discard(t)
        if not self._clients and self._listeners is None:
            self._wakeup()

    def _wakeup(self) -> None:
        waiters, self._waiters = self._waiters, None
        for w in waiters or ():
            if not w.done():
                w.set_result(None)

    def accept_ready(self, listener: Listener) -> None:
        """Take every established connection from the listener's accept queue (while serving)."""
        if not self._serving:
            return  # they wait in the accept queue (bounded by backlog) until start_serving()
        while (conn := listener.accept()) is not None:
            self._accept(conn)

    def _accept(self, conn: Connection) -> None:
        t = TcpTransport(self._driver, conn, self)
        try:
            protocol = self._factory()
        except Exception as exc:
            self._loop.call_exception_handler({"message": "Error in protocol_factory of a tcpip server",
                                               "exception": exc})
            t._force_close(exc)
            return
        if self._ssl is None:
            t.start(protocol, None)
            return
        waiter: asyncio.Future[None] = self._loop.create_future()
        tls = sslproto.SSLProtocol(self._loop, protocol, self._ssl, waiter, server_side=True,
                                   **self._ssl_timeouts)
        waiter.add_done_callback(lambda w: _handshake_done(w, t))
        t.start(tls, None)

    # -- asyncio.AbstractServer -------------------------------------------------------------------------
    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return self._serving

    @property
    def sockets(self) -> tuple[TcpSocket, ...]:
        return () if self._listeners is None else self._sockets

    def close(self) -> None:
        """Stop listening (connections not yet accepted are reset); accepted ones stay open."""
        listeners, self._listeners = self._listeners, None
        if listeners is None:
            return
        d = self._driver
        now = d.now()
        for x in listeners:
            d.servers.pop(id(x), None)
            x.close(now)
        d.kick()
        self._serving = False
        fut, self._serving_forever_fut = self._serving_forever_fut, None
        if fut is not None and not fut.done():
            fut.cancel()
        if not self._clients:
            self._wakeup()

    def close_clients(self) -> None:
        for t in list(self._clients):
            t.close()

    def abort_clients(self) -> None:
        for t in list(self._clients):
            t.abort()

    def _start_serving(self) -> None:
        if self._serving:
            return
        listeners = self._listeners
        if listeners is None:
            raise RuntimeError(f"server {self!r} is closed")
        self._serving = True
        for x in listeners:
            self.accept_ready(x)

    async def start_serving(self) -> None:
        self._start_serving()
        await asyncio.sleep(0)

    async def serve_forever(self) -> None:
        if self._serving_forever_fut is not None:
            raise RuntimeError(f"server {self!r} is already being awaited on serve_forever()")
        if self._listeners is None:
            raise RuntimeError(f"server {self!r} is closed")
        self._start_serving()
        self._serving_forever_fut = fut = self._loop.create_future()
        try:
            await fut
        except asyncio.CancelledError:
            try:
                self.close()
                await self.wait_closed()
            finally:
                raise
        finally:
            self._serving_forever_fut = None

    async def wait_closed(self) -> None:
        """Return once close() was called and every accepted connection has been lost."""
        if self._waiters is None:
            return
        w: asyncio.Future[None] = self._loop.create_future()
        self._waiters.append(w)
        await w

    async def __aenter__(self) -> TcpServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        await self.wait_closed()


def _handshake_done(waiter: asyncio.Future[None], t: TcpTransport) -> None:
    if waiter.cancelled():
        return
    exc = waiter.exception()
    if exc is not None:  # asyncio logs these at debug level too: a client's failed handshake
        log.debug("TLS handshake with %s failed: %r", t.get_extra_info("peername"), exc)
        t.abort()


def _hosts(hosts: list[Host]) -> list[int]:
    """Each distinct address to listen on; None or "" is every local address (0)."""
    out: list[int] = []
    for h in hosts:
        a = 0 if h is None or h == "" else parse_host(h)
        if a not in out:
            out.append(a)
    return out


class ServerOptions(TypedDict, total=False):
    """The keyword arguments of `loop.create_server` that `start_server` passes on."""

    family: int
    flags: int
    sock: socket.socket | None
    backlog: int
    ssl: ssl_module.SSLContext | None
    reuse_address: bool | None
    reuse_port: bool | None
    keep_alive: bool | None
    ssl_handshake_timeout: float | None
    ssl_shutdown_timeout: float | None
    start_serving: bool


async def create_server(stack: Stack, protocol_factory: Callable[[], asyncio.BaseProtocol],
                        host: Host | Iterable[Host] = None, port: int | str | None = 0, *,
                        family: int = socket.AF_UNSPEC, flags: int = socket.AI_PASSIVE,
                        sock: socket.socket | None = None, backlog: int = 128,
                        ssl: ssl_module.SSLContext | None = None, reuse_address: bool | None = None,
                        reuse_port: bool | None = None, keep_alive: bool | None = None,
                        ssl_handshake_timeout: float | None = None, ssl_shutdown_timeout: float | None = None,
                        start_serving: bool = True) -> TcpServer:
    """`loop.create_server` over this stack. host None: every local address; port 0: ephemeral (see
    `server.sockets[0].getsockname()`). A port already listening raises OSError EADDRINUSE.
    `flags` only steers name resolution (tcpip takes IP literals); `reuse_address` changes nothing
    (TIME_WAIT connections never block a listener here); `reuse_port=True` is accepted but cannot
    share a port between two servers; `keep_alive=True` (3.13) is not implemented."""
    if isinstance(ssl, bool):
        raise TypeError("ssl argument must be an SSLContext or None")
    if ssl_handshake_timeout is not None and ssl is None:
        raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
    if ssl_shutdown_timeout is not None and ssl is None:
        raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")
    check_sock(sock, host, port)
    if keep_alive:
        raise NotImplementedError("keep_alive=True: tcpip has no TCP keep-alive timer")
    hosts = list(host) if host is not None and not isinstance(host, str | IPv4Address) else [host]
    for h in hosts:
        check_family(family, h or None)
    ctx = ssl_context(ssl, server_side=True)
    p = parse_port(port or 0)
    driver = stack.tcp
    addrs = _hosts(hosts)
    for a in addrs:
        if a and a != driver.iface.addr:
            raise OSError(errno.EADDRNOTAVAIL, f"Cannot assign requested address: {ip_str(a)}")
    listeners: list[Listener] = []
    try:
        for a in addrs:
            listeners.append(driver.layer.listen(a, p, backlog))  # noqa: PERF401 (kept for cleanup)
    except BaseException as e:
        for x in listeners:
            x.close(driver.now())
        if reuse_port and isinstance(e, OSError) and e.errno == errno.EADDRINUSE:
            raise NotImplementedError(f"reuse_port=True: tcpip cannot share port {p} between listeners") from e
        raise
    server = TcpServer(driver, listeners, protocol_factory, ctx, ssl_handshake_timeout,
                       ssl_shutdown_timeout)
    if start_serving:
        server._start_serving()
        await asyncio.sleep(0)
    return server


async def start_server(stack: Stack, client_connected_cb: ClientConnected, host: Host | Iterable[Host] = None,
                       port: int | str | None = 0, *, limit: int = 2**16, **kwds: Unpack[ServerOptions],
                       ) -> TcpServer:
    """`asyncio.start_server` over this stack: `client_connected_cb(reader, writer)` per connection."""
    loop = asyncio.get_running_loop()

    def factory() -> asyncio.StreamReaderProtocol:
        reader = ChunkReader(limit=limit, loop=loop)  # an asyncio.StreamReader that copies less
        return asyncio.StreamReaderProtocol(reader, client_connected_cb, loop=loop)

    return await create_server(stack, factory, host, port, **kwds)


__all__ = ["ServerOptions", "TcpServer", "TcpSocket", "create_server", "start_server"]
