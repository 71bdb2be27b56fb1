"""TCP core under random segments, API calls and timer runs: nothing raises, invariants hold, EV_CLOSED at
most once per connection, every segment out checksums."""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st
from tcp_harness import REMOTE_ISS, Harness

from tcpip.core.tcp.conn import Connection
from tcpip.core.tcp.seq import seq_le
from tcpip.core.tcp.state import EV_CLOSED, TcpState

S = TcpState

segments = st.tuples(
    st.integers(-70000, 70000),  # seq offset from the peer's idea of rcv_nxt
    st.integers(-70000, 70000),  # ack offset from our snd_una
    st.integers(0, 0xFF),  # flags
    st.integers(0, 0xFFFF),  # window
    st.integers(0, 3000),  # payload length
    st.sampled_from([{}, {"timestamp": (5, 0)}, {"sack": ((1, 2),)}, {"mss": 100, "wscale": 9}]),
    st.lists(st.tuples(st.integers(-3000, 20000), st.integers(0, 5000)), max_size=4),  # SACK blocks
)
actions = st.one_of(
    st.tuples(st.just("seg"), segments),
    st.tuples(st.just("api"), st.sampled_from(["send", "recv", "shutdown", "close", "abort"])),
    st.tuples(st.just("time"), st.floats(0.0, 30.0)),
)


def _check(conn: Connection) -> None:
    if conn.state not in (S.CLOSED, S.SYN_SENT, S.LISTEN):
        assert seq_le(conn.snd_una, conn.snd_nxt)
        assert seq_le(conn.snd_nxt, conn.snd_max)
        # autotuning grows either buffer (Linux tcp_moderate_rcvbuf, tcp_sndbuf_expand), never past its cap
        cfg = conn.config
        assert conn.rcvbuf.readable <= conn.rcvbuf.capacity <= max(cfg.rcvbuf, cfg.rcvbuf_max)
        assert 0 <= conn.sndbuf.queued <= conn.sndbuf.capacity <= max(cfg.sndbuf, cfg.sndbuf_max)


@settings(max_examples=150, deadline=None)
@example(start="passive", ts=False, sack=False,  # the send buffer grown by an ACK, then filled past config.sndbuf
         acts=[("api", "send"), ("api", "send"), ("seg", (0, 1, 16, 0, 0, {}, [])), ("api", "send")])
@given(start=st.sampled_from(["passive", "active", "listen"]), ts=st.booleans(), sack=st.booleans(),
       acts=st.lists(actions, max_size=40))
def test_random_traffic_never_breaks_the_core(start: str, ts: bool, sack: bool,
                                              acts: list[tuple[str, Any]]) -> None:
    h = Harness(timestamps=ts, sack=sack, window_scaling=True, rcvbuf=8192, sndbuf=8192)
    conn: Connection | None = None
    if start == "passive":
        conn = h.passive(sack_permitted=True, timestamp=(1, 0), wscale=3)
    elif start == "active":
        conn = h.active(sack_permitted=True, timestamp=(1, 0), wscale=3)
    else:
        h.listen()
    closed: dict[int, int] = {}
    peer_nxt = REMOTE_ISS + 1
    for kind, arg in acts:
        if kind == "seg":
            so, ao, flags, window, n, opts, blocks = arg
            una = conn.snd_una if conn is not None else 0
            if blocks:  # blocks near what we sent: the sender's scoreboard has to cope with anything
                opts = {**opts, "sack": tuple(((una + a) & 0xFFFFFFFF, (una + a + b) & 0xFFFFFFFF)
                                              for a, b in blocks[:3])}
            h.feed(peer_nxt + so, una + ao, flags, window, payload=bytes(n), **opts)
        elif kind == "time":
            h.advance(h.now + arg)
        elif conn is not None:
            if arg == "send":
                conn.send(b"d" * 3000, h.now)
            elif arg == "recv":
                conn.recv(h.now)
            else:
                getattr(conn, arg)(h.now)
        h.take()
        for ev, subject, _ in h.events():
            if ev == EV_CLOSED:
                closed[id(subject)] = closed.get(id(subject), 0) + 1
        for c in list(h.layer.conns.values()):
            _check(c)
        if conn is not None:
            _check(conn)
    assert all(v == 1 for v in closed.values())
    h.advance(h.now + 10_000.0)  # everything times out or settles
    h.take()
    assert all(c.state in (S.ESTABLISHED, S.CLOSE_WAIT, S.FIN_WAIT_2) for c in h.layer.conns.values())
