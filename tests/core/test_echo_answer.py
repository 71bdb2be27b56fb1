"""core.echo.fast_answer, the echo answered from a device's read buffer: a reply must be, byte for byte and
count for count, what Host.receive answers to the same frame (the framing bytes before `off` copied as they
were), and whatever it declines must leave the host exactly as it was, for Host.receive to take."""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from testlib import make_iface, sent

from tcpip.core.echo import fast_answer, plain_unicast
from tcpip.core.host import Host
from tcpip.core.stats import as_dict
from tcpip.core.udp import UdpLayer
from tcpip.wire import checksum as ck

PEER = 0xC6120001
OUR = 0xC6120002
PEER_MAC = bytes.fromhex("020000000001")
OUR_MAC = bytes.fromhex("020000000002")
PREFIXES = {0: b"", 10: bytes(10), 3: b"\x01\x02\x03"}  # none, a zero virtio header, anything of the device's


def _host() -> tuple[Host, UdpLayer]:
    h = make_iface(static={"198.18.0.1": "02:00:00:00:00:01"})
    udp = UdpLayer(h, random.Random(3))
    udp.bind_echo(7)
    return h, udp


def _ip(proto: int, payload: bytes, *, tos: int = 0, ff: int = 0, src: int = PEER, dst: int = OUR,
        ttl: int = 61) -> bytes:
    ip = bytearray(struct.pack("!BBHHHBBHII", 0x45, tos, 20 + len(payload), 99, ff, ttl, proto, 0, src, dst))
    ip[10:12] = ck.checksum(ip).to_bytes(2, "big")
    return bytes(ip) + payload


def _eth(ip: bytes, dmac: bytes = OUR_MAC, smac: bytes = PEER_MAC) -> bytes:
    f = dmac + smac + b"\x08\x00" + ip
    return f + bytes(max(0, 60 - len(f)))


def ping(data: bytes, ident: int = 1, seq: int = 1, **kw: Any) -> bytes:
    m = bytearray(struct.pack("!BBHHH", 8, 0, 0, ident, seq) + data)
    m[2:4] = ck.checksum(m).to_bytes(2, "big")
    return _eth(_ip(1, bytes(m), **kw))


def udp(data: bytes, sport: int = 5000, dport: int = 7, partial: bool = False) -> bytes:
    n = 8 + len(data)
    u = bytearray(struct.pack("!HHHH", sport, dport, n, 0) + data)
    if partial:  # what a NEEDS_CSUM sender leaves there: the pseudo-header's sum, not complemented
        u[6:8] = (ck.pseudo_header_sum(PEER, OUR, 17, n) % 0xFFFF or 0xFFFF).to_bytes(2, "big")
    else:
        u[6:8] = (ck.checksum(u, ck.pseudo_header_sum(PEER, OUR, 17, n)) or 0xFFFF).to_bytes(2, "big")
    return _eth(_ip(17, bytes(u)))


def _now() -> float:
    return 1.0


def _state(h: Host, u: UdpLayer) -> tuple[Any, ...]:
    return (as_dict(h.eth_stats), as_dict(h.ip_stats), as_dict(h.icmp_stats), as_dict(u.stats),
            dict(h.idents.idents), list(h.tx), list(h.loopback))


def _compare(frame: bytes, off: int, csum_ok: bool = False) -> bytearray | None:
    """The fast answer on one host, Host.receive on its twin: same reply (past the prefix), same counters."""
    a, ua = _host()
    b, ub = _host()
    prefix = PREFIXES[off]
    before = _state(a, ua)
    out = fast_answer(a, _now)(prefix + frame, off, csum_ok)
    b.receive(frame, 1.0, csum_ok)
    if out is None:
        assert _state(a, ua) == before  # declined: nothing changed
        return None
    assert bytes(out[:off]) == prefix
    assert [bytes(out[off:])] == sent(b)
    assert _state(a, ua)[:5] == _state(b, ub)[:5]
    return out


@pytest.mark.parametrize("off", sorted(PREFIXES))
def test_ping_reply_is_receives(off: int) -> None:
    out = _compare(ping(b"x" * 56, ident=0x1234, seq=7), off)
    assert out is not None
    f = out[off:]
    assert f[:12] == PEER_MAC + OUR_MAC
    assert f[23] == 1
    assert f[34] == 0
    assert ck.checksum(f[14:34]) == 0
    assert ck.checksum(f[34:98]) == 0
    assert struct.unpack_from("!II", f, 26) == (OUR, PEER)


