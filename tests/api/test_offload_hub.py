"""Offload mode without a kernel: two stacks on a Hub(offload=True) exchange TCP super-frames (TSO out, the
same frames in as GSO with trusted checksums), bytes identical; a plain port on the same hub sees the
super-frames cut into MSS-sized frames whose checksums come out right from our partial sums; loss through
a FaultInjector (on segments, as on a wire) still recovers; the virtio header helpers themselves."""

from __future__ import annotations

import asyncio
import hashlib
import random
import struct

import pytest
from testlib import pump

from tcpip import Stack
from tcpip.netif import Hub
from tcpip.netif.fault import FaultInjector
from tcpip.wire import checksum as ck
from tcpip.wire import virtio
from tcpip.wire.tcp import verify

A, B = "198.18.0.1", "198.18.0.2"
CHUNK = 65536


def ip_int(s: str) -> int:
    return int.from_bytes(bytes(map(int, s.split("."))), "big")


async def both_ways(a: Stack, b: Stack, size: int, seed: int, budget: float = 30.0) -> None:
    """`size` bytes each way at once between a (client) and b (server), checked by sha256."""
    to_b, to_a = random.Random(seed).randbytes(size), random.Random(seed + 1).randbytes(size)
    got_b: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            got_b.set_result(await pump(r, w, to_a, read_size=4 * CHUNK))
        except Exception as e:  # pragma: no cover - reported through the future
            got_b.set_exception(e)
        w.close()

    server = await b.start_server(handle, B, 0)
    port = server.sockets[0].getsockname()[1]

    async def client() -> tuple[int, str]:
        r, w = await a.open_connection(B, port)
        got = await pump(r, w, to_b, read_size=4 * CHUNK)
        w.close()
        await w.wait_closed()
        return got

    got_a, got_server = await asyncio.wait_for(asyncio.gather(client(), got_b), budget)
    server.close()
    await server.wait_closed()
    assert got_server == (size, hashlib.sha256(to_b).hexdigest())
    assert got_a == (size, hashlib.sha256(to_a).hexdigest())


async def test_super_frames_both_ways_on_an_offload_hub() -> None:
    hub = Hub(offload=True)
    sniffed: list[bytes] = []
    sniffer = hub.port(offload=False)  # sees every super-frame cut into ordinary frames
    sniffer.attach(lambda f: sniffed.append(bytes(f)))
    pa, pb = hub.port(), hub.port()
    assert pa.offload
    assert pb.offload
    assert not sniffer.offload
    async with await Stack.connect(pa, ipv4=f"{A}/24", rng=random.Random(1)) as a, \
            await Stack.connect(pb, ipv4=f"{B}/24", rng=random.Random(2)) as b:
        await both_ways(a, b, 3_000_000, seed=5)
        ta, tb = a.tcp.layer.stats, b.tcp.layer.stats
        for dev, tcp, peer in ((pa, ta, tb), (pb, tb, ta)):
            st = dev.stats
            assert st.tx_gso_frames > 20, st
            assert st.rx_gso_frames > 20, st
            assert st.tx_gso_segments >= 3_000_000 // 1460, st  # ~2055 segments in far fewer frames
            assert st.tx_frames < st.tx_gso_segments // 4, st
            assert tcp.tx_tso_frames == st.tx_gso_frames
            assert peer.rx_gso_frames == st.tx_gso_frames  # every super-frame arrived whole
            assert tcp.in_csum_errors == 0
        # Receive counters in segments: each side counted at least one segment per MSS it received.
        assert ta.in_segs >= 3_000_000 // 1460
        assert tb.in_segs >= 3_000_000 // 1460
        assert ta.rx_csum_trusted > 0
        assert tb.rx_csum_trusted > 0
    # The plain port got the same data as MSS-sized frames with correct checksums, cut from our partial sums.
    tcp_frames = [f for f in sniffed if len(f) > 54 and f[23] == 6]
    assert len(tcp_frames) > 2 * 3_000_000 // 1460 * 9 // 10
    assert sniffer.stats.rx_gso_split > 40
    for f in tcp_frames:
        assert len(f) <= 1514
        src, dst = struct.unpack_from("!II", f, 26)
        total = struct.unpack_from("!H", f, 16)[0]
        assert ck.verify(f[14:34]), "IPv4 header checksum"
        assert verify(f[34:14 + total], src, dst), "TCP checksum"


