"""TcpStats: TCP counters, the Linux MIB ones (as_dict() names them like nstat) and one per drop reason/timer."""

from __future__ import annotations

from dataclasses import dataclass, fields

from tcpip.core.tcp.validate import OUTCOMES

# snake_case field -> Linux MIB name (TcpExt names where Linux counts the same event)
_MIB = {
    "active_opens": "ActiveOpens",
    "passive_opens": "PassiveOpens",
    "attempt_fails": "AttemptFails",
    "estab_resets": "EstabResets",
    "curr_estab": "CurrEstab",
    "in_segs": "InSegs",
    "out_segs": "OutSegs",
    "retrans_segs": "RetransSegs",
    "in_errs": "InErrs",
    "in_csum_errors": "InCsumErrors",
    "out_rsts": "OutRsts",
    "timeouts": "TCPTimeouts",
    "fast_retrans": "TCPFastRetrans",
    "delayed_acks": "DelayedACKs",
    "listen_overflows": "ListenOverflows",
    "listen_drops": "ListenDrops",
    "challenge_acks": "TCPChallengeACK",
    "syn_challenges": "TCPSYNChallenge",
    "paws_rejected": "PAWSEstab",
    "tw_recycled": "TWRecycled",
    "ofo_queue": "TCPOFOQueue",
    "ofo_drop": "TCPOFODrop",
    "zero_window_drop": "TCPZeroWindowDrop",
    "abort_on_data": "TCPAbortOnData",
    "abort_on_close": "TCPAbortOnClose",
    "abort_on_timeout": "TCPAbortOnTimeout",
    "rto_retrans": "TCPSlowStartRetrans",
    "tlp_probes": "TCPLossProbes",
    "tlp_recoveries": "TCPLossProbeRecovery",
    "dsack_recv": "TCPDSACKRecv",
    "dsack_undo": "TCPDSACKUndo",
    "sack_reneging": "TCPSACKReneging",
    "syncookies_sent": "SyncookiesSent",
    "syncookies_recv": "SyncookiesRecv",
    "syncookies_failed": "SyncookiesFailed",
    "rx_sack_discard": "TCPSACKDiscard",
    "orphan_overflow": "TCPAbortOnMemory",
    "prune_called": "PruneCalled",
    "ofo_pruned": "OfoPruned",
}


