"""rx_ack.bulk_ack sends exactly what output.send_ack sends (bytes, fields, counters), or leaves it to send_ack."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from tcp_harness import REMOTE_ISS, Harness

from tcpip.core.tcp import output as out
from tcpip.core.tcp.rx_ack import bulk_ack
from tcpip.wire.tcp import ACK, PSH

FIELDS = ("last_ack_sent", "delack_at", "ack_pending", "rcv_adv", "dsack")


def _receiver(**cfg: Any) -> tuple[Harness, Any]:
    h = Harness(mss=1000, sack=True, window_scaling=True, rcvbuf=20000, **cfg)
    opts: dict[str, Any] = {"sack_permitted": True, "wscale": 2}
    if cfg.get("timestamps"):
        opts["timestamp"] = (100, 0)
    conn = h.passive(window=1000, **opts)
    extra = {"timestamp": (101, 0)} if cfg.get("timestamps") else {}
    h.feed(REMOTE_ISS + 1, conn.snd_nxt, ACK | PSH, 1000, payload=b"a" * 1000, at=1.0, **extra)
    h.take()
    return h, conn


def _both(h: Harness, conn: Any, prepare: Any = None) -> tuple[list[Any], list[Any]]:
    """(send_ack's segment, fields, counter) and bulk_ack's, each from the same starting state."""
    results = []
    for send in (out.send_ack, bulk_ack):
        c = copy.copy(conn)  # the fields both change; the shared parts (buffers, layer) are only read
        if prepare is not None:
            prepare(c)
        before = h.layer.stats.out_segs
        send(c, 1.5)
        raw = h.out.sent[-1][2]
        results.append([raw, {f: getattr(c, f) for f in FIELDS}, h.layer.stats.out_segs - before])
    return results[0], results[1]


def test_same_bytes_and_fields_with_timestamps() -> None:
    h, conn = _receiver(timestamps=True)
    general, fast = _both(h, conn)
    assert len(fast[0]) == 32
    assert fast == general


@pytest.mark.parametrize("case", ["no_timestamps", "dsack_pending"])
def test_other_cases_go_to_send_ack(case: str) -> None:
    h, conn = _receiver(timestamps=case != "no_timestamps")

    def prepare(c: Any) -> None:
        if case == "dsack_pending":
            c.dsack = (REMOTE_ISS + 1, REMOTE_ISS + 101)

    general, fast = _both(h, conn, prepare)
    assert fast == general
    assert len(fast[0]) == (20 if case == "no_timestamps" else 32 + 12)  # a D-SACK block: NOP NOP SACK 8
    assert fast[1]["dsack"] is None


def test_send_errors_counted_like_send_ack() -> None:
    from tcpip.errors import NoRouteError

    h, conn = _receiver(timestamps=True)
    h.out.fail = NoRouteError("gone")
    errors = h.layer.stats.send_errors
    bulk_ack(conn, 1.5)
    assert h.layer.stats.send_errors == errors + 1
    assert isinstance(conn.send_error, NoRouteError)
