"""Fuzzing the input path: arbitrary bytes and mutated valid frames into `Interface.receive` and into a
running Stack on a Hub. Properties (the h11 rule, and gVisor's "every drop is counted"):

* nothing raises out of the input path (nor out of the timers it arms);
* every received frame lands in exactly one outcome counter per layer (`unbalanced(...) == []`);
* every frame the stack emits parses in scapy, with IPv4/ICMP/UDP checksums that recompute to the values
  sent, and ICMP errors that obey RFC 1122;
* the stack still answers a ping afterwards.

The corpus in tests/fuzz/corpus is replayed frame by frame, then as one stream.
"""

from __future__ import annotations

import asyncio
import random

import pytest
from fuzz_support import (
    OUR_MAC,
    Recorder,
    balanced,
    check_emitted,
    fix_checksums,
    load_corpus,
    make_iface,
    mutate,
    ping_answered,
    seed_frames,
)
from hypothesis import given
from hypothesis import strategies as st
from testlib import csum, sent, settle

from tcpip import Stack
from tcpip.core.interface import Interface
from tcpip.core.stats import as_dict, unbalanced
from tcpip.netif import Hub

SEEDS = seed_frames()
SEED_LIST = list(SEEDS.values())
CORPUS = load_corpus()


def feed(iface: Interface, frames: list[bytes], now: float = 1.0, step: float = 0.001) -> float:
    """Each frame in, as a device hands it over: bytes and memoryviews alternately (a TAP gives bytes, UDP
    keeps them: Host.register's takes_bytes); the timers run when due; every emitted frame checked."""
    for i, f in enumerate(frames):
        iface.receive(memoryview(f) if i & 1 else f, now)
        at = iface.poll_at()
        if at is not None and at <= now:
            iface.handle_timeout(now)
        iface.loopback_input(now)
        for out in sent(iface):
            check_emitted(out)
        assert balanced(iface) == []
        now += step
    # the far future: every reassembly and ARP timer fires (Time Exceeded quotes are checked too)
    for dt in (1.0, 2.0, 4.0, 31.0, 61.0):
        iface.handle_timeout(now + dt)
        for out in sent(iface):
            check_emitted(out)
    return now + 62.0


# -- hypothesis: the sans-I/O Interface -----------------------------------------------------------------
ETH_HEADERS = st.sampled_from([
    bytes.fromhex(OUR_MAC.replace(":", "")) + bytes.fromhex("020000000001") + t
    for t in (b"\x08\x00", b"\x08\x06", b"\x86\xdd")
] + [b"\xff" * 6 + bytes.fromhex("020000000001") + b"\x08\x06"])


@given(st.lists(st.binary(max_size=1600), min_size=1, max_size=8))
def test_arbitrary_bytes(frames: list[bytes]) -> None:
    iface, _ = make_iface()
    now = feed(iface, frames)
    assert ping_answered(iface, now)


@given(ETH_HEADERS, st.lists(st.binary(min_size=0, max_size=120), min_size=1, max_size=6), st.booleans())
def test_arbitrary_payloads_behind_a_valid_ethernet_header(eth: bytes, bodies: list[bytes], fix: bool) -> None:
    """Random bytes behind a header for us reach ARP and IPv4; with the checksums fixed they get past the
    IPv4 checksum and into options, fragments, ICMP and UDP."""
    frames = []
    for body in bodies:
        b = bytearray(eth + body)
        if fix:
            if len(b) > 14:
                b[14] = 0x40 | (b[14] & 15)  # version 4 most of the time: deeper
            fix_checksums(b)
        frames.append(bytes(b))
    iface, _ = make_iface()
    now = feed(iface, frames)
    assert ping_answered(iface, now)


@given(st.lists(st.tuples(st.sampled_from(SEED_LIST), st.integers(0, 2000), st.integers(0, 0xFFFF)),
                min_size=1, max_size=8))
