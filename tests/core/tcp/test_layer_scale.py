"""TcpLayer with 10,000 connections and live timers: one heap entry per connection, poll_at is the earliest
deadline, a timeout touches only the connections that are due, and rescheduling keeps the heap bounded."""

from __future__ import annotations

from tcp_harness import REMOTE_ISS, Harness

from tcpip.core.tcp import timeouts
from tcpip.wire.tcp import ACK, SYN

N = 10_000
NXT = REMOTE_ISS + 1


def test_ten_thousand_connections_with_timers(monkeypatch: object) -> None:
    h = Harness(rcvbuf=8192, sndbuf=8192)
    lst = h.layer.listen(0, 80, N)
    for i in range(N):
        sport = 10000 + i
        h.feed(REMOTE_ISS, 0, SYN, sport=sport, mss=1460)
        iss = int.from_bytes(h.out.sent[-1][2][4:8], "big")
        h.feed(NXT, iss + 1, ACK, sport=sport)
    h.out.sent.clear()
    conns = []
    while (c := lst.accept()) is not None:
        conns.append(c)
    assert len(conns) == N
    assert h.layer.poll_at() is None  # established and idle: no timers at all
    # every connection sends one byte at its own time: one RTO deadline each
    for i, c in enumerate(conns):
        c.send(b"x", 1.0 + i * 1e-4)
    h.take()
    assert len(h.layer.timers) <= 2 * N
    assert h.layer.poll_at() == 1.0 + conns[0].rto
    calls = []
    real = timeouts.on_timer

    def counting(conn: object, now: float) -> None:
        calls.append(conn)
        real(conn, now)  # type: ignore[arg-type]

    monkeypatch.setattr("tcpip.core.tcp.layer.on_timer", counting)  # type: ignore[attr-defined]
    due = 1.0 + conns[0].rto + 49 * 1e-4 + 1e-9
    h.layer.handle_timeout(due)
    assert len(calls) == 50  # only the due ones are touched
    assert len(h.take()) == 50
    # ACK everything (each ACK moves or clears a deadline) and send again, three rounds
    for rnd in range(3):
        t = 2.0 + rnd
        for c in conns:
            h.feed(NXT, c.snd_max, ACK, sport=c.remote_port, at=t)
            c.send(b"y", t)
        h.take()
        assert len(h.layer.timers) <= 3 * N  # lazy deletion, compacted
    assert h.layer.poll_at() is not None
    h.advance(12.0)  # unacknowledged: every connection retransmits
    assert len({s.dst_port for s, _ in h.take()}) == N
    assert all(c.retries >= 1 for c in conns)
    assert len(h.layer.timers) <= 3 * N
