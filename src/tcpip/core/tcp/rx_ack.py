"""The bulk receiver's pure ACK: output.send_ack's segment from a per-connection template, summed in one addition."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from tcpip.core.tcp import output as out
from tcpip.core.tcp.emit import window_field
from tcpip.core.tcp.seq import HALF, MASK
from tcpip.errors import NoRouteError, TcpipError
from tcpip.wire.tcp import ACK

if TYPE_CHECKING:
    from collections.abc import Callable

    from tcpip.core.tcp.conn import Connection

    AckTemplate = tuple[bool, int, Callable[[int, int, bytes, float], bool] | None]

_ACK_TS = struct.Struct("!HHIIHHHHBBBBII")  # 32 bytes: the header with NOP NOP TS, as TcpRepr.emit lays it out
_ACK = struct.Struct("!HHIIHHHH")  # 20 bytes: no options
_OFF_TS, _OFF = 0x8000 | ACK, 0x5000 | ACK  # data offset 8 or 5 words, flags ACK


def ack_template(conn: Connection) -> AckTemplate:
    """What every pure ACK of `conn` shares: (timestamps on, the constant words' sum mod 0xFFFF, the Output's
    optional one-call sender). The constant words are the pseudo-header (addresses, protocol 6, TCP length),
    the ports, data offset + flags and NOP NOP TS kind/length; a 32-bit value's two words sum to the value
    itself mod 0xFFFF (2**16 == 1), so addresses and later seq/ack/TSval/TSecr are added whole."""
    ts = conn.ts_ok
    words = conn.local_addr + conn.remote_addr + 6 + conn.local_port + conn.remote_port
    words += 32 + _OFF_TS + 0x0101 + 0x080A if ts else 20 + _OFF
    send = getattr(conn.layer.output, "tcp_send_ack", None)  # optional in the Output protocol
    return ts, words % 0xFFFF, send


def bulk_ack(conn: Connection, now: float) -> None:
    """`out.send_ack(conn, now)` for the in-order receiver (nothing to SACK): the same bytes and the same state
    changes (last_ack_sent, delayed ACK, rcv_adv, counters). Only seq, ack, window, TSval and TSecr are packed;
    the checksum is the template's sum plus those, folded once; the Output's `tcp_send_ack` (when it has one)
    adds the IPv4 header in one call. A pending D-SACK or receive-queue holes go to send_ack."""
    rb = conn.rcvbuf
    if conn.sack_ok and (conn.dsack is not None or rb.has_holes):
        out.send_ack(conn, now)
        return
    tpl = conn.ack_tpl
    if tpl is None:
        tpl = conn.ack_tpl = ack_template(conn)
    ts, s, send = tpl
    ack = rb.rcv_nxt
    conn.last_ack_sent = ack
    conn.delack_at = None
    conn.ack_pending = 0
    mx = conn.snd_max  # out.acceptable_seq, inlined
    edge = (conn.snd_una + conn.snd_wnd) & MASK
    seq = edge if ((edge - mx) & MASK) >= HALF else mx
    window = window_field(conn)
    sp, dp = conn.local_port, conn.remote_port
    if ts:
        tsv = (int(now * 1000.0) + conn.ts_offset) & MASK  # out.ts_now, inlined
        tse = conn.ts_recent
        s = (s + seq + ack + window + tsv + tse) % 0xFFFF
        hdr = _ACK_TS.pack(sp, dp, seq, ack, _OFF_TS, window, 0xFFFF - s if s else 0, 0, 1, 1, 8, 10, tsv, tse)
    else:
        s = (s + seq + ack + window) % 0xFFFF
        hdr = _ACK.pack(sp, dp, seq, ack, _OFF, window, 0xFFFF - s if s else 0, 0)
    layer = conn.layer
    stats = layer.stats
    stats.out_segs += 1
    src, dst = conn.local_addr, conn.remote_addr
    if send is not None and send(src, dst, hdr, now):
        return
    try:
        layer.output.tcp_send(src, dst, (hdr,), now)
    except NoRouteError as e:
        stats.send_errors += 1
        conn.send_error = e
    except TcpipError:  # any other refusal below us: a lost segment, as in output._emit
        stats.send_errors += 1