def test_trusted_checksum_frames(cases: list[tuple[bytes, int, int]]) -> None:
    """Frames an offloading device vouches for (`csum_ok`, as a TAP passes NEEDS_CSUM/DATA_VALID datagrams:
    at least 42 bytes, as bytes), mutated at one place with the IPv4 header checksum fixed: UDP and TCP
    skip their checksum and take the trusted paths, which must count or answer every one of them."""
    iface, _ = make_iface()
    now = 1.0
    for seed, pos, val in cases:
        b = bytearray(seed)
        if len(b) < 42:
            continue
        i = pos % len(b)
        b[i] = val & 0xFF
        if len(b) >= 34:
            b[24:26] = b"\0\0"  # the IPv4 header checksum, fixed where there is one (no options)
            b[24:26] = csum(bytes(b[14:34])).to_bytes(2, "big")
        iface.receive(bytes(b), now, csum_ok=True)
        for out in sent(iface):
            check_emitted(out)
        assert balanced(iface) == []
        now += 0.001
    assert ping_answered(iface, now)


MUTATION = st.tuples(st.integers(0, 7), st.integers(0, 2000), st.integers(0, 0xFFFF))
# In-place mutations only: op 5 (splice in another seed) can turn a fragment into a whole other datagram,
# which may rightly be delivered too.
IN_PLACE_MUTATION = st.tuples(st.integers(0, 7).filter(lambda op: op != 5), st.integers(0, 2000),
                              st.integers(0, 0xFFFF))


def apply(frame: bytes, ops: list[tuple[int, int, int]], fix: bool) -> bytes:
    """Hypothesis-driven mutations (they shrink to a minimal reproducer)."""
    b = bytearray(frame)
    for op, pos, val in ops:
        n = len(b)
        if op == 0 and n:
            bit = pos % (n * 8)
            b[bit >> 3] ^= 1 << (bit & 7)
        elif op == 1 and n:
            b[pos % n] = val & 0xFF
        elif op == 2 and n >= 2:
            i = pos % (n - 1)
            b[i:i + 2] = val.to_bytes(2, "big")
        elif op == 3:
            del b[pos % (n + 1):]
        elif op == 4:
            b += random.Random(val).randbytes(pos % 64 + 1)
        elif op == 5:
            other = SEED_LIST[val % len(SEED_LIST)]
            cut = pos % (min(n, len(other)) + 1)
            b = b[:cut] + bytearray(other[cut:])
        elif op == 6 and n > 34:
            b[14 + pos % 20] = val & 0xFF  # somewhere in the IPv4 header
        elif op == 7 and n > 46:
            b[34 + pos % 12] = val & 0xFF  # the first bytes of the transport header
    if fix:
        fix_checksums(b)
    return bytes(b)


@given(st.lists(st.tuples(st.sampled_from(sorted(SEEDS)), st.lists(MUTATION, max_size=4), st.booleans()),
                min_size=1, max_size=10))
def test_mutated_valid_frames(spec: list[tuple[str, list[tuple[int, int, int]], bool]]) -> None:
    frames = [apply(SEEDS[name], ops, fix) for name, ops, fix in spec]
    iface, _ = make_iface()
    now = feed(iface, frames)
    assert ping_answered(iface, now)


@given(st.permutations(range(6)), st.lists(IN_PLACE_MUTATION, max_size=3), st.integers(0, 5))
def test_fragment_sets_in_any_order_with_one_mutated(order: list[int], ops: list[tuple[int, int, int]],
                                                      which: int) -> None:
    """A fragmented UDP datagram (and an overlapping pair) in any order, one fragment mutated: the UDP
    echo answers iff the datagram is intact; nothing else is ever delivered."""
    parts = [SEEDS["frag_first"], SEEDS["frag_middle"], SEEDS["frag_last"], SEEDS["frag_overlap_a"],
             SEEDS["frag_overlap_b"], SEEDS["frag_tiny_first"]]
    frames = [parts[i] for i in order]
    k = order.index(which)
    frames[k] = apply(frames[k], ops, fix=True)
    iface, udp = make_iface()
    feed(iface, frames)
    assert as_dict(udp.stats)["rx_delivered"] <= 1
    if frames[k] == parts[which] or which >= 3:  # the big datagram's fragments all intact
        assert as_dict(udp.stats)["rx_delivered"] == 1
        assert as_dict(udp.stats)["tx_datagrams"] == 1


