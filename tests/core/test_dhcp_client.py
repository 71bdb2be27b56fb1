"""DHCP client state machine on virtual time: the full exchange, renew/rebind/expiry, INIT-REBOOT, NAK, DECLINE,
RELEASE, the retransmission schedule, and hostile replies counted and ignored."""

from __future__ import annotations

import random
from dataclasses import replace
from ipaddress import IPv4Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcpip.core.dhcp import (
    BROADCAST,
    Bound,
    DhcpClient,
    DhcpState,
    DhcpStats,
    Lease,
    Lost,
    Outgoing,
    Renewed,
)
from tcpip.wire.dhcp import DhcpMessage, DhcpOptions, MessageType, Op, Opt

MAC = bytes.fromhex("020000000001")


def ip(s: str) -> int:
    return int(IPv4Address(s))


SERVER = ip("198.18.0.1")
OTHER_SERVER = ip("198.18.0.2")
ADDR = ip("198.18.0.10")
DNS = (ip("198.18.0.53"), ip("198.18.0.54"))


def reply(req: DhcpMessage, mt: MessageType, *, server: int = SERVER, yiaddr: int = ADDR, lease: int | None = 120,
          t1: int | None = 60, t2: int | None = 105, **kw: object) -> bytes:
    opts = DhcpOptions(message_type=mt, server_id=server, lease_time=lease, renewal_time=t1, rebinding_time=t2,
                       subnet_mask=ip("255.255.255.0"), routers=(SERVER,), dns_servers=DNS, domain_name="test",
                       mtu=1400)
    m = DhcpMessage(Op.BOOTREPLY, req.xid, req.chaddr, opts, yiaddr=yiaddr if mt != MessageType.NAK else 0,
                    siaddr=server)
    return replace(m, **kw).emit()  # type: ignore[arg-type]


def one(c: DhcpClient) -> tuple[Outgoing, DhcpMessage]:
    out = c.poll_transmit()
    assert len(out) == 1, out
    return out[0], DhcpMessage.parse(out[0].payload)


def bind(c: DhcpClient, now: float = 0.0) -> Lease:
    """Drive a fresh client through DISCOVER/OFFER/REQUEST/ACK; return the lease."""
    c.start(now)
    _, disc = one(c)
    c.receive(memoryview(reply(disc, MessageType.OFFER)), SERVER, now + 0.1)
    _, req = one(c)
    ev = c.receive(memoryview(reply(req, MessageType.ACK)), SERVER, now + 0.2)
    assert len(ev) == 1
    assert isinstance(ev[0], Bound)
    return ev[0].lease


@pytest.fixture
def client() -> DhcpClient:
    return DhcpClient(MAC, random.Random(1), hostname="tcpip-host")


def test_full_exchange(client: DhcpClient) -> None:
    client.start(100.0)
    assert client.state is DhcpState.SELECTING
    out, disc = one(client)
    assert (out.dst_ip, out.src_ip, out.broadcast) == (BROADCAST, 0, True)
    assert (disc.op, disc.chaddr, disc.ciaddr, disc.broadcast) == (Op.BOOTREQUEST, MAC, 0, True)
    o = disc.options
    assert (o.message_type, o.client_id, o.hostname) == (MessageType.DISCOVER, b"\x01" + MAC, "tcpip-host")
    assert {Opt.SUBNET_MASK, Opt.ROUTER, Opt.DNS_SERVERS, Opt.INTERFACE_MTU} <= set(o.parameter_requests)

    assert client.receive(memoryview(reply(disc, MessageType.OFFER)), SERVER, 100.5) == []
    assert client.state is DhcpState.REQUESTING
    out, req = one(client)
    assert (out.dst_ip, out.src_ip, out.broadcast) == (BROADCAST, 0, True)
    assert req.xid == disc.xid  # RFC 2131 4.4.1: the REQUEST keeps the OFFER's xid
    assert (req.options.message_type, req.options.server_id, req.options.requested_ip) == (
        MessageType.REQUEST, SERVER, ADDR)
    assert req.ciaddr == 0

    ev = client.receive(memoryview(reply(req, MessageType.ACK)), SERVER, 101.0)
    assert ev == [Bound(Lease(ADDR, ip("255.255.255.0"), (SERVER,), DNS, "test", SERVER, 120.0, 60.0, 105.0,
                              100.5, 1400))]
    assert client.state is DhcpState.BOUND
    assert client.poll_at() == 160.5  # T1 counts from when the REQUEST went out
    assert client.stats == DhcpStats(tx_discover=1, tx_request=1, rx_messages=2, offers=1, acks=1)


