"""The receive fast path for an offloaded in-order data (super-)segment of an established connection: what
TcpLayer.input -> segment_arrives -> bulk_data do for it, in one call and without a TcpRepr."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from tcpip.core.tcp import input as tcp_input
from tcpip.core.tcp.seq import HALF, MASK
from tcpip.core.tcp.state import TcpState
from tcpip.wire.tcp import ACK, PSH

if TYPE_CHECKING:
    from tcpip.core.tcp.layer import TcpLayer

FAST = True  # off: every offloaded segment takes TcpLayer.input (tests compare the two)
_HDR_TS = struct.Struct("!HHIIBBHHHIII")  # TCP header + NOP NOP TS (one 32-bit word) + TSval + TSecr
_NOP_NOP_TS = 0x0101080A
_NOT_ACK_PSH = ~PSH & 0xFF
ESTABLISHED = TcpState.ESTABLISHED


def bulk_in(layer: TcpLayer, src: int, dst: int, payload: memoryview, now: float, gso_size: int = 0) -> bool:
    """Take `payload` (checksum already trusted) when it is the next in-order data of an ESTABLISHED
    connection with timestamps, header NOP NOP TS, flags ACK (+PSH), acknowledging nothing new with nothing
    of ours in flight, PAWS passed and memory below the limit: input()'s counters, segment_arrives' TS.Recent
    update, bulk_data, input()'s memory accounting, and input_offloaded's counters (a super-segment of
    `gso_size` segments when not 0). False: not that case and nothing changed (the caller takes the
    general path)."""
    n = len(payload)
    if n <= 32 or payload[12] != 0x80:
        return False
    sp, dp, seq, ack, _, flags, win, _, _, opts, tsv, _ = _HDR_TS.unpack_from(payload, 0)
    if flags & _NOT_ACK_PSH != ACK or opts != _NOP_NOP_TS:
        return False
    conn = layer.conns.get((dst, dp, src, sp))
    if conn is None or conn.state is not ESTABLISHED or not conn.ts_ok:
        return False
    rb = conn.rcvbuf
    recent = conn.ts_recent
    if seq != rb.rcv_nxt or conn.rcv_adv == seq or (tsv - recent) & MASK >= HALF \
            or layer.mem >= layer.config.mem_limit:
        return False  # out of order, a closed window, PAWS (aged or not), memory pressure: the general path
    last = conn.last_ack_sent
    if seq == last or (seq - last) & MASK >= HALF:  # seq_le(seq, last_ack_sent): RFC 7323 4.3
        conn.ts_recent = tsv
    if not tcp_input.bulk_data(conn, ack, win, payload[32:], n - 32, seq, now):
        conn.ts_recent = recent  # as it was: the general path decides again
        return False
    # input_offloaded's and input()'s counters: a super-segment counts as the segments it stands for
    stats = layer.stats
    stats.rx_csum_trusted += 1
    if gso_size:
        stats.rx_gso_frames += 1
        stats.in_segs += -(-(n - 32) // gso_size)
    else:
        stats.in_segs += 1
    if conn.ts_recent != recent:
        conn.ts_recent_at = now
    # input()'s account(conn): bulk_data never closes the connection
    cur = rb.readable + rb.ooo_bytes + conn.sndbuf.queued
    by_conn = layer.mem_by_conn
    layer.mem += cur - by_conn.get(conn, 0)
    by_conn[conn] = cur
    return True
