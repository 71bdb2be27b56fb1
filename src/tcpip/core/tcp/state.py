"""TCP states, the event codes the core emits, connection info rows, and the errors connections end with."""

from __future__ import annotations

import errno
from dataclasses import dataclass
from enum import IntEnum


class TcpState(IntEnum):
    CLOSED = 0
    LISTEN = 1
    SYN_SENT = 2
    SYN_RECEIVED = 3
    ESTABLISHED = 4
    FIN_WAIT_1 = 5
    FIN_WAIT_2 = 6
    CLOSE_WAIT = 7
    CLOSING = 8
    LAST_ACK = 9
    TIME_WAIT = 10


# Event kinds: (kind, subject, detail) tuples from TcpLayer.poll_events().
EV_CONNECTED = 1  # (conn, None): active open reached ESTABLISHED
EV_ACCEPT = 2  # (listener, conn): passive open established and queued
EV_DATA = 3  # (conn, None): new in-order bytes readable (one pending per conn until recv)
EV_EOF = 4  # (conn, None): the peer's FIN consumed
EV_SENT = 5  # (conn, None): send-buffer space freed (one pending per conn until drained)
EV_CLOSED = 6  # (conn, exc | None): exactly once per reported connection


@dataclass(slots=True)
class ConnInfo:
    """One row of `TcpLayer.connections()`, like a line of `ss -tin` (times in seconds)."""

    local_addr: int
    local_port: int
    remote_addr: int
    remote_port: int
    state: str
    recv_q: int  # readable bytes (listeners: accept queue length)
    send_q: int  # unacknowledged + unsent bytes (listeners: backlog)
    cwnd: int = 0  # bytes
    ssthresh: int = 0
    srtt: float = 0.0
    rttvar: float = 0.0
    rto: float = 0.0
    mss: int = 0
    retrans: int = 0  # consecutive retransmission timeouts


def refused() -> ConnectionRefusedError:
    return ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")


def timed_out() -> TimeoutError:
    return TimeoutError(errno.ETIMEDOUT, "Connection timed out")


def reset() -> ConnectionResetError:
    return ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")


_MESSAGES = {
    errno.EHOSTUNREACH: "No route to host",
    errno.ENETUNREACH: "Network is unreachable",
    errno.ENOPROTOOPT: "Protocol not available",
    errno.EOPNOTSUPP: "Operation not supported",
}


def os_error(code: int) -> OSError:
    """OSError(code) with the C library's message (the core may not call os.strerror)."""
    if code == errno.ECONNREFUSED:
        return refused()
    return OSError(code, _MESSAGES.get(code, f"errno {code}"))
