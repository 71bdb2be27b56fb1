"""SendBuffer keeps large immutable writes by reference and copies everything else (the caller may reuse it)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcpip.core.tcp.sndbuf import MAX_BLOCK, MIN_BLOCK, SendBuffer

KINDS = ("bytes", "bytes_view", "bytes_slice", "bytearray", "bytearray_view", "readonly_bytearray_view")


def _make(kind: str, payload: bytes) -> tuple[bytes | bytearray | memoryview, bytearray | None]:
    """`payload` as the application might write it, and the mutable object behind it (if any)."""
    if kind == "bytes":
        return payload, None
    if kind == "bytes_view":
        return memoryview(payload), None
    if kind == "bytes_slice":  # a view into the middle of a larger bytes
        return memoryview(b"<<" + payload + b">>")[2:2 + len(payload)], None
    ba = bytearray(payload)
    if kind == "bytearray":
        return ba, ba
    if kind == "bytearray_view":
        return memoryview(ba), ba
    return memoryview(ba).toreadonly(), ba  # read-only, but the bytearray under it can still change


ops = st.lists(st.one_of(
    st.tuples(st.just("write"), st.sampled_from(KINDS), st.sampled_from([0, 1, 50, MIN_BLOCK - 1, MIN_BLOCK,
                                                                          5000, MAX_BLOCK, MAX_BLOCK + 7])),
    st.tuples(st.just("ack"), st.floats(0, 1)),
    st.tuples(st.just("view"), st.floats(0, 1), st.floats(0, 1)),
    st.tuples(st.just("parts"), st.floats(0, 1), st.floats(0, 1)),
    st.tuples(st.just("views"), st.floats(0, 1), st.integers(1, 3000), st.integers(0, 5)),
), max_size=30)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 400_000), ops)
def test_mixed_writes_match_a_bytes_model(capacity: int, script: list[tuple[object, ...]]) -> None:
    sb = SendBuffer(capacity)
    model = bytearray()
    counter = 0
    mutables: list[bytearray] = []
    held: list[tuple[memoryview, bytes]] = []
    for op in script:
        if op[0] == "write":
            kind, n = str(op[1]), int(op[2])  # type: ignore[call-overload]
            payload = bytes((counter + i) * 7 % 251 for i in range(n))
            counter += n
            data, mutable = _make(kind, payload)
            took = sb.write(data)
            assert took == min(n, capacity - len(model))
            model += payload[:took]
            if mutable is not None:
                mutables.append(mutable)
        elif op[0] == "ack":
            k = int(len(model) * float(op[1]))  # type: ignore[arg-type]
            sb.ack(k)
            del model[:k]
        elif op[0] in ("view", "parts"):
            off = int(len(model) * float(op[1]))  # type: ignore[arg-type]
            n = int((len(model) - off) * float(op[2]))  # type: ignore[arg-type]
            want = bytes(model[off:off + n])
            if op[0] == "view":
                v = sb.view(off, n)
                assert bytes(v) == want
                held.append((v, want))
            else:
                parts = sb.view_parts(off, n)
                assert b"".join(parts) == want
                assert all(len(p) for p in parts)
                held.extend((p, bytes(p)) for p in parts)
        else:
            size, count = int(op[2]), int(op[3])  # type: ignore[call-overload]
            off = int(len(model) * float(op[1]))  # type: ignore[arg-type]
            count = min(count, (len(model) - off) // size)
            vs = sb.views(off, size, count)
            assert [bytes(v) for v in vs] == [bytes(model[off + i * size:off + (i + 1) * size])
                                              for i in range(count)]
        for m in mutables:  # the application reuses its buffers: nothing queued may change
            m[:] = bytes(len(m)) if m[:1] != b"\0" else b"\xff" * len(m)
        assert sb.queued == len(model)
    for v, want in held:  # views handed out survive later writes, acks and the caller's mutations
        assert bytes(v) == want
    assert bytes(sb.view(0, sb.queued)) == model


def test_large_bytes_are_kept_by_reference_and_views_slice_them() -> None:
    sb = SendBuffer(1 << 20)
    data = bytes(range(256)) * (MAX_BLOCK // 256)
    assert sb.write(data) == MAX_BLOCK
    assert sb._blocks[0] is data  # no copy
    v = sb.view(100, 1448)
    assert v.obj is data
    assert bytes(v) == data[100:1548]
    view = memoryview(data)[1000:1000 + 5000]
    assert sb.write(view) == 5000
    assert sb.view(MAX_BLOCK, 10).obj is data  # a view of the caller's bytes, not a copy of it
    assert bytes(sb.view(MAX_BLOCK, 5000)) == data[1000:6000]


def test_a_partly_filled_block_is_sealed_before_a_reference() -> None:
    sb = SendBuffer(1 << 20)
    assert sb.write(b"head") == 4  # copied into a fresh block of MIN_BLOCK bytes
    first = sb.view(0, 4)
    big = bytes([7]) * MIN_BLOCK
    assert sb.write(big) == MIN_BLOCK
    assert [len(b) for b in sb._blocks] == [4, MIN_BLOCK]  # sealed: the filled part only
    assert sb.write(b"tail") == 4  # a new copied block: the referenced one is never written into
    assert [len(b) for b in sb._blocks] == [4, MIN_BLOCK, MIN_BLOCK]
    assert bytes(sb.view(0, 8)) == b"head" + bytes([7]) * 4
    assert b"".join(sb.view_parts(2, MIN_BLOCK + 4)) == b"ad" + big + b"ta"
    assert bytes(first) == b"head"
    sb.ack(4 + MIN_BLOCK)
    assert len(sb._blocks) == 1
    assert bytes(sb.view(0, 4)) == b"tail"


def test_mutating_a_written_bytearray_does_not_change_what_is_sent() -> None:
    sb = SendBuffer(1 << 20)
    buf = bytearray(b"a" * MAX_BLOCK)
    assert sb.write(buf) == MAX_BLOCK
    ro = memoryview(buf).toreadonly()  # read-only, yet its bytearray is the caller's to change
    assert sb.write(ro) == MAX_BLOCK
    buf[:] = b"b" * MAX_BLOCK
    assert all(type(b) is bytearray for b in sb._blocks)
    assert bytes(sb.view(0, 2 * MAX_BLOCK)) == b"a" * (2 * MAX_BLOCK)


def test_small_bytes_are_copied_so_they_coalesce() -> None:
    sb = SendBuffer(1 << 20)
    for _ in range(10):
        assert sb.write(bytes(MIN_BLOCK - 1)) == MIN_BLOCK - 1
    assert all(type(b) is bytearray for b in sb._blocks)
    assert sb.queued == 10 * (MIN_BLOCK - 1)


def test_a_strided_view_of_bytes_is_copied_not_referenced() -> None:
    b = bytes(range(256)) * 64
    sb = SendBuffer(1 << 20)
    assert sb.write(memoryview(b)[::2]) == len(b) // 2
    assert bytes(sb.view(0, sb.queued)) == b[::2]
    assert all(p.contiguous for p in sb.view_parts(0, sb.queued))


def test_view_parts_is_locate_then_parts() -> None:
    """The one-pass view_parts gives the slices _locate + _parts give, and leaves the hint at the block of the
    view's last byte (where the next view of a forward run starts) with that block's true start."""
    big = bytes(range(256)) * 256
    a, b = SendBuffer(1 << 20), SendBuffer(1 << 20)
    for sb in (a, b):
        sb.write(b"x" * 100)
        for _ in range(4):
            sb.write(big)
        sb.write(bytearray(b"tail" * 3000))
        sb.ack(50)
    q = a.queued
    for off, n in [(0, 1), (0, q), (60000, 65536), (65486, 50), (65486, 51), (200000, 70000), (10, 5), (q - 1, 1)]:
        got = a.view_parts(off, n)
        i, pos = b._locate(off, n)
        want = b._parts(i, pos, n)
        assert [bytes(p) for p in got] == [bytes(p) for p in want]
        i, base = a._hint
        last = a._head + off + n - 1  # the view's last byte, counted from the first block's start
        assert base == sum(len(blk) for blk in a._blocks[:i])
        assert base <= last < base + len(a._blocks[i])
    assert a.view_parts(q, 0) == []
    with pytest.raises(ValueError, match="outside"):
        a.view_parts(q - 1, 2)
