"""FaultInjector: reproducible from its seed, each fault does what it says at about its probability, and it
works as a device under a Stack, on Hub ports, with attach() and with listen()."""

from __future__ import annotations

import asyncio
import itertools
import math
from collections import Counter
from collections.abc import Callable, Sequence

import pytest
from testlib import settle

from tcpip import Stack
from tcpip.core.config import InterfaceConfig
from tcpip.errors import DeviceClosedError, MessageTooLongError
from tcpip.netif import Hub, VirtualClock
from tcpip.netif.device import DeviceStats
from tcpip.netif.fault import FaultInjector
from tcpip.wire.mac import MacAddress

N = 4000


class Wire:
    """The smallest device: records what is transmitted; `push(frame)` plays a received frame."""

    def __init__(self, mtu: int = 1500) -> None:
        self.mac = MacAddress("02:00:00:00:00:aa")
        self.mtu = mtu
        self.stats = DeviceStats()
        self.sent: list[bytes] = []
        self.closed = False
        self._deliver: Callable[[memoryview], None] | None = None

    def transmit(self, parts: Sequence[bytes | bytearray | memoryview]) -> None:
        if self.closed:
            raise DeviceClosedError("closed")
        size = sum(len(p) for p in parts)
        if size > self.mtu + 14:
            raise MessageTooLongError("too big")
        self.sent.append(b"".join(bytes(p) for p in parts))

    def attach(self, deliver: Callable[[memoryview], None] | None) -> None:
        self._deliver = deliver

    def push(self, frame: bytes) -> None:
        assert self._deliver is not None
        self._deliver(memoryview(frame))

    async def disconnect(self) -> None:
        self.closed = True


def numbered(i: int, size: int = 64) -> bytes:
    return i.to_bytes(4, "big") + bytes((i + k) & 0xFF for k in range(size - 4))


def number(frame: bytes) -> int:
    return int.from_bytes(frame[:4], "big")


def within(count: int, p: float, n: int = N) -> bool:
    """`count` successes out of `n` is within 5 standard deviations of the expected n*p."""
    return abs(count - n * p) <= 5 * math.sqrt(n * p * (1 - p)) + 1


def run_tx(n: int = N, **kw: float) -> tuple[Wire, FaultInjector]:
    w = Wire()
    f = FaultInjector(w, hold=0, **kw)  # type: ignore[arg-type]
    for i in range(n):
        f.transmit((numbered(i),))
    return w, f


def run_rx(n: int = N, **kw: float) -> tuple[list[bytes], FaultInjector]:
    w = Wire()
    f = FaultInjector(w, hold=0, **kw)  # type: ignore[arg-type]
    got: list[bytes] = []
    f.attach(lambda fr: got.append(bytes(fr)))
    for i in range(n):
        w.push(numbered(i))
    return got, f


# -- argument checks and misuse ----------------------------------------------------------------
@pytest.mark.parametrize("kw", [{"drop": -0.1}, {"corrupt": 1.5}, {"direction": "up"}, {"delay": -1.0},
                                {"hold": -1.0}])
