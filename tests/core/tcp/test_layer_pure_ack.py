"""TcpLayer.input's pure-ACK shortcut (rx_ack.header_ack straight from the header, no TcpRepr, no segment_arrives)
against the path through segment_arrives: the same lossy, reordering bulk transfers with layer.FAST_PURE_ACK on
and off give identical frames, counters and connection state after every step."""

from __future__ import annotations

from typing import Any

import pytest
from test_rx_ack_pure import CASES, SIZE, _run, assert_same_run

from tcpip.core.tcp import layer as tcp_layer
from tcpip.core.tcp import rx_ack
from tcpip.core.tcp.config import TcpConfig


def _compare(monkeypatch: pytest.MonkeyPatch, cfg: TcpConfig, seed: int, loss: float, chunk: int = 0) -> None:
    taken = [0, 0]
    real = rx_ack.header_ack

    def counting(*args: Any) -> bool:
        r = real(*args)
        taken[r] += 1
        return r

    monkeypatch.setattr(rx_ack, "header_ack", counting)
    monkeypatch.setattr(tcp_layer, "FAST_PURE_ACK", True)
    fast = _run(cfg, seed, loss, SIZE, chunk)
    if cfg.timestamps:
        assert taken[1] > 20  # the shortcut took ACKs
        if loss:
            assert taken[0] > 0  # and declined some (SACK state, recovery, duplicates)
    else:
        assert taken == [0, 0]  # no NOP NOP TS header: never asked
    monkeypatch.setattr(tcp_layer, "FAST_PURE_ACK", False)
    n = list(taken)
    slow = _run(cfg, seed, loss, SIZE, chunk)
    assert taken == n  # off means off
    assert_same_run(fast, slow)


@pytest.mark.parametrize(("name", "opts", "seed", "loss"), CASES, ids=[c[0] for c in CASES])
def test_shortcut_changes_nothing(monkeypatch: pytest.MonkeyPatch, name: str, opts: dict[str, Any], seed: int,
                                  loss: float) -> None:
    _compare(monkeypatch, TcpConfig(time_wait=1.0, **opts), seed, loss)


def test_shortcut_changes_nothing_app_limited(monkeypatch: pytest.MonkeyPatch) -> None:
    """Writes of 20 kB every 60 ms: the ACKs find nothing to send (the output skip) and the flight drains."""
    _compare(monkeypatch, TcpConfig(time_wait=1.0), 9, 0.01, chunk=20_000)
