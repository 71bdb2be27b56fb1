"""TcpLayer: listeners (backlog bounds, accept queue, close), ports, ICMP errors, send failures, info rows."""

from __future__ import annotations

import errno
import struct

import pytest
from tcp_harness import LOCAL, LPORT, REMOTE, REMOTE_ISS, RPORT, Harness

from tcpip.core.tcp.state import EV_ACCEPT, EV_CLOSED, TcpState
from tcpip.errors import AddressInUseError, HostUnreachableError, NoRouteError
from tcpip.wire.tcp import ACK, RST, SYN

S = TcpState
NXT = REMOTE_ISS + 1


def _handshake(h: Harness, sport: int) -> int:
    h.feed(REMOTE_ISS, 0, SYN, sport=sport, mss=1460)
    sa, _ = h.take_one()
    h.feed(NXT, sa.seq + 1, ACK, sport=sport)
    return sa.seq


def test_half_open_bounded_by_backlog() -> None:
    h = Harness(syncookies=0)
    lst = h.layer.listen(LOCAL, LPORT, 2)
    for i in range(4):
        h.feed(REMOTE_ISS, 0, SYN, sport=50000 + i)
    assert len(h.take()) == 2
    assert len(lst.half_open) == 2
    assert h.layer.stats.listen_drops == 2


def test_half_open_bounded_in_total() -> None:
    h = Harness(max_syn_backlog=3, syncookies=0)
    l1 = h.layer.listen(LOCAL, 80, 10)
    l2 = h.layer.listen(LOCAL, 81, 10)
    for i in range(2):
        h.feed(REMOTE_ISS, 0, SYN, sport=50000 + i, dport=80)
        h.feed(REMOTE_ISS, 0, SYN, sport=50000 + i, dport=81)
    assert len(h.take()) == 3
    assert len(l1.half_open) + len(l2.half_open) == 3
    assert h.layer.stats.syn_backlog_full == 1


def test_accept_queue_bounded() -> None:
    h = Harness()
    lst = h.layer.listen(LOCAL, LPORT, 2)
    _handshake(h, 50000)
    _handshake(h, 50001)
    assert len(lst.accept_queue) == 2
    h.feed(REMOTE_ISS, 0, SYN, sport=50002)  # queue full: the SYN is dropped
    assert h.take() == []
    assert h.layer.stats.listen_overflows == 1
    assert [type(e[2]).__name__ for e in h.events()] == ["Connection", "Connection"]
    assert lst.accept() is not None
    assert len(lst.accept_queue) == 1


def test_full_accept_queue_drops_the_final_ack() -> None:
    h = Harness()
    lst = h.layer.listen(LOCAL, LPORT, 2)
    isn = {}
    for p in (50000, 50001):
        h.feed(REMOTE_ISS, 0, SYN, sport=p)
        isn[p] = h.take_one()[0].seq
    h.feed(NXT, isn[50000] + 1, ACK, sport=50000)
    _handshake(h, 50002)
    assert len(lst.accept_queue) == 2
    h.feed(NXT, isn[50001] + 1, ACK, sport=50001)  # the queue is full: the ACK is dropped
    c = h.layer.conns[(LOCAL, LPORT, REMOTE, 50001)]
    assert c.state == S.SYN_RECEIVED
    assert h.layer.stats.listen_overflows == 1
    assert lst.accept() is not None
    h.feed(NXT, isn[50001] + 1, ACK, payload=b"hi", sport=50001)  # the peer sends: now it completes
    assert c.state == S.ESTABLISHED
    assert list(lst.accept_queue)[-1] is c
    assert c.readable == 2


def test_listener_close_resets_unaccepted() -> None:
    h = Harness()
    lst = h.layer.listen(LOCAL, LPORT, 4)
    s1 = _handshake(h, 50000)
    h.feed(REMOTE_ISS, 0, SYN, sport=50001)
    s2, _ = h.take_one()
    evs = h.events()
    assert [k for k, _, _ in evs] == [EV_ACCEPT]
    lst.close(1.0)
    rsts = sorted((r.dst_port, r.flags, r.seq) for r, _ in h.take())
    assert rsts == [(50000, RST | ACK, s1 + 1), (50001, RST | ACK, s2.seq + 1)]
    assert h.events() == [(EV_CLOSED, evs[0][2], None)]  # the queued (reported) one only
    assert h.layer.conns == {}
    assert h.layer.half_open_total == 0
    h.feed(REMOTE_ISS, 0, SYN, sport=50002)  # nobody listens now
    r, _ = h.take_one()
    assert r.flags == RST | ACK


def test_listen_errors_and_ephemeral_port() -> None:
    h = Harness()
    h.layer.listen(LOCAL, LPORT, 4)
    with pytest.raises(AddressInUseError) as ei:
        h.layer.listen(LOCAL, LPORT, 4)
    assert ei.value.errno == errno.EADDRINUSE
    lst = h.layer.listen(0, 0, 4)
    assert 32768 <= lst.port <= 60999
    h.active()
    with pytest.raises(AddressInUseError):
        h.layer.connect(LOCAL, LPORT, REMOTE, RPORT, 1.0)


