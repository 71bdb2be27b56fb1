"""Shared pieces of the robustness tests: seed frames (built with scapy), mutators, an independent checker
for every frame the stack emits (scapy parses it; checksums recomputed with scapy's own functions), a
ping probe for a bare Interface, and a recording device wrapper.

Run as a script to (re)write the corpus: `python tests/fuzz/fuzz_support.py --write-corpus`.
"""

from __future__ import annotations

import random
import struct
import sys
from collections.abc import Callable, Sequence
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from scapy.layers.inet import (
    ICMP,
    IP,
    UDP,
    IPerror,
    IPOption_LSRR,
    IPOption_NOP,
    IPOption_RR,
    IPOption_SSRR,
    IPOption_Timestamp,
    TCPerror,
    UDPerror,
    fragment,
)
from scapy.layers.inet import TCP as ScapyTCP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Raw
from scapy.utils import checksum as scapy_checksum
from testlib import neighbours, queued, sent

from tcpip.core.config import InterfaceConfig
from tcpip.core.interface import Interface
from tcpip.core.stats import unbalanced
from tcpip.core.udp import UdpLayer
from tcpip.wire.mac import MacAddress

CORPUS = Path(__file__).parent / "corpus"
OUR_MAC = "02:00:00:00:00:02"
PEER_MAC = "02:00:00:00:00:01"
OUR_IP = "198.18.0.2"
PEER_IP = "198.18.0.1"  # also the gateway
BCAST_IP = "198.18.0.255"
PROBE_IP = "198.18.0.250"  # a host that only the ping probe uses
PROBE_MAC = "02:00:00:00:00:fa"
_ip = lambda s: int(IPv4Address(s))  # noqa: E731


def make_iface(config: InterfaceConfig | None = None, *, seed: int = 1) -> tuple[Interface, UdpLayer]:
    """A bare sans-I/O host at OUR_IP/24 (gateway PEER_IP) with UDP on top: the echo service on port 7
    (`bind_echo`) and an application echo on port 8007 (a receiver sending what it got back)."""
    cfg = config if config is not None else InterfaceConfig(mac=MacAddress(OUR_MAC))
    cfg.mac = MacAddress(OUR_MAC)
    cfg.address, cfg.netmask, cfg.gateways = _ip(OUR_IP), 0xFFFFFF00, [_ip(PEER_IP)]
    iface = Interface(cfg, now=0.0, rng=random.Random(seed))
    udp = UdpLayer(iface, random.Random(seed + 1))

    def echo(payload: memoryview | bytes, src: int, sport: int, dst: int, now: float) -> None:
        udp.send(8007, src, sport, bytes(payload), now)

    udp.bind_echo(7)
    udp.bind(8007, 0, echo)
    return iface, udp


def balanced(iface: Interface) -> list[str]:
    return unbalanced(iface.eth_stats, iface.arp.stats, iface.ip_stats)


# -- seed frames ---------------------------------------------------------------------------------
def _e(dst: str = OUR_MAC, src: str = PEER_MAC) -> Ether:
    return Ether(dst=dst, src=src)


def _ip4(**kw: Any) -> IP:
    kw.setdefault("src", PEER_IP)
    kw.setdefault("dst", OUR_IP)
    return IP(**kw)


