"""TcpLayer.input's per-segment shortcuts: the inlined checksum check and the one-unpack header parse give
exactly what wire.tcp.verify and TcpRepr.parse + validate.check give."""

from __future__ import annotations

import random
from typing import Any

import pytest
from tcp_harness import LOCAL, LPORT, REMOTE, REMOTE_ISS, RPORT, Harness, build

from tcpip.core.tcp import input as tcp_input
from tcpip.wire.tcp import ACK, CWR, ECE, FIN, PSH, RST, SYN, URG, TcpRepr, verify

NXT = REMOTE_ISS + 1


def _established() -> tuple[Harness, Any]:
    h = Harness(timestamps=True, sack=True, window_scaling=True)
    conn = h.passive(timestamp=(100, 0), sack_permitted=True, wscale=2)
    return h, conn


@pytest.mark.parametrize("size", [0, 1, 2, 999, 1000, 1447, 1448])
@pytest.mark.parametrize("ts", [True, False])
def test_checksum_check_takes_good_and_counts_every_single_bit_error(size: int, ts: bool) -> None:
    h, conn = _established()
    payload = random.Random(size).randbytes(size)
    opts: dict[str, Any] = {"timestamp": (200, 0)} if ts else {}
    raw = build(RPORT, LPORT, NXT, conn.snd_nxt, ACK | PSH, 1000, payload, **opts)
    rng = random.Random(size * 2 + ts)
    bits = rng.sample(range(len(raw) * 8), min(40, len(raw) * 8))
    for bit in bits:
        bad = bytearray(raw)
        bad[bit >> 3] ^= 0x80 >> (bit & 7)
        assert not verify(bad, REMOTE, LOCAL)  # the reference agrees it is bad
        h.feed_raw(bytes(bad))
    assert h.layer.stats.in_csum_errors == len(bits)
    assert conn.readable == 0
    assert h.take() == []
    h.feed_raw(raw)
    assert h.layer.stats.in_csum_errors == len(bits)
    assert conn.rcvbuf.peek_all() == payload
    assert conn.rcvbuf.rcv_nxt == (NXT + size) & 0xFFFFFFFF


@pytest.mark.parametrize("flags", [ACK, ACK | PSH, ACK | FIN, ACK | URG, ACK | ECE, ACK | CWR, ACK | RST,
                                   ACK | SYN, PSH, FIN, 0])
@pytest.mark.parametrize("opts", [{"timestamp": (200, 7)}, {"timestamp": (200, 7), "sack": ((5, 9),)}, {},
                                  {"mss": 1000}])
def test_header_seen_by_the_connection_is_what_parse_gives(monkeypatch: pytest.MonkeyPatch, flags: int,
                                                         opts: dict[str, Any]) -> None:
    """Whatever the flags and options, the connection gets the TcpRepr (and payload) that TcpRepr.parse
    returns, and validate.check's counters move as they would."""
    seen: list[tuple[TcpRepr, bytes]] = []
    real = tcp_input.segment_arrives

    def spy(conn: Any, seg: TcpRepr, data: memoryview, now: float) -> bool:
        seen.append((TcpRepr(**{f: getattr(seg, f) for f in TcpRepr.__dataclass_fields__}), bytes(data)))
        return real(conn, seg, data, now)

    h, conn = _established()
    monkeypatch.setattr(tcp_input, "segment_arrives", spy)
    if "sack" in opts:  # a D-SACK-like block below snd_una: kept by validate.filter_sack
        una = conn.snd_una
        opts = {**opts, "sack": (((una - 100) & 0xFFFFFFFF, (una - 50) & 0xFFFFFFFF),)}
    raw = build(RPORT, LPORT, NXT, conn.snd_nxt, flags, 1000, b"x" * 10, urgent=3 if flags & URG else 0, **opts)
    h.feed_raw(raw)
    want, payload = TcpRepr.parse(memoryview(raw))
    if not flags & (ACK | RST | FIN):
        assert seen == []
        assert h.layer.stats.rx_no_flags == 1
        return
    assert seen == [(want, bytes(payload))]
    assert h.layer.stats.rx_bad_options == 0
