"""UDP on the wire, checked with scapy: checksums (0 / 0xFFFF), length rules, port unreachable and
its rate limit. Frames are crafted by scapy and written on a raw Hub port; what the stack sends is
captured on the same port, which also answers ARP for the fake peers.
"""

from __future__ import annotations

import random
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest
from scapy.layers.inet import ICMP, IP, UDP, IPOption, UDPerror
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw
from testlib import Recorder, ref_ones_sum, settle

from tcpip import Stack
from tcpip.netif.clock import VirtualClock
from tcpip.netif.hub import Hub

US = "198.18.0.2"
PEER = "198.18.0.1"
PEER2 = "198.18.0.3"
PEER_MAC = "02:00:00:00:00:01"
SUBNET_BCAST = "198.18.0.255"


def pseudo(src: str, dst: str, length: int) -> bytes:
    return bytes(IP(src=src, dst=dst))[12:20] + struct.pack("!BBH", 0, 17, length)


class Wire:
    """A stack at US and a raw Hub port playing PEER/PEER2 (answering ARP for them)."""

    def __init__(self, hub: Hub, clock: VirtualClock, stack: Stack) -> None:
        self.hub = hub
        self.clock = clock
        self.stack = stack
        self.port = hub.port(PEER_MAC)
        self.frames: list[Ether] = []
        self.port.attach(self._on_frame)

    def _on_frame(self, frame: memoryview) -> None:
        pkt = Ether(bytes(frame))
        if ARP in pkt and pkt[ARP].op == 1 and pkt[ARP].pdst in (PEER, PEER2):
            reply = Ether(dst=pkt.src, src=PEER_MAC) / ARP(
                op=2, hwsrc=PEER_MAC, psrc=pkt[ARP].pdst, hwdst=pkt.src, pdst=pkt[ARP].psrc)
            self.port.transmit((bytes(reply),))
            return
        self.frames.append(pkt)

    async def inject(self, ip_packet: Any, *, dst_mac: str | None = None) -> None:
        frame = Ether(dst=dst_mac or str(self.stack.mac), src=PEER_MAC) / ip_packet
        await self.port.write(bytes(frame))
        await settle()

    def icmp_errors(self) -> list[Ether]:
        return [f for f in self.frames if ICMP in f and f[ICMP].type == 3]

    def udp_out(self) -> list[Ether]:
        return [f for f in self.frames if UDP in f and ICMP not in f]

    def udp_stats(self) -> dict[str, int]:
        return self.stack.stats()["udp"]

    async def endpoint(self, local_addr: Any = None, **kw: Any) -> tuple[Any, Recorder]:
        return await self.stack.create_datagram_endpoint(Recorder, local_addr, **kw)


@pytest.fixture
async def wire() -> AsyncIterator[Wire]:
    hub = Hub()
    clock = VirtualClock(500.0)
    stack = await Stack.connect(hub.port(), ipv4=f"{US}/24", clock=clock, rng=random.Random(3))
    w = Wire(hub, clock, stack)
    await settle()
    w.frames.clear()
    yield w
    await stack.disconnect()


# -- checksums on output ---------------------------------------------------------------------------
def _payload_for_zero_checksum(sport: int, dport: int, prefix: bytes) -> bytes:
    """`prefix` (even length) + a 2-byte word making the one's-complement sum 0xFFFF: checksum 0."""
    assert len(prefix) % 2 == 0
    data = prefix + b"\0\0"
    length = 8 + len(data)
    s = ref_ones_sum(pseudo(US, PEER, length) + struct.pack("!HHHH", sport, dport, length, 0) + data)
    word = ~s & 0xFFFF
    out = prefix + struct.pack("!H", word)
    total = ref_ones_sum(pseudo(US, PEER, length) + struct.pack("!HHHH", sport, dport, length, 0) + out)
    assert total == 0xFFFF  # the computed checksum ~total is 0
    return out


