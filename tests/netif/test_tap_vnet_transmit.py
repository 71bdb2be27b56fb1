"""TapDevice offload mode's `_transmit_vnet`: the bytes written and the counters, super-frame and plain."""

from __future__ import annotations

import os
import socket

import pytest

from tcpip.errors import MessageTooLongError
from tcpip.netif.device import BaseDevice, DeviceStats
from tcpip.netif.tap_vnet import VnetIO
from tcpip.wire import virtio
from tcpip.wire.mac import MacAddress


class _Dev(BaseDevice, VnetIO):
    def __init__(self, fd: int) -> None:
        BaseDevice.__init__(self, MacAddress(b"\x02\x00\x00\x00\x00\x01"), 1500)
        self.offload = True
        self.fd = fd
        self.name = "t0"
        self._maxframe = 1514
        self.stats = DeviceStats()


def test_super_frame_and_plain_frame_counters() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        dev = _Dev(os.dup(a.fileno()))
        vh = virtio.tcp_gso_header(14, 20, 32, 1448)
        eth, ip, tcp, payload = b"E" * 14, b"I" * 20, b"T" * 32, b"p" * (3 * 1448 + 5)
        dev._transmit_vnet((vh, eth, ip, tcp, payload))
        assert b.recv(1 << 17) == bytes(vh) + eth + ip + tcp + payload
        st = dev.stats
        assert (st.tx_frames, st.tx_gso_frames, st.tx_gso_segments) == (1, 1, 4)
        assert st.tx_bytes == 14 + 20 + 32 + 3 * 1448 + 5
        dev._transmit_vnet((eth, ip, b"x" * 30))
        assert b.recv(4096) == virtio.ZERO + eth + ip + b"x" * 30
        assert (st.tx_frames, st.tx_gso_frames, st.tx_gso_segments) == (2, 1, 4)
        with pytest.raises(MessageTooLongError):
            dev._transmit_vnet((vh, b"z" * (virtio.MAX_GSO_FRAME + 1)))
        with pytest.raises(MessageTooLongError):
            dev._transmit_vnet((b"z" * 1515,))
        assert st.tx_oversize == 2
        assert st.tx_frames == 2
        # one, two and three parts (each sized its own way): at the limit sent whole, one byte over refused
        for parts in ((b"a" * 1514,), (b"a" * 14, b"b" * 1500), (b"a" * 14, b"b" * 20, b"c" * 1480)):
            dev._transmit_vnet(parts)
            assert b.recv(4096) == virtio.ZERO + b"".join(parts)
            with pytest.raises(MessageTooLongError):
                dev._transmit_vnet((*parts[:-1], parts[-1] + b"!"))
        assert st.tx_oversize == 5
        assert st.tx_frames == 5
        assert st.tx_bytes == 14 + 20 + 32 + 3 * 1448 + 5 + 14 + 20 + 30 + 3 * 1514
        os.close(dev.fd)
    finally:
        a.close()
        b.close()
