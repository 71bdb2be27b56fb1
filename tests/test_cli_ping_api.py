"""`tcpip ping`'s flags through the Stack API and the CLI session, on an in-memory hub (no privileges):
Stack.ping's ttl/tos/dont_frag/pattern/allow_broadcast keywords checked in the frames on the wire, and the
session's timing rules (probes every -i whatever is outstanding, flood paced by replies, stop at once)."""

from __future__ import annotations

import argparse
import asyncio
import io
from collections.abc import Callable

import pytest

from tcpip import InterfaceConfig, Stack, cli, cli_ping
from tcpip.netif import Hub

A, B, GHOST = "198.18.0.1", "198.18.0.2", "198.18.0.7"
GHOST_MAC = bytes.fromhex("0200000000aa")


def echo_requests(frames: list[bytes]) -> list[bytes]:
    """The IPv4 datagrams (Ethernet header and padding off) of the ICMP echo requests among `frames`."""
    return [f[14:14 + int.from_bytes(f[16:18], "big")] for f in frames
            if f[12:14] == b"\x08\x00" and f[23] == 1 and f[14 + (f[14] & 15) * 4] == 8]


def sniff(hub: Hub) -> list[bytes]:
    frames: list[bytes] = []
    hub.port().attach(lambda f: frames.append(bytes(f)))
    return frames


async def test_ttl_tos_df_and_pattern_are_on_the_wire() -> None:
    hub = Hub()
    frames = sniff(hub)
    async with await Stack.connect(hub.port(), ipv4=f"{A}/24") as a, \
            await Stack.connect(hub.port(), ipv4=f"{B}/24"):
        r = await a.ping(B, count=2, size=11, ttl=3, tos=0x2E, dont_frag=True, pattern=b"\xab\xcd")
        assert all(p.ok and p.src == B for p in r.probes)
        plain = await a.ping(B, size=4)
        assert plain.probes[0].ok
    reqs = echo_requests(frames)
    assert len(reqs) == 3
    for ip in reqs[:2]:
        assert (ip[8], ip[1], ip[6] & 0x40) == (3, 0x2E, 0x40)  # TTL, TOS, DF
        assert ip[28:] == b"\xab\xcd" * 5 + b"\xab"
    ip = reqs[2]  # the defaults: TTL 64, TOS 0, DF clear, bytes counting up from the sequence number
    assert (ip[8], ip[1], ip[6] & 0x40, ip[28:]) == (64, 0, 0, bytes([0, 1, 2, 3]))


async def test_df_and_too_big_is_a_local_error_and_nothing_is_sent() -> None:
    hub = Hub()
    frames = sniff(hub)
    async with await Stack.connect(hub.port(), ipv4=f"{A}/24") as a, \
            await Stack.connect(hub.port(), ipv4=f"{B}/24"):
        r = await a.ping(B, size=2000, dont_frag=True)
        assert r.probes[0].error == "local error: message too long, mtu=1500"
        assert r.probes[0].error_from == A
        assert echo_requests(frames) == []
        assert (await a.ping(B, size=2000)).probes[0].ok  # DF clear: fragmented and answered


@pytest.mark.parametrize("dst", ["198.18.0.255", "255.255.255.255"])
async def test_broadcast_needs_allow_broadcast(dst: str) -> None:
    hub = Hub()
    frames = sniff(hub)
    cfg = InterfaceConfig(icmp_echo_ignore_broadcasts=False)
    async with await Stack.connect(hub.port(), ipv4=f"{A}/24") as a, \
            await Stack.connect(hub.port(), ipv4=f"{B}/24", config=cfg):
        with pytest.raises(PermissionError, match="allow_broadcast"):
            await a.ping(dst)
        assert echo_requests(frames) == []
        r = await a.ping(dst, allow_broadcast=True)
        assert (r.probes[0].ok, r.probes[0].src) == (True, B)
    assert [ip[16:20] for ip in echo_requests(frames)] == [bytes(map(int, dst.split(".")))]


@pytest.mark.parametrize(("kw", "message"), [({"ttl": 0}, "ttl 0"), ({"tos": 256}, "tos 256"),
                                             ({"pattern": b""}, "empty pattern"), ({"size": 65508}, "size")])
async def test_bad_probe_options_raise_value_error(kw: dict[str, object], message: str) -> None:
    async with await Stack.connect(Hub().port(), ipv4=f"{A}/24") as a:
        with pytest.raises(ValueError, match=message):
            await a.ping(B, **kw)  # type: ignore[arg-type]


# -- the CLI session (cli_ping.run) on a hub -------------------------------------------------------
def ping_args(*flags: str, dest: str = B) -> argparse.Namespace:
    return cli.build_parser().parse_args(["ping", dest, "--tap", "unused", "--ipv4", f"{A}/24", *flags])


async def wait_until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    async def poll() -> None:
        while not cond():
            await asyncio.sleep(0.005)
    await asyncio.wait_for(poll(), timeout)


