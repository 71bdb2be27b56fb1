"""DHCP messages (RFC 2131) and the options of RFC 2132 a client needs: parse untrusted bytes, emit whole messages."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum

from tcpip.errors import BadLength, BadOption, BadVersion, OptionOverload, Truncated

Buffer = bytes | bytearray | memoryview
_Decoder = Callable[[int, bytearray], object]

SERVER_PORT = 67
CLIENT_PORT = 68
MAGIC_COOKIE = 0x63825363
FIXED_LEN = 236  # op .. file, before the magic cookie
MIN_LEN = FIXED_LEN + 4  # a DHCP message has at least the cookie
BOOTP_MIN_LEN = 300  # RFC 1542 2.1: relays may drop shorter BOOTP messages, so emit pads to this
BROADCAST_FLAG = 0x8000
_HDR = struct.Struct("!BBBBIHHIIII")  # op htype hlen hops xid secs flags ciaddr yiaddr siaddr giaddr
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")


class Op(IntEnum):
    BOOTREQUEST = 1
    BOOTREPLY = 2


class MessageType(IntEnum):
    DISCOVER = 1
    OFFER = 2
    REQUEST = 3
    DECLINE = 4
    ACK = 5
    NAK = 6
    RELEASE = 7
    INFORM = 8


class Opt(IntEnum):
    PAD = 0
    SUBNET_MASK = 1
    ROUTER = 3
    DNS_SERVERS = 6
    HOSTNAME = 12
    DOMAIN_NAME = 15
    INTERFACE_MTU = 26
    BROADCAST_ADDRESS = 28
    REQUESTED_IP = 50
    LEASE_TIME = 51
    OVERLOAD = 52
    MESSAGE_TYPE = 53
    SERVER_ID = 54
    PARAMETER_REQUEST_LIST = 55
    RENEWAL_TIME = 58  # T1
    REBINDING_TIME = 59  # T2
    CLIENT_ID = 61
    END = 255


@dataclass(frozen=True, slots=True)
class DhcpOptions:
    """The options tcpip understands; None / () means absent. Addresses are ints, times are seconds."""

    message_type: int | None = None
    subnet_mask: int | None = None
    routers: tuple[int, ...] = ()
    dns_servers: tuple[int, ...] = ()
    hostname: str | None = None
    domain_name: str | None = None
    mtu: int | None = None
    broadcast_address: int | None = None
    requested_ip: int | None = None
    lease_time: int | None = None
    renewal_time: int | None = None
    rebinding_time: int | None = None
    server_id: int | None = None
    parameter_requests: tuple[int, ...] = ()
    client_id: bytes | None = None

    @classmethod
    def parse(cls, buf: Buffer) -> DhcpOptions:
        """Parse the options area after the magic cookie. Repeated options concatenate (RFC 3396)."""
        raw = _split(buf)
        if Opt.OVERLOAD in raw:
            raise OptionOverload("dhcp", "option overload (52) is not supported")
        kw: dict[str, object] = {}
        for code, value in raw.items():
            dec = _DECODERS.get(code)
            if dec is not None:  # unknown options are skipped
                kw[dec[0]] = dec[1](code, value)
        return cls(**kw)  # type: ignore[arg-type]

    def emit(self) -> bytes:
        """The options area, END included (no padding), in a fixed order so parse(emit(x)) == x."""
        out = bytearray()

        def put(code: int, value: bytes) -> None:
            # values over 255 bytes are split into consecutive instances (RFC 3396)
            for i in range(0, max(len(value), 1), 255):
                chunk = value[i:i + 255]
                out.append(code)
                out.append(len(chunk))
                out.extend(chunk)

        if self.message_type is not None:
            put(Opt.MESSAGE_TYPE, bytes([self.message_type]))
        if self.client_id is not None:
            put(Opt.CLIENT_ID, self.client_id)
        for code, addr in ((Opt.SERVER_ID, self.server_id), (Opt.REQUESTED_IP, self.requested_ip),
                           (Opt.SUBNET_MASK, self.subnet_mask), (Opt.BROADCAST_ADDRESS, self.broadcast_address)):
            if addr is not None:
                put(code, _U32.pack(addr))
        for code, secs in ((Opt.LEASE_TIME, self.lease_time), (Opt.RENEWAL_TIME, self.renewal_time),
                           (Opt.REBINDING_TIME, self.rebinding_time)):
            if secs is not None:
                put(code, _U32.pack(secs))
        if self.routers:
            put(Opt.ROUTER, b"".join(_U32.pack(a) for a in self.routers))
        if self.dns_servers:
            put(Opt.DNS_SERVERS, b"".join(_U32.pack(a) for a in self.dns_servers))
        if self.mtu is not None:
            put(Opt.INTERFACE_MTU, _U16.pack(self.mtu))
        if self.hostname is not None:
            put(Opt.HOSTNAME, self.hostname.encode("ascii"))
        if self.domain_name is not None:
            put(Opt.DOMAIN_NAME, self.domain_name.encode("ascii"))
        if self.parameter_requests:
            put(Opt.PARAMETER_REQUEST_LIST, bytes(self.parameter_requests))
        out.append(Opt.END)
        return bytes(out)


@dataclass(frozen=True, slots=True)
class DhcpMessage:
    """A BOOTP/DHCP message on Ethernet (htype 1, hlen 6). sname/file are emitted as zeros and ignored on input."""

    op: int
    xid: int
    chaddr: bytes  # 6-byte client MAC
    options: DhcpOptions = field(default_factory=DhcpOptions)
    secs: int = 0
    flags: int = 0
    ciaddr: int = 0
    yiaddr: int = 0
    siaddr: int = 0
    giaddr: int = 0
    hops: int = 0

    @property
    def broadcast(self) -> bool:
        return bool(self.flags & BROADCAST_FLAG)

    @classmethod
    def parse(cls, buf: Buffer) -> DhcpMessage:
        """Parse a UDP payload; raises a WireError subclass on anything malformed."""
        n = len(buf)
        if n < MIN_LEN:
            raise Truncated("dhcp", f"{n} bytes, a DHCP message needs {MIN_LEN}")
        op, htype, hlen, hops, xid, secs, flags, ci, yi, si, gi = _HDR.unpack_from(buf, 0)
        if op not in (Op.BOOTREQUEST, Op.BOOTREPLY):
            raise BadVersion("dhcp", f"op {op}")
        if htype != 1 or hlen != 6:
            raise BadVersion("dhcp", f"htype {htype} hlen {hlen}: not Ethernet")
        if _U32.unpack_from(buf, FIXED_LEN)[0] != MAGIC_COOKIE:
            raise BadVersion("dhcp", "no DHCP magic cookie")
        opts = DhcpOptions.parse(memoryview(buf)[MIN_LEN:])
        return cls(op, xid, bytes(buf[28:34]), opts, secs, flags, ci, yi, si, gi, hops)

    def emit(self) -> bytes:
        """The whole UDP payload, padded with zeros to the BOOTP minimum of 300 bytes."""
        if len(self.chaddr) != 6:
            raise ValueError("chaddr must be 6 bytes")
        buf = bytearray(MIN_LEN)
        _HDR.pack_into(buf, 0, self.op, 1, 6, self.hops, self.xid, self.secs, self.flags,
                       self.ciaddr, self.yiaddr, self.siaddr, self.giaddr)
        buf[28:34] = self.chaddr
        _U32.pack_into(buf, FIXED_LEN, MAGIC_COOKIE)
        buf += self.options.emit()
        if len(buf) < BOOTP_MIN_LEN:
            buf += bytes(BOOTP_MIN_LEN - len(buf))
        return bytes(buf)


def _split(buf: Buffer) -> dict[int, bytearray]:
    """TLVs up to END -> {code: value}; PAD skipped, bytes after END ignored (they are padding)."""
    out: dict[int, bytearray] = {}
    i, n = 0, len(buf)
    while i < n:
        code = buf[i]
        if code == Opt.PAD:
            i += 1
            continue
        if code == Opt.END:
            return out
        if i + 1 >= n:
            raise BadOption("dhcp", f"option {code} has no length byte")
        end = i + 2 + buf[i + 1]
        if end > n:
            raise BadOption("dhcp", f"option {code} length {buf[i + 1]} overruns the message")
        out.setdefault(code, bytearray()).extend(buf[i + 2:end])
        i = end
    raise BadOption("dhcp", "no END option")


def _addr(code: int, v: bytearray) -> int:
    if len(v) != 4:
        raise BadOption("dhcp", f"option {code}: length {len(v)}, expected 4")
    return int.from_bytes(v, "big")


def _u32(code: int, v: bytearray) -> int:
    return _addr(code, v)


def _addrs(code: int, v: bytearray) -> tuple[int, ...]:
    if not v or len(v) % 4:
        raise BadOption("dhcp", f"option {code}: length {len(v)}, expected a multiple of 4")
    return tuple(int.from_bytes(v[i:i + 4], "big") for i in range(0, len(v), 4))


def _text(code: int, v: bytearray) -> str:
    v = v.rstrip(b"\0")  # some servers NUL-terminate (RFC 2132 says they should not)
    if not v:
        raise BadOption("dhcp", f"option {code}: empty text")
    try:
        return v.decode("ascii")
    except UnicodeDecodeError:
        raise BadOption("dhcp", f"option {code}: not ASCII") from None


def _mtu(code: int, v: bytearray) -> int:
    if len(v) != 2:
        raise BadOption("dhcp", f"option {code}: length {len(v)}, expected 2")
    mtu = int.from_bytes(v, "big")
    if mtu < 68:  # RFC 2132 9.1: the minimum legal value is 68
        raise BadLength("dhcp", f"interface MTU {mtu} < 68")
    return mtu


def _msg_type(code: int, v: bytearray) -> int:
    if len(v) != 1:
        raise BadOption("dhcp", f"option {code}: length {len(v)}, expected 1")
    return v[0]


def _bytes_min(minimum: int) -> _Decoder:
    def dec(code: int, v: bytearray) -> bytes:
        if len(v) < minimum:
            raise BadOption("dhcp", f"option {code}: length {len(v)} < {minimum}")
        return bytes(v)
    return dec


def _byte_list(code: int, v: bytearray) -> tuple[int, ...]:
    if not v:
        raise BadOption("dhcp", f"option {code}: empty")
    return tuple(v)


_DECODERS: dict[int, tuple[str, _Decoder]] = {
    Opt.MESSAGE_TYPE: ("message_type", _msg_type),
    Opt.SUBNET_MASK: ("subnet_mask", _addr),
    Opt.ROUTER: ("routers", _addrs),
    Opt.DNS_SERVERS: ("dns_servers", _addrs),
    Opt.HOSTNAME: ("hostname", _text),
    Opt.DOMAIN_NAME: ("domain_name", _text),
    Opt.INTERFACE_MTU: ("mtu", _mtu),
    Opt.BROADCAST_ADDRESS: ("broadcast_address", _addr),
    Opt.REQUESTED_IP: ("requested_ip", _addr),
    Opt.LEASE_TIME: ("lease_time", _u32),
    Opt.RENEWAL_TIME: ("renewal_time", _u32),
    Opt.REBINDING_TIME: ("rebinding_time", _u32),
    Opt.SERVER_ID: ("server_id", _addr),
    Opt.PARAMETER_REQUEST_LIST: ("parameter_requests", _byte_list),
    Opt.CLIENT_ID: ("client_id", _bytes_min(2)),  # RFC 2132 9.14: type + at least one byte
}
