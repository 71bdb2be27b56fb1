"""TCP core: three-way handshakes (both ways, options), simultaneous open, RSTs for closed ports."""

from __future__ import annotations

import errno

from tcp_harness import LOCAL, LPORT, REMOTE, REMOTE_ISS, RPORT, Harness, build

from tcpip.core.tcp.state import EV_ACCEPT, EV_CLOSED, EV_CONNECTED, TcpState
from tcpip.wire.tcp import ACK, FIN, RST, SYN

S = TcpState


def test_active_open_exact_segments() -> None:
    h = Harness(timestamps=True, sack=True, window_scaling=True)
    conn = h.layer.connect(LOCAL, LPORT, REMOTE, RPORT, 1.0)
    assert conn.state == S.SYN_SENT
    syn, payload = h.take_one()
    assert payload == b""
    assert syn.flags == SYN
    assert syn.ack == 0
    assert (syn.src_port, syn.dst_port) == (LPORT, RPORT)
    assert syn.mss == 1460
    assert syn.sack_permitted
    assert syn.wscale == 7  # room for the autotuned receive buffer (rcvbuf_max 6 MiB), as Linux
    assert syn.window == 65535  # SYN windows are never scaled
    assert syn.timestamp is not None
    assert syn.timestamp[1] == 0
    h.feed(REMOTE_ISS, syn.seq + 1, SYN | ACK, 5000, at=1.25, mss=1400, wscale=2, sack_permitted=True,
           timestamp=(777, syn.timestamp[0]))
    ack, _ = h.take_one()
    assert ack.flags == ACK
    assert ack.seq == syn.seq + 1
    assert ack.ack == REMOTE_ISS + 1
    assert ack.window == 262144 >> 7
    assert ack.timestamp is not None
    assert ack.timestamp[1] == 777
    assert conn.state == S.ESTABLISHED
    assert conn.mss == 1400
    assert conn.snd_wnd == 5000
    assert conn.snd_wscale == 2
    assert conn.sack_ok
    assert conn.ts_ok
    assert conn.srtt == 0.25
    assert h.events() == [(EV_CONNECTED, conn, None)]
    st = h.layer.stats
    assert (st.active_opens, st.curr_estab, st.out_segs) == (1, 1, 2)


def test_passive_open_exact_segments() -> None:
    h = Harness(timestamps=True, sack=True, window_scaling=True)
    lst = h.listen()
    h.feed(REMOTE_ISS, 0, SYN, 29200, mss=1460, wscale=7, sack_permitted=True, timestamp=(100, 0))
    sa, _ = h.take_one()
    assert sa.flags == SYN | ACK
    assert sa.ack == REMOTE_ISS + 1
    assert (sa.mss, sa.wscale, sa.sack_permitted) == (1460, 7, True)
    assert sa.timestamp is not None
    assert sa.timestamp[1] == 100
    assert h.events() == []
    assert lst.accept() is None
    h.feed(REMOTE_ISS + 1, sa.seq + 1, ACK, 229, timestamp=(101, sa.timestamp[0]))
    assert h.take() == []
    conn = lst.accept()
    assert conn is not None
    assert conn.state == S.ESTABLISHED
    assert h.events() == [(EV_ACCEPT, lst, conn)]
    assert conn.snd_wnd == 229 << 7
    assert conn.ts_recent == 101
    assert h.layer.stats.passive_opens == 1


def test_options_only_when_both_syns_carry_them() -> None:
    h = Harness(timestamps=True, sack=True, window_scaling=True)
    lst = h.listen()
    h.feed(REMOTE_ISS, 0, SYN, 8192)  # no options at all
    sa, _ = h.take_one()
    assert sa.mss == 1460
    assert sa.wscale is None
    assert not sa.sack_permitted
    assert sa.timestamp is None
    h.feed(REMOTE_ISS + 1, sa.seq + 1, ACK, 8192)
    conn = lst.accept()
    assert conn is not None
    assert conn.mss == 536  # RFC 9293: 536 when the peer's SYN has no MSS option
    assert (conn.snd_wscale, conn.rcv_wscale, conn.sack_ok, conn.ts_ok) == (0, 0, False, False)
    conn.send(b"x" * 1000, h.now)
    segs = h.take()
    assert [len(p) for _, p in segs] == [536, 464]
    assert all(s.window == 65535 for s, _ in segs)  # no scaling: the window field saturates


def test_mss_clamps() -> None:
    h = Harness()
    conn = h.active(mss=9000)
    assert conn.mss == 1460  # never above what our path allows
    h2 = Harness()
    conn2 = h2.active(mss=10)
    assert conn2.mss == 88  # tiny MSS clamped up (Linux TCP_MIN_MSS)
    h3 = Harness(window_scaling=True)
    conn3 = h3.active(wscale=20)
    assert conn3.snd_wscale == 14


