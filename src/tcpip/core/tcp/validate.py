"""Hostile-segment rules applied before demultiplexing: header sanity, flag combinations, option values,
SACK blocks outside the window; each rule a named counter in TcpStats (docs/ROBUSTNESS.md, TCP tables).

A rule either drops the segment silently (an *outcome*: exactly one outcome counter per dropped segment)
or annotates and normalises it (the segment goes on, like Linux): see OUTCOMES and ANNOTATIONS.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from tcpip.core.tcp.seq import seq_add, seq_le, seq_lt
from tcpip.errors import WireError
from tcpip.wire.tcp import ACK, FIN, OPT_EOL, OPT_NOP, RST, SYN, URG, TcpRepr

if TYPE_CHECKING:
    from tcpip.core.tcp.conn import Connection
    from tcpip.core.tcp.stats import TcpStats

MAX_WSCALE = 14  # RFC 7323 2.3
PAWS_24DAYS = 24 * 86400.0  # RFC 7323 5.5: TS.Recent is invalid after 24 idle days (Linux TCP_PAWS_24DAYS)
_U32 = struct.Struct("!I")
_NOP_NOP_TS = 0x0101080A  # the option block of nearly every segment between Linux-like peers (RFC 7323 appendix A)

# Counters that end a segment's processing: each received segment increments at most one of them, and
# a segment that increments none was taken by a connection or listener (TcpStats.accepted()).
OUTCOMES = (
    "rx_broadcast", "in_csum_errors", "rx_malformed", "rx_bad_doff", "rx_syn_fin", "rx_syn_rst",
    "rx_no_flags", "rx_no_socket", "rx_rst_no_socket", "rx_listen_bad", "listen_drops",
    "syncookies_failed", "paws_rejected", "rx_not_acceptable", "rx_rst_ignored", "rx_rst_challenged",
    "rx_syn_in_window", "rx_no_ack", "rx_ack_unsent", "rx_ack_too_old", "rx_syn_ack_bad",
    "rx_synrecv_bad_ack",
)
# Counters that mark a segment which still goes on (Linux processes these too).
ANNOTATIONS = (
    "rx_csum_zero", "rx_bad_options", "rx_urg_beyond_data", "rx_mss_zero", "rx_wscale_clamped",
    "rx_sack_discard",
)


def options_malformed(segment: memoryview, hl: int) -> bool:
    """Whether the option list in segment[20:hl] is cut short by a bad length: 0 or 1, running past the
    header, or a kind byte without its length (the wire parser keeps the options seen before it)."""
    p = 20
    while p < hl:
        kind = segment[p]
        if kind == OPT_EOL:
            return False
        if kind == OPT_NOP:
            p += 1
            continue
        if p + 1 >= hl:
            return True
        size = segment[p + 1]
        if size < 2 or p + size > hl:
            return True
        p += size
    return False


def parse(stats: TcpStats, segment: memoryview) -> tuple[TcpRepr, memoryview] | None:
    """TcpRepr.parse, then check(): (header, payload), or None once the drop is counted."""
    try:
        seg, data = TcpRepr.parse(segment)
    except WireError:
        stats.in_errs += 1
        if len(segment) >= 20:
            stats.rx_bad_doff += 1  # data offset < 5 or past the end
        else:
            stats.rx_malformed += 1
        return None
    if not check(stats, seg, len(data), segment):
        return None
    return seg, data


def check(stats: TcpStats, seg: TcpRepr, dlen: int, segment: memoryview) -> bool:
    """Flag rules (False: drop silently, one outcome counter) and option normalisation (annotations).
    SYN+FIN is the listener's rule (Linux: dropped in LISTEN, challenged when synchronized, RST from a
    closed port); SYN+RST and no flag at all are dropped everywhere, silently."""
    flags = seg.flags
    if flags & SYN:
        if flags & RST:
            stats.rx_syn_rst += 1
            return False
        if seg.mss == 0:
            stats.rx_mss_zero += 1  # Linux ignores an MSS of 0: the default MSS applies
            seg.mss = None
        if seg.wscale is not None and seg.wscale > MAX_WSCALE:
            stats.rx_wscale_clamped += 1
            seg.wscale = MAX_WSCALE
    elif not flags & (ACK | RST | FIN):
        stats.rx_no_flags += 1
        return False
    hl = (segment[12] >> 4) << 2
    # (NOP NOP TS filling a 32-byte header is well formed: the per-segment common case skips the walk)
    if hl > 20 and not (hl == 32 and _U32.unpack_from(segment, 20)[0] == _NOP_NOP_TS) and \
            options_malformed(segment, hl):
        stats.rx_bad_options += 1
    if flags & URG and seg.urgent > dlen:
        stats.rx_urg_beyond_data += 1  # urgent data is in-band: the pointer changes nothing
    return True


def filter_sack(conn: Connection, seg: TcpRepr, stats: TcpStats) -> None:
    """Drop SACK blocks that cannot describe our data (Linux tcp_is_sackblock_valid): empty or reversed,
    ending past snd_max, or older than one window below snd_una (too old even for a D-SACK)."""
    una, top = conn.snd_una, conn.snd_max
    floor = seq_add(una, -max(conn.max_snd_wnd, conn.mss))
    keep = tuple(b for b in seg.sack
                 if seq_lt(b[0], b[1]) and seq_le(b[1], top) and seq_le(floor, b[0]))
    if len(keep) != len(seg.sack):
        stats.rx_sack_discard += 1
        seg.sack = keep
