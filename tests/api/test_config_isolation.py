"""The InterfaceConfig a caller passes is never mutated: one config object can build any number of stacks."""

from __future__ import annotations

import dataclasses
import random

from tcpip import Ethif, InterfaceConfig, Stack
from tcpip.core.interface import Interface
from tcpip.netif import Hub
from tcpip.wire.mac import MacAddress


async def test_two_stacks_from_one_config_differ_in_mac_and_ping_each_other() -> None:
    hub = Hub()
    cfg = InterfaceConfig(ttl=100)
    before = dataclasses.astuple(cfg)
    async with await Stack.connect(hub.port(), ipv4="198.18.0.1/24", config=cfg) as a, \
            await Stack.connect(hub.port(), ipv4="198.18.0.2/24", gateways=["198.18.0.254"], config=cfg) as b:
        assert a.mac != b.mac
        assert a.mac == a.device.mac
        assert b.mac == b.device.mac
        assert (await a.ping("198.18.0.2", timeout=0.5))[0] is not None
        assert (await b.ping("198.18.0.1", timeout=0.5))[0] is not None
        assert [str(g) for g in a.ipv4.get_ipv4_gateways()] == []
        assert [str(g) for g in b.ipv4.get_ipv4_gateways()] == ["198.18.0.254"]
        assert a.core.config.ttl == b.core.config.ttl == 100
    assert dataclasses.astuple(cfg) == before
    assert cfg.mac is None
    assert cfg.mtu == 0
    assert cfg.gateways == []


async def test_ethif_connect_with_mac_leaves_config_alone() -> None:
    hub = Hub()
    cfg = InterfaceConfig()
    eth = await Ethif.connect(hub.port(), mac="02:00:00:00:00:09", config=cfg)
    assert str(eth.mac) == "02:00:00:00:00:09"
    assert cfg.mac is None
    await eth.disconnect()


def test_interface_copies_its_config() -> None:
    cfg = InterfaceConfig(address=0xC6120002, netmask=0xFFFFFF00)
    a = Interface(cfg, now=0.0, rng=random.Random(1))
    b = Interface(cfg, now=0.0, rng=random.Random(2))
    a.set_gateways([0xC6120001])
    a.set_mac(MacAddress("02:00:00:00:00:01").packed)
    assert cfg.mac is None
    assert cfg.mtu == 0
    assert cfg.gateways == []
    assert b.config.gateways == []
    assert a.mac != b.mac
