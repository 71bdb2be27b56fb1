"""Instructions per echo in the TAP device's two regimes, deterministic: a burst of 64 requests per wake-up
(what a pinned ping -f or UDP echo gives: the peer runs at each of our writes, so a wake-up drains dozens of
frames and the loop's cost vanishes) and one request per wake-up (an unpinned peer: the frame, then the read
that finds nothing).

`python bench/callgrind_burst.py [icmp|udp|udpapp] [vnet|plain|responder] [burst|one]` runs a real Stack on a
TapDevice whose read and write are replaced in-process (no syscalls: only the Python between them is
counted), calls the device's reader callback N times under callgrind for two N (PYTHONHASHSEED=0, no ASLR)
and prints (I(N2) - I(N1)) / (N2 - N1) per frame; `responder` runs the minimal responder's reader instead
(the reference). `--child N` is the workload itself. Needs valgrind and setarch.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BURST = 64


async def _workload(n: int, kind: str, mode: str, what: str) -> None:
    from bench.callgrind_wakeup import vnet_request
    from bench.frames import OUR_IP_S, OUR_MAC, PEER_IP, PEER_MAC, icmp_echo, udp_frame
    from tcpip.netif import tap_vnet
    from tcpip.netif.tap import TapDevice
    from tcpip.stack import Stack
    from tcpip.wire.mac import MacAddress

    if mode == "responder":
        _responder(n, kind, what)
        return
    ours, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    ours.setblocking(False)
    dev = TapDevice(ours.detach(), "sockpair", mac=MacAddress(OUR_MAC), loop=asyncio.get_running_loop(),
                    offload=mode == "vnet")
    stack = await Stack.connect(dev, ipv4=f"{OUR_IP_S}/24")
    stack.core.arp.add_static(PEER_IP, PEER_MAC)
    if kind == "udpapp":  # an application's echo: asyncio's DatagramProtocol, as user code writes one
        await stack.create_datagram_endpoint(_EchoProtocol, local_addr=("0.0.0.0", 7))
    else:
        await stack.udp_echo(7)
    await asyncio.sleep(0.01)
    req = icmp_echo(56) if kind == "icmp" else udp_frame(32)
    if mode == "vnet":
        req = vnet_request(req, "udp" if kind == "udpapp" else kind)
    queued: list[bytes] = []
    written = [0]

    class FakeReads:
        def read(self, _n: int) -> bytes | None:  # FileIO.read: None on EAGAIN
            return queued.pop() if queued else None

    def fake_writev(_fd: int, parts: list[bytes]) -> int:
        written[0] += 1
        return sum(map(len, parts))

    def fake_write(_fd: int, data: bytes) -> int:
        written[0] += 1
        return len(data)

    dev._rfile = FakeReads()  # type: ignore[assignment]
    os.writev = fake_writev  # type: ignore[assignment]
    # the device's own writes of the answers it is handed (attach_answering)
    tap_vnet._writev = fake_writev  # type: ignore[assignment]
    tap_vnet._write = fake_write  # type: ignore[assignment]
    reader = dev._on_readable
    per = BURST if what == "burst" else 1
    for _ in range(n):
        queued[:] = [req] * per
        reader()
    if written[0] != n * per:
        raise SystemExit(f"expected {n * per} replies, got {written[0]}")
    await stack.disconnect()
    peer.close()


class _EchoProtocol(asyncio.DatagramProtocol):
    """`udpapp`: each datagram sent back from `datagram_received`, the application path (issue 10's UDP echo
    written as user code, not `stack.udp_echo`)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(data, addr)


def _responder(n: int, kind: str, what: str) -> None:
    """The same for the minimal responder (`bench.e2e.Responder`, plain framing): its drain reads until
    EAGAIN, a raised BlockingIOError (tcpip's read returns None there)."""
    from bench.e2e import Responder
    from bench.frames import OUR_IP_S, OUR_MAC, icmp_echo, udp_frame

    req = icmp_echo(56) if kind == "icmp" else udp_frame(32)
    queued: list[bytes] = []

    def fake_read(_fd: int, _n: int) -> bytes:
        if queued:
            return queued.pop()
        raise BlockingIOError

    def fake_write(_fd: int, data: bytes) -> int:
        return len(data)

    os.read = fake_read  # type: ignore[assignment]
    os.write = fake_write  # type: ignore[assignment]
    r = Responder(-1, OUR_MAC, bytes(map(int, OUR_IP_S.split("."))))
    per = BURST if what == "burst" else 1
    for _ in range(n):
        queued[:] = [req] * per
        r.drain()
    if r.answered != n * per:
        raise SystemExit(f"expected {n * per} replies, got {r.answered}")


def _collected(n: int, kind: str, mode: str, what: str) -> int:
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1")
    cmd = ["setarch", "-R", "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
           str(Path(__file__).resolve()), kind, mode, what, "--child", str(n)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, timeout=900)
    m = re.search(r"Collected : (\d+)", r.stderr)
    if r.returncode or not m:
        raise SystemExit(f"callgrind failed: {r.stderr[-500:]}")
    return int(m.group(1))


def main() -> int:
    sys.path.insert(0, str(ROOT))
    args = sys.argv[1:]
    kind = args[0] if args else "icmp"
    mode = args[1] if len(args) > 1 else "vnet"
    what = args[2] if len(args) > 2 else "burst"
    if "--child" in args:
        asyncio.run(_workload(int(args[args.index("--child") + 1]), kind, mode, what))
        return 0
    n1, n2 = (20, 120) if what == "burst" else (1000, 6000)
    per = BURST if what == "burst" else 1
    a, b = _collected(n1, kind, mode, what), _collected(n2, kind, mode, what)
    print(f"{kind} {mode} {what}: {(b - a) / ((n2 - n1) * per):.0f} instructions per echo")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
