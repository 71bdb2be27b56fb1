"""TCP core: segment acceptability (RFC 9293 3.10.7.4, four cases), out-of-window ACKs and their rate limit,
ACKs of unsent data, RFC 5961 RST/SYN handling with challenge ACKs and the global limit."""

from __future__ import annotations

import errno
from typing import Any

from tcp_harness import REMOTE_ISS, Harness

from tcpip.core.tcp.conn import Connection
from tcpip.core.tcp.state import EV_CLOSED, EV_DATA, TcpState
from tcpip.wire.tcp import ACK, PSH, RST, SYN

S = TcpState
NXT = REMOTE_ISS + 1


def _conn(**cfg: Any) -> tuple[Harness, Connection, int]:
    h = Harness(**cfg)
    conn = h.passive()
    return h, conn, conn.snd_nxt


def test_case_len0_wnd_positive() -> None:
    h, _, us = _conn()
    h.feed(NXT + 100, us, ACK, at=1.0)  # inside the window: acceptable, nothing to say
    assert h.take() == []
    h.feed(NXT - 1, us, ACK, at=2.0)  # left of the window
    a, _ = h.take_one()
    assert (a.flags, a.seq, a.ack, a.window) == (ACK, us, NXT, 65535)
    h.feed(NXT + 65535, us, ACK, at=3.0)  # exactly the right edge: acceptable (Linux tcp_sequence)
    assert h.take() == []
    h.feed(NXT + 65536, us, ACK, at=4.0)  # one past it: outside
    assert h.take_one()[0].ack == NXT
    assert h.layer.stats.rx_not_acceptable == 2


def test_case_len0_wnd_zero() -> None:
    h, conn, us = _conn(rcvbuf=1000)
    h.feed(NXT, us, ACK, payload=b"x" * 1000, at=1.0)
    assert h.take() == []  # delayed ACK
    h.advance(1.1)
    a, _ = h.take_one()
    assert (a.ack, a.window) == (NXT + 1000, 0)
    h.feed(NXT + 1000, us, ACK, window=7, at=2.0)  # seq == rcv_nxt: acceptable with a zero window
    assert h.take() == []
    assert conn.snd_wnd == 7
    h.feed(NXT + 1001, us, ACK, at=3.0)  # anything else is not
    a, _ = h.take_one()
    assert (a.ack, a.window) == (NXT + 1000, 0)


def test_case_data_wnd_zero() -> None:
    h, conn, us = _conn(rcvbuf=1000)
    h.feed(NXT, us, ACK, payload=b"x" * 1000, at=1.0)
    h.advance(1.1)
    h.take()
    conn.send(b"abc", 1.2)
    h.take()
    h.feed(NXT + 1000, us + 3, ACK, window=100, payload=b"more", at=1.3)  # data at rcv_nxt, window 0
    a, _ = h.take_one()  # the data is dropped and ACKed at once; its ACK field still counts
    assert (a.ack, a.window) == (NXT + 1000, 0)
    assert conn.snd_una == us + 3
    assert conn.snd_wnd == 100
    assert h.layer.stats.zero_window_drop == 1
    assert conn.readable == 1000
    h.feed(NXT + 1001, us + 3, ACK, payload=b"z", at=1.4)  # not at rcv_nxt: plainly unacceptable
    assert h.take_one()[0].ack == NXT + 1000


def test_case_data_wnd_positive_overlaps() -> None:
    h, conn, us = _conn()
    h.feed(NXT, us, ACK | PSH, payload=b"hello", at=1.0)
    h.feed(NXT + 3, us, ACK | PSH, payload=b"lo world", at=1.01)  # starts before rcv_nxt, ends inside
    assert conn.recv(1.02) == b"hello world"
    h.take()
    h.feed(NXT, us, ACK, payload=b"hello", at=2.0)  # entirely old: a duplicate, ACKed
    a, _ = h.take_one()
    assert a.ack == NXT + 11
    h.feed(NXT + 11 + 65535, us, ACK, payload=b"far", at=2.1)  # beyond the right edge
    assert h.take_one()[0].ack == NXT + 11
    assert conn.readable == 0