def test_bad_arguments_raise(kw: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        FaultInjector(Wire(), **kw)  # type: ignore[arg-type]


def test_oversize_and_closed_still_raise() -> None:
    w = Wire()
    f = FaultInjector(w, drop=0.5)
    with pytest.raises(MessageTooLongError):
        f.transmit((bytes(1515),))
    w.closed = True
    with pytest.raises(DeviceClosedError):
        f.transmit((bytes(60),))


# -- reproducibility -----------------------------------------------------------------------------
FAULTS = {"drop": 0.1, "duplicate": 0.1, "reorder": 0.1, "corrupt": 0.1, "truncate": 0.1}


def test_same_seed_same_fate() -> None:
    a, fa = run_tx(2000, seed=42, **FAULTS)
    b, fb = run_tx(2000, seed=42, **FAULTS)
    c, _ = run_tx(2000, seed=43, **FAULTS)
    assert a.sent == b.sent
    assert fa.fault_stats == fb.fault_stats
    assert a.sent != c.sent
    ra, _ = run_rx(2000, seed=42, **FAULTS)
    rb, _ = run_rx(2000, seed=42, **FAULTS)
    assert ra == rb


def test_fate_of_a_direction_ignores_the_other_and_earlier_contents() -> None:
    """The k-th transmitted frame meets the same fate whatever was received meanwhile, and whatever
    the earlier frames contained (each frame draws the same amount of randomness)."""
    w1 = Wire()
    f1 = FaultInjector(w1, seed=7, hold=0, **FAULTS)
    w2 = Wire()
    f2 = FaultInjector(w2, seed=7, hold=0, **FAULTS)
    f2.attach(lambda fr: None)
    for i in range(1000):
        f1.transmit((numbered(i),))
        if i % 3 == 0:
            w2.push(numbered(10_000 + i, size=100 + i % 50))  # interleaved receive traffic
        f2.transmit((numbered(i),))
    assert w1.sent == w2.sent
    drops1 = run_tx(500, seed=9, drop=0.3)[1].stats_by_way["tx"]
    w3 = Wire()
    f3 = FaultInjector(w3, seed=9, drop=0.3)
    for i in range(500):
        f3.transmit((bytes(i % 97 + 1),))  # other contents, other lengths
    assert f3.stats_by_way["tx"] == drops1


# -- each fault, by itself ---------------------------------------------------------------------------
def test_drop() -> None:
    w, f = run_tx(seed=1, drop=0.1)
    st = f.fault_stats
    assert within(st.dropped, 0.1)
    assert len(w.sent) == N - st.dropped
    assert w.stats.tx_dropped == st.dropped
    assert [number(x) for x in w.sent] == sorted(number(x) for x in w.sent)  # order kept
    assert all(x == numbered(number(x)) for x in w.sent)  # contents untouched


def test_duplicate() -> None:
    got, f = run_rx(seed=2, duplicate=0.1)
    st = f.fault_stats
    assert within(st.duplicated, 0.1)
    assert len(got) == N + st.duplicated
    nums = [number(x) for x in got]
    assert sorted(set(nums)) == list(range(N))
    counts = Counter(nums)
    assert set(counts.values()) <= {1, 2}
    twice = [k for k, c in counts.items() if c == 2]
    assert len(twice) == st.duplicated
    for k in twice:  # the copy follows the original at once
        i = nums.index(k)
        assert nums[i + 1] == k


def test_corrupt_flips_exactly_one_bit() -> None:
    w, f = run_tx(seed=3, corrupt=0.1)
    st = f.fault_stats
    assert within(st.corrupted, 0.1)
    assert len(w.sent) == N
    flipped = 0
    for i, x in enumerate(w.sent):
        ref = numbered(i)
        assert len(x) == len(ref)
        bits = sum(bin(a ^ b).count("1") for a, b in zip(x, ref, strict=True))
        assert bits in (0, 1)
        flipped += bits
    assert flipped == st.corrupted


def test_truncate_keeps_a_nonempty_prefix() -> None:
    got, f = run_rx(seed=4, truncate=0.1)
    st = f.fault_stats
    assert within(st.truncated, 0.1)
    short = 0
    for i, x in enumerate(got):
        ref = numbered(i)
        assert 1 <= len(x) <= len(ref)
        assert ref.startswith(x)
        short += len(x) < len(ref)
    assert short == st.truncated


def test_reorder_lets_the_next_frame_overtake() -> None:
    w, f = run_tx(seed=5, reorder=0.1)
    st = f.fault_stats
    # a frame is held only when none is held already: slightly fewer than N * p
    assert within(st.reordered, 0.1 * 0.9) or within(st.reordered, 0.1)
    nums = [number(x) for x in w.sent]
    assert sorted(nums) == list(range(N)) or sorted(nums) == list(range(N - 1))  # the last may be held
    swaps = sum(1 for a, b in itertools.pairwise(nums) if b < a)
    assert swaps == st.reordered - (len(nums) < N)
    assert all(abs(n - i) <= 1 for i, n in enumerate(nums))  # overtaken by exactly one frame


async def test_reordered_frame_is_released_by_the_hold_timer() -> None:
    clock = VirtualClock()
    w = Wire()
    f = FaultInjector(w, seed=0, reorder=1.0, hold=0.05, clock=clock)
    f.transmit((numbered(1),))
    assert w.sent == []  # held, and nothing follows
    clock.advance(0.049)
    assert w.sent == []
    clock.advance(0.001)
    assert [number(x) for x in w.sent] == [1]
    f.transmit((numbered(2),))
    f.transmit((numbered(3),))  # 3 overtakes 2 (3 itself is not held: 2 was)
    assert [number(x) for x in w.sent] == [1, 3, 2]


async def test_delay_on_a_virtual_clock_keeps_order() -> None:
    clock = VirtualClock(10.0)
    w = Wire()
    f = FaultInjector(w, seed=6, delay=0.5, clock=clock)
    for i in range(100):
        f.transmit((numbered(i),))
        clock.advance(0.001)
    assert w.sent == []
    clock.advance(0.4595)  # sent at 10.000..10.099, due at 10.500..10.599: now 10.5595
    first = [number(x) for x in w.sent]
    assert 55 <= len(first) <= 65
    assert first == list(range(len(first)))
    clock.advance(1.0)
    assert [number(x) for x in w.sent] == list(range(100))
    assert f.fault_stats.delayed == 100
    assert clock.pending() == 0


async def test_close_cancels_pending_frames() -> None:
    clock = VirtualClock()
    w = Wire()
    f = FaultInjector(w, delay=1.0, clock=clock)
    f.transmit((numbered(1),))
    await f.disconnect()
    clock.advance(2.0)
    assert w.sent == []
    assert clock.pending() == 0


def test_all_faults_together_account_for_every_frame() -> None:
    w, f = run_tx(seed=11, **FAULTS)
    st = f.fault_stats
    held = int(f._held["tx"] is not None)
    assert st.frames == N
    assert len(w.sent) == st.passed == N - st.dropped + st.duplicated - held
    assert within(st.dropped, 0.1)
    for counter in ("duplicated", "corrupted", "truncated"):  # only frames that were not dropped
        assert within(getattr(st, counter), 0.1 * 0.9), counter
    assert within(st.reordered, 0.1 * 0.9 * 0.9)  # ... and only when no frame is held already


# -- on a Hub, under a Stack, through listen() --------------------------------------------------------
async def test_on_hub_ports_only_the_wrapped_direction_suffers() -> None:
    hub = Hub()
    a = hub.port()
    b = FaultInjector(hub.port(), seed=3, drop=0.5, direction="rx")
    got_b: list[bytes] = []
    got_a: list[bytes] = []
    b.attach(lambda fr: got_b.append(bytes(fr)))
    a.attach(lambda fr: got_a.append(bytes(fr)))
    for i in range(400):
        a.transmit((numbered(i),))
        b.transmit((numbered(1000 + i),))
    await settle(lambda: len(got_a) == 400)
    assert within(400 - len(got_b), 0.5, 400)
    assert len(got_a) == 400  # tx of b untouched
    assert b.stats.rx_dropped == 400 - len(got_b)


async def test_stack_on_a_lossy_port_still_answers_pings() -> None:
    hub = Hub()
    lossy = FaultInjector(hub.port(), seed=1, drop=0.1, duplicate=0.05, reorder=0.05, hold=0.005)
    plain = hub.port()

    def quick_arp(mac: MacAddress) -> InterfaceConfig:  # ARP retries within the ping budget
        return InterfaceConfig(mac=mac, arp_interval=0.02)

    async with await Stack.connect(lossy, ipv4="198.18.0.2/24", config=quick_arp(lossy.mac)) as b, \
            await Stack.connect(plain, ipv4="198.18.0.1/24", config=quick_arp(plain.mac)) as a:
        assert b.device is lossy
        answered = 0
        for _ in range(40):
            for _attempt in range(6):
                r = await a.ping("198.18.0.2", timeout=0.05)
                if r[0] is not None:
                    answered += 1
                    break
        assert answered == 40
        st = lossy.fault_stats
        assert st.dropped > 0
        assert st.frames > 80
        assert b.stats()["device"]["rx_dropped"] + b.stats()["device"]["tx_dropped"] == st.dropped


async def test_listen_path_delivers_delayed_and_held_frames_without_more_traffic() -> None:
    hub = Hub()
    a = hub.port()
    clock = VirtualClock()
    f = FaultInjector(hub.port(), seed=8, delay=0.2, reorder=0.3, hold=0.05, clock=clock, direction="rx")
    got: list[int] = []

    async def cb(frame: memoryview) -> None:
        got.append(number(bytes(frame)))

    task = asyncio.ensure_future(f.listen(cb))
    await settle()
    for i in range(50):
        a.transmit((numbered(i),))
    await settle()
    assert got == []  # all on the delay line
    clock.advance(0.2)
    await settle()
    clock.advance(0.05)  # a frame held at the end is released by its timer
    await settle(lambda: len(got) == 50)
    assert sorted(got) == list(range(50))
    assert got != list(range(50))  # some were overtaken
    assert all(abs(n - i) <= 1 for i, n in enumerate(got))
    a.transmit((numbered(99),))
    await settle()
    clock.advance(0.25)
    await settle(lambda: got[-1] == 99)
    await f.disconnect()
    await asyncio.wait_for(task, 1.0)  # listen() returns when the device is disconnected
