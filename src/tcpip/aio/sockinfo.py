"""StackSocket: what `transport.get_extra_info("socket")` gives on a tcpip connection (asyncio's
TransportSocket's surface: family, addresses, socket options) for libraries that inspect it."""

from __future__ import annotations

import errno
import socket
from typing import Any


class StackSocket:
    """A socket-shaped view of one tcpip TCP connection. It has no file descriptor (fileno() is -1);
    socket options are remembered and read back but change nothing in tcpip (TCP_NODELAY,
    SO_KEEPALIVE and the like are what libraries set; tcpip has no Nagle delay and no keep-alive timer)."""

    family = socket.AF_INET
    type = socket.SOCK_STREAM
    proto = socket.IPPROTO_TCP

    def __init__(self, sockname: tuple[str, int], peername: tuple[str, int]) -> None:
        self._sockname = sockname
        self._peername = peername
        self._options: dict[tuple[int, int], Any] = {}

    def __repr__(self) -> str:
        return f"<StackSocket laddr={self._sockname} raddr={self._peername}>"

    def fileno(self) -> int:
        return -1

    def getsockname(self) -> tuple[str, int]:
        return self._sockname

    def getpeername(self) -> tuple[str, int]:
        return self._peername

    def setsockopt(self, level: int, optname: int, value: Any, optlen: int | None = None) -> None:
        self._options[(level, optname)] = value

    def getsockopt(self, level: int, optname: int, buflen: int | None = None) -> Any:
        value = self._options.get((level, optname), 0)
        if buflen is not None and isinstance(value, int):
            return value.to_bytes(4, "little")[:buflen]
        return int(value) if isinstance(value, bool) else value

    def gettimeout(self) -> float:
        return 0.0

    def settimeout(self, value: float | None) -> None:
        if value != 0:
            raise ValueError("settimeout(): only 0 is supported on transport sockets")

    def setblocking(self, flag: bool) -> None:
        if flag:
            raise ValueError("setblocking(): only False is supported on transport sockets")

    def get_inheritable(self) -> bool:
        return False

    def _unsupported(self, *args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.EOPNOTSUPP, "a tcpip connection has no kernel socket: use the transport")

    send = sendall = recv = recv_into = shutdown = dup = detach = _unsupported


__all__ = ["StackSocket"]
