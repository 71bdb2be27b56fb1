"""TCP core: data transfer: segmentation, delayed ACKs, out-of-order data with SACK blocks, window updates,
Nagle, silly-window avoidance, events."""

from __future__ import annotations

from tcp_harness import REMOTE_ISS, Harness

from tcpip.core.tcp.state import EV_DATA, EV_EOF, EV_SENT
from tcpip.wire.tcp import ACK, FIN, PSH

NXT = REMOTE_ISS + 1


def test_segmentation_at_mss_and_initial_window() -> None:
    h = Harness(mss=1000)
    conn = h.passive()
    us = conn.snd_nxt
    assert conn.send(b"a" * 20000, 1.0) == 20000
    segs = h.take()
    assert [len(p) for _, p in segs] == [1000] * 10  # IW10 (RFC 6928)
    assert [s.seq for s, _ in segs] == [us + 1000 * i for i in range(10)]
    assert all(s.flags == ACK and s.ack == NXT for s, _ in segs)
    h.feed(NXT, us + 2000, ACK, at=1.1)  # two segments acknowledged: slow start opens two more
    segs = h.take()
    assert [s.seq for s, _ in segs] == [us + 10000, us + 11000, us + 12000, us + 13000]
    assert conn.cwnd == 12000
    assert h.events() == [(EV_SENT, conn, None)]
    assert conn.send_queued == 18000


def test_psh_on_last_segment_of_a_write() -> None:
    h = Harness(mss=1000)
    conn = h.passive()
    conn.send(b"b" * 1500, 1.0)
    segs = h.take()
    assert [(s.flags, len(p)) for s, p in segs] == [(ACK, 1000), (ACK | PSH, 500)]


def test_delayed_ack_every_second_full_segment() -> None:
    h = Harness(mss=1000)
    conn = h.passive()
    us = conn.snd_nxt
    h.feed(NXT, us, ACK, payload=b"x" * 1000, at=1.0)
    assert h.take() == []
    h.feed(NXT + 1000, us, ACK, payload=b"y" * 1000, at=1.001)
    a, _ = h.take_one()
    assert a.ack == NXT + 2000
    h.feed(NXT + 2000, us, ACK, payload=b"z" * 1000, at=1.002)
    assert h.take() == []
    h.advance(1.041)
    assert h.take() == []
    h.advance(1.0421)  # 40 ms after the segment
    a, _ = h.take_one()
    assert a.ack == NXT + 3000
    assert h.layer.stats.delayed_acks == 1
    assert h.events() == [(EV_DATA, conn, None)]  # one event until recv()
    assert conn.recv(1.05) == b"x" * 1000 + b"y" * 1000 + b"z" * 1000


def test_out_of_order_immediate_ack_with_sack_blocks() -> None:
    h = Harness(mss=1000, sack=True)
    conn = h.passive(sack_permitted=True)
    us = conn.snd_nxt
    h.feed(NXT + 1000, us, ACK, payload=b"2" * 1000, at=1.0)
    a, _ = h.take_one()
    assert a.ack == NXT
    assert a.sack == ((NXT + 1000, NXT + 2000),)
    h.feed(NXT + 3000, us, ACK, payload=b"4" * 1000, at=1.01)
    a, _ = h.take_one()
    assert a.sack == ((NXT + 3000, NXT + 4000), (NXT + 1000, NXT + 2000))  # most recent first
    assert h.events() == []
    h.feed(NXT, us, ACK, payload=b"1" * 1000, at=1.02)  # fills the first hole: ACK at once
    a, _ = h.take_one()
    assert a.ack == NXT + 2000
    assert a.sack == ((NXT + 3000, NXT + 4000),)
    h.feed(NXT + 2000, us, ACK, payload=b"3" * 1000, at=1.03)
    a, _ = h.take_one()
    assert a.ack == NXT + 4000
    assert a.sack == ()
    assert conn.recv(1.04) == b"1" * 1000 + b"2" * 1000 + b"3" * 1000 + b"4" * 1000
    assert h.layer.stats.ofo_queue == 2


def test_fin_after_hole_waits() -> None:
    h = Harness()
    conn = h.passive()
    us = conn.snd_nxt
    h.feed(NXT + 5, us, ACK | FIN, payload=b"world", at=1.0)
    a, _ = h.take_one()
    assert a.ack == NXT
    assert not conn.eof
    h.feed(NXT, us, ACK, payload=b"hello", at=1.1)
    a, _ = h.take_one()
    assert a.ack == NXT + 11  # data and FIN
    assert h.events() == [(EV_DATA, conn, None), (EV_EOF, conn, None)]
    assert conn.recv(1.2) == b"helloworld"
    assert conn.eof


def test_window_closes_and_reopens_with_sws_avoidance() -> None:
    h = Harness(mss=1000, rcvbuf=4000)
    conn = h.passive()
    us = conn.snd_nxt
    for i in range(4):
        h.feed(NXT + 1000 * i, us, ACK, payload=b"d" * 1000, at=1.0)
    acks = h.take()
    assert [(a.ack, a.window) for a, _ in acks] == [(NXT + 2000, 2000), (NXT + 4000, 0)]
    conn.recv(1.1, 500)  # 500 < min(rcvbuf/2, MSS): no window update (receiver SWS)
    assert h.take() == []
    conn.recv(1.2, 600)  # 1100 free now
    a, _ = h.take_one()
    assert (a.ack, a.window) == (NXT + 4000, 1100)