@pytest.mark.parametrize("off", sorted(PREFIXES))
@pytest.mark.parametrize(("partial", "csum_ok"), [(False, False), (False, True), (True, True)])
def test_udp_echo_reply_is_receives(off: int, partial: bool, csum_ok: bool) -> None:
    out = _compare(udp(b"hello, echo", partial=partial), off, csum_ok)
    assert out is not None
    f = out[off:]
    assert struct.unpack_from("!HH", f, 34) == (7, 5000)
    assert ck.checksum(f[34:53], ck.pseudo_header_sum(OUR, PEER, 17, 19)) == 0  # a full checksum, always


@given(data=st.binary(max_size=1400), ident=st.integers(0, 0xFFFF), seq=st.integers(0, 0xFFFF),
       off=st.sampled_from(sorted(PREFIXES)))
@settings(max_examples=150, deadline=None)
def test_ping_any_payload(data: bytes, ident: int, seq: int, off: int) -> None:
    assert _compare(ping(data, ident, seq), off) is not None


@given(data=st.binary(max_size=1400), sport=st.integers(1024, 0xFFFF), partial=st.booleans(),
       off=st.sampled_from(sorted(PREFIXES)))
@settings(max_examples=150, deadline=None)
def test_udp_echo_any_payload(data: bytes, sport: int, partial: bool, off: int) -> None:
    assert _compare(udp(data, sport, partial=partial), off, partial) is not None


def _bad_icmp_sum() -> bytes:
    f = bytearray(ping(b"abcd"))
    f[36] ^= 0x40
    return bytes(f)


def _bad_ip_sum() -> bytes:
    f = bytearray(ping(b"abcd"))
    f[24] ^= 1
    return bytes(f)


def _options() -> bytes:
    m = bytearray(struct.pack("!BBHHH", 8, 0, 0, 1, 1) + b"abcd")
    m[2:4] = ck.checksum(m).to_bytes(2, "big")
    ip = bytearray(struct.pack("!BBHHHBBHII", 0x46, 0, 24 + len(m), 99, 0, 64, 1, 0, PEER, OUR) + bytes(4))
    ip[10:12] = ck.checksum(ip).to_bytes(2, "big")
    return _eth(bytes(ip) + bytes(m))


def _udp_ip(data: bytes, **kw: Any) -> bytes:
    """A datagram to the echo port with its full checksum, the IPv4 header's fields from `kw`."""
    n = 8 + len(data)
    u = bytearray(struct.pack("!HHHH", 5000, 7, n, 0) + data)
    src, dst = kw.get("src", PEER), kw.get("dst", OUR)
    u[6:8] = (ck.checksum(u, ck.pseudo_header_sum(src, dst, 17, n)) or 0xFFFF).to_bytes(2, "big")
    return _eth(_ip(17, bytes(u), **kw))


def _host_rules(build: Callable[..., bytes]) -> dict[str, bytes]:
    """The host's fast-path rules, one frame breaking each, built by `build(data, **ip_fields)` (a ping or a
    datagram to the echo port): the answers make these checks themselves, each for its protocol."""
    ok = build(b"abcd")
    return {
        "fragment": build(b"abcd", ff=0x2000),
        "not our mac": _eth(ok[14:], dmac=bytes.fromhex("020000000009")),
        "broadcast mac": _eth(ok[14:], dmac=b"\xff" * 6),
        "multicast source mac": _eth(ok[14:], smac=bytes.fromhex("010000000001")),
        "not our address": build(b"abcd", dst=0xC6120003),
        "from ourselves": build(b"abcd", src=OUR),
        "from loopback": build(b"abcd", src=0x7F000001),
        "from the subnet broadcast": build(b"abcd", src=0xC61200FF),
        "from 0/8": build(b"abcd", src=0x00000001),
    }


DECLINED = {
    "tcp": _eth(_ip(6, bytes(20))),
    "arp": OUR_MAC + PEER_MAC + b"\x08\x06" + bytes(46),
    "echo reply": ping(b"abcd")[:34] + b"\x00" + ping(b"abcd")[35:],
    "bad icmp checksum": _bad_icmp_sum(),
    "bad ip checksum": _bad_ip_sum(),
    "tos": ping(b"abcd", tos=0x10),
    "options": _options(),
    **_host_rules(ping),
    "udp to no echo": udp(b"x", dport=9),
    "udp from an echo port": udp(b"x", sport=19),
    "runt": ping(b"abcd")[:30],
    "truncated": ping(b"x" * 100)[:80],
    "oversize": ping(b"x" * 1500),
}


def _flip(frame: bytes, at: int) -> bytes:
    f = bytearray(frame)
    f[at] ^= 1
    return bytes(f)


# The host's fast-path rules again, for UDP: the echo service's answerer makes them itself (udp.fast_echo)
UDP_DECLINED = {
    "bad ip checksum": _flip(udp(b"abcd"), 24),
    "bad udp checksum": _flip(udp(b"abcd"), 43),
    **_host_rules(_udp_ip),
    "from 224/4": _udp_ip(b"abcd", src=0xE0000001),
    "trailing bytes": _eth(_ip(17, udp(b"abcd")[34:42] + b"abcdXY")),
    "truncated": udp(b"x" * 100)[:80],
    "oversize": udp(b"x" * 1500),
    "runt": udp(b"abcd")[:40],
}




