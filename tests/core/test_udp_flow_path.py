"""UdpLayer.send's per-flow hit path (header sums precomputed per flow, Path freshness read from the flow's
copies of its fields): every frame it builds must be what scapy builds from the same fields, and anything
that may change the answer (the MTU, a path MTU entry, the neighbour) sends it back to the general path."""

from __future__ import annotations

import random

import pytest
from scapy.layers.inet import IP, UDP
from testlib import make_iface, neighbour, sent

from tcpip.core.stats import as_dict
from tcpip.core.udp import UdpLayer

PEER = 0xC6120001
PEER_MAC = b"\x02\x00\x00\x00\x00\x01"


def _layer() -> tuple[UdpLayer, list[int]]:
    iface = make_iface()
    iface.arp.add_static(PEER, PEER_MAC)
    udp = UdpLayer(iface, random.Random(3))
    slow: list[int] = []
    real = udp._send_slow

    def counting(*a: object, **k: object) -> int:
        slow.append(1)
        return real(*a, **k)  # type: ignore[arg-type]

    udp._send_slow = counting  # type: ignore[method-assign]
    return udp, slow


def _reference(frame: bytes) -> bytes:
    """The same datagram rebuilt by scapy with both checksums recomputed."""
    ip = IP(frame[14:])
    del ip.chksum
    del ip[UDP].chksum
    return frame[:14] + bytes(ip)


def test_flow_frames_match_scapy_for_every_length_and_checksum_corner() -> None:
    udp, slow = _layer()
    rng = random.Random(7)
    payloads = [bytes(rng.randrange(256) for _ in range(n)) for n in range(18, 80)]
    payloads += [b"\xff" * 18, b"\x00" * 19, b"\xff\xff" * 700]
    # A payload whose UDP checksum comes out 0 (sent as 0xFFFF): search for one with the flow's own sums.
    for k in range(70000):
        p = k.to_bytes(2, "big") + bytes(16)
        udp.send(1000, PEER, 7, p, 0.0)
        f = sent(udp.iface)[0]
        if f[40:42] == b"\xff\xff":
            payloads.append(p)
            break
    else:
        pytest.fail("no payload with a zero checksum found")
    slow.clear()
    for p in payloads:
        udp.send(1000, PEER, 7, p, 1.0)
        (f,) = sent(udp.iface)
        assert f == _reference(f)
        assert f[:6] == PEER_MAC
        assert f[42:] == p
    assert slow == []  # every one took the hit path


def test_flow_counts_like_the_general_path() -> None:
    udp, _slow = _layer()
    iface = udp.iface
    for i in range(5):
        udp.send(1000, PEER, 7, b"x" * 20, float(i))
    sent(iface)
    assert as_dict(udp.stats)["tx_datagrams"] == 5
    assert as_dict(iface.ip_stats)["tx_packets"] == 5
    assert as_dict(iface.eth_stats)["tx_frames"] == 5


def test_mtu_change_pmtu_and_neighbour_change_leave_the_flow() -> None:
    udp, slow = _layer()
    iface = udp.iface
    udp.send(1000, PEER, 7, b"y" * 1000, 0.0)
    udp.send(1000, PEER, 7, b"y" * 1000, 0.0)
    assert len(sent(iface)) == 2
    assert slow == [1]  # learnt once, then the flow
    iface.set_mtu(576)
    udp.send(1000, PEER, 7, b"y" * 1000, 0.0)  # too big now: the general path fragments it
    frames = sent(iface)
    assert len(frames) == 2
    assert all(len(f) <= 14 + 576 for f in frames)
    assert slow == [1, 1]
    iface.routing.update_pmtu(PEER, 552, 1028, 0.0)
    udp.send(1000, PEER, 7, b"y" * 100, 0.0)
    assert slow == [1, 1, 1]
    iface.routing.pmtu.clear()
    udp.send(1000, PEER, 7, b"y" * 100, 0.0)  # relearnt after the pmtu send
    udp.send(1000, PEER, 7, b"y" * 100, 0.0)
    assert slow == [1, 1, 1, 1]
    sent(iface)
    e = neighbour(iface, PEER)
    assert e is not None
    iface.arp.add_static(PEER, b"\x02\x00\x00\x00\x00\x09")  # a new MAC: the flow's Path is stale
    udp.send(1000, PEER, 7, b"y" * 100, 0.0)
    (f,) = sent(iface)
    assert f[:6] == b"\x02\x00\x00\x00\x00\x09"
    assert slow == [1, 1, 1, 1, 1]


def _datagram(sport: int, dport: int, data: bytes, src: int = PEER) -> bytes:
    ip = IP(src=f"{src >> 24}.{src >> 16 & 255}.{src >> 8 & 255}.{src & 255}", dst="198.18.0.2", ttl=64)
    return b"\x02\x00\x00\x00\x00\x02" + PEER_MAC + b"\x08\x00" + bytes(ip / UDP(sport=sport, dport=dport) / data)


@pytest.mark.parametrize("as_bytes", [False, True])
def test_echo_binding_answers_from_input(as_bytes: bool) -> None:
    udp, _slow = _layer()
    b = udp.bind_echo(7)
    assert b.echo
    for i, data in enumerate([b"", b"x", bytes(range(256)) * 5]):
        f = _datagram(5000 + i, 7, data)
        udp.iface.receive(f if as_bytes else memoryview(f), 1.0)
        (out,) = sent(udp.iface)
        ref = IP(src="198.18.0.2", dst="198.18.0.1", ttl=64, id=IP(out[14:]).id) / UDP(sport=7, dport=5000 + i) / data
        assert out[:14] == PEER_MAC + b"\x02\x00\x00\x00\x00\x02\x08\x00"
        assert out[14:14 + len(ref)] == bytes(ref)  # scapy's own datagram: headers and both checksums
    st = as_dict(udp.stats)
    assert st["rx_delivered"] == st["tx_datagrams"] == 3
    udp.unbind(b)
    udp.iface.receive(_datagram(5000, 7, b"gone"), 2.0)
    (unreach,) = sent(udp.iface)
    assert unreach[23] == 1  # ICMP port unreachable now
    assert unreach[34:36] == b"\x03\x03"


def test_echo_binding_swallows_a_failed_send() -> None:
    udp, _slow = _layer()
    udp.bind_echo(7)
    # From an off-link source with no gateway: the reply has no route (NoRouteError inside input)
    udp.iface.receive(_datagram(5000, 7, b"lost", src=0xC6130005), 1.0)
    assert sent(udp.iface) == []
    assert as_dict(udp.stats)["rx_delivered"] == 1
