"""bench/tcp_floor.py without a kernel: the frames it builds (checksums checked by scapy, the virtio header
of a super-segment) and its input rules (handshake, an ACK every two segments, duplicate ACK on a gap, bad
checksums dropped), over a SOCK_SEQPACKET pair standing in for the TAP fd."""

from __future__ import annotations

import socket
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import tcp_floor  # noqa: E402 - needs the checkout's root on the path
from bench.tcp_floor import ACK, Floor  # noqa: E402

OUR_MAC, PEER_MAC = bytes.fromhex("020000000002"), bytes.fromhex("020000000001")
OUR, PEER = "198.18.0.2", "198.18.0.1"
IRS = 1_000_000


class Rng:
    """Fixed port and ISS."""

    def randrange(self, a: int, b: int) -> int:
        return 40000

    def getrandbits(self, k: int) -> int:
        return 5000


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    b.settimeout(1)
    yield a, b
    a.close()
    b.close()


def _floor(fd: int, offload: bool, cmd: bytes = b"get 3000\n") -> Floor:
    f = Floor(fd, offload, OUR_MAC, tcp_floor._ip(OUR), tcp_floor._ip(PEER), 5001, cmd, 3000, Rng())  # type: ignore[arg-type]
    f.set_peer_mac(PEER_MAC)
    return f


def _from_peer(flags: str, seq: int, ack: int, payload: bytes = b"", options: list | None = None) -> bytes:  # type: ignore[type-arg]
    pkt = (Ether(src=PEER_MAC, dst=OUR_MAC) / IP(src=PEER, dst=OUR, flags="DF")
           / TCP(sport=5001, dport=40000, flags=flags, seq=seq, ack=ack, window=1000, options=options or [])
           / payload)
    return bytes(pkt)


def _checksums_ok(frame: bytes) -> Ether:
    pkt = Ether(frame)
    ip_sum, tcp_sum = pkt[IP].chksum, pkt[TCP].chksum
    again = Ether(frame)
    del again[IP].chksum
    del again[TCP].chksum
    again = Ether(bytes(again))
    assert (ip_sum, tcp_sum) == (again[IP].chksum, again[TCP].chksum)
    return pkt


def test_plain_segments_have_valid_checksums(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    f = _floor(a.fileno(), False)
    f.segment(f.iss, tcp_floor.SYN, b"", struct.pack("!BBH", 2, 4, 1460) + bytes((1, 3, 3, 7)))
    syn = _checksums_ok(b.recv(2048))
    assert (syn[TCP].flags, syn[TCP].seq, syn[TCP].sport, syn[TCP].dport) == ("S", 5000, 40000, 5001)
    assert dict(syn[TCP].options)["MSS"] == 1460
    assert dict(syn[TCP].options)["WScale"] == 7
    f.established, f.irs = True, IRS
    for n in (1448, 1447, 0):  # even, odd and no payload
        f.segment(5001, ACK, bytes((i * 7) & 0xFF for i in range(n)))
        p = _checksums_ok(b.recv(2048))
        assert p[TCP].ack == IRS + 1
        assert p[IP].len == 40 + n
        assert p[IP].flags == "DF"


def test_offload_super_segment_has_virtio_header_and_partial_sum(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    f = _floor(a.fileno(), True)
    f.established, f.irs = True, IRS
    payload = bytes(44 * 1460)
    f.segment(5001, ACK, payload)
    b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    frame = b.recv(1 << 17)
    assert len(frame) == 10 + 54 + len(payload)
    assert tcp_floor.VNET.unpack_from(frame, 0) == (1, 1, 54, 1460, 34, 16)  # NEEDS_CSUM, TCPV4
    total, check = struct.unpack_from("!H", frame, 10 + 16)[0], struct.unpack_from("!H", frame, 10 + 50)[0]
    assert total == 40 + len(payload)
    words = [0xC612, 0x0002, 0xC612, 0x0001, 6, 20 + len(payload)]  # pseudo-header, length included
    s = sum(words)
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    assert check == s  # folded, not complemented: the kernel finishes the sum


def test_handshake_ack_every_two_segments_and_dup_ack_on_gap(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    f = _floor(a.fileno(), False)
    f.input(_from_peer("SA", IRS, 5001, options=[("MSS", 1400), ("WScale", 3)]), 0.0)
    assert f.established
    assert (f.mss, f.peer_ws, f.peer_win) == (1400, 3, 1000)  # a SYN's window is never scaled
    ack = Ether(b.recv(2048))
    assert (ack[TCP].flags, ack[TCP].ack) == ("A", IRS + 1)
    data = bytes(range(100))
    f.input(_from_peer("A", IRS + 1, 5001, data), 0.0)
    with pytest.raises(TimeoutError):
        b.recv(2048)  # one segment: no ACK yet
    f.input(_from_peer("A", IRS + 101, 5001, data), 0.0)
    assert Ether(b.recv(2048))[TCP].ack == IRS + 201
    f.input(_from_peer("A", IRS + 401, 5001, data), 0.0)  # a gap: dropped, duplicate ACK
    assert Ether(b.recv(2048))[TCP].ack == IRS + 201
    assert f.rcv == 200
    assert f.stats["dup_acks"] == 1
    bad = bytearray(_from_peer("A", IRS + 201, 5001, data))
    bad[-1] ^= 0xFF
    f.input(bytes(bad), 0.0)
    assert f.rcv == 200
    assert f.stats["rx_csum_bad"] == 1
    assert f.peer_win == 1000 << 3
