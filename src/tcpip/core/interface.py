"""The historical name of the sans-I/O host: `Interface` is `tcpip.core.host.Host` (see there)."""

from __future__ import annotations

from tcpip.core.ethernet import Frame
from tcpip.core.host import Host, InputHandler
from tcpip.core.icmp import ERROR_TYPES as ICMP_ERROR_TYPES
from tcpip.core.icmp import EchoHandler, ErrorHandler
from tcpip.core.ipv4 import PENDING, SENT, Accepted

Interface = Host

__all__ = ["ICMP_ERROR_TYPES", "PENDING", "SENT", "Accepted", "EchoHandler", "ErrorHandler", "Frame", "Host",
           "InputHandler", "Interface"]
