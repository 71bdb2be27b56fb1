"""Workload for the per-wake-up figure: N echoes through a real event loop, one in flight, under callgrind.

`python bench/callgrind_wakeup.py N {tcpip|responder} {asyncio|uvloop} {icmp|udp} [plain|vnet]`. The TAP is
replaced by one end of an AF_UNIX datagram socketpair (frame boundaries kept, non-blocking, read with os.read
and written with os.writev like a TAP fd); the peer end is a reader on the same loop that checks each answer
and writes the next request. `vnet` runs the TapDevice in offload mode (IFF_VNET_HDR framing, the default on
a real TAP): every frame both ways starts with a 10-byte virtio_net_hdr, and the peer sends what the kernel
sends: an all-zero header before an ICMP echo, NEEDS_CSUM and a partial checksum (the pseudo-header sum,
csum_start 34, csum_offset 6) before a UDP datagram. The responder has no offload mode (plain only).
Per echo the loop therefore wakes twice: once for the implementation under test (read, receive,
poll_transmit, writev, the read that ends the drain) and once for the peer (the same peer code for every
implementation). Run under callgrind for two values of N with PYTHONHASHSEED=0 and
ASLR off: (I(N2) - I(N1)) / (N2 - N1) is the instruction count per echo, a deterministic figure;
`bench/wakeup.py` does that and prints tcpip - responder (what tcpip adds per wake-up).
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def vnet_request(frame: bytes, kind: str) -> bytes:
    """`frame` as the kernel's TAP hands it over in offload mode (see the module docstring)."""
    from bench.frames import pseudo
    from tcpip.wire import virtio

    if kind == "icmp":
        return virtio.ZERO + frame
    f = bytearray(frame)
    f[40:42] = pseudo(int.from_bytes(f[26:30], "big"), int.from_bytes(f[30:34], "big"), 17,
                      len(f) - 34).to_bytes(2, "big")
    return struct.pack("<BBHHHH", virtio.NEEDS_CSUM, 0, 0, 0, 34, 6) + bytes(f)


async def _run(n: int, impl: str, kind: str, mode: str = "plain") -> int:
    from bench.e2e import Responder
    from bench.frames import OUR_IP_S, OUR_MAC, PEER_IP, PEER_MAC, icmp_echo, udp_frame

    loop = asyncio.get_running_loop()
    ours, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    ours.setblocking(False)
    peer.setblocking(False)
    request = icmp_echo(56) if kind == "icmp" else udp_frame(32)
    want_len = len(request)
    h = 0  # the answers' virtio header length
    if mode == "vnet":
        if impl != "tcpip":
            raise SystemExit("vnet mode: tcpip only")
        request = vnet_request(request, kind)
        h = 10
        want_len += h
    et_at = slice(h + 12, h + 14)
    done = loop.create_future()
    answered = 0
    pfd = peer.fileno()

    def on_answer() -> None:
        nonlocal answered
        while True:
            try:
                f = os.read(pfd, 2048)
            except BlockingIOError:
                return
            if len(f) != want_len or f[et_at] != b"\x08\x00":
                continue  # e.g. the stack's gratuitous ARP
            answered += 1
            if answered >= n:
                if not done.done():
                    done.set_result(None)
                return
            os.write(pfd, request)

    closer = None
    if impl == "tcpip":
        from tcpip.netif.tap import TapDevice
        from tcpip.stack import Stack
        from tcpip.wire.mac import MacAddress

        dev = TapDevice(ours.detach(), "sockpair", mac=MacAddress(OUR_MAC), loop=loop, offload=mode == "vnet")
        stack = await Stack.connect(dev, ipv4=f"{OUR_IP_S}/24")
        stack.core.arp.add_static(PEER_IP, PEER_MAC)
        await stack.udp_echo(7)
        closer = stack.disconnect
    else:
        r = Responder(ours.fileno(), OUR_MAC, bytes.fromhex("c6120002"))
        loop.add_reader(ours.fileno(), r.drain)
    await asyncio.sleep(0.01)
    while True:  # anything the stack sent at start-up
        try:
            os.read(pfd, 2048)
        except BlockingIOError:
            break
    loop.add_reader(pfd, on_answer)
    os.write(pfd, request)
    await done
    loop.remove_reader(pfd)
    if closer is not None:
        await closer()  # the device closes its fd
    else:
        loop.remove_reader(ours.fileno())
        ours.close()
    peer.close()
    return answered


def main() -> int:
    sys.path.insert(0, str(ROOT))
    n = int(sys.argv[1])
    impl = sys.argv[2] if len(sys.argv) > 2 else "tcpip"
    loop_name = sys.argv[3] if len(sys.argv) > 3 else "asyncio"
    kind = sys.argv[4] if len(sys.argv) > 4 else "icmp"
    mode = sys.argv[5] if len(sys.argv) > 5 else "plain"
    factory = None
    if loop_name == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        got = runner.run(_run(n, impl, kind, mode))
    if got != n:
        raise SystemExit(f"expected {n} answers, got {got}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
