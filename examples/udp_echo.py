"""A UDP echo server and client written against asyncio's datagram API, run over tcpip.

The protocols are ordinary `asyncio.DatagramProtocol` classes. Compared with a program using the
kernel's sockets, the only difference is the line that creates each endpoint:

    transport, protocol = await loop.create_datagram_endpoint(...)     # the kernel's UDP
    transport, protocol = await stack.create_datagram_endpoint(...)    # tcpip's UDP

By default the server and the client are two tcpip stacks on an in-memory Ethernet hub, so this runs
anywhere without privileges. `--kernel` runs the very same classes over asyncio's own sockets on
127.0.0.1, for comparison.

    python examples/udp_echo.py
    python examples/udp_echo.py --kernel

It exits with status 0 when every echo came back, 1 otherwise. On kernel sockets CPython before 3.13
(3.11 and 3.12 included) never sends an empty datagram: asyncio's `sendto(b"")` returns without sending
anything. The empty message is then not expected back, and said so, rather than counted as lost.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any


def show(data: bytes) -> str:
    return repr(data) if len(data) <= 16 else f"{data[:8]!r}... ({len(data)} bytes)"


class EchoServerProtocol(asyncio.DatagramProtocol):
    """Sends every datagram back to where it came from."""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        host, port = transport.get_extra_info("sockname")
        print(f"server listening on {host}:{port}")

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        print(f"server got {show(data)} from {addr[0]}:{addr[1]}, echoing it")
        self.transport.sendto(data, addr)


class EchoClientProtocol(asyncio.DatagramProtocol):
    """Sends some messages to its (connected) peer and waits for each to come back."""

    def __init__(self, messages: list[bytes], finished: asyncio.Future[int], expected: int) -> None:
        self.messages = messages
        self.finished = finished
        self.expected = expected
        self.received = 0

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        for message in self.messages:
            print(f"client sends {show(message)}")
            transport.sendto(message)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        print(f"client got {show(data)} back from {addr[0]}:{addr[1]}")
        self.received += 1
        if self.received == self.expected:
            self.transport.close()

    def error_received(self, exc: Exception) -> None:
        print(f"client error: {exc!r}")

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.finished.done():
            self.finished.set_result(self.received)


MESSAGES = [b"hello", b"", b"x" * 1472]
# asyncio's selector transports drop sendto(b"") silently before CPython 3.13 (tcpip's transports send it)
KERNEL_SENDS_EMPTY = sys.version_info >= (3, 13)


def expected_echoes(kernel: bool) -> int:
    """How many of MESSAGES can come back: all, except the empty one on kernel sockets before 3.13."""
    if kernel and not KERNEL_SENDS_EMPTY:
        return sum(1 for m in MESSAGES if m)
    return len(MESSAGES)


async def echo_session(server_factory: Any, client_factory: Any, server_addr: tuple[str, int],
                       expected: int) -> int:
    """Start the server, run the client against it; returns the number of echoes received."""
    loop = asyncio.get_running_loop()
    server, _ = await server_factory(EchoServerProtocol, local_addr=server_addr)
    finished: asyncio.Future[int] = loop.create_future()
    try:
        client, protocol = await client_factory(lambda: EchoClientProtocol(MESSAGES, finished, expected),
                                                remote_addr=server.get_extra_info("sockname"))
        try:
            return await asyncio.wait_for(asyncio.shield(finished), timeout=2)
        except TimeoutError:
            client.close()
            return protocol.received  # type: ignore[no-any-return]
    finally:
        server.close()


async def over_tcpip() -> int:
    from tcpip import Stack  # noqa: PLC0415
    from tcpip.netif import Hub  # noqa: PLC0415

    hub = Hub()  # an in-memory Ethernet segment; a TapDevice would do the same on a real network
    async with await Stack.connect(hub.port(), ipv4="198.18.0.1/24") as server_host, \
            await Stack.connect(hub.port(), ipv4="198.18.0.2/24") as client_host:
        n = await echo_session(server_host.create_datagram_endpoint,
                               client_host.create_datagram_endpoint, ("198.18.0.1", 7), expected_echoes(False))
        print("server stack UDP counters:", server_host.stats()["udp"])
        return n


async def over_kernel() -> int:
    loop = asyncio.get_running_loop()
    # Port 0: any free port (7 needs privileges).
    return await echo_session(loop.create_datagram_endpoint, loop.create_datagram_endpoint,
                              ("127.0.0.1", 0), expected_echoes(True))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kernel", action="store_true",
                    help="use asyncio's own UDP sockets on 127.0.0.1 instead of tcpip")
    args = ap.parse_args()
    n = asyncio.run(over_kernel() if args.kernel else over_tcpip())
    want = expected_echoes(args.kernel)
    note = "" if want == len(MESSAGES) else (
        f" (the empty message was never sent: asyncio on Python {sys.version_info.major}."
        f"{sys.version_info.minor} does not send empty datagrams on kernel sockets)")
    print(f"{n} of {want} echoes received{note}")
    if n != want:
        print(f"udp_echo: FAILED, {want - n} echo(es) missing", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
