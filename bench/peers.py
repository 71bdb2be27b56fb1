"""The peers (bench extra): dpkt, pypacker, impacket and scapy doing the same receive and transmit work.

Receive: parse the frame, check the ethertype, read the IPv4 fields, verify the header checksum with the
library's own checksum routine, and hand the transport payload to the callback of its protocol.
(They only dispatch an ICMP echo; they do not answer it as tcpip and the floor do.)
Transmit: build Ethernet/IPv4/UDP bytes with both checksums, the way each library's users do.
A peer whose library is missing is skipped.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

from bench.frames import DPORT, OUR_IP_B, OUR_IP_S, OUR_MAC, PEER_IP_B, PEER_IP_S, PEER_MAC, SPORT

Callback = Callable[[Any], Any]
Handlers = dict[int, Callback]
RxFactory = Callable[[bytes, Handlers], Callable[[], object]]
TxFactory = Callable[[bytes], Callable[[], bytes]]

PEERS = ("dpkt", "pypacker", "impacket", "scapy")


def available(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


# -- dpkt ----------------------------------------------------------------------------------------
def dpkt_rx(frame: bytes, handlers: Handlers) -> Callable[[], object]:
    import dpkt

    ethernet = dpkt.ethernet.Ethernet
    in_cksum = dpkt.in_cksum

    def step() -> None:
        eth = ethernet(frame)
        if eth.type != 0x0800:
            return
        ip = eth.data
        if ip.v != 4 or in_cksum(frame[14:14 + ip.hl * 4]):
            return
        h = handlers.get(ip.p)
        if h is not None:
            h(ip.data)

    return step


def dpkt_tx(payload: bytes) -> Callable[[], bytes]:
    import dpkt

    eth_c, ip_c, udp_c = dpkt.ethernet.Ethernet, dpkt.ip.IP, dpkt.udp.UDP
    ident = 0

    def step() -> bytes:
        nonlocal ident
        ident = (ident + 1) & 0xFFFF
        u = udp_c(sport=DPORT, dport=SPORT, ulen=8 + len(payload), data=payload)
        ip = ip_c(src=OUR_IP_B, dst=PEER_IP_B, p=17, ttl=64, id=ident, data=u)
        return bytes(eth_c(dst=PEER_MAC, src=OUR_MAC, type=0x0800, data=ip))

    return step


# -- pypacker ------------------------------------------------------------------------------------
def pypacker_rx(frame: bytes, handlers: Handlers) -> Callable[[], object]:
    from pypacker.checksum import in_cksum
    from pypacker.layer12 import ethernet

    eth_c = ethernet.Ethernet

    def step() -> None:
        eth = eth_c(frame)
        if eth.type != 0x0800:
            return
        ip = eth.higher_layer
        if ip is None or ip.v != 4 or in_cksum(frame[14:14 + ip.hl * 4]):
            return
        h = handlers.get(ip.p)
        if h is not None:
            h(ip.higher_layer)

    return step


def pypacker_tx(payload: bytes) -> Callable[[], bytes]:
    from pypacker.layer3 import ip as pip
    from pypacker.layer4 import udp as pudp
    from pypacker.layer12 import ethernet

    ident = 0

    def step() -> bytes:
        nonlocal ident
        ident = (ident + 1) & 0xFFFF
        pkt = (ethernet.Ethernet(dst=PEER_MAC, src=OUR_MAC, type=0x0800)
               + pip.IP(src=OUR_IP_B, dst=PEER_IP_B, p=17, ttl=64, id=ident)
               + pudp.UDP(sport=DPORT, dport=SPORT, body_bytes=payload))
        return pkt.bin()  # type: ignore[no-any-return]

    return step


# -- impacket ------------------------------------------------------------------------------------
def impacket_rx(frame: bytes, handlers: Handlers) -> Callable[[], object]:
    from impacket import ImpactDecoder

    decoder = ImpactDecoder.EthDecoder()

    def step() -> None:
        eth = decoder.decode(frame)
        if eth.get_ether_type() != 0x0800:
            return
        ip = eth.child()
        hl = ip.get_ip_hl() * 4
        if ip.get_ip_v() != 4 or ip.compute_checksum(frame[14:14 + hl]):
            return
        h = handlers.get(ip.get_ip_p())
        if h is not None:
            h(ip.child())

    return step


def impacket_tx(payload: bytes) -> Callable[[], bytes]:
    from impacket import ImpactPacket

    src_mac, dst_mac = list(OUR_MAC), list(PEER_MAC)
    ident = 0

    def step() -> bytes:
        nonlocal ident
        ident = (ident + 1) & 0xFFFF
        u = ImpactPacket.UDP()
        u.set_uh_sport(DPORT)
        u.set_uh_dport(SPORT)
        u.contains(ImpactPacket.Data(payload))
        ip = ImpactPacket.IP()
        ip.set_ip_src(OUR_IP_S)
        ip.set_ip_dst(PEER_IP_S)
        ip.set_ip_id(ident)
        ip.set_ip_ttl(64)
        ip.contains(u)
        eth = ImpactPacket.Ethernet()
        eth.set_ether_shost(src_mac)
        eth.set_ether_dhost(dst_mac)
        eth.contains(ip)
        return bytes(eth.get_packet())

    return step


# -- scapy ---------------------------------------------------------------------------------------
def scapy_rx(frame: bytes, handlers: Handlers) -> Callable[[], object]:
    import scapy.layers.inet  # noqa: F401  (binds IPv4 and its transports to Ether)
    from scapy.layers.l2 import Ether
    from scapy.utils import checksum

    def step() -> None:
        eth = Ether(frame)
        if eth.type != 0x0800:
            return
        ip = eth.payload
        if ip.version != 4 or checksum(frame[14:14 + ip.ihl * 4]):
            return
        h = handlers.get(ip.proto)
        if h is not None:
            h(ip.payload)

    return step


def scapy_tx(payload: bytes) -> Callable[[], bytes]:
    from scapy.compat import raw
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw

    src_mac = ":".join(f"{b:02x}" for b in OUR_MAC)
    dst_mac = ":".join(f"{b:02x}" for b in PEER_MAC)
    ident = 0

    def step() -> bytes:
        nonlocal ident
        ident = (ident + 1) & 0xFFFF
        return raw(Ether(dst=dst_mac, src=src_mac) / IP(src=OUR_IP_S, dst=PEER_IP_S, id=ident, ttl=64)
                   / UDP(sport=DPORT, dport=SPORT) / Raw(payload))

    return step


RX: dict[str, RxFactory] = {"dpkt": dpkt_rx, "pypacker": pypacker_rx, "impacket": impacket_rx, "scapy": scapy_rx}
TX: dict[str, TxFactory] = {"dpkt": dpkt_tx, "pypacker": pypacker_tx, "impacket": impacket_tx, "scapy": scapy_tx}
