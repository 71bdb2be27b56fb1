"""getaddrinfo / getnameinfo for a StackLoop: IP literals, and the Stack's resolver where it has one."""

from __future__ import annotations

import inspect
import socket
from ipaddress import IPv4Address
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tcpip.stack import Stack

AddrInfo = tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple[str, int]]
_KINDS: tuple[tuple[int, int], ...] = (
    (socket.SOCK_STREAM, socket.IPPROTO_TCP), (socket.SOCK_DGRAM, socket.IPPROTO_UDP), (socket.SOCK_RAW, 0))


def literal(host: object) -> str | None:
    """`host` as a dotted IPv4 string if it is an IPv4 literal (str, bytes or IPv4Address), else None."""
    if isinstance(host, IPv4Address):
        return str(host)
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return None
    try:
        return str(IPv4Address(host))
    except ValueError:
        return None


def _port(port: object, socktype: int) -> int:
    """A port number, a digit string, or a service name looked up in /etc/services (no network)."""
    if port is None:
        return 0
    if isinstance(port, bytes):
        port = port.decode("ascii", "replace")
    if isinstance(port, int) and not isinstance(port, bool):
        if not 0 <= port <= 65535:
            raise OverflowError(f"getaddrinfo(): port must be 0-65535, got {port}")
        return port
    if isinstance(port, str):
        if port.isdigit():
            return _port(int(port), socktype)
        try:
            return socket.getservbyname(port, "udp" if socktype == socket.SOCK_DGRAM else "tcp")
        except OSError:
            raise socket.gaierror(socket.EAI_SERVICE, f"Servname not supported for ai_socktype: {port!r}") \
                from None
    raise TypeError(f"getaddrinfo(): port must be an int, a str or None, got {port!r}")


async def resolve(stack: Stack, host: object, flags: int = 0) -> list[str]:
    """The IPv4 addresses of `host`: a literal as itself; a name through `stack.resolve(name)` when the
    Stack has a resolver, never through the host machine's (its DNS traffic would bypass tcpip)."""
    if host is None or host == "":
        return ["0.0.0.0" if flags & socket.AI_PASSIVE else "127.0.0.1"]
    lit = literal(host)
    if lit is not None:
        return [lit]
    name = host.decode("idna") if isinstance(host, bytes) else host
    if not isinstance(name, str):
        raise TypeError(f"getaddrinfo(): host must be a str, bytes or None, got {host!r}")
    if ":" in name:
        raise socket.gaierror(socket.EAI_ADDRFAMILY, f"{name!r}: tcpip is IPv4-only")
    if flags & socket.AI_NUMERICHOST:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    resolver = getattr(stack, "resolve", None)
    if resolver is None:
        raise socket.gaierror(socket.EAI_NONAME, f"{name!r}: this tcpip Stack has no resolver; "
                              "use an IPv4 address literal")
    try:
        result: Any = resolver(name)
        if inspect.isawaitable(result):
            result = await result
    except (socket.gaierror, NotImplementedError):
        raise
    except OSError as e:
        raise socket.gaierror(socket.EAI_AGAIN, f"{name!r}: {e}") from e
    if isinstance(result, str | IPv4Address):
        result = [result]
    out = [a for a in (literal(r) for r in result) if a is not None]
    if not out:
        raise socket.gaierror(socket.EAI_NONAME, f"{name!r}: no IPv4 address")
    return out


async def getaddrinfo(stack: Stack, host: object, port: object, family: int = 0, type: int = 0,
                      proto: int = 0, flags: int = 0) -> list[AddrInfo]:
    """`loop.getaddrinfo` over tcpip: AF_INET results in the kernel's order and shape."""
    if family not in (socket.AF_UNSPEC, socket.AF_INET):
        if family == socket.AF_INET6:
            raise socket.gaierror(socket.EAI_ADDRFAMILY, "Address family for hostname not supported "
                                  "(tcpip is IPv4-only)")
        raise socket.gaierror(socket.EAI_FAMILY, "ai_family not supported")
    kinds = [(t, p) for t, p in _KINDS if (not type or t == type) and (not proto or p == proto)]
    if not kinds:
        if type not in (0, socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_RAW):
            raise socket.gaierror(socket.EAI_SOCKTYPE, "ai_socktype not supported")
        kinds = [(type, proto)]
    number = _port(port, type)
    addrs = await resolve(stack, host, flags)
    canon = str(host) if flags & socket.AI_CANONNAME and host is not None else ""
    out: list[AddrInfo] = []
    for a in addrs:
        for t, p in kinds:
            out.append((socket.AF_INET, socket.SocketKind(t), p, canon, (a, number)))
            canon = ""
    return out


def getnameinfo(sockaddr: tuple[Any, ...], flags: int = 0) -> tuple[str, str]:
    """`loop.getnameinfo` over tcpip: numeric hosts (no reverse lookups), service names from /etc/services."""
    if not isinstance(sockaddr, tuple) or len(sockaddr) < 2:
        raise TypeError("getnameinfo() argument 1 must be a tuple")
    host = literal(sockaddr[0])
    if host is None:
        raise socket.gaierror(socket.EAI_NONAME, f"{sockaddr[0]!r}: tcpip takes IPv4 literals only")
    if flags & socket.NI_NAMEREQD:
        raise socket.gaierror(socket.EAI_NONAME, f"{host}: tcpip does no reverse lookups (NI_NAMEREQD)")
    port = sockaddr[1]
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise OverflowError("getnameinfo(): port must be 0-65535")
    service = str(port)
    if not flags & socket.NI_NUMERICSERV:
        try:
            service = socket.getservbyport(port, "udp" if flags & socket.NI_DGRAM else "tcp")
        except OSError:
            pass
    return host, service


__all__ = ["AddrInfo", "getaddrinfo", "getnameinfo", "literal", "resolve"]