# -- the corpus, replayed --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_frame(name: str) -> None:
    iface, _ = make_iface()
    now = feed(iface, [CORPUS[name]])
    assert ping_answered(iface, now)


def test_corpus_as_one_stream_twice() -> None:
    """All corpus frames through one interface (state carries over), twice, in two orders."""
    iface, _ = make_iface()
    frames = list(CORPUS.values())
    now = feed(iface, frames)
    random.Random(3).shuffle(frames)
    now = feed(iface, frames, now)
    assert ping_answered(iface, now)
    assert as_dict(iface.ip_stats)["rx_packets"] > 0
    assert iface.arp.stats.rx_packets > 0


def test_corpus_exists_and_covers_every_seed() -> None:
    assert len(CORPUS) >= len(SEEDS) + 100
    assert all(name in CORPUS for name in SEEDS)


def test_random_mutation_stream() -> None:
    """20k mutated frames through one interface, all emitted frames checked (a seeded, CI-sized version of
    fuzz/atheris_input.py)."""
    rng = random.Random(20240601)
    iface, _ = make_iface()
    frames = [mutate(rng, rng.choice(SEED_LIST), SEED_LIST) for _ in range(20_000)]
    now = feed(iface, frames, step=0.0005)
    assert ping_answered(iface, now)
    assert as_dict(iface.ip_stats)["rx_delivered"] > 1000
    assert iface.ip_stats.rx_fragments > 100


# -- a running Stack on a Hub ------------------------------------------------------------------------------
async def _stack_scenario(frames: list[bytes]) -> None:
    """An attacker port injects `frames` into stack B (198.18.0.2, MAC OUR_MAC); a sniffer checks all B
    sends; afterwards A pings B and B's UDP echo answers A."""
    hub = Hub()
    attacker = hub.port("02:00:00:00:00:01")
    attacker.attach(lambda f: None)
    dev_b = Recorder(hub.port())  # records every frame B transmits
    async with await Stack.connect(dev_b, ipv4="198.18.0.2/24", mac=OUR_MAC,  # type: ignore[arg-type]
                                   gateways=["198.18.0.1"]) as b, \
            await Stack.connect(hub.port(), ipv4="198.18.0.3/24") as a:
        await b.udp_echo(7)
        for f in frames:
            if len(f) <= 1514:  # the hub port refuses bigger frames (misuse)
                attacker.transmit((f,))
        await settle()
        c = b.core
        assert unbalanced(c.eth_stats, c.arp.stats, c.ip_stats) == []
        rtt = await a.ping("198.18.0.2", timeout=0.5)
        assert rtt[0] is not None
        got: list[bytes] = []

        class Proto(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                got.append(data)

        tr, _ = await a.create_datagram_endpoint(Proto, local_addr=("198.18.0.3", 0))
        tr.sendto(b"after the storm", ("198.18.0.2", 7))
        await settle(lambda: bool(got))
        assert got == [b"after the storm"]
        tr.close()
        assert unbalanced(c.eth_stats, c.arp.stats, c.ip_stats) == []
    assert dev_b.tx
    for f in dev_b.tx:
        check_emitted(f)


@given(st.lists(st.one_of(
    st.binary(max_size=200),
    st.tuples(st.sampled_from(sorted(SEEDS)), st.lists(MUTATION, max_size=3), st.booleans()).map(
        lambda t: apply(SEEDS[t[0]], t[1], t[2])),
), min_size=1, max_size=12))
def test_running_stack_on_a_hub(frames: list[bytes]) -> None:
    asyncio.run(_stack_scenario(frames))


async def test_running_stack_on_a_hub_whole_corpus() -> None:
    await _stack_scenario(list(CORPUS.values()))
