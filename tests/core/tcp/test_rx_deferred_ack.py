"""The receiver's ACK for offloaded super-segments, Linux's rule (__tcp_ack_snd_check / tcp_cleanup_rbuf), with
exact segments at explicit times: ACK at once while quick ACKs last or while the reader keeps up; otherwise the
read's window_update sends one ACK for the whole batch, or the delayed-ACK timer does for a paused reader."""

from __future__ import annotations

from typing import Any

import pytest
from tcp_harness import LOCAL, LPORT, REMOTE, REMOTE_ISS, RPORT, Harness, build

from tcpip.core.tcp import rx_bulk
from tcpip.core.tcp.conn import QUICKACKS
from tcpip.wire.tcp import ACK, PSH

NXT = REMOTE_ISS + 1
B = 2  # super-segments 0 and 1 went in during the set-up
GSO = 1448
SUPER = 40 * GSO  # 57920 bytes: a super-segment as a TAP read gives it
DELACK = 0.04


def _established(quick: int = 0, ts: bool = True) -> tuple[Harness, Any]:
    """A connection that has taken super-segments 0 and 1 and the read of both: its last ACK offered the
    whole buffer, as in a bulk transfer's steady state (the SYN-ACK offered only the unscaled 65535)."""
    h = Harness(timestamps=ts, sack=True, window_scaling=True)
    conn = h.passive(**({"timestamp": (100, 0)} if ts else {}), sack_permitted=True, wscale=2)
    conn.quick = 0
    h.now = 0.5
    _super(h, conn, 0, _payload(0), ts)
    (r, _), = h.take()  # at once: free space beats the handshake's small window
    assert r.window == (conn.rcvbuf.capacity - SUPER) >> conn.rcv_wscale
    _super(h, conn, 1, _payload(1), ts)
    assert h.take() == []
    assert conn.recv(h.now, None, False) == _payload(0) + _payload(1)
    conn.window_update(h.now)
    (r, _), = h.take()
    assert r.ack == (NXT + 2 * SUPER) & 0xFFFFFFFF
    assert r.window == conn.rcvbuf.capacity >> conn.rcv_wscale
    conn.quick = quick
    h.now = 1.0
    return h, conn


def _super(h: Harness, conn: Any, i: int, data: bytes, ts: bool = True) -> None:
    """The i-th super-segment of the stream (checksum trusted, gso_size GSO) through input_offloaded."""
    opts = {"timestamp": (200 + i, 5)} if ts else {}
    raw = build(RPORT, LPORT, NXT + i * SUPER, conn.snd_nxt, ACK | PSH, 1000, data, **opts)
    mv = memoryview(raw)
    h.layer.input_offloaded(REMOTE, LOCAL, mv, mv, h.now, True, GSO)


def _payload(i: int) -> bytes:
    return bytes([i]) * SUPER


@pytest.mark.parametrize("ts", [True, False])  # with timestamps: rx_bulk.bulk_in; without: header prediction
@pytest.mark.parametrize("fast", [True, False])
def test_a_batch_of_super_segments_then_one_read_costs_one_ack(monkeypatch: pytest.MonkeyPatch, ts: bool,
                                                               fast: bool) -> None:
    monkeypatch.setattr(rx_bulk, "FAST", fast)
    h, conn = _established(ts=ts)
    s = conn.rcv_wscale
    assert s > 0
    for i in range(B, B + 4):
        _super(h, conn, i, _payload(i), ts)
        h.now += 0.0001
    assert h.take() == []  # each found the window smaller than the one last offered: the reader is behind
    assert conn.delack_at == pytest.approx(1.0 + DELACK)  # scheduled all the same (a paused reader gets it)
    assert conn.ack_pending == 4 * SUPER
    pieces = list(iter(lambda: conn.recv_piece(1 << 16), b""))  # the transport's delivery: pieces, ...
    assert pieces == [_payload(i) for i in range(B, B + 4)]  # (a super-segment's payload whole in each)
    assert not conn.data_ev
    assert h.take() == []
    conn.window_update(h.now)  # ... then one window_update
    (r, payload), = h.take()
    assert payload == b""
    assert r.flags == ACK
    assert r.ack == (NXT + (B + 4) * SUPER) & 0xFFFFFFFF
    assert r.window == conn.rcvbuf.capacity >> s  # everything read: the whole buffer again
    if ts:
        assert r.timestamp is not None
        assert r.timestamp[1] == 200 + B  # TSecr: the first unACKed one's TSval (RFC 7323 4.3)
    assert conn.ack_pending == 0
    assert conn.delack_at is None
    assert conn.last_ack_sent == r.ack
    conn.window_update(h.now)  # nothing new: the growth rule has nothing to say either
    assert h.take() == []
    st = h.layer.stats
    assert st.rx_gso_frames == B + 4
    assert st.in_segs >= (B + 4) * 40


