"""The scoreboard's fack starts at the connection's snd_una: with an ISS in the upper half of the sequence space a
fack of 0 is seq-behind every record (and is never advanced: snd_una is not seq-after it), so every cumulative ACK
left rx_ack's inlined `_sb_ack` for the general `Scoreboard.ack`."""

from __future__ import annotations

from typing import Any

import pytest
from tcp_harness import REMOTE_ISS, RPORT, Harness

from tcpip.core.tcp.scoreboard import Scoreboard
from tcpip.core.tcp.seq import MASK
from tcpip.wire.tcp import ACK


class _Fixed:
    """An ISN generator that always answers `iss`."""

    def __init__(self, iss: int) -> None:
        self.iss = iss

    def isn(self, *_a: object) -> int:
        return self.iss


@pytest.mark.parametrize("iss", [1000, (1 << 31) + 5, MASK - 10_000])
def test_cumulative_acks_stay_on_the_inlined_path(monkeypatch: pytest.MonkeyPatch, iss: int) -> None:
    h = Harness(timestamps=True, sack=True, window_scaling=True)
    monkeypatch.setattr(h.layer, "isn", _Fixed(iss))
    general: list[int] = []
    real = Scoreboard.ack

    def ack(sb: Scoreboard, una: int) -> Any:
        general.append(una)
        return real(sb, una)

    monkeypatch.setattr(Scoreboard, "ack", ack)
    conn = h.active(sack_permitted=True, timestamp=(100, 1), wscale=7)
    assert conn.iss == iss
    assert conn.rec is not None
    sb = conn.rec.sb
    assert sb.fack in (iss, (iss + 1) & MASK)
    conn.send(bytes(20 * 1460), h.now)
    sent = h.take()
    assert sum(len(p) for _, p in sent) > 0
    for r, p in sent:  # each segment ACKed on its own
        h.now += 0.01
        end = (r.seq + len(p)) & MASK
        assert r.timestamp is not None
        h.feed(REMOTE_ISS + 1, end, ACK, 65535, sport=RPORT, timestamp=(200, r.timestamp[0]))
        assert sb.fack == end
        h.take()
    assert general == []  # never the general path
    assert not sb.segs or sb.segs[0].start == conn.snd_una
