"""The receive fast path for in-order bulk data (input.bulk_data) does exactly what the general path does:
one script of segments (with timestamps and SACK) replayed with the fast path on and off gives the same
segments out, byte for byte, the same events, data and connection fields."""

from __future__ import annotations

from typing import Any

import pytest
from tcp_harness import REMOTE_ISS, Harness

from tcpip.core.tcp import input as tcp_input
from tcpip.wire.tcp import ACK, FIN, PSH

NXT = REMOTE_ISS + 1
MSS = 1000
FIELDS = ("snd_una", "snd_nxt", "snd_max", "snd_wnd", "max_snd_wnd", "snd_wl1", "snd_wl2", "rcv_adv",
          "last_ack_sent", "ack_pending", "delack_at", "rcv_mss", "rcv_tstamp", "ts_recent",
          "rexmit_at", "data_ev", "state")
# (timer_at, the heap entry, is not compared: the fast path leaves an entry for a cleared delayed ACK in
# place, to fire early and re-arm; it must only never be later than the earliest deadline: _entry_ok)
REAL = tcp_input.bulk_data


def _entry_ok(conn: Any) -> bool:
    """The connection's heap entry exists and is no later than its earliest deadline, when it has one."""
    due = [t for t in (conn.rexmit_at, conn.delack_at, conn.linger_at, conn.loss_at) if t is not None]
    return not due or (conn.timer_at is not None and conn.timer_at <= min(due))


def script(monkeypatch: pytest.MonkeyPatch, fast: bool) -> tuple[list[Any], int]:
    taken = [0]

    def counted(*args: Any) -> bool:
        ok = fast and REAL(*args)
        taken[0] += ok
        return ok

    monkeypatch.setattr(tcp_input, "bulk_data", counted)
    h = Harness(mss=MSS, timestamps=True, sack=True, window_scaling=True, rcvbuf=20000)
    conn = h.passive(window=1000, timestamp=(100, 0), sack_permitted=True, wscale=2)
    us = conn.snd_nxt
    log: list[Any] = []
    seq, ts, ackno = NXT, 101, us

    def data(n: int, *, at: float, window: int = 1000, ack: int | None = None, flags: int = ACK | PSH,
             off: int = 0) -> None:
        nonlocal ts, ackno
        ts += 1
        ackno = ackno if ack is None else ack
        h.feed(seq + off, ackno, flags, window, payload=bytes([ts & 255]) * n, at=at,
               timestamp=(ts, 0))
        log.append((at, [(str(s), s.timestamp, s.sack, p) for s, p in h.take()],
                    {f: getattr(conn, f) for f in FIELDS}, [e[0] for e in h.events()], _entry_ok(conn)))

    t = 1.0
    for _ in range(7):  # in order: an ACK every second segment, a delayed ACK armed after the odd ones
        data(MSS, at=t)
        seq += MSS
        t += 0.001
    h.advance(t + 0.05)  # the delayed ACK fires
    log.append(("delack", [(str(s), p) for s, p in h.take()], conn.delack_at))
    data(MSS, at=t + 0.1, window=30000)  # the peer's window grows (scaled by 4, past the SYN's) in a data segment
    seq += MSS
    log.append(("read", conn.recv(t + 0.1)))
    assert conn.send(b"q" * 1500, t + 0.11) == 1500  # ours in flight: the general path must take over
    log.append(("sent", [(str(s), p) for s, p in h.take()]))
    data(MSS, at=t + 0.12)  # acknowledges none of it
    seq += MSS
    data(MSS, at=t + 0.13, ack=us + 1500)  # acknowledges all of it
    seq += MSS
    data(MSS, at=t + 0.14, off=MSS)  # a hole ...
    data(MSS, at=t + 0.15)  # ... filled
    seq += 2 * MSS
    for _ in range(3):  # in order again, then more than the window holds, then a FIN
        data(MSS, at=t + 0.2)
        seq += MSS
    log.append(("read", conn.recv(t + 0.2)))
    data(MSS, at=t + 0.3, flags=ACK | PSH | FIN)
    return log, taken[0]


def test_fast_path_matches_the_general_path(monkeypatch: pytest.MonkeyPatch) -> None:
    general, none = script(monkeypatch, fast=False)
    fast, taken = script(monkeypatch, fast=True)
    assert none == 0
    assert taken == 11  # the in-order runs took the fast path ...
    assert fast == general  # ... with the same segments, fields and events as the general path