def seed_frames() -> dict[str, bytes]:
    """Valid and interesting frames, by name: the starting points of mutation and the corpus."""
    data = bytes(range(48))
    big_udp = _ip4(id=0x4242) / UDP(sport=4000, dport=7) / (b"F" * 2400)
    frags = fragment(big_udp, fragsize=1000)
    f: dict[str, Any] = {
        # ICMP
        "icmp_echo": _e() / _ip4() / ICMP(id=7, seq=1) / data,
        "icmp_echo_odd_length": _e() / _ip4() / ICMP(id=7, seq=2) / data[:33],
        "icmp_echo_empty": _e() / _ip4() / ICMP(id=7, seq=3),
        "icmp_echo_subnet_broadcast": _e("ff:ff:ff:ff:ff:ff") / _ip4(dst=BCAST_IP) / ICMP() / data,
        "icmp_echo_limited_broadcast": _e("ff:ff:ff:ff:ff:ff") / _ip4(dst="255.255.255.255") / ICMP(),
        "icmp_echo_all_hosts": _e("01:00:5e:00:00:01") / _ip4(dst="224.0.0.1") / ICMP() / data,
        "icmp_echo_offlink_src": _e() / _ip4(src="203.0.113.9") / ICMP(id=9) / data,
        "icmp_echo_reply": _e() / _ip4() / ICMP(type=0, id=7, seq=1) / data,
        "icmp_timestamp": _e() / _ip4() / ICMP(type=13),
        "icmp_unknown_type": _e() / _ip4() / ICMP(type=42, code=7) / data,
        "icmp_port_unreach_quoting_ours": _e() / _ip4() / ICMP(type=3, code=3)
        / IPerror(src=OUR_IP, dst=PEER_IP) / UDPerror(sport=7, dport=9999),
        "icmp_frag_needed": _e() / _ip4() / ICMP(type=3, code=4, nexthopmtu=576)
        / IPerror(src=OUR_IP, dst=PEER_IP, len=1500) / UDPerror(sport=7, dport=53),
        "icmp_frag_needed_mtu0": _e() / _ip4() / ICMP(type=3, code=4, nexthopmtu=0)
        / IPerror(src=OUR_IP, dst="198.18.0.77", len=1400) / UDPerror(),
        "icmp_frag_needed_tiny_mtu": _e() / _ip4() / ICMP(type=3, code=4, nexthopmtu=8)
        / IPerror(src=OUR_IP, dst="198.18.0.78", len=1400) / UDPerror(),
        "icmp_time_exceeded_quoting_garbage": _e() / _ip4() / ICMP(type=11, code=0) / Raw(b"\x45" + bytes(30)),
        "icmp_dest_unreach_short_quote": _e() / _ip4() / ICMP(type=3, code=1) / Raw(b"\x46\x00\x00"),
        "icmp_dest_unreach_quote_ihl15": _e() / _ip4() / ICMP(type=3, code=2) / Raw(b"\x4f" + bytes(27)),
        "icmp_param_problem_quoting_tcp": _e() / _ip4() / ICMP(type=12, code=0)
        / IPerror(src=OUR_IP, dst=PEER_IP) / TCPerror(sport=80, dport=1234),
        "icmp_error_about_icmp_error": _e() / _ip4() / ICMP(type=3, code=3)
        / IPerror(src=OUR_IP, dst=PEER_IP, proto=1) / Raw(b"\x03\x03" + bytes(6)),
        # UDP
        "udp_echo": _e() / _ip4() / UDP(sport=5555, dport=7) / b"hello, echo",
        "udp_echo_zero_checksum": _e() / _ip4() / UDP(sport=5555, dport=7, chksum=0) / b"no checksum",
        "udp_no_port": _e() / _ip4() / UDP(sport=5555, dport=9) / b"nobody home",
        "udp_no_port_broadcast": _e("ff:ff:ff:ff:ff:ff") / _ip4(dst="255.255.255.255")
        / UDP(sport=68, dport=67) / bytes(40),
        "udp_length_beyond_payload": _e() / _ip4() / UDP(sport=1, dport=7, len=200) / b"short",
        "udp_length_below_header": _e() / _ip4() / UDP(sport=1, dport=7, len=4) / b"x",
        "udp_bad_checksum": _e() / _ip4() / UDP(sport=1, dport=7, chksum=0x1234) / b"bad",
        "udp_header_only": _e() / _ip4() / UDP(sport=1, dport=7),
        # IPv4 header oddities and options
        "ip_options_rr": _e() / _ip4(options=[IPOption_RR(routers=["0.0.0.0"] * 3)]) / ICMP() / data,
        "ip_options_timestamp": _e() / _ip4(options=[IPOption_Timestamp(flg=0, timestamp=[1, 2])]) / ICMP(),
        "ip_options_nop_eol": _e() / _ip4(options=[IPOption_NOP(), IPOption_NOP(), IPOption_NOP(),
                                                   IPOption_NOP()]) / UDP(sport=9, dport=7) / b"opts",
        "ip_options_lsrr": _e() / _ip4(options=[IPOption_LSRR(routers=[PEER_IP])]) / ICMP() / data,
        "ip_options_ssrr": _e() / _ip4(options=[IPOption_SSRR(routers=[PEER_IP])]) / ICMP() / data,
        "ip_options_len_one": _e() / _ip4(options=Raw(b"\x07\x01\x00\x00")) / ICMP(),
        "ip_options_len_overrun": _e() / _ip4(options=Raw(b"\x44\x28\x05\x00")) / ICMP(),
        "ip_options_full_40": _e() / _ip4(options=[IPOption_RR(routers=["0.0.0.0"] * 9)]) / ICMP() / data,
        "ip_ttl_zero": _e() / _ip4(ttl=0) / ICMP() / data,
        "ip_unknown_protocol": _e() / _ip4(proto=253) / Raw(data),
        "ip_tcp_syn": _e() / _ip4() / ScapyTCP(sport=1234, dport=80, flags="S"),
        "ip_reserved_flag": _e() / _ip4(flags="evil") / ICMP() / data,
        "ip_martian_loopback_src": _e() / _ip4(src="127.0.0.1") / ICMP() / data,
        "ip_martian_multicast_src": _e() / _ip4(src="224.0.0.9") / ICMP() / data,
        "ip_src_is_ours": _e() / _ip4(src=OUR_IP) / ICMP() / data,
        "ip_src_subnet_broadcast": _e() / _ip4(src=BCAST_IP) / UDP(sport=1, dport=9) / data,
        "ip_dst_not_ours": _e() / _ip4(dst="198.18.0.3") / ICMP() / data,
        "ip_unicast_in_l2_broadcast": _e("ff:ff:ff:ff:ff:ff") / _ip4() / ICMP() / data,
        "ip_bad_checksum": _e() / _ip4(chksum=0xBEEF) / ICMP() / data,
        "ip_total_length_beyond_frame": _e() / _ip4(len=400) / ICMP() / data,
        "ip_total_length_below_ihl": _e() / _ip4(len=12) / ICMP(),
        "ip_ihl_4": _e() / _ip4(ihl=4) / ICMP(),
        "ip_version_6_in_v4": _e() / _ip4(version=6) / ICMP(),
        "ip_with_ethernet_trailer": _e() / _ip4() / ICMP() / data / Raw(b"\xee" * 0),  # patched below
        # fragments
        "frag_first": _e() / frags[0],
        "frag_middle": _e() / frags[1],
        "frag_last": _e() / frags[2],
        "frag_tiny_first": _e() / _ip4(id=77, flags="MF") / Raw(b"\x00\x07\x00\x07\x01\x00\x00\x00"),
        "frag_bad_length_mf": _e() / _ip4(id=78, flags="MF") / Raw(b"odd"),
        "frag_ping_of_death": _e() / _ip4(id=79, frag=8189, proto=1) / Raw(bytes(100)),
        "frag_overlap_a": _e() / _ip4(id=80, flags="MF", proto=17) / Raw(bytes(24)),
        "frag_overlap_b": _e() / _ip4(id=80, frag=2, proto=17) / Raw(bytes(24)),
        "frag_with_options": _e() / _ip4(id=81, flags="MF", options=[IPOption_NOP()] * 4, proto=17)
        / Raw(bytes(16)),
        "frag_broadcast": _e("ff:ff:ff:ff:ff:ff") / _ip4(id=82, dst=BCAST_IP, flags="MF", proto=17)
        / Raw(bytes(16)),
        # ARP
        "arp_request": _e("ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=PEER_MAC, psrc=PEER_IP, pdst=OUR_IP),
        "arp_reply_unsolicited": _e() / ARP(op=2, hwsrc=PEER_MAC, psrc="198.18.0.9", hwdst=OUR_MAC,
                                            pdst=OUR_IP),
        "arp_gratuitous": _e("ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=PEER_MAC, psrc=PEER_IP, pdst=PEER_IP),
        "arp_probe": _e("ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=PEER_MAC, psrc="0.0.0.0", pdst=OUR_IP),
        "arp_conflict": _e("ff:ff:ff:ff:ff:ff") / ARP(op=2, hwsrc=PEER_MAC, psrc=OUR_IP, pdst=OUR_IP),
        "arp_from_self": _e("ff:ff:ff:ff:ff:ff", OUR_MAC) / ARP(op=1, hwsrc=OUR_MAC, psrc=OUR_IP,
                                                               pdst=PEER_IP),
        "arp_bad_hlen": _e("ff:ff:ff:ff:ff:ff") / ARP(hwlen=8, psrc=PEER_IP, pdst=OUR_IP),
        "arp_bad_ptype": _e("ff:ff:ff:ff:ff:ff") / ARP(ptype=0x86DD, psrc=PEER_IP, pdst=OUR_IP),
        "arp_bad_op": _e("ff:ff:ff:ff:ff:ff") / ARP(op=9, psrc=PEER_IP, pdst=OUR_IP),
        "arp_multicast_sender_mac": _e("ff:ff:ff:ff:ff:ff") / ARP(hwsrc="01:00:5e:00:00:01", psrc=PEER_IP,
                                                                  pdst=OUR_IP),
        "arp_broadcast_sender_ip": _e("ff:ff:ff:ff:ff:ff") / ARP(hwsrc=PEER_MAC, psrc="255.255.255.255",
                                                                 pdst=OUR_IP),
        "arp_loopback_sender_ip": _e("ff:ff:ff:ff:ff:ff") / ARP(hwsrc=PEER_MAC, psrc="127.0.0.1",
                                                                pdst=OUR_IP),
        # Ethernet oddities
        "ipv6_echo": _e("33:33:00:00:00:01") / IPv6(src="fe80::1", dst="ff02::1") / ICMPv6EchoRequest(),
        "vlan_tagged_echo": _e() / Dot1Q(vlan=5) / _ip4() / ICMP() / data,
        "eth_not_for_us": _e("02:00:00:00:00:99") / _ip4() / ICMP() / data,
        "eth_unknown_multicast": _e("01:00:5e:7f:00:01") / _ip4(dst="239.255.0.1") / UDP(dport=7) / data,
    }
    out = {k: bytes(v) for k, v in f.items()}
    out["arp_truncated"] = out["arp_request"][:30]
    out["ip_truncated_header"] = out["icmp_echo"][:14 + 15]
    out["ip_with_ethernet_trailer"] = out["icmp_echo"] + b"\xee" * 20
    out["eth_runt"] = out["icmp_echo"][:10]
    out["eth_header_only"] = out["icmp_echo"][:14]
    out["eth_oversize"] = out["icmp_echo"] + bytes(1600)
    out["eth_8023_length_field"] = out["icmp_echo"][:12] + b"\x00\x40" + out["icmp_echo"][14:]
    out["empty"] = b""
    return out


# -- checksums (scapy's implementation, independent of tcpip.wire.checksum) ------------------------
def _pseudo(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    return src + dst + struct.pack("!BBH", 0, proto, length)


def fix_checksums(frame: bytearray) -> None:
    """Make the IPv4 header checksum, and the ICMP or UDP checksum of an unfragmented datagram,
    valid again after a mutation (so the mutation reaches the layers behind the checks)."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00":
        return
    ihl = (frame[14] & 15) * 4
    if ihl < 20 or 14 + ihl > len(frame):
        return
    frame[24:26] = b"\x00\x00"
    frame[24:26] = struct.pack("!H", scapy_checksum(bytes(frame[14:14 + ihl])))
    total = min(struct.unpack_from("!H", frame, 16)[0], len(frame) - 14)
    if struct.unpack_from("!H", frame, 20)[0] & 0x3FFF or total <= ihl:
        return
    l4 = 14 + ihl
    proto = frame[23]
    if proto == 1 and total - ihl >= 4:
        frame[l4 + 2:l4 + 4] = b"\x00\x00"
        frame[l4 + 2:l4 + 4] = struct.pack("!H", scapy_checksum(bytes(frame[l4:14 + total])))
    elif proto == 17 and total - ihl >= 8:
        frame[l4 + 6:l4 + 8] = b"\x00\x00"
        seg = bytes(frame[l4:14 + total])
        c = scapy_checksum(_pseudo(bytes(frame[26:30]), bytes(frame[30:34]), 17, len(seg)) + seg) or 0xFFFF
        frame[l4 + 6:l4 + 8] = struct.pack("!H", c)


# -- mutation ----------------------------------------------------------------------------------------
_INTERESTING8 = (0, 1, 0x7F, 0x80, 0xFF, 0x45, 0x46, 0x4F, 0x20, 0x40, 8, 3, 11)
_INTERESTING16 = (0, 1, 0x7FFF, 0x8000, 0xFFFF, 0x2000, 0x1FFF, 0x3FFF, 20, 28, 576, 1500, 65535 - 20)


def mutate(rng: random.Random, frame: bytes, others: Sequence[bytes] = ()) -> bytes:
    """1-4 random mutations (bit flips, interesting bytes and 16-bit fields, truncation, extension,
    splicing with another frame); half the time the checksums are made valid again afterwards."""
    b = bytearray(frame)
    for _ in range(rng.randrange(1, 5)):
        op = rng.randrange(8)
        n = len(b)
        if op == 0 and n:
            i = rng.randrange(n * 8)
            b[i >> 3] ^= 1 << (i & 7)
        elif op == 1 and n:
            b[rng.randrange(n)] = rng.choice(_INTERESTING8)
        elif op == 2 and n >= 2:
            i = rng.randrange(n - 1)
            b[i:i + 2] = struct.pack("!H", rng.choice(_INTERESTING16))
        elif op == 3 and n:
            b[rng.randrange(n)] = rng.randrange(256)
        elif op == 4:
            del b[rng.randrange(n + 1):]
        elif op == 5:
            b += rng.randbytes(rng.randrange(1, 64))
        elif op == 6 and others:
            o = rng.choice(others)
            cut = rng.randrange(min(n, len(o)) + 1)
            b = b[:cut] + bytearray(o[cut:])
        elif op == 7 and n >= 34:  # header fields the fast path looks at, at random
            b[14 + rng.choice((0, 1, 6, 7, 8, 9))] = rng.randrange(256)
    if rng.random() < 0.5:
        fix_checksums(b)
    return bytes(b)


def load_corpus() -> dict[str, bytes]:
    """Every frame in tests/fuzz/corpus: one frame per file (`*.hex`, hex with optional whitespace),
    or several, one per line, in `*.hexl` files."""
    out: dict[str, bytes] = {}
    for p in sorted(CORPUS.glob("*.hex")):
        out[p.stem] = bytes.fromhex("".join(p.read_text().split()))
    for p in sorted(CORPUS.glob("*.hexl")):
        for i, line in enumerate(p.read_text().splitlines()):
            if line.strip() and not line.startswith("#"):
                out[f"{p.stem}:{i}"] = bytes.fromhex(line.strip())
    return out


def write_corpus() -> None:
    CORPUS.mkdir(exist_ok=True)
    for name, frame in seed_frames().items():
        (CORPUS / f"{name}.hex").write_text(frame.hex() + "\n")
    rng = random.Random(2024)
    seeds = list(seed_frames().values())
    lines = ["# mutated seeds (random.Random(2024)), one frame per line"]
    lines += [mutate(rng, rng.choice(seeds), seeds).hex() for _ in range(300)]
    (CORPUS / "mutated.hexl").write_text("\n".join(lines) + "\n")


# -- the oracle for what the stack emits ----------------------------------------------------------------
ICMP_ERRORS = {3, 4, 5, 11, 12}


def check_emitted(frame: bytes, our_mac: str = OUR_MAC, our_ip: str = OUR_IP) -> None:
    """Raise AssertionError unless `frame` is a well-formed frame a host may send: scapy parses it, the
    IPv4 header checksum and (unfragmented) ICMP/UDP checksums recompute to the values sent, and ICMP
    errors follow RFC 1122 (never about an ICMP error, never to a broadcast/multicast address)."""
    assert 60 <= len(frame) <= 1514, f"frame of {len(frame)} bytes"
    p = Ether(frame)
    assert p.src == our_mac, p.summary()
    if p.type == 0x0806:
        a = p[ARP]
        assert (a.hwtype, a.ptype, a.hwlen, a.plen) == (1, 0x0800, 6, 4), a.summary()
        assert a.op in (1, 2), a.summary()
        assert (a.hwsrc, a.psrc) == (our_mac, our_ip), a.summary()
        return
    assert p.type == 0x0800, f"ethertype {p.type:#x}"
    raw = frame[14:]
    ihl = (raw[0] & 15) * 4
    # the only options we send are Record Route / Timestamp echoed in echo and timestamp replies
    assert raw[0] == 0x45 or (raw[9] == 1 and raw[(raw[0] & 15) * 4] in (0, 14)), "IPv4 options"
    total = struct.unpack_from("!H", raw, 2)[0]
    assert 20 <= total <= len(raw), f"total length {total}, {len(raw)} bytes"
    ip = p[IP]
    assert ip.src == our_ip, ip.summary()
    hdr = bytearray(raw[:ihl])
    sent = struct.unpack_from("!H", hdr, 10)[0]
    hdr[10:12] = b"\x00\x00"
    assert _same_checksum(scapy_checksum(bytes(hdr)), sent), "bad IPv4 header checksum"
    ff = struct.unpack_from("!H", raw, 6)[0]
    if ff & 0x3FFF:  # a fragment: the transport checksum covers the whole datagram
        return
    l4 = bytearray(raw[ihl:total])
    if ip.proto == 1:
        assert len(l4) >= 8
        sent = struct.unpack_from("!H", l4, 2)[0]
        l4[2:4] = b"\x00\x00"
        assert _same_checksum(scapy_checksum(bytes(l4)), sent), "bad ICMP checksum"
        t = l4[0]
        assert t in (0, 3, 8, 11, 12, 14), f"ICMP type {t}"
        if t in ICMP_ERRORS:
            dst = int(IPv4Address(ip.dst))
            assert dst >> 28 < 0xE, f"error to {ip.dst}"
            assert dst >> 24 not in (0, 127), f"error to {ip.dst}"
            assert ip.dst != BCAST_IP, f"error to {ip.dst}"
            q = l4[8:]
            qhl = (q[0] & 15) * 4
            assert len(q) == qhl + 8 or len(q) <= 576, "quote: the header and 8 bytes"
            if q[9] == 1 and len(q) > qhl:
                assert q[qhl] not in ICMP_ERRORS, "an ICMP error about an ICMP error"
    elif ip.proto == 17:
        assert len(l4) >= 8
        sent = struct.unpack_from("!H", l4, 6)[0]
        assert sent != 0, "we always send UDP checksums"
        l4[6:8] = b"\x00\x00"
        c = scapy_checksum(_pseudo(raw[12:16], raw[16:20], 17, len(l4)) + bytes(l4)) or 0xFFFF
        assert c == sent, "bad UDP checksum"
        assert struct.unpack_from("!H", l4, 4)[0] == len(l4)


def _same_checksum(computed: int, sent: int) -> bool:
    """Equal, or 0xFFFF sent for a computed 0: the other ones'-complement zero, which verifies as well
    (and is the only valid form when everything else summed is zero)."""
    return sent == computed or (computed == 0 and sent == 0xFFFF)


# -- does it still answer a ping? ---------------------------------------------------------------------
def ping_answered(iface: Interface, now: float, seq: int = 1) -> bool:
    """A new host (PROBE_IP) asks our MAC and pings us: True if an echo reply with its data comes back.
    The data is small so that even a path MTU lowered to 68 by fuzzed input needs no fragments."""
    sent(iface)
    arp = Ether(dst="ff:ff:ff:ff:ff:ff", src=PROBE_MAC) / ARP(op=1, hwsrc=PROBE_MAC, psrc=PROBE_IP,
                                                              pdst=OUR_IP)
    iface.receive(memoryview(bytes(arp)), now)
    data = b"still alive?" + bytes([seq & 0xFF]) * 20
    req = Ether(dst=OUR_MAC, src=PROBE_MAC) / IP(src=PROBE_IP, dst=OUR_IP) / ICMP(id=0xABC, seq=seq) / data
    iface.receive(memoryview(bytes(req)), now)
    ok = False
    for f in sent(iface):
        check_emitted(f)
        p = Ether(f)
        if ICMP in p and p[ICMP].type == 0 and p[IP].dst == PROBE_IP and p[ICMP].seq == seq:
            ok = bytes(p[ICMP].payload)[:len(data)] == data and p.dst == PROBE_MAC
    return ok


# -- a device wrapper that records what reaches the stack ------------------------------------------------
class Recorder:
    """Device middleware: records every frame delivered upwards (`rx`) and sent (`tx`), then passes it on."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.rx: list[bytes] = []
        self.tx: list[bytes] = []
        self._deliver: Callable[[memoryview], None] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @property
    def mac(self) -> MacAddress:
        return self.inner.mac  # type: ignore[no-any-return]

    @property
    def mtu(self) -> int:
        return self.inner.mtu  # type: ignore[no-any-return]

    @property
    def closed(self) -> bool:
        return self.inner.closed  # type: ignore[no-any-return]

    def transmit(self, parts: Sequence[bytes | bytearray | memoryview]) -> None:
        self.tx.append(b"".join(bytes(p) for p in parts))
        self.inner.transmit(parts)

    def attach(self, deliver: Callable[[memoryview], None] | None) -> None:
        self._deliver = deliver
        self.inner.attach(None if deliver is None else self._rx)

    def _rx(self, frame: memoryview) -> None:
        self.rx.append(bytes(frame))
        if self._deliver is not None:
            self._deliver(frame)


if __name__ == "__main__":
    if sys.argv[1:] == ["--write-corpus"]:
        write_corpus()
        print(f"wrote {len(list(CORPUS.iterdir()))} files to {CORPUS}")
    else:
        print(__doc__)


# -- floods: cheap frames from many sources -----------------------------------------------------------------
def _fast_ip_checksum(h: bytes | bytearray) -> int:
    s = int.from_bytes(h, "big") % 0xFFFF  # the 16-bit ones'-complement sum, folded (header is never all zero)
    return ~s & 0xFFFF if s else 0


class FloodGen:
    """Frames for floods, ~2 us each: scapy-built templates with the source address (and ident, quoted
    destination...) patched, so that every table that grows with peers is pushed to its cap:
    ARP requests from many senders (ARP cache), echo requests from many sources (ident table), UDP to a
    closed port (ICMP rate table), Fragmentation Needed quoting many destinations (PMTU table), unfinished
    fragment sets (reassembly memory), plus mutated seeds and random bytes."""

    KINDS = ("arp", "echo", "udp_closed", "frag_needed", "fragment", "mutated", "random")

    def __init__(self, rng: random.Random, weights: Sequence[int] = (2, 2, 2, 2, 2, 3, 1)) -> None:
        self.rng = rng
        s = seed_frames()
        self.seeds = list(s.values())
        self.arp = bytearray(s["arp_request"])
        self.echo = bytearray(s["icmp_echo"])
        self.udp = bytearray(s["udp_no_port"])
        self.udp[40:42] = b"\x00\x00"  # no UDP checksum: the source address may change freely
        self.fneed = bytearray(s["icmp_frag_needed"])
        self.frag = bytearray(s["frag_first"])
        self.kinds = [k for k, w in zip(self.KINDS, weights, strict=True) for _ in range(w)]
        self.mutated = [mutate(rng, rng.choice(self.seeds), self.seeds) for _ in range(4096)]

    def _src(self) -> bytes:
        r = self.rng.getrandbits(32)
        if self.rng.random() < 0.25:  # on-link (our /24) a quarter of the time: ARP for the reply
            r = 0xC6120000 | (r & 0xFF)
            if r & 0xFF in (1, 2, 3, 250):  # never impersonate the test's own hosts (ARP would believe it)
                r ^= 0x80
        elif (r >> 24) in (0, 127) or r >> 28 >= 0xE:
            r = 0x0A000000 | (r & 0xFFFFFF)
        return r.to_bytes(4, "big")

    def _ip(self, t: bytearray) -> bytes:
        t[26:30] = self._src()
        t[24:26] = b"\x00\x00"
        t[24:26] = _fast_ip_checksum(t[14:34]).to_bytes(2, "big")
        return bytes(t)

    def next(self) -> bytes:
        kind = self.rng.choice(self.kinds)
        if kind == "arp":
            t = self.arp
            src = self._src()
            t[6:12] = t[22:28] = b"\x02" + self.rng.randbytes(5)
            t[28:32] = src
            return bytes(t)
        if kind == "echo":
            return self._ip(self.echo)
        if kind == "udp_closed":
            return self._ip(self.udp)
        if kind == "frag_needed":
            t = self.fneed
            t[58:62] = (0x0B000000 | self.rng.getrandbits(24)).to_bytes(4, "big")  # a PMTU entry each
            t[52:54] = b"\x00\x00"
            t[52:54] = _fast_ip_checksum(t[42:62]).to_bytes(2, "big")
            t[36:38] = b"\x00\x00"
            s = int.from_bytes(t[34:], "big") % 0xFFFF if len(t[34:]) % 2 == 0 else 0
            t[36:38] = (~s & 0xFFFF or 0xFFFF).to_bytes(2, "big")
            return self._ip(t)
        if kind == "fragment":
            t = self.frag
            t[18:20] = self.rng.getrandbits(16).to_bytes(2, "big")
            return self._ip(t)
        if kind == "mutated":
            return self.rng.choice(self.mutated)
        return self.rng.randbytes(self.rng.randrange(0, 200))


def table_sizes(iface: Interface) -> dict[str, int]:
    """Every table of the core that grows with peers or input, with its size now."""
    r = iface.reassembler
    return {
        "arp_entries": len(neighbours(iface)),
        "arp_pending": len(iface.arp.pending),
        "arp_queue_max": max((len(e.queue or ()) for e in neighbours(iface).values()), default=0),
        "reassembly_memory": r.memory if r is not None else 0,
        "reassembly_datagrams": len(r) if r is not None else 0,
        "reassembly_quotes": len(r._quotes) if r is not None else 0,
        "icmp_rate_table": len(iface.icmp_limiter),
        "ident_table": len(iface.idents),
        "pmtu_table": len(iface.pmtu),
        "tx": queued(iface),
        "loopback": len(iface.loopback),
    }


def table_caps(iface: Interface) -> dict[str, int]:
    c = iface.config
    rc = c.reassembly
    return {
        "arp_entries": c.arp_cache_size,
        "arp_pending": c.arp_cache_size,
        "arp_queue_max": c.arp_queue_len,
        "reassembly_memory": rc.max_memory,
        "reassembly_datagrams": rc.max_datagrams,
        "reassembly_quotes": rc.max_datagrams,
        "icmp_rate_table": c.icmp_rate_table_size,
        "ident_table": c.ident_table_size,
        "pmtu_table": c.pmtu_table_size,
        "tx": 1,  # drained after every frame by the flood loop
        "loopback": 1,
    }


def over_caps(iface: Interface) -> list[str]:
    caps = table_caps(iface)
    return [f"{k}: {v} > {caps[k]}" for k, v in table_sizes(iface).items() if v > caps[k]]
