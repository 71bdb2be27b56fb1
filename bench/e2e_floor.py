"""The validating floor on a TAP: what a hand-written Python responder that checks what a host must check
costs per echo, beside the minimal responder (no validation) and tcpip, in the same run.

`python -m bench.e2e_floor [--reps N] [--count N] [--no-pin] [--loop asyncio|uvloop]` (root): one namespace
and one server process per implementation (`bench/e2e_server.py --impl responder|floor|tcpip`), the loads of
`python -m bench --e2e` (ping -f, the one-in-flight UDP echo) round robin, and per repeat the ratios of rate
and CPU per echo to the minimal responder's, then their medians. The floor (`FloorResponder`) validates
like tcpip's fast paths (Ethernet destination, IPv4 version/IHL/length/fragments/header checksum, martian
sources, the ICMP and UDP checksums) and builds each reply's IPv4 header whole (ident, TTL, checksum); it has
no ARP cache, routing, counters or layers. It answers what issue 10's targets ask of a validating stack.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import struct
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
_RX = struct.Struct("!6s6sHBBHHHBBHII")  # Ethernet header, then the IPv4 header
_IP_OUT = struct.Struct("!HHHBBHII")  # total length, ident, flags/fragment, TTL, protocol, checksum, src, dst
_from = int.from_bytes


class FloorResponder:
    """ARP, ICMP echo and UDP echo (port 7) answered with a host's input checks, in one reader callback."""

    def __init__(self, fd: int, mac: bytes, ip: bytes) -> None:
        self.fd = fd
        self.mac = mac
        self.ip_b = ip
        self.ip = _from(ip, "big")
        self.ident = 0
        self.answered = 0
        self.dropped = 0
        self.wakeups = 0

    def drain(self) -> None:
        self.wakeups += 1
        for _ in range(256):
            try:
                f = os.read(self.fd, 2048)
            except (BlockingIOError, InterruptedError):
                return
            out = self.answer(f)
            if out is None:
                self.dropped += 1
                continue
            try:
                os.write(self.fd, out)
            except OSError:
                continue
            self.answered += 1

    def answer(self, f: bytes) -> bytes | bytearray | None:
        n = len(f)
        if n < 42:  # the shortest ARP packet or echo in an Ethernet frame
            return None
        dmac, smac, et, vihl, _tos, total, _id, ff, _ttl, proto, _c, src, dst = _RX.unpack_from(f, 0)
        if et == 0x0806:
            return self._arp(f)
        if (et != 0x0800 or vihl != 0x45 or dst != self.ip or dmac != self.mac or ff & 0x3FFF or total < 28
                or total + 14 > n or smac[0] & 1 or src == dst or not 0 < src >> 24 < 224 or src >> 24 == 127):
            return None
        x = _from(f[14:34], "big")
        if x % 0xFFFF or not x:
            return None
        end = 14 + total
        if proto == 1:
            if f[34] != 8:
                return None
            x = _from(f[34:end], "big") << 8 if total & 1 else _from(f[34:end], "big")
            if x % 0xFFFF or not x:
                return None
            out = bytearray(f[:end])
            h = f[36] << 8 | f[37]  # RFC 1624 for type 8 -> 0
            out[36:38] = (h + 0x800 if h < 0xF7FF else (h - 0xF7FF or 0xFFFF)).to_bytes(2, "big")
            out[34] = 0
        elif proto == 17:
            ulen = f[38] << 8 | f[39]
            if f[36:38] != b"\x00\x07" or ulen < 8 or ulen > total - 20:
                return None
            if f[40] | f[41]:  # RFC 768: a zero checksum was not computed
                p = _from(f[34:34 + ulen], "big") << 8 if ulen & 1 else _from(f[34:34 + ulen], "big")
                if (p + src + dst + 17 + ulen) % 0xFFFF:
                    return None
            out = bytearray(f[:end])
            out[34:38] = f[36:38] + f[34:36]
        else:
            return None
        out[0:12] = smac + self.mac
        self.ident = ident = (self.ident + 1) & 0xFFFF
        s = (0x4500 + total + ident + ff + (64 << 8 | proto) + self.ip + src) % 0xFFFF
        _IP_OUT.pack_into(out, 16, total, ident, ff, 64, proto, 0xFFFF - s if s else 0, self.ip, src)
        return out

    def _arp(self, f: bytes) -> bytes | None:
        if f[12:14] != b"\x08\x06" or f[14:22] != b"\x00\x01\x08\x00\x06\x04\x00\x01" or f[38:42] != self.ip_b:
            return None
        return f[6:12] + self.mac + b"\x08\x06" + f[14:20] + b"\x00\x02" + self.mac + self.ip_b + f[22:32]


