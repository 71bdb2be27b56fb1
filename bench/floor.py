"""The floor: what CPython does at best for the same work, hand-written with no framework.

Precompiled `struct.Struct`s over a memoryview, `int.from_bytes` checksums, callbacks; nothing else.
The receive floor does the same work as tcpip's input path per frame kind (for an ICMP echo request it
verifies the ICMP checksum and queues a reply, as tcpip does); the transmit floor builds one UDP datagram
from a precomputed per-destination header with partial checksums.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from bench.frames import OUR_IP, OUR_MAC, PEER_IP, PEER_MAC

Handler = Callable[[int, int, memoryview], Any]
Sink = Callable[[tuple[Any, ...]], Any]

_RX = struct.Struct("!6s6xHBBHHHBBHII")  # destination MAC, ethertype, then the IPv4 header
_U16 = struct.Struct("!H")
_IP_OUT = struct.Struct("!HH2xBBH")  # total length, ident, [flags/frag], ttl, proto, checksum
_UDP_OUT = struct.Struct("!HH")  # length, checksum
_IP_HDR = struct.Struct("!BBHHHBBHII")
_from = int.from_bytes
_LITTLE = struct.pack("=H", 1) == b"\x01\x00"


class FloorReceiver:
    """Ethernet + IPv4 input with the checks a host needs, then dispatch (ICMP echo answered)."""

    def __init__(self, mac: bytes, addr: int, peer_mac: bytes, on_udp: Handler, on_tcp: Handler) -> None:
        self.mac = mac
        self.addr = addr
        self.on_udp = on_udp
        self.on_tcp = on_tcp
        self.tx: list[tuple[bytearray]] = []
        self.ident = 0
        self.eth_reply = peer_mac + mac + b"\x08\x00"

    def receive(self, mv: memoryview) -> None:
        dmac, et, vihl, _tos, total, _id, ff, _ttl, proto, _c, src, dst = _RX.unpack_from(mv, 0)
        if et != 0x0800 or vihl != 0x45 or dst != self.addr or dmac != self.mac or ff & 0x3FFF \
                or total < 20 or total + 14 > len(mv):
            return
        x = _from(mv[14:34], "big")
        if x % 0xFFFF or not x:
            return
        if proto == 17:
            self.on_udp(src, dst, mv[34:14 + total])
        elif proto == 6:
            self.on_tcp(src, dst, mv[34:14 + total])
        elif proto == 1:
            self._icmp(mv[34:14 + total], src)

    def _icmp(self, m: memoryview, src: int) -> None:
        n = len(m)
        if n < 8 or m[0] != 8:
            return
        x = _from(m, "big") << 8 if n & 1 else _from(m, "big")
        if x % 0xFFFF or not x:
            return
        out = bytearray(34 + n if n >= 26 else 60)
        out[0:14] = self.eth_reply
        out[34:34 + n] = m
        out[34] = 0
        c = (~_U16.unpack_from(m, 2)[0] & 0xFFFF) + 0xF7FF  # RFC 1624: type 8 -> 0
        c = (c & 0xFFFF) + (c >> 16)
        _U16.pack_into(out, 36, ~c & 0xFFFF)
        self.ident = ident = (self.ident + 1) & 0xFFFF
        _IP_HDR.pack_into(out, 14, 0x45, 0, 20 + n, ident, 0, 64, 1, 0, self.addr, src)
        s = _from(out[14:34], "big") % 0xFFFF
        _U16.pack_into(out, 24, 0xFFFF - s if s else 0)
        self.tx.append((out,))


class FloorSender:
    """UDP datagrams to one destination from a precomputed 42-byte Ethernet/IPv4/UDP header.

    The constant header fields' one's-complement sums are computed once; per datagram only the total
    length, ident, UDP length and the payload's sum are added in."""

    def __init__(self, sport: int, dport: int, send: Sink) -> None:
        hdr = bytearray(42)
        hdr[0:14] = PEER_MAC + OUR_MAC + b"\x08\x00"
        struct.pack_into("!BBHHHBBHII", hdr, 14, 0x45, 0, 0, 0, 0, 64, 17, 0, OUR_IP, PEER_IP)
        struct.pack_into("!HHHH", hdr, 34, sport, dport, 0, 0)
        self.template = bytes(hdr)
        self.ip_sum = _from(hdr[14:34], "big") % 0xFFFF  # without length and ident
        # pseudo-header (addresses, protocol) + ports; the UDP length is added twice per datagram
        self.udp_sum = (_from(struct.pack("!IIHHH", OUR_IP, PEER_IP, 17, sport, dport), "big")) % 0xFFFF
        self.ident = 0
        self.send = send

    def send_udp(self, payload: bytes | memoryview) -> None:
        n = len(payload)
        hdr = bytearray(self.template)
        self.ident = ident = (self.ident + 1) & 0xFFFF
        total = 28 + n
        s = (self.ip_sum + total + ident) % 0xFFFF
        ulen = 8 + n
        x = _from(payload, "big") << 8 if n & 1 else _from(payload, "big")
        u = (self.udp_sum + ulen + ulen + x) % 0xFFFF
        _IP_OUT.pack_into(hdr, 16, total, ident, 64, 17, 0xFFFF - s if s else 0)
        _UDP_OUT.pack_into(hdr, 38, ulen, 0xFFFF - u)  # u == 0: sum 0xFFFF, sent as 0xFFFF (RFC 768)
        self.send((hdr, payload))


