"""The templated pure ACK (rx_ack.bulk_ack) against the general path (output.send_ack) for many random states,
checked by scapy; burst.send_one's frame against Host.send's."""

from __future__ import annotations

import copy
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP
from tcp_harness import LOCAL, REMOTE, REMOTE_ISS, Harness

from tcpip.core import burst
from tcpip.core.config import InterfaceConfig
from tcpip.core.interface import Interface
from tcpip.core.tcp import output as out
from tcpip.core.tcp.emit import window_field
from tcpip.core.tcp.rx_ack import bulk_ack
from tcpip.core.tcp.seq import seq_ge, seq_sub
from tcpip.wire.mac import MacAddress
from tcpip.wire.tcp import ACK, PSH

FIELDS = ("last_ack_sent", "delack_at", "ack_pending", "rcv_adv")
U32 = st.integers(0, 0xFFFFFFFF)


def _receiver() -> tuple[Harness, Any]:
    h = Harness(mss=1000, sack=True, window_scaling=True, timestamps=True, rcvbuf=1 << 20)
    conn = h.passive(window=1000, sack_permitted=True, wscale=2, timestamp=(100, 0))
    h.feed(REMOTE_ISS + 1, conn.snd_nxt, ACK | PSH, 1000, payload=b"a" * 1000, at=1.0, timestamp=(101, 0))
    h.take()
    return h, conn


H, CONN = _receiver()


def _scapy_ok(raw: bytes) -> None:
    """scapy recomputes the checksum over the pseudo-header and the segment: it must be the one we sent."""
    tcp = TCP(raw)
    sent = tcp.chksum
    del tcp.chksum
    assert IP(bytes(IP(src="198.18.0.1", dst="198.18.0.2") / tcp))[TCP].chksum == sent


@settings(max_examples=150, deadline=None)
@given(una=U32, flight=st.integers(0, 1 << 20), wnd=st.integers(0, 1 << 24), rcv_nxt=U32,
       adv=st.integers(-5000, 1 << 20), scale=st.integers(0, 14), ts=st.booleans(), ts_recent=U32,
       ts_offset=U32, now=st.floats(0.0, 1e7))
def test_fast_ack_bytes_equal_general_path(una: int, flight: int, wnd: int, rcv_nxt: int, adv: int, scale: int,
                                           ts: bool, ts_recent: int, ts_offset: int, now: float) -> None:
    """Same bytes, same state changes, same counter as send_ack, for seq/ack/window/scale/timestamps at random."""
    H.out.sent.clear()
    rb = CONN.rcvbuf
    rb.rcv_nxt = rcv_nxt  # shared by both copies below: read only by both paths
    results = []
    for send in (out.send_ack, bulk_ack):
        c = copy.copy(CONN)
        c.ack_tpl = None
        c.snd_una, c.snd_max, c.snd_wnd = una, (una + flight) & 0xFFFFFFFF, wnd
        c.rcv_wscale, c.ts_ok, c.ts_recent, c.ts_offset = scale, ts, ts_recent, ts_offset
        c.rcv_adv = (rcv_nxt + adv) & 0xFFFFFFFF
        before = H.layer.stats.out_segs
        send(c, now)
        results.append((H.out.sent[-1][2], {f: getattr(c, f) for f in FIELDS}, H.layer.stats.out_segs - before))
    assert results[1] == results[0]
    raw = results[1][0]
    assert len(raw) == (32 if ts else 20)
    _scapy_ok(raw)


def test_template_built_once_and_reused() -> None:
    c = copy.copy(CONN)
    c.ack_tpl = None
    bulk_ack(c, 2.0)
    tpl = c.ack_tpl
    assert tpl is not None
    assert tpl[0] is True
    assert tpl[2] is None
    bulk_ack(c, 2.1)
    assert c.ack_tpl is tpl


class _OneCallOutput:
    """An Output with tcp_send_ack on a Host, as tcpip.aio.driver has it: records which call sent."""

    def __init__(self, iface: Interface) -> None:
        self.iface = iface
        self.calls: list[str] = []

    def tcp_send(self, src: int, dst: int, parts: Any, now: float) -> None:
        self.calls.append("send")
        self.iface.send(dst, 6, parts, now, src=src)

    def tcp_send_ack(self, src: int, dst: int, hdr: bytes, now: float) -> bool:
        self.calls.append("ack")
        return burst.send_one(self.iface, dst, 6, hdr, now, src)

    def tcp_mss(self, dst: int, now: float) -> int:
        return 1460

    def is_local(self, addr: int) -> bool:
        return addr == LOCAL


PEER_MAC = b"\x02\x00\x00\x00\x00\x02"


def _host(seed: int = 1) -> Interface:
    iface = Interface(InterfaceConfig(mac=MacAddress(b"\x02\x00\x00\x00\x00\x01"), address=LOCAL,
                                      netmask=0xFFFFFF00), now=0.0, rng=random.Random(seed))
    iface.arp.add_static(REMOTE, PEER_MAC)
    return iface


def _frame(tx: Any) -> bytes:
    return b"".join(bytes(p) for p in tx)


