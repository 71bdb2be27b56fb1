"""The bulk receiver's pure ACK: output.send_ack's segment for header prediction, packed in one call."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from tcpip.core.tcp import output as out
from tcpip.core.tcp.emit import window_field
from tcpip.errors import NoRouteError, TcpipError
from tcpip.wire.checksum import checksum, pseudo_header_sum
from tcpip.wire.tcp import ACK

if TYPE_CHECKING:
    from tcpip.core.tcp.conn import Connection

_ACK_TS = struct.Struct("!HHIIBBHHHBBBBII")  # 32 bytes: the header with NOP NOP TS, as TcpRepr.emit lays it out
_NOP, _TS = 1, 8


def bulk_ack(conn: Connection, now: float) -> None:
    """`out.send_ack(conn, now)` for the in-order receiver (timestamps on, nothing to SACK): the same bytes
    and the same state changes (last_ack_sent, delayed ACK, rcv_adv, counters), without TcpRepr and the
    general option writer. Anything else goes to send_ack."""
    if not conn.ts_ok or conn.dsack is not None or conn.rcvbuf.has_holes:
        out.send_ack(conn, now)
        return
    ack = conn.rcvbuf.rcv_nxt
    conn.last_ack_sent = ack
    conn.delack_at = None
    conn.ack_pending = 0
    src, dst = conn.local_addr, conn.remote_addr
    hdr = bytearray(32)
    _ACK_TS.pack_into(hdr, 0, conn.local_port, conn.remote_port, out.acceptable_seq(conn), ack, 0x80, ACK,
                      window_field(conn), 0, 0, _NOP, _NOP, _TS, 10, out.ts_now(conn, now), conn.ts_recent)
    c = checksum(hdr, pseudo_header_sum(src, dst, 6, 32))
    hdr[16] = c >> 8
    hdr[17] = c & 0xFF
    layer = conn.layer
    stats = layer.stats
    stats.out_segs += 1
    try:
        layer.output.tcp_send(src, dst, (hdr,), now)
    except NoRouteError as e:
        stats.send_errors += 1
        conn.send_error = e
    except TcpipError:  # any other refusal below us: a lost segment, as in output._emit
        stats.send_errors += 1
