"""Linux's TSO deferral (tcp_tso_should_defer, tcp_tso_win_divisor 3) on the sans-I/O core: with data in
flight, a super-segment the windows cut short waits for the next ACK unless a third of the window is open,
the last send is over 1 ms old, or the oldest segment in flight left less than srtt/2 ago."""

from __future__ import annotations

from tcp_harness import REMOTE_ISS, Harness
from test_offload_core import MSS, GsoRecorder

from tcpip.core.tcp import output as out
from tcpip.core.tcp.conn import Connection
from tcpip.wire.tcp import ACK

FULL = 44 * MSS  # the biggest super-segment in 65535 bytes of datagram


def _start(srtt: float) -> tuple[Harness, GsoRecorder, Connection, int]:
    h = Harness(sack=True)
    rec = GsoRecorder()
    h.layer.enable_tso(65535, rec)
    conn = h.passive(window=65535, sack_permitted=True)
    assert conn.rec is not None
    conn.cc.cwnd = FULL
    conn.send(b"z" * 200_000, h.now)
    out.output(conn, h.now)
    assert [len(s) - thl for s, thl, _ in rec.sent] == [FULL]  # the window's 1295-byte rest waits (SWS)
    rec.sent.clear()
    conn.srtt = srtt
    return h, rec, conn, conn.snd_una


def _ack(h: Harness, conn: Connection, una: int, n: int, at: float) -> None:
    h.feed(REMOTE_ISS + 1, una + n, ACK, 65535, at=at)
    out.output(conn, h.now)


def test_short_super_segment_waits_for_the_next_ack() -> None:
    h, rec, conn, una = _start(srtt=0.001)
    _ack(h, conn, una, 2 * MSS, at=0.0008)  # room for 2 segments, an ACK due (head 0.8 ms old >= srtt/2)
    assert rec.sent == []
    assert h.take() == []
    _ack(h, conn, una, 22 * MSS, at=0.0009)  # now a third of the window is open: send it whole
    assert [len(s) - thl for s, thl, _ in rec.sent] == [22 * MSS]


def test_no_deferral_when_the_last_send_is_over_1_ms_old() -> None:
    h, rec, conn, una = _start(srtt=0.001)
    _ack(h, conn, una, 2 * MSS, at=0.0015)
    assert [len(s) - thl for s, thl, _ in rec.sent] == [2 * MSS]


def test_no_deferral_while_the_oldest_segment_is_younger_than_half_an_rtt() -> None:
    h, rec, conn, una = _start(srtt=0.010)
    _ack(h, conn, una, 2 * MSS, at=0.0008)  # its ACK is not due for another 4 ms: send what fits
    assert [len(s) - thl for s, thl, _ in rec.sent] == [2 * MSS]
