"""Compatibility: the asyncio UDP facade lives in `tcpip.aio.udp`; `from tcpip.udp import ...` keeps working."""

from tcpip.aio.udp import UdpEndpoints, UdpTransport, create_datagram_endpoint

__all__ = ["UdpEndpoints", "UdpTransport", "create_datagram_endpoint"]