def test_renew_at_t1_is_unicast_to_server_id(client: DhcpClient) -> None:
    lease = bind(client)
    client.handle_timeout(lease.renew_at - 0.01)
    assert client.poll_transmit() == []
    client.handle_timeout(lease.renew_at)
    assert client.state is DhcpState.RENEWING
    out, req = one(client)
    assert (out.dst_ip, out.src_ip, out.broadcast) == (SERVER, ADDR, False)
    assert (req.ciaddr, req.broadcast, req.options.server_id, req.options.requested_ip) == (ADDR, False, None, None)
    t = lease.renew_at + 1
    ev = client.receive(memoryview(reply(req, MessageType.ACK, lease=300, t1=None, t2=None)), SERVER, t)
    assert len(ev) == 1
    assert isinstance(ev[0], Renewed)
    new = ev[0].lease
    assert (new.address, new.lease_time, new.t1, new.t2, new.obtained_at) == (
        ADDR, 300.0, 150.0, 262.5, lease.renew_at)
    assert client.state is DhcpState.BOUND
    assert client.poll_at() == new.renew_at


def test_renewing_retransmits_at_half_the_time_to_t2_but_not_under_60s(client: DhcpClient) -> None:
    lease = bind(client)  # T1 60, T2 105 -> at T1, 45 s to T2: half is 22.5 < 60, so the next is min(60, T2)
    client.handle_timeout(lease.renew_at)
    one(client)
    assert client.poll_at() == lease.rebind_at


def test_rebind_at_t2_broadcasts_and_accepts_any_server(client: DhcpClient) -> None:
    lease = bind(client)
    client.handle_timeout(lease.renew_at)
    one(client)
    client.handle_timeout(lease.rebind_at)
    assert client.state is DhcpState.REBINDING
    out, req = one(client)
    assert (out.dst_ip, out.src_ip, out.broadcast) == (BROADCAST, ADDR, True)
    assert (req.ciaddr, req.options.server_id) == (ADDR, None)
    assert client.poll_at() == lease.expires_at  # 15 s left: the expiry comes before a 60 s retransmission
    ev = client.receive(memoryview(reply(req, MessageType.ACK, server=OTHER_SERVER)), OTHER_SERVER,
                        lease.rebind_at + 1)
    assert len(ev) == 1
    assert isinstance(ev[0], Renewed)
    assert ev[0].lease.server_id == OTHER_SERVER


def test_expiry_loses_the_lease_and_restarts(client: DhcpClient) -> None:
    lease = bind(client)
    for t in (lease.renew_at, lease.rebind_at):
        client.handle_timeout(t)
        one(client)
    ev = client.handle_timeout(lease.expires_at)
    assert ev == [Lost(ADDR, "expired")]
    assert client.lease is None
    assert client.state is DhcpState.SELECTING
    _, disc = one(client)
    assert disc.options.message_type == MessageType.DISCOVER
    assert disc.options.requested_ip == ADDR  # asks for the old address back
    assert client.stats.expirations == 1


def test_nak_while_requesting_restarts(client: DhcpClient) -> None:
    client.start(0.0)
    _, disc = one(client)
    client.receive(memoryview(reply(disc, MessageType.OFFER)), SERVER, 0.1)
    _, req = one(client)
    assert client.receive(memoryview(reply(req, MessageType.NAK, lease=None)), SERVER, 0.2) == []
    assert client.state is DhcpState.SELECTING
    _, disc2 = one(client)
    assert disc2.options.message_type == MessageType.DISCOVER
    assert disc2.xid != disc.xid
    assert client.stats.naks == 1


def test_nak_while_renewing_loses_the_lease(client: DhcpClient) -> None:
    lease = bind(client)
    client.handle_timeout(lease.renew_at)
    _, req = one(client)
    ev = client.receive(memoryview(reply(req, MessageType.NAK, lease=None)), SERVER, lease.renew_at + 1)
    assert ev == [Lost(ADDR, "nak")]
    assert client.state is DhcpState.SELECTING


def test_retransmission_schedule() -> None:
    c = DhcpClient(MAC, random.Random(7))
    c.start(0.0)
    one(c)
    now, gaps, xids = 0.0, [], set()
    for _ in range(7):
        at = c.poll_at()
        assert at is not None
        gaps.append(at - now)
        now = at
        c.handle_timeout(now)
        _, m = one(c)
        xids.add(m.xid)
        assert m.secs == int(now)
    for gap, base in zip(gaps, (4, 8, 16, 32, 64, 64, 64), strict=True):
        assert base - 1 <= gap <= base + 1
    assert len({round(g % 1, 6) for g in gaps}) > 1  # randomised, not a fixed offset
    assert len(xids) == 1  # retransmissions keep the xid
    assert c.stats.retransmissions == 7


def test_same_seed_same_schedule() -> None:
    def schedule(seed: int) -> list[float]:
        c = DhcpClient(MAC, random.Random(seed))
        c.start(0.0)
        times = []
        for _ in range(4):
            at = c.poll_at()
            assert at is not None
            times.append(at)
            c.handle_timeout(at)
        return times
    assert schedule(3) == schedule(3)
    assert schedule(3) != schedule(4)


