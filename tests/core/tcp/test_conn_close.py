"""TCP core: closing: active/passive/simultaneous close, TIME_WAIT (re-ACK, expiry, reuse, bound),
FIN_WAIT_2 timeout, close() with unread data, data after close, abort."""

from __future__ import annotations

from tcp_harness import LOCAL, LPORT, REMOTE, REMOTE_ISS, RPORT, Harness

from tcpip.core.tcp.state import EV_CLOSED, EV_DATA, EV_EOF, TcpState
from tcpip.wire.tcp import ACK, FIN, PSH, RST, SYN

S = TcpState
NXT = REMOTE_ISS + 1


def test_active_close_through_time_wait() -> None:
    h = Harness(time_wait=60.0)
    conn = h.passive()
    us = conn.snd_nxt
    conn.send(b"bye", 1.0)
    conn.close(1.0)
    segs = h.take()
    assert [(s.flags, s.seq, p) for s, p in segs] == [(ACK | PSH, us, b"bye"), (ACK | FIN, us + 3, b"")]
    assert conn.state == S.FIN_WAIT_1
    h.feed(NXT, us + 4, ACK, at=1.1)
    assert conn.state == S.FIN_WAIT_2
    # closed by the application: reported when the FIN is acknowledged
    assert h.events() == [(EV_CLOSED, conn, None)]
    h.feed(NXT, us + 4, ACK | FIN, at=1.2)
    a, _ = h.take_one()
    assert (a.flags, a.seq, a.ack) == (ACK, us + 4, NXT + 1)
    assert conn.state == S.TIME_WAIT
    assert h.events() == []  # no second EV_CLOSED; the peer's FIN is not news to a closed application
    h.advance(61.1)
    assert conn.state == S.TIME_WAIT
    h.advance(61.21)
    assert conn.state == S.CLOSED
    assert h.layer.conns == {}
    assert h.layer.poll_at() is None
    assert h.layer.stats.time_wait_expired == 1


def test_passive_close() -> None:
    h = Harness()
    conn = h.passive()
    us = conn.snd_nxt
    h.feed(NXT, us, ACK | FIN, at=1.0)
    h.take()
    assert conn.state == S.CLOSE_WAIT
    assert h.events() == [(EV_EOF, conn, None)]
    conn.close(1.1)
    f, _ = h.take_one()
    assert (f.flags, f.seq, f.ack) == (ACK | FIN, us, NXT + 1)
    assert conn.state == S.LAST_ACK
    h.feed(NXT + 1, us + 1, ACK, at=1.2)
    assert conn.state == S.CLOSED
    assert h.events() == [(EV_CLOSED, conn, None)]
    assert h.layer.conns == {}
    assert h.layer.stats.curr_estab == 0


def test_orderly_end_without_close_reports_when_both_fins_done() -> None:
    h = Harness()
    conn = h.passive()
    us = conn.snd_nxt
    conn.shutdown(1.0)
    h.take()
    h.feed(NXT, us + 1, ACK, at=1.1)
    assert conn.state == S.FIN_WAIT_2
    assert h.events() == []  # shutdown() only: the application still reads
    h.feed(NXT, us + 1, ACK | FIN, payload=b"last", at=1.2)
    assert conn.state == S.TIME_WAIT
    kinds = [k for k, _, _ in h.events()]
    assert kinds == [EV_DATA, EV_EOF, EV_CLOSED]
    assert conn.recv(1.3) == b"last"


def test_simultaneous_close() -> None:
    h = Harness()
    conn = h.passive()
    us = conn.snd_nxt
    conn.close(1.0)
    f, _ = h.take_one()
    assert f.flags == ACK | FIN
    h.feed(NXT, us, ACK | FIN, at=1.1)  # the peer's FIN crosses ours (does not ACK it)
    a, _ = h.take_one()
    assert (a.flags, a.seq, a.ack) == (ACK, us + 1, NXT + 1)
    assert conn.state == S.CLOSING
    h.feed(NXT + 1, us + 1, ACK, at=1.2)
    assert conn.state == S.TIME_WAIT
    assert h.events()[-1] == (EV_CLOSED, conn, None)


