"""tso.push's per-connection super-frame template (offload.GsoTemplate) against offload.send_gso per frame:
the same bulk send through a Host in offload mode with the template and without it gives the same frames
byte for byte, the same counters and connection state; a changed Path (new neighbour MAC), a known path MTU
and a changed TTL are seen at once."""

from __future__ import annotations

import struct
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import callgrind_tcp_paths as paths  # noqa: E402 - needs the checkout's root on the path
from bench.callgrind_tcp_offload import _AckMaker  # noqa: E402
from tcpip.core import offload  # noqa: E402
from tcpip.core.tcp import tso  # noqa: E402
from tcpip.wire import virtio  # noqa: E402

WRITE = 1 << 16


def _run(steps: int, change: Any = None) -> tuple[list[bytes], dict[str, Any], list[Any]]:
    """An established offload connection sends 64 KiB writes, the peer ACKing all sent after each one (once
    in a while only part of it: the scoreboard then keeps records);
    `change(host, step)` may alter the host between steps. (frames, counters, connection fields per step)."""
    host, layer, conn, _una, _ = paths.established(offload=True)
    make = _AckMaker()
    make.t[48:50] = b"\xff\xff"
    data = bytes(range(256)) * (WRITE // 256)
    frames: list[bytes] = []
    states: list[Any] = []
    now, tsv = 1.0, 10
    for step in range(steps):
        if change is not None:
            change(host, step)
        sent = 0
        while sent < WRITE:
            sent += conn.send(data if not sent else memoryview(data)[sent:], now)
            tsv += 1
            host.receive(make(conn.snd_max if step % 3 else conn.snd_una + 3000, tsv), now)
            now += 0.001
        # a super-frame starts with its virtio header; any other frame gets a zero one here (as the TAP's)
        frames += [b"".join(bytes(p) for p in (f if type(f[0]) is virtio.VnetHeader else (virtio.ZERO, *f)))
                   for f in host.tx]
        host.tx.clear()
        assert conn.rec is not None
        sb = conn.rec.sb
        states.append((conn.snd_una, conn.snd_max, conn.snd_nxt, conn.rexmit_at, conn.loss_at, conn.cc.cwnd,
                       conn.rtt_seq, conn.rtt_time, conn.buf_seq, conn.sndbuf.queued, conn.timer_at, conn.last_ack_sent,
                       [(r.start, r.end, r.xmit, r.flags) for r in sb.segs],
                       [(r.start, r.end) for r in sb.tsorder], sb.fack, sb.d_end, sb.d_xmit))
    counters = {"tcp": vars(layer.stats).copy() if hasattr(layer.stats, "__dict__") else repr(layer.stats),
                "ip": repr(host.ip_stats), "eth": repr(host.eth_stats)}
    return frames, counters, states


def _both(monkeypatch: pytest.MonkeyPatch, steps: int, change: Any = None) -> tuple[list[bytes], list[bytes]]:
    fast = _run(steps, change)
    with monkeypatch.context() as m:
        m.setattr(tso, "gso_template", lambda *a: None)  # send_gso per frame, as before the template
        slow = _run(steps, change)
    assert len(fast[0]) == len(slow[0])
    for i, (f, s) in enumerate(zip(fast[0], slow[0], strict=True)):
        assert f == s, f"frame {i} differs"
    assert fast[1] == slow[1]
    assert fast[2] == slow[2]
    return fast[0], slow[0]


def _supers(frames: list[bytes]) -> list[bytes]:
    return [f for f in frames if f[:10] != virtio.ZERO]


def test_template_frames_identical(monkeypatch: pytest.MonkeyPatch) -> None:
    frames, _ = _both(monkeypatch, 8)
    sup = _supers(frames)
    assert len(sup) >= 8  # the template path was taken: super-frames of the bulk send
    for f in sup:  # a whole frame: IPv4 header checksum right, total length matching
        ip = f[24:44]
        assert struct.unpack("!H", ip[2:4])[0] == len(f) - 24
        s = sum(struct.unpack("!10H", ip))
        assert (s & 0xFFFF) + (s >> 16) == 0xFFFF


def test_template_built_once_and_used(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[Any] = []
    real = offload.gso_template

    def spy(*a: Any) -> Any:
        built.append(real(*a))
        return built[-1]

    monkeypatch.setattr(tso, "gso_template", spy)
    frames, _c, _s = _run(6)
    assert len(built) == 1
    assert isinstance(built[0], offload.GsoTemplate)
    assert len(_supers(frames)) >= 6


def _new_mac(host: Any, step: int) -> None:
    if step == 3:  # the neighbour's MAC changes: routing.path() hands out a new Path
        host.arp.add_static(paths.PEER, b"\x02\x00\x00\x00\x00\x77")


def test_path_change_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    frames, _ = _both(monkeypatch, 6, _new_mac)
    macs = {f[10:16] for f in _supers(frames)}
    assert macs == {paths.PMAC, b"\x02\x00\x00\x00\x00\x77"}


def _pmtu(host: Any, step: int) -> None:
    if step == 2:
        host.routing.update_pmtu(paths.PEER, 1400, 1500, 1.0)


def test_pmtu_falls_back_to_segments(monkeypatch: pytest.MonkeyPatch) -> None:
    frames, _ = _both(monkeypatch, 4, _pmtu)
    assert any(len(f) - 10 <= 14 + 1400 and f[:10] == virtio.ZERO for f in frames)  # cut by send_gso


def _ttl(host: Any, step: int) -> None:
    if step == 2:
        host.config.ttl = 17


def test_ttl_change_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    frames, _ = _both(monkeypatch, 4, _ttl)
    assert {f[10 + 22] for f in _supers(frames)} == {64, 17}
