"""Resource bounds across connections: orphans (max_orphans) and total buffer memory (mem_limit, relieved
by pruning out-of-order queues first, like Linux tcp_prune_ofo_queue); see docs/ROBUSTNESS.md."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tcpip.core.tcp.conn import Connection
    from tcpip.core.tcp.layer import TcpLayer


def note_orphan(layer: TcpLayer, conn: Connection, now: float) -> None:
    """close() left `conn` sending its FIN without an application: bounded by max_orphans (Linux
    tcp_too_many_orphans resets the newest)."""
    if len(layer.orphan_conns) >= layer.config.max_orphans:
        layer.stats.orphan_overflow += 1
        conn.abort(now)
        return
    layer.orphan_conns.add(conn)


def relieve(layer: TcpLayer, conn: Connection) -> bool:
    """Memory at mem_limit: recount exactly (reads and writes since each connection's last segment),
    then prune out-of-order data, this connection's first (Linux tcp_prune_ofo_queue). True when
    below the limit again."""
    limit = layer.config.mem_limit
    for c in layer.mem_by_conn:
        layer.account(c)
    if layer.mem < limit:
        return True
    stats = layer.stats
    stats.prune_called += 1
    for c in (conn, *layer.mem_by_conn):
        if c.rcvbuf.ooo_bytes:
            stats.ofo_pruned += c.rcvbuf.prune_ooo()
            layer.account(c)
            if layer.mem < limit:
                return True
    return False
