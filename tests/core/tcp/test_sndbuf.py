"""SendBuffer against a bytes model: writes up to capacity, views at any offset, acks; views stay valid."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcpip.core.tcp.sndbuf import MAX_BLOCK, MIN_BLOCK, SendBuffer

ops = st.lists(st.one_of(
    st.tuples(st.just("write"), st.integers(0, 3 * MAX_BLOCK)),
    st.tuples(st.just("write"), st.integers(0, 50)),
    st.tuples(st.just("ack"), st.floats(0, 1)),
    st.tuples(st.just("view"), st.floats(0, 1), st.floats(0, 1)),
), max_size=40)


@given(st.integers(1, 300_000), ops)
def test_matches_model(capacity: int, script: list[tuple[object, ...]]) -> None:
    sb = SendBuffer(capacity)
    model = bytearray()
    counter = 0
    held: list[tuple[memoryview, bytes]] = []
    for op in script:
        if op[0] == "write":
            n = int(op[1])  # type: ignore[call-overload]
            data = bytes((counter + i) % 251 for i in range(n)) if n < 1000 else bytes(n)
            counter += n
            took = sb.write(memoryview(data) if n % 2 else data)
            assert took == min(n, capacity - len(model))
            model += data[:took]
        elif op[0] == "ack":
            k = int(len(model) * float(op[1]))  # type: ignore[arg-type]
            sb.ack(k)
            del model[:k]
        else:
            off = int(len(model) * float(op[1]))  # type: ignore[arg-type]
            n = int((len(model) - off) * float(op[2]))  # type: ignore[arg-type]
            v = sb.view(off, n)
            assert bytes(v) == model[off:off + n]
            held.append((v, bytes(model[off:off + n])))
        assert sb.queued == len(model)
        assert sb.free == capacity - len(model)
    for v, want in held:  # earlier views survive later writes and acks unchanged
        assert bytes(v) == want
    assert bytes(sb.view(0, sb.queued)) == model


def test_view_is_zero_copy_within_a_block() -> None:
    sb = SendBuffer(1 << 20)
    data = bytearray(range(256)) * 400
    assert sb.write(data) == len(data)
    v = sb.view(1000, 1460)
    assert isinstance(v.obj, bytearray)  # a slice of the block, not a joined copy
    assert [len(b) for b in sb._blocks] == [MAX_BLOCK, len(data) - MAX_BLOCK]
    assert bytes(v) == data[1000:2460]
    across = sb.view(MAX_BLOCK - 10, 20)  # spans two blocks: one joined copy
    assert bytes(across) == data[MAX_BLOCK - 10:MAX_BLOCK + 10]


def test_small_writes_coalesce_and_memory_is_freed_when_acked() -> None:
    sb = SendBuffer(1 << 20)
    for i in range(100):
        assert sb.write(bytes([i]) * 10) == 10
    assert len(sb._blocks) == 1
    assert len(sb._blocks[0]) == MIN_BLOCK
    assert bytes(sb.view(95, 10)) == b"\x09" * 5 + b"\x0a" * 5
    sb.ack(1000)
    assert sb._blocks == []
    assert sb.queued == 0


def test_full_buffer_and_misuse() -> None:
    sb = SendBuffer(10)
    assert sb.write(b"0123456789abc") == 10
    assert sb.write(b"x") == 0
    assert sb.free == 0
    with pytest.raises(ValueError, match="view"):
        sb.view(5, 6)
    with pytest.raises(ValueError, match="ack"):
        sb.ack(11)
    sb.ack(4)
    assert sb.write(b"abcd") == 4
    assert bytes(sb.view(0, 10)) == b"456789abcd"
    assert bytes(sb.view(10, 0)) == b""


def test_whole_blocks_are_copies_of_the_data() -> None:
    """A write of whole blocks builds each from the data (one pass): a copy, full, and later writes append."""
    sb = SendBuffer(1 << 20)
    data = bytearray(range(256)) * (2 * MAX_BLOCK // 256)
    assert sb.write(memoryview(data)) == 2 * MAX_BLOCK
    assert sb.write(b"tail") == 4
    assert [len(b) for b in sb._blocks] == [MAX_BLOCK, MAX_BLOCK, MIN_BLOCK]
    v = sb.view(MAX_BLOCK + 1, 100)
    data[MAX_BLOCK + 1] ^= 0xFF  # the caller reuses its buffer: queued bytes keep what was written
    assert bytes(v) == bytes(range(1, 101))
    assert bytes(sb.view(2 * MAX_BLOCK - 2, 6)) == bytes([254, 255]) + b"tail"
