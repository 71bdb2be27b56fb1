"""TSO and trusted/super-segment input on the sans-I/O TCP core, with exact segments at explicit times:
super-segments of whole MSS multiples bounded by cwnd and the peer's window, their partial checksum and
segment counters, MSS-sized retransmission from a super-segment record, and input_offloaded's checksum
trust, segment counting and ACK clocking."""

from __future__ import annotations

from collections.abc import Sequence

from tcp_harness import LOCAL, LPORT, REMOTE, REMOTE_ISS, RPORT, Buffer, Harness, build

from tcpip.core.tcp import output as out
from tcpip.wire import checksum as ck
from tcpip.wire import virtio
from tcpip.wire.tcp import ACK, PSH, TcpRepr, verify

MSS = 1460


class GsoRecorder:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, int, int]] = []  # (segment, header length, gso_size)

    def __call__(self, src: int, dst: int, parts: Sequence[Buffer], thl: int, mss: int, now: float) -> None:
        assert (src, dst) == (LOCAL, REMOTE)
        self.sent.append((b"".join(bytes(p) for p in parts), thl, mss))


def tso_harness() -> tuple[Harness, GsoRecorder]:
    h = Harness()
    rec = GsoRecorder()
    h.layer.enable_tso(65535, rec)
    return h, rec


def test_initial_window_goes_out_as_one_super_segment() -> None:
    h, rec = tso_harness()
    conn = h.passive(window=65535)
    conn.send(b"x" * 100_000, h.now)
    h.layer.handle_timeout(h.now)
    out.output(conn, h.now)
    assert h.take() == []  # nothing through the plain path
    assert len(rec.sent) == 1
    seg, thl, gso = rec.sent[0]
    assert (thl, gso) == (20, MSS)
    r, payload = TcpRepr.parse(memoryview(seg))
    assert len(payload) == 10 * MSS  # IW10, one frame
    assert r.flags == ACK
    # The checksum field: the pseudo-header sum with the super-segment's TCP length, not complemented.
    assert int.from_bytes(seg[16:18], "big") == ck.pseudo_header_sum(LOCAL, REMOTE, 6, len(seg))
    assert not verify(seg, LOCAL, REMOTE)
    st = h.layer.stats
    assert st.tx_tso_frames == 1
    assert st.out_segs >= 10
    # Cut like the device would: 10 frames, every checksum right.
    cut = virtio.segment(bytes(14) + _ip(len(seg)) + seg, gso)
    assert len(cut) == 10
    assert all(verify(c[34:], LOCAL, REMOTE) for c in cut)


def _ip(tcp_len: int) -> bytes:
    ip = bytearray(20)
    ip[0], ip[8], ip[9] = 0x45, 64, 6
    ip[2:4] = (20 + tcp_len).to_bytes(2, "big")
    ip[12:16] = LOCAL.to_bytes(4, "big")
    ip[16:20] = REMOTE.to_bytes(4, "big")
    return bytes(ip)


def test_super_segment_bounded_by_peer_window_in_whole_segments() -> None:
    h, rec = tso_harness()
    conn = h.passive(window=5000)  # 3 segments and a runt of window
    conn.cc.cwnd = 100 * MSS
    conn.send(b"y" * 50_000, h.now)
    out.output(conn, h.now)
    assert [len(s) - thl for s, thl, _ in rec.sent] == [3 * MSS]  # no runt in the middle
    assert h.take() == []  # the 620-byte rest waits (sender SWS)


def test_small_writes_stay_plain_segments() -> None:
    h, rec = tso_harness()
    conn = h.passive()
    conn.send(b"z" * 1000, h.now)
    out.output(conn, h.now)
    assert rec.sent == []
    (r, payload), = h.take()
    assert len(payload) == 1000
    assert r.flags == ACK | PSH
    assert h.layer.stats.tx_tso_frames == 0


def test_retransmission_from_a_super_segment_is_one_mss() -> None:
    h, rec = tso_harness()
    conn = h.passive()
    conn.send(b"w" * (10 * MSS), h.now)
    out.output(conn, h.now)
    assert len(rec.sent) == 1
    h.advance(h.now + 1.5)  # RTO: resend from snd_una, one MSS
    resent = h.take()
    assert resent
    r, payload = resent[0]
    assert r.seq == conn.iss + 1
    assert len(payload) == MSS
    assert h.layer.stats.retrans_segs >= 1


def test_trusted_super_segment_is_taken_counted_in_segments_and_acked_at_once() -> None:
    h = Harness()
    conn = h.passive()
    before = h.layer.stats.in_segs
    data = bytes(range(256)) * 20  # 5120 bytes = 4 segments of 1460 (3.5)
    raw = bytearray(build(RPORT, LPORT, REMOTE_ISS + 1, conn.snd_nxt, ACK, 65535, data))
    raw[16] ^= 0x55  # a checksum the device told us not to check (a partial sum, say)
    mv = memoryview(bytes(raw))
    h.layer.input_offloaded(REMOTE, LOCAL, mv, mv, h.now, True, MSS)
    st = h.layer.stats
    assert st.in_segs - before == 4
    assert st.rx_gso_frames == 1
    assert st.rx_csum_trusted == 1
    assert st.in_csum_errors == 0
    assert conn.recv(h.now) == data
    (r, _), = h.take()  # two segments' worth or more: an ACK at once, not after the delayed-ACK timer
    assert r.ack == (REMOTE_ISS + 1 + len(data)) & 0xFFFFFFFF


def test_untrusted_offloaded_segment_is_still_verified() -> None:
    h = Harness()
    conn = h.passive()
    raw = bytearray(build(RPORT, LPORT, REMOTE_ISS + 1, conn.snd_nxt, ACK, 65535, b"abc"))
    raw[16] ^= 0x55
    mv = memoryview(bytes(raw))
    h.layer.input_offloaded(REMOTE, LOCAL, mv, mv, h.now, False, 0)
    assert h.layer.stats.in_csum_errors == 1
    assert conn.readable == 0
