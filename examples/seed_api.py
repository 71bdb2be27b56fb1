"""The seed's Ipv4 API (MirageOS `Ipv4`) on an in-memory hub: layered input and allocate_frame + writev.

Run: python examples/seed_api.py
"""

from __future__ import annotations

import asyncio
import struct
from ipaddress import IPv4Address

from tcpip import Ethif, IpProto, Ipv4
from tcpip.netif import Hub


async def host(hub: Hub, addr: str) -> tuple[Ethif, Ipv4]:
    eth = await Ethif.connect(hub.port())
    ip = await Ipv4.connect(eth)
    await ip.set_ipv4(IPv4Address(addr))  # announces the address with a gratuitous ARP
    await ip.set_ipv4_netmask(IPv4Address("255.255.255.0"))
    return eth, ip


async def main() -> None:
    hub = Hub()
    eth_a, ip_a = await host(hub, "198.18.0.1")
    eth_b, ip_b = await host(hub, "198.18.0.2")
    got: asyncio.Queue[tuple[IPv4Address, IPv4Address, bytes]] = asyncio.Queue()

    def on_udp(src: IPv4Address, dst: IPv4Address, payload: memoryview) -> None:
        got.put_nowait((src, dst, bytes(payload)))  # the view is only valid during the call

    def ignore(src: IPv4Address, dst: IPv4Address, payload: memoryview) -> None:
        pass

    # The seed's layering on each host: device -> Ethif.input -> Ipv4.input -> tcp / udp / default.
    listeners = []
    for eth, ip in ((eth_a, ip_a), (eth_b, ip_b)):
        def on_ipv4(packet: memoryview, ip: Ipv4 = ip) -> object:
            return ip.input(packet, tcp=ignore, udp=on_udp, default=None)  # None: protocol unreachable
        listeners.append(asyncio.ensure_future(
            eth.device.listen(lambda frame, eth=eth, on_ipv4=on_ipv4: eth.input(frame, ipv4=on_ipv4))))

    # Output: allocate_frame resolves the next hop by ARP and writes the Ethernet and IPv4 headers.
    frame, header_len = await ip_a.allocate_frame(proto=IpProto.UDP, dest_ip=IPv4Address("198.18.0.2"))
    parts = [b"hello, ", b"seed ", b"API"]
    length = 8 + sum(map(len, parts))
    struct.pack_into("!HHHH", frame, header_len, 40000, 9, length, 0)  # UDP checksum 0: none
    await ip_a.writev(frame[:header_len + 8], parts)  # total length, ident, checksum filled in
    src, dst, payload = await asyncio.wait_for(got.get(), 2.0)
    print(f"B received {payload[8:]!r} from {src} to {dst} (UDP ports {struct.unpack('!HH', payload[:4])})")
    print(f"A's ARP cache: {len(eth_a.core.arp.entries)} entry; mtu towards B: {ip_a.mtu(IPv4Address('198.18.0.2'))}")
    for eth in (eth_a, eth_b):
        await eth.disconnect()
    await asyncio.gather(*listeners)  # listen() returns once its device is disconnected


if __name__ == "__main__":
    asyncio.run(main())
