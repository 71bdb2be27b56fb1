"""The client side of asyncio TCP over tcpip (create_connection, open_connection) and address parsing."""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl as ssl_module
from asyncio import sslproto
from collections.abc import Callable
from ipaddress import IPv4Address
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar, Unpack

from tcpip.aio.reader import ChunkReader
from tcpip.aio.transport import TcpTransport
from tcpip.errors import NoRouteError
from tcpip.wire.ipv4 import ip_str

if TYPE_CHECKING:
    from tcpip.aio.driver import TcpDriver
    from tcpip.stack import Stack

P = TypeVar("P", bound=asyncio.BaseProtocol)
SslArg = ssl_module.SSLContext | bool | None


# -- addresses ---------------------------------------------------------------------------------------
def parse_host(host: str | IPv4Address) -> int:
    """An IPv4 literal as an int. tcpip resolves no names (and never asks the host's resolver)."""
    if isinstance(host, IPv4Address):
        return int(host)
    if not isinstance(host, str):
        raise TypeError(f"host must be an IPv4 address string, got {host!r}")
    try:
        return int(IPv4Address(host))
    except ValueError:
        raise socket.gaierror(socket.EAI_NONAME, f"{host!r} is not an IPv4 address literal "
                              "(tcpip does no name resolution)") from None


async def resolve_host(stack: Stack, host: str | IPv4Address) -> int:
    """An IPv4 literal, or a name resolved through the stack's own resolver (never the host machine's)."""
    if isinstance(host, str):
        try:
            return int(IPv4Address(host))
        except ValueError:
            return int((await stack.resolve(host))[0])
    return parse_host(host)


def parse_port(port: int | str) -> int:
    if isinstance(port, str) and port.isdigit():
        port = int(port)
    if not isinstance(port, int) or isinstance(port, bool):
        raise TypeError(f"port must be an int, got {port!r}")
    if not 0 <= port <= 65535:
        raise OverflowError(f"port must be 0-65535, got {port}")
    return port


def ssl_context(ssl: SslArg, server_side: bool) -> ssl_module.SSLContext | None:
    if ssl is None or ssl is False:
        return None
    if ssl is True:
        purpose = ssl_module.Purpose.CLIENT_AUTH if server_side else ssl_module.Purpose.SERVER_AUTH
        return ssl_module.create_default_context(purpose)
    if not isinstance(ssl, ssl_module.SSLContext):
        raise TypeError(f"ssl must be an SSLContext, True or None, got {ssl!r}")
    return ssl


# -- arguments asyncio accepts -----------------------------------------------------------------------
def check_family(family: int, host: object) -> None:
    """`family` as getaddrinfo(3) judges it for the IPv4 literal `host` (the errors asyncio raises)."""
    if family in (socket.AF_UNSPEC, socket.AF_INET):
        return
    if family == socket.AF_INET6:
        if host is None:
            raise NotImplementedError("family=AF_INET6: tcpip is IPv4-only")
        raise socket.gaierror(socket.EAI_ADDRFAMILY, "Address family for hostname not supported")
    raise socket.gaierror(socket.EAI_FAMILY, "ai_family not supported")


def check_sock(sock: object, host: object, port: object) -> None:
    """asyncio's checks of `sock=`; tcpip cannot take a kernel socket over."""
    if sock is None:
        return
    if host is not None or port:
        raise ValueError("host/port and sock can not be specified at the same time")
    raise NotImplementedError("sock=: tcpip cannot adopt a kernel socket; pass host and port")


class ConnectOptions(TypedDict, total=False):
    """The keyword arguments of `loop.create_connection` that `open_connection` passes on."""

    ssl: SslArg
    family: int
    proto: int
    flags: int
    sock: socket.socket | None
    local_addr: tuple[str | IPv4Address | None, int] | None
    server_hostname: str | None
    ssl_handshake_timeout: float | None
    ssl_shutdown_timeout: float | None
    happy_eyeballs_delay: float | None
    interleave: int | None
    all_errors: bool


