"""The ping fast path (`Icmp.fast_echo`, reached from `Host.receive`) spells out ck.verify, IdentAllocator.next,
ck.ipv4_header_checksum and ck.echo_reply_checksum: every reply must be bit for bit what those helpers give,
for odd and even lengths, checksum corner cases (0x0000 / 0xFFFF requests), per-destination ident counters,
and a bad request checksum must still be refused (counted by the general path)."""

from __future__ import annotations

import random
import struct

import pytest

from tcpip.core.config import InterfaceConfig
from tcpip.core.interface import Interface
from tcpip.core.stats import as_dict
from tcpip.wire import checksum as ck
from tcpip.wire.mac import MacAddress

OUR_MAC = bytes.fromhex("020000000002")
PEER_MAC = bytes.fromhex("020000000001")
OUR_IP = 0xC6120002
PEERS = [0xC6120001, 0xC6120003]


def host() -> Interface:
    h = Interface(InterfaceConfig(mac=MacAddress(OUR_MAC), address=OUR_IP, netmask=0xFFFFFF00), now=0.0,
                  rng=random.Random(7))
    for p in PEERS:
        h.arp.add_static(p, PEER_MAC)
    return h


def request(src: int, ident: int, seq: int, data: bytes, icmp_csum: int | None = None) -> bytes:
    m = bytearray(struct.pack("!BBHHH", 8, 0, 0, ident, seq) + data)
    struct.pack_into("!H", m, 2, ck.checksum(m) if icmp_csum is None else icmp_csum)
    ip = bytearray(struct.pack("!BBHHHBBHII", 0x45, 0, 20 + len(m), 99, 0, 64, 1, 0, src, OUR_IP))
    struct.pack_into("!H", ip, 10, ck.checksum(ip))
    return OUR_MAC + PEER_MAC + b"\x08\x00" + bytes(ip) + bytes(m)


def expected(req: bytes, ident: int, ttl: int) -> bytes:
    """The reply built with the helpers the fast path spells out."""
    total = len(req) - 14
    src = int.from_bytes(req[26:30], "big")
    ip = struct.pack("!BBHHHBBHII", 0x45, 0, total, ident, 0, ttl, 1,
                     ck.ipv4_header_checksum(total, ident, 0, ttl, 1, OUR_IP, src), OUR_IP, src)
    c = ck.echo_reply_checksum(struct.unpack_from("!H", req, 36)[0])
    out = PEER_MAC + OUR_MAC + b"\x08\x00" + ip + bytes([0, req[35]]) + c.to_bytes(2, "big") + req[38:]
    return out.ljust(60, b"\0")


def test_replies_match_the_helpers_bit_for_bit() -> None:
    h = host()
    rng = random.Random(3)
    counters = {p: h.idents.next(p) for p in PEERS}  # learn each start (then the fast path counts on)
    for i in range(300):
        src = PEERS[i % 2]
        data = rng.randbytes(rng.choice([0, 1, 17, 18, 56, 57, 1400, 1401]))
        req = request(src, rng.getrandbits(16), i, data)
        h.receive(memoryview(req), 1.0)
        (frame,) = h.poll_transmit()
        counters[src] = (counters[src] + 1) & 0xFFFF
        got = b"".join(frame)
        assert got == expected(req, counters[src], h.config.ttl)
        assert ck.verify(got[14:34])
        assert ck.verify(got[34:len(req)])
    assert as_dict(h.icmp_stats)["tx_echo_replies"] == as_dict(h.icmp_stats)["rx_echo_requests"] == 300


@pytest.mark.parametrize(("natural", "field"), [(0x0000, 0x0000), (0x0000, 0xFFFF), (0xF7FF, 0xF7FF),
                                                (0x0800, 0x0800), (0xF800, 0xF800)])
def test_checksum_corners(natural: int, field: int) -> None:
    """Requests whose checksum is a corner value (the data's last word chosen to make it so); 0xFFFF is
    the other zero of one's complement, sent where 0x0000 is computed: both verify."""
    h = host()
    base = bytearray(struct.pack("!BBHHH", 8, 0, 0, 1, 2) + bytes(8))
    for last in range(0x10000):  # find a data word giving checksum `natural` (RFC 1071 sum of the rest)
        base[14:16] = last.to_bytes(2, "big")
        if ck.checksum(base) == natural:
            break
    else:
        raise AssertionError(f"no request with checksum {natural:#06x}")
    req = request(PEERS[0], 1, 2, bytes(base[8:]), icmp_csum=field)
    first = h.idents.next(PEERS[0])
    h.receive(memoryview(req), 1.0)
    (frame,) = h.poll_transmit()
    got = b"".join(frame)
    assert got == expected(req, (first + 1) & 0xFFFF, h.config.ttl)
    assert ck.verify(got[34:len(req)])


def test_new_destination_starts_from_the_allocator() -> None:
    """A destination the ident table has not seen yet goes through IdentAllocator.next (random start)."""
    h, ref = host(), host()
    req = request(PEERS[1], 5, 6, b"abc")
    h.receive(memoryview(req), 1.0)
    got = b"".join(h.poll_transmit()[0])
    assert struct.unpack_from("!H", got, 18)[0] == ref.idents.next(PEERS[1])  # same rng seed, same start
    assert h.idents.idents[PEERS[1]] == struct.unpack_from("!H", got, 18)[0]


def test_bad_request_checksum_is_refused_and_counted() -> None:
    h = host()
    req = request(PEERS[0], 1, 1, b"payload", icmp_csum=0x1234)
    h.receive(memoryview(req), 1.0)
    assert h.poll_transmit() == []
    assert h.icmp_stats.rx_bad_checksum == 1
    assert as_dict(h.icmp_stats)["tx_echo_replies"] == 0