@pytest.mark.parametrize("off", [0, 10])
@pytest.mark.parametrize("name", sorted(DECLINED) + [f"udp: {k}" for k in sorted(UDP_DECLINED)])
def test_declined_without_effect(name: str, off: int) -> None:
    frame = UDP_DECLINED[name[5:]] if name.startswith("udp: ") else DECLINED[name]
    h, u = _host()
    before = _state(h, u)
    assert fast_answer(h, _now)(bytes(off) + frame, off, 0) is None
    assert _state(h, u) == before
    _compare(frame, 0)  # and Host.receive, which takes it the usual way, agrees


def test_declined_without_a_fresh_path() -> None:
    """No neighbour entry for the source: declined (receive resolves it and counts), nothing changed."""
    h, u = _host()
    req = ping(b"abcd", src=0xC6120005)
    before = _state(h, u)
    assert fast_answer(h, _now)(req, 0, 0) is None
    assert _state(h, u) == before


def test_follows_the_host() -> None:
    """A new address, MAC or echo service is read on every call: the same function keeps up."""
    h, u = _host()
    answer = fast_answer(h, _now)
    assert answer(udp(b"x"), 0, 0) is not None
    u.unbind(u.ports[7])
    assert answer(udp(b"x"), 0, 0) is None
    h.set_address(0xC6120003, 1.0)
    assert answer(ping(b"abcd"), 0, 0) is None  # to the old address: not ours any more
    assert answer(ping(b"abcd", dst=0xC6120003), 0, 0) is not None


def test_table_follows_the_answerers() -> None:
    """The table a device looks protocols up in (FastAnswer.table, the host's fast_answers): ICMP's echo
    always, an answerer while it is set, never another answer for ICMP."""
    h, u = _host()
    answer = fast_answer(h, _now)
    assert answer.table is h.fast_answers
    assert sorted(answer.table) == [1, 17]
    u.unbind(u.ports[7])
    assert sorted(answer.table) == [1]

    def other(*_a: object) -> None:
        return None

    h.set_answerer(1, other)
    h.set_answerer(50, other)
    assert answer.table[1] == h.icmp.fast_echo
    assert answer.table[50] is other
    h.set_answerer(1, None)
    h.set_answerer(50, None)
    assert sorted(answer.table) == [1]


@given(data=st.binary(min_size=1, max_size=120), at=st.integers(0, 200), byte=st.integers(0, 255),
       proto=st.sampled_from([1, 17]))
@settings(max_examples=300, deadline=None)
def test_any_mutation_is_receives_or_declined(data: bytes, at: int, byte: int, proto: int) -> None:
    f = bytearray(ping(data) if proto == 1 else udp(data))
    f[at % len(f)] = byte
    _compare(bytes(f), 10)


def test_udp_with_a_tos_is_answered() -> None:
    """Host.receive's fast path takes any TOS for an answerer (the ICMP echo wants 0): so does this one."""
    assert _compare(_udp_ip(b"abcd", tos=0x10), 0) is not None


def test_plain_unicast() -> None:
    """The fast path's rules for an answerer: (total, src, dst) of a datagram it takes, else None."""
    h, _ = _host()
    f = _udp_ip(b"abcd")
    assert plain_unicast(h, f, 0) == (32, PEER, OUR)
    assert plain_unicast(h, bytes(10) + f, 10) == (32, PEER, OUR)
    for name in ("bad ip checksum", "fragment", "not our mac", "multicast source mac", "not our address",
                 "from ourselves", "from loopback", "from the subnet broadcast", "from 224/4", "truncated",
                 "oversize", "runt"):
        assert plain_unicast(h, UDP_DECLINED[name], 0) is None, name


@pytest.mark.parametrize("flags", [1, 2, 3])
def test_vouching_virtio_header_is_not_the_replys(flags: int) -> None:
    """A virtio header whose flags vouched for the request's checksum (NEEDS_CSUM, DATA_VALID) is zeroed in
    an ICMP echo reply, which carries full checksums; the frame past it is Host.receive's reply."""
    a, _ = _host()
    b, _ = _host()
    frame = ping(b"y" * 40, ident=9, seq=3)
    vnet = struct.pack("<BBHHHH", flags, 0, 0, 0, 34, 2)
    out = fast_answer(a, _now)(vnet + frame, 10, flags)
    b.receive(frame, 1.0)
    assert out is not None
    assert bytes(out[:10]) == bytes(10)
    assert [bytes(out[10:])] == sent(b)
