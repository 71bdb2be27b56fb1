"""Emitting TCP segments in the two bulk cases: plain data/ACK segments without SACK blocks, and TSO super-segments
(with Linux's rule for deferring a short one)."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tcpip.core.tcp.seq import HALF, MASK, seq_lt
from tcpip.errors import NoRouteError, TcpipError
from tcpip.wire.checksum import pseudo_header_sum
from tcpip.wire.tcp import ACK, FIN

if TYPE_CHECKING:
    from tcpip.core.tcp.conn import Connection
    from tcpip.core.tcp.rx_ack import AckTemplate
    from tcpip.core.tcp.scoreboard import Seg

_from = int.from_bytes
_PLAIN = struct.Struct("!HHIIHHHH")  # ports, seq, ack, offset+flags, window, checksum, urgent pointer
_PLAIN_TS = struct.Struct("!HHIIHHHHBBBBII")  # the same + NOP NOP TS(10): a bulk segment's header
_OFF_TS, _OFF = 0x8000 | ACK, 0x5000 | ACK  # data offset 8 or 5 words, flags ACK


def ack_template(conn: Connection) -> AckTemplate:
    """What every pure ACK of `conn` shares (rx_ack.bulk_ack), and its runs of data segments (clocked.send)
    beyond the payload's length: (timestamps on, the constant words' sum mod 0xFFFF, the Output's optional
    one-call ACK sender). The constant words are the pseudo-header (addresses, protocol 6, TCP length less
    the payload), the ports, data offset + flags ACK and NOP NOP TS kind/length; a 32-bit value's two words
    sum to the value itself mod 0xFFFF (2**16 == 1), so addresses and later seq/ack/TSval/TSecr are added whole."""
    ts = conn.ts_ok
    words = conn.local_addr + conn.remote_addr + 6 + conn.local_port + conn.remote_port
    words += 32 + _OFF_TS + 0x0101 + 0x080A if ts else 20 + _OFF
    send = getattr(conn.layer.output, "tcp_send_ack", None)  # optional in the Output protocol
    return ts, words % 0xFFFF, send


def window_field(conn: Connection) -> int:
    """The 16-bit window to advertise; moves rcv_adv. The right edge never moves back, and moves forward
    only by at least min(rcvbuf/2, MSS) (receiver silly-window avoidance, RFC 9293 3.8.6.2.2).

    With window scaling the field counts units of 2**s bytes: when the edge already offered is not on a
    unit boundary and rounding it up would promise bytes the buffer can't hold, the field says up to
    2**s - 1 bytes less, but rcv_adv (what input accepts up to) stays where it was. The peer may have sent
    up to it already, and its pure ACKs carry that sequence number: rejecting them as beyond the window
    would leave our sending side deaf to every ACK while the buffer is full (RFC 7323 2.4).

    Idempotent: called again with the same rcv_nxt, free space, scale and MSS, and rcv_adv where the call
    left it, it gives the same field and leaves rcv_adv there, so a SACK connection's Recovery memoizes the
    last call (a bulk sender's every run asks with the receive side idle)."""
    rb = conn.rcvbuf
    nxt = rb.rcv_nxt
    free = rb.window()
    rec = conn.rec
    if rec is not None:
        m = rec.wmemo
        if m[0] == nxt and m[1] == free and m[2] == conn.rcv_adv and m[3] == conn.rcv_wscale and \
                m[4] == conn.adv_mss:
            return m[5]
    cur = ((conn.rcv_adv - nxt + HALF) & MASK) - HALF  # seq_sub, inlined (with min/max: per ACK sent)
    cur = cur if cur > 0 else 0
    s = conn.rcv_wscale
    step = conn.config.rcvbuf >> 1
    mss = conn.adv_mss
    if free - cur < (mss if mss < step else step):
        field = (cur + (1 << s) - 1) >> s  # keep the edge (round up: never shrink it)...
        if field << s > free:
            field = free >> s  # ...unless that promises bytes the buffer can't hold (RFC 7323 2.4)
    else:
        field = free >> s
    field = field if field < 0xFFFF else 0xFFFF
    edge = (nxt + (field << s)) & MASK
    if (edge - conn.rcv_adv) & MASK < HALF:  # seq_ge, inlined: rounding down never takes back an offer
        conn.rcv_adv = edge
    if rec is not None:
        rec.wmemo = (nxt, free, conn.rcv_adv, s, mss, field)
    return field


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


def emit_run(conn: Connection, seq: int, count: int, size: int, now: float) -> None:
    """`count` full segments of new data from `seq`, `size` payload bytes each, with ACK only (no PSH/FIN, no
    SACK blocks): what `send_data` + `emit_plain` do for each, with the per-burst work done once (window, ACK,
    timestamps, the header's constant sum, scoreboard and counters) and the IPv4 headers built in one call
    (`Output.tcp_send_run` when the output has it)."""
    src, dst = conn.local_addr, conn.remote_addr
    if conn.ack_tpl is None:
        conn.ack_tpl = ack_template(conn)  # built here as in clocked.send, its stand-in (the same state)
    ack = conn.rcvbuf.rcv_nxt
    conn.last_ack_sent = ack
    conn.delack_at = None
    conn.ack_pending = 0
    ts = ((int(now * 1000.0) + conn.ts_offset) & MASK, conn.ts_recent) if conn.ts_ok else None  # ts_now, inlined
    first = ((seq - conn.buf_seq + HALF) & MASK) - HALF
    segs = _run_headers(conn, conn.sndbuf.views(first, size, count), seq, size, ack, window_field(conn), ts)
    if conn.rtt_seq is None:
        conn.rtt_seq, conn.rtt_time = (seq + size) & MASK, now
    rec = conn.rec
    if rec is not None:
        rec.sb.sent_run(seq, size, count, now)
    layer = conn.layer
    stats = layer.stats
    stats.out_segs += count
    conn.snd_max = conn.snd_nxt = (seq + size * count) & MASK
    output = layer.output
    run = getattr(output, "tcp_send_run", None)  # optional in the Output protocol (the test harnesses lack it)
    if run is not None and run(src, dst, segs, now):
        return
    send_each(conn, segs, now)


def send_each(conn: Connection, segs: Sequence[tuple[bytes, memoryview]], now: float) -> None:
    """A run's segments through `tcp_send` one by one (no `tcp_send_run`, or it declined), as emit_plain
    sends: a failed send is a lost segment."""
    src, dst = conn.local_addr, conn.remote_addr
    layer = conn.layer
    output = layer.output
    stats = layer.stats
    for parts in segs:
        try:
            output.tcp_send(src, dst, parts, now)
        except NoRouteError as e:
            stats.send_errors += 1
            conn.send_error = e
        except TcpipError:
            stats.send_errors += 1


def _run_headers(conn: Connection, views: list[memoryview], seq: int, size: int, ack: int, window: int,
                 ts: tuple[int, int] | None) -> list[tuple[bytes, memoryview]]:
    """emit_run's (header, payload) pairs: the fields' sum is computed once, then per segment only seq and the
    payload's sum are added (seq's two words sum to seq itself mod 0xFFFF, as 2**16 == 1)."""
    src, dst, sp, dp = conn.local_addr, conn.remote_addr, conn.local_port, conn.remote_port
    base = ((src >> 16) + (src & 0xFFFF) + (dst >> 16) + (dst & 0xFFFF) + 6 + sp + dp + (ack >> 16)
            + (ack & 0xFFFF) + window + size)
    odd = size & 1  # an odd payload's last byte is the high half of a word
    segs: list[tuple[bytes, memoryview]] = []
    add = segs.append
    s = seq
    if ts is not None:
        tsv, tse = ts
        off = 0x8000 | ACK
        base += 32 + off + 0x0101 + 0x080A + (tsv >> 16) + (tsv & 0xFFFF) + (tse >> 16) + (tse & 0xFFFF)
        pack = _PLAIN_TS.pack
        for p in views:
            x = _from(p, "big")
            c = ((x << 8 if odd else x) % 0xFFFF + base + s) % 0xFFFF  # (a shift by 0 copies the big int)
            add((pack(sp, dp, s, ack, off, window, 0xFFFF - c if c else 0, 0, 1, 1, 8, 10, tsv, tse), p))
            s = (s + size) & MASK
        return segs
    off = 0x5000 | ACK
    base += 20 + off
    pack = _PLAIN.pack
    for p in views:
        x = _from(p, "big")
        c = ((x << 8 if odd else x) % 0xFFFF + base + s) % 0xFFFF  # (a shift by 0 copies the big int)
        add((pack(sp, dp, s, ack, off, window, 0xFFFF - c if c else 0, 0), p))
        s = (s + size) & MASK
    return segs


def gso_header(conn: Connection, seq: int, ack: int, flags: int, window: int, now: float) -> bytearray:
    """A super-segment's header without SACK blocks (timestamps or no options), checksum field 0: what TcpRepr
    emits for it, in one pack (emit_gso then stores the partial sum)."""
    sp, dp = conn.local_port, conn.remote_port
    if conn.ts_ok:
        tsv = (int(now * 1000.0) + conn.ts_offset) & MASK  # ts_now, inlined
        return bytearray(_PLAIN_TS.pack(sp, dp, seq, ack, 0x8000 | flags, window, 0, 0, 1, 1, 8, 10, tsv,
                                        conn.ts_recent))
    return bytearray(_PLAIN.pack(sp, dp, seq, ack, 0x5000 | flags, window, 0, 0))


def emit_gso(conn: Connection, seq: int, flags: int, hdr: bytearray, parts: Sequence[memoryview | bytes], gso: int,
             now: float) -> None:
    """The rest of `output._emit` for a super-segment (its payload in `parts`): partial checksum (the kernel
    finishes each segment's), counters in segments, `Output.tcp_send_gso`."""
    layer = conn.layer
    n = 0
    for p in parts:
        n += len(p)
    c = pseudo_header_sum(conn.local_addr, conn.remote_addr, 6, len(hdr) + n)
    hdr[16] = c >> 8
    hdr[17] = c & 0xFF
    stats = layer.stats
    segs = -(-n // gso)
    if seq_lt(seq, conn.snd_max):
        stats.retrans_segs += segs
    else:
        stats.out_segs += segs
    stats.tx_tso_frames += 1
    send = layer.send_gso
    assert send is not None  # gso > 0 only when tso_max is, and enable_tso sets both
    try:
        send(conn.local_addr, conn.remote_addr, (hdr, *parts), len(hdr), gso, now)
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
