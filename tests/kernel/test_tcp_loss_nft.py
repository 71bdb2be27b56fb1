"""tcpip's TCP through 5 % random loss both ways (nftables on a router namespace) against the kernel:
10 MB each way complete in under 30 s with the right sha256, and when tcpip sends, fewer than 10 % of its
retransmissions are RTO-driven (the rest fast retransmit, RACK, TLP).

Topology (two namespaces of this test, 198.18.0.0/15 only): tcpip on tap0 of the router namespace
(198.18.0.2/24, gateway 198.18.0.1) -> forwarding -> veth -> the server namespace (198.18.1.2) running
bench/tcp_peer.py's asyncio server on kernel sockets. The drops sit on the router's forward hook: a drop in
the server's own output hook would be a local drop its TCP re-sends at once, not a loss on the wire."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from kernel_support import require_tap

from tcpip.netns import Namespace

pytestmark = [pytest.mark.tap, pytest.mark.timeout(60)]

ROOT = Path(__file__).resolve().parents[2]
PEER = str(ROOT / "bench" / "tcp_peer.py")
N = 10_000_000
PORT = 5001
RULES = ("table inet tcpiptest {\n chain lossy { type filter hook forward priority 0; "
         "meta l4proto tcp numgen random mod 100 < 5 counter drop; }\n}\n")
RTO = ("TCPSlowStartRetrans",)  # tcpip's rto_retrans
FAST = ("TCPFastRetrans", "rack_retrans", "tlp_retrans", "rescue_retrans")


def _py(*args: str) -> list[str]:
    path = str(ROOT / "src") + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else "")
    return ["env", f"PYTHONPATH={path}", sys.executable, *args]


def _dropped(router: Namespace) -> int:
    out = router.run(["nft", "list", "table", "inet", "tcpiptest"]).check().stdout
    m = re.search(r"counter packets (\d+)", out)
    assert m is not None, out
    return int(m.group(1))


async def _transfer(router: Namespace, cmd: str) -> dict[str, Any]:
    r = await router.run_async(
        _py(PEER, "tcpip", "198.18.1.2", str(PORT), cmd, str(N), "--gateway", "198.18.0.1"), timeout=35)
    assert not r.timed_out, f"{cmd}: no result in 35 s"
    lines = r.stdout.strip().splitlines()
    assert lines, r.stderr
    res: dict[str, Any] = json.loads(lines[-1])
    return res


async def test_tcpip_through_5_percent_loss_both_ways() -> None:
    require_tap("ip", "nft")
    router = Namespace.create("k")
    server = Namespace.create("k")
    proc = None
    try:
        router.add_tap("tap0")
        router.add_address("tap0", "198.18.0.1/24")
        router.add_veth("veth0", server, "veth1")
        router.add_address("veth0", "198.18.1.1/24")
        server.add_address("veth1", "198.18.1.2/24")
        server.add_route("default", "198.18.1.1")
        router.set_forwarding(True)
        server.run(["ip", "link", "set", "dev", "veth1", "gso_max_segs", "1"]).check()  # a drop = one segment
        router.run(["nft", "-f", "-"], input=RULES).check()
        proc = await server.start(_py(PEER, "server", "198.18.1.2", str(PORT)))
        assert proc.stdout is not None
        assert (await asyncio.wait_for(proc.stdout.readline(), 15)).strip() == b"ready"

        sent = await _transfer(router, "put")  # tcpip sends: its own recovery is under test
        dropped_put = _dropped(router)
        got = await _transfer(router, "get")  # tcpip receives: the kernel recovers, tcpip reassembles
        dropped_get = _dropped(router) - dropped_put

        for what, res in (("send", sent), ("receive", got)):
            assert res["bytes"] == N, (what, res)
            assert res["sha256_ok"], (what, res)
            assert res["seconds"] < 30, (what, res)
        # the loss really happened, on both transfers (~5 % of ~7,000 data segments and ~3,500+ ACKs)
        assert dropped_put > 100
        assert dropped_get > 100
        c = sent["counters"]
        rto, fast = sum(c.get(k, 0) for k in RTO), sum(c.get(k, 0) for k in FAST)
        assert fast > 100, c
        assert rto / (rto + fast) < 0.1, c
    finally:
        if proc is not None:
            await Namespace.stop(proc)  # this PID only
        server.remove()
        router.remove()
    assert not router.exists
    assert not server.exists
