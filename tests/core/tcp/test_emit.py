"""emit_plain (the bulk segment header with its checksum summed from fields) against TcpRepr + fill_checksum."""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

from tcpip.core.tcp.emit import emit_plain
from tcpip.core.tcp.stats import TcpStats
from tcpip.wire.tcp import ACK, FIN, PSH, TcpRepr, fill_checksum, verify


class _Out:
    def __init__(self) -> None:
        self.parts: list[tuple[bytes, ...]] = []

    def tcp_send(self, src: int, dst: int, parts: Any, now: float) -> None:
        self.parts.append(tuple(bytes(p) for p in parts))


def _conn(rng: random.Random, ts_ok: bool) -> Any:
    layer = SimpleNamespace(stats=TcpStats(), output=_Out())
    return SimpleNamespace(local_addr=rng.getrandbits(32), remote_addr=rng.getrandbits(32),
                           local_port=rng.getrandbits(16), remote_port=rng.getrandbits(16), ts_ok=ts_ok,
                           ts_offset=rng.getrandbits(32), ts_recent=rng.getrandbits(32), snd_max=0, layer=layer,
                           send_error=None)


def _reference(conn: Any, seq: int, ack: int, flags: int, window: int, payload: bytes, now: float) -> bytes:
    r = TcpRepr(conn.local_port, conn.remote_port, seq, ack, flags, window)
    if conn.ts_ok:
        r.timestamp = ((int(now * 1000.0) + conn.ts_offset) & 0xFFFFFFFF, conn.ts_recent)
    hdr = bytearray(r.header_len())
    r.emit(hdr)
    fill_checksum(hdr, conn.local_addr, conn.remote_addr, payload)
    return bytes(hdr)


def test_emit_plain_matches_repr_and_fill_checksum() -> None:
    rng = random.Random(14)
    for i in range(400):
        conn = _conn(rng, ts_ok=bool(i & 1))
        n = rng.choice((0, 1, 2, 3, 535, 1447, 1448, rng.randrange(0, 9000)))
        payload = rng.randbytes(n)
        seq, ack, window = rng.getrandbits(32), rng.getrandbits(32), rng.getrandbits(16)
        flags = rng.choice((ACK, ACK | PSH, ACK | FIN, ACK | PSH | FIN))
        now = rng.uniform(0, 1e6)
        emit_plain(conn, seq, ack, flags, window, memoryview(payload) if i % 3 else payload, now)
        sent = conn.layer.output.parts[-1]
        assert sent[0] == _reference(conn, seq, ack, flags, window, payload, now)
        assert sent[1:] == ((payload,) if n else ())
        assert verify(b"".join(sent), conn.local_addr, conn.remote_addr)
    assert conn.layer.stats.out_segs == 1


def test_emit_plain_checksum_of_a_sum_of_0xffff_is_zero() -> None:
    """A one's-complement sum of 0xFFFF gives checksum 0 (fill_checksum's answer), never 0xFFFF."""
    rng = random.Random(5)
    for ts_ok in (False, True):
        conn = _conn(rng, ts_ok)
        probe = _reference(conn, 7, 9, ACK, 1000, b"\0\0", 1.0)
        s = 0xFFFF - int.from_bytes(probe[16:18], "big")  # the sum without the payload word, mod 0xFFFF
        word = (0xFFFF - s) % 0xFFFF or 0xFFFF
        payload = word.to_bytes(2, "big")
        emit_plain(conn, 7, 9, ACK, 1000, payload, 1.0)
        hdr = conn.layer.output.parts[-1][0]
        assert hdr[16:18] == b"\0\0"
        assert hdr == _reference(conn, 7, 9, ACK, 1000, payload, 1.0)


def test_emit_plain_counts_retransmissions() -> None:
    conn = _conn(random.Random(1), True)
    conn.snd_max = 5000
    emit_plain(conn, 1000, 1, ACK, 100, b"x" * 10, 0.0)   # below snd_max: a retransmission
    emit_plain(conn, 5000, 1, ACK, 100, b"x" * 10, 0.0)   # new data
    emit_plain(conn, 1000, 1, ACK, 100, b"", 0.0)         # a pure ACK is never a retransmission
    assert (conn.layer.stats.retrans_segs, conn.layer.stats.out_segs) == (1, 2)
