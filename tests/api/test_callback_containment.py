"""An application callback that raises never takes the host off the network (issue 11 item 10): the seed
API's Ipv4.input/Ethif.input callbacks, `device.listen` and UDP endpoint protocols contain it and count it."""

from __future__ import annotations

import asyncio
import logging
from ipaddress import IPv4Address

import pytest
from testlib import Recorder, settle

from tcpip import Ethif, Ipv4, Stack
from tcpip.netif import Hub


class Boom(Exception):
    pass


def boom(*_args: object) -> None:
    raise Boom("application bug")


async def test_seed_callbacks_that_raise_do_not_end_listen(caplog: pytest.LogCaptureFixture) -> None:
    hub = Hub()
    eth = await Ethif.connect(hub.port())
    ip = await Ipv4.connect(eth)
    await ip.set_ipv4(IPv4Address("198.18.0.2"))
    await ip.set_ipv4_netmask(IPv4Address("255.255.255.0"))
    listen = asyncio.create_task(eth.device.listen(
        lambda f: eth.input(f, ipv4=lambda p: ip.input(p, tcp=boom, udp=boom, default=boom))))
    async with await Stack.connect(hub.port(), ipv4="198.18.0.1/24") as peer:
        transport, _ = await peer.create_datagram_endpoint(Recorder, remote_addr=("198.18.0.2", 9))
        with caplog.at_level(logging.ERROR, logger="tcpip"):
            for _ in range(5):
                transport.sendto(b"crash me")
            await settle(lambda: eth.core.ip_stats.rx_callback_errors == 5)
            rtts = await peer.ping("198.18.0.2", count=2, interval=0.01, timeout=1.0)
        assert all(r is not None for r in rtts)  # still answering
        assert not listen.done()
        # logged once for the burst, not once per datagram
        assert sum("Ipv4.input callback raised" in r.getMessage() for r in caplog.records) == 1
        transport.close()
    listen.cancel()


async def test_ethif_callback_and_listen_callback_contained() -> None:
    hub = Hub()
    eth = await Ethif.connect(hub.port())
    ip = await Ipv4.connect(eth)
    await ip.set_ipv4(IPv4Address("198.18.0.2"))
    listen = asyncio.create_task(eth.device.listen(lambda f: eth.input(f, ipv4=boom)))
    async with await Stack.connect(hub.port(), ipv4="198.18.0.1/24") as peer:
        transport, _ = await peer.create_datagram_endpoint(Recorder, remote_addr=("198.18.0.2", 9))
        transport.sendto(b"x")
        await settle(lambda: eth.core.eth_stats.rx_callback_errors >= 1)
        transport.close()
    assert not listen.done()
    listen.cancel()
    hub2 = Hub()
    port = hub2.port()
    task = asyncio.create_task(port.listen(boom))
    async with await Stack.connect(hub2.port(), ipv4="198.18.0.1/24") as peer:
        await peer.ping("198.18.0.9", count=1, timeout=0.05)  # its ARP requests reach the port
        await settle(lambda: port.stats.rx_callback_errors >= 1)
    assert not task.done()
    task.cancel()


async def test_udp_protocol_callback_errors_counted() -> None:
    hub = Hub()
    async with await Stack.connect(hub.port(), ipv4="198.18.0.1/24") as a, \
            await Stack.connect(hub.port(), ipv4="198.18.0.2/24") as b:
        class Bad(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                raise Boom(data.decode())

        await b.create_datagram_endpoint(Bad, local_addr=("198.18.0.2", 9))
        t, _ = await a.create_datagram_endpoint(Recorder, remote_addr=("198.18.0.2", 9))
        t.sendto(b"1")
        t.sendto(b"2")
        await settle(lambda: b.stats()["udp"]["rx_callback_errors"] == 2)
        t.close()
