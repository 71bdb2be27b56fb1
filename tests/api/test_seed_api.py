"""The seed's Ipv4 API end to end: Ethif/Ipv4 connect, input demux, allocate_frame + write/writev."""

from __future__ import annotations

import asyncio
from ipaddress import IPv4Address

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw
from testlib import settle

from tcpip import Ethif, IpProto, Ipv4, Ipv4Error, MacAddress, UnknownError
from tcpip.netif import Hub

A_MAC = "02:00:00:00:00:0a"


async def _host(hub: Hub, addr: str) -> tuple[Ethif, Ipv4]:
    eth = await Ethif.connect(hub.port())
    ip = await Ipv4.connect(eth)
    await ip.set_ipv4(IPv4Address(addr))
    await ip.set_ipv4_netmask(IPv4Address("255.255.255.0"))
    return eth, ip


def _ipv4(src: str, dst: str, payload: object) -> bytes:
    return bytes(IP(src=src, dst=dst) / payload)  # type: ignore[operator]


async def test_connect_rejects_a_non_ethif() -> None:
    with pytest.raises(Ipv4Error):
        await Ipv4.connect(object())  # type: ignore[arg-type]
    assert issubclass(UnknownError, Ipv4Error)


async def test_input_demultiplexes_tcp_udp_and_default() -> None:
    hub = Hub()
    _eth, ip = await _host(hub, "198.18.0.2")
    got: list[tuple[str, IPv4Address, IPv4Address, bytes]] = []

    async def tcp(src: IPv4Address, dst: IPv4Address, payload: memoryview) -> None:
        got.append(("tcp", src, dst, bytes(payload)))

    def udp(src: IPv4Address, dst: IPv4Address, payload: memoryview) -> None:
        got.append(("udp", src, dst, bytes(payload)))

    def default(proto: int):  # type: ignore[no-untyped-def]
        def cb(src: IPv4Address, dst: IPv4Address, payload: memoryview) -> None:
            got.append((f"p{proto}", src, dst, bytes(payload)))
        return cb

    t = _ipv4("198.18.0.1", "198.18.0.2", TCP(sport=1, dport=2, flags="S"))
    u = _ipv4("198.18.0.1", "198.18.0.2", UDP(sport=3, dport=4) / b"data")
    await ip.input(t, tcp=tcp, udp=udp, default=default)
    await ip.input(u, tcp=tcp, udp=udp, default=default)
    await ip.input(bytes(IP(src="198.18.0.1", dst="198.18.0.2", proto=47) / b"gre!"),
                   tcp=tcp, udp=udp, default=default)
    src, dst = IPv4Address("198.18.0.1"), IPv4Address("198.18.0.2")
    assert got == [("tcp", src, dst, t[20:]), ("udp", src, dst, u[20:]), ("p47", src, dst, b"gre!")]


async def test_input_trims_padding_and_drops_bad_packets() -> None:
    hub = Hub()
    _eth, ip = await _host(hub, "198.18.0.2")
    got: list[bytes] = []

    def udp(src: IPv4Address, dst: IPv4Address, payload: memoryview) -> None:
        got.append(bytes(payload))

    pkt = _ipv4("198.18.0.1", "198.18.0.2", UDP(sport=3, dport=4) / b"x")
    await ip.input(pkt + b"\x00" * 20, tcp=udp, udp=udp, default=lambda p: udp)
    bad = bytearray(pkt)
    bad[10] ^= 0xFF
    await ip.input(bad, tcp=udp, udp=udp, default=lambda p: udp)
    await ip.input(_ipv4("198.18.0.1", "198.18.0.99", UDP()), tcp=udp, udp=udp, default=lambda p: udp)
    assert got == [bytes(UDP(sport=3, dport=4, len=9, chksum=UDP(bytes(IP(bytes(pkt)).payload)).chksum) / b"x")]
    st = ip.id.core.ip_stats
    assert (st.rx_bad_checksum, st.rx_dst_not_ours) == (1, 1)


async def test_ethif_input_handles_arp_and_passes_ipv4_and_ipv6() -> None:
    hub = Hub()
    sniff = hub.port()
    out: list[bytes] = []
    sniff.attach(lambda f: out.append(bytes(f)))
    eth, _ip = await _host(hub, "198.18.0.2")
    await settle()
    out.clear()
    v4: list[bytes] = []
    v6: list[bytes] = []
    req = Ether(src=A_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=A_MAC, psrc="198.18.0.1",
                                                            pdst="198.18.0.2")
    await eth.input(bytes(req), ipv4=lambda p: v4.append(bytes(p)), ipv6=lambda p: v6.append(bytes(p)))
    await settle(lambda: len(out) == 1)
    rep = Ether(out[0])
    assert rep[ARP].op == 2
    assert rep[ARP].psrc == "198.18.0.2"
    assert rep[ARP].hwdst == A_MAC
    assert rep.dst == A_MAC
    assert rep[ARP].hwsrc == str(eth.mac)
    ip4 = Ether(src=A_MAC, dst=str(eth.mac)) / IP(src="198.18.0.1", dst="198.18.0.2") / UDP()
    ip6 = Ether(src=A_MAC, dst=str(eth.mac), type=0x86DD) / Raw(b"\x60" + bytes(39))
    await eth.input(bytes(ip4), ipv4=lambda p: v4.append(bytes(p)), ipv6=lambda p: v6.append(bytes(p)))
    await eth.input(bytes(ip6), ipv4=lambda p: v4.append(bytes(p)), ipv6=lambda p: v6.append(bytes(p)))
    assert v4 == [bytes(ip4[IP])]
    assert v6 == [b"\x60" + bytes(39)]
    await eth.input(bytes(ip6), ipv4=lambda p: v4.append(bytes(p)))
    assert eth.core.eth_stats.rx_ipv6_no_handler == 1


