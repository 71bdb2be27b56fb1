"""Two stacks on a Hub whose link loses, duplicates, reorders and corrupts frames (FaultInjector, seeded):
ARP retries still resolve, pings succeed within their retry budget, reassembly delivers every datagram
whose fragments all arrived, and UDP never delivers a corrupted datagram nor more copies than arrived."""

from __future__ import annotations

import asyncio
import struct
from collections import Counter
from ipaddress import IPv4Address

from fuzz_support import Recorder
from testlib import settle

from tcpip import Stack
from tcpip.core.config import InterfaceConfig
from tcpip.core.stats import unbalanced
from tcpip.netif import Hub, VirtualClock
from tcpip.netif.fault import FaultInjector

A, B = "198.18.0.1", "198.18.0.2"
A_INT, B_INT = int(IPv4Address(A)), int(IPv4Address(B))
LOSSY = {"drop": 0.1, "duplicate": 0.05, "reorder": 0.1}


def books_balance(s: Stack) -> list[str]:
    c = s.core
    return unbalanced(c.eth_stats, c.arp.stats, c.ip_stats)


async def test_arp_retries_resolve_through_a_lossy_link() -> None:
    """20 seeds. With 10% loss each way an exchange fails with p = 0.19, all 3 tries with p = 0.007: a
    failure is allowed only if frames were really lost on every try, and must stay rare."""
    retried = failed = 0
    for seed in range(20):
        hub = Hub()
        clock = VirtualClock()
        lossy = FaultInjector(hub.port(), seed=seed, clock=clock, **LOSSY)
        a = await Stack.connect(lossy, ipv4=f"{A}/24", clock=clock)
        b = await Stack.connect(hub.port(), ipv4=f"{B}/24", clock=clock)
        fut = asyncio.ensure_future(a.runner.resolve(B_INT))
        for _ in range(40):  # 4 s of virtual time: arp_tries=3 requests, 1 s apart
            await settle()
            if fut.done():
                break
            clock.advance(0.1)
        assert fut.done(), f"seed {seed}: neither resolved nor failed after all retries"
        sent = a.stats()["arp"]["requests_sent"]
        assert 1 <= sent <= a.core.config.arp_tries
        if fut.exception() is None:
            assert fut.result() == b.mac.packed, f"seed {seed}"
            retried += sent > 1
        else:  # allowed only when every exchange lost its request or its reply
            failed += 1
            assert lossy.fault_stats.dropped >= a.core.config.arp_tries, f"seed {seed}"
        assert books_balance(a) == []
        assert books_balance(b) == []
        await a.disconnect()
        await b.disconnect()
    assert retried, "no seed needed a retry: the test did not exercise them"
    assert failed <= 1


async def test_pings_succeed_within_the_retry_budget() -> None:
    """50 pings over a link with 10% loss (plus duplicates and reordering) each way; each succeeds within 6
    attempts (all 6 fail with probability 0.19**6 = 5e-5)."""
    hub = Hub()
    lossy = FaultInjector(hub.port(), seed=21, hold=0.005, **LOSSY)
    plain = hub.port()
    cfg = {"arp_interval": 0.02}  # ARP retries fit in the ping budget
    async with await Stack.connect(lossy, ipv4=f"{B}/24", config=InterfaceConfig(mac=lossy.mac, **cfg)) as b, \
            await Stack.connect(plain, ipv4=f"{A}/24", config=InterfaceConfig(mac=plain.mac, **cfg)) as a:
        attempts = []
        for _ in range(50):
            for n in range(1, 7):
                if (await a.ping(B, size=56, timeout=0.05))[0] is not None:
                    attempts.append(n)
                    break
            else:
                attempts.append(0)
        assert 0 not in attempts, attempts
        assert max(attempts) > 1, "no ping was lost: the link was not lossy"
        st = lossy.fault_stats
        assert st.dropped
        assert st.duplicated
        assert st.reordered
        assert books_balance(a) == []
        assert books_balance(b) == []
        assert b.stats()["icmp"]["rx_echo_requests"] >= 50


def _fragments(frames: list[bytes], dst: bytes) -> list[tuple[int, int, int, bool, bytes]]:
    """(ident, offset, length, more, payload) of each intact IPv4 fragment/datagram to `dst` in `frames`."""
    out = []
    for f in frames:
        if len(f) < 34 or f[12:14] != b"\x08\x00" or f[30:34] != dst:
            continue
        ihl = (f[14] & 15) * 4
        total, ident, ff = struct.unpack_from("!HHH", f, 16)
        out.append((ident, (ff & 0x1FFF) * 8, total - ihl, bool(ff & 0x2000), f[14 + ihl:14 + total]))
    return out


