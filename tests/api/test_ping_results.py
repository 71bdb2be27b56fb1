"""Stack.ping says why a probe failed (issue 11 item 1): per-probe PingResult with rtt, ttl, error and who
reported it, still usable as the plain list of round-trip times."""

from __future__ import annotations

from scapy.all import ICMP, IP, Ether

from tcpip import InterfaceConfig, Stack
from tcpip.netif import Hub
from tcpip.ping import PingResult, PingResults

GW = "198.18.0.254"
GW_MAC = "02:00:00:00:00:fe"


async def test_reply_carries_rtt_and_ttl_and_stays_a_list() -> None:
    hub = Hub()
    async with await Stack.connect(hub.port(), ipv4="198.18.0.1/24") as a, \
            await Stack.connect(hub.port(), ipv4="198.18.0.2/24", config=InterfaceConfig(ttl=77)):
        r = await a.ping("198.18.0.2", count=2, timeout=1.0)
        assert isinstance(r, PingResults)
        assert isinstance(r, list)
        assert all(isinstance(x, float) for x in r)  # the simple rtt list, as before
        assert [(p.seq, p.ttl, p.error) for p in r.probes] == [(0, 77, None), (1, 77, None)]
        assert [p.rtt for p in r.probes] == list(r)


async def test_arp_failure_is_destination_host_unreachable_from_us() -> None:
    cfg = InterfaceConfig(arp_tries=1, arp_interval=0.05)
    async with await Stack.connect(Hub().port(), ipv4="198.18.0.1/24", config=cfg) as a:
        r = await a.ping("198.18.0.9", timeout=2.0)
        assert r == [None]
        assert r.probes == [PingResult(0, error="Destination Host Unreachable", error_from="198.18.0.1")]


async def test_no_route_is_network_unreachable() -> None:
    async with await Stack.connect(Hub().port(), ipv4="198.18.0.1/24") as a:
        r = await a.ping("10.9.9.9", timeout=0.5)
        assert r.probes[0].error == "Network is unreachable"


async def test_router_icmp_error_matched_to_the_probe() -> None:
    hub = Hub()
    router = hub.port()
    async with await Stack.connect(hub.port(), ipv4="198.18.0.1/24", gateways=[GW]) as a:
        a.core.arp.add_static(int.from_bytes(bytes([198, 18, 0, 254]), "big"), bytes.fromhex("0200000000fe"))

        def answer(frame: memoryview) -> None:
            p = Ether(bytes(frame))
            if ICMP in p and p[ICMP].type == 8 and p[IP].dst == "10.9.9.9":
                err = (Ether(dst=str(a.mac), src=GW_MAC) / IP(src=GW, dst="198.18.0.1")
                       / ICMP(type=3, code=1) / bytes(p[IP])[:28])
                router.transmit((bytes(err),))

        router.attach(answer)
        r = await a.ping("10.9.9.9", count=2, timeout=1.0)
        assert r == [None, None]
        assert r.probes == [PingResult(0, error="Destination Host Unreachable", error_from=GW),
                            PingResult(1, error="Destination Host Unreachable", error_from=GW)]
