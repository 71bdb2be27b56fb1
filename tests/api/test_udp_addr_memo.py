"""sendto's address parsing and the formatting of a received datagram's source are memoized (they ran per
datagram): the same answers as before, an address parsed once however many datagrams go to it, a bad
address reported on every send (errors are never cached), the source tuple the same string each time."""

from __future__ import annotations

import asyncio
import errno
from typing import Any

import pytest

from tcpip import Stack
from tcpip.aio import udp as aio_udp
from tcpip.netif.hub import Hub


class Rec(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.got: list[tuple[bytes, Any]] = []
        self.errors: list[Exception] = []

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.got.append((data, addr))

    def error_received(self, exc: Exception) -> None:
        self.errors.append(exc)


async def test_memoized_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    hub = Hub()
    a = await Stack.connect(hub.port(), ipv4="198.18.0.1/24")
    b = await Stack.connect(hub.port(), ipv4="198.18.0.2/24")
    ta, pa = await a.create_datagram_endpoint(Rec, local_addr=("198.18.0.1", 0))
    tb, pb = await b.create_datagram_endpoint(Rec, local_addr=("198.18.0.2", 5000))
    aio_udp._ip_of.cache_clear()
    made = []
    real = aio_udp.IPv4Address

    def counting(x: Any) -> Any:
        made.append(x)
        return real(x)

    monkeypatch.setattr(aio_udp, "IPv4Address", counting)
    for i in range(30):
        ta.sendto(b"d%d" % i, ("198.18.0.2", 5000))
    ta.sendto(b"bad", ("198.18.0.300", 5000))
    ta.sendto(b"bad", ("198.18.0.300", 5000))
    for _ in range(50):
        await asyncio.sleep(0)
        if len(pb.got) == 30:
            break
    assert made == ["198.18.0.2", "198.18.0.300", "198.18.0.300"]  # parsed once; the error every time
    assert [e.errno for e in pa.errors] == [errno.EINVAL, errno.EINVAL]
    port = ta.get_extra_info("sockname")[1]
    assert pb.got == [(b"d%d" % i, ("198.18.0.1", port)) for i in range(30)]
    ta.close()
    tb.close()
    await a.disconnect()
    await b.disconnect()
