"""Workload for the deterministic figure: N ICMP echo requests through `Interface.receive`.

Run as `valgrind --tool=callgrind python bench/callgrind_echo.py N [tcpip|floor]` with PYTHONHASHSEED=0,
ASLR off (`setarch -R`) and PYTHONDONTWRITEBYTECODE=1 for two values of N: the counts are then
bit-identical run to run, and (instructions(N2) - instructions(N1)) / (N2 - N1) is the instruction count
per received echo (the reply included)."""

from __future__ import annotations

import random
import sys
from pathlib import Path


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench.frames import OUR_IP, OUR_MAC, PEER_IP, PEER_MAC, icmp_echo
    from tcpip.core.config import InterfaceConfig
    from tcpip.core.interface import Interface
    from tcpip.core.stats import as_dict
    from tcpip.wire.mac import MacAddress

    n = int(sys.argv[1])
    impl = sys.argv[2] if len(sys.argv) > 2 else "tcpip"
    mv = memoryview(icmp_echo())
    if impl == "floor":
        from bench.floor import FloorReceiver

        def nothing(src: int, dst: int, p: memoryview) -> None:
            return None

        fl = FloorReceiver(OUR_MAC, OUR_IP, PEER_MAC, nothing, nothing)
        frecv, ftx = fl.receive, fl.tx
        for _ in range(n):
            frecv(mv)
            ftx.clear()
        return 0
    iface = Interface(InterfaceConfig(mac=MacAddress(OUR_MAC), address=OUR_IP, netmask=0xFFFFFF00), now=0.0,
                      rng=random.Random(1))
    iface.arp.add_static(PEER_IP, PEER_MAC)
    recv, tx = iface.receive, iface.tx
    for _ in range(n):
        recv(mv, 1.0)
        tx.clear()
    got = as_dict(iface.icmp_stats)["tx_echo_replies"]
    if got != n:
        raise SystemExit(f"expected {n} replies, got {got}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
