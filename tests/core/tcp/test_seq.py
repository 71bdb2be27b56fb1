"""Sequence arithmetic against an unwrapped integer model, across the 2**32 wrap."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tcpip.core.tcp.seq import seq_add, seq_ge, seq_gt, seq_in, seq_le, seq_lt, seq_max, seq_min, seq_sub

M = 1 << 32
u32 = st.integers(0, M - 1)
# offsets strictly inside the unambiguous half range
off = st.integers(-(1 << 31) + 1, (1 << 31) - 1)
near_wrap = st.one_of(u32, st.integers(M - 2000, M - 1), st.integers(0, 2000))


@given(near_wrap, off, off)
def test_comparisons_match_unwrapped_model(base: int, da: int, db: int) -> None:
    if abs(da - db) >= 1 << 31:
        return
    a, b = (base + da) % M, (base + db) % M
    assert seq_lt(a, b) == (da < db)
    assert seq_le(a, b) == (da <= db)
    assert seq_gt(a, b) == (da > db)
    assert seq_ge(a, b) == (da >= db)
    assert seq_sub(a, b) == da - db
    assert seq_max(a, b) == (base + max(da, db)) % M
    assert seq_min(a, b) == (base + min(da, db)) % M


@given(u32, st.integers(-(1 << 33), 1 << 33))
def test_add_wraps(a: int, n: int) -> None:
    r = seq_add(a, n)
    assert 0 <= r < M
    assert r == (a + n) % M


@given(u32, u32)
def test_sub_range_and_inverse(a: int, b: int) -> None:
    d = seq_sub(a, b)
    assert -(1 << 31) <= d <= (1 << 31) - 1
    assert seq_add(b, d) == a


@given(near_wrap, st.integers(0, 1 << 20), st.integers(-(1 << 21), 1 << 21))
def test_in_matches_model(lo: int, length: int, dx: int) -> None:
    hi = (lo + length) % M
    x = (lo + dx) % M
    assert seq_in(x, lo, hi) == (0 <= dx < length)


def test_wrap_edges() -> None:
    assert seq_lt(M - 1, 0)
    assert seq_gt(0, M - 1)
    assert seq_sub(0, M - 1) == 1
    assert seq_sub(M - 1, 0) == -1
    assert seq_add(M - 1, 1) == 0
    assert seq_in(0, M - 5, 5)
    assert seq_in(M - 5, M - 5, 5)
    assert not seq_in(5, M - 5, 5)
    assert not seq_in(7, 7, 7)  # empty range
    assert seq_le(7, 7)
    assert seq_ge(7, 7)
    assert not seq_lt(7, 7)
    assert not seq_gt(7, 7)
    # exactly half apart: Linux before() says each precedes the other
    assert seq_lt(0, 1 << 31)
    assert seq_lt(1 << 31, 0)
    assert seq_sub(1 << 31, 0) == -(1 << 31)
