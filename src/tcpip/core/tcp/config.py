"""TcpConfig: the tunables of the TCP core (buffers, timers, retries, options, limits), Linux's defaults."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class TcpConfig:
    rcvbuf: int = 262144  # receive buffer (bytes): bounds readable + out-of-order data
    sndbuf: int = 262144  # send buffer (bytes): unacknowledged + unsent data
    rto_initial: float = 1.0  # RFC 6298 2.1
    rto_min: float = 0.2  # Linux TCP_RTO_MIN
    rto_max: float = 120.0  # Linux TCP_RTO_MAX
    syn_retries: int = 6  # net.ipv4.tcp_syn_retries
    synack_retries: int = 5  # net.ipv4.tcp_synack_retries
    retries2: int = 15  # net.ipv4.tcp_retries2 (counted in retransmissions, not Linux's time budget)
    delack: float = 0.04  # Linux TCP_DELACK_MIN
    time_wait: float = 60.0  # 2*MSL (Linux TCP_TIMEWAIT_LEN)
    fin_wait2: float = 60.0  # net.ipv4.tcp_fin_timeout, for connections the application closed
    nodelay: bool = True  # Nagle off by default (asyncio sets TCP_NODELAY)
    initial_cwnd_segments: int = 10  # RFC 6928
    autotune: bool = True  # grow buffers (Linux tcp_moderate_rcvbuf, tcp_sndbuf_expand) up to these caps:
    rcvbuf_max: int = 6 << 20  # net.ipv4.tcp_rmem[2]
    sndbuf_max: int = 4 << 20  # net.ipv4.tcp_wmem[2]
    congestion: str = "cubic"  # "cubic" (RFC 9438 + HyStart++) or "newreno"; Connection.set_congestion
    window_scaling: bool = True  # RFC 7323
    sack: bool = True  # RFC 2018 (SACK-permitted on SYNs; SACK blocks on ACKs while holes exist)
    timestamps: bool = True  # RFC 7323
    max_time_wait: int = 16384  # net.ipv4.tcp_max_tw_buckets (Linux scales it with memory)
    max_syn_backlog: int = 1024  # net.ipv4.tcp_max_syn_backlog: half-open connections, all listeners
    max_ooo_holes: int = 64  # disjoint out-of-order ranges held per connection
    challenge_ack_limit: int = 1000  # net.ipv4.tcp_challenge_ack_limit (per second, global)
    invalid_ratelimit: float = 0.5  # net.ipv4.tcp_invalid_ratelimit (s, per connection)
    persist_max: float = 60.0  # longest interval between zero-window probes
    min_mss: int = 88  # floor for the peer's MSS and ICMP-lowered MSS (Linux TCP_MIN_MSS)
    default_mss: int = 536  # RFC 9293 3.7.1: the MSS assumed when the peer's SYN carries none
    syncookies: int = 1  # net.ipv4.tcp_syncookies: 0 never, 1 when the half-open table is full, 2 always
    max_orphans: int = 4096  # net.ipv4.tcp_max_orphans: closed by the application, still sending FIN
    mem_limit: int = 64 << 20  # bytes held in all receive and send buffers (Linux tcp_mem pressure)