async def test_loss_on_segments_recovers_with_super_frame_sender() -> None:
    """a sends super-frames; the hub cuts them for b's plain consumer (a FaultInjector dropping and
    reordering segments both ways), so a's super-segments lose pieces and are repaired by SACK/RACK."""
    hub = Hub(offload=True)
    pa = hub.port()
    lossy = FaultInjector(hub.port(), seed=3, drop=0.03, reorder=0.02, hold=0.005)
    async with await Stack.connect(pa, ipv4=f"{A}/24", rng=random.Random(1)) as a, \
            await Stack.connect(lossy, ipv4=f"{B}/24", rng=random.Random(2)) as b:
        await both_ways(a, b, 1_000_000, seed=9, budget=60)
        ta = a.tcp.layer.stats
        assert pa.stats.tx_gso_frames > 5
        assert lossy.fault_stats.dropped > 10
        assert ta.retrans_segs > 0  # a repaired its super-segments
        assert ta.fast_retrans + ta.rack_retrans + ta.tlp_retrans > 0
        assert lossy.inner.stats.rx_gso_split > 5  # type: ignore[attr-defined]


async def test_offload_and_plain_stacks_interoperate() -> None:
    """An offload stack and a plain one on the same hub: the hub cuts super-frames for the plain port."""
    hub = Hub()
    pa, pb = hub.port(offload=True), hub.port()
    async with await Stack.connect(pa, ipv4=f"{A}/24") as a, await Stack.connect(pb, ipv4=f"{B}/24") as b:
        await both_ways(a, b, 500_000, seed=1)
        assert pa.stats.tx_gso_frames > 0
        assert pb.stats.rx_gso_split == pa.stats.tx_gso_frames
        assert pa.stats.rx_gso_frames == 0  # the plain stack sent ordinary frames
        assert b.tcp.layer.stats.in_csum_errors == 0


def _super_frame(n_segs: int, mss: int, *, length_in_partial: bool = True) -> bytes:
    """An Ethernet + IPv4 + TCP super-frame with the TCP checksum field holding a partial sum."""
    src, dst = ip_int(A), ip_int(B)
    payload = bytes(random.Random(4).randbytes(n_segs * mss - 100))
    tcp = bytearray(struct.pack("!HHIIBBHHH", 1000, 2000, 0xFFFFF000, 7, 5 << 4, 0x18 | 0x01, 512, 0, 0))
    tcp_len = len(tcp) + len(payload)
    c = virtio.tcp_partial_sum(src, dst, tcp_len if length_in_partial else 0)
    tcp[16:18] = c.to_bytes(2, "big")
    ip = struct.pack("!BBHHHBBHII", 0x45, 0, 20 + tcp_len, 100, 0x4000, 64, 6, 0, src, dst)
    return bytes(14) + ip + bytes(tcp) + payload


def test_segment_cuts_like_the_kernel() -> None:
    f = _super_frame(5, 1000)
    segs = virtio.segment(f, 1000)
    assert [len(s) - 54 for s in segs] == [1000, 1000, 1000, 1000, 900]
    seqs = [struct.unpack_from("!I", s, 38)[0] for s in segs]
    assert seqs == [(0xFFFFF000 + 1000 * i) & 0xFFFFFFFF for i in range(5)]  # wraps
    assert [s[47] for s in segs] == [0x10, 0x10, 0x10, 0x10, 0x19]  # FIN and PSH on the last only
    assert [struct.unpack_from("!H", s, 18)[0] for s in segs] == [100, 101, 102, 103, 104]
    src, dst = ip_int(A), ip_int(B)
    for s in segs:
        assert ck.verify(s[14:34])
        assert verify(s[34:], src, dst)
    assert b"".join(s[54:] for s in segs) == f[54:]


def test_partial_sum_must_include_the_super_segment_length() -> None:
    """Linux's tcp_gso_segment subtracts the super-segment's TCP length from the partial sum and adds each
    segment's: a partial sum without the length gives segments with wrong checksums."""
    src, dst = ip_int(A), ip_int(B)
    bad = virtio.segment(_super_frame(3, 1000, length_in_partial=False), 1000)
    assert not any(verify(s[34:], src, dst) for s in bad)


def test_complete_checksum_finishes_a_needs_csum_frame() -> None:
    f = bytearray(_super_frame(1, 600))
    done = virtio.complete_checksum(f, 34, 16)
    assert verify(done[34:], ip_int(A), ip_int(B))
    assert done[:50] == f[:50]
    assert done[52:] == f[52:]


def test_header_layout() -> None:
    h = virtio.tcp_gso_header(14, 20, 32, 1448)
    assert isinstance(h, virtio.VnetHeader)
    assert len(h) == virtio.VNET_HDR_LEN
    assert bytes(h) == struct.pack("<BBHHHH", 1, 1, 66, 1448, 34, 16)
    assert virtio.parse(h) == (1, 1, 66, 1448, 34, 16)


async def test_plain_port_refuses_offload_attach() -> None:
    hub = Hub()
    with pytest.raises(ValueError, match="offload"):
        hub.port().attach_offload(lambda f, ok, n: None)