def checksum_mod(data: bytes | bytearray | memoryview) -> int:
    """Best pure-Python idiom (usually): one C-level int.from_bytes and one modulo by 0xFFFF.

    2**16 == 1 (mod 0xFFFF), so the word sum is the integer mod 0xFFFF; a zero remainder of non-zero
    data is the one's-complement sum 0xFFFF (checksum 0); all-zero data sums to 0 (checksum 0xFFFF)."""
    x = _from(data, "big") << 8 if len(data) & 1 else _from(data, "big")
    s = x % 0xFFFF
    return 0xFFFF - s if s or not x else 0


def checksum_fold(data: bytes | bytearray | memoryview) -> int:
    """Alternative idiom: int.from_bytes, then fold the integer in halves (log2 steps) to 16 bits."""
    n = len(data)
    x = _from(data, "big") << 8 if n & 1 else _from(data, "big")
    bits = (n + 1) // 2 * 16
    while bits > 64:
        half = (bits // 16 + 1) // 2 * 16  # split at a 16-bit boundary: 2**16 == 1 (mod 0xFFFF)
        x = (x >> half) + (x & ((1 << half) - 1))
        bits = half + 16
    while x >> 16:
        x = (x & 0xFFFF) + (x >> 16)
    return ~x & 0xFFFF


def checksum_cast(data: bytes | bytearray | memoryview) -> int:
    """Alternative idiom: sum of native 16-bit words (memoryview cast), byte-swapped at the end."""
    mv = memoryview(data)
    if len(mv) & 1:
        mv = memoryview(bytes(mv) + b"\0")
    s = sum(mv.cast("H"))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    if _LITTLE:  # little-endian host: RFC 1071 byte-order independence
        s = ((s << 8) | (s >> 8)) & 0xFFFF
    return ~s & 0xFFFF


IDIOMS: dict[str, Callable[[bytes | bytearray | memoryview], int]] = {
    "from_bytes % 0xFFFF": checksum_mod,
    "from_bytes fold-halves": checksum_fold,
    "memoryview.cast('H') sum": checksum_cast,
}


_TCP_IN = struct.Struct("!HHIIB")  # ports, seq, ack, data offset
_TCP_TS_IN = struct.Struct("!I")  # TSval, when the option block starts NOP NOP TS
_ACK_OUT = struct.Struct("!HHHBBH")  # IPv4: total length, ident, DF, ttl, proto, checksum
_ACK_TCP = struct.Struct("!IIBBHHHBBBBII")  # seq, ack, offset, flags, window, checksum, urg, NOP NOP TS


class FloorTcpReceiver:
    """The least an in-order TCP receiver does per segment of one established connection: Ethernet + IPv4
    checks and header checksum, the TCP checksum over the pseudo-header, the 4-tuple and sequence check,
    the payload appended to the application's buffer, and every second segment an ACK (with the timestamp
    echo the connection negotiated) built with both checksums. No reassembly, no window management."""

    def __init__(self, mac: bytes, addr: int, peer_mac: bytes, peer: int, lport: int, rport: int,
                 rcv_nxt: int, snd_nxt: int) -> None:
        self.mac, self.addr, self.peer, self.lport, self.rport = mac, addr, peer, lport, rport
        self.rcv_nxt = rcv_nxt
        self.snd_nxt = snd_nxt
        self.buf = bytearray()
        self.unacked = 0
        self.acks = 0
        self.ident = 0
        self.tx: list[tuple[bytearray]] = []
        self.pseudo = (peer >> 16) + (peer & 0xFFFF) + (addr >> 16) + (addr & 0xFFFF) + 6
        t = bytearray(66)
        t[0:14] = peer_mac + mac + b"\x08\x00"
        _IP_HDR.pack_into(t, 14, 0x45, 0, 52, 0, 0x4000, 64, 6, 0, addr, peer)
        struct.pack_into("!HH", t, 34, lport, rport)
        self.template = bytes(t)
        self.ip_sum = _from(t[14:34], "big") % 0xFFFF  # without ident and checksum
        self.ack_pseudo = self.pseudo + 32  # addresses + protocol + TCP length (32: header with TS)

    def receive(self, mv: memoryview) -> None:
        dmac, et, vihl, _tos, total, _id, ff, _ttl, proto, _c, src, dst = _RX.unpack_from(mv, 0)
        if et != 0x0800 or vihl != 0x45 or dst != self.addr or dmac != self.mac or ff & 0x3FFF \
                or proto != 6 or total < 40 or total + 14 > len(mv):
            return
        x = _from(mv[14:34], "big")
        if x % 0xFFFF or not x:
            return
        n = total - 20
        seg = mv[34:14 + total]
        x = _from(seg, "big") << 8 if n & 1 else _from(seg, "big")
        if (self.pseudo + n + x) % 0xFFFF:
            return
        sport, dport, seq, _ack, off = _TCP_IN.unpack_from(mv, 34)
        if src != self.peer or sport != self.rport or dport != self.lport or seq != self.rcv_nxt:
            return
        hl = (off >> 4) << 2
        data = seg[hl:]
        self.buf += data
        self.rcv_nxt = (seq + len(data)) & 0xFFFFFFFF
        self.unacked += 1
        if self.unacked == 2:
            self.unacked = 0
            self._ack(_TCP_TS_IN.unpack_from(mv, 58)[0] if hl == 32 and mv[54] == 1 else 0)

    def read(self) -> bytes:
        data = bytes(self.buf)
        self.buf.clear()
        return data

    def _ack(self, tsecr: int) -> None:
        out = bytearray(self.template)
        self.ident = ident = (self.ident + 1) & 0xFFFF
        s = (self.ip_sum + ident) % 0xFFFF
        _ACK_OUT.pack_into(out, 16, 52, ident, 0x4000, 64, 6, 0xFFFF - s if s else 0)
        _ACK_TCP.pack_into(out, 38, self.snd_nxt, self.rcv_nxt, 0x80, 0x10, 0xFFFF, 0, 0, 1, 1, 8, 10,
                           self.acks, tsecr)
        u = (self.ack_pseudo + _from(out[34:66], "big")) % 0xFFFF
        _U16.pack_into(out, 50, 0xFFFF - u if u else 0xFFFF)
        self.acks += 1
        self.tx.append((out,))
