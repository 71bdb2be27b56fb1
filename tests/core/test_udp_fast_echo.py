"""UdpLayer.fast_echo, the echo service answered from Host.receive: every reply must be, byte for byte, what
the general path (input, then send) builds from the same request, with the same counters; whatever it does
not take (a bad checksum, trailing bytes, a runt, no fresh path) goes to the general path, which counts it."""

from __future__ import annotations

import random
import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP
from testlib import make_iface, sent

from tcpip.core.echo import fast_answer, plain_unicast
from tcpip.core.host import Host
from tcpip.core.stats import as_dict
from tcpip.core.udp import ECHO_REFUSED, UdpLayer
from tcpip.wire import checksum as ck

PEER = 0xC6120001
OUR = 0xC6120002
PEER_MAC = b"\x02\x00\x00\x00\x00\x01"
OUR_MAC = b"\x02\x00\x00\x00\x00\x02"


def _pair() -> tuple[UdpLayer, UdpLayer]:
    """Two identical hosts with an echo service on port 7: the first answers from Host.receive, the second's
    fast answer is removed (input and send, the general path)."""
    out = []
    for fast in (True, False):
        iface = make_iface(static={"198.18.0.1": "02:00:00:00:00:01"})
        udp = UdpLayer(iface, random.Random(3))
        udp.bind_echo(7)
        if not fast:
            iface.set_answerer(17, None)
        out.append(udp)
    return out[0], out[1]


def _frame(data: bytes, sport: int = 5000, dport: int = 7, check: int | None = None, pad: int = 0,
           tail: bytes = b"") -> bytes:
    """A request from PEER: `check` replaces the UDP checksum; `tail`: IPv4 payload bytes past the UDP
    length; `pad`: Ethernet padding past the IPv4 datagram."""
    length = 8 + len(data)
    body = struct.pack("!HHHH", sport, dport, length, 0) + data
    c = ck.checksum(body, ck.pseudo_header_sum(PEER, OUR, 17, length)) or 0xFFFF
    body = body[:6] + struct.pack("!H", c if check is None else check) + body[8:] + tail
    ip = bytes(IP(src="198.18.0.1", dst="198.18.0.2", ttl=61, id=99, proto=17) / body)
    f = OUR_MAC + PEER_MAC + b"\x08\x00" + ip
    return f + bytes(max(pad, 60 - len(f)) if pad or len(f) < 60 else 0)


def _both(f: bytes, csum_ok: bool = False, as_bytes: bool = True) -> tuple[list[bytes], list[bytes]]:
    fast, slow = _pair()
    fast.iface.receive(f if as_bytes else memoryview(f), 1.0, csum_ok)
    slow.iface.receive(f if as_bytes else memoryview(f), 1.0, csum_ok)
    return sent(fast.iface), sent(slow.iface)


def _counts(u: UdpLayer) -> dict[str, dict[str, int]]:
    h = u.iface
    return {"eth": as_dict(h.eth_stats), "ip": as_dict(h.ip_stats), "udp": as_dict(u.stats)}


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=1472), sport=st.integers(1, 65535).filter(lambda p: p not in ECHO_REFUSED),
       mode=st.sampled_from(["valid", "none", "partial", "garbage"]), garbage=st.integers(0, 0xFFFF),
       as_bytes=st.booleans(), rounds=st.integers(1, 3))