# -- client side ---------------------------------------------------------------------------------------
async def create_connection(stack: Stack, protocol_factory: Callable[[], P],
                            host: str | IPv4Address | None = None, port: int | str | None = None, *,
                            ssl: SslArg = None, family: int = 0, proto: int = 0, flags: int = 0,
                            sock: socket.socket | None = None,
                            local_addr: tuple[str | IPv4Address | None, int] | None = None,
                            server_hostname: str | None = None, ssl_handshake_timeout: float | None = None,
                            ssl_shutdown_timeout: float | None = None,
                            happy_eyeballs_delay: float | None = None, interleave: int | None = None,
                            all_errors: bool = False) -> tuple[asyncio.Transport, P]:
    """`loop.create_connection` over this stack: (transport, protocol) once connected (and TLS done).
    With one address per host (IP literals only), `proto`, `flags`, `happy_eyeballs_delay` and
    `interleave` change nothing, as in asyncio; `all_errors=True` raises an ExceptionGroup (3.12)."""
    if server_hostname is not None and not ssl:
        raise ValueError("server_hostname is only meaningful with ssl")
    if server_hostname is None and ssl:
        if not host:
            raise ValueError("You must set server_hostname when using ssl without a host")
        server_hostname = str(host)
    if ssl_handshake_timeout is not None and not ssl:
        raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
    if ssl_shutdown_timeout is not None and not ssl:
        raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")
    if host is None and port is None and sock is None:
        raise ValueError("host and port was not specified and no sock specified")
    check_sock(sock, host, port)
    if host is None:  # asyncio would connect to the host machine's loopback address
        raise NotImplementedError("host=None: tcpip has no loopback interface; pass the peer's address")
    check_family(family, host)
    ctx = ssl_context(ssl, server_side=False)
    dport = parse_port(port or 0)
    dst = await resolve_host(stack, host)
    driver = stack.tcp
    try:
        transport = await _connect(driver, local_addr, dst, dport)
    except OSError as e:
        if all_errors:
            raise ExceptionGroup("create_connection failed", [e]) from None
        raise
    try:
        protocol = protocol_factory()
    except BaseException:
        transport.abandon()
        raise
    waiter: asyncio.Future[None] = driver.loop.create_future()
    if ctx is None:
        transport.start(protocol, waiter)
        try:
            await waiter
        except BaseException:
            transport.abort()
            raise
        return transport, protocol
    timeouts: dict[str, Any] = {"ssl_handshake_timeout": ssl_handshake_timeout,  # typeshed says int
                                "ssl_shutdown_timeout": ssl_shutdown_timeout}
    tls = sslproto.SSLProtocol(driver.loop, protocol, ctx, waiter, server_side=False,
                               server_hostname=server_hostname, **timeouts)
    transport.start(tls, None)
    try:
        await waiter
    except BaseException:
        transport.abort()
        raise
    return tls._app_transport, protocol


async def _connect(driver: TcpDriver, local_addr: tuple[str | IPv4Address | None, int] | None, dst: int,
                   dport: int) -> TcpTransport:
    """The active open (the OSErrors connect(2) gives): a transport without a protocol once established."""
    iface = driver.iface
    src, sport = iface.routing.source(dst), 0
    if local_addr is not None:
        lhost, sport = local_addr[0], parse_port(local_addr[1])
        lsrc = parse_host(lhost) if lhost not in (None, "") else 0
        if lsrc and lsrc not in iface.routing.locals:
            raise OSError(errno.EADDRNOTAVAIL, f"Cannot assign requested address: {ip_str(lsrc)}")
        src = lsrc or src
    if not src:
        raise OSError(errno.ENETUNREACH, "Network is unreachable: no IPv4 address configured")
    if not dst or dst >> 28 >= 0xE or dst == iface.bcast:
        raise OSError(errno.ENETUNREACH, f"Network is unreachable: {ip_str(dst)} is not a unicast address")
    try:
        iface.next_hop(dst)
    except NoRouteError as e:
        raise OSError(errno.ENETUNREACH, f"Network is unreachable: {e}") from e
    conn = driver.connect(src, sport, dst, dport)
    transport = TcpTransport(driver, conn)
    fut: asyncio.Future[None] = driver.loop.create_future()
    transport.connected = fut
    driver.connecting.add(transport)
    try:
        await fut
    except BaseException:
        transport.abandon()
        raise
    return transport


async def open_connection(stack: Stack, host: str | IPv4Address | None = None, port: int | str | None = None,
                          *, limit: int = 2**16, **kwds: Unpack[ConnectOptions],
                          ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """`asyncio.open_connection` over this stack: asyncio's StreamWriter and a StreamReader that passes
    received chunks on without copying them again (ChunkReader, an asyncio.StreamReader)."""
    loop = asyncio.get_running_loop()
    reader = ChunkReader(limit=limit, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport, _ = await create_connection(stack, lambda: protocol, host, port, **kwds)
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)


__all__ = ["ConnectOptions", "TcpTransport", "check_family", "check_sock", "create_connection", "open_connection",
           "parse_host", "parse_port", "resolve_host"]
