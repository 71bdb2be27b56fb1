"""Connection.send(data, now, flush=False) queues without sending; flush() then sends exactly what one
send() of all the pieces would have (the transport's refill after an ACK: one output, not one per piece)."""

from __future__ import annotations

from tcp_harness import REMOTE_ISS, Harness

from tcpip.wire.tcp import ACK

PIECES = [bytes([i]) * n for i, n in enumerate((65536, 65536, 30000, 65536, 1000))]


def _segments(split: bool) -> list[tuple[int, int, int, bytes]]:
    h = Harness(sndbuf=200_000, autotune=False)
    conn = h.passive(window=65535)
    if split:
        took = 0
        for p in PIECES:
            k = conn.send(p, h.now, False)
            took += k
            if k < len(p):
                break
        assert h.take() == []  # queued only
        assert conn.sndbuf.queued == took == 200_000
        conn.flush(h.now)
    else:
        assert conn.send(b"".join(PIECES), h.now) == 200_000
    out = [(r.seq, r.ack, r.flags, payload) for r, payload in h.take()]
    h.feed(REMOTE_ISS + 1, conn.snd_max, ACK, 65535, at=0.01)  # the ACK's output sends the next window
    out += [(r.seq, r.ack, r.flags, payload) for r, payload in h.take()]
    assert conn.timer_at is not None  # the retransmission timer is armed
    return out


def test_flush_sends_what_one_send_of_the_pieces_sends() -> None:
    split, whole = _segments(True), _segments(False)
    assert split == whole
    assert len(split) == 22  # the initial window (10 segments), then what the ACK opened (slow start)
    assert all(len(s[3]) == 1460 for s in split)
    assert b"".join(s[3] for s in split) == b"".join(PIECES)[:22 * 1460]


def test_send_without_flush_then_flush_when_nothing_fits_sends_nothing() -> None:
    h = Harness(sndbuf=10_000, autotune=False)
    conn = h.passive(window=65535)
    assert conn.send(b"a" * 20_000, h.now) == 10_000
    h.take()
    assert conn.send(b"b" * 100, h.now, False) == 0
    conn.flush(h.now)
    assert h.take() == []  # the windows allowed everything already: nothing new
