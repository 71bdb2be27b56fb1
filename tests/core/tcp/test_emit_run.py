"""Bursts of full segments (emit_run, SendBuffer.views, Host.send_run): the same bytes as one segment at a time."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import pytest

from tcpip.core.config import InterfaceConfig
from tcpip.core.host import Host
from tcpip.core.ipv4 import header_into
from tcpip.core.tcp import output as out
from tcpip.core.tcp.config import TcpConfig
from tcpip.core.tcp.layer import TcpLayer
from tcpip.core.tcp.sndbuf import SendBuffer
from tcpip.wire.mac import MacAddress
from tcpip.wire.tcp import ACK, SYN, TcpRepr, fill_checksum, verify

OUR, PEER = 0xC6120002, 0xC6120001
OMAC, PMAC = bytes.fromhex("020000000002"), bytes.fromhex("020000000001")


def test_views_equal_one_view_each() -> None:
    rng = random.Random(3)
    for _ in range(60):
        b = SendBuffer(1 << 20)
        for _ in range(rng.randrange(1, 12)):
            b.write(rng.randbytes(rng.choice((1, 100, 4095, 4097, 65535, 65536, 70000, rng.randrange(1, 90000)))))
        b.ack(rng.randrange(0, min(b.queued, 5000)))
        size = rng.choice((1, 2, 1447, 1448, 1449, 4096, rng.randrange(1, 3000)))
        count = rng.randrange(0, b.queued // size + 1)
        off = rng.randrange(0, b.queued - size * count + 1)
        got = [bytes(v) for v in b.views(off, size, count)]
        assert got == [bytes(b.view(off + i * size, size)) for i in range(count)]
        if count:  # a later view still starts from the right block
            assert bytes(b.view(off, size)) == got[0]
    with pytest.raises(ValueError, match="outside"):
        SendBuffer(100).views(0, 10, 1)


def test_views_of_two_equal_one_view_each() -> None:
    """Runs of two (the ACK-clocked sender's), inside one block and across blocks."""
    rng = random.Random(5)
    for _ in range(200):
        b = SendBuffer(1 << 20)
        for _ in range(rng.randrange(1, 6)):
            b.write(rng.randbytes(rng.choice((3000, 65536, rng.randrange(1, 70000)))))
        b.ack(rng.randrange(0, min(b.queued, 3000)))
        size = rng.choice((1, 1447, 1448, rng.randrange(1, 3000)))
        if b.queued < 2 * size:
            continue
        off = rng.randrange(0, b.queued - 2 * size + 1)
        got = [bytes(v) for v in b.views(off, size, 2)]
        assert got == [bytes(b.view(off, size)), bytes(b.view(off + size, size))]
        assert [len(v) for v in got] == [size, size]


def _host() -> Host:
    h = Host(InterfaceConfig(mac=MacAddress(OMAC), address=OUR, netmask=0xFFFFFF00, mtu=1500), now=0.0,
             rng=random.Random(1))
    h.arp.add_static(PEER, PMAC)
    return h


def test_host_send_run_equals_send_one_by_one() -> None:
    rng = random.Random(9)
    segs = [(rng.randbytes(32), rng.randbytes(rng.choice((26, 1000, 1447, 1448)))) for _ in range(300)]
    a, b = _host(), _host()
    assert a.send_run(PEER, 6, segs, 1.0)
    for hdr, payload in segs:
        b.send(PEER, 6, (hdr, payload), 1.0)
    assert [b"".join(map(bytes, f)) for f in a.tx] == [b"".join(map(bytes, f)) for f in b.tx]
    assert len(a.tx) == 300
    assert (a.ip_stats.tx_packets, a.eth_stats.tx_frames) == (b.ip_stats.tx_packets, b.eth_stats.tx_frames)
    assert a.next_ident(PEER) == b.next_ident(PEER)  # the ident counter moved by the same amount


def test_host_send_run_declines_what_send_would_not_take_fast() -> None:
    h = _host()
    assert not h.send_run(0xC6120009, 6, [(bytes(20), bytes(100))], 1.0)  # unresolved neighbour
    assert not h.send_run(PEER, 6, [(bytes(20), bytes(1461))], 1.0)  # beyond the MTU
    assert not h.send_run(PEER, 6, [], 1.0)
    assert h.tx == []
    assert h.ip_stats.tx_packets == 0


def test_host_send_run_declined_mid_run_leaves_no_trace() -> None:
    """A datagram past the MTU after good ones: nothing sent or counted, and the idents then handed out one
    by one are those of a host that never tried the run (new and known destinations alike)."""
    segs = [(bytes(20), bytes(1000)), (bytes(20), bytes(1000)), (bytes(20), bytes(1461))]
    for warm in (False, True):
        a, b = _host(), _host()
        if warm:
            for h in (a, b):
                h.send(PEER, 6, (bytes(20), bytes(100)), 1.0)
                h.tx.clear()
        assert not a.send_run(PEER, 6, segs, 1.0)
        assert a.tx == []
        assert (a.ip_stats.tx_packets, a.eth_stats.tx_frames) == (b.ip_stats.tx_packets, b.eth_stats.tx_frames)
        for h in (a, b):
            h.send(PEER, 6, segs[0], 1.0)
        assert [b"".join(map(bytes, f)) for f in a.tx] == [b"".join(map(bytes, f)) for f in b.tx]
        assert a.next_ident(PEER) == b.next_ident(PEER)


class _Out:
    def __init__(self, host: Host, run: bool) -> None:
        self.host = host
        self.runs = 0
        if run:
            self.tcp_send_run = self._run

    def _run(self, src: int, dst: int, segs: Sequence[tuple[Any, Any]], now: float) -> bool:
        self.runs += 1
        return self.host.send_run(dst, 6, segs, now, src=src)

    def tcp_send(self, src: int, dst: int, parts: Sequence[Any], now: float) -> None:
        self.host.send(dst, 6, parts, now, src=src)

    def tcp_mss(self, dst: int, now: float) -> int:
        return 1460

    def is_local(self, addr: int) -> bool:
        return addr == OUR


def _frame(seq: int, ack: int, flags: int, ts: tuple[int, int] | None, **opts: Any) -> memoryview:
    r = TcpRepr(40000, 80, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, flags, 4000, **opts)
    r.timestamp = ts
    h = bytearray(r.header_len())
    r.emit(h)
    fill_checksum(h, PEER, OUR, b"")
    ip = bytearray(20)
    header_into(ip, 0, PEER, OUR, 6, 20 + len(h), 1, 0x4000, 64)
    return memoryview(OMAC + PMAC + b"\x08\x00" + bytes(ip) + bytes(h))


def _bulk(run: bool, ts: bool, mss: int, sack: bool) -> tuple[list[bytes], _Out, Any]:
    """A passive open, then 300 KB sent in writes of odd sizes while the peer ACKs every second segment."""
    host = _host()
    o = _Out(host, run)
    layer = TcpLayer(TcpConfig(timestamps=ts, sack=sack, window_scaling=True), o, random.Random(2), b"k" * 32)
    host.register(6, layer.input)
    layer.listen(OUR, 80, 8)
    host.receive(_frame(1000, 0, SYN, (1, 0) if ts else None, mss=mss, wscale=7, sack_permitted=sack), 0.0)
    synack, _ = TcpRepr.parse(memoryview(b"".join(bytes(p) for p in host.tx[-1][2:])))
    tsv = synack.timestamp[0] if synack.timestamp else 0
    frames = [b"".join(map(bytes, f)) for f in host.poll_transmit()]
    host.receive(_frame(1001, synack.seq + 1, ACK, (2, tsv) if ts else None), 0.0)
    lst = layer.find_listener(OUR, 80)
    assert lst is not None
    conn = lst.accept()
    assert conn is not None
    rng = random.Random(4)
    data = memoryview(rng.randbytes(300_000))
    now, sent, una = 1.0, 0, synack.seq + 1
    acked = 0
    while sent < len(data) or conn.snd_una != conn.snd_max:
        if sent < len(data):
            sent += conn.send(data[sent:sent + rng.choice((1000, 20000, 65536))], now)
            out.output(conn, now)
        new = host.poll_transmit()
        frames += [b"".join(map(bytes, f)) for f in new]
        top = (conn.snd_max - una) & 0xFFFFFFFF
        while acked < top:
            acked = min(acked + 2 * (mss - (12 if ts else 0)), top)
            host.receive(_frame(1001, una + acked, ACK, (10, tsv) if ts else None), now)
        frames += [b"".join(map(bytes, f)) for f in host.poll_transmit()]
        now += 0.001
    return frames, o, conn


@pytest.mark.parametrize(("ts", "mss", "sack"), [(True, 1460, True), (False, 1460, True), (True, 1461, False),
                                                  (False, 1001, False)])
def test_bulk_send_same_frames_with_and_without_runs(ts: bool, mss: int, sack: bool,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    with_run, o1, c1 = _bulk(True, ts, mss, sack)
    without, o2, c2 = _bulk(False, ts, mss, sack)  # emit_run, sending through tcp_send one by one
    assert o1.runs > 10
    assert o2.runs == 0
    assert with_run == without
    assert c1.layer.stats.as_dict() == c2.layer.stats.as_dict()

    def one_by_one(conn: Any, seq: int, count: int, size: int, now: float) -> None:
        for i in range(count):  # the general path: send_data per segment
            s = (seq + i * size) & 0xFFFFFFFF
            out.send_data(conn, s, size, False, now)
            conn.snd_nxt = (s + size) & 0xFFFFFFFF

    monkeypatch.setattr(out, "emit_run", one_by_one)
    general, o3, c3 = _bulk(True, ts, mss, sack)
    assert o3.runs == 0
    assert general == with_run
    assert c3.layer.stats.as_dict() == c1.layer.stats.as_dict()
    assert [(s.start, s.end, s.xmit, s.flags) for s in c3.rec.sb.segs] == \
        [(s.start, s.end, s.xmit, s.flags) for s in c1.rec.sb.segs] if sack else c1.rec is None
    data = 0
    for f in with_run[1:]:  # every TCP segment checks out
        ihl = (f[14] & 15) * 4
        seg = f[14 + ihl:]
        assert verify(seg, OUR, PEER)
        data += len(seg) - (seg[12] >> 4) * 4
    assert data == 300_000


def test_view_parts_are_the_view_without_a_copy() -> None:
    b = SendBuffer(1 << 20)
    b.write(b"put 1\n")
    data = bytes(range(256)) * 1000
    b.write(data)  # kept by reference (immutable): the first block holds the start, views cross blocks
    for off, n in ((0, 6), (0, 70000), (4000, 65000), (100, 0), (60000, 190000)):
        parts = b.view_parts(off, n)
        assert b"".join(parts) == bytes(b.view(off, n))
        assert all(isinstance(p.obj, bytearray) or p.obj is data for p in parts)  # slices of the blocks
    assert len(b.view_parts(0, 70000)) == 2
    assert len(b.view_parts(4000, 65000)) == 1
    assert b.view_parts(100, 0) == []


def test_gso_header_is_what_tcprepr_emits() -> None:
    from types import SimpleNamespace

    from tcpip.core.tcp.emit import gso_header
    from tcpip.wire.tcp import FIN, PSH

    rng = random.Random(8)
    for i in range(200):
        conn = SimpleNamespace(local_port=rng.getrandbits(16), remote_port=rng.getrandbits(16), ts_ok=bool(i & 1),
                               ts_offset=rng.getrandbits(32), ts_recent=rng.getrandbits(32))
        seq, ack, window = rng.getrandbits(32), rng.getrandbits(32), rng.getrandbits(16)
        flags = rng.choice((ACK, ACK | PSH, ACK | FIN, ACK | PSH | FIN))
        now = rng.uniform(0, 1e6)
        r = TcpRepr(conn.local_port, conn.remote_port, seq, ack, flags, window)
        if conn.ts_ok:
            r.timestamp = ((int(now * 1000.0) + conn.ts_offset) & 0xFFFFFFFF, conn.ts_recent)
        want = bytearray(r.header_len())
        r.emit(want)
        assert gso_header(conn, seq, ack, flags, window, now) == want  # type: ignore[arg-type]