def test_oow_acks_rate_limited_for_empty_segments_only() -> None:
    h, _, us = _conn()
    for i in range(5):
        h.feed(NXT - 10, us, ACK, at=1.0 + i * 0.01)
    assert len(h.take()) == 1
    assert h.layer.stats.oow_ratelimited == 4
    for i in range(3):
        h.feed(NXT - 10, us, ACK, payload=b"old", at=1.1 + i * 0.01)  # data: always answered
    assert len(h.take()) == 3
    h.feed(NXT - 10, us, ACK, at=1.6)  # the limit has passed
    assert len(h.take()) == 1


def test_ack_of_unsent_data() -> None:
    h, conn, us = _conn()
    conn.send(b"abc", 1.0)
    h.take()
    h.feed(NXT, us + 10, ACK, payload=b"data", at=1.1)
    a, _ = h.take_one()
    assert (a.flags, a.seq, a.ack) == (ACK, us + 3, NXT)  # ACK and drop: the data is not taken
    assert conn.readable == 0
    assert conn.snd_una == us
    assert h.layer.stats.rx_ack_unsent == 1


def test_rst_exact_sequence_resets() -> None:
    h, conn, _us = _conn()
    h.feed(NXT, 0, RST, at=1.0)
    assert conn.state == S.CLOSED
    assert h.take() == []
    [(kind, c, exc)] = h.events()
    assert kind == EV_CLOSED
    assert c is conn
    assert isinstance(exc, ConnectionResetError)
    assert exc.errno == errno.ECONNRESET
    assert h.layer.stats.estab_resets == 1
    assert h.layer.stats.curr_estab == 0


def test_rst_in_window_gets_challenge_ack() -> None:
    h, conn, us = _conn()
    h.feed(NXT + 1, 0, RST, at=1.0)
    a, _ = h.take_one()
    assert (a.flags, a.seq, a.ack) == (ACK, us, NXT)
    assert conn.state == S.ESTABLISHED
    h.feed(NXT + 70000, 0, RST, at=2.0)  # outside the window: silently dropped
    assert h.take() == []
    st = h.layer.stats
    assert (st.rx_rst_challenged, st.challenge_acks, st.rx_rst_ignored) == (1, 1, 1)


def test_syn_on_synchronized_gets_challenge_ack() -> None:
    h, conn, us = _conn()
    h.feed(NXT + 5, 0, SYN, at=1.0)  # in window
    a, _ = h.take_one()
    assert (a.flags, a.seq, a.ack) == (ACK, us, NXT)
    h.feed(REMOTE_ISS - 5000, 0, SYN, at=2.0)  # out of window: still a challenge, never a reset
    assert h.take_one()[0].ack == NXT
    assert conn.state == S.ESTABLISHED
    assert h.layer.stats.syn_challenges == 2


def test_challenge_acks_globally_limited() -> None:
    h = Harness(challenge_ack_limit=2, invalid_ratelimit=0.0)
    lst = h.listen()
    conns = []
    for i in range(4):
        h.feed(REMOTE_ISS, 0, SYN, sport=41000 + i)
        sa, _ = h.take_one()
        h.feed(REMOTE_ISS + 1, sa.seq + 1, ACK, sport=41000 + i)
        conns.append(lst.accept())
    for i in range(4):
        h.feed(NXT + 1, 0, RST, at=5.0, sport=41000 + i)
    sent = len(h.take())  # the budget is randomised in [limit/2, 3*limit/2) (Linux)
    assert 1 <= sent <= 2
    assert h.layer.stats.challenge_ack_limited == 4 - sent
    h.feed(NXT + 1, 0, RST, at=6.0, sport=41000)  # a new second, a new budget
    assert len(h.take()) == 1


def test_paws_drops_old_timestamp() -> None:
    h = Harness(timestamps=True)
    conn = h.passive(timestamp=(1000, 0))
    h.feed(NXT, conn.snd_nxt, ACK, payload=b"new", timestamp=(1005, 0), at=1.0)
    h.feed(NXT + 3, conn.snd_nxt, ACK, payload=b"old", timestamp=(999, 0), at=1.1)
    assert conn.recv(1.2) == b"new"
    assert h.layer.stats.paws_rejected == 1
    assert any(e[0] == EV_DATA for e in h.events())
