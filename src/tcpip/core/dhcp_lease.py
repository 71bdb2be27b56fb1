"""What a DHCP ACK grants (Lease), the client's events and datagrams, its counters, and the ACK -> Lease rules."""

from __future__ import annotations

from dataclasses import dataclass

from tcpip.wire.dhcp import DhcpMessage

INFINITE = 0xFFFFFFFF  # RFC 2131 3.3: an infinite lease


@dataclass(frozen=True, slots=True)
class Lease:
    """What an ACK granted. Addresses are ints; times are seconds, counted from `obtained_at` (when the
    answered DHCPREQUEST was sent, RFC 2131 4.4.1)."""

    address: int
    netmask: int
    routers: tuple[int, ...]
    dns_servers: tuple[int, ...]
    domain: str | None
    server_id: int
    lease_time: float  # float("inf") for an infinite lease
    t1: float
    t2: float
    obtained_at: float
    mtu: int | None = None
    broadcast: int | None = None

    @property
    def renew_at(self) -> float:
        return self.obtained_at + self.t1

    @property
    def rebind_at(self) -> float:
        return self.obtained_at + self.t2

    @property
    def expires_at(self) -> float:
        return self.obtained_at + self.lease_time


@dataclass(frozen=True, slots=True)
class Bound:
    lease: Lease


@dataclass(frozen=True, slots=True)
class Renewed:
    lease: Lease  # same address, new times (and possibly new options)


@dataclass(frozen=True, slots=True)
class Lost:
    address: int
    reason: str  # "expired", "nak", "declined", "released"


DhcpEvent = Bound | Renewed | Lost


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One UDP datagram from port 68 to port 67. `broadcast`: send to ff:ff:ff:ff:ff:ff without ARP."""

    dst_ip: int
    src_ip: int
    payload: bytes
    broadcast: bool


@dataclass(slots=True)
class DhcpStats:
    tx_discover: int = 0
    tx_request: int = 0
    tx_decline: int = 0
    tx_release: int = 0
    retransmissions: int = 0
    rx_messages: int = 0
    rx_malformed: int = 0  # WireError from the parser
    rx_not_reply: int = 0  # op BOOTREQUEST (another client's broadcast)
    rx_wrong_xid: int = 0
    rx_wrong_chaddr: int = 0
    rx_wrong_server: int = 0  # OFFER/ACK/NAK from a server we did not select
    rx_no_message_type: int = 0  # plain BOOTP
    rx_unexpected: int = 0  # a message type this state does not wait for
    rx_bad_offer: int = 0  # no server id, unusable address, ACK without a lease time
    offers: int = 0
    acks: int = 0
    naks: int = 0
    expirations: int = 0


def usable(a: int) -> bool:
    """A unicast address a host may take: not 0/8, loopback, multicast, class E or limited broadcast."""
    first = a >> 24
    return first not in (0, 127) and first < 224


def _classful_mask(a: int) -> int:
    first = a >> 24
    return 0xFF000000 if first < 128 else 0xFFFF0000 if first < 192 else 0xFFFFFF00


def lease_from_ack(m: DhcpMessage, lease_time: int, server_id: int, sent_at: float) -> Lease:
    """Build a Lease; T1/T2 default to 0.5 and 0.875 of the lease (RFC 2131 4.4.5) and are kept in order."""
    o = m.options
    total = float("inf") if lease_time == INFINITE else float(lease_time)
    t1 = float(o.renewal_time) if o.renewal_time is not None else total * 0.5
    t2 = float(o.rebinding_time) if o.rebinding_time is not None else total * 0.875
    if not t2 <= total:
        t2 = total * 0.875
    if not t1 <= t2:
        t1 = min(total * 0.5, t2)
    mask = o.subnet_mask if o.subnet_mask is not None else _classful_mask(m.yiaddr)
    return Lease(m.yiaddr, mask, o.routers, o.dns_servers, o.domain_name, server_id, total, t1, t2, sent_at,
                 o.mtu, o.broadcast_address)
