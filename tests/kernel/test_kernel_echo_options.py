"""Echo replies keep the request's TOS and echo its IP options filled in, as Linux does (issue 11 item 4),
checked with the kernel's own ping(8) over the TAP: `-Q`, `-R` (Record Route), `-T tsonly`."""

from __future__ import annotations

import re

from kernel_support import KERNEL_IP, STACK_IP, Peer, ping_summary
from scapy.all import ICMP, IP, rdpcap


async def test_reply_keeps_tos(peer: Peer) -> None:
    r = await peer.run("ping", "-n", "-c", "2", "-i", "0.1", "-W", "1", "-Q", "0x10", STACK_IP)
    assert ping_summary(r.stdout)["received"] == 2, r.stdout + r.stderr
    peer.pcap.flush()
    replies = [p for p in rdpcap(str(peer.pcap_path)) if ICMP in p and p[ICMP].type == 0]
    assert [p[IP].tos for p in replies] == [0x10, 0x10]


async def test_record_route_echoed_filled_in(peer: Peer) -> None:
    r = await peer.run("ping", "-n", "-c", "1", "-W", "1", "-R", STACK_IP)
    assert ping_summary(r.stdout)["received"] == 1, r.stdout + r.stderr
    rr = re.search(r"RR:\s+(.*?)(?:\n\n|\n---)", r.stdout, re.S)
    assert rr is not None, r.stdout
    # as between two Linux hosts: the kernel, us on receive, us on reply, the kernel again
    assert rr.group(1).split() == [KERNEL_IP, STACK_IP, STACK_IP, KERNEL_IP], r.stdout


async def test_timestamp_option_echoed_filled_in(peer: Peer) -> None:
    r = await peer.run("ping", "-n", "-c", "1", "-W", "1", "-T", "tsonly", STACK_IP)
    assert ping_summary(r.stdout)["received"] == 1, r.stdout + r.stderr
    ts = re.search(r"TS:\s+(.*?)(?:\n\n|\n---)", r.stdout, re.S)
    assert ts is not None, r.stdout
    lines = [x.split() for x in ts.group(1).splitlines() if x.strip()]
    # the kernel, us on receive, us on reply, the kernel again: standard (ms since midnight UT) times, so
    # ping(8) prints the first as absolute and the others as small deltas
    assert len(lines) == 4, r.stdout
    assert lines[0][1] == "absolute", r.stdout
    assert all(len(x) == 1 and abs(int(x[0])) < 1000 for x in lines[1:]), r.stdout