async def test_reassembly_delivers_every_datagram_whose_fragments_all_arrived() -> None:
    hub = Hub()
    clock = VirtualClock()
    dev_a = Recorder(hub.port())
    dev_b = Recorder(FaultInjector(hub.port(), seed=5, direction="rx", clock=clock, hold=0.01,
                                   drop=0.1, duplicate=0.1, reorder=0.2))
    a = await Stack.connect(dev_a, ipv4=f"{A}/24", clock=clock)  # type: ignore[arg-type]
    b = await Stack.connect(dev_b, ipv4=f"{B}/24", clock=clock)  # type: ignore[arg-type]
    a.core.arp.add_static(B_INT, b.mac.packed)
    got: Counter[bytes] = Counter()
    b.udp.bind(9000, 0, lambda payload, src, sport, dst, now: got.update([bytes(payload)]))
    sent = []
    for i in range(80):
        data = i.to_bytes(4, "big") + bytes((i * 7 + k) & 0xFF for k in range(1500 + 37 * i))
        sent.append(data)
        a.udp.send(9000, B_INT, 9000, data, clock.now())
        a.runner.flush()
        await settle()
        clock.advance(0.001)
    clock.advance(0.02)  # frames still held for reordering are released
    await settle()
    # what was sent per datagram, and what reached B's stack (after the faults), by ident
    sent_frags = _fragments(dev_a.tx, B_INT.to_bytes(4, "big"))
    arrived = Counter((ident, off) for ident, off, *_ in _fragments(dev_b.rx, B_INT.to_bytes(4, "big")))
    by_ident: dict[int, list[int]] = {}
    seq_of: dict[int, int] = {}
    for ident, off, _n, _mf, payload in sent_frags:
        by_ident.setdefault(ident, []).append(off)
        if off == 0:
            seq_of[ident] = int.from_bytes(payload[8:12], "big")  # after the UDP header
    assert len(by_ident) == 80
    assert all(len(v) >= 2 for v in by_ident.values())
    complete = 0
    for ident, offs in by_ident.items():
        data = sent[seq_of[ident]]
        copies = min(arrived[(ident, o)] for o in offs)
        if copies:
            complete += 1
            assert got[data] >= 1, f"datagram {seq_of[ident]}: all fragments arrived, not delivered"
        assert got[data] <= copies  # never more often than complete copies arrived
    assert set(got) <= set(sent)  # nothing else, nothing corrupted
    assert 20 < complete < 80  # the link did lose some, and most got through
    st = b.stats()["reassembly"]
    assert st["duplicates"] > 0
    assert st["reassembled"] == sum(got.values())
    assert books_balance(a) == []
    assert books_balance(b) == []
    await a.disconnect()
    await b.disconnect()


async def test_udp_never_delivers_corrupted_data_and_counts_bad_checksums() -> None:
    hub = Hub()
    clock = VirtualClock()
    dev_a = Recorder(hub.port())
    inj = FaultInjector(hub.port(), seed=13, direction="rx", clock=clock, hold=0.01, corrupt=0.05,
                        drop=0.1, duplicate=0.1, reorder=0.1)
    dev_b = Recorder(inj)
    a = await Stack.connect(dev_a, ipv4=f"{A}/24", clock=clock)  # type: ignore[arg-type]
    b = await Stack.connect(dev_b, ipv4=f"{B}/24", clock=clock)  # type: ignore[arg-type]
    a.core.arp.add_static(B_INT, b.mac.packed)
    got: list[bytes] = []
    b.udp.bind(9000, 0, lambda payload, src, sport, dst, now: got.append(bytes(payload)))
    sent: set[bytes] = set()
    for i in range(1500):
        data = b"udp datagram %06d :" % i + bytes((i + k) & 0xFF for k in range(i % 200))
        sent.add(data)
        a.udp.send(9000, B_INT, 9000, data, clock.now())
        a.runner.flush()
        if i % 50 == 0:
            await settle()
    await settle()
    clock.advance(0.02)
    await settle()
    originals = {f[14:] for f in dev_a.tx if f[12:14] == b"\x08\x00"}
    expected = 0
    for f in dev_b.rx:  # what reached B's stack: may B's UDP deliver it?
        if f[0:6] != b.mac.packed or f[12:14] != b"\x08\x00":
            continue
        d = f[14:]
        if d in originals:
            expected += 1
        elif len(d) > 28 and d[26:28] == b"\x00\x00" and d[:26] + d[28:] in {
                o[:26] + o[28:] for o in originals if o[20:22] == d[20:22]}:
            expected += 1  # the flip zeroed the UDP checksum field: "no checksum", data intact
    assert got, "nothing delivered"
    assert all(g in sent for g in got), "a corrupted datagram was delivered"
    counts = Counter(got)
    arrivals = Counter(f[14 + 28:] for f in dev_b.rx if f[14:] in originals)
    assert all(counts[g] <= max(1, arrivals[g]) for g in counts)  # at most once per intact copy
    assert len(got) == expected
    st = b.stats()
    assert inj.fault_stats.corrupted > 20
    assert st["ipv4"]["rx_bad_checksum"] > 0
    assert st["udp"]["rx_bad_checksum"] > 0
    assert books_balance(a) == []
    assert books_balance(b) == []
    await a.disconnect()
    await b.disconnect()
