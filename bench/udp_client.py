"""UDP echo client for the end-to-end runs, executed inside a namespace (`ip netns exec ... python this`).

One datagram in flight: send, wait for its echo (stale echoes of timed-out datagrams are skipped), repeat.
Bounded by a datagram count, a per-datagram timeout and a total time cap. Prints one JSON line.
Standard library only (it runs in a bare `python` inside the namespace).
"""

from __future__ import annotations

import argparse
import json
import socket
import time


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("--port", type=int, default=7)
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--size", type=int, default=32, help="payload bytes (>= 4)")
    ap.add_argument("--timeout", type=float, default=1.0, help="seconds to wait for one echo")
    ap.add_argument("--cap", type=float, default=30.0, help="seconds for the whole run")
    ap.add_argument("--warmup", type=int, default=200)
    a = ap.parse_args()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((a.host, a.port))
    pad = bytes(max(0, a.size - 4))
    # Warm-up (ARP, caches): not counted. Give up after a few seconds of silence.
    s.settimeout(0.5)
    warm_ok = 0
    deadline = time.monotonic() + 5.0
    i = 0
    while warm_ok < a.warmup and time.monotonic() < deadline:
        msg = (0x80000000 | i).to_bytes(4, "big") + pad
        i += 1
        s.send(msg)
        try:
            while s.recv(65536) != msg:
                pass
            warm_ok += 1
        except TimeoutError:
            pass
    s.settimeout(a.timeout)
    ok = lost = stale = 0
    t0 = time.perf_counter()
    cap_hit = False
    for seq in range(a.count):
        if time.perf_counter() - t0 > a.cap:
            cap_hit = True
            break
        msg = seq.to_bytes(4, "big") + pad
        s.send(msg)
        try:
            while True:
                r = s.recv(65536)
                if r == msg:
                    ok += 1
                    break
                stale += 1
        except TimeoutError:
            lost += 1
        except ConnectionRefusedError:  # ICMP port unreachable
            lost += 1
    elapsed = time.perf_counter() - t0
    sent = ok + lost
    print(json.dumps({"sent": sent, "received": ok, "lost": lost, "stale": stale, "elapsed": elapsed,
                      "rtt_per_s": ok / elapsed if elapsed > 0 else 0.0, "cap_hit": cap_hit,
                      "warmup_ok": warm_ok}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
