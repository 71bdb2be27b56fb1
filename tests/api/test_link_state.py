"""The stack's link-state hooks without a kernel: ARP conflicts logged once per other MAC, link events
(lost, back, MTU) handled by StackLink, the SIGUSR1 dump's tables."""

from __future__ import annotations

import asyncio
import logging
import struct
import sys
from ipaddress import IPv4Address

import pytest

from tcpip import Stack
from tcpip.netif import Hub
from tcpip.netif.taplink import LinkEvent, LinkListener
from tcpip.up import arp_lines, dump_state, pmtu_lines


def _announcement(mac: str, ip: str) -> bytes:
    sha = bytes.fromhex(mac.replace(":", ""))
    spa = IPv4Address(ip).packed
    return b"\xff" * 6 + sha + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + sha + spa + bytes(6) + spa


async def test_conflict_logged_once_per_other_mac(caplog: pytest.LogCaptureFixture) -> None:
    hub = Hub()
    other = hub.port()
    with caplog.at_level(logging.WARNING, logger="tcpip"):
        async with await Stack.connect(hub.port(), ipv4="198.18.0.2/24", mac="02:00:00:00:00:02") as a:
            for mac in ("02:00:00:00:00:0b", "02:00:00:00:00:0b", "02:00:00:00:00:0c", "02:00:00:00:00:0b"):
                other.transmit((_announcement(mac, "198.18.0.2"),))  # within one defend interval (10 s)
                await asyncio.sleep(0.01)
            assert a.stats()["arp"]["conflicts"] == 4
            assert a.stats()["arp"]["conflicts_defended"] == 1
    lines = [r.getMessage() for r in caplog.records if "address conflict" in r.getMessage()]
    assert len(lines) == 2, lines
    assert "198.18.0.2 is also claimed by 02:00:00:00:00:0b" in lines[0]
    assert "198.18.0.2 is also claimed by 02:00:00:00:00:0c" in lines[1]


class FakeLink:
    """A device wrapper that reports link events as a TAP does."""

    def __init__(self, inner: object) -> None:
        self.device = inner
        self.listeners: list[LinkListener] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self.device, name)

    def add_link_listener(self, cb: LinkListener) -> None:
        self.listeners.append(cb)

    def remove_link_listener(self, cb: LinkListener) -> None:
        self.listeners.remove(cb)

    def kernel_stats(self) -> dict[str, int]:
        return {"kernel_tx_dropped": 7, "kernel_rx_dropped": 0, "kernel_txqueuelen": 1000}

    def emit(self, kind: str, mtu: int = 1500) -> None:
        for cb in list(self.listeners):
            cb(LinkEvent(kind, kind, mtu))


async def test_stack_follows_link_events() -> None:
    hub = Hub()
    link = FakeLink(hub.port())
    async with await Stack.connect(hub.port(), ipv4="198.18.0.1/24") as peer, \
            await Stack.connect(link, ipv4="198.18.0.2/24") as s:  # type: ignore[arg-type]
        seen: list[str] = []
        s.link.add_listener(lambda ev: seen.append(ev.kind))
        assert (await s.ping(peer.address, timeout=1.0))[0] is not None
        assert int(peer.address) in s.core.arp.entries
        assert s.stats()["device"]["kernel_tx_dropped"] == 7
        link.emit("lost")
        assert s.link.lost.is_set()
        assert int(peer.address) not in s.core.arp.entries  # a re-created interface has another MAC
        sent = s.stats()["arp"].get("announcements_sent", 0)
        link.emit("back")
        await asyncio.sleep(0.01)
        assert not s.link.lost.is_set()
        assert s.stats()["arp"]["announcements_sent"] == sent + 1
        link.emit("mtu", 1280)
        assert s.ethif.mtu == 1280
        assert s.ipv4.mtu(peer.address) == 1280
        assert seen == ["lost", "back", "mtu"]


async def test_dump_lists_arp_and_pmtu(capsys: pytest.CaptureFixture[str]) -> None:
    hub = Hub()
    async with await Stack.connect(hub.port(), ipv4="198.18.0.1/24", mac="02:00:00:00:00:01") as peer, \
            await Stack.connect(hub.port(), ipv4="198.18.0.2/24") as s:
        assert (await s.ping(peer.address, timeout=1.0))[0] is not None
        s.core.routing.update_pmtu(int(peer.address), 1000, 1500, s.runner.now())
        arp = arp_lines(s)
        assert len(arp) == 1
        assert arp[0].split()[:3] == ["198.18.0.1", "02:00:00:00:00:01", "REACHABLE"]
        assert pmtu_lines(s)[0].split()[:3] == ["198.18.0.1", "mtu", "1000"]
        dump_state(s, "hub0", sys.stderr)
        err = capsys.readouterr().err
        assert "ARP cache (1 entries)" in err
        assert "path MTU (1 entries)" in err
        assert "icmp" in err
