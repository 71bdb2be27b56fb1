"""The exception hierarchy of tcpip: misuse and unreachable peers raise these; bad wire bytes are counted drops."""

from __future__ import annotations

import errno
import socket


class TcpipError(Exception):
    """Base of every exception tcpip raises."""


class Ipv4Error(TcpipError):
    """An error of the seed's Ipv4 module."""


class UnknownError(Ipv4Error):
    """The seed's `Unknown of string`: an undiagnosed error, with its message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnimplementedError(Ipv4Error):
    """The seed's `Unimplemented`: the operation is not implemented."""


class NoRouteError(UnknownError):
    """No route to an off-link destination (no gateway configured)."""


class HostUnreachableError(NoRouteError):
    """ARP resolution of the next hop gave up after its retries."""


class WouldFragmentError(Ipv4Error):
    """Don't-fragment was requested and the datagram does not fit the path MTU."""


class MessageTooLongError(Ipv4Error):
    """The datagram is larger than IPv4 allows (65535 bytes), or a frame exceeds the device MTU."""


class ConfigurationError(TcpipError, ValueError):
    """A configuration Linux refuses (a gateway off every connected subnet or equal to our address; a
    zero or multicast MAC; a subnet's network or broadcast address as a host address)."""


class DeviceClosedError(TcpipError, OSError):
    """The network device has been disconnected."""


class LinkLostError(DeviceClosedError):
    """The device's kernel interface went away (e.g. `ip link del tap0`); it may come back: see
    `TapDevice.lost` and `TapDevice.reopen_when_back`."""


class AddressInUseError(TcpipError, OSError):
    """The local address and port are already in use (errno EADDRINUSE, as bind(2) reports it)."""

    def __init__(self, message: str = "Address already in use") -> None:
        OSError.__init__(self, errno.EADDRINUSE, message)


class PortInUseError(AddressInUseError):
    """The local port is taken (or no ephemeral port is free)."""

    def __init__(self, port: int) -> None:
        super().__init__(f"address already in use: port {port}")
        self.port = port


class WireError(TcpipError, ValueError):
    """The peer's bytes were malformed; the core catches these and counts a drop."""

    def __init__(self, layer: str, reason: str) -> None:
        super().__init__(f"[{layer}] {reason}")
        self.layer = layer
        self.reason = reason


class Truncated(WireError):
    """Fewer bytes than the header or its length fields claim."""


class BadLength(WireError):
    """A length field is inconsistent."""


class BadVersion(WireError):
    """An unsupported version or type field."""


class BadChecksum(WireError):
    """A checksum does not verify."""


class BadOption(WireError):
    """A protocol option is malformed: its length overruns the buffer or does not fit its type, or END is missing."""


class OptionOverload(BadOption):
    """DHCP option overload (RFC 2132 option 52): options in sname/file, which tcpip refuses."""


class BadName(WireError):
    """A DNS name breaks RFC 1035: a label over 63 bytes, a name over 255, a bad or looping compression pointer."""


class PointerLoop(BadName):
    """A DNS compression pointer does not point strictly backwards, so following it could loop."""


class ResolveError(TcpipError, socket.gaierror):
    """A name could not be resolved; a `socket.gaierror` (errno = an EAI_* code), so callers of
    `loop.getaddrinfo` can catch both the same way."""

    code = socket.EAI_FAIL

    def __init__(self, name: str, message: str) -> None:
        super().__init__(self.code, f"{message}: {name}")
        self.name = name


class NameNotFoundError(ResolveError):
    """NXDOMAIN: the name does not exist (or is not a valid DNS name)."""

    code = socket.EAI_NONAME


class NoAddressError(ResolveError):
    """The name exists but has no IPv4 address (NOERROR with no A record)."""

    code = socket.EAI_NODATA


class ServerFailureError(ResolveError):
    """Every server answered SERVFAIL, REFUSED or another error rcode (a temporary failure, as getaddrinfo says)."""

    code = socket.EAI_AGAIN

    def __init__(self, name: str, message: str, rcode: int) -> None:
        super().__init__(name, message)
        self.rcode = rcode


class ResolveTimeoutError(ResolveError):
    """No server answered within the retries."""

    code = socket.EAI_AGAIN


class ResolveTruncatedError(ResolveError):
    """The reply had TC set: the answer needs TCP (not yet available), so the partial answer is not used."""

    code = socket.EAI_AGAIN


class DhcpTimeoutError(TcpipError, TimeoutError):
    """`Stack.connect(..., dhcp=True)` got no lease within its timeout (no server answered, or every
    offer was refused)."""
