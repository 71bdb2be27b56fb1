"""The frames every implementation is measured on, built once with plain struct code (no library)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

# Our host (the implementation under test) and its peer, inside 198.18.0.0/15 (RFC 2544).
OUR_MAC = bytes.fromhex("020000000002")
PEER_MAC = bytes.fromhex("020000000001")
OUR_IP = 0xC6120002  # 198.18.0.2
PEER_IP = 0xC6120001  # 198.18.0.1
OUR_IP_S = "198.18.0.2"
PEER_IP_S = "198.18.0.1"
OUR_IP_B = OUR_IP.to_bytes(4, "big")
PEER_IP_B = PEER_IP.to_bytes(4, "big")
SPORT = 40000
DPORT = 7

_ETH = struct.Struct("!6s6sH")
_IP = struct.Struct("!BBHHHBBHII")
_UDP = struct.Struct("!HHHH")
_ICMP = struct.Struct("!BBHHH")
_TCP = struct.Struct("!HHIIBBHHH")


def ones_sum(data: bytes | bytearray | memoryview) -> int:
    """Reference RFC 1071 one's-complement sum, word by word (slow and obviously right)."""
    b = bytes(data)
    if len(b) & 1:
        b += b"\0"
    s = 0
    for i in range(0, len(b), 2):
        s += (b[i] << 8) | b[i + 1]
        s = (s & 0xFFFF) + (s >> 16)
    return s


def cksum(data: bytes | bytearray | memoryview, initial: int = 0) -> int:
    s = ones_sum(data) + initial
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def pseudo(src: int, dst: int, proto: int, length: int) -> int:
    return ones_sum(struct.pack("!IIBBH", src, dst, 0, proto, length))


def ip_header(proto: int, payload_len: int, ident: int, src: int = PEER_IP, dst: int = OUR_IP) -> bytes:
    h = bytearray(_IP.pack(0x45, 0, 20 + payload_len, ident, 0, 64, proto, 0, src, dst))
    struct.pack_into("!H", h, 10, cksum(h))
    return bytes(h)


def ether(payload: bytes, dst: bytes = OUR_MAC, src: bytes = PEER_MAC, etype: int = 0x0800) -> bytes:
    return _ETH.pack(dst, src, etype) + payload


def icmp_echo(data_len: int = 18, ident: int = 0x1234, seq: int = 1) -> bytes:
    data = bytes(range(data_len))
    m = bytearray(_ICMP.pack(8, 0, 0, ident, seq) + data)
    struct.pack_into("!H", m, 2, cksum(m))
    return ether(ip_header(1, len(m), 0x0101) + bytes(m))


def udp_datagram(payload: bytes, src: int = PEER_IP, dst: int = OUR_IP, sport: int = SPORT,
                 dport: int = DPORT) -> bytes:
    n = 8 + len(payload)
    u = bytearray(_UDP.pack(sport, dport, n, 0) + payload)
    c = cksum(u, pseudo(src, dst, 17, n)) or 0xFFFF
    struct.pack_into("!H", u, 6, c)
    return bytes(u)


def udp_frame(payload_len: int = 1472) -> bytes:
    payload = bytes(i & 0xFF for i in range(payload_len))
    u = udp_datagram(payload)
    return ether(ip_header(17, len(u), 0x0202) + u)


def tcp_syn() -> bytes:
    t = bytearray(_TCP.pack(SPORT, 80, 0x01020304, 0, 5 << 4, 0x02, 64240, 0, 0))
    struct.pack_into("!H", t, 16, cksum(t, pseudo(PEER_IP, OUR_IP, 6, len(t))))
    return ether(ip_header(6, len(t), 0x0303) + bytes(t))


@dataclass(frozen=True)
class RxFrame:
    name: str
    proto: int  # IPv4 protocol number
    data: bytes


def rx_frames() -> list[RxFrame]:
    """The three receive frames: 60-byte ICMP echo, 1514-byte UDP, 54-byte TCP SYN."""
    frames = [RxFrame("icmp-echo-60", 1, icmp_echo()), RxFrame("udp-1514", 17, udp_frame()),
              RxFrame("tcp-syn-54", 6, tcp_syn())]
    expected = {"icmp-echo-60": 60, "udp-1514": 1514, "tcp-syn-54": 54}
    for f in frames:
        if len(f.data) != expected[f.name]:
            raise AssertionError(f"{f.name}: {len(f.data)} bytes")
        if cksum(f.data[14:34]) != 0:
            raise AssertionError(f"{f.name}: bad IPv4 header checksum")
    return frames


def tx_payloads() -> dict[str, bytes]:
    """UDP payloads for the transmit benchmark (18 bytes: a minimum frame; 1472: a full one)."""
    return {"udp-18": bytes(range(18)), "udp-1472": bytes(i & 0xFF for i in range(1472))}


def check_udp_frame(frame: bytes, payload: bytes) -> str | None:
    """Validate a built Ether/IPv4/UDP frame from our host (port 7) to the peer: None when right."""
    if len(frame) < 42:
        return f"{len(frame)} bytes"
    dst, src, et = _ETH.unpack_from(frame, 0)
    if (dst, src, et) != (PEER_MAC, OUR_MAC, 0x0800):
        return f"ethernet header {frame[:14].hex()}"
    vihl, _tos, total, _ident, _ff, _ttl, proto, _c, s, d = _IP.unpack_from(frame, 14)
    if vihl != 0x45 or proto != 17 or (s, d) != (OUR_IP, PEER_IP):
        return f"ipv4 header {frame[14:34].hex()}"
    if total != 28 + len(payload):
        return f"ipv4 total length {total}"
    if cksum(frame[14:34]) != 0:
        return "ipv4 header checksum"
    sport, dport, ulen, uck = _UDP.unpack_from(frame, 34)
    if (sport, dport, ulen) != (DPORT, SPORT, 8 + len(payload)):
        return f"udp header {frame[34:42].hex()}"
    if uck == 0 or cksum(frame[34:14 + total], pseudo(OUR_IP, PEER_IP, 17, ulen)) != 0:
        return "udp checksum"
    if frame[42:14 + total] != payload:
        return "udp payload"
    return None
