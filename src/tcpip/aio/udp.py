"""UDP endpoints with asyncio's datagram API: create_datagram_endpoint, DatagramTransport, DatagramProtocol.

Protocol callbacks never run inside the core's `receive()`: datagrams and errors for the endpoints are
queued and delivered by `UdpEndpoints.deliver`, an after-batch callback of the stack's runner (the order
of arrival is kept). `sendto` hands its datagram to the device before it returns (`runner.transmit()`):
zero-copy, and the caller may reuse its buffer at once, as with asyncio's own sendto. `bytes` (which nobody
can change) sent from a protocol callback leave with the rest of that batch instead, in one pass.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
from collections import deque
from collections.abc import Callable
from ipaddress import IPv4Address
from typing import Any

from tcpip.core.udp import Binding, UdpLayer
from tcpip.errors import HostUnreachableError, MessageTooLongError, NoRouteError, PortInUseError
from tcpip.guard import CallbackGuard
from tcpip.netif.device import Buffer
from tcpip.runner import Runner
from tcpip.wire.ipv4 import ip_str

log = logging.getLogger("tcpip.udp")
Address = tuple[str, int]
MAX_PAYLOAD = 65535 - 20 - 8

_ICMP_UNREACH_ERRNO = {0: errno.ENETUNREACH, 1: errno.EHOSTUNREACH, 2: errno.ENOPROTOOPT,
                       3: errno.ECONNREFUSED, 4: errno.EMSGSIZE, 5: errno.EOPNOTSUPP}



# Per datagram, sendto parses its address and a received datagram's source is formatted: both memoized
# (pure functions of their argument, bounded LRU; a parse error is not cached, it raises again).
_src_str = functools.lru_cache(maxsize=1024)(ip_str)


@functools.lru_cache(maxsize=1024)
def _ip_of(host: str) -> int:
    return int(IPv4Address(host or "0.0.0.0"))


def _parse_addr(addr: Any) -> tuple[int, int]:
    if not isinstance(addr, tuple) or len(addr) < 2:
        raise TypeError(f"address must be a (host, port) tuple, got {addr!r}")
    host, port = addr[0], addr[1]
    try:
        ip = _ip_of(host) if type(host) is str else int(IPv4Address(host if host is not None else "0.0.0.0"))
    except ValueError:
        raise OSError(errno.EINVAL, f"not an IPv4 address: {host!r} (no name resolution)") from None
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise OverflowError(f"port must be 0-65535, got {port!r}")
    return ip, port


class UdpEndpoints:
    """The asyncio UDP endpoints of one stack: their UdpLayer, runner and the queue of pending callbacks."""

    def __init__(self, layer: UdpLayer, runner: Runner) -> None:
        self.layer = layer
        self.guard = CallbackGuard("a UDP protocol callback")
        self.runner = runner
        # (transport, data, address) for datagram_received, or (transport, exception, None) for errors
        self._pending: deque[tuple[UdpTransport, bytes | Exception, Address | None]] = deque()
        self._registered = False

    def queue(self, t: UdpTransport, item: bytes | Exception, addr: Address | None) -> None:
        self._pending.append((t, item, addr))
        if not self._registered:  # only stacks with endpoints pay for the callback
            self._registered = True
            self.runner.add_after_batch(self.deliver, self._pending.__len__)
        self.runner.kick()  # no-op inside a drain; needed when queued from a timer or outside one

    def deliver(self) -> None:
        """Run the queued protocol callbacks (an after-batch callback of the runner)."""
        q = self._pending
        while q:
            t, item, addr = q.popleft()
            t._deliver(item, addr)


class UdpTransport(asyncio.DatagramTransport):
    """A UDP endpoint on a tcpip Stack, behaving like asyncio's own datagram transport."""

    def __init__(self, endpoints: UdpEndpoints, protocol: asyncio.DatagramProtocol,
                 local: int, port: int, remote: tuple[int, int] | None,
                 allow_broadcast: bool) -> None:
        super().__init__()
        self._loop = asyncio.get_running_loop()
        self._endpoints = endpoints
        self._runner = endpoints.runner
        self._layer = layer = endpoints.layer
        self._protocol = protocol
        self._remote = remote
        self._allow_broadcast = allow_broadcast
        self._closing = False
        self._conn_lost = 0
        self._binding: Binding = layer.bind(port, local, self._received, self._icmp_error, remote)
        self._local = local
        # Bound to a secondary address: datagrams leave from it (else the route's source, as a wildcard).
        self._src = local if local and local != layer.iface.addr else None
        # One bound-method object for every queued datagram: the ARP queue reports a failed
        # resolution once per distinct hook, so the protocol hears one error, not one per datagram.
        self._on_arp_fail: Callable[[int], None] = self._arp_failed
        # Like connect(2) on a UDP socket, a connected endpoint's sockname shows the source address.
        shown = local or (layer.iface.addr if remote is not None else 0)
        self._extra: dict[str, Any] = {
            "sockname": (ip_str(shown), self._binding.port),
            "peername": (ip_str(remote[0]), remote[1]) if remote else None,
            "socket": None,
        }

    # -- asyncio.BaseTransport -----------------------------------------------------------------
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        v = self._extra.get(name, default)
        return default if v is None else v

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._layer.unbind(self._binding)
        self._loop.call_soon(self._protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol  # type: ignore[assignment]

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def get_write_buffer_size(self) -> int:
        return 0

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (0, 0)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    # -- sending -------------------------------------------------------------------------------
    def sendto(self, data: Buffer, addr: Any = None) -> None:
        """Send one datagram now (or queue it behind ARP); never blocks. As with asyncio's own
        transport, an OSError of the send (no route, too long...) goes to `protocol.error_received`;
        misuse raises: TypeError/ValueError, and PermissionError for a broadcast destination without
        allow_broadcast=True (the caller's mistake, reported where it is made)."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"data argument must be a bytes-like object, not {type(data).__name__!r}")
        if self._remote is not None:
            if addr is not None and _parse_addr(addr) != self._remote:
                raise ValueError(f"Invalid address: must be None or {self._extra['peername']}")
            dst, dport = self._remote
        elif addr is None:
            self._protocol.error_received(OSError(errno.EDESTADDRREQ,
                                                  "Destination address required"))
            return
        else:
            try:
                dst, dport = _parse_addr(addr)
            except OSError as e:
                self._protocol.error_received(e)
                return
        if self._closing:
            self._conn_lost += 1
            return
        core = self._layer.iface
        if (dst == 0xFFFFFFFF or dst == core.bcast) and not self._allow_broadcast:
            raise PermissionError(errno.EACCES, "Permission denied: broadcast needs allow_broadcast=True")
        try:
            self._send(data, dst, dport)
        except OSError as e:
            self._protocol.error_received(e)

    def _send(self, data: Buffer, dst: int, dport: int) -> None:
        if len(data) > MAX_PAYLOAD:
            raise OSError(errno.EMSGSIZE, f"datagram of {len(data)} bytes is too long")
        if dport == 0:
            raise OSError(errno.EINVAL, "destination port 0")
        runner = self._runner
        try:
            self._layer.send(self._binding.port, dst, dport, data, runner.now(),
                             on_fail=self._on_arp_fail, src=self._src)
        except NoRouteError as e:
            raise OSError(errno.ENETUNREACH, str(e)) from e
        except MessageTooLongError as e:
            raise OSError(errno.EMSGSIZE, str(e)) from e
        finally:
            # Zero-copy like asyncio's own sendto: the datagram reaches the device before sendto returns
            # (or was copied into the ARP queue), so the caller may reuse its buffer at once; bytes sent
            # from a protocol callback leave with the rest of the batch (Runner.transmit)
            runner.transmit(type(data) is bytes)

    def _arp_failed(self, ip: int) -> None:
        self._layer.stats.tx_arp_failed += 1
        if not self._closing:
            self._endpoints.queue(self, HostUnreachableError(
                f"{ip_str(ip)}: no ARP reply after {self._layer.iface.config.arp_tries} requests"), None)

    # -- receiving (queued by the core's callbacks, delivered after the batch) -------------------
    def _received(self, payload: memoryview | bytes, src: int, sport: int, dst: int, now: float) -> None:
        if not self._closing:
            self._endpoints.queue(self, bytes(payload), (_src_str(src), sport))  # bytes: no copy

    def _deliver(self, item: bytes | Exception, addr: Address | None) -> None:
        if self._closing:
            return
        try:
            if isinstance(item, Exception):
                self._protocol.error_received(item)
            else:
                self._protocol.datagram_received(item, addr)  # type: ignore[arg-type]
        except Exception:
            self._layer.stats.rx_callback_errors += 1
            self._endpoints.guard.failed()

    def _icmp_error(self, t: int, code: int, rest: int, qdst: int, qport: int) -> None:
        if self._closing:
            return
        if t == 3:
            en = _ICMP_UNREACH_ERRNO.get(code, errno.EHOSTUNREACH)
            exc: OSError = ConnectionRefusedError(en, "Connection refused") if en == \
                errno.ECONNREFUSED else OSError(en, f"ICMP destination unreachable code {code}")
        elif t == 11:
            exc = OSError(errno.EHOSTUNREACH, f"ICMP time exceeded code {code}")
        else:
            exc = OSError(errno.EPROTO, f"ICMP parameter problem pointer {rest >> 24}")
        exc.filename = f"{ip_str(qdst)}:{qport}"
        self._endpoints.queue(self, exc, None)


async def create_datagram_endpoint(
        endpoints: UdpEndpoints, protocol_factory: Callable[[], asyncio.DatagramProtocol],
        local_addr: Any = None, remote_addr: Any = None, *,
        allow_broadcast: bool = False) -> tuple[UdpTransport, asyncio.DatagramProtocol]:
    """asyncio's `loop.create_datagram_endpoint` over the stack that owns `endpoints`."""
    core = endpoints.layer.iface
    local, port = _parse_addr(local_addr) if local_addr is not None else (0, 0)
    if local and local not in core.routing.locals:
        raise OSError(errno.EADDRNOTAVAIL, "cannot assign requested address "
                      f"{ip_str(local)}: not an address of this stack")
    remote = _parse_addr(remote_addr) if remote_addr is not None else None
    if remote is not None:
        if remote[1] == 0:
            raise OSError(errno.EINVAL, "remote port 0")
        if (remote[0] == 0xFFFFFFFF or remote[0] == core.bcast) and not allow_broadcast:
            raise PermissionError(errno.EACCES, "broadcast needs allow_broadcast=True")
    protocol = protocol_factory()
    try:
        transport = UdpTransport(endpoints, protocol, local, port, remote, allow_broadcast)
    except PortInUseError:
        raise OSError(errno.EADDRINUSE, "address already in use: "
                      f"{ip_str(local)}:{port}") from None
    protocol.connection_made(transport)
    return transport, protocol


__all__ = ["UdpEndpoints", "UdpTransport", "create_datagram_endpoint"]
