"""Thin delegations of a Host to its layers (wave 1's Interface names, and a few hooks): no state."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from tcpip.core.ethernet import Ethernet
    from tcpip.core.icmp import EchoHandler, Icmp
    from tcpip.core.ipv4 import Accepted, IdentAllocator, Ipv4Input, Ipv4Output
    from tcpip.core.ratelimit import PeerLimiter
    from tcpip.core.routing import Routing

Buffer = bytes | bytearray | memoryview


class HostViews:
    """Mixed into `Host`: each name forwards to the layer that owns it."""

    if TYPE_CHECKING:
        routing: Routing
        icmp: Icmp
        idents: IdentAllocator
        eth: Ethernet
        ipv4: Ipv4Input
        output: Ipv4Output

        def send(self, dst: int, proto: int, parts: Sequence[Buffer], now: float, *,
                 dont_frag: bool = False) -> int: ...

    @property
    def routes(self) -> int:
        return self.routing.routes

    @property
    def pmtu(self) -> dict[int, tuple[int, float]]:
        return self.routing.pmtu

    @property
    def icmp_limiter(self) -> PeerLimiter:
        return self.icmp.limiter

    def next_hop(self, dst: int) -> int | bytes:
        return self.routing.next_hop(dst)

    def path_mtu(self, dst: int, now: float | None = None) -> int:
        return self.routing.path_mtu(dst, now)

    def next_ident(self, dst: int) -> int:
        return self.idents.next(dst)

    def send_icmp_error(self, a: Accepted, t: int, code: int, rest: int, now: float) -> bool:
        return self.icmp.send_error(a, t, code, rest, now)

    def send_echo(self, dst: int, ident: int, seq: int, data: Buffer, now: float, *,
                  dont_frag: bool = False) -> int:
        return self.send(dst, 1, (self.icmp.echo_request(ident, seq, data), data), now, dont_frag=dont_frag)

    def set_echo_handler(self, handler: EchoHandler | None) -> None:
        """`handler(src, ident, seq, data, now)` for each echo reply received."""
        self.icmp.echo_handler = handler

    def send_packet(self, dst: int, nh: int | bytes, hdr: bytearray | memoryview,
                    parts: Sequence[Buffer], total: int, now: float, *,
                    on_fail: Callable[[int], None] | None = None) -> int:
        """Send a datagram whose header is complete (see Ipv4Output.send_packet)."""
        return self.output.send_packet(dst, nh, hdr, parts, total, now, on_fail=on_fail)

    def send_prebuilt(self, frame: memoryview, parts: Sequence[Buffer], now: float) -> int:
        """Finish and send a frame from `allocate_frame` (see Ipv4Output.send_prebuilt)."""
        return self.output.send_prebuilt(frame, parts, now)

    def eth_demux(self, frame: memoryview, now: float) -> tuple[int, memoryview, bool] | None:
        return self.eth.demux(frame, now)

    def ip_accept(self, pkt: memoryview, now: float, l2_bcast: bool = False) -> Accepted | None:
        return self.ipv4.accept(pkt, now, l2_bcast)

    def icmp_input(self, a: Accepted, now: float) -> None:
        self.icmp.input(a, now)
