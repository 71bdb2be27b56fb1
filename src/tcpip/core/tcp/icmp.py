"""ICMP errors against TCP connections (RFC 5927, RFC 1191, RFC 1122 4.2.3.9): which to act on, which are
hard (a failed connect) and which are soft (recorded on the connection, never fatal)."""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING

from tcpip.core.tcp import output as out
from tcpip.core.tcp.seq import seq_add, seq_in
from tcpip.core.tcp.state import TcpState, os_error

if TYPE_CHECKING:
    from tcpip.core.tcp.layer import TcpLayer

S = TcpState
_PORTS_SEQ = struct.Struct("!HHI")
_ICMP_UNREACH = 3
_FRAG_NEEDED = 4
# ICMP destination-unreachable code -> errno (Linux icmp_err_convert)
_UNREACH_ERRNO = {0: errno.ENETUNREACH, 1: errno.EHOSTUNREACH, 2: errno.ENOPROTOOPT, 3: errno.ECONNREFUSED,
                  5: errno.EOPNOTSUPP, 6: errno.ENETUNREACH, 7: errno.EHOSTUNREACH, 9: errno.ENETUNREACH,
                  10: errno.EHOSTUNREACH, 11: errno.ENETUNREACH, 12: errno.EHOSTUNREACH,
                  13: errno.EHOSTUNREACH, 14: errno.EHOSTUNREACH, 15: errno.EHOSTUNREACH}
_ICMP_TIME_EXCEEDED = 11
_ICMP_PARAM_PROBLEM = 12
_ICMP_ERRORS = (_ICMP_UNREACH, _ICMP_TIME_EXCEEDED, _ICMP_PARAM_PROBLEM)  # source quench: RFC 6633, ignored
_TYPE_ERRNO = {_ICMP_TIME_EXCEEDED: errno.EHOSTUNREACH, _ICMP_PARAM_PROBLEM: errno.EPROTO}


def icmp_error(layer: TcpLayer, icmp_type: int, code: int, rest: int, quote: memoryview, now: float) -> None:
    """An ICMP error quoting one of our segments (quoted IPv4 header + at least 8 bytes of TCP)."""
    if len(quote) < 20:
        return
    ihl = (quote[0] & 0x0F) * 4
    if len(quote) < ihl + 8:
        return
    src = int.from_bytes(quote[12:16], "big")
    dst = int.from_bytes(quote[16:20], "big")
    sport, dport, seq = _PORTS_SEQ.unpack_from(quote, ihl)
    conn = layer.conns.get((src, sport, dst, dport))
    stats = layer.stats
    # RFC 5927 4.1: act only when the quoted sequence number is one we sent and is not yet acknowledged
    if conn is None or icmp_type not in _ICMP_ERRORS or conn.state == S.TIME_WAIT or \
            not seq_in(seq, conn.snd_una, seq_add(conn.snd_max, 1)):
        stats.icmp_ignored += 1
        return
    if icmp_type == _ICMP_UNREACH and code == _FRAG_NEEDED:
        mtu = rest & 0xFFFF
        mss = max(mtu - 40, layer.config.min_mss)
        if mtu == 0 or mss >= conn.mss:
            stats.icmp_ignored += 1
            return
        stats.icmp_frag_needed += 1
        conn.mss = mss
        if conn.state not in (S.SYN_SENT, S.SYN_RECEIVED) and conn.snd_una != conn.snd_max:
            conn.snd_nxt = conn.snd_una  # resend what no longer fits, without a cwnd cut (Linux)
            out.retransmit_first(conn, now)
            conn.arm()
        return
    code_errno = _UNREACH_ERRNO.get(code, errno.EHOSTUNREACH) if icmp_type == _ICMP_UNREACH else \
        _TYPE_ERRNO[icmp_type]
    if icmp_type == _ICMP_UNREACH and (
            conn.state == S.SYN_SENT or (conn.state == S.SYN_RECEIVED and conn.listener is None)):
        stats.icmp_unreachable += 1
        layer.terminate(conn, os_error(code_errno))
    elif icmp_type == _ICMP_UNREACH and conn.state == S.SYN_RECEIVED and seq == conn.iss:
        stats.icmp_unreachable += 1
        layer.terminate(conn, None)
    else:
        # RFC 5461 / RFC 1122 4.2.3.9: a soft error on a synchronized connection; kept for the
        # application to read (Linux sk_err_soft), never fatal
        stats.icmp_soft_errors += 1
        conn.soft_error = os_error(code_errno)
