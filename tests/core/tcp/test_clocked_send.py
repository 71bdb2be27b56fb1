"""clocked.send (the ACK-clocked run sent straight from rx_ack.take) against output.output: the same lossy,
reordering bulk transfers, and a bulk send through Host.send_run, with clocked.FAST_SEND on and off give
identical frames, counters and connection state after every step."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_emit_run import _bulk
from test_rx_ack_pure import CASES, SIZE, _run, _state, assert_same_run

from tcpip.core.tcp import clocked
from tcpip.core.tcp import output as out
from tcpip.core.tcp.config import TcpConfig
from tcpip.core.tcp.emit import window_field
from tcpip.core.tcp.recovery import Recovery

_CONN = _bulk(True, True, 1460, True)[2]  # an established SACK connection to vary


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    taken = [0, 0]
    real = clocked.send

    def counting(*args: Any) -> bool:
        r = real(*args)
        taken[r] += 1
        return r

    monkeypatch.setattr(clocked, "send", counting)
    return taken


def _compare(monkeypatch: pytest.MonkeyPatch, cfg: TcpConfig, seed: int, loss: float, chunk: int = 0) -> None:
    taken = _counting(monkeypatch)
    monkeypatch.setattr(clocked, "FAST_SEND", True)
    fast = _run(cfg, seed, loss, SIZE, chunk)
    if cfg.sack:
        assert taken[1] > 20  # the fused send took runs
    else:
        assert taken == [0, 0]  # SACK connections only (the scoreboard records the run)
    monkeypatch.setattr(clocked, "FAST_SEND", False)
    n = list(taken)
    slow = _run(cfg, seed, loss, SIZE, chunk)
    assert taken == n  # off means off
    assert_same_run(fast, slow)


@pytest.mark.parametrize(("name", "opts", "seed", "loss"), CASES, ids=[c[0] for c in CASES])
def test_fused_send_changes_nothing(monkeypatch: pytest.MonkeyPatch, name: str, opts: dict[str, Any], seed: int,
                                   loss: float) -> None:
    _compare(monkeypatch, TcpConfig(time_wait=1.0, **opts), seed, loss)


@pytest.mark.parametrize(("opts", "chunk"), [({}, 20_000), ({"nodelay": False}, 20_000),
                                             ({"nodelay": False, "rcvbuf": 20000, "autotune": False}, 0)])
def test_fused_send_declines_what_output_sends_otherwise(monkeypatch: pytest.MonkeyPatch, opts: dict[str, Any],
                                                         chunk: int) -> None:
    """Application-limited writes, Nagle on or off, a small peer window: runts and last segments (output's)."""
    taken = _counting(monkeypatch)
    _compare(monkeypatch, TcpConfig(time_wait=1.0, **opts), 12, 0.01, chunk)
    assert taken[0] > 0  # declined some (nothing after the run may go out in the same call)


@pytest.mark.parametrize(("ts", "mss"), [(True, 1460), (False, 1460), (True, 1001)])
def test_fused_send_same_frames_through_host(monkeypatch: pytest.MonkeyPatch, ts: bool, mss: int) -> None:
    """Through Host.send_run (tcp_send_run) and one by one: the same frames and counters, every checksum right
    (test_emit_run checks them on the frames of the run with FAST_SEND on)."""
    taken = _counting(monkeypatch)
    fast, _, c1 = _bulk(True, ts, mss, True)
    assert taken[1] > 10
    monkeypatch.setattr(clocked, "FAST_SEND", False)
    slow, _, c2 = _bulk(True, ts, mss, True)
    assert fast == slow
    assert c1.layer.stats.as_dict() == c2.layer.stats.as_dict()
    assert [(s.start, s.end, s.xmit, s.flags) for s in c1.rec.sb.segs] == \
        [(s.start, s.end, s.xmit, s.flags) for s in c2.rec.sb.segs]
    assert (c1.rec.timer, c1.loss_at, c1.rexmit_at) == (c2.rec.timer, c2.loss_at, c2.rexmit_at)
    lone, _, _ = _bulk(False, ts, mss, True)  # the Output without tcp_send_run: one by one
    assert lone == fast


@settings(max_examples=400, deadline=None)
@given(nxt=st.integers(0, 0xFFFFFFFF), adv=st.integers(-70000, 1 << 22), read=st.integers(0, 1 << 20),
       scale=st.integers(0, 14), mss=st.integers(0, 3000))
def test_window_field_is_idempotent(nxt: int, adv: int, read: int, scale: int, mss: int) -> None:
    """What lets a Recovery memoize window_field: the same inputs, rcv_adv where the first call left it, give
    the same field and leave rcv_adv there (computed without the memo, then with it)."""
    c = copy.copy(_CONN)
    c.rec = None  # no memo: the function itself
    rb = copy.copy(_CONN.rcvbuf)
    rb.rcv_nxt = nxt
    rb.readable = min(read, rb.capacity)
    c.rcvbuf, c.rcv_wscale, c.adv_mss = rb, scale, mss
    c.rcv_adv = (nxt + adv) & 0xFFFFFFFF
    first = window_field(c)
    edge = c.rcv_adv
    assert window_field(c) == first
    assert c.rcv_adv == edge
    c.rec = Recovery()  # with the memo: a miss computes and records, a hit returns the same
    assert (window_field(c), c.rcv_adv) == (first, edge)
    assert c.rec.wmemo[-1] == first
    assert (window_field(c), c.rcv_adv) == (first, edge)
    c.rcv_wscale = (scale + 1) % 15  # another input: not the memo's answer
    c.rcv_adv = (nxt + adv) & 0xFFFFFFFF
    plain = copy.copy(c)
    plain.rec = None
    assert window_field(c) == window_field(plain)


@pytest.mark.parametrize(("segs_in_window", "write", "rexmit"), [(1.5, 100_000, False), (1.5, 100_000, True),
                                                                 (3.2, 100_000, True), (40.0, 9000, True)])
def test_fused_send_equals_output_from_one_state(segs_in_window: float, write: int, rexmit: bool) -> None:
    """From one state (nothing in flight, data written, the peer's window `segs_in_window` segments), output
    and clocked.send on twin connections (the same deterministic run twice): the same frames and every field
    after (the probe timeout armed for a flight of one segment, the retransmission timer armed or kept)."""
    twins = []
    for _ in range(2):
        _, o, conn = _bulk(True, True, 1460, True)
        conn.snd_wnd = int(segs_in_window * (conn.mss - 12))
        conn.rexmit_at = 5.0 if rexmit else None
        conn.nodelay = write > 10_000  # Nagle on for the short write: its runt waits (else output sends it)
        conn.sndbuf.write(bytes(range(256)) * (write // 256))
        o.host.tx.clear()
        twins.append((o, conn))
    (a_out, a), (b_out, b) = twins
    assert out.output(a, 3.0)
    assert b.rec is not None
    assert clocked.send(b, b.rec, 3.0)
    frames = [b"".join(map(bytes, f)) for f in b_out.host.tx]
    assert [b"".join(map(bytes, f)) for f in a_out.host.tx] == frames
    assert len(frames) == min(int(segs_in_window), (write - 1) // (b.mss - 12))
    assert _state(a) == _state(b)
    assert a.layer.stats.as_dict() == b.layer.stats.as_dict()