def test_fast_echo_is_the_general_path_bit_for_bit(data: bytes, sport: int, mode: str, garbage: int,
                                                   as_bytes: bool, rounds: int) -> None:
    length = 8 + len(data)
    check = {"valid": None, "none": 0, "partial": ck.fold(ck.pseudo_header_sum(PEER, OUR, 17, length)),
             "garbage": garbage}[mode]
    csum_ok = mode in ("partial", "garbage")  # what a NEEDS_CSUM frame carries: trusted, not a full sum
    f = _frame(data, sport, check=check)
    fast, slow = _pair()
    for _ in range(rounds):  # the ident advances per destination on both paths
        fast.iface.receive(f if as_bytes else memoryview(f), 1.0, csum_ok)
        slow.iface.receive(f if as_bytes else memoryview(f), 1.0, csum_ok)
        (a,), (b,) = sent(fast.iface), sent(slow.iface)
        assert a == b
    assert fast.iface.fast.udp_echoes == rounds
    assert slow.iface.fast.udp_echoes == 0
    assert _counts(fast) == _counts(slow)
    # An independent oracle: scapy's datagram from the same fields, both checksums its own
    ip = IP(a[14:])
    ref = IP(src="198.18.0.2", dst="198.18.0.1", ttl=64, id=ip.id) / UDP(sport=7, dport=sport) / data
    assert a[:14] == PEER_MAC + OUR_MAC + b"\x08\x00"
    assert a[14:14 + len(ref)] == bytes(ref)
    assert len(a) == max(60, 14 + len(ref))


def test_counts_stand_for_every_layer() -> None:
    fast, _ = _pair()
    for i in range(5):
        fast.iface.receive(_frame(b"x" * 40, 5000 + i), 1.0)
    assert len(sent(fast.iface)) == 5
    c = _counts(fast)
    assert (c["eth"]["rx_frames"], c["eth"]["tx_frames"]) == (5, 5)
    assert (c["ip"]["rx_packets"], c["ip"]["rx_delivered"], c["ip"]["tx_packets"]) == (5, 5, 5)
    assert (c["udp"]["rx_datagrams"], c["udp"]["rx_delivered"], c["udp"]["tx_datagrams"]) == (5, 5, 5)


def test_bad_checksum_is_the_general_path_drop() -> None:
    f = _frame(b"hello", check=0x1234)
    a, b = _both(f)
    assert a == b == []
    fast, _ = _pair()
    fast.iface.receive(f, 1.0)
    assert fast.iface.fast.udp_echoes == 0
    assert as_dict(fast.stats)["rx_bad_checksum"] == 1


def test_trailing_bytes_and_padding_take_the_general_path() -> None:
    for f in (_frame(b"abc", tail=b"TAIL"), _frame(b"abc", pad=80), _frame(b"")):
        a, b = _both(f)
        assert len(a) == 1
        assert a == b
    fast, _ = _pair()
    fast.iface.receive(_frame(b"abc", tail=b"TAIL"), 1.0)
    assert fast.iface.fast.udp_echoes == 0  # trailing bytes: input trims them, send answers
    fast.iface.receive(_frame(b"abc", pad=80), 1.0)
    assert fast.iface.fast.udp_echoes == 1  # Ethernet padding: the reply is the datagram, padded to 60


def test_runt_datagram_is_a_counted_drop() -> None:
    ip = bytes(IP(src="198.18.0.1", dst="198.18.0.2", proto=17) / b"\x13\x88\x00")  # 3 bytes of UDP header
    f = OUR_MAC + PEER_MAC + b"\x08\x00" + ip
    for frame in (f, f + bytes(60 - len(f))):
        fast, _ = _pair()
        fast.iface.receive(frame, 1.0, True)
        assert sent(fast.iface) == []
        assert as_dict(fast.stats)["rx_truncated"] == 1


def test_other_ports_and_no_service() -> None:
    fast, _ = _pair()
    fast.iface.receive(_frame(b"x", dport=9), 1.0)
    (unreach,) = sent(fast.iface)
    assert unreach[23] == 1
    assert unreach[34:36] == b"\x03\x03"
    assert fast.iface.fast.udp_echoes == 0


