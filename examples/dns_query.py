"""Ask a DNS resolver for a name's IPv4 addresses: a hand-built query over asyncio's datagram API, on tcpip.

The query and the answer are plain RFC 1035 messages packed with `struct`; the networking is an
ordinary `asyncio.DatagramProtocol`. Only the endpoint-creation line says "tcpip":

    transport, protocol = await stack.create_datagram_endpoint(...)   # instead of loop.create_...

On a TAP device (needs root and /dev/net/tun; the kernel side of tap0 must route or resolve):

    python examples/dns_query.py --tap tap0 --ipv4 198.18.0.2/24 --resolver 198.18.0.1 example.com

Without any network: a tiny fake resolver on a second tcpip stack, both on an in-memory hub:

    python examples/dns_query.py --self-test www.example.test

Exit status, as host(1): 0 when the name has an IPv4 address, 1 when it has none (NXDOMAIN or no A
record), no answer came in time or the query failed. With --self-test the check is that the answer is
the one the fake resolver's zone holds (NXDOMAIN included): 0 if so, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import struct
import sys
from typing import Any

from tcpip import Stack
from tcpip.netif import Hub

TYPE_A = 1
CLASS_IN = 1
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
HEADER = struct.Struct("!HHHHHH")  # id, flags, qdcount, ancount, nscount, arcount


# -- the DNS wire format (just enough of RFC 1035) -----------------------------------------------
def encode_name(name: str) -> bytes:
    out = bytearray()
    for label in name.rstrip(".").split("."):
        raw = label.encode("idna")
        if not 0 < len(raw) < 64:
            raise ValueError(f"bad label {label!r} in {name!r}")
        out.append(len(raw))
        out += raw
    return bytes(out) + b"\0"


def build_query(ident: int, name: str) -> bytes:
    flags = 0x0100  # a standard query, recursion desired
    return HEADER.pack(ident, flags, 1, 0, 0, 0) + encode_name(name) + struct.pack("!HH", TYPE_A,
                                                                                  CLASS_IN)


def read_name(msg: bytes, off: int) -> tuple[str, int]:
    """The name at `off` (following compression pointers) and the offset just after it."""
    labels: list[str] = []
    end = -1
    for _ in range(128):  # bounded: a pointer loop in a hostile answer cannot hang us
        n = msg[off]
        if n & 0xC0 == 0xC0:
            if end < 0:
                end = off + 2
            off = ((n & 0x3F) << 8) | msg[off + 1]
            continue
        if n == 0:
            return ".".join(labels), (end if end >= 0 else off + 1)
        labels.append(msg[off + 1:off + 1 + n].decode("ascii", "replace"))
        off += 1 + n
    raise ValueError("name compression loop")


def parse_response(msg: bytes, ident: int) -> tuple[str, list[str]]:
    """(rcode name, IPv4 addresses of the A records) of a response to query `ident`."""
    rid, flags, qd, an, _ns, _ar = HEADER.unpack_from(msg, 0)
    if rid != ident or not flags & 0x8000:
        raise ValueError("not a response to our query")
    off = HEADER.size
    for _ in range(qd):
        _, off = read_name(msg, off)
        off += 4
    addresses = []
    for _ in range(an):
        _, off = read_name(msg, off)
        rtype, rclass, _ttl, rdlen = struct.unpack_from("!HHIH", msg, off)
        off += 10
        if rtype == TYPE_A and rclass == CLASS_IN and rdlen == 4:
            addresses.append(".".join(str(b) for b in msg[off:off + 4]))
        off += rdlen
    return RCODES.get(flags & 0xF, f"RCODE{flags & 0xF}"), addresses


# -- the client: an ordinary asyncio DatagramProtocol ----------------------------------------------
class DnsQuery(asyncio.DatagramProtocol):
    """Sends one query to its connected peer and resolves `answer` with the first valid reply."""

    def __init__(self, name: str, answer: asyncio.Future[tuple[str, list[str]]]) -> None:
        self.name = name
        self.answer = answer
        self.ident = random.getrandbits(16)  # a demo: not a hardened resolver

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.sendto(build_query(self.ident, self.name))

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            result = parse_response(data, self.ident)
        except (ValueError, IndexError, struct.error):
            return  # not ours, or garbage: keep waiting
        if not self.answer.done():
            self.answer.set_result(result)

    def error_received(self, exc: Exception) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc)


async def query(stack: Stack, resolver: str, name: str, timeout: float) -> tuple[str, list[str]]:
    answer: asyncio.Future[tuple[str, list[str]]] = asyncio.get_running_loop().create_future()
    transport, _ = await stack.create_datagram_endpoint(lambda: DnsQuery(name, answer),
                                                        remote_addr=(resolver, 53))
    try:
        return await asyncio.wait_for(answer, timeout)
    finally:
        transport.close()


def report(name: str, rcode: str, addresses: list[str]) -> None:
    if rcode != "NOERROR":
        print(f"{name}: {rcode}")
    elif not addresses:
        print(f"{name} has no IPv4 address")
    for a in addresses:
        print(f"{name} has address {a}")


# -- a tiny fake resolver for --self-test --------------------------------------------------------
ZONE = {"www.example.test": ["198.18.0.80", "198.18.0.81"], "example.test": ["198.18.0.80"]}


class FakeResolver(asyncio.DatagramProtocol):
    """Answers A queries from ZONE (NXDOMAIN otherwise), compressing the answer names."""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        ident, flags, qd, _an, _ns, _ar = HEADER.unpack_from(data, 0)
        if flags & 0x8000 or qd != 1:
            return
        name, end = read_name(data, HEADER.size)
        qtype, _qclass = struct.unpack_from("!HH", data, end)
        question = data[HEADER.size:end + 4]
        records = ZONE.get(name.lower())
        answers = records if records and qtype == TYPE_A else []
        rcode = 0 if records is not None else 3
        out = bytearray(HEADER.pack(ident, 0x8580 | rcode, 1, len(answers), 0, 0)) + question
        for a in answers:  # name: a pointer to the question's name at offset 12
            out += struct.pack("!HHHIH", 0xC000 | HEADER.size, TYPE_A, CLASS_IN, 300, 4)
            out += bytes(int(x) for x in a.split("."))
        print(f"fake resolver: {name} from {addr[0]}:{addr[1]} -> {RCODES[rcode]} {answers}")
        self.transport.sendto(bytes(out), addr)


async def ask(stack: Stack, resolver: str, name: str, timeout: float) -> tuple[str, list[str]] | None:
    """The answer, or None after saying on stderr why there is none."""
    try:
        return await query(stack, resolver, name, timeout)
    except TimeoutError:
        print(f"no answer from {resolver} within {timeout:g} s", file=sys.stderr)
    except OSError as e:
        print(f"query failed: {e.strerror or e}", file=sys.stderr)
    return None


async def self_test(name: str, timeout: float) -> int:
    hub = Hub()
    async with await Stack.connect(hub.port(), ipv4="198.18.0.53/24") as server, \
            await Stack.connect(hub.port(), ipv4="198.18.0.2/24") as client:
        await server.create_datagram_endpoint(FakeResolver, local_addr=("198.18.0.53", 53))
        answer = await ask(client, "198.18.0.53", name, timeout)
    if answer is None:
        return 1
    report(name, *answer)
    want = ZONE.get(name.lower())
    expected = ("NXDOMAIN", []) if want is None else ("NOERROR", want)
    if answer != expected:
        print(f"self-test FAILED: expected {expected}, got {answer}", file=sys.stderr)
        return 1
    return 0


async def over_tap(args: argparse.Namespace) -> int:
    from tcpip.netif.tap import TapDevice  # noqa: PLC0415  (Linux only)

    device = await TapDevice.open(args.tap)
    gateways = [args.gateway] if args.gateway else []
    async with await Stack.connect(device, ipv4=args.ipv4, gateways=gateways) as stack:
        answer = await ask(stack, args.resolver, args.name, args.timeout)
    if answer is None:
        return 1
    report(args.name, *answer)
    return 0 if answer[0] == "NOERROR" and answer[1] else 1  # as host(1): no address is a failure


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("name", nargs="?", default="www.example.test", help="the name to look up")
    ap.add_argument("--tap", help="TAP interface to use (created if absent)")
    ap.add_argument("--ipv4", help="our address on it, e.g. 198.18.0.2/24")
    ap.add_argument("--gateway", help="a default gateway, for an off-link resolver")
    ap.add_argument("--resolver", help="the resolver's IPv4 address")
    ap.add_argument("--timeout", type=float, default=3.0)
    ap.add_argument("--self-test", action="store_true",
                    help="ask a fake resolver on a second stack on an in-memory hub (no network)")
    args = ap.parse_args()
    if args.self_test:
        return asyncio.run(self_test(args.name, args.timeout))
    if not (args.tap and args.ipv4 and args.resolver):
        ap.error("give --tap, --ipv4 and --resolver (or --self-test)")
    return asyncio.run(over_tap(args))


if __name__ == "__main__":
    sys.exit(main())