def test_time_wait_reacks_retransmitted_fin_and_restarts() -> None:
    h = Harness(time_wait=10.0)
    conn = h.passive()
    us = conn.snd_nxt
    conn.close(1.0)
    h.feed(NXT, us + 1, ACK | FIN, at=1.1)
    h.take()
    assert conn.state == S.TIME_WAIT
    h.feed(NXT, us + 1, ACK | FIN, at=8.0)  # our ACK was lost: the FIN comes again
    a, _ = h.take_one()
    assert (a.flags, a.seq, a.ack) == (ACK, us + 1, NXT + 1)
    assert h.layer.stats.time_wait_fin_reacked == 1
    h.advance(17.9)
    assert conn.state == S.TIME_WAIT  # 2*MSL restarted at 8.0
    h.advance(18.01)
    assert conn.state == S.CLOSED


def test_time_wait_reused_by_higher_syn() -> None:
    h = Harness()
    lst = h.listen()
    h.feed(REMOTE_ISS, 0, SYN, mss=1460)
    sa, _ = h.take_one()
    h.feed(NXT, sa.seq + 1, ACK)
    conn = lst.accept()
    assert conn is not None
    conn.close(1.0)
    h.feed(NXT, sa.seq + 2, ACK | FIN, at=1.1)
    h.take()
    assert conn.state == S.TIME_WAIT
    h.feed(REMOTE_ISS - 10, 0, SYN, at=2.0)  # an old SYN: ACKed, never a new connection
    a, _ = h.take_one()
    assert (a.flags, a.ack) == (ACK, NXT + 1)
    h.feed(REMOTE_ISS + 100000, 0, SYN, at=3.0)  # higher: the 4-tuple is reused
    sa2, _ = h.take_one()
    assert sa2.flags == SYN | ACK
    assert sa2.ack == REMOTE_ISS + 100001
    assert (sa2.seq - (sa.seq + 2)) % 2**32 == 65537  # ISN above the old connection's
    assert conn.state == S.CLOSED
    assert h.layer.conns[(LOCAL, LPORT, REMOTE, RPORT)].state == S.SYN_RECEIVED
    assert h.layer.stats.tw_recycled == 1


def test_time_wait_table_bounded() -> None:
    h = Harness(max_time_wait=1)
    lst = h.listen()
    conns = []
    for i in range(2):
        h.feed(REMOTE_ISS, 0, SYN, sport=42000 + i)
        sa, _ = h.take_one()
        h.feed(NXT, sa.seq + 1, ACK, sport=42000 + i)
        c = lst.accept()
        assert c is not None
        c.close(1.0)
        h.feed(NXT, sa.seq + 2, ACK | FIN, sport=42000 + i, at=1.1)
        h.take()
        conns.append(c)
    assert [c.state for c in conns] == [S.TIME_WAIT, S.CLOSED]
    assert h.layer.stats.time_wait_overflow == 1
    assert h.layer.time_wait_count == 1


def test_fin_wait_2_timeout_for_orphans() -> None:
    h = Harness(fin_wait2=30.0)
    conn = h.passive()
    us = conn.snd_nxt
    conn.close(1.0)
    h.take()
    h.feed(NXT, us + 1, ACK, at=1.1)
    assert conn.state == S.FIN_WAIT_2
    h.advance(31.0)
    assert conn.state == S.FIN_WAIT_2
    h.advance(31.2)
    r, _ = h.take_one()
    assert r.flags == RST | ACK
    assert r.seq == us + 1
    assert conn.state == S.CLOSED
    assert h.layer.stats.fin_wait2_timeouts == 1


def test_close_with_unread_data_sends_rst() -> None:
    h = Harness()
    conn = h.passive()
    us = conn.snd_nxt
    h.feed(NXT, us, ACK, payload=b"unread", at=1.0)
    h.take()
    h.events()
    conn.close(1.1)
    r, _ = h.take_one()
    assert (r.flags, r.seq, r.ack) == (RST | ACK, us, NXT + 6)
    assert conn.state == S.CLOSED
    assert h.events() == [(EV_CLOSED, conn, None)]
    assert h.layer.stats.abort_on_close == 1