def test_ephemeral_ports_never_collide() -> None:
    h = Harness()
    ports = set()
    for _ in range(200):
        c = h.layer.connect(LOCAL, 0, REMOTE, 443, 0.0)
        assert 32768 <= c.local_port <= 60999
        ports.add(c.local_port)
    assert len(ports) == 200


def _quote(seq: int, src: int = LOCAL, dst: int = REMOTE, sport: int = LPORT, dport: int = RPORT) -> memoryview:
    ip = struct.pack("!BBHHHBBHII", 0x45, 0, 60, 0, 0, 64, 6, 0, src, dst)
    return memoryview(ip + struct.pack("!HHI", sport, dport, seq))


@pytest.mark.parametrize(("code", "err"), [(0, errno.ENETUNREACH), (1, errno.EHOSTUNREACH),
                                           (3, errno.ECONNREFUSED), (13, errno.EHOSTUNREACH)])
def test_icmp_unreachable_fails_connect(code: int, err: int) -> None:
    h = Harness()
    conn = h.layer.connect(LOCAL, LPORT, REMOTE, RPORT, 0.0)
    h.layer.icmp_error(3, code, 0, _quote(conn.iss + 7), 0.1)  # sequence outside: ignored
    assert conn.state == S.SYN_SENT
    h.layer.icmp_error(3, code, 0, _quote(conn.iss), 0.1)
    assert conn.state == S.CLOSED
    [(kind, _, exc)] = h.events()
    assert kind == EV_CLOSED
    assert isinstance(exc, OSError)
    assert exc.errno == err
    assert h.layer.stats.icmp_unreachable == 1
    assert h.layer.stats.icmp_ignored == 1


def test_icmp_unreachable_on_established_is_soft() -> None:
    h = Harness()
    conn = h.active()
    h.layer.icmp_error(3, 1, 0, _quote(conn.snd_una), 1.0)
    assert conn.state == S.ESTABLISHED


def test_frag_needed_lowers_mss_and_resends() -> None:
    h = Harness()
    conn = h.active()
    us = conn.snd_nxt
    conn.send(b"m" * 3000, 1.0)
    assert [len(p) for _, p in h.take()] == [1460, 1460, 80]
    h.layer.icmp_error(3, 4, 1000, _quote(us + 5000), 1.01)  # seq beyond snd_nxt: ignored
    assert conn.mss == 1460
    h.layer.icmp_error(3, 4, 1000, _quote(us), 1.01)
    assert conn.mss == 960
    [(s, p)] = h.take()
    assert (s.seq, len(p)) == (us, 960)
    h.feed(REMOTE_ISS + 1, us + 960, ACK, at=1.1)
    assert [len(p) for _, p in h.take()] == [960, 960, 120]
    assert h.layer.stats.icmp_frag_needed == 1


@pytest.mark.parametrize(("exc", "err"), [(NoRouteError("no route"), errno.ENETUNREACH),
                                          (HostUnreachableError("arp"), errno.EHOSTUNREACH)])
def test_send_failure_during_connect(exc: Exception, err: int) -> None:
    h = Harness()
    h.out.fail = exc
    conn = h.layer.connect(LOCAL, LPORT, REMOTE, RPORT, 0.0)
    assert conn.state == S.CLOSED
    [(kind, _, e)] = h.events()
    assert kind == EV_CLOSED
    assert isinstance(e, OSError)
    assert e.errno == err
    assert h.layer.conns == {}
    assert h.layer.poll_at() is None


def test_send_failure_on_syn_retransmit() -> None:
    h = Harness()
    conn = h.layer.connect(LOCAL, LPORT, REMOTE, RPORT, 0.0)
    h.out.fail = HostUnreachableError("arp")
    h.advance(1.5)
    assert conn.state == S.CLOSED
    assert h.events()[0][2].errno == errno.EHOSTUNREACH


def test_send_failure_when_established_is_a_loss() -> None:
    h = Harness()
    conn = h.active()
    h.out.fail = NoRouteError("gone")
    conn.send(b"x", 1.0)
    h.out.fail = None
    h.advance(1.0 + conn.rto + 0.01)
    [(_s, p)] = h.take()
    assert p == b"x"
    assert h.layer.stats.send_errors == 1


def test_connections_rows() -> None:
    h = Harness()
    h.listen()
    conn = h.active()
    conn.send(b"q" * 10, 1.0)
    rows = {r.state: r for r in h.layer.connections()}
    assert rows["LISTEN"].local_port == LPORT
    assert rows["LISTEN"].send_q == 8
    e = rows["ESTABLISHED"]
    assert (e.local_addr, e.local_port, e.remote_addr, e.remote_port) == (LOCAL, LPORT, REMOTE, RPORT)
    assert (e.send_q, e.recv_q, e.mss, e.cwnd) == (10, 0, 1460, 14600)
    assert e.rto == conn.rto


def test_frag_needed_during_syn_sent_caps_the_mss() -> None:
    h = Harness()
    conn = h.layer.connect(LOCAL, LPORT, REMOTE, RPORT, 0.0)
    syn, _ = h.take_one()
    assert syn.mss == 1460
    h.layer.icmp_error(3, 4, 1200, _quote(conn.iss), 0.1)
    assert conn.state == S.SYN_SENT
    h.feed(REMOTE_ISS, syn.seq + 1, SYN | ACK, at=0.2, mss=1460)
    assert conn.mss == 1160
