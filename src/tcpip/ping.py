"""Ping: echo requests in flight and their results (round-trip time and TTL, or why a probe failed).

`Stack.ping` returns a `PingResults`: still a `list[float | None]` of round-trip times (None = no reply), so
code that reads rtts keeps working, with the per-probe `PingResult`s in `.probes`. `Pinger` is the Stack's
machinery: it sends each request through the core and matches the echo reply, or the ICMP error quoting
the request, to its waiter by identifier and sequence number."""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import TYPE_CHECKING

from tcpip.errors import DeviceClosedError, NoRouteError, WouldFragmentError

if TYPE_CHECKING:
    from tcpip.core.host import Host

# ICMP errors that can answer an echo request, as ping(8) words them
_UNREACH = {0: "Destination Net Unreachable", 1: "Destination Host Unreachable",
            2: "Destination Protocol Unreachable", 3: "Destination Port Unreachable",
            4: "Frag needed and DF set", 5: "Source Route Failed", 6: "Destination Net Unknown",
            7: "Destination Host Unknown", 9: "Destination Net Prohibited", 10: "Destination Host Prohibited",
            13: "Packet filtered"}
NETWORK_UNREACHABLE = "Network is unreachable"


def icmp_error_text(t: int, code: int) -> str:
    """ping(8)'s wording for an ICMP error answering a probe."""
    if t == 3:
        return _UNREACH.get(code, f"Dest Unreachable, Bad Code: {code}")
    if t == 11:
        return "Time to live exceeded" if code == 0 else "Frag reassembly time exceeded"
    if t == 12:
        return "Parameter problem"
    return f"ICMP type {t} code {code}"


@dataclass(frozen=True, slots=True)
class PingResult:
    """One probe: `rtt` (seconds) and `ttl` of the reply and who sent it (`src`: the destination, or
    another host when a broadcast was pinged), or `error` (ping(8)'s text; None with rtt None means no
    answer in time) and `error_from` (who said so: a router, or our own address when ARP or routing
    failed here, or a local error such as "local error: message too long, mtu=1500")."""

    seq: int
    rtt: float | None = None
    ttl: int | None = None
    error: str | None = None
    error_from: str | None = None
    src: str | None = None

    @property
    def ok(self) -> bool:
        return self.rtt is not None


class PingResults(list[float | None]):
    """The round-trip times (None = no reply), with each probe's `PingResult` in `probes`."""

    def __init__(self, probes: list[PingResult]) -> None:
        super().__init__(p.rtt for p in probes)
        self.probes = probes


def echo_data(size: int, seq: int, pattern: bytes | None = None) -> bytes:
    """The echo request's `size` data bytes: `pattern` repeated (ping -p), else bytes counting up from
    the sequence number."""
    if pattern:
        return (pattern * (size // len(pattern) + 1))[:size]
    return bytes((seq + i) & 0xFF for i in range(size))


def is_broadcast(core: Host, dst: int) -> bool:
    """Whether `dst` is the limited broadcast or a subnet broadcast of ours (ping(8) needs -b for it)."""
    return dst == 0xFFFFFFFF or dst == core.bcast or dst in core.routing.bcasts


def check_options(size: int, ttl: int | None, tos: int, pattern: bytes | None) -> None:
    """ValueError for probe options no echo request can carry."""
    if not 0 <= size <= 65507:
        raise ValueError(f"size {size} outside 0..65507")
    if ttl is not None and not 1 <= ttl <= 255:
        raise ValueError(f"ttl {ttl} outside 1..255")
    if not 0 <= tos <= 255:
        raise ValueError(f"tos {tos} outside 0..255")
    if pattern is not None and not pattern:
        raise ValueError("empty pattern")


def broadcast_refused() -> PermissionError:
    return PermissionError(errno.EACCES, "Permission denied: pinging a broadcast address needs "
                                         "allow_broadcast=True")


class Pinger:
    """A Stack's echo requests in flight, keyed by (identifier, sequence number)."""

    def __init__(self, core: Host, kick: Callable[[], None], clock: Callable[[], float]) -> None:
        self.core = core
        self._kick = kick  # push queued frames out now
        self._clock = clock  # for round-trip times
        self._waiting: dict[tuple[int, int], tuple[asyncio.Future[PingResult], float]] = {}
        core.set_echo_handler(self._reply)

    async def probe(self, dst: int, ident: int, seq: int, data: bytes, timeout: float, *,
                    ttl: int | None = None, tos: int = 0, dont_frag: bool = False) -> PingResult:
        """Send one echo request and wait at most `timeout` s for its answer."""
        fut: asyncio.Future[PingResult] = asyncio.get_running_loop().create_future()
        core = self.core
        me = str(IPv4Address(core.addr))
        sent = self._clock()
        key = (ident, seq)
        self._waiting[key] = (fut, sent)
        core.error_handlers[1] = self._error  # ICMP errors quoting our echo requests

        def arp_failed(_ip: int) -> None:
            if not fut.done():
                fut.set_result(PingResult(seq, error="Destination Host Unreachable", error_from=me))
        try:
            try:
                core.send(dst, 1, (core.icmp.echo_request(ident, seq, data), data), sent, on_fail=arp_failed,
                          ttl=ttl, tos=tos, dont_frag=dont_frag)
            finally:
                self._kick()
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            return PingResult(seq)
        except NoRouteError:
            return PingResult(seq, error=NETWORK_UNREACHABLE, error_from=me)
        except WouldFragmentError:  # DF (ping -M do) and bigger than the path MTU: nothing was sent
            mtu = core.path_mtu(dst)
            return PingResult(seq, error=f"local error: message too long, mtu={mtu}", error_from=me)
        except DeviceClosedError as e:
            return PingResult(seq, error=str(e))
        finally:
            self._waiting.pop(key, None)

    def _reply(self, src: int, ident: int, seq: int, data: memoryview, now: float) -> None:
        e = self._waiting.get((ident, seq))
        if e is not None and not e[0].done():
            e[0].set_result(PingResult(seq, self._clock() - e[1], self.core.icmp.reply_ttl,
                                       src=str(IPv4Address(src))))

    def _error(self, t: int, code: int, rest: int, quote: memoryview, now: float) -> None:
        hl = (quote[0] & 15) << 2
        if quote[hl] != 8:
            return
        seq = int.from_bytes(quote[hl + 6:hl + 8], "big")
        e = self._waiting.get((int.from_bytes(quote[hl + 4:hl + 6], "big"), seq))
        if e is not None and not e[0].done():
            e[0].set_result(PingResult(seq, error=icmp_error_text(t, code),
                                       error_from=str(IPv4Address(self.core.icmp.error_src))))

    def close(self) -> None:
        """The stack is going away: every waiting probe ends with an error result, not a CancelledError."""
        for fut, _ in self._waiting.values():
            if not fut.done():
                fut.set_exception(DeviceClosedError("stack disconnected"))