def test_answerer_follows_the_echo_bindings() -> None:
    iface = make_iface(static={"198.18.0.1": "02:00:00:00:00:01"})
    udp = UdpLayer(iface, random.Random(3))
    assert iface.answerers == {}
    b7, b8 = udp.bind_echo(7), udp.bind_echo(8)
    assert iface.answerers == {17: udp.fast_echo}
    udp.unbind(b7)
    assert 17 in iface.answerers  # port 8 still echoes
    iface.receive(_frame(b"x", dport=8), 1.0)
    assert len(sent(iface)) == 1
    udp.unbind(b8)
    assert iface.answerers == {}
    iface.receive(_frame(b"x", dport=8), 1.0)
    (unreach,) = sent(iface)
    assert unreach[34:36] == b"\x03\x03"


def test_answer_direct_returns_the_reply_unqueued() -> None:
    fast, slow = _pair()
    fast.iface.answer_direct = True
    out = fast.iface.receive(_frame(b"direct"), 1.0)
    assert out is not None
    assert fast.iface.tx == []
    slow.iface.receive(_frame(b"direct"), 1.0)
    assert bytes(out) == sent(slow.iface)[0]


def test_unresolved_or_changed_neighbour() -> None:
    iface = make_iface()
    udp = UdpLayer(iface, random.Random(3))
    udp.bind_echo(7)
    iface.receive(_frame(b"who"), 1.0)  # no neighbour entry: the general path queues it behind ARP
    assert iface.fast.udp_echoes == 0
    (req,) = sent(iface)
    assert req[12:14] == b"\x08\x06"
    iface.arp.add_static(PEER, PEER_MAC)
    sent(iface)  # the queued reply
    iface.receive(_frame(b"now"), 2.0)
    assert iface.fast.udp_echoes == 1
    iface.arp.add_static(PEER, b"\x02\x00\x00\x00\x00\x09")  # the peer's MAC changed: the Path is stale
    iface.receive(_frame(b"moved"), 3.0)
    (f,) = sent(iface)[-1:]
    assert f[:6] == b"\x02\x00\x00\x00\x00\x09"
    assert iface.fast.udp_echoes == 2


def test_ttl_and_path_mtu_are_read_per_datagram() -> None:
    fast, slow = _pair()
    for u in (fast, slow):
        u.iface.config.ttl = 9
    fast.iface.receive(_frame(b"ttl"), 1.0)
    slow.iface.receive(_frame(b"ttl"), 1.0)
    a, b = sent(fast.iface), sent(slow.iface)
    assert a == b
    assert a[0][22] == 9
    fast.iface.routing.update_pmtu(0xC6120063, 1000, 1500, 1.0)  # any path MTU entry: the general path
    fast.iface.receive(_frame(b"pmtu"), 2.0)
    assert fast.iface.fast.udp_echoes == 1
    assert len(sent(fast.iface)) == 1


def test_host_type_exposes_set_answerer() -> None:
    iface: Host = make_iface()
    calls: list[tuple[int, int, int]] = []

    def answer(frame: memoryview | bytes, off: int, now: float, csum_ok: int) -> bytearray | None:
        assert off == 0  # Host.receive: the frame itself (core.echo passes a device's framing offset)
        got = plain_unicast(iface, frame, off)  # the fast path's rules, for an answerer that does not spell them out
        assert got is not None
        calls.append(got)
        return None

    iface.set_answerer(253, answer)  # an experimental protocol: tried first, None hands it to the registry
    ip = bytes(IP(src="198.18.0.1", dst="198.18.0.2", proto=253) / (b"z" * 30))
    iface.receive(OUR_MAC + PEER_MAC + b"\x08\x00" + ip, 1.0)
    assert calls == [(len(ip), PEER, OUR)]
    assert iface.ip_stats.rx_unknown_protocol == 1  # then the registry: no handler, counted