@pytest.mark.parametrize("payload", [b"", b"x", b"even", bytes(range(256)) * 5, "zero"])
async def test_output_checksum_matches_scapy(wire: Wire, payload: bytes | str) -> None:
    sport, dport = 40000, 53
    if payload == "zero":
        payload = _payload_for_zero_checksum(sport, dport, b"make the sum come out as zero!")
    assert isinstance(payload, bytes)
    t, _ = await wire.endpoint((US, sport))
    t.sendto(payload, (PEER, dport))
    await settle(lambda: len(wire.udp_out()) == 1)
    pkt = wire.udp_out()[0]
    udp = pkt[UDP]
    assert (pkt[IP].src, pkt[IP].dst, udp.sport, udp.dport) == (US, PEER, sport, dport)
    assert udp.len == 8 + len(payload)
    wire_udp = bytes(pkt[IP])[20:pkt[IP].len]  # Ethernet padding trimmed by the IP total length
    assert wire_udp[8:] == payload
    # scapy recomputes the checksum (it applies the 0 -> 0xFFFF rule too).
    again = IP(bytes(pkt[IP]))
    del again[UDP].chksum
    assert IP(bytes(again))[UDP].chksum == udp.chksum
    assert udp.chksum != 0  # 0 would mean "no checksum"
    if len(payload) == 32:  # the crafted one
        assert udp.chksum == 0xFFFF
    # And it verifies: the sum over pseudo-header and datagram is 0xFFFF.
    assert ref_ones_sum(pseudo(US, PEER, udp.len) + wire_udp) == 0xFFFF


# -- checksums and lengths on input ----------------------------------------------------------------
def _datagram(payload: bytes, *, sport: int = 1234, dport: int = 7000, src: str = PEER,
              dst: str = US) -> bytes:
    """The bytes of a UDP datagram with a correct checksum, as scapy builds it."""
    return bytes(IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / Raw(payload))[20:]


def _ip_with(udp_bytes: bytes, src: str = PEER, dst: str = US) -> IP:
    return IP(src=src, dst=dst, proto=17) / Raw(udp_bytes)


async def test_correct_checksum_accepted(wire: Wire) -> None:
    _, p = await wire.endpoint((US, 7000))
    await wire.inject(IP(src=PEER, dst=US) / UDP(sport=1234, dport=7000) / Raw(b"good"))
    assert p.got == [(b"good", (PEER, 1234))]
    assert wire.udp_stats()["rx_delivered"] == 1


async def test_checksum_zero_means_not_verified(wire: Wire) -> None:
    _, p = await wire.endpoint((US, 7000))
    await wire.inject(IP(src=PEER, dst=US) / UDP(sport=1234, dport=7000, chksum=0) / Raw(b"nocsum"))
    assert p.got == [(b"nocsum", (PEER, 1234))]
    assert wire.udp_stats()["rx_bad_checksum"] == 0


async def test_checksum_ffff_for_a_zero_sum_accepted(wire: Wire) -> None:
    _, p = await wire.endpoint((US, 7000))
    data = b"make the sum come out as zero!.."
    # Find the trailing word that makes the sum zero for this direction (PEER -> US).
    length = 8 + len(data)
    s = ref_ones_sum(pseudo(PEER, US, length) + struct.pack("!HHHH", 1234, 7000, length, 0)
                 + data[:-2] + b"\0\0")
    data = data[:-2] + struct.pack("!H", ~s & 0xFFFF)
    pkt = IP(src=PEER, dst=US) / UDP(sport=1234, dport=7000) / Raw(data)
    assert IP(bytes(pkt))[UDP].chksum == 0xFFFF  # scapy sends it as 0xFFFF too
    await wire.inject(pkt)
    assert p.got == [(data, (PEER, 1234))]


@pytest.mark.parametrize("flip", [1, 0x100, 0xFFFE])
async def test_bad_checksum_dropped_and_counted(wire: Wire, flip: int) -> None:
    _, p = await wire.endpoint((US, 7000))
    raw = bytearray(_datagram(b"corrupt me"))
    c = struct.unpack_from("!H", raw, 6)[0]
    bad = c ^ flip or 0x1234
    struct.pack_into("!H", raw, 6, bad)
    await wire.inject(_ip_with(bytes(raw)))
    assert p.got == []
    assert wire.udp_stats()["rx_bad_checksum"] == 1
    assert wire.udp_stats()["rx_delivered"] == 0
    assert wire.icmp_errors() == []  # never an error about a corrupt datagram


async def test_bad_checksum_in_payload_dropped(wire: Wire) -> None:
    _, p = await wire.endpoint((US, 7000))
    raw = bytearray(_datagram(b"corrupt me"))
    raw[-1] ^= 0x40  # the payload changed in flight
    await wire.inject(_ip_with(bytes(raw)))
    assert p.got == []
    assert wire.udp_stats()["rx_bad_checksum"] == 1