def test_window_update_not_below_advertised_edge() -> None:
    h = Harness(mss=1000, rcvbuf=4000)
    conn = h.passive()
    us = conn.snd_nxt
    h.feed(NXT, us, ACK, payload=b"d" * 1000, at=1.0)
    h.advance(1.05)
    a, _ = h.take_one()
    assert a.window == 3000
    conn.recv(1.06, 100)  # the edge would move by 100 only: keep advertising the old edge
    h.feed(NXT + 1000, us, ACK, payload=b"e" * 1000, at=1.07)
    h.feed(NXT + 2000, us, ACK, payload=b"f" * 1000, at=1.08)
    a, _ = h.take_one()
    assert (a.ack, a.window) == (NXT + 3000, 1000)


def test_nagle_knob() -> None:
    h = Harness(mss=1000, nodelay=False)
    conn = h.passive()
    us = conn.snd_nxt
    conn.send(b"a", 1.0)
    conn.send(b"b", 1.0)
    conn.send(b"c", 1.0)
    segs = h.take()
    assert [p for _, p in segs] == [b"a"]  # one small segment in flight at a time
    h.feed(NXT, us + 1, ACK, at=1.1)
    segs = h.take()
    assert [p for _, p in segs] == [b"bc"]
    conn.nodelay = True
    conn.send(b"d", 1.2)
    conn.send(b"e", 1.2)
    assert [p for _, p in h.take()] == [b"d", b"e"]


def test_sender_sws_waits_for_a_useful_window() -> None:
    h = Harness(mss=1000)
    conn = h.passive(window=4000)
    us = conn.snd_nxt
    conn.send(b"s" * 10000, 1.0)
    assert [len(p) for _, p in h.take()] == [1000] * 4
    h.feed(NXT, us + 4000, ACK, window=100, at=1.1)  # a 100-byte window: far below max_wnd/2
    assert h.take() == []
    h.feed(NXT, us + 4000, ACK, window=2500, at=1.2)
    assert [len(p) for _, p in h.take()] == [1000, 1000]  # full segments; the 500 runt waits
    h.feed(NXT, us + 6000, ACK, window=2500, at=1.3)
    assert [len(p) for _, p in h.take()] == [1000, 1000]
    h.feed(NXT, us + 8000, ACK, window=1000, at=1.4)  # 1000 bytes window: a full segment fits
    assert [len(p) for _, p in h.take()] == [1000]
    h.feed(NXT, us + 9000, ACK, window=600, at=1.5)  # the last 1000 bytes vs a 600-byte window
    assert h.take() == []
    h.advance(1.5 + conn.rto + 0.001)  # the persist timer overrides SWS avoidance
    [(d, p)] = h.take()
    assert (d.seq, len(p)) == (us + 9000, 600)


def test_half_close_close_wait_keeps_sending() -> None:
    h = Harness()
    conn = h.passive()
    us = conn.snd_nxt
    h.feed(NXT, us, ACK | FIN, at=1.0)
    a, _ = h.take_one()
    assert a.ack == NXT + 1
    assert conn.state.name == "CLOSE_WAIT"
    assert conn.eof
    assert h.events() == [(EV_EOF, conn, None)]
    conn.send(b"still here", 1.1)
    d, p = h.take_one()
    assert p == b"still here"
    assert d.ack == NXT + 1
    h.feed(NXT + 1, us + 10, ACK, at=1.2)
    assert conn.send_queued == 0


def test_window_scaling_on_data() -> None:
    h = Harness(mss=1000, window_scaling=True, rcvbuf=1 << 20, autotune=False)
    conn = h.passive(wscale=2)
    assert (conn.snd_wscale, conn.rcv_wscale) == (2, 5)  # 1 MiB (fixed: no autotuning) needs a shift of 5
    us = conn.snd_nxt
    h.feed(NXT, us, ACK, window=1000, at=1.0)  # the peer's window field is scaled by its shift
    assert conn.snd_wnd == 4000
    h.feed(NXT, us, ACK, payload=b"w" * 1000, at=1.1)
    h.advance(1.2)
    a, _ = h.take_one()
    assert a.window == ((1 << 20) - 1000) >> 5


def test_small_buffer_active_open_advertises_only_its_buffer() -> None:
    h = Harness(rcvbuf=1000)
    conn = h.active()
    us = conn.snd_nxt
    conn.send(b"x", 1.0)
    d, _ = h.take_one()
    assert d.window == 1000
    h.feed(REMOTE_ISS + 1, us + 1, ACK, payload=b"y" * 1000, at=1.1)
    h.advance(1.2)
    assert h.take_one()[0].window == 0


def test_reads_in_pieces_then_one_window_update() -> None:
    """recv(update=False) pieces send nothing; window_update() then sends the one update a single read of
    the same bytes would have sent (the transport reads 64 KiB pieces per delivery this way)."""
    h = Harness(mss=1000, rcvbuf=4000)
    conn = h.passive()
    us = conn.snd_nxt
    for i in range(4):
        h.feed(NXT + 1000 * i, us, ACK, payload=bytes([i]) * 1000, at=1.0)
    assert [(a.ack, a.window) for a, _ in h.take()] == [(NXT + 2000, 2000), (NXT + 4000, 0)]
    assert conn.recv(1.1, 1500, False) == b"\x00" * 1000 + b"\x01" * 500
    assert conn.recv(1.1, 1500, False) == b"\x01" * 500 + b"\x02" * 1000
    assert h.take() == []  # each piece alone would have sent an update (1500 >= MSS, from a zero window)
    conn.window_update(1.1)
    a, _ = h.take_one()
    assert (a.ack, a.window) == (NXT + 4000, 3000)
    conn.window_update(1.1)  # nothing more read: no second update
    assert h.take() == []
    assert conn.recv(1.2, None, False) == b"\x03" * 1000
    conn.window_update(1.2)  # 1000 more would move the edge by one MSS, but the peer may still send 3000
    assert h.take() == []
