"""TCP (sans-I/O): TcpLayer demultiplexes segments to Connections and Listeners; see docs/tcp-design.md.

Modules: config (TcpConfig), stats (TcpStats), state (TcpState, events, ConnInfo), layer (TcpLayer),
listener, conn (Connection and its API), input (segment arrival, synchronized states), opening (SYN_SENT,
negotiation, TIME_WAIT), output (segments out, rate-limited ACKs), congestion
(RTO and NewReno), timeouts (timer expiry); data structures: seq, rcvbuf, sndbuf, timers, isn.
"""

from tcpip.core.tcp.config import TcpConfig
from tcpip.core.tcp.conn import Connection
from tcpip.core.tcp.layer import Output, TcpLayer
from tcpip.core.tcp.listener import Listener
from tcpip.core.tcp.state import (
    EV_ACCEPT,
    EV_CLOSED,
    EV_CONNECTED,
    EV_DATA,
    EV_EOF,
    EV_SENT,
    ConnInfo,
    TcpState,
)
from tcpip.core.tcp.stats import TcpStats

__all__ = [
    "EV_ACCEPT",
    "EV_CLOSED",
    "EV_CONNECTED",
    "EV_DATA",
    "EV_EOF",
    "EV_SENT",
    "ConnInfo",
    "Connection",
    "Listener",
    "Output",
    "TcpConfig",
    "TcpLayer",
    "TcpState",
    "TcpStats",
]
