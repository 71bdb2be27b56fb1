"""RSTs for segments that belong to no connection (RFC 9293 3.10.7.1) and the challenge-ACK budget (RFC 5961)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tcpip.core.tcp.seq import seq_add
from tcpip.errors import TcpipError
from tcpip.wire.tcp import ACK, FIN, RST, SYN, TcpRepr, fill_checksum

if TYPE_CHECKING:
    from tcpip.core.tcp.layer import TcpLayer


def challenge_allowed(layer: TcpLayer, now: float) -> bool:
    """The global challenge-ACK budget: per second, a random count in [limit/2, limit*3/2), so an
    attacker cannot count our challenges to infer a connection's window (CVE-2016-5696, Linux)."""
    sec = int(now)
    if sec != layer._challenge_second:
        layer._challenge_second = sec
        limit = layer.config.challenge_ack_limit
        layer._challenge_budget = limit // 2 + layer.rng.randrange(limit) if limit > 0 else 0
    if layer._challenge_budget <= 0:
        return False
    layer._challenge_budget -= 1
    return True


def send_reset(layer: TcpLayer, src: int, dst: int, seg: TcpRepr, dlen: int, now: float) -> None:
    """RST answering `seg`: <SEQ=SEG.ACK><CTL=RST> if it had an ACK, else
    <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>. Never in answer to a RST."""
    flags = seg.flags
    if flags & RST:
        return
    if flags & ACK:
        r = TcpRepr(seg.dst_port, seg.src_port, seg.ack, 0, RST, 0)
    else:
        n = dlen + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
        r = TcpRepr(seg.dst_port, seg.src_port, 0, seq_add(seg.seq, n), RST | ACK, 0)
    hdr = bytearray(20)
    r.emit(hdr)
    fill_checksum(hdr, src, dst, b"")
    layer.stats.out_rsts += 1
    layer.stats.out_segs += 1
    try:
        layer.output.tcp_send(src, dst, (hdr,), now)
    except TcpipError:
        layer.stats.send_errors += 1
