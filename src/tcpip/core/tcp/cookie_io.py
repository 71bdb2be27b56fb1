"""The listener's side of SYN cookies: the stateless SYN-ACK, and the connection rebuilt from a valid ACK."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tcpip.core.tcp.conn import Connection
from tcpip.core.tcp.opening import negotiate
from tcpip.core.tcp.output import ts_now
from tcpip.core.tcp.seq import MASK, seq_add
from tcpip.core.tcp.state import TcpState
from tcpip.core.tcp.syncookies import COOKIE_MAX_AGE, COOKIE_PERIOD, decode_ts, encode_ts
from tcpip.errors import TcpipError
from tcpip.wire.tcp import ACK, SYN, TcpRepr, fill_checksum

if TYPE_CHECKING:
    from tcpip.core.tcp.listener import Listener

COOKIE_LIFETIME = COOKIE_PERIOD * COOKIE_MAX_AGE  # cookie ACKs are checked this long after an overflow


def send_cookie(lst: Listener, syn: TcpRepr, src: int, dst: int, now: float) -> None:
    """Answer `syn` (from src to our dst) with a SYN-ACK whose ISS is a cookie; keep nothing."""
    layer = lst.layer
    cfg = layer.config
    cookie, _ = layer.cookies.make(dst, lst.port, src, syn.src_port, syn.seq,
                                   syn.mss if syn.mss is not None else cfg.default_mss, now)
    r = TcpRepr(lst.port, syn.src_port, cookie, seq_add(syn.seq, 1), SYN | ACK, min(cfg.rcvbuf, 0xFFFF))
    r.mss = layer.adv_mss(src, now)
    if syn.timestamp is not None and cfg.timestamps:
        ws_ok = syn.wscale is not None and cfg.window_scaling
        sack = syn.sack_permitted and cfg.sack
        off = layer.cookies.ts_offset(dst, lst.port, src, syn.src_port)
        tsval = (int(now * 1000.0) + off) & MASK
        r.timestamp = (encode_ts(tsval, syn.wscale if ws_ok else None, sack), syn.timestamp[0])
        r.wscale = layer.our_wscale() if ws_ok else None
        r.sack_permitted = sack
    hdr = bytearray(r.header_len())
    r.emit(hdr)
    fill_checksum(hdr, dst, src, b"")
    stats = layer.stats
    stats.syncookies_sent += 1
    stats.out_segs += 1
    try:
        layer.output.tcp_send(dst, src, (hdr,), now)
    except TcpipError:
        stats.send_errors += 1


def cookie_connection(lst: Listener, ack: TcpRepr, src: int, dst: int, now: float) -> Connection | None:
    """A SYN_RECEIVED connection rebuilt from an ACK carrying a valid cookie (not registered), or None."""
    layer = lst.layer
    cfg = layer.config
    iss = seq_add(ack.ack, -1)
    peer_isn = seq_add(ack.seq, -1)
    mss = layer.cookies.check(dst, lst.port, src, ack.src_port, peer_isn, iss, now)
    if mss is None:
        return None
    ts = ack.timestamp
    wscale: int | None = None
    sack = False
    conn = Connection(layer, dst, lst.port, src, ack.src_port, listener=lst)
    if ts is not None and cfg.timestamps:
        conn.ts_offset = layer.cookies.ts_offset(dst, lst.port, src, ack.src_port)
        if (ts_now(conn, now) - ts[1]) & MASK > COOKIE_LIFETIME * 1000:
            return None  # the echoed TSval is not one of ours from the cookie's lifetime
        wscale, sack = decode_ts(ts[1])
    conn.iss = conn.snd_una = conn.recover = iss
    conn.snd_nxt = conn.snd_max = conn.buf_seq = ack.ack
    conn.adv_mss = layer.adv_mss(src, now)
    conn.mss = conn.adv_mss
    conn.rcv_wscale = layer.our_wscale()
    syn = TcpRepr(ack.src_port, ack.dst_port, peer_isn, 0, SYN, ack.window, mss=mss, wscale=wscale,
                  sack_permitted=sack, timestamp=(ts[0], 0) if ts is not None else None)
    negotiate(conn, syn, now)
    if not conn.ts_ok:
        conn.ws_ok, conn.sack_ok = False, False
        conn.snd_wscale = conn.rcv_wscale = 0
    conn.ts_recent_at = now
    conn.state = TcpState.SYN_RECEIVED
    return conn