def test_data_after_close_gets_rst() -> None:
    h = Harness()
    conn = h.passive()
    us = conn.snd_nxt
    conn.close(1.0)
    h.take()
    h.feed(NXT, us + 1, ACK, payload=b"late", at=1.1)
    r, _ = h.take_one()
    assert r.flags == RST | ACK
    assert conn.state == S.CLOSED
    assert h.layer.stats.abort_on_data == 1


def test_abort_sends_rst_and_reports() -> None:
    h = Harness()
    conn = h.passive()
    us = conn.snd_nxt
    conn.send(b"pending", 1.0)
    h.take()
    conn.abort(1.1)
    r, _ = h.take_one()
    assert (r.flags, r.seq) == (RST | ACK, us + 7)
    assert h.events() == [(EV_CLOSED, conn, None)]
    assert h.layer.conns == {}
    assert h.layer.poll_at() is None


def test_fin_retransmitted() -> None:
    h = Harness()
    conn = h.passive()
    us = conn.snd_nxt
    conn.close(1.0)
    f, _ = h.take_one()
    h.advance(1.0 + conn.rto + 0.01)
    f2, _ = h.take_one()
    assert (f2.flags, f2.seq) == (f.flags, f.seq) == (ACK | FIN, us)
    assert h.layer.stats.retrans_segs == 1


def test_time_wait_reuse_by_newer_timestamp() -> None:
    h = Harness(timestamps=True)
    lst = h.listen()
    h.feed(REMOTE_ISS, 0, SYN, mss=1460, timestamp=(100, 0))
    sa, _ = h.take_one()
    assert sa.timestamp is not None
    h.feed(NXT, sa.seq + 1, ACK, timestamp=(101, sa.timestamp[0]))
    conn = lst.accept()
    assert conn is not None
    conn.close(1.0)
    h.feed(NXT, sa.seq + 2, ACK | FIN, timestamp=(102, 0), at=1.1)
    h.take()
    assert conn.state == S.TIME_WAIT
    h.feed(REMOTE_ISS - 50, 0, SYN, timestamp=(90, 0), at=2.0)  # lower seq, older timestamp: no
    assert conn.state == S.TIME_WAIT
    h.take()
    h.feed(REMOTE_ISS - 50, 0, SYN, timestamp=(5000, 0), at=3.0)  # lower seq but a newer timestamp
    assert conn.state == S.CLOSED
    assert h.take_one()[0].flags == SYN | ACK


def test_time_wait_without_listener_is_not_reused() -> None:
    h = Harness()
    conn = h.active()
    us = conn.snd_nxt
    conn.close(1.0)
    h.feed(NXT, us + 1, ACK | FIN, at=1.1)
    h.take()
    assert conn.state == S.TIME_WAIT
    h.feed(REMOTE_ISS + 100000, 0, SYN, at=2.0)  # nobody listens on our port: the TIME_WAIT answers
    a, _ = h.take_one()
    assert (a.flags, a.ack) == (ACK, NXT + 1)
    assert conn.state == S.TIME_WAIT


def test_shutdown_during_syn_sent_sends_fin_once_established() -> None:
    h = Harness()
    conn = h.layer.connect(LOCAL, LPORT, REMOTE, RPORT, 0.0)
    syn, _ = h.take_one()
    conn.send(b"early", 0.0)
    conn.shutdown(0.0)
    assert h.take() == []
    h.feed(REMOTE_ISS, syn.seq + 1, SYN | ACK, at=0.1, mss=1460)
    assert conn.state == S.FIN_WAIT_1  # the SYN's ACK is not the FIN's
    segs = h.take()
    assert [(s.flags, s.seq, p) for s, p in segs] == [(ACK | PSH | FIN, syn.seq + 1, b"early")]
    h.feed(NXT, syn.seq + 7, ACK, at=0.2)
    assert conn.state == S.FIN_WAIT_2