@given(hdr=st.binary(min_size=26, max_size=60), n=st.integers(1, 5))
@settings(max_examples=30, deadline=None)
def test_send_one_frame_equals_host_send(hdr: bytes, n: int) -> None:
    """The same frames (Ethernet, IPv4 with ident and checksum, the buffer) and counters as Host.send, n in a row."""
    a, b = _host(), _host()
    for i in range(n):
        a.send(REMOTE, 6, (hdr,), float(i))
        assert burst.send_one(b, REMOTE, 6, hdr, float(i), None)
    assert [_frame(f) for f in b.tx] == [_frame(f) for f in a.tx]
    assert (b.ip_stats.tx_packets, b.eth_stats.tx_frames) == (a.ip_stats.tx_packets, a.eth_stats.tx_frames) == (n, n)
    ip = IP(_frame(b.tx[-1])[14:])
    assert ip.chksum == IP(bytes(ip.__class__(src=ip.src, dst=ip.dst, id=ip.id, ttl=ip.ttl, proto=6)
                                 / bytes(ip.payload))).chksum


def test_send_one_declines_what_needs_the_general_path() -> None:
    h = _host()
    assert not burst.send_one(h, REMOTE, 6, bytes(20), 0.0, None)  # 40-byte datagram: Ethernet padding
    assert not burst.send_one(h, REMOTE + 1, 6, bytes(32), 0.0, None)  # unresolved neighbour
    assert not burst.send_one(h, REMOTE, 6, bytes(1481), 0.0, None)  # over the MTU
    assert h.tx == []
    assert h.ip_stats.tx_packets == 0


@given(ts=st.booleans())
@settings(max_examples=4, deadline=None)
def test_bulk_ack_one_call_frame_equals_tcp_send(ts: bool) -> None:
    """bulk_ack through tcp_send_ack gives the frame tcp_send gives; without timestamps (40 bytes, padded by the
    general path) it falls back to tcp_send."""
    frames = []
    for one_call in (False, True):
        iface = _host()
        o = _OneCallOutput(iface)
        if not one_call:
            o.tcp_send_ack = lambda *a: False  # type: ignore[method-assign]
        c = copy.copy(CONN)
        c.ack_tpl = None
        c.ts_ok = ts
        c.layer = copy.copy(CONN.layer)
        c.layer.output = o
        bulk_ack(c, 3.0)
        frames.append(_frame(iface.tx[-1]))
        if one_call:
            assert o.calls == (["ack"] if ts else ["ack", "send"])
    assert frames[0] == frames[1]
    assert len(frames[1]) == (14 + 20 + 32 if ts else 60)  # 40-byte datagram: Ethernet pads to 60
    tcp = IP(frames[1][14:])[TCP]
    assert tcp.flags == "A"
    assert tcp.ack == CONN.rcvbuf.rcv_nxt


def _window_reference(free: int, rcv_adv: int, nxt: int, s: int, rcvbuf: int, mss: int) -> tuple[int, int]:
    """window_field as RFC 9293 3.8.6.2.2 + RFC 7323 2.4 state it (seq_sub/min/max spelled out)."""
    cur = max(seq_sub(rcv_adv, nxt), 0)
    if free - cur < min(rcvbuf >> 1, mss):
        field = (cur + (1 << s) - 1) >> s
        if field << s > free:
            field = free >> s
    else:
        field = free >> s
    field = min(field, 0xFFFF)
    edge = (nxt + (field << s)) & 0xFFFFFFFF
    return field, edge if seq_ge(edge, rcv_adv) else rcv_adv  # a rounded-down field takes back no offer


@settings(max_examples=200, deadline=None)
@given(nxt=U32, adv=st.integers(-70000, 1 << 22), read=st.integers(0, 1 << 20), scale=st.integers(0, 14),
       mss=st.integers(0, 3000))
def test_window_field_matches_reference(nxt: int, adv: int, read: int, scale: int, mss: int) -> None:
    c = copy.copy(CONN)
    rb = copy.copy(CONN.rcvbuf)
    rb.rcv_nxt = nxt
    rb.readable = min(read, rb.capacity)  # unread bytes: window() = capacity - readable
    c.rcvbuf, c.rcv_wscale, c.adv_mss = rb, scale, mss
    c.rcv_adv = (nxt + adv) & 0xFFFFFFFF
    want = _window_reference(rb.window(), c.rcv_adv, nxt, scale, c.config.rcvbuf, mss)
    assert (window_field(c), c.rcv_adv) == want


@settings(max_examples=300, deadline=None)
@given(nxt=U32, adv=st.integers(0, 1 << 21), read=st.integers(0, 1 << 20), scale=st.integers(0, 14),
       mss=st.integers(0, 3000))
def test_window_field_never_takes_back_an_offer(nxt: int, adv: int, read: int, scale: int, mss: int) -> None:
    """The edge input accepts up to (rcv_adv) never moves back and never passes the buffer's end; the field
    states it exactly or, when that would promise bytes the buffer can't hold, less than one unit short."""
    c = copy.copy(CONN)
    rb = copy.copy(CONN.rcvbuf)
    rb.rcv_nxt = nxt
    rb.readable = min(read, rb.capacity)
    c.rcvbuf, c.rcv_wscale, c.adv_mss = rb, scale, mss
    free = rb.window()
    adv = min(adv, free, 0xFFFF << scale)  # an offer made earlier: inside the buffer, as a field could say
    c.rcv_adv = before = (nxt + adv) & 0xFFFFFFFF
    field = window_field(c)
    after = seq_sub(c.rcv_adv, nxt)
    assert seq_ge(c.rcv_adv, before)
    assert after <= free
    assert 0 <= after - (field << scale) < 1 << scale or field == 0xFFFF