async def test_probes_go_out_every_interval_while_earlier_ones_wait() -> None:
    """Nobody answers (a static ARP entry for a silent address) and -W is 60 s: the three probes still go
    out -i apart, and stopping (SIGINT) ends the run at once with the summary, status 1."""
    hub = Hub()
    frames = sniff(hub)
    out = io.StringIO()
    async with await Stack.connect(hub.port(), ipv4=f"{A}/24") as a:
        a.core.arp.add_static(int.from_bytes(bytes(map(int, GHOST.split("."))), "big"), GHOST_MAC)
        stop = asyncio.Event()
        run = asyncio.ensure_future(cli_ping.run(a, ping_args("-c", "3", "-i", "0.01", "-W", "60", dest=GHOST),
                                                 stop, out, io.StringIO()))
        await wait_until(lambda: len(echo_requests(frames)) == 3)
        assert not run.done()  # all three outstanding at once
        stop.set()
        assert await asyncio.wait_for(run, 5) == 1
    assert [int.from_bytes(ip[26:28], "big") for ip in echo_requests(frames)] == [1, 2, 3]  # icmp_seq
    assert "3 packets transmitted, 0 received, 100% packet loss" in out.getvalue()


async def test_flood_sends_the_next_probe_when_the_reply_is_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the flood timer set to an hour, -f -c 20 can only finish if each reply releases the next probe."""
    monkeypatch.setattr(cli_ping, "FLOOD_GAP", 3600.0)
    hub = Hub()
    frames = sniff(hub)
    out = io.StringIO()
    async with await Stack.connect(hub.port(), ipv4=f"{A}/24") as a, \
            await Stack.connect(hub.port(), ipv4=f"{B}/24"):
        rc = await asyncio.wait_for(cli_ping.run(a, ping_args("-f", "-c", "20"), asyncio.Event(), out,
                                                 io.StringIO()), 20)
    assert rc == 0
    text = out.getvalue()
    body = text.split("bytes of data.\n", 1)[1].split("\n--- ", 1)[0]
    assert body == ".\b \b" * 20  # one dot per probe, deleted by its reply, one probe at a time
    assert "20 packets transmitted, 20 received, 0% packet loss" in text
    assert "ipg/ewma " in text
    assert len(echo_requests(frames)) == 20


async def test_reply_and_error_lines_like_ping() -> None:
    hub = Hub()
    out, err = io.StringIO(), io.StringIO()
    cfg = InterfaceConfig(arp_tries=1, arp_interval=0.05)
    async with await Stack.connect(hub.port(), ipv4=f"{A}/24", config=cfg) as a, \
            await Stack.connect(hub.port(), ipv4=f"{B}/24", config=InterfaceConfig(ttl=77)):
        assert await cli_ping.run(a, ping_args("-c", "2", "-i", "0.01", "-s", "20"), asyncio.Event(), out, err) == 0
        text = out.getvalue()
        assert text.startswith(f"PING {B} ({B}) 20(48) bytes of data.\n")
        lines = [ln for ln in text.splitlines() if "bytes from" in ln]
        assert [ln.split(" time=")[0] for ln in lines] == [f"28 bytes from {B}: icmp_seq={i} ttl=77" for i in (1, 2)]
        out = io.StringIO()
        assert await cli_ping.run(a, ping_args("-c", "1", "-W", "2", dest="198.18.0.9"), asyncio.Event(), out, err) == 1
        assert f"From {A} icmp_seq=1 Destination Host Unreachable\n" in out.getvalue()
        assert "1 packets transmitted, 0 received, +1 errors, 100% packet loss" in out.getvalue()
    assert err.getvalue() == ""


def test_rtt_printed_with_pings_precision() -> None:
    assert [cli_ping.ms(s) for s in (0.0000456, 0.0012345, 0.012345, 0.12345)] == ["0.046", "1.23", "12.3", "123"]


async def test_stop_during_the_name_lookup_ends_at_once() -> None:
    """The DNS server never answers: stopping (SIGINT) ends the run at once, status 130, no summary."""
    hub = Hub()
    frames = sniff(hub)
    out = io.StringIO()
    async with await Stack.connect(hub.port(), ipv4=f"{A}/24", dns=[GHOST]) as a:
        a.core.arp.add_static(int.from_bytes(bytes(map(int, GHOST.split("."))), "big"), GHOST_MAC)
        stop = asyncio.Event()
        run = asyncio.ensure_future(cli_ping.run(a, ping_args(dest="host.test"), stop, out, io.StringIO()))
        await wait_until(lambda: any(f[12:14] == b"\x08\x00" and f[36:38] == b"\x00\x35" for f in frames))
        assert not run.done()
        stop.set()
        assert await asyncio.wait_for(run, 5) == cli_ping.STOPPED
    assert out.getvalue() == ""
