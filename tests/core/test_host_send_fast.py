"""Host.send's common case (a resolved neighbour, one frame): the IPv4 header it packs, byte for byte."""

from __future__ import annotations

import random

from tcpip.core.config import InterfaceConfig
from tcpip.core.host import Host
from tcpip.core.ipv4 import header_into
from tcpip.wire.checksum import checksum
from tcpip.wire.mac import MacAddress

OUR, PEER = 0xC6120002, 0xC6120001
PMAC = bytes.fromhex("020000000001")


def test_fast_path_header_matches_header_into() -> None:
    host = Host(InterfaceConfig(mac=MacAddress(bytes.fromhex("020000000002")), address=OUR, netmask=0xFFFFFF00,
                                mtu=1500), now=0.0, rng=random.Random(1))
    host.arp.add_static(PEER, PMAC)
    rng = random.Random(3)
    ident = None
    for i in range(300):
        payload = rng.randbytes(rng.randrange(26, 1481))
        src = OUR if i % 3 else rng.getrandbits(32)
        kw = {"ttl": rng.randrange(1, 256)} if i % 2 else {}
        host.send(PEER, rng.choice((1, 6, 17)), (payload,), 0.0, dont_frag=bool(i % 5), src=src, **kw)
        frame = host.poll_transmit()[-1]
        assert frame[0][:6] == PMAC
        hdr = bytes(frame[1])
        assert frame[2:] == (payload,)
        got_ident = int.from_bytes(hdr[4:6], "big")
        if ident is not None:
            assert got_ident == (ident + 1) & 0xFFFF  # one counter per destination
        ident = got_ident
        want = bytearray(20)
        header_into(want, 0, src, PEER, hdr[9], 20 + len(payload), got_ident, 0x4000 if i % 5 else 0,
                    kw.get("ttl", host.config.ttl))
        assert hdr == bytes(want)
        assert checksum(hdr) == 0
    assert host.ip_stats.tx_packets == 300
