"""Start-up time: from launching `tcpip up` to the kernel's first answered ARP and ping (target < 0.5 s).

Run: python -m bench.startup [--runs N]. Needs root, /dev/net/tun and pyroute2; everything happens in a
private namespace (tcpip-u<pid>-<n>, 198.18.0.0/24) that is removed afterwards.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time

from tcpip.netns import Namespace, netns_available

KERNEL = "198.18.0.1/24"
OURS = "198.18.0.2"


def one_run(ns: Namespace, deadline_s: float = 5.0) -> tuple[float, float]:
    """Seconds from spawning `tcpip up` until the kernel has our MAC (ARP answered), and until its first
    ping is answered. The kernel retries ARP every 10 ms here (neigh retrans_time_ms) so its own
    1-second default doesn't blur the measurement."""
    ns.run(["ip", "neigh", "flush", "dev", "tap0"])
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tcpip", "up", "--netns", ns.name, "--tap", "tap0", "--ipv4", f"{OURS}/24"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        arp = ping = None
        while time.monotonic() - t0 < deadline_s and ping is None:
            if arp is None and "lladdr" in ns.run(["ip", "neigh", "show", OURS, "dev", "tap0"]).stdout:
                arp = time.monotonic() - t0
            if ns.run(["ping", "-n", "-c", "1", "-W", "0.02", OURS], timeout=2).returncode == 0:
                ping = time.monotonic() - t0
        if ping is not None and arp is None:
            arp = ping
        if arp is None or ping is None:
            raise RuntimeError(f"no answer within {deadline_s} s")
        return arp, ping
    finally:
        proc.send_signal(signal.SIGTERM)  # our own child, by its PID
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args(argv)
    reason = netns_available()
    if reason is not None:
        print(f"start-up bench skipped: {reason}")
        return 0
    ns = Namespace.create("u")
    try:
        ns.add_tap("tap0")
        ns.add_address("tap0", KERNEL)
        for key, value in (("retrans_time_ms", "10"), ("mcast_solicit", "100")):
            ns.run(["sysctl", "-q", "-w", f"net.ipv4.neigh.tap0.{key}={value}"])
        runs = [one_run(ns) for _ in range(args.runs)]
    finally:
        ns.remove()
    arp = statistics.median(r[0] for r in runs)
    ping = statistics.median(r[1] for r in runs)
    print(f"start-up (median of {len(runs)}; includes starting the Python interpreter): "
          f"first ARP reply after {arp * 1000:.0f} ms, first ping reply after {ping * 1000:.0f} ms "
          f"(target < 500 ms: {'met' if ping < 0.5 else 'MISSED'})")
    print(f"interpreter alone: {interpreter_ms():.0f} ms (python -c pass, for scale)")
    return 0


def interpreter_ms() -> float:
    t = time.monotonic()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return (time.monotonic() - t) * 1000


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
