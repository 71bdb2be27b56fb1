"""PyTCP 3.0.9 as an end-to-end responder for `bench.e2e`'s PyTCP row: its stack on `tap0`, answering pings
itself, and a UDP echo on port 7 written against its socket API in the same process (as `e2e_server.py`'s
`stack.udp_echo(7)` is tcpip's). Not tcpip code: it runs under the Python that has PyTCP (3.14+), e.g. the
chroot `bench/pytcp_chroot.sh` makes, inside the bench's namespace:

    ip netns exec NS chroot /opt/tcpip-pytcp /opt/pytcp/bin/python -O /tmp/pytcp_server.py MAC IP/24 CAP

Prints "ready" once the stack runs; on SIGTERM/SIGINT (or after CAP seconds) prints one JSON line of counters
and exits. Only PyTCP's public surface is used (`stack.init`, `add_interface`, `start`, its sockets).
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from typing import Any


def main() -> int:
    mac, ip4, cap = sys.argv[1], sys.argv[2], float(sys.argv[3])
    from net_addr import Ip4IfAddr, MacAddress  # type: ignore[import-not-found]
    from pytcp import stack  # type: ignore[import-not-found]
    from pytcp.runtime.socket import AddressFamily, SocketType, socket  # type: ignore[import-not-found]

    stack.LOG__CHANNEL = set()  # its console log: nothing on the bench's pipe (per-frame logs are -O'd anyway)
    stop = threading.Event()

    def _on_signal(_signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    stack.init()
    iface = stack.initialize_interface__tap(interface_name="tap0", mac_address=MacAddress(mac))
    stack.add_interface(**iface, ip4_support=True, ip4_host=Ip4IfAddr(ip4), ip4_dhcp=False,
                        ip6_support=False, ip6_gua_autoconfig=False)
    stack.start(wait_for_dhcp_bind=False)
    sock = socket(family=AddressFamily.INET4, type=SocketType.DGRAM)
    sock.bind(("0.0.0.0", 7))
    echoed = [0]

    def echo() -> None:
        while not stop.is_set():
            try:
                data, addr = sock.recvfrom(None, 0.5)
            except TimeoutError:
                continue
            except OSError:
                if stop.is_set():
                    return
                raise
            sock.sendto(data, addr)
            echoed[0] += 1

    t = threading.Thread(target=echo, name="udp-echo", daemon=True)
    t.start()
    print("ready", flush=True)
    stop.wait(cap)
    stop.set()
    t.join(2)
    out: dict[str, Any] = {"udp_echoed": echoed[0]}
    print(json.dumps(out), flush=True)
    stack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
