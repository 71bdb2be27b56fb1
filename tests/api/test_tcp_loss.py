"""Loss recovery between two stacks on a Hub behind a FaultInjector: 1 %, 5 % and 10 % random loss with
reordering and duplication, both directions at once. Every byte arrives once (sha256) within a wall-time
bound, and the per-mechanism counters show who repaired the losses: at 5 % loss fewer than 10 % of the
retransmissions may be driven by the retransmission timer (the rest: RACK, fast retransmit, loss probes)."""

from __future__ import annotations

import asyncio
import hashlib
import random
import time

import pytest
from testlib import pump

from tcpip import Stack
from tcpip.core.tcp.config import TcpConfig
from tcpip.netif import Hub
from tcpip.netif.fault import FaultInjector

CLIENT, SERVER = "198.18.0.1", "198.18.0.2"
MECHANISMS = ("TCPFastRetrans", "rack_retrans", "tlp_retrans", "rescue_retrans", "TCPSlowStartRetrans")


async def lossy_transfer(size: int, drop: float, seed: int, budget: float,
                         config: TcpConfig | None = None) -> dict[str, int]:
    """`size` bytes each way through `drop` loss (+1 % duplication, 5 % reordering); asserts integrity;
    returns both stacks' TCP counters summed."""
    up, down = random.Random(seed).randbytes(size), random.Random(seed + 1).randbytes(size)
    hub = Hub()
    lossy = FaultInjector(hub.port(), seed=seed, hold=0.005, drop=drop, duplicate=0.01, reorder=0.05)
    got: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            got.set_result(await pump(r, w, down))
        except Exception as e:
            got.set_exception(e)
        w.close()

    cfg = config or TcpConfig()
    async with await Stack.connect(lossy, ipv4=f"{CLIENT}/24", rng=random.Random(seed), tcp=cfg) as a, \
            await Stack.connect(hub.port(), ipv4=f"{SERVER}/24", rng=random.Random(seed + 1), tcp=cfg) as b:
        async with await b.start_server(handle, SERVER, 0) as server:
            port = server.sockets[0].getsockname()[1]

            async def client() -> tuple[int, str]:
                r, w = await a.open_connection(SERVER, port)
                res = await pump(r, w, up)
                w.close()
                return res

            t0 = time.monotonic()
            mine, theirs = await asyncio.wait_for(asyncio.gather(client(), got), budget)
            elapsed = time.monotonic() - t0
        assert theirs == (size, hashlib.sha256(up).hexdigest())
        assert mine == (size, hashlib.sha256(down).hexdigest())
        assert lossy.fault_stats.dropped > 0
        ta, tb = a.stats()["tcp"], b.stats()["tcp"]
        total = {k: ta[k] + tb[k] for k in ta}
    mech = {k: total[k] for k in MECHANISMS}
    print(f"\n{size >> 20} MiB each way, {drop:.0%} loss: {elapsed:.1f} s; RetransSegs {total['RetransSegs']}, "
          f"TCPTimeouts {total['TCPTimeouts']}, {mech}, probes {total['TCPLossProbes']}, "
          f"D-SACKs {total['TCPDSACKRecv']}, undo {total['TCPDSACKUndo']}")
    return total


def rto_share(total: dict[str, int]) -> float:
    retrans = sum(total[k] for k in MECHANISMS)
    return total["TCPSlowStartRetrans"] / max(retrans, 1)


@pytest.mark.parametrize(("drop", "size", "budget"), [(0.01, 2 << 20, 30), (0.05, 2 << 20, 30),
                                                        (0.10, 1 << 20, 60)])
async def test_byte_identical_through_loss_and_reordering(drop: float, size: int, budget: float) -> None:
    total = await lossy_transfer(size, drop, seed=11, budget=budget)
    assert total["RetransSegs"] > 0
    assert total["TCPFastRetrans"] + total["rack_retrans"] > 0  # repaired without waiting for a timer
    # every data retransmission is attributed to one mechanism (RetransSegs also has the handshake's)
    attributed = sum(total[k] for k in MECHANISMS)
    assert total["RetransSegs"] - 4 <= attributed <= total["RetransSegs"]


async def test_five_percent_loss_mostly_repaired_without_timeouts() -> None:
    total = await lossy_transfer(4 << 20, 0.05, seed=5, budget=60)
    assert rto_share(total) < 0.10, total


async def test_newreno_is_selectable_and_recovers() -> None:
    total = await lossy_transfer(1 << 20, 0.05, seed=3, budget=30, config=TcpConfig(congestion="newreno"))
    assert rto_share(total) < 0.25, total