def test_requesting_gives_up_after_four_tries(client: DhcpClient) -> None:
    client.start(0.0)
    _, disc = one(client)
    client.receive(memoryview(reply(disc, MessageType.OFFER)), SERVER, 0.0)
    one(client)
    for _ in range(3):
        at = client.poll_at()
        assert at is not None
        client.handle_timeout(at)
        assert one(client)[1].options.message_type == MessageType.REQUEST
    at = client.poll_at()
    assert at is not None
    client.handle_timeout(at)
    assert client.state is DhcpState.SELECTING
    assert one(client)[1].options.message_type == MessageType.DISCOVER


def test_init_reboot_with_remembered_address() -> None:
    c = DhcpClient(MAC, random.Random(2), requested=ADDR)
    c.start(0.0)
    assert c.state is DhcpState.REBOOTING
    out, req = one(c)
    assert (out.dst_ip, out.src_ip) == (BROADCAST, 0)
    assert (req.options.message_type, req.options.requested_ip, req.options.server_id, req.ciaddr) == (
        MessageType.REQUEST, ADDR, None, 0)
    ev = c.receive(memoryview(reply(req, MessageType.ACK, server=OTHER_SERVER)), OTHER_SERVER, 0.5)
    assert len(ev) == 1
    assert isinstance(ev[0], Bound)
    assert ev[0].lease.server_id == OTHER_SERVER


def test_init_reboot_nak_goes_to_init_without_the_address() -> None:
    c = DhcpClient(MAC, random.Random(2), requested=ADDR)
    c.start(0.0)
    _, req = one(c)
    assert c.receive(memoryview(reply(req, MessageType.NAK, lease=None)), SERVER, 0.5) == []
    _, disc = one(c)
    assert disc.options.message_type == MessageType.DISCOVER
    assert disc.options.requested_ip is None


def test_probe_conflict_declines_and_waits_ten_seconds(client: DhcpClient) -> None:
    bind(client, 0.0)
    ev = client.probe_conflict(1.0)
    assert ev == [Lost(ADDR, "declined")]
    out, dec = one(client)
    assert (out.dst_ip, out.src_ip, out.broadcast) == (BROADCAST, 0, True)
    assert (dec.options.message_type, dec.options.requested_ip, dec.options.server_id, dec.ciaddr) == (
        MessageType.DECLINE, ADDR, SERVER, 0)
    assert dec.options.hostname is None
    assert client.poll_at() == 11.0
    client.handle_timeout(10.9)
    assert client.poll_transmit() == []
    client.handle_timeout(11.0)
    _, disc = one(client)
    assert (disc.options.message_type, disc.options.requested_ip) == (MessageType.DISCOVER, None)


def test_release_unicasts_and_stops(client: DhcpClient) -> None:
    bind(client)
    ev = client.release(5.0)
    assert ev == [Lost(ADDR, "released")]
    out, rel = one(client)
    assert (out.dst_ip, out.src_ip, out.broadcast) == (SERVER, ADDR, False)
    assert (rel.options.message_type, rel.options.server_id, rel.ciaddr) == (MessageType.RELEASE, SERVER, ADDR)
    assert client.state is DhcpState.STOPPED
    assert client.poll_at() is None
    assert client.release(6.0) == []
    assert client.poll_transmit() == []


