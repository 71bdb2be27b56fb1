"""The fast paths count once per frame (`Host.fast`) instead of once per layer counter; every reader adds
those counts back in. Two hosts get the same traffic, one on the fast paths and one forced onto the general
paths (a path-MTU entry for output and ICMP, IPv4 options for UDP input): the frames they send and every
counter every reader shows must match."""

from __future__ import annotations

import dataclasses
import random
import struct

from tcpip.core.config import InterfaceConfig
from tcpip.core.interface import Interface
from tcpip.core.stats import EthernetStats, as_dict, unbalanced
from tcpip.core.udp import UdpLayer
from tcpip.wire import checksum as ck
from tcpip.wire.mac import MacAddress

OUR_MAC = bytes.fromhex("020000000002")
PEER_MAC = bytes.fromhex("020000000001")
OUR_IP = 0xC6120002
PEER = 0xC6120001
ELSEWHERE = 0xC6120063  # an on-link host we never talk to: its path-MTU entry turns the fast paths off
NOPS = b"\x01" * 4  # IPv4 options (four NOPs): the general input path, same reply


def host(fast: bool) -> tuple[Interface, UdpLayer]:
    h = Interface(InterfaceConfig(mac=MacAddress(OUR_MAC), address=OUR_IP, netmask=0xFFFFFF00), now=0.0,
                  rng=random.Random(7))
    h.arp.add_static(PEER, PEER_MAC)
    if not fast:
        h.routing.update_pmtu(ELSEWHERE, 1000, 1500, 0.0)
    udp = UdpLayer(h, random.Random(8))

    def echo(data: memoryview, src: int, sport: int, _dst: int, now: float) -> None:
        udp.send(7, src, sport, bytes(data), now)

    udp.bind(7, 0, echo)
    return h, udp


def echo_request(seq: int, data: bytes) -> bytes:
    m = bytearray(struct.pack("!BBHHH", 8, 0, 0, 0x1234, seq) + data)
    struct.pack_into("!H", m, 2, ck.checksum(m))
    return _frame(1, bytes(m))


def udp_request(data: bytes, options: bytes = b"") -> bytes:
    length = 8 + len(data)
    c = ck.checksum(data, ck.pseudo_header_sum(PEER, OUR_IP, 17, length) + 40000 + 7 + length) or 0xFFFF
    return _frame(17, struct.pack("!HHHH", 40000, 7, length, c) + data, options)


def _frame(proto: int, payload: bytes, options: bytes = b"") -> bytes:
    hl = 20 + len(options)
    ip = bytearray(struct.pack("!BBHHHBBHII", 0x40 | hl >> 2, 0, hl + len(payload), 99, 0, 64, proto, 0, PEER,
                               OUR_IP) + options)
    struct.pack_into("!H", ip, 10, ck.checksum(ip))
    return OUR_MAC + PEER_MAC + b"\x08\x00" + bytes(ip) + payload


def readings(h: Interface, udp: UdpLayer) -> dict[str, dict[str, int]]:
    return {"ethernet": as_dict(h.eth_stats), "arp": as_dict(h.arp.stats), "ipv4": as_dict(h.ip_stats),
            "icmp": as_dict(h.icmp_stats), "udp": as_dict(udp.stats)}


def test_every_counter_of_the_fast_paths_matches_the_general_paths() -> None:
    (fh, fu), (gh, gu) = host(True), host(False)
    rng = random.Random(5)
    for i in range(40):
        data = rng.randbytes(rng.choice([0, 1, 18, 19, 56, 1400]))
        reqs = [echo_request(i, data)] * 2 if i % 2 else [udp_request(data + b"x" * 18),
                                                           udp_request(data + b"x" * 18, NOPS)]
        outs = []
        for h, req in zip((fh, gh), reqs, strict=True):
            h.receive(memoryview(req), float(i))
            outs.append([b"".join(f) for f in h.poll_transmit()])
        assert outs[0] == outs[1], i
        assert len(outs[0]) == 1
    # the fast host took the fast paths (UDP: all but the first datagram, which learns the flow)...
    assert (fh.fast.icmp_echoes, fh.fast.delivered, fh.fast.udp_rx, fh.fast.udp_tx) == (20, 20, 20, 19)
    # ...and the other none but the host's delivery of the echo requests fast_echo declined and UDP's count
    # of deliveries (every input path ends there)
    assert (gh.fast.icmp_echoes, gh.fast.delivered, gh.fast.udp_rx, gh.fast.udp_tx) == (0, 20, 20, 0)
    fast, general = readings(fh, fu), readings(gh, gu)
    assert fast == general
    assert fast["icmp"]["tx_echo_replies"] == fast["icmp"]["rx_echo_requests"] == 20
    assert fast["udp"]["tx_datagrams"] == 20
    assert fast["ethernet"]["rx_frames"] == fast["ethernet"]["tx_frames"] == 40
    assert fast["ipv4"]["tx_packets"] == fast["ipv4"]["rx_delivered"] == 40
    assert unbalanced(fh.eth_stats, fh.arp.stats, fh.ip_stats) == []
    assert unbalanced(gh.eth_stats, gh.arp.stats, gh.ip_stats) == []


def test_unbalanced_reports_the_numbers_the_readers_show() -> None:
    h, _udp = host(True)
    h.receive(memoryview(echo_request(1, b"abc")), 1.0)
    assert h.fast.icmp_echoes == 1
    h.eth_stats.rx_frames += 1  # a frame with no outcome: the books no longer balance
    assert unbalanced(h.eth_stats, h.arp.stats, h.ip_stats) == ["ethernet: 2 frames != 1 outcomes"]


def test_plain_counters_read_as_they_are() -> None:
    st = EthernetStats(rx_frames=3)
    assert as_dict(st)["rx_frames"] == 3
    assert list(as_dict(st)) == [f.name for f in dataclasses.fields(EthernetStats)]
