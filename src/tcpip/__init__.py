"""tcpip: a user-space IPv4 network stack (Ethernet, ARP, IPv4, ICMP, UDP) with the MirageOS Ipv4 API."""

from tcpip.core.config import InterfaceConfig
from tcpip.errors import (
    ConfigurationError,
    DeviceClosedError,
    HostUnreachableError,
    Ipv4Error,
    MessageTooLongError,
    NoRouteError,
    PortInUseError,
    TcpipError,
    UnimplementedError,
    UnknownError,
    WireError,
    WouldFragmentError,
)
from tcpip.ethif import Ethif
from tcpip.ipv4 import Ipv4
from tcpip.loop import StackLoop, loop_factory
from tcpip.stack import Stack
from tcpip.wire.ipv4 import IpProto
from tcpip.wire.mac import MacAddress

__all__ = [
    "ConfigurationError",
    "DeviceClosedError",
    "Ethif",
    "HostUnreachableError",
    "InterfaceConfig",
    "IpProto",
    "Ipv4",
    "Ipv4Error",
    "MacAddress",
    "MessageTooLongError",
    "NoRouteError",
    "PortInUseError",
    "Stack",
    "StackLoop",
    "TcpipError",
    "UnimplementedError",
    "UnknownError",
    "WireError",
    "WouldFragmentError",
    "loop_factory",
]
__version__ = "0.1.0"
