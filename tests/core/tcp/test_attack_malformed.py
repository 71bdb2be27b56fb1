"""Hostile segments (issue 13): each malformed-segment rule has its named counter, and no reply goes out
where Linux gives none; every segment ends in at most one outcome counter."""

from __future__ import annotations

import struct

from tcp_harness import LOCAL, LPORT, REMOTE, REMOTE_ISS, RPORT, Harness, build

from tcpip.core.tcp.state import TcpState
from tcpip.core.tcp.validate import OUTCOMES
from tcpip.wire.tcp import ACK, FIN, PSH, RST, SYN, URG, fill_checksum

S = TcpState
NXT = REMOTE_ISS + 1


def _outcomes(h: Harness) -> dict[str, int]:
    return {k: getattr(h.layer.stats, k) for k in OUTCOMES if getattr(h.layer.stats, k)}


def _raw(hdr: bytes, payload: bytes = b"") -> bytes:
    b = bytearray(hdr)
    fill_checksum(b, REMOTE, LOCAL, payload)
    return bytes(b) + payload


def _header(flags: int, doff: int, seq: int = REMOTE_ISS, ack: int = 0, options: bytes = b"") -> bytes:
    return struct.pack("!HHIIBBHHH", RPORT, LPORT, seq, ack, doff << 4, flags, 65535, 0, 0) + options


def test_data_offset_below_five_dropped_silently() -> None:
    h = Harness()
    h.listen()
    h.feed_raw(_raw(_header(SYN, 4)))
    assert h.take() == []
    assert _outcomes(h) == {"rx_bad_doff": 1}


def test_data_offset_beyond_segment_dropped_silently() -> None:
    h = Harness()
    h.listen()
    h.feed_raw(_raw(_header(SYN, 15)))  # says 60 bytes, has 20
    assert h.take() == []
    assert _outcomes(h) == {"rx_bad_doff": 1}
    assert h.layer.stats.in_errs == 1


def test_option_lengths_zero_one_and_overrun_counted_and_processed() -> None:
    h = Harness()
    h.listen()
    mss = b"\x02\x04\x05\xb4"
    for i, bad in enumerate((b"\x08\x00\x00\x00", b"\x08\x01\x00\x00", b"\x01\x01\x08\x0c")):
        h.feed_raw(_raw(struct.pack("!H", 41000 + i) + _header(SYN, 7, options=mss + bad)[2:]))
    segs = h.take()
    assert [(s.flags, s.mss) for s, _ in segs] == [(SYN | ACK, 1460)] * 3  # the MSS before it counts
    assert h.layer.stats.rx_bad_options == 3
    assert _outcomes(h) == {}


def test_syn_fin_to_listener_dropped_silently() -> None:
    h = Harness()
    h.listen()
    h.feed(REMOTE_ISS, 0, SYN | FIN)
    assert h.take() == []
    assert _outcomes(h) == {"rx_syn_fin": 1}


def test_syn_rst_dropped_everywhere_silently() -> None:
    h = Harness()
    conn = h.passive()
    h.feed(NXT, conn.snd_nxt, SYN | RST)
    h.feed(NXT, 0, SYN | RST, sport=999)  # no socket
    h.feed(NXT, 0, SYN | RST | ACK, dport=81)
    assert h.take() == []
    assert conn.state == S.ESTABLISHED
    assert _outcomes(h) == {"rx_syn_rst": 3}


def test_no_flags_dropped_silently() -> None:
    h = Harness()
    conn = h.passive()
    h.feed(NXT, 0, 0, payload=b"data")
    h.feed(NXT, 0, PSH | URG, payload=b"data", urgent=1)
    h.feed(NXT, 0, 0, dport=81)  # closed port: no RST either
    assert h.take() == []
    assert conn.readable == 0
    assert _outcomes(h) == {"rx_no_flags": 3}


def test_urgent_pointer_beyond_data_is_in_band() -> None:
    h = Harness()
    conn = h.passive()
    h.feed(NXT, conn.snd_nxt, ACK | URG | PSH, payload=b"abc", urgent=500)
    assert conn.recv(0.1) == b"abc"
    assert h.layer.stats.rx_urg_beyond_data == 1
    assert _outcomes(h) == {}


def test_mss_zero_means_default_mss() -> None:
    h = Harness()
    lst = h.listen()
    h.feed(REMOTE_ISS, 0, SYN, mss=0)
    sa, _ = h.take_one()
    h.feed(NXT, sa.seq + 1, ACK)
    conn = lst.accept()
    assert conn is not None
    assert conn.mss == h.config.default_mss
    assert h.layer.stats.rx_mss_zero == 1


def test_window_scale_above_14_clamped() -> None:
    h = Harness(window_scaling=True)
    conn = h.passive(wscale=15)
    assert conn.snd_wscale == 14
    assert h.layer.stats.rx_wscale_clamped == 1


def test_sack_blocks_outside_window_ignored() -> None:
    h = Harness(sack=True)
    conn = h.passive(sack_permitted=True)
    conn.send(b"x" * 5000, 0.1)
    h.take()
    una = conn.snd_una
    h.feed(NXT, una, ACK, sack=((una + 1000, una + 9000),), at=0.2)  # ends past snd_max
    h.feed(NXT, una, ACK, sack=((una - 10**6, una - 10**6 + 100),), at=0.3)  # far below snd_una
    assert h.layer.stats.rx_sack_discard == 2
    assert conn.sacked == []
    assert h.take() == []


def test_checksum_zero_is_not_no_checksum() -> None:
    h = Harness()
    h.listen()
    raw = bytearray(build(RPORT, LPORT, REMOTE_ISS, 0, SYN))
    if raw[16:18] == b"\x00\x00":  # pragma: no cover - a valid zero; change the segment
        raw = bytearray(build(RPORT, LPORT, REMOTE_ISS + 1, 0, SYN))
    raw[16:18] = b"\x00\x00"
    h.feed_raw(bytes(raw))
    assert h.take() == []
    assert _outcomes(h) == {"in_csum_errors": 1}
    assert h.layer.stats.rx_csum_zero == 1


def test_accepted_plus_outcomes_is_insegs() -> None:
    h = Harness()
    h.passive()
    h.feed(NXT, 0, 0)
    st = h.layer.stats
    assert st.accepted() == st.in_segs - 1 == 2
