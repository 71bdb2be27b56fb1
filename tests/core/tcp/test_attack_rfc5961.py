"""Blind in-window attacks (RFC 5961), challenge-ACK limits, PAWS with TS.Recent aging (RFC 7323 5.5) and
ICMP against TCP (RFC 5927)."""

from __future__ import annotations

import errno
import random
import struct

from tcp_harness import LOCAL, LPORT, REMOTE, REMOTE_ISS, RPORT, Harness

from tcpip.core.tcp.config import TcpConfig
from tcpip.core.tcp.layer import TcpLayer
from tcpip.core.tcp.state import TcpState
from tcpip.core.tcp.validate import PAWS_24DAYS
from tcpip.wire.tcp import ACK, RST, SYN

S = TcpState
NXT = REMOTE_ISS + 1


def test_in_window_rst_gets_a_challenge_ack_exact_rst_resets() -> None:
    h = Harness()
    conn = h.passive()
    h.feed(NXT + 100, 0, RST, at=1.0)
    ack, _ = h.take_one()
    assert (ack.flags, ack.seq, ack.ack) == (ACK, conn.snd_nxt, NXT)
    assert conn.state == S.ESTABLISHED
    h.feed(NXT, 0, RST, at=2.0)
    assert S(conn.state) == S.CLOSED
    assert h.layer.stats.rx_rst_challenged == 1
    assert h.layer.stats.challenge_acks == 1


def test_in_window_syn_gets_a_challenge_ack() -> None:
    h = Harness()
    conn = h.passive()
    h.feed(NXT + 10, 0, SYN, at=1.0)
    ack, _ = h.take_one()
    assert (ack.flags, ack.ack) == (ACK, NXT)
    assert conn.state == S.ESTABLISHED
    assert h.layer.stats.rx_syn_in_window == 1


def test_ack_beyond_snd_nxt_challenged_and_rate_limited() -> None:
    h = Harness()
    conn = h.passive()
    for i in range(5):
        h.feed(NXT, conn.snd_nxt + 10**6, ACK, at=1.0 + i * 0.1)  # within one tcp_invalid_ratelimit
    assert len(h.take()) == 1
    h.feed(NXT, conn.snd_nxt + 10**6, ACK, at=1.6)
    assert len(h.take()) == 1
    st = h.layer.stats
    assert (st.rx_ack_unsent, st.challenge_acks, st.oow_ratelimited) == (6, 2, 4)


def test_ack_too_old_challenged() -> None:
    h = Harness()
    conn = h.passive()
    h.feed(NXT, conn.snd_una - 10**6, ACK, at=1.0)
    ack, _ = h.take_one()
    assert ack.flags == ACK
    assert h.layer.stats.rx_ack_too_old == 1


def test_global_challenge_budget_randomised_around_the_limit() -> None:
    layer = TcpLayer(TcpConfig(challenge_ack_limit=100), object(), random.Random(3), b"k")  # type: ignore[arg-type]
    budgets = set()
    for sec in range(20):
        n = 0
        while layer.challenge_allowed(float(sec)):
            n += 1
        assert 50 <= n < 150
        budgets.add(n)
    assert len(budgets) > 5  # not a constant an attacker can count


def test_paws_drops_old_timestamp_but_not_rst() -> None:
    h = Harness(timestamps=True)
    conn = h.passive(timestamp=(1000, 0))
    h.feed(NXT, conn.snd_nxt, ACK | 8, payload=b"old", timestamp=(900, 0), at=1.0)
    assert conn.readable == 0
    assert h.layer.stats.paws_rejected == 1
    h.take()
    h.feed(NXT, 0, RST, timestamp=(900, 0), at=2.0)
    assert S(conn.state) == S.CLOSED


def test_ts_recent_ages_after_24_days() -> None:
    h = Harness(timestamps=True)
    conn = h.passive(timestamp=(1000, 0))
    h.feed(NXT, conn.snd_nxt, ACK, payload=b"a", timestamp=(2000, 0), at=1.0)
    assert conn.ts_recent == 2000
    later = 1.0 + PAWS_24DAYS + 1
    h.feed(NXT + 1, conn.snd_nxt, ACK, payload=b"b", timestamp=(5, 0), at=later)  # wrapped clock
    assert conn.recv(later) == b"ab"
    assert conn.ts_recent == 5
    assert h.layer.stats.paws_aged == 1
    assert h.layer.stats.paws_rejected == 0


def _quote(seq: int) -> memoryview:
    ip = struct.pack("!BBHHHBBHII", 0x45, 0, 60, 0, 0, 64, 6, 0, LOCAL, REMOTE)
    return memoryview(ip + struct.pack("!HHI", LPORT, RPORT, seq))


def test_icmp_outside_send_window_ignored() -> None:
    h = Harness()
    conn = h.active()
    conn.send(b"z" * 100, 1.0)
    for seq in (conn.snd_una - 1, conn.snd_max + 1, conn.snd_una + 2**31):
        h.layer.icmp_error(3, 1, 0, _quote(seq), 1.1)
    assert h.layer.stats.icmp_ignored == 3
    assert conn.soft_error is None


def test_icmp_soft_errors_recorded_never_fatal() -> None:
    h = Harness()
    conn = h.active()
    conn.send(b"z" * 100, 1.0)
    for t, code in ((3, 1), (3, 3), (11, 0), (12, 0), (3, 13)):
        h.layer.icmp_error(t, code, 0, _quote(conn.snd_una), 1.1)
        assert conn.state == S.ESTABLISHED
    assert h.layer.stats.icmp_soft_errors == 5
    assert conn.soft_error is not None
    assert conn.soft_error.errno == errno.EHOSTUNREACH
    h.layer.icmp_error(4, 0, 0, _quote(conn.snd_una), 1.2)  # source quench: ignored (RFC 6633)
    assert h.layer.stats.icmp_ignored == 1