def test_no_echo_to_ports_that_may_echo_back() -> None:
    """A spoofed datagram from another host's echo or chargen port must not start an endless exchange
    (CVE-1999-0103): neither path answers one, and each is counted."""
    assert {0, 7, 9, 13, 19, 37} == ECHO_REFUSED
    for u in _pair():
        for sport in sorted(ECHO_REFUSED):
            u.iface.receive(_frame(b"loop?", sport=sport), 1.0)
        assert sent(u.iface) == []
        st_ = as_dict(u.stats)
        assert st_["rx_echo_refused"] == len(ECHO_REFUSED)
        assert st_["rx_datagrams"] == len(ECHO_REFUSED)
        assert st_["rx_delivered"] == st_["tx_datagrams"] == 0
        u.iface.receive(_frame(b"fine", sport=1024), 1.0)
        assert len(sent(u.iface)) == 1


def _finished(frame: bytes) -> bytes:
    """What the kernel makes of a NEEDS_CSUM reply (csum_start 34, offset 6): the sum over the datagram with
    the partial one in its field, complemented; a zero checksum goes out as 0xFFFF (RFC 768)."""
    r = (int.from_bytes(frame[34:], "big") << (8 if len(frame) & 1 else 0)) % 0xFFFF
    return frame[:40] + (0xFFFF - r if r else 0xFFFF).to_bytes(2, "big") + frame[42:]


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=1472), sport=st.integers(1, 65535).filter(lambda p: p not in ECHO_REFUSED),
       hdr=st.sampled_from(["kernel", "valid", "elsewhere", "both"]), field=st.sampled_from(["partial", "garbage"]),
       garbage=st.integers(0, 0xFFFF))
def test_device_answer_keeps_the_kernels_partial_sum(data: bytes, sport: int, hdr: str, field: str,
                                                     garbage: int) -> None:
    """In offload mode (core.echo, off 10) the kernel's own datagram, NEEDS_CSUM at UDP's checksum with the
    pseudo-header's sum in the field, is answered with that header and field kept: finished as the kernel
    finishes it, the reply is the general path's byte for byte. Any other header or field: a full checksum
    and a zero header, as before."""
    length = 8 + len(data)
    partial = ck.fold(ck.pseudo_header_sum(PEER, OUR, 17, length))
    check = partial if field == "partial" else garbage
    flags, start = {"kernel": (1, 34), "valid": (2, 0), "elsewhere": (1, 36), "both": (3, 34)}[hdr]
    if hdr == "valid":
        check = None  # DATA_VALID: the kernel verified a full checksum
    f = _frame(data, sport, check=check)
    vnet = struct.pack("<BBHHHH", flags, 0, 0, 0, start, 6)
    fast, slow = _pair()
    out = fast_answer(fast.iface, lambda: 1.0)(vnet + f, 10, flags & 3)
    slow.iface.receive(f, 1.0, True)
    (b,) = sent(slow.iface)
    assert out is not None
    kept = hdr == "kernel" and (check - partial) % 0xFFFF == 0
    if kept:
        assert bytes(out[:10]) == vnet
        assert out[50:52] == f[40:42]  # the field as it came: the kernel finishes it
        assert _finished(bytes(out[10:])) == b
    else:
        assert bytes(out[:10]) == bytes(10)
        assert bytes(out[10:]) == b
    assert fast.iface.fast.udp_echoes == 1
    assert _counts(fast) == _counts(slow)


def test_kept_partial_sum_still_verifies_the_ip_header() -> None:
    """The kernel vouches for the UDP sum only: a bad IPv4 header checksum is declined on the kept path too
    (the general path drops and counts it)."""
    data = b"hello"
    partial = ck.fold(ck.pseudo_header_sum(PEER, OUR, 17, 8 + len(data)))
    f = bytearray(_frame(data, check=partial))
    f[24] ^= 0x40  # the IPv4 header checksum
    fast, _ = _pair()
    vnet = struct.pack("<BBHHHH", 1, 0, 0, 0, 34, 6)
    assert fast_answer(fast.iface, lambda: 1.0)(vnet + bytes(f), 10, 1) is None
    assert fast.iface.fast.udp_echoes == 0