async def test_bytes_beyond_udp_length_are_ignored(wire: Wire) -> None:
    _, p = await wire.endpoint((US, 7000))
    udp = _datagram(b"real payload")  # length field and checksum cover these bytes only
    await wire.inject(_ip_with(udp + b"TRAILING JUNK"))
    assert p.got == [(b"real payload", (PEER, 1234))]
    assert wire.udp_stats()["rx_bad_checksum"] == 0


async def test_bytes_beyond_udp_length_ignored_without_checksum(wire: Wire) -> None:
    _, p = await wire.endpoint((US, 7000))
    udp = bytes(UDP(sport=1234, dport=7000, len=8 + 3, chksum=0) / Raw(b"abcdef"))
    assert struct.unpack_from("!H", udp, 4)[0] == 11
    await wire.inject(_ip_with(udp))
    assert p.got == [(b"abc", (PEER, 1234))]


async def test_length_longer_than_ip_payload_dropped(wire: Wire) -> None:
    _, p = await wire.endpoint((US, 7000))
    raw = bytearray(_datagram(b"short"))
    struct.pack_into("!H", raw, 4, len(raw) + 1)
    struct.pack_into("!H", raw, 6, 0)  # no checksum: only the length rule can drop it
    await wire.inject(_ip_with(bytes(raw)))
    assert p.got == []
    assert wire.udp_stats()["rx_truncated"] == 1
    assert wire.icmp_errors() == []


@pytest.mark.parametrize("length", [0, 1, 7])
async def test_length_below_header_size_dropped(wire: Wire, length: int) -> None:
    _, p = await wire.endpoint((US, 7000))
    raw = bytearray(_datagram(b"payload"))
    struct.pack_into("!HH", raw, 4, length, 0)
    await wire.inject(_ip_with(bytes(raw)))
    assert p.got == []
    assert wire.udp_stats()["rx_bad_length"] == 1


@pytest.mark.parametrize("n", range(8))
async def test_ip_payload_shorter_than_udp_header_dropped(wire: Wire, n: int) -> None:
    _, p = await wire.endpoint((US, 7000))
    await wire.inject(_ip_with(_datagram(b"")[:n]))
    assert p.got == []
    assert wire.udp_stats()["rx_delivered"] == 0
    assert wire.udp_stats()["rx_truncated"] == 1
    assert wire.icmp_errors() == []


# -- port unreachable ------------------------------------------------------------------------------
@pytest.mark.parametrize("options", [b"", b"\x01\x01\x01\x00"])
async def test_closed_port_gives_icmp_port_unreachable_quoting_header_and_8_bytes(
        wire: Wire, options: bytes) -> None:
    probe = IP(src=PEER, dst=US, ttl=33, options=[IPOption(options)] if options else []) / UDP(
        sport=5555, dport=9) / Raw(b"is anyone listening on the discard port?")
    sent = bytes(probe)
    hl = (sent[0] & 15) * 4
    assert hl == 20 + len(options)
    await wire.inject(probe)
    errs = wire.icmp_errors()
    assert len(errs) == 1
    e = errs[0]
    assert (e[IP].src, e[IP].dst) == (US, PEER)
    assert (e[ICMP].type, e[ICMP].code) == (3, 3)
    body = bytes(e[ICMP])
    assert body[8:] == sent  # the whole datagram: it fits in 576 bytes (RFC 1812 4.3.2.3, like Linux)
    assert body[4:8] == b"\0\0\0\0"  # unused
    assert ref_ones_sum(body) == 0xFFFF  # ICMP checksum verifies
    chk = e[IP].copy()
    del chk[ICMP].chksum
    assert IP(bytes(chk))[ICMP].chksum == e[ICMP].chksum  # and scapy agrees
    assert e[UDPerror].dport == 9
    st = wire.stack.stats()
    assert st["udp"]["rx_no_port"] == 1
    assert st["icmp"]["tx_dest_unreachable"] == 1


async def test_open_port_gives_no_icmp(wire: Wire) -> None:
    await wire.endpoint((US, 9))
    await wire.inject(IP(src=PEER, dst=US) / UDP(sport=5555, dport=9) / Raw(b"x"))
    assert wire.icmp_errors() == []
    assert wire.udp_stats()["rx_no_port"] == 0


