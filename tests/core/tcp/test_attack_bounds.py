"""Resource bounds: total buffer memory (out-of-order data pruned first, then text dropped with the ACK
kept), orphaned connections, the TIME_WAIT table; each with its counter."""

from __future__ import annotations

from tcp_harness import REMOTE_ISS, Harness

from tcpip.core.tcp.state import TcpState
from tcpip.wire.tcp import ACK, FIN

S = TcpState
NXT = REMOTE_ISS + 1


def _conns(h: Harness, n: int) -> list:
    lst = h.listen()
    lst.backlog = n + 1
    out = []
    for i in range(n):
        h.feed(REMOTE_ISS, 0, 2, sport=30000 + i)
        sa, _ = h.take_one()
        h.feed(NXT, sa.seq + 1, ACK, sport=30000 + i)
        c = lst.accept()
        assert c is not None
        out.append(c)
    return out


def test_memory_pressure_prunes_out_of_order_first_then_drops_text() -> None:
    h = Harness(mem_limit=20000, rcvbuf=16384)
    a, b = _conns(h, 2)
    h.feed(NXT + 1000, a.snd_nxt, ACK, payload=b"o" * 8000, sport=30000)  # out of order on a
    h.feed(NXT, b.snd_nxt, ACK, payload=b"i" * 12000, sport=30001)  # in order on b: 20000 held
    assert h.layer.mem == 20000
    h.take()
    h.feed(NXT + 12000, b.snd_nxt, ACK, payload=b"j" * 1000, sport=30001)
    st = h.layer.stats
    assert (st.prune_called, st.ofo_pruned, st.mem_drops) == (1, 8000, 0)
    assert a.rcvbuf.ooo_bytes == 0
    assert b.readable == 13000
    h.feed(NXT, a.snd_nxt, ACK, payload=b"k" * 7000, sport=30000)  # in order on a: 20000 held again
    assert h.layer.mem == 20000
    h.take()
    h.feed(NXT + 13000, b.snd_nxt, ACK | FIN, payload=b"l" * 100, sport=30001)  # nothing to prune: dropped
    assert (st.prune_called, st.mem_drops) == (2, 1)
    assert b.readable == 13000
    assert b.state == S.ESTABLISHED  # the FIN went with the text
    ack, _ = h.take_one()
    assert ack.ack == NXT + 13000
    b.recv(1.0)
    h.take()
    h.feed(NXT + 13000, b.snd_nxt, ACK | FIN, payload=b"l" * 100, sport=30001, at=1.1)
    assert b.readable == 100
    assert b.state == S.CLOSE_WAIT
    assert h.layer.mem == 7100


def test_orphans_bounded() -> None:
    h = Harness(max_orphans=2)
    conns = _conns(h, 3)
    for c in conns:
        c.close(1.0)
    assert [c.state for c in conns] == [S.FIN_WAIT_1, S.FIN_WAIT_1, S.CLOSED]
    assert h.layer.orphans == 2
    assert h.layer.stats.orphan_overflow == 1
    assert h.take()[-1][0].flags & 4  # the third got a RST
    h.feed(NXT, conns[0].snd_nxt, ACK | FIN, sport=30000, at=1.1)
    assert conns[0].state == S.TIME_WAIT
    assert h.layer.orphans == 1


def test_time_wait_table_bounded() -> None:
    h = Harness(max_time_wait=1)
    conns = _conns(h, 2)
    for i, c in enumerate(conns):
        c.close(1.0)
        fin, _ = h.take()[-1]
        h.feed(NXT, fin.seq + 1, ACK | FIN, sport=30000 + i, at=1.1)
    assert [c.state for c in conns] == [S.TIME_WAIT, S.CLOSED]
    assert h.layer.stats.time_wait_overflow == 1
    assert h.layer.orphans == 0