@dataclass(slots=True)
class TcpStats:
    # RFC 4022 / Linux Tcp: MIB
    active_opens: int = 0
    passive_opens: int = 0
    attempt_fails: int = 0
    estab_resets: int = 0
    curr_estab: int = 0  # a gauge: ESTABLISHED + CLOSE_WAIT
    in_segs: int = 0
    out_segs: int = 0  # excluding retransmissions
    retrans_segs: int = 0
    in_errs: int = 0  # malformed or bad checksum
    in_csum_errors: int = 0
    out_rsts: int = 0
    # TcpExt-like
    timeouts: int = 0  # retransmission timer expiries (SYN, SYN-ACK, data, FIN)
    fast_retrans: int = 0
    delayed_acks: int = 0  # ACKs sent by the delayed-ACK timer
    listen_overflows: int = 0  # handshake completions dropped: accept queue full
    listen_drops: int = 0  # SYNs dropped by a listener (queue/half-open table full)
    challenge_acks: int = 0  # RFC 5961 challenge ACKs sent
    syn_challenges: int = 0  # SYNs on synchronized connections
    paws_rejected: int = 0
    tw_recycled: int = 0  # TIME_WAIT 4-tuples reused by a new SYN
    ofo_queue: int = 0  # segments held out of order
    ofo_drop: int = 0  # out-of-order segments dropped (holes limit)
    zero_window_drop: int = 0  # data at rcv_nxt while our window is zero
    abort_on_data: int = 0  # data after the application closed -> RST
    abort_on_close: int = 0  # close() with unread data -> RST
    abort_on_timeout: int = 0  # retries exhausted
    # drop reasons and decisions (snake_case only)
    rx_broadcast: int = 0
    rx_malformed: int = 0
    rx_no_socket: int = 0  # no connection and no listener: RST sent (unless the segment was an RST)
    rx_rst_no_socket: int = 0
    rx_not_acceptable: int = 0  # RFC 9293 3.10.7.4 sequence test failed
    rx_ack_unsent: int = 0  # ACK of data never sent: ACK and drop
    rx_ack_too_old: int = 0  # RFC 5961 5.2
    rx_no_ack: int = 0  # synchronized state, ACK bit off
    rx_rst_accepted: int = 0
    rx_rst_challenged: int = 0
    rx_rst_ignored: int = 0
    rx_syn_ack_bad: int = 0  # SYN-SENT: unacceptable ACK
    rx_listen_bad: int = 0  # a listener got an ACK (RST sent) or a RST
    oow_acks: int = 0  # ACKs sent for unacceptable segments
    oow_ratelimited: int = 0  # ... suppressed by the per-connection rate limit
    challenge_ack_limited: int = 0  # ... suppressed by the global limit
    syn_backlog_full: int = 0  # SYN dropped: max_syn_backlog half-open connections in total
    syn_retrans: int = 0
    synack_retrans: int = 0
    persist_probes: int = 0
    fin_wait2_timeouts: int = 0
    time_wait_expired: int = 0
    time_wait_overflow: int = 0  # max_time_wait reached: closed without TIME_WAIT
    time_wait_fin_reacked: int = 0
    icmp_unreachable: int = 0  # ICMP errors that failed a connect
    icmp_frag_needed: int = 0  # MSS lowered
    icmp_ignored: int = 0  # no connection, or sequence outside snd_una..snd_nxt
    send_errors: int = 0  # Output.tcp_send raised (the segment counts as lost)
    # loss recovery, by what triggered each retransmission (fast_retrans above: duplicate threshold)
    rack_retrans: int = 0  # segments RACK marked lost (RFC 8985 6)
    tlp_retrans: int = 0  # tail loss probes that resent the last segment
    rescue_retrans: int = 0  # RFC 6675 rescue retransmissions
    rto_retrans: int = 0  # resent after a retransmission timeout (the go-back)
    tlp_probes: int = 0  # probe timeouts that sent a probe (new data or the last segment)
    tlp_recoveries: int = 0  # a probe repaired a tail loss (window reduced once, no timeout)
    recoveries: int = 0  # fast-recovery episodes entered (SACK connections)
    dsack_recv: int = 0  # ACKs carrying a D-SACK block (RFC 2883)
    dsack_undo: int = 0  # window reductions undone: every retransmission proved spurious
    sack_reneging: int = 0  # the peer discarded data it had SACKed
    rcvbuf_grown: int = 0  # receive-buffer autotuning steps (autotune.py)
    sndbuf_grown: int = 0  # send-buffer growth steps
    # hostile segments (core/tcp/validate.py; outcomes drop, annotations let the segment go on)
    rx_bad_doff: int = 0  # data offset below 5 or beyond the segment
    rx_syn_fin: int = 0
    rx_syn_rst: int = 0
    rx_no_flags: int = 0  # none of SYN, ACK, RST, FIN
    rx_syn_in_window: int = 0  # RFC 5961 4.2: SYN on a synchronized connection (challenge ACK)
    rx_synrecv_bad_ack: int = 0  # SYN_RECEIVED: ACK outside snd_una+1..snd_max (RST sent)
    rx_csum_zero: int = 0  # checksum field 0 and wrong (TCP has no "no checksum")
    rx_bad_options: int = 0  # option length 0, 1 or past the header: parsing stopped there
    rx_urg_beyond_data: int = 0  # URG pointer past the payload (urgent data is in-band anyway)
    rx_mss_zero: int = 0  # MSS option 0 on a SYN: ignored (default MSS)
    rx_wscale_clamped: int = 0  # window scale above 14 on a SYN: clamped to 14
    rx_sack_discard: int = 0  # segments with SACK blocks outside the window (blocks ignored)
    paws_aged: int = 0  # TS.Recent older than 24 days: PAWS skipped once (RFC 7323 5.5)
    icmp_soft_errors: int = 0  # ICMP errors recorded on synchronized connections (never fatal)
    # SYN cookies (core/tcp/syncookies.py) and resource bounds
    syncookies_sent: int = 0
    syncookies_recv: int = 0  # valid cookies: connections established without a half-open entry
    syncookies_failed: int = 0  # ACKs to a listener that overflowed recently with a bad cookie (RST)
    orphan_overflow: int = 0  # orphans beyond max_orphans reset at close()
    prune_called: int = 0  # receive-memory pressure: out-of-order queues pruned
    ofo_pruned: int = 0  # out-of-order bytes dropped under memory pressure
    mem_drops: int = 0  # in-order data dropped: total buffer memory at its bound even after pruning
    # offloads (in_segs / out_segs / retrans_segs count the segments a super-segment stands for)
    rx_gso_frames: int = 0  # super-segments received (a device's GRO/GSO)
    rx_csum_trusted: int = 0  # segments whose checksum the device vouched for (not verified here)
    tx_tso_frames: int = 0  # super-segments handed to the device to cut (TSO)

    def accepted(self) -> int:
        """Segments taken by a connection or listener: InSegs minus every outcome (drop) counter."""
        drops: int = sum(getattr(self, name) for name in OUTCOMES)
        return self.in_segs - drops

    def as_dict(self) -> dict[str, int]:
        """Every counter; the ones Linux has under their MIB names (ActiveOpens, ...), the rest snake_case."""
        return {_MIB.get(f.name, f.name): getattr(self, f.name) for f in fields(self)}
