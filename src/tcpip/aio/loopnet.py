"""StackNetwork: the event-loop methods that put an asyncio loop's network on a tcpip Stack (TCP, UDP,
names, and kernel sockets used as connection tokens); mixed into StackLoop (tcpip.loop)."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl as ssl_module
from asyncio import sslproto
from collections.abc import Awaitable, Callable
from ipaddress import IPv4Address
from typing import Any, TypeVar

from tcpip.aio import names
from tcpip.aio import tcp as aio_tcp
from tcpip.aio.server import create_server as tcp_create_server
from tcpip.aio.transport import TcpTransport
from tcpip.stack import Stack

log = logging.getLogger("tcpip.loop")
P = TypeVar("P", bound=asyncio.BaseProtocol)
Connect = Callable[[], Awaitable[Stack]]

_NO_KERNEL = ("tcpip has no kernel sockets: its connections are transports. Use loop.create_connection / "
              "create_server / create_datagram_endpoint (or asyncio streams) instead")


def _inet(sock: socket.socket) -> bool:
    return sock.family in (socket.AF_INET, socket.AF_INET6)


class StackNetwork(asyncio.AbstractEventLoop):
    """The network methods of a StackLoop, mixed into a concrete event loop class (asyncio's, or uvloop's):
    TCP/UDP and name resolution go through `self.stack`. `connect()` builds the stack; it runs when the loop
    is created (before anything else is scheduled) and the stack is disconnected when the loop closes.
    Unix sockets, pipes, subprocesses, signals and timers are the base loop's own."""

    def __init__(self, connect: Connect) -> None:
        super().__init__()
        self._stack: Stack | None = None
        # Kernel sockets "connected" by sock_connect(): tcpip connections waiting for create_connection(sock=)
        self._tokens: dict[socket.socket, TcpTransport] = {}
        try:
            self._stack = self.run_until_complete(connect())
        except BaseException:
            super().close()
            raise

    @property
    def stack(self) -> Stack:
        """The Stack this loop's network methods use."""
        if self._stack is None:
            raise RuntimeError("the StackLoop is closed")
        return self._stack

    def close(self) -> None:
        """Close the loop and disconnect its stack (open connections are reset, the device released)."""
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        stack, self._stack = self._stack, None
        if stack is not None and not self.is_closed():
            for sock, t in list(self._tokens.items()):
                t.abandon()
                sock.close()
            self._tokens.clear()
            try:
                self.run_until_complete(stack.disconnect())
            except Exception:
                log.exception("disconnecting the stack of %r", self)
        super().close()

    # -- names --------------------------------------------------------------------------------------
    async def getaddrinfo(self, host: Any, port: Any, *, family: int = 0, type: int = 0,
                          proto: int = 0, flags: int = 0) -> list[Any]:
        """IPv4 literals, and names through the Stack's resolver when it has one (`stack.resolve`)."""
        return await names.getaddrinfo(self.stack, host, port, family, type, proto, flags)

    async def getnameinfo(self, sockaddr: tuple[Any, ...], flags: int = 0) -> tuple[str, str]:
        return names.getnameinfo(sockaddr, flags)

    async def _hosts(self, host: Any, family: int, proto: int, flags: int) -> list[str | None]:
        if host is None:
            return [None]
        lit = names.literal(host)
        if lit is not None:
            return [lit]
        infos = await self.getaddrinfo(host, 0, family=family, type=socket.SOCK_STREAM, proto=proto, flags=flags)
        return list(dict.fromkeys(ai[4][0] for ai in infos))

    async def _local(self, local_addr: Any) -> Any:
        if local_addr is None or local_addr[0] in (None, "") or names.literal(local_addr[0]) is not None:
            return local_addr
        return ((await self._hosts(local_addr[0], 0, 0, socket.AI_PASSIVE))[0], local_addr[1])

    # -- TCP ----------------------------------------------------------------------------------------
    async def create_connection(
            self, protocol_factory: Callable[[], P], host: Any = None, port: Any = None, *,
            ssl: aio_tcp.SslArg = None, family: int = 0, proto: int = 0, flags: int = 0,
            sock: socket.socket | None = None, local_addr: Any = None, server_hostname: str | None = None,
            ssl_handshake_timeout: float | None = None, ssl_shutdown_timeout: float | None = None,
            happy_eyeballs_delay: float | None = None, interleave: int | None = None,
            all_errors: bool = False) -> tuple[asyncio.Transport, P]:
        """asyncio's create_connection over tcpip. Names go through getaddrinfo (each address tried in
        turn); `sock=` takes only a socket that this loop's sock_connect() opened (or a Unix socket)."""
        if sock is not None:
            if host is not None or port is not None:
                raise ValueError("host/port and sock can not be specified at the same time")
            if sock.family == socket.AF_UNIX:
                return await super().create_connection(
                    protocol_factory, sock=sock, ssl=ssl, server_hostname=server_hostname,
                    ssl_handshake_timeout=ssl_handshake_timeout, ssl_shutdown_timeout=ssl_shutdown_timeout)
            return await self._adopt(sock, protocol_factory, ssl, server_hostname, ssl_handshake_timeout,
                                     ssl_shutdown_timeout)
        if ssl and server_hostname is None and host is not None and names.literal(host) is None:
            server_hostname = str(host)  # the name, not the address it resolved to
        aio_tcp.check_family(family, host)
        local_addr = await self._local(local_addr)
        errors: list[OSError] = []
        for addr in await self._hosts(host, family, proto, flags):
            try:
                return await aio_tcp.create_connection(
                    self.stack, protocol_factory, addr, port, ssl=ssl, family=family, proto=proto, flags=flags,
                    local_addr=local_addr, server_hostname=server_hostname,
                    ssl_handshake_timeout=ssl_handshake_timeout, ssl_shutdown_timeout=ssl_shutdown_timeout,
                    happy_eyeballs_delay=happy_eyeballs_delay, interleave=interleave)
            except OSError as e:
                errors.append(e)
        if all_errors:
            raise ExceptionGroup("create_connection failed", errors)
        if len(errors) == 1 or len({str(e) for e in errors}) == 1:
            raise errors[0]
        raise OSError(f"Multiple exceptions: {', '.join(str(e) for e in errors)}")

    async def create_server(  # type: ignore[override]
            self, protocol_factory: Callable[[], asyncio.BaseProtocol], host: Any = None, port: Any = None, *,
            family: int = socket.AF_UNSPEC, flags: int = socket.AI_PASSIVE, sock: socket.socket | None = None,
            backlog: int = 100, ssl: ssl_module.SSLContext | None = None, reuse_address: bool | None = None,
            reuse_port: bool | None = None, keep_alive: bool | None = None,
            ssl_handshake_timeout: float | None = None, ssl_shutdown_timeout: float | None = None,
            start_serving: bool = True) -> asyncio.AbstractServer:
        """asyncio's create_server over tcpip: host None or "" listens on every tcpip address."""
        if sock is not None and sock.family == socket.AF_UNIX:
            return await super().create_server(
                protocol_factory, sock=sock, backlog=backlog, ssl=ssl, ssl_handshake_timeout=ssl_handshake_timeout,
                ssl_shutdown_timeout=ssl_shutdown_timeout, start_serving=start_serving)
        if sock is not None and (host is not None or port is not None):
            raise ValueError("host/port and sock can not be specified at the same time")
        if sock is not None:
            raise NotImplementedError(f"create_server(sock=...): {_NO_KERNEL}; pass host and port")
        hosts: list[Any] = (list(host) if host is not None and not isinstance(host, str | bytes | IPv4Address)
                            else [host])
        resolved: list[str | None] = []
        for h in hosts:
            resolved += [None] if h in (None, "") else await self._hosts(h, family, 0, flags)
        return await tcp_create_server(
            self.stack, protocol_factory, list(dict.fromkeys(resolved)), port, family=family, flags=flags,
            backlog=backlog, ssl=ssl, reuse_address=reuse_address, reuse_port=reuse_port, keep_alive=keep_alive,
            ssl_handshake_timeout=ssl_handshake_timeout, ssl_shutdown_timeout=ssl_shutdown_timeout,
            start_serving=start_serving)

    async def connect_accepted_socket(self, protocol_factory: Callable[[], P], sock: socket.socket, *,
                                      ssl: bool | ssl_module.SSLContext | None = None,
                                      ssl_handshake_timeout: float | None = None,
                                      ssl_shutdown_timeout: float | None = None) -> tuple[asyncio.Transport, P]:
        if _inet(sock):
            raise NotImplementedError(f"connect_accepted_socket(): {_NO_KERNEL}")
        return await super().connect_accepted_socket(
            protocol_factory, sock, ssl=ssl, ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout)

    # -- UDP ----------------------------------------------------------------------------------------
    async def create_datagram_endpoint(
            self, protocol_factory: Callable[[], P], local_addr: Any = None, remote_addr: Any = None, *,
            family: int = 0, proto: int = 0, flags: int = 0, reuse_address: Any = None,
            reuse_port: bool | None = None, allow_broadcast: bool | None = None,
            sock: socket.socket | None = None) -> tuple[asyncio.DatagramTransport, P]:
        """asyncio's create_datagram_endpoint over tcpip (an unbound endpoint gets an ephemeral port)."""
        if family == socket.AF_UNIX or isinstance(local_addr, str) or isinstance(remote_addr, str) or (
                sock is not None and sock.family == socket.AF_UNIX):
            return await super().create_datagram_endpoint(
                protocol_factory, local_addr, remote_addr, family=family, proto=proto, flags=flags,
                reuse_port=reuse_port, allow_broadcast=allow_broadcast, sock=sock)
        if sock is not None:
            raise NotImplementedError(f"create_datagram_endpoint(sock=...): {_NO_KERNEL}")
        if reuse_address not in (None, False):
            raise ValueError("Passing `reuse_address=True` is no longer supported, as the usage of "
                             "SO_REUSEPORT in UDP poses a significant security concern.")
        if reuse_port:
            raise NotImplementedError("reuse_port=True: tcpip cannot share a UDP port between endpoints")
        aio_tcp.check_family(family, local_addr or remote_addr)
        local = remote = None
        if local_addr is not None:
            local = ((await self._hosts(local_addr[0], family, proto, flags | socket.AI_PASSIVE))[0] or "",
                     local_addr[1])
        if remote_addr is not None:
            remote = ((await self._hosts(remote_addr[0], family, proto, flags))[0], remote_addr[1])
        t, p = await self.stack.create_datagram_endpoint(protocol_factory, local, remote,  # type: ignore[arg-type]
                                                         allow_broadcast=bool(allow_broadcast))
        return t, p

    # -- kernel sockets -----------------------------------------------------------------------------
    async def sock_connect(self, sock: socket.socket, address: Any) -> None:
        """For an unconnected AF_INET stream socket: open a tcpip connection to `address` and keep it for
        `create_connection(sock=sock)` (aiohttp's path, through aiohappyeyeballs). The kernel socket is
        never connected; it is closed with the transport. Errors are connect(2)'s OSErrors."""
        if sock.family == socket.AF_UNIX:
            return await super().sock_connect(sock, address)
        if sock.family != socket.AF_INET or sock.type != socket.SOCK_STREAM:
            raise NotImplementedError(f"sock_connect() on a {sock.family.name}/{sock.type.name} socket: "
                                      f"{_NO_KERNEL}")
        if self.get_debug() and sock.gettimeout() != 0:
            raise ValueError("the socket must be non-blocking")
        self._sweep()
        if sock in self._tokens:
            raise OSError(errno.EISCONN, "Transport endpoint is already connected")
        host = (await self._hosts(address[0], socket.AF_INET, 0, 0))[0]
        bound = sock.getsockname()
        local = None if bound[0] == "0.0.0.0" and bound[1] == 0 else bound
        self._tokens[sock] = await aio_tcp._connect(self.stack.tcp, local, aio_tcp.parse_host(host or ""),
                                                    aio_tcp.parse_port(address[1]))
        return None

    def _sweep(self) -> None:
        """Reset the connections of token sockets closed without create_connection (happy eyeballs losers)."""
        for sock in [s for s in self._tokens if s.fileno() == -1]:
            self._tokens.pop(sock).abandon()

    async def _adopt(self, sock: socket.socket, protocol_factory: Callable[[], P], ssl: aio_tcp.SslArg,
                     server_hostname: str | None, ssl_handshake_timeout: float | None,
                     ssl_shutdown_timeout: float | None) -> tuple[asyncio.Transport, P]:
        """create_connection(sock=): the tcpip connection that sock_connect() opened for `sock`."""
        t = self._tokens.pop(sock, None)
        if t is None:
            raise NotImplementedError(f"create_connection(sock=...): {_NO_KERNEL}. Only a socket that this "
                                      "loop's sock_connect() connected (through tcpip) can be passed")
        if server_hostname is not None and not ssl:
            raise ValueError("server_hostname is only meaningful with ssl")
        if ssl and server_hostname is None:
            raise ValueError("You must set server_hostname when using ssl without a host")
        ctx = aio_tcp.ssl_context(ssl, server_side=False)
        detach = t._detach

        def detach_and_close() -> None:  # the token socket lives as long as the connection
            detach()
            sock.close()

        t._detach = detach_and_close  # type: ignore[method-assign]
        try:
            protocol = protocol_factory()
        except BaseException:
            t.abandon()
            raise
        waiter: asyncio.Future[None] = self.create_future()
        if ctx is None:
            t.start(protocol, waiter)
            app: asyncio.Transport = t
        else:
            timeouts: dict[str, Any] = {"ssl_handshake_timeout": ssl_handshake_timeout,
                                        "ssl_shutdown_timeout": ssl_shutdown_timeout}
            tls = sslproto.SSLProtocol(self, protocol, ctx, waiter, server_side=False,
                                       server_hostname=server_hostname, **timeouts)
            t.start(tls, None)
            app = tls._app_transport
        try:
            await waiter
        except BaseException:
            t.abort()
            raise
        return app, protocol

    def _no_kernel(self, name: str, sock: socket.socket) -> None:
        if _inet(sock):
            raise NotImplementedError(f"{name}(): {_NO_KERNEL}")

    async def sock_recv(self, sock: socket.socket, nbytes: int) -> bytes:
        self._no_kernel("sock_recv", sock)
        return await super().sock_recv(sock, nbytes)

    async def sock_recv_into(self, sock: socket.socket, buf: Any) -> int:
        self._no_kernel("sock_recv_into", sock)
        return await super().sock_recv_into(sock, buf)

    async def sock_recvfrom(self, sock: socket.socket, bufsize: int) -> tuple[bytes, Any]:
        self._no_kernel("sock_recvfrom", sock)
        return await super().sock_recvfrom(sock, bufsize)

    async def sock_recvfrom_into(self, sock: socket.socket, buf: Any, nbytes: int = 0) -> tuple[int, Any]:
        self._no_kernel("sock_recvfrom_into", sock)
        return await super().sock_recvfrom_into(sock, buf, nbytes)

    async def sock_sendall(self, sock: socket.socket, data: Any) -> None:
        self._no_kernel("sock_sendall", sock)
        return await super().sock_sendall(sock, data)

    async def sock_sendto(self, sock: socket.socket, data: Any, address: Any) -> int:
        self._no_kernel("sock_sendto", sock)
        return await super().sock_sendto(sock, data, address)

    async def sock_accept(self, sock: socket.socket) -> tuple[socket.socket, Any]:
        self._no_kernel("sock_accept", sock)
        return await super().sock_accept(sock)

    async def sock_sendfile(self, sock: socket.socket, file: Any, offset: int = 0, count: int | None = None,
                            *, fallback: bool | None = True) -> int:
        self._no_kernel("sock_sendfile", sock)
        return await super().sock_sendfile(sock, file, offset, count, fallback=fallback)


__all__ = ["Connect", "StackNetwork"]
