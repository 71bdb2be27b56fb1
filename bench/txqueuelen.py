"""Does a longer kernel queue toward the TAP reader (txqueuelen) change the loss under a bounded UDP flood?

The kernel (a Python socket in a private namespace tcpip-q<pid>-<n>, 198.18.0.1) sends N datagrams to
tcpip's UDP echo (198.18.0.2:7) as fast as it can; tcpip runs in this process on the TAP. For each
txqueuelen, per run: datagrams the sender got out, datagrams tcpip received, and the kernel interface's
tx_dropped (read with netlink through `stack.stats()["device"]`). Runs of the lengths are interleaved,
so noise hits them alike; the figures are counts, but the machine's speed decides how fast tcpip drains,
so they vary between runs and machines (report the spread).

    sudo python3 bench/txqueuelen.py [--count 20000] [--repeat 3] [--lengths 500,1000,4000,10000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys

from tcpip import Stack
from tcpip.netns import Namespace, netns_available

_SENDER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
sent = 0
for _ in range(int(sys.argv[1])):
    try:
        s.sendto(b"x" * 64, ("198.18.0.2", 7))
        sent += 1
    except OSError:
        pass
print(sent)
"""


async def one_run(ns: Namespace, qlen: int, count: int) -> tuple[int, int, int]:
    """(sent, received by tcpip, kernel tx_dropped) for one flood with the queue at `qlen` frames."""
    await asyncio.to_thread(ns.run, ["ip", "link", "set", "tap0", "txqueuelen", str(qlen)])
    dev = await ns.open_tap("tap0", mtu=None, txqueuelen=0)  # 0: leave the length just set alone
    async with await Stack.connect(dev, ipv4="198.18.0.2/24") as stack:
        await stack.udp_echo(7)
        assert stack.stats()["device"]["kernel_txqueuelen"] == qlen
        r = await ns.run_async(["ping", "-c", "1", "-W", "1", "198.18.0.2"])  # ARP settled first
        assert r.returncode == 0, r.stdout
        d0 = stack.stats()["device"]["kernel_tx_dropped"]
        u0 = stack.stats()["udp"]["rx_datagrams"]
        res = (await ns.run_async([sys.executable, "-c", _SENDER, str(count)], timeout=60)).check()
        await asyncio.sleep(0.5)  # let the queue drain
        st = stack.stats()
        return int(res.stdout), st["udp"]["rx_datagrams"] - u0, st["device"]["kernel_tx_dropped"] - d0


async def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--lengths", default="500,1000,4000,10000")
    a = ap.parse_args(argv)
    reason = netns_available()
    if reason is not None:
        print(f"skipped: {reason}")
        return 0
    lengths = [int(x) for x in a.lengths.split(",")]
    rows: dict[int, list[tuple[int, int, int]]] = {q: [] for q in lengths}
    with Namespace.create("q") as ns:
        ns.add_tap("tap0")
        ns.add_address("tap0", "198.18.0.1/24")
        for _ in range(a.repeat):
            for q in lengths:  # interleaved
                rows[q].append(await one_run(ns, q, a.count))
    print(f"{a.count} datagrams of 64 bytes per flood, {a.repeat} floods per length")
    print(f"{'txqueuelen':>10} {'sent':>8} {'received':>9} {'tx_dropped':>11} {'loss %':>7}  (median; loss % per run)")
    for q in lengths:
        r = rows[q]
        loss = [100.0 * d / s for s, _, d in r]
        print(f"{q:>10} {statistics.median(s for s, _, _ in r):>8.0f} {statistics.median(x for _, x, _ in r):>9.0f} "
              f"{statistics.median(d for _, _, d in r):>11.0f} {statistics.median(loss):>7.1f}  "
              + " ".join(f"{x:.1f}" for x in loss))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