def test_a_paused_reader_gets_its_ack_from_the_delayed_ack_timer() -> None:
    h, conn = _established()
    s = conn.rcv_wscale
    for i in range(B, B + 3):
        _super(h, conn, i, _payload(i))
    assert h.take() == []
    assert conn.delack_at == pytest.approx(1.0 + DELACK)
    h.advance(1.0 + DELACK - 0.001)  # (an earlier heap entry may fire: it finds nothing due)
    assert h.take() == []
    h.advance(1.0 + DELACK)
    (r, _), = h.take()
    assert r.ack == (NXT + (B + 3) * SUPER) & 0xFFFFFFFF
    assert r.window == (conn.rcvbuf.capacity - 3 * SUPER) >> s  # the unread bytes are out of the window
    assert conn.readable == 3 * SUPER


def test_quick_acks_at_the_start_then_one_ack_per_drain() -> None:
    h, conn = _established(quick=QUICKACKS)
    i = B
    per_drain = []
    for _ in range(QUICKACKS // 2 + 3):  # drains of two super-segments, each followed by the delivery
        at_arrival = 0
        for _ in range(2):
            _super(h, conn, i, _payload(i))
            i += 1
            at_arrival += len(h.take())
        assert conn.recv(h.now, None, False)
        conn.window_update(h.now)
        at_read = h.take()
        for r, _ in at_read:
            assert r.ack == (NXT + i * SUPER) & 0xFFFFFFFF
        per_drain.append((at_arrival, len(at_read)))
        h.now += 0.001
    # The transfer's start: every super-segment ACKed at once (Linux quickack mode; the read may add a window
    # update by the growth rule); then one drain in between (its first super-segment finds the reader kept
    # up); then one ACK per drain, the read's.
    assert [a for a, _ in per_drain[:QUICKACKS // 2]] == [2] * (QUICKACKS // 2)
    assert conn.quick == 0
    assert per_drain[-2:] == [(0, 1), (0, 1)], per_drain


def test_reader_that_kept_up_gets_an_ack_at_once() -> None:
    h, conn = _established()
    s = conn.rcv_wscale
    _super(h, conn, B, _payload(B))
    _super(h, conn, B + 1, _payload(B + 1))
    assert h.take() == []
    h.advance(1.0 + DELACK)  # the delayed ACK offers capacity - 2 SUPER
    (r, _), = h.take()
    assert r.window == (conn.rcvbuf.capacity - 2 * SUPER) >> s
    conn.recv(h.now, None, False)  # read, no window update: free space is back to capacity
    _super(h, conn, B + 2, _payload(B + 2))  # free now: capacity - SUPER >= what was last offered: ACK at once
    (r, _), = h.take()
    assert r.ack == (NXT + (B + 3) * SUPER) & 0xFFFFFFFF
    assert r.window == (conn.rcvbuf.capacity - SUPER) >> s


def test_plain_segments_keep_the_ack_every_second_segment() -> None:
    h, conn = _established()
    mss = conn.rcv_mss
    seq = NXT + B * SUPER
    for k in range(4):
        raw = build(RPORT, LPORT, seq, conn.snd_nxt, ACK, 1000, bytes(mss), timestamp=(300 + k, 5))
        h.feed_raw(raw)
        seq += mss
        acks = h.take()
        assert len(acks) == k % 2  # RFC 1122 4.2.3.2: at least every second full-sized segment
        if acks:
            assert acks[0][0].ack == seq & 0xFFFFFFFF
    assert conn.readable == 4 * mss


def test_window_growth_rule_unchanged_without_a_deferred_ack() -> None:
    h, conn = _established()
    small = 1000
    raw = build(RPORT, LPORT, NXT + B * SUPER, conn.snd_nxt, ACK, 1000, bytes(small), timestamp=(300, 5))
    h.feed_raw(raw)
    assert h.take() == []  # less than two segments: the delayed ACK
    conn.recv(h.now, None, True)  # a read that moves the edge by less than an MSS: no ACK (SWS)
    assert h.take() == []
    h.advance(1.0 + DELACK)
    (r, _), = h.take()
    assert r.ack == (NXT + B * SUPER + small) & 0xFFFFFFFF


def test_general_path_super_segments_take_the_same_rule() -> None:
    """With our own data in flight (bulk_data declines: the segment acknowledges less than snd_max), _text
    decides the same way: no ACK while the reader is behind, one at the read."""
    h, conn = _established()
    conn.send(b"q" * 100, h.now)  # our request, in flight, unacknowledged by the super-segments below
    (req, payload), = h.take()
    assert payload == b"q" * 100
    una = conn.snd_una
    for i in range(B, B + 3):
        raw = build(RPORT, LPORT, NXT + i * SUPER, una, ACK | PSH, 1000, _payload(i), timestamp=(200 + i, 5))
        mv = memoryview(raw)
        h.layer.input_offloaded(REMOTE, LOCAL, mv, mv, h.now, True, GSO)
    assert h.take() == []
    assert conn.readable == 3 * SUPER
    assert conn.recv(h.now, None, False) == b"".join(_payload(i) for i in range(B, B + 3))
    conn.window_update(h.now)
    (r, payload), = h.take()
    assert payload == b""
    assert r.ack == (NXT + (B + 3) * SUPER) & 0xFFFFFFFF
    assert r.seq == (req.seq + 100) & 0xFFFFFFFF