async def test_seed_wiring_with_listen_answers_ping() -> None:
    """The seed's own layering: device.listen -> Ethif.input -> Ipv4.input (ICMP handled inside)."""
    hub = Hub()
    peer = hub.port(MacAddress(A_MAC))
    replies: list[bytes] = []
    peer.attach(lambda f: replies.append(bytes(f)))
    dev = hub.port()
    eth = await Ethif.connect(dev)
    ip = await Ipv4.connect(eth)
    await ip.set_ipv4("198.18.0.2")
    await ip.set_ipv4_netmask("255.255.255.0")

    async def on_ipv4(p: memoryview) -> None:
        await ip.input(p, tcp=lambda *a: None, udp=lambda *a: None, default=lambda proto: None)

    listener = asyncio.ensure_future(dev.listen(lambda f: eth.input(f, ipv4=on_ipv4)))
    await settle()
    replies.clear()
    await peer.write(bytes(Ether(src=A_MAC, dst=str(eth.mac)) / IP(src="198.18.0.1", dst="198.18.0.2")
                           / ICMP(id=7, seq=9) / b"abcdef"))
    await settle(lambda: len(replies) >= 1)  # the reply waits for our ARP request to be answered
    arp = Ether(replies[0])
    assert arp[ARP].pdst == "198.18.0.1"
    await peer.write(bytes(Ether(src=A_MAC, dst=str(eth.mac)) / ARP(op=2, hwsrc=A_MAC, psrc="198.18.0.1",
                                                                     hwdst=str(eth.mac), pdst="198.18.0.2")))
    await settle(lambda: any(ICMP in Ether(f) for f in replies))
    r = next(Ether(f) for f in replies if ICMP in Ether(f))
    assert (r[ICMP].type, r[ICMP].id, r[ICMP].seq, r[Raw].load) == (0, 7, 9, b"abcdef")
    await dev.disconnect()
    await asyncio.wait_for(listener, 1.0)


async def test_allocate_frame_then_writev_one_frame_scapy_accepts() -> None:
    hub = Hub()
    sniff = hub.port(MacAddress(A_MAC))
    seen: list[bytes] = []
    sniff.attach(lambda f: seen.append(bytes(f)))
    eth, ip = await _host(hub, "198.18.0.2")
    eth.core.arp.add_static(int(IPv4Address("198.18.0.1")), MacAddress(A_MAC).packed)
    frame, hl = await ip.allocate_frame(proto=IpProto.UDP, dest_ip=IPv4Address("198.18.0.1"))
    assert hl == 34
    assert len(frame) == 14 + ip.mtu()
    payload = [b"ab", b"c", memoryview(b"defgh")]
    frame[hl:hl + 8] = bytes(UDP(sport=5, dport=6, len=16, chksum=0))
    await ip.writev(frame[:hl + 8], payload)
    await ip.write(frame[:hl + 8], b"abcdefgh")
    await settle(lambda: len([f for f in seen if UDP in Ether(f)]) == 2)
    frames = [Ether(f) for f in seen if UDP in Ether(f)]
    for e in frames:
        assert e.dst == A_MAC
        assert e.src == str(eth.mac)
        assert e[IP].len == 36
        assert e[IP].src == "198.18.0.2"
        assert e[IP].dst == "198.18.0.1"
        assert e[IP].ttl == 64
        assert e[IP].flags == 0
        assert e[IP].proto == 17
        assert e[Raw].load == b"abcdefgh"
        c = e[IP].chksum
        del e[IP].chksum
        assert IP(bytes(e[IP]))[IP].chksum == c
    # per-destination ident counter: consecutive
    assert (frames[1][IP].id - frames[0][IP].id) & 0xFFFF == 1


async def test_pseudoheader_and_mtu_extras() -> None:
    hub = Hub()
    _eth, ip = await _host(hub, "198.18.0.2")
    ph = ip.pseudoheader(IPv4Address("198.18.0.1"), IpProto.UDP, 20)
    assert ph == IPv4Address("198.18.0.2").packed + IPv4Address("198.18.0.1").packed + b"\x00\x11\x00\x14"
    assert ip.mtu(IPv4Address("198.18.0.1")) == 1500
    with pytest.raises(UnknownError):
        await ip.set_ipv4_netmask(IPv4Address("255.0.255.0"))