async def _session(impls: list[str], loop_name: str, count: int, cap: int, reps: int) -> dict[str, Any]:
    from bench import e2e
    from bench.frames import OUR_IP_S
    from tcpip.netns import Namespace

    nss = {i: e2e.tap_namespace() for i in impls}
    procs: dict[str, Any] = {}
    res: dict[str, dict[str, list[dict[str, Any]]]] = {i: {"ping": [], "udp": []} for i in impls}
    try:
        for i in impls:
            procs[i] = await e2e.start_server(nss[i], i, loop_name, reps * (2 * cap + 60) + 120)
            await nss[i].run_async(e2e.pinned(["ping", "-c", "3", "-i", "0.2", "-W", "1", OUR_IP_S]), timeout=10)
        for rep in range(reps):
            for i in impls:
                pid = procs[i].pid
                res[i]["ping"].append(await e2e.measured(pid, e2e.ping_flood(nss[i], OUR_IP_S, count, cap, warm=False)))
                res[i]["udp"].append(await e2e.measured(pid, e2e.udp_rtt(nss[i], OUR_IP_S, count, cap)))
                p, u = res[i]["ping"][-1], res[i]["udp"][-1]
                print(f"  {i:9} #{rep + 1} ping {p.get('per_s', 0):8.0f}/s {p.get('cpu_us_per_echo') or 0:6.1f} us"
                      f"  udp {u.get('per_s', 0):8.0f}/s {u.get('cpu_us_per_echo') or 0:6.1f} us CPU/echo"
                      f"  (user share {p.get('cpu_user_share')}, {u.get('cpu_user_share')})", flush=True)
    finally:
        for p in procs.values():
            await Namespace.stop(p)
        for ns in nss.values():
            ns.remove()
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.e2e_floor", description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--cap", type=int, default=60)
    ap.add_argument("--no-pin", action="store_true")
    ap.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    a = ap.parse_args(argv)
    sys.path.insert(0, str(HERE.parent))
    from bench import e2e

    e2e.PIN = None if a.no_pin else e2e.default_pin()
    print(f"validating floor, {a.loop}, {'not pinned' if a.no_pin else f'pinned to CPU {e2e.PIN}'}")
    impls = ["responder", "floor", "tcpip"]
    res = asyncio.run(_session(impls, a.loop, a.count, a.cap, a.reps))
    for kind in ("ping", "udp"):
        base = res["responder"][kind]
        for i in impls[1:]:
            rates = [x.get("per_s", 0) / b["per_s"] for x, b in zip(res[i][kind], base, strict=True) if b.get("per_s")]
            cpus = [x["cpu_us_per_echo"] / b["cpu_us_per_echo"] for x, b in zip(res[i][kind], base, strict=True)
                    if x.get("cpu_us_per_echo") and b.get("cpu_us_per_echo")]
            lost = sum(int(x.get("lost", 0)) for x in res[i][kind])
            print(f"{kind:4} {i:6}/responder  rate {statistics.median(rates):.2f} {[round(r, 2) for r in rates]}"
                  f"  CPU/echo {statistics.median(cpus):.2f} {[round(c, 2) for c in cpus]}  lost {lost}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