def test_simultaneous_open() -> None:
    h = Harness()
    conn = h.layer.connect(LOCAL, LPORT, REMOTE, RPORT, 0.0)
    syn, _ = h.take_one()
    h.feed(REMOTE_ISS, 0, SYN, 4000, at=0.1)  # the peer's own SYN crosses ours
    assert conn.state == S.SYN_RECEIVED
    sa, _ = h.take_one()
    assert sa.flags == SYN | ACK
    assert sa.seq == syn.seq
    assert sa.ack == REMOTE_ISS + 1
    h.feed(REMOTE_ISS, syn.seq + 1, SYN | ACK, 4000, at=0.2)  # ... and its SYN-ACK
    assert conn.state == S.ESTABLISHED
    assert h.events() == [(EV_CONNECTED, conn, None)]
    conn.send(b"hi", 0.3)
    d, p = h.take()[-1]
    assert p == b"hi"
    assert d.seq == syn.seq + 1
    assert d.ack == REMOTE_ISS + 1


def test_rst_to_closed_port_with_ack() -> None:
    h = Harness()
    h.feed(5000, 123456, ACK, payload=b"data")
    r, _ = h.take_one()
    assert (r.flags, r.seq, r.ack, r.window) == (RST, 123456, 0, 0)
    assert (r.src_port, r.dst_port) == (LPORT, RPORT)
    assert h.layer.stats.out_rsts == 1
    assert h.layer.stats.rx_no_socket == 1


def test_rst_to_closed_port_without_ack() -> None:
    h = Harness()
    h.feed(5000, 0, SYN | FIN, payload=b"abc")
    r, _ = h.take_one()
    assert (r.flags, r.seq, r.ack) == (RST | ACK, 0, 5000 + 3 + 1 + 1)  # SEG.LEN counts SYN and FIN


def test_no_rst_for_rst() -> None:
    h = Harness()
    h.feed(5000, 0, RST)
    h.feed(5000, 7, RST | ACK)
    assert h.take() == []
    assert h.layer.stats.rx_rst_no_socket == 2
    assert h.layer.stats.out_rsts == 0


def test_bad_checksum_and_broadcast_dropped() -> None:
    h = Harness()
    h.listen()
    raw = bytearray(build(RPORT, LPORT, 1, 0, SYN))
    raw[16] ^= 0xFF
    h.feed_raw(bytes(raw))
    h.feed_raw(build(RPORT, LPORT, 1, 0, SYN), broadcast=True)
    h.feed_raw(b"\x00" * 7)
    assert h.take() == []
    st = h.layer.stats.as_dict()
    assert (st["InCsumErrors"], st["InErrs"], st["InSegs"], st["rx_broadcast"]) == (2, 2, 3, 1)


def test_refused_connect() -> None:
    h = Harness()
    conn = h.layer.connect(LOCAL, LPORT, REMOTE, RPORT, 0.0)
    syn, _ = h.take_one()
    h.feed(0, syn.seq + 1, RST | ACK, 0)
    assert conn.state == S.CLOSED
    [(kind, c, exc)] = h.events()
    assert kind == EV_CLOSED
    assert c is conn
    assert isinstance(exc, ConnectionRefusedError)
    assert exc.errno == errno.ECONNREFUSED
    assert h.layer.stats.attempt_fails == 1
    assert h.layer.poll_at() is None


def test_syn_sent_bad_ack_gets_rst() -> None:
    h = Harness()
    conn = h.layer.connect(LOCAL, LPORT, REMOTE, RPORT, 0.0)
    syn, _ = h.take_one()
    h.feed(REMOTE_ISS, syn.seq + 5, SYN | ACK, 1000)
    r, _ = h.take_one()
    assert (r.flags, r.seq) == (RST, syn.seq + 5)
    assert conn.state == S.SYN_SENT
    h.feed(0, syn.seq + 5, RST | ACK, 0)  # a RST with an unacceptable ACK is ignored
    assert conn.state == S.SYN_SENT


def test_listener_demux_specific_before_any() -> None:
    h = Harness()
    any_l = h.layer.listen(0, LPORT, 4)
    spec = h.layer.listen(LOCAL, LPORT, 4)
    h.feed(REMOTE_ISS, 0, SYN)
    assert len(spec.half_open) == 1
    assert len(any_l.half_open) == 0
    spec.close(h.now)
    h.take()
    h.feed(REMOTE_ISS + 100, 0, SYN, sport=RPORT + 1)
    assert len(any_l.half_open) == 1
