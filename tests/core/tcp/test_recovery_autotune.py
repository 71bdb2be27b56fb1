"""Buffer autotuning on the sans-I/O core: the receive buffer grows toward twice what the application reads per
round trip (Linux tcp_moderate_rcvbuf) up to rcvbuf_max and the window advertised follows; the send buffer
grows toward twice cwnd up to sndbuf_max; with autotune off neither moves; the SYN's window scale leaves room
for the largest buffer."""

from __future__ import annotations

from tcp_harness import LOCAL, LPORT, REMOTE, REMOTE_ISS, RPORT, Harness

from tcpip.core.tcp.conn import Connection
from tcpip.wire.tcp import ACK

NXT = REMOTE_ISS + 1
MSS = 1000


def window_limited_peer(h: Harness, conn: Connection, rounds: int, rtt: float = 0.01) -> list[int]:
    """The peer fills the window we advertise once per RTT; the application reads everything at once.
    Returns the window (bytes) we advertised after each round."""
    us = conn.snd_nxt
    seq = NXT
    edges = []
    t = 1.0
    for _ in range(rounds):
        edge = conn.rcv_adv
        while (edge - seq) & 0xFFFFFFFF >= MSS:
            h.feed(seq, us, ACK, payload=b"r" * MSS, at=t)
            seq += MSS
            t += rtt / 100
        t += rtt / 2
        h.now = t
        conn.recv(t)
        t += rtt / 2
        h.take()
        edges.append((conn.rcv_adv - conn.rcvbuf.rcv_nxt) & 0xFFFFFFFF)
    return edges


def test_receive_buffer_grows_to_twice_the_data_per_rtt_up_to_the_cap() -> None:
    h = Harness(mss=MSS, rcvbuf=30000, rcvbuf_max=60000)
    conn = h.passive()
    assert conn.rcvbuf.capacity == (conn.rcv_adv - conn.rcvbuf.rcv_nxt) & 0xFFFFFFFF == 30000
    windows = window_limited_peer(h, conn, 6)
    # the reader took a full 30000-byte window per RTT: room for twice that (plus 16 segments of slack),
    # capped at 60000; the advertised window follows
    assert conn.rcvbuf.capacity == 60000
    assert windows[-1] == 60000
    assert h.layer.stats.rcvbuf_grown == 1


def test_no_autotuning_when_off() -> None:
    h = Harness(mss=MSS, rcvbuf=30000, rcvbuf_max=60000, autotune=False)
    conn = h.passive()
    assert window_limited_peer(h, conn, 6)[-1] == 30000
    assert conn.rcvbuf.capacity == 30000
    assert h.layer.stats.rcvbuf_grown == 0


def test_send_buffer_follows_cwnd() -> None:
    h = Harness(mss=MSS, sndbuf=16000, sndbuf_max=50000)
    conn = h.passive()
    us = conn.snd_nxt
    assert conn.send(b"s" * 100000, 1.0) == 16000
    acked = 0
    t = 1.01
    while conn.cwnd < 40000:
        segs = h.take()
        assert segs
        for s, p in segs:
            acked = (s.seq + len(p) - us) & 0xFFFFFFFF
            h.feed(NXT, us + acked, ACK, at=t)
            t += 0.0001
            # room for two windows, reached by doubling: 16000 -> 32000 -> 50000 (the cap)
            assert conn.sndbuf.capacity >= min(2 * conn.cwnd, 50000)
            assert conn.sndbuf.capacity in (16000, 32000, 50000)
        conn.send(b"s" * conn.send_free, t)
    assert conn.sndbuf.capacity == 50000
    assert h.layer.stats.sndbuf_grown == 2


def test_send_buffer_grows_in_few_large_steps_in_congestion_avoidance() -> None:
    """cwnd creeps up by mss*mss/cwnd per ACK in congestion avoidance: the buffer must not follow each
    creep (it did: one growth per ACK), only double when two windows no longer fit."""
    h = Harness(mss=MSS, sndbuf=16000, sndbuf_max=4 << 20, congestion="newreno")
    conn = h.passive()
    conn.cc.ssthresh = 1  # congestion avoidance from the first ACK
    us = conn.snd_nxt
    conn.send(b"s" * conn.send_free, 1.0)
    t = 1.01
    sizes = [conn.sndbuf.capacity]
    acks = raises = 0
    while acks < 6000:
        segs = h.take()
        assert segs
        for s, p in segs:
            before = conn.cwnd
            h.feed(NXT, us + ((s.seq + len(p) - us) & 0xFFFFFFFF), ACK, at=t)
            acks += 1
            raises += conn.cwnd > before
            t += 0.0001
            if conn.sndbuf.capacity != sizes[-1]:
                sizes.append(conn.sndbuf.capacity)
            assert conn.sndbuf.capacity >= min(2 * conn.cwnd, 4 << 20)
        conn.send(b"s" * conn.send_free, t)
    assert raises >= 80  # cwnd grew one segment at a time, 80+ times ...
    assert sizes == [16000, 32000, 64000, 128000, 256000]  # ... the buffer in doublings
    assert conn.sndbuf.capacity < 2 * 2 * conn.cwnd  # never more than twice what was wanted
    assert h.layer.stats.sndbuf_grown == 4


def test_syn_window_scale_leaves_room_for_the_autotuned_buffer() -> None:
    h = Harness(window_scaling=True)  # rcvbuf 256 KiB, rcvbuf_max 6 MiB: a shift of 7 (Linux's default)
    h.layer.connect(LOCAL, LPORT, REMOTE, RPORT, 1.0)
    syn, _ = h.take_one()
    assert syn.wscale == 7
    h = Harness(window_scaling=True, autotune=False)
    h.layer.connect(LOCAL, LPORT, REMOTE, RPORT, 1.0)
    assert h.take_one()[0].wscale == 3
