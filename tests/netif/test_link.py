"""The netlink RTM_NEWLINK parser of tcpip.netif.link, on a message built here (no kernel needed)."""

from __future__ import annotations

import struct

from tcpip.netif.link import LinkInfo, _parse_link


def _attr(kind: int, value: bytes) -> bytes:
    a = struct.pack("=HH", 4 + len(value), kind) + value
    return a + b"\0" * (-len(a) % 4)


def _newlink(attrs: bytes, index: int = 7) -> bytes:
    body = struct.pack("=BxHiII", 0, 1, index, 0x1043, 0) + attrs
    return struct.pack("=IHHII", 16 + len(body), 16, 0, 1, 0) + body


def test_parse_mtu_txqueuelen_and_drops() -> None:
    stats = struct.pack("=24Q", 10, 20, 1000, 2000, 1, 2, 3, 13414, *range(16))
    msg = _newlink(_attr(3, b"tap0\0") + _attr(4, struct.pack("=I", 1400)) + _attr(13, struct.pack("=I", 4096))
                   + _attr(0x8000 | 26, b"\0" * 8) + _attr(23, stats))  # a nested attribute is skipped
    assert _parse_link(memoryview(msg)) == LinkInfo(index=7, mtu=1400, txqueuelen=4096, rx_packets=10,
                                                    tx_packets=20, rx_dropped=3, tx_dropped=13414)


def test_parse_without_stats_and_with_a_bad_attribute_length() -> None:
    msg = _newlink(_attr(4, struct.pack("=I", 9000)) + struct.pack("=HH", 2, 99) + _attr(23, b"\0" * 200))
    info = _parse_link(memoryview(msg))
    assert (info.mtu, info.tx_dropped, info.txqueuelen) == (9000, 0, 0)  # stops at the broken attribute
