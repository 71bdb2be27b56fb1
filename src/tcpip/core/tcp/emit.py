"""Emitting TCP segments in the two bulk cases: plain data/ACK segments without SACK blocks, and TSO super-segments
(with Linux's rule for deferring a short one)."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from tcpip.core.tcp.seq import MASK, seq_lt
from tcpip.errors import NoRouteError, TcpipError
from tcpip.wire.checksum import pseudo_header_sum
from tcpip.wire.tcp import FIN

if TYPE_CHECKING:
    from tcpip.core.tcp.conn import Connection
    from tcpip.core.tcp.scoreboard import Seg

_from = int.from_bytes
_PLAIN = struct.Struct("!HHIIHHHH")  # ports, seq, ack, offset+flags, window, checksum, urgent pointer
_PLAIN_TS = struct.Struct("!HHIIHHHHBBBBII")  # the same + NOP NOP TS(10): a bulk segment's header


def emit_plain(conn: Connection, seq: int, ack: int, flags: int, window: int, payload: memoryview | bytes,
               now: float) -> None:
    """`output._emit` for a data or ACK segment without SACK blocks (every bulk segment): the header packed once
    with its checksum summed from the fields' 16-bit words, so only the payload is read as bytes."""
    src, dst, sp, dp = conn.local_addr, conn.remote_addr, conn.local_port, conn.remote_port
    n = len(payload)
    x = _from(payload, "big") if n else 0
    # pseudo-header (addresses, protocol 6) + ports + seq + ack + window; the payload starts at an even offset
    s = ((x << 8 if n & 1 else x) % 0xFFFF + (src >> 16) + (src & 0xFFFF) + (dst >> 16) + (dst & 0xFFFF) + 6
         + sp + dp + (seq >> 16) + (seq & 0xFFFF) + (ack >> 16) + (ack & 0xFFFF) + window)
    if conn.ts_ok:
        tsv = (int(now * 1000.0) + conn.ts_offset) & MASK  # ts_now, inlined
        tse = conn.ts_recent
        off = 0x8000 | flags
        s = (s + off + 32 + n + 0x0101 + 0x080A + (tsv >> 16) + (tsv & 0xFFFF) + (tse >> 16)
             + (tse & 0xFFFF)) % 0xFFFF
        hdr = _PLAIN_TS.pack(sp, dp, seq, ack, off, window, 0xFFFF - s if s else 0, 0, 1, 1, 8, 10, tsv, tse)
    else:
        off = 0x5000 | flags
        s = (s + off + 20 + n) % 0xFFFF
        hdr = _PLAIN.pack(sp, dp, seq, ack, off, window, 0xFFFF - s if s else 0, 0)
    layer = conn.layer
    stats = layer.stats
    if (n or flags & FIN) and seq_lt(seq, conn.snd_max):
        stats.retrans_segs += 1
    else:
        stats.out_segs += 1
    try:
        layer.output.tcp_send(src, dst, (hdr, payload) if n else (hdr,), now)
    except NoRouteError as e:
        stats.send_errors += 1
        conn.send_error = e
    except TcpipError:
        stats.send_errors += 1


def emit_gso(conn: Connection, seq: int, flags: int, hdr: bytearray, payload: memoryview | bytes, gso: int,
             now: float) -> None:
    """The rest of `output._emit` for a super-segment: partial checksum (the kernel finishes each segment's),
    counters in segments, `Output.tcp_send_gso`."""
    layer = conn.layer
    c = pseudo_header_sum(conn.local_addr, conn.remote_addr, 6, len(hdr) + len(payload))
    hdr[16] = c >> 8
    hdr[17] = c & 0xFF
    stats = layer.stats
    segs = -(-len(payload) // gso)
    if seq_lt(seq, conn.snd_max):
        stats.retrans_segs += segs
    else:
        stats.out_segs += segs
    stats.tx_tso_frames += 1
    send = layer.send_gso
    assert send is not None  # gso > 0 only when tso_max is, and enable_tso sets both
    try:
        send(conn.local_addr, conn.remote_addr, (hdr, payload), len(hdr), gso, now)
    except NoRouteError as e:
        stats.send_errors += 1
        conn.send_error = e
    except TcpipError:
        stats.send_errors += 1


def tso_defer(conn: Connection, segs: list[Seg], limit: int, now: float) -> bool:
    """Linux's tcp_tso_should_defer (tcp_tso_win_divisor 3), for new data the windows cut to `limit` bytes,
    short of a full super-segment, with data in flight (`segs`: the scoreboard, oldest first): wait for the
    ACK that opens room for a bigger one, unless the last send is over 1 ms old, a third of the window is
    available, or the oldest segment in flight left less than half an RTT ago (its ACK is not due yet)."""
    if not segs or now - segs[-1].xmit > 0.001:
        return False
    if limit >= min(conn.cc.cwnd, conn.snd_wnd) // 3:
        return False
    return now - segs[0].xmit >= conn.srtt / 2