async def test_port_unreachable_rate_limit_per_destination(wire: Wire) -> None:
    async def burst(src: str, n: int) -> None:
        for i in range(n):
            await wire.port.write(bytes(Ether(dst=str(wire.stack.mac), src=PEER_MAC) / IP(
                src=src, dst=US) / UDP(sport=5000 + i, dport=9)))
        await settle()
        await settle()

    def errors_to(dst: str) -> int:
        return sum(1 for f in wire.icmp_errors() if f[IP].dst == dst)

    await burst(PEER, 20)
    assert errors_to(PEER) == 6  # the per-destination burst
    assert wire.stack.stats()["icmp"]["tx_rate_limited"] == 14
    assert wire.udp_stats()["rx_no_port"] == 20  # every datagram is counted, sent or not
    await burst(PEER2, 10)  # another destination has its own bucket
    assert errors_to(PEER2) == 6
    wire.clock.advance(0.5)
    await burst(PEER, 5)
    assert errors_to(PEER) == 6  # half a token: still nothing
    wire.clock.advance(0.5)
    await burst(PEER, 5)
    assert errors_to(PEER) == 7  # one token per second
    wire.clock.advance(3)
    await burst(PEER, 10)
    assert errors_to(PEER) == 10  # three more seconds, three more
    wire.clock.advance(60)
    await burst(PEER, 10)
    assert errors_to(PEER) == 16  # refilled to the burst, never beyond


@pytest.mark.parametrize(("dst", "dst_mac"), [("255.255.255.255", "ff:ff:ff:ff:ff:ff"),
                                              (SUBNET_BCAST, "ff:ff:ff:ff:ff:ff"),
                                              ("224.0.0.1", "01:00:5e:00:00:01")])
async def test_no_icmp_for_broadcast_or_multicast_destinations(wire: Wire, dst: str,
                                                              dst_mac: str) -> None:
    for i in range(3):
        await wire.inject(IP(src=PEER, dst=dst) / UDP(sport=5000 + i, dport=9), dst_mac=dst_mac)
    assert wire.icmp_errors() == []
    assert wire.udp_stats()["rx_broadcast_no_port"] == 3
    assert wire.udp_stats()["rx_no_port"] == 0


async def test_no_icmp_for_unicast_ip_in_link_broadcast(wire: Wire) -> None:
    await wire.inject(IP(src=PEER, dst=US) / UDP(sport=5000, dport=9), dst_mac="ff:ff:ff:ff:ff:ff")
    assert wire.icmp_errors() == []


@pytest.mark.parametrize("dst", ["255.255.255.255", SUBNET_BCAST])
async def test_broadcast_received_on_a_bound_port(wire: Wire, dst: str) -> None:
    _, p = await wire.endpoint(("0.0.0.0", 67))
    await wire.inject(IP(src=PEER, dst=dst) / UDP(sport=68, dport=67) / Raw(b"DISCOVER"),
                      dst_mac="ff:ff:ff:ff:ff:ff")
    assert p.got == [(b"DISCOVER", (PEER, 68))]


async def test_icmp_port_unreachable_from_scapy_reaches_error_received(wire: Wire) -> None:
    t, p = await wire.endpoint((US, 40001))
    t.sendto(b"query", (PEER, 53))
    await settle(lambda: len(wire.udp_out()) == 1)
    out = wire.udp_out()[0][IP]
    await wire.inject(IP(src=PEER, dst=US) / ICMP(type=3, code=3) / bytes(out)[:28])
    assert len(p.errors) == 1
    assert isinstance(p.errors[0], ConnectionRefusedError)
    # A forged error about a port nobody uses, or quoting another source, reaches nobody.
    forged = bytearray(bytes(out)[:28])
    forged[20:22] = (40002).to_bytes(2, "big")
    await wire.inject(IP(src=PEER, dst=US) / ICMP(type=3, code=3) / bytes(forged))
    assert len(p.errors) == 1


async def test_connected_endpoint_ignores_icmp_errors_about_other_peers(wire: Wire) -> None:
    t, p = await wire.endpoint((US, 40003), remote_addr=(PEER, 53))
    t.sendto(b"query")
    await settle(lambda: len(wire.udp_out()) == 1)
    quote = bytearray(bytes(wire.udp_out()[0][IP])[:28])
    other = bytearray(quote)
    other[22:24] = (54).to_bytes(2, "big")  # about a datagram to another port of the peer
    await wire.inject(IP(src=PEER, dst=US) / ICMP(type=3, code=3) / bytes(other))
    assert p.errors == []
    await wire.inject(IP(src=PEER, dst=US) / ICMP(type=3, code=3) / bytes(quote))
    assert [type(e) for e in p.errors] == [ConnectionRefusedError]