def test_hostile_replies_are_counted_and_ignored(client: DhcpClient) -> None:
    client.start(0.0)
    _, disc = one(client)
    good = reply(disc, MessageType.OFFER)
    hostile = [
        reply(disc, MessageType.OFFER, xid=disc.xid ^ 1),
        reply(disc, MessageType.OFFER, chaddr=bytes(6)),
        reply(disc, MessageType.OFFER, op=Op.BOOTREQUEST),
        reply(disc, MessageType.ACK),  # not waited for in SELECTING
        reply(disc, MessageType.OFFER, yiaddr=ip("224.0.0.1")),
        reply(disc, MessageType.OFFER, yiaddr=0),
        DhcpMessage(Op.BOOTREPLY, disc.xid, MAC, DhcpOptions(message_type=MessageType.OFFER), yiaddr=ADDR).emit(),
        DhcpMessage(Op.BOOTREPLY, disc.xid, MAC, DhcpOptions(), yiaddr=ADDR).emit(),  # BOOTP
        good[:240] + bytes([53, 1, 2, 3, 40]) + bytes(10),  # router option overruns, no END
        good[:240] + bytes([53, 1, 2, 52, 1, 3, 255]),  # option overload
        b"\x02" * 100,
    ]
    for h in hostile:
        assert client.receive(memoryview(h), SERVER, 0.1) == []
    assert client.state is DhcpState.SELECTING
    assert client.poll_transmit() == []
    client.receive(memoryview(good), SERVER, 0.2)
    _, req = one(client)
    hostile = [
        reply(req, MessageType.ACK, server=OTHER_SERVER),  # not the selected server
        reply(req, MessageType.NAK, server=OTHER_SERVER, lease=None),
        reply(req, MessageType.ACK, yiaddr=ip("198.18.0.99")),  # not the address offered
        reply(req, MessageType.ACK, lease=None),  # an ACK must carry a lease time
        reply(req, MessageType.OFFER),
    ]
    for h in hostile:
        assert client.receive(memoryview(h), OTHER_SERVER, 0.3) == []
    assert client.state is DhcpState.REQUESTING
    ev = client.receive(memoryview(reply(req, MessageType.ACK)), SERVER, 0.4)
    assert len(ev) == 1
    assert isinstance(ev[0], Bound)
    # once bound no exchange is open: even the right xid is stale
    assert client.receive(memoryview(reply(req, MessageType.NAK, lease=None)), SERVER, 0.5) == []
    assert client.stats == DhcpStats(
        tx_discover=1, tx_request=1, rx_messages=19, rx_malformed=3, rx_not_reply=1, rx_wrong_xid=2,
        rx_wrong_chaddr=1, rx_wrong_server=2, rx_no_message_type=1, rx_unexpected=2, rx_bad_offer=5,
        offers=1, acks=1)


def test_renewing_ignores_other_servers(client: DhcpClient) -> None:
    lease = bind(client)
    client.handle_timeout(lease.renew_at)
    _, req = one(client)
    t = lease.renew_at + 1
    assert client.receive(memoryview(reply(req, MessageType.NAK, server=OTHER_SERVER, lease=None)),
                          OTHER_SERVER, t) == []
    assert client.state is DhcpState.RENEWING
    assert client.stats.rx_wrong_server == 1


def test_bad_t1_t2_fall_back_to_rfc_defaults(client: DhcpClient) -> None:
    client.start(0.0)
    _, disc = one(client)
    client.receive(memoryview(reply(disc, MessageType.OFFER)), SERVER, 0.0)
    _, req = one(client)
    ev = client.receive(memoryview(reply(req, MessageType.ACK, lease=100, t1=90, t2=200)), SERVER, 0.0)
    assert isinstance(ev[0], Bound)
    assert (ev[0].lease.t1, ev[0].lease.t2) == (50.0, 87.5)


def test_infinite_lease_has_no_deadline(client: DhcpClient) -> None:
    client.start(0.0)
    _, disc = one(client)
    client.receive(memoryview(reply(disc, MessageType.OFFER)), SERVER, 0.0)
    _, req = one(client)
    ev = client.receive(memoryview(reply(req, MessageType.ACK, lease=0xFFFFFFFF, t1=None, t2=None)), SERVER, 0.0)
    assert isinstance(ev[0], Bound)
    assert client.poll_at() is None
    assert client.handle_timeout(1e12) == []
    assert client.state is DhcpState.BOUND


@given(st.binary(max_size=400), st.sampled_from(["selecting", "requesting", "bound", "renewing"]))
def test_fuzz_receive_never_raises(data: bytes, phase: str) -> None:
    c = DhcpClient(MAC, random.Random(9))
    c.start(0.0)
    _, disc = one(c)
    if phase != "selecting":
        c.receive(memoryview(reply(disc, MessageType.OFFER)), SERVER, 0.0)
        _, req = one(c)
        if phase != "requesting":
            c.receive(memoryview(reply(req, MessageType.ACK)), SERVER, 0.0)
            if phase == "renewing":
                c.handle_timeout(60.0)
    before = c.state
    assert c.receive(memoryview(data), SERVER, 61.0) == []
    assert c.state is before
    assert c.stats.rx_malformed + c.stats.rx_not_reply + c.stats.rx_wrong_xid >= 1


@given(st.data())
def test_fuzz_mutated_replies_never_raise(data: st.DataObject) -> None:
    c = DhcpClient(MAC, random.Random(9))
    c.start(0.0)
    _, disc = one(c)
    good = bytearray(reply(disc, MessageType.OFFER))
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(good) - 1))
        good[i] = data.draw(st.integers(0, 255))
    c.receive(memoryview(bytes(good)), SERVER, 0.1)  # accepted or counted: never an exception
    assert c.state in (DhcpState.SELECTING, DhcpState.REQUESTING)


def test_misuse_raises_at_construction() -> None:
    with pytest.raises(ValueError, match="mac"):
        DhcpClient(b"\x02\x00", random.Random(1))
    for bad in ("", "hôte", "a\nb", "x" * 256):
        with pytest.raises(ValueError, match="hostname"):
            DhcpClient(MAC, random.Random(1), hostname=bad)
