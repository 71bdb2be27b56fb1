"""dnspython's asyncio query functions and resolver over tcpip, unchanged: UDP (an unbound datagram endpoint
then sendto) and TCP (asyncio.open_connection) against a kernel-side DNS server written here with
dnspython's message classes and kernel sockets."""

from __future__ import annotations

import time

import dns.asyncquery
import dns.asyncresolver
import dns.message
import dns.rdatatype
import pytest
from loop_support import KERNEL_IP, Kernel, kernel_python, stack_runner

pytestmark = pytest.mark.tap

DNS_SERVER = '''
import socket, struct, sys, threading
import dns.flags, dns.message, dns.rrset, dns.rcode, dns.rdatatype

ZONE = {"www.tcpip.test.": ["198.18.7.1", "198.18.7.2"], "big.tcpip.test.": [f"198.18.9.{i}" for i in range(1, 200)]}

def answer(wire, tcp):
    q = dns.message.from_wire(wire)
    r = dns.message.make_response(q)
    name = q.question[0].name.to_text()
    if name in ZONE and q.question[0].rdtype == dns.rdatatype.A:
        r.answer.append(dns.rrset.from_text_list(name, 60, "IN", "A", ZONE[name]))
        r.answer[0].ttl = 60
    elif name not in ZONE:
        r.set_rcode(dns.rcode.NXDOMAIN)
    out = r.to_wire()
    if not tcp and len(out) > 512:  # too big for UDP: truncated (TC), the client retries over TCP
        r.answer.clear()
        r.flags |= dns.flags.TC
        out = r.to_wire()
    return out

def serve_tcp(s):
    while True:
        c, _ = s.accept()
        with c:
            while (head := c.recv(2, socket.MSG_WAITALL)) and len(head) == 2:
                wire = c.recv(struct.unpack("!H", head)[0], socket.MSG_WAITALL)
                out = answer(wire, True)
                c.sendall(struct.pack("!H", len(out)) + out)
                print("tcp", flush=True)

u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind((sys.argv[1], 53))
t = socket.socket()
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind((sys.argv[1], 53))
t.listen()
threading.Thread(target=serve_tcp, args=(t,), daemon=True).start()
while True:
    wire, addr = u.recvfrom(4096)
    u.sendto(answer(wire, False), addr)
    print("udp", flush=True)
'''


def _served(log: str) -> tuple[int, int]:
    words = log.split()
    return words.count("udp"), words.count("tcp")


def addresses(msg: dns.message.Message) -> list[str]:
    return sorted(r.address for rrset in msg.answer for r in rrset)


def test_dnspython_udp_tcp_and_resolver(kernel: Kernel) -> None:
    proc = kernel_python(kernel, DNS_SERVER, KERNEL_IP, port=53)

    async def main() -> dict[str, object]:
        q = dns.message.make_query("www.tcpip.test", dns.rdatatype.A)
        udp = await dns.asyncquery.udp(q, KERNEL_IP, timeout=5)
        tcp = await dns.asyncquery.tcp(q, KERNEL_IP, timeout=5)
        big = await dns.asyncquery.udp_with_fallback(dns.message.make_query("big.tcpip.test", "A"), KERNEL_IP,
                                                     timeout=5)
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [KERNEL_IP]
        answer = await resolver.resolve("www.tcpip.test", "A")
        with pytest.raises(dns.resolver.NXDOMAIN):
            await resolver.resolve("nope.tcpip.test", "A")
        tcp_answer = await resolver.resolve("www.tcpip.test", "A", tcp=True)
        return {"udp": addresses(udp), "tcp": addresses(tcp), "big": (len(addresses(big[0])), big[1]),
                "resolver": sorted(a.to_text() for a in answer),
                "resolver_tcp": sorted(a.to_text() for a in tcp_answer)}

    with stack_runner(kernel) as r:
        out = r.run(main())
    www = ["198.18.7.1", "198.18.7.2"]
    assert out == {"udp": www, "tcp": www, "big": (199, True), "resolver": www, "resolver_tcp": www}
    # The server logs each query after sending its answer: wait for the last lines (a loaded machine may
    # run the test on before the server's thread prints), then stop it.
    deadline = time.monotonic() + 5
    while (counts := _served(kernel.log(proc))) != (4, 3) and time.monotonic() < deadline:
        time.sleep(0.02)
    kernel.stop_all()
    assert counts == (4, 3)  # big: truncated over UDP, then TCP
