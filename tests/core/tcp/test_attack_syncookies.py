"""SYN cookies: sent when the half-open table is full, a legitimate client completes, forged or stale ACKs
get a RST, options come back through TSecr, and no state is kept per SYN."""

from __future__ import annotations

from tcp_harness import REMOTE_ISS, Harness

from tcpip.core.tcp.state import EV_ACCEPT, TcpState
from tcpip.core.tcp.syncookies import MSS_TABLE, SynCookies, decode_ts, encode_ts
from tcpip.wire.tcp import ACK, FIN, PSH, RST, SYN, URG

S = TcpState
NXT = REMOTE_ISS + 1


def _flood(h: Harness, n: int, first: int = 20000) -> None:
    for i in range(n):
        h.feed(REMOTE_ISS + i, 0, SYN, sport=first + i, mss=1460)


def test_cookies_when_half_open_table_full_and_client_completes() -> None:
    h = Harness()
    lst = h.listen(backlog=4)
    _flood(h, 4)
    assert len(h.take()) == 4
    assert len(lst.half_open) == 4
    h.feed(REMOTE_ISS, 0, SYN, sport=40001, mss=1400, at=1.0)
    sa, _ = h.take_one()
    assert sa.flags == SYN | ACK
    assert sa.mss == 1460
    assert len(lst.half_open) == 4  # nothing kept
    assert h.layer.stats.syncookies_sent == 1
    h.feed(NXT, sa.seq + 1, ACK | PSH, payload=b"GET /", sport=40001, at=1.1)
    conn = lst.accept()
    assert conn is not None
    assert (conn.state, conn.remote_port, conn.mss) == (S.ESTABLISHED, 40001, 1300)
    assert conn.recv(1.2) == b"GET /"
    assert h.layer.stats.syncookies_recv == 1
    assert EV_ACCEPT in [e[0] for e in h.events()]


def test_cookie_ack_with_fin_completes_and_half_closes() -> None:
    h = Harness(syncookies=2)
    lst = h.listen()
    h.feed(REMOTE_ISS, 0, SYN, mss=1460)
    sa, _ = h.take_one()
    h.feed(NXT, sa.seq + 1, ACK | FIN, payload=b"bye")
    conn = lst.accept()
    assert conn is not None
    assert conn.state == S.CLOSE_WAIT
    assert conn.recv(0.0) == b"bye"


def test_forged_cookie_gets_rst_and_counter() -> None:
    h = Harness(syncookies=2)
    lst = h.listen()
    h.feed(REMOTE_ISS, 0, SYN)
    sa, _ = h.take_one()
    h.feed(NXT, sa.seq + 2, ACK)  # off by one
    h.feed(NXT + 1, sa.seq + 1, ACK)  # another peer ISN
    assert [s.flags for s, _ in h.take()] == [RST, RST]
    assert h.layer.stats.syncookies_failed == 2
    assert lst.accept() is None
    assert h.layer.conns == {}


def test_only_ack_psh_fin_complete() -> None:
    h = Harness(syncookies=2)
    lst = h.listen()
    h.feed(REMOTE_ISS, 0, SYN)
    sa, _ = h.take_one()
    h.feed(NXT, sa.seq + 1, ACK | URG)
    h.feed(NXT, sa.seq + 1, ACK | RST)
    assert lst.accept() is None
    assert h.layer.stats.syncookies_recv == 0


def test_cookie_expires() -> None:
    h = Harness(syncookies=2)
    lst = h.listen()
    h.feed(REMOTE_ISS, 0, SYN, at=10.0)
    sa, _ = h.take_one()
    h.feed(NXT, sa.seq + 1, ACK, at=10.0 + 200)
    assert lst.accept() is None
    assert h.layer.stats.syncookies_failed == 1


def test_cookie_not_checked_without_recent_overflow() -> None:
    h = Harness()
    h.listen()
    h.feed(NXT, 12345, ACK)
    assert h.take_one()[0].flags == RST
    assert h.layer.stats.syncookies_failed == 0
    assert h.layer.stats.rx_listen_bad == 1


def test_options_ride_in_tsval() -> None:
    h = Harness(syncookies=2, timestamps=True, sack=True, window_scaling=True)
    lst = h.listen()
    h.feed(REMOTE_ISS, 0, SYN, mss=1460, wscale=7, sack_permitted=True, timestamp=(500, 0), at=3.0)
    sa, _ = h.take_one()
    assert sa.timestamp is not None
    assert decode_ts(sa.timestamp[0]) == (7, True)
    assert sa.timestamp[1] == 500
    h.feed(NXT, sa.seq + 1, ACK, window=100, timestamp=(501, sa.timestamp[0]), at=3.05)
    conn = lst.accept()
    assert conn is not None
    assert (conn.snd_wscale, conn.sack_ok, conn.ts_ok, conn.ws_ok) == (7, True, True, True)
    assert conn.snd_wnd == 100 << 7
    assert conn.rcv_wscale == sa.wscale


def test_without_timestamps_no_wscale_or_sack() -> None:
    h = Harness(syncookies=2, sack=True, window_scaling=True)
    lst = h.listen()
    h.feed(REMOTE_ISS, 0, SYN, mss=536, wscale=7, sack_permitted=True)
    sa, _ = h.take_one()
    assert (sa.wscale, sa.sack_permitted, sa.timestamp) == (None, False, None)
    h.feed(NXT, sa.seq + 1, ACK)
    conn = lst.accept()
    assert conn is not None
    assert (conn.snd_wscale, conn.rcv_wscale, conn.sack_ok, conn.mss) == (0, 0, False, 536)


def test_encode_ts_never_ahead() -> None:
    for tsval in (0, 1, 63, 64, 1000, 2**32 - 1):
        for ws in (None, 0, 14):
            ts = encode_ts(tsval, ws, True)
            assert (tsval - ts) % 2**32 < 128
            assert decode_ts(ts) == (ws, True)


def test_mss_table_and_mac() -> None:
    c = SynCookies(b"secret")
    for peer_mss, want in ((100, 536), (536, 536), (1300, 1300), (1459, 1440), (9000, 1460)):
        ck, m = c.make(1, 80, 2, 5000, 777, peer_mss, 100.0)
        assert m == want
        assert c.check(1, 80, 2, 5000, 777, ck, 130.0) == want
        assert c.check(1, 80, 2, 5001, 777, ck, 130.0) is None
        assert c.check(1, 80, 2, 5000, 777, ck, 300.0) is None
    assert MSS_TABLE[-1] == 1460
    other = SynCookies(b"other")
    ck, _ = c.make(1, 80, 2, 5000, 777, 1460, 0.0)
    assert other.check(1, 80, 2, 5000, 777, ck, 0.0) is None


def test_flood_keeps_state_bounded_and_client_completes() -> None:
    h = Harness(max_syn_backlog=64)
    lst = h.listen(backlog=128)
    _flood(h, 5000, first=1024)
    assert len(h.layer.conns) == 64
    assert h.layer.stats.syncookies_sent == 5000 - 64
    h.take()
    h.feed(REMOTE_ISS, 0, SYN, sport=999, mss=1460, at=1.0)
    sa, _ = h.take_one()
    h.feed(NXT, sa.seq + 1, ACK, sport=999, at=1.01)
    conn = lst.accept()
    assert conn is not None
    assert conn.remote_port == 999
