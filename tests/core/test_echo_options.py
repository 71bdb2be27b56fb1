"""Echo and timestamp replies like Linux (issue 11 item 4): TOS kept, Record Route and Timestamp options
echoed filled in (ip_options_echo), timestamp requests answered (13 -> 14, switchable), ICMP errors quoting
as much of the datagram as fits in 576 bytes."""

from __future__ import annotations

import pytest
import testlib
from scapy.all import ICMP, IP, UDP, Ether, IPOption_RR, IPOption_Timestamp
from testlib import sent

from tcpip.core.interface import Interface
from tcpip.core.ipopts import echo_options

OUR_MAC = "02:00:00:00:00:02"
PEER_MAC = "02:00:00:00:00:01"
OUR_IP = "198.18.0.2"
PEER_IP = "198.18.0.1"


def make(**config: object) -> Interface:
    iface = testlib.make_iface(mac=OUR_MAC, address=OUR_IP, static={PEER_IP: PEER_MAC}, **config)
    iface.icmp.utc_ms = lambda: 12345678
    return iface


def exchange(iface: Interface, ip: IP, payload: object, now: float = 1.0) -> list[Ether]:
    iface.receive(memoryview(bytes(Ether(dst=OUR_MAC, src=PEER_MAC) / ip / payload)), now)  # type: ignore[operator]
    return [Ether(f) for f in sent(iface)]


@pytest.mark.parametrize("tos", [0x10, 0xB8, 0x02])
def test_echo_reply_keeps_tos(tos: int) -> None:
    [reply] = exchange(make(), IP(src=PEER_IP, dst=OUR_IP, tos=tos), ICMP(id=1, seq=2) / b"abcd")
    assert (reply[IP].tos, reply[ICMP].type, bytes(reply[IP])[28:reply[IP].len]) == (tos, 0, b"abcd")
    assert reply[IP].chksum == IP(bytes(reply[IP])).chksum  # scapy recomputes nothing: it parsed ours


def test_echo_reply_fills_record_route_twice() -> None:
    req = IP(src=PEER_IP, dst=OUR_IP, options=[IPOption_RR(routers=[PEER_IP, "0.0.0.0", "0.0.0.0",
                                                                      "0.0.0.0"], pointer=8)])
    [reply] = exchange(make(), req, ICMP(id=1, seq=1))
    rr = reply[IP].options[0]
    assert (rr.option, rr.pointer) == (7, 16)
    assert rr.routers[:3] == [PEER_IP, OUR_IP, OUR_IP]


def test_echo_reply_fills_timestamps() -> None:
    opt = IPOption_Timestamp(flg=0, pointer=9, timestamp=0, internet_address="0.0.0.0")  # scapy: one slot
    raw = bytes(opt)
    # a tsonly option with 4 slots, the first filled by the sender
    opts = bytes([0x44, 20, 9, 0]) + (1000).to_bytes(4, "big") + bytes(12)
    assert raw[0] == 0x44
    req = IP(src=PEER_IP, dst=OUR_IP, options=opts)
    [reply] = exchange(make(), req, ICMP(id=1, seq=1))
    out = bytes(reply[IP])[20:40]
    assert out[:4] == bytes([0x44, 20, 17, 0])
    assert [int.from_bytes(out[i:i + 4], "big") for i in (4, 8, 12, 16)] == [1000, 12345678, 12345678, 0]


def test_option_helper_rules() -> None:
    a = int.from_bytes(bytes([198, 18, 0, 2]), "big")
    full_rr = bytes([7, 7, 8, 1, 2, 3, 4, 0])  # no room: echoed as is
    assert echo_options(full_rr, a, 5) == full_rr
    assert echo_options(bytes([7, 7, 5, 0, 0, 0, 0, 0]), a, 5) is None  # pointer not on a slot boundary
    full_ts = bytes([0x44, 8, 9, 0x10, 0, 0, 0, 1])  # full: the overflow count goes up once
    assert echo_options(full_ts, a, 5) == bytes([0x44, 8, 9, 0x20, 0, 0, 0, 1])
    assert echo_options(bytes([0x44, 8, 9, 0xF0, 0, 0, 0, 1]), a, 5) is None  # overflow overflows
    assert echo_options(bytes([0x94, 4, 0, 0]), a, 5) == b""  # router alert is not echoed


def test_timestamp_request_answered_and_switchable() -> None:
    req = ICMP(type=13, id=7, seq=9, ts_ori=4242, ts_rx=0, ts_tx=0)
    [reply] = exchange(make(), IP(src=PEER_IP, dst=OUR_IP, tos=0x10), req)
    r = reply[ICMP]
    assert (r.type, r.code, r.id, r.seq, r.ts_ori, r.ts_rx, r.ts_tx) == (14, 0, 7, 9, 4242, 12345678, 12345678)
    assert reply[IP].tos == 0x10
    assert r.chksum == ICMP(bytes(r)).chksum
    off = make(icmp_timestamps=False)
    assert exchange(off, IP(src=PEER_IP, dst=OUR_IP), req) == []
    assert off.icmp_stats.rx_timestamp_ignored == 1


def test_errors_quote_up_to_576_bytes() -> None:
    iface = make()
    dgram = IP(src=PEER_IP, dst=OUR_IP) / UDP(sport=5, dport=9) / (b"q" * 1000)
    [err] = exchange(iface, dgram, b"")
    assert err[ICMP].type == 3
    assert len(err[IP]) == 576
    assert bytes(err[IP])[28:] == bytes(dgram)[:548]
    [short] = exchange(iface, IP(src=PEER_IP, dst=OUR_IP) / UDP(sport=5, dport=9) / b"hi", b"", now=3.0)
    assert short[IP].len == 28 + 30  # the whole datagram
