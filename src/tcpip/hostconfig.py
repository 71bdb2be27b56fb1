"""Host configuration checks shared by the API and the CLI: what Linux refuses is refused, with a
ConfigurationError (a ValueError) whose message fits on one line.

Address forms: "ADDR/PREFIX", an IPv4Interface, or a bare "ADDR", which means ADDR/32 (as `ip addr add
ADDR` does on Linux, and as `ipaddress.IPv4Interface` reads it); the API and the CLI accept the same."""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Interface

from tcpip.errors import ConfigurationError
from tcpip.wire.mac import MacAddress

BROADCAST = b"\xff" * 6


def host_interface(value: str | IPv4Interface) -> IPv4Interface:
    """The host address and subnet of `value`; refuses what cannot be a host's unicast address."""
    if isinstance(value, IPv4Interface):
        iface = value
    else:
        try:
            iface = IPv4Interface(value.strip())
        except ValueError as e:
            raise ConfigurationError(f"bad IPv4 address {value!r}: {e}") from None
    ip, net = iface.ip, iface.network
    if ip.is_multicast or ip.is_unspecified or ip.is_loopback or ip == IPv4Address("255.255.255.255"):
        raise ConfigurationError(f"{iface}: not a usable host address")
    if net.prefixlen < 31 and ip == net.network_address:
        raise ConfigurationError(f"{iface}: that is the subnet's network address, not a host's")
    if net.prefixlen < 31 and ip == net.broadcast_address:
        raise ConfigurationError(f"{iface}: that is the subnet's broadcast address, not a host's")
    return iface


def check_gateways(iface: IPv4Interface, gateways: Sequence[IPv4Address]) -> None:
    """Each gateway must be another host on our subnet (Linux: "Nexthop has invalid gateway")."""
    for g in gateways:
        if g == iface.ip:
            raise ConfigurationError(f"gateway {g} is our own address")
        if g not in iface.network:
            raise ConfigurationError(f"gateway {g} is not on the connected subnet {iface.network}")
        if iface.network.prefixlen < 31 and g in (iface.network.network_address,
                                                  iface.network.broadcast_address):
            raise ConfigurationError(f"gateway {g} is the subnet's network or broadcast address")


def check_mac(mac: MacAddress) -> MacAddress:
    """A unicast, non-zero MAC (Linux is_valid_ether_addr: "Cannot assign requested address")."""
    b = mac.packed
    if b == bytes(6):
        raise ConfigurationError(f"MAC {mac} is all zeros")
    if b[0] & 1:
        kind = "broadcast" if b == BROADCAST else "multicast"
        raise ConfigurationError(f"MAC {mac} is a {kind} address")
    return mac
