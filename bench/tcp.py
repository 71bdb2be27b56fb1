"""Bulk TCP: the floor, tcpip and the kernel, each as the client of one kernel-side asyncio server.

Rows (bench/README.md, TCP section): floor-plain and floor-offload (`bench/tcp_floor.py`), tcpip-plain and
tcpip-offload (`bench/tcp_peer.py tcpip`: tcpip's asyncio streams over `TapDevice`), kernel-veth (the same
asyncio client on kernel sockets over a veth pair), and PyTCP (reported unavailable: it needs Python 3.14).
Each TAP row has its own namespace `tcpip-b<pid>-<n>` (kernel side 198.18.0.1/24 on a fresh tap0, so no
offload flags carry over) running `bench/tcp_peer.py server`; each subject runs in that namespace as its own
process, so user+sys CPU from its getrusage() is its own work. Directions, from the subject's side: receive
(`get`: the kernel sends N bytes) and send (`put`). Runs are interleaved round robin; medians of `reps`.
Loss runs: tcpip-plain, 10 MB each way, through a router: the TAP's namespace forwards to the server's
namespace over a veth, and nftables `numgen random mod 100 < N drop` on its forward hook drops TCP both ways
(a drop in a sending host's own output hook is a local drop its TCP re-sends at once, not a loss; the
server's GSO is limited to one segment so that a drop is one segment), against the lossless run on the same
path. Only processes started here are stopped, by PID.
`python -m bench.tcp [--quick]` runs this part alone and prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import shutil
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tcpip
from bench import e2e

Log = Callable[[str], None]
HERE = Path(__file__).resolve().parent
PEER = str(HERE / "tcp_peer.py")
FLOOR = str(HERE / "tcp_floor.py")
# The tcpip the subjects import: TCPBENCH_SRC, else the tree this process imported (so that PYTHONPATH=OTHER/src
# A/B-tests TCP as it does the e2e and micro parts, whose servers get the same tree)
SRC = os.environ.get("TCPBENCH_SRC") or str(Path(tcpip.__file__).resolve().parent.parent)
PORT = 5001
KERNEL_IP = e2e.TAP_KERNEL.split("/", maxsplit=1)[0]
VETH_SERVER_IP = e2e.VETH_SERVER.split("/", maxsplit=1)[0]
VETH_CLIENT_IP = e2e.VETH_CLIENT.split("/", maxsplit=1)[0]
ROWS = ("floor-plain", "floor-offload", "tcpip-plain", "tcpip-offload", "kernel-veth")
DIRS = {"get": "receive", "put": "send"}
LOSS = (0, 1, 5)
LOSS_BYTES = 10_000_000
RTO_COUNTERS = ("TCPSlowStartRetrans",)  # tcpip's rto_retrans: resent after a retransmission timeout
FAST_COUNTERS = ("TCPFastRetrans", "rack_retrans", "tlp_retrans", "rescue_retrans")


def sha256_ms_per_mb(mb: int = 64) -> float:
    """CPU the subjects spend hashing the data they check (part of every row's CPU figure), median of 3."""
    import hashlib
    import time

    from bench.tcp_peer import READ, chunk

    xs = []
    for _ in range(3):
        h = hashlib.sha256()
        t = time.process_time()
        for i in range(mb * 1_000_000 // READ):
            h.update(chunk(i * READ, READ))
        xs.append((time.process_time() - t) * 1000 / (mb * 1_000_000 // READ * READ / 1e6))
    return round(statistics.median(xs), 3)


def pytcp_unavailable() -> str:
    v = sys.version_info
    if v < (3, 14):
        return f"PyTCP 3.0.9 needs Python >= 3.14; this is Python {v.major}.{v.minor}.{v.micro}"
    return "PyTCP 3.0.9 is not wired into this bench"


def _py(*args: str) -> list[str]:
    """Run a bench script with this checkout's src first on the path (an editable install may point elsewhere)."""
    path = SRC + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else "")
    return ["env", f"PYTHONPATH={path}", sys.executable, *args]


def subject(row: str, cmd: str, n: int, host: str = KERNEL_IP) -> list[str]:
    offload = ["--offload"] if row.endswith("-offload") else []
    if row.startswith("floor"):
        return _py(FLOOR, cmd, str(n), *offload)
    if row.startswith("tcpip"):
        gw = ["--gateway", KERNEL_IP] if host != KERNEL_IP else []
        return _py(PEER, "tcpip", host, str(PORT), cmd, str(n), *offload, *gw)
    return _py(PEER, "client", VETH_SERVER_IP, str(PORT), cmd, str(n))


async def run_one(ns: Any, argv: list[str], timeout: float) -> dict[str, Any]:
    r = await ns.run_async(argv, timeout=timeout)
    for line in reversed(r.stdout.strip().splitlines()):
        with contextlib.suppress(ValueError):
            res: dict[str, Any] = json.loads(line)
            if not res.get("ok", True) and "error" not in res:
                res["error"] = f"got {res.get('bytes')} bytes, sha256 {'ok' if res.get('sha256_ok') else 'WRONG'}"
            return res
    why = "timed out" if r.timed_out else f"exit {r.returncode}"
    return {"error": f"{why}: {(r.stderr.strip().splitlines() or ['no output'])[-1]}"}


class Site:
    """A subject's namespace and the kernel server it talks to. kind: "tap" (the server on the TAP's kernel
    side), "veth" (client and server namespaces over a veth pair) or "routed" (the TAP's namespace forwards
    to a server namespace behind a veth: drops there are real losses to both TCPs, see `loss`)."""

    def __init__(self, row: str, kind: str = "tap") -> None:
        self.row, self.kind = row, kind
        self.nss: list[Any] = []
        self.proc: asyncio.subprocess.Process | None = None
        self.host = KERNEL_IP

    @property
    def ns(self) -> Any:
        return self.nss[0]

    @property
    def server_ns(self) -> Any:
        return self.nss[-1]

    async def open(self) -> None:
        from tcpip.netns import Namespace

        if self.kind == "veth":
            self.nss.append(Namespace.create("b"))
            self.host = VETH_SERVER_IP
        else:
            self.nss.append(e2e.tap_namespace())
        if self.kind != "tap":
            self.nss.append(Namespace.create("b"))
            a, b = self.nss
            a.add_veth("veth0", b, "veth1")
            a.add_address("veth0", e2e.VETH_CLIENT)
            b.add_address("veth1", e2e.VETH_SERVER)
        if self.kind == "routed":
            a, b = self.nss
            self.host = VETH_SERVER_IP
            b.add_route("default", VETH_CLIENT_IP)
            a.set_forwarding(True)
            # one segment per skb: a drop is one segment, not a 64 KiB GSO burst
            (await b.run_async(["ip", "link", "set", "dev", "veth1", "gso_max_segs", "1"], timeout=10)).check()
        self.proc = await asyncio.create_subprocess_exec(
            *self.server_ns.argv(_py(PEER, "server", self.host, str(PORT))),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 15)
        if line.strip() != b"ready":
            raise RuntimeError(f"kernel server for {self.row} did not start: {line!r}")

    async def close(self) -> None:
        try:
            if self.proc is not None and self.proc.returncode is None:
                self.proc.terminate()  # this PID only
                try:
                    await asyncio.wait_for(self.proc.wait(), 5)
                except TimeoutError:
                    self.proc.kill()
                    await self.proc.wait()
        finally:
            for ns in self.nss:
                with contextlib.suppress(OSError):
                    ns.remove()


_RUN_KEYS = ("mbit_s", "seconds", "cpu_s", "cpu_ru_s", "cpu_sys_s", "ok", "error")


def summarize(runs: list[dict[str, Any]], n: int) -> dict[str, Any]:
    good = [r for r in runs if "error" not in r]
    out: dict[str, Any] = {
        "runs": [{k: round(r[k], 3) if isinstance(r.get(k), float) else r.get(k) for k in _RUN_KEYS if k in r}
                 for r in runs],
        "verified": bool(good) and all(r.get("ok") for r in good) and len(good) == len(runs)}
    if good:
        out["mbit_s"] = round(statistics.median(r["mbit_s"] for r in good), 1)
        # getrusage: the same user+sys as os.times(), in microseconds rather than 10 ms ticks (an offload
        # transfer of 100 MB is only some 8-25 ticks); the tick figure stays beside it as a cross-check
        out["cpu_ms_per_mb"] = round(statistics.median(r.get("cpu_ru_s", r["cpu_s"]) * 1000 / (n / 1e6)
                                                       for r in good), 3)
        if all("cpu_sys_s" in r for r in good):  # the kernel's share (syscalls, and the peer's softirq work)
            out["cpu_sys_ms_per_mb"] = round(statistics.median(r["cpu_sys_s"] * 1000 / (n / 1e6) for r in good), 3)
        out["cpu_ticks_ms_per_mb"] = round(statistics.median(r["cpu_s"] * 1000 / (n / 1e6) for r in good), 2)
        out["counters"] = good[-1].get("counters", {})
    else:
        out["error"] = "; ".join(r["error"] for r in runs) or "no run"
    return out


async def bulk(rows: tuple[str, ...], n: int, reps: int, log: Log) -> dict[str, Any]:
    sites: list[Site] = []
    samples: dict[str, dict[str, list[dict[str, Any]]]] = {r: {"get": [], "put": []} for r in rows}
    out: dict[str, Any] = {}
    try:
        for row in rows:
            site = Site(row, "veth" if row == "kernel-veth" else "tap")
            sites.append(site)
            await site.open()
        for rep in range(reps):
            for site in sites:
                if site.row in out:  # unavailable
                    continue
                for cmd, d in DIRS.items():
                    r = await run_one(site.ns, subject(site.row, cmd, n), timeout=60 + n / 1e6 * 2)
                    if "unavailable" in r:
                        out[site.row] = {"unavailable": r["unavailable"]}
                        log(f"    {site.row:14} unavailable: {r['unavailable']}")
                        break
                    samples[site.row][cmd].append(r)
                    what = r.get("error") or f"{r['mbit_s']:8.1f} Mbit/s  cpu {r.get('cpu_ru_s', r['cpu_s']):.3f} s"
                    log(f"    {site.row:14} #{rep + 1} {d:7} {what}")
    finally:
        for site in sites:  # every site, even when one close fails
            try:
                await site.close()
            except Exception as e:
                log(f"    {site.row}: clean-up failed: {type(e).__name__}: {e}")
    for row in rows:
        if row not in out:
            out[row] = {cmd: summarize(samples[row][cmd], n) for cmd in DIRS}
    return out


def nft_rules(pct: int) -> str:
    """Random loss both ways on the forwarding path (drops in the sending host's own output hook would be
    local drops that its TCP re-sends at once, never a loss)."""
    return ("table inet tcpipbench {\n chain lossy { type filter hook forward priority 0; "
            f"meta l4proto tcp numgen random mod 100 < {pct} counter drop; }}\n}}\n")


async def _kernel_mib(ns: Any) -> dict[str, int]:
    """The namespace's TcpExt and Tcp counters (/proc/net/netstat, /proc/net/snmp)."""
    r = await ns.run_async(["cat", "/proc/net/netstat", "/proc/net/snmp"], timeout=10)
    out: dict[str, int] = {}
    lines = r.stdout.splitlines()
    for head, vals in zip(lines[::2], lines[1::2], strict=False):
        names, nums = head.split()[1:], vals.split()[1:]
        prefix = head.split(":")[0]
        if prefix in ("TcpExt", "Tcp"):
            out.update({f"{prefix}{k}": int(v) for k, v in zip(names, nums, strict=False) if v.lstrip("-").isdigit()})
    return out


def rto_share(counters: dict[str, int]) -> tuple[int, int, float | None]:
    rto = sum(counters.get(k, 0) for k in RTO_COUNTERS)
    fast = sum(counters.get(k, 0) for k in FAST_COUNTERS)
    return rto, fast, (rto / (rto + fast) if rto + fast else None)


async def loss(n: int, reps: int, log: Log, row: str = "tcpip-plain") -> dict[str, Any]:
    if shutil.which("nft") is None:
        return {"skipped": "nft is not installed (nftables)"}
    site = Site(row, "routed")
    out: dict[str, Any] = {"row": row, "bytes": n, "repeats": reps, "runs": {}}
    try:
        await site.open()
        for pct in LOSS:
            if pct:
                (await site.ns.run_async(["nft", "-f", "-"], input=nft_rules(pct), timeout=10)).check()
            try:
                for cmd, d in DIRS.items():
                    runs = []
                    before = await _kernel_mib(site.server_ns)
                    for _ in range(reps):
                        runs.append(await run_one(site.ns, subject(row, cmd, n, site.host), timeout=90))
                        r = runs[-1]
                        log(f"    {row} {pct}% loss {d:7} " + (r.get("error") or
                            f"{r['mbit_s']:8.1f} Mbit/s in {r['seconds']:.2f} s, rto/fast "
                            f"{rto_share(r.get('counters', {}))[:2]}"))
                    after = await _kernel_mib(site.server_ns)
                    s = summarize(runs, n)
                    s["max_seconds"] = max((r["seconds"] for r in runs if "seconds" in r), default=None)
                    rto = fast = 0
                    for r in runs:
                        a, b, _ = rto_share(r.get("counters", {}))
                        rto, fast = rto + a, fast + b
                    s["tcpip_retrans"] = {"rto": rto, "fast_rack_tlp": fast,
                                          "rto_share": None if rto + fast == 0 else round(rto / (rto + fast), 4)}
                    s["kernel"] = {k: after.get(k, 0) - before.get(k, 0) for k in (
                        "TcpRetransSegs", "TcpExtTCPTimeouts", "TcpExtTCPSlowStartRetrans", "TcpExtTCPFastRetrans",
                        "TcpExtTCPLossProbes", "TcpExtTCPLostRetransmit")}
                    out["runs"].setdefault(str(pct), {})[cmd] = s
            finally:
                if pct:
                    await site.ns.run_async(["nft", "delete", "table", "inet", "tcpipbench"], timeout=10)
    finally:
        await site.close()
    return out


def run(quick: bool, log: Log, *, docs: bool | None = None) -> dict[str, Any]:
    why = e2e.unavailable()
    if why:
        log(f"  skipped: {why}")
        return {"skipped": why}
    from tcpip.netns import cleanup_stale

    cleanup_stale()
    n = 20_000_000 if quick else 100_000_000
    reps = 1 if quick else 3
    res: dict[str, Any] = {"bytes": n, "repeats": reps, "pytcp": pytcp_unavailable(),
                           "sha256_ms_per_mb": sha256_ms_per_mb(),
                           "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                           "cpus": os.cpu_count()}
    try:
        res["rows"] = e2e._run_loop(None, lambda: bulk(ROWS, n, reps, log))
    except Exception as e:  # a broken set-up must not hide the other parts' results
        res["rows"] = {"error": f"{type(e).__name__}: {e}"}
        log(f"  bulk runs failed: {res['rows']['error']}")
    log(f"    pytcp          unavailable: {res['pytcp']}")
    try:
        res["loss"] = e2e._run_loop(None, lambda: loss(LOSS_BYTES, 1 if quick else 3, log))
    except Exception as e:
        res["loss"] = {"skipped": f"failed: {type(e).__name__}: {e}"}
        log(f"  loss runs failed: {res['loss']['skipped']}")
    from bench import tcp_report

    if docs if docs is not None else not quick:
        for f in tcp_report.write_docs(res, HERE.parent / "docs" / "bench"):
            log(f"  written: {f}")
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20 MB once instead of 100 MB three times")
    ap.add_argument("--docs", action=argparse.BooleanOptionalAction, default=None,
                    help="write docs/bench/tcp.md and tcp.png (default: in full runs)")
    a = ap.parse_args(argv)
    print(json.dumps(run(a.quick, print, docs=a.docs), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
