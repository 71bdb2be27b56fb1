"""RFC 6528 ISN properties and ephemeral port choice (RFC 6056, Linux's 32768..60999)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcpip.core.tcp.isn import EPHEMERAL_HIGH, EPHEMERAL_LOW, IsnGenerator, ephemeral_port
from tcpip.core.tcp.seq import seq_sub

u32 = st.integers(0, 0xFFFFFFFF)
port = st.integers(0, 0xFFFF)
tuples = st.tuples(u32, port, u32, port)
SECRET = b"k" * 32


@given(tuples, tuples)
def test_differs_per_four_tuple(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> None:
    g = IsnGenerator(SECRET)
    if a != b:
        assert g.isn(*a, 10.0) != g.isn(*b, 10.0)  # a 2**-32 chance of a false failure
    else:
        assert g.isn(*a, 10.0) == g.isn(*b, 10.0)


def test_offsets_spread_over_the_whole_space() -> None:
    g = IsnGenerator(SECRET)
    tops = {g.isn(0xC6120001, 40000 + i, 0xC6120002, 80, 0.0) >> 24 for i in range(2000)}
    assert len(tops) > 230  # ~255 expected for a uniform 32-bit value


@given(tuples, st.integers(0, 10**9), st.integers(1, 4 * 8000))
def test_increases_with_time(t: tuple[int, int, int, int], start: int, quarters: int) -> None:
    g = IsnGenerator(SECRET)
    t0, t1 = start / 4, (start + quarters) / 4  # quarter seconds: exact binary fractions
    d = seq_sub(g.isn(*t, t1), g.isn(*t, t0))  # < 2**31 ticks apart: "later" in sequence space
    assert d == quarters * 62_500  # 1 s = 250,000 ticks of 4 us


def test_tick_is_4_microseconds() -> None:
    g = IsnGenerator(SECRET)
    t = (1, 2, 3, 4)
    base = g.isn(*t, 0.0)
    assert g.isn(*t, 0.000003) == base
    assert g.isn(*t, 0.000004) == (base + 1) % 2**32
    assert g.isn(*t, 1.0) == (base + 250_000) % 2**32
    assert g.isn(*t, 2**32 / 250_000) == base  # M wraps


@given(tuples, st.binary(min_size=1, max_size=100), st.binary(min_size=1, max_size=100))
def test_depends_on_the_secret(t: tuple[int, int, int, int], s1: bytes, s2: bytes) -> None:
    a, b = IsnGenerator(s1), IsnGenerator(s2)
    assert a.isn(*t, 5.0) == IsnGenerator(s1).isn(*t, 5.0)  # deterministic for one secret
    if s1 != s2:
        assert a.isn(*t, 5.0) != b.isn(*t, 5.0)


def test_empty_secret_refused() -> None:
    with pytest.raises(ValueError, match="secret"):
        IsnGenerator(b"")


@given(st.integers(0, 2**32), st.sets(st.integers(EPHEMERAL_LOW, EPHEMERAL_HIGH), max_size=500))
def test_ephemeral_port_in_range_and_free(seed: int, used: set[int]) -> None:
    p = ephemeral_port(1, 2, 80, random.Random(seed), used.__contains__)
    assert p is not None
    assert EPHEMERAL_LOW <= p <= EPHEMERAL_HIGH
    assert p not in used


def test_ephemeral_port_exhaustion_and_last_free_one() -> None:
    everything = set(range(EPHEMERAL_LOW, EPHEMERAL_HIGH + 1))
    assert ephemeral_port(1, 2, 80, random.Random(1), everything.__contains__) is None
    for free in (EPHEMERAL_LOW, 45000, EPHEMERAL_HIGH):
        busy = everything - {free}
        assert ephemeral_port(1, 2, 80, random.Random(2), busy.__contains__) == free


def test_ephemeral_port_is_random() -> None:
    ports = {ephemeral_port(1, 2, 80, random.Random(s), lambda _: False) for s in range(200)}
    assert len(ports) > 190
    assert min(ports) < 36000
    assert max(ports) > 57000
