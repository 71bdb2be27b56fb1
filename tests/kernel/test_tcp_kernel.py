"""tcpip's TCP against the Linux kernel over a TAP device in a private namespace: kernel curl and kernel
sockets against tcpip's servers, tcpip as the client of kernel servers; afterwards the kernel's own view
(`ss -tan`, `nstat`) must show no connection left behind and no TCP input errors."""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import h11
import pytest
from kernel_support import KERNEL_IP, PREFIX, STACK_IP, TAP, Peer, require_tap

from tcpip import Stack
from tcpip.apps import http_handler, status_page, tcp_discard, tcp_echo
from tcpip.apps.stream import Handler
from tcpip.netif.fault import FaultInjector
from tcpip.netns import Namespace

pytestmark = pytest.mark.tap

MiB = 1 << 20


def pattern(n: int) -> bytes:
    """The body of tcpip's /bytes/n: byte k is k % 251."""
    return (bytes(range(251)) * (n // 251 + 1))[:n]


@asynccontextmanager
async def serving(peer: Peer, handler: Handler, port: int) -> AsyncIterator[Any]:
    server = await peer.stack.start_server(handler, None, port)
    try:
        yield server
    finally:
        server.close()
        await asyncio.wait_for(server.wait_closed(), 10)


async def kernel_clean(peer: Peer) -> None:
    """Neither the kernel nor tcpip holds a connection except in TIME-WAIT (polled: the last ACK may be in
    flight), and the kernel counted no bad TCP segment."""
    left: list[str] = []
    for _ in range(40):
        r = await peer.run("ss", "-tanH")
        left = [line for line in r.stdout.splitlines()
                if line.split() and line.split()[0] not in ("TIME-WAIT", "LISTEN")]
        if not left:
            break
        await asyncio.sleep(0.05)
    assert left == [], "\n".join(left)
    ours: list[Any] = []
    for _ in range(40):  # and tcpip holds nothing but listeners and TIME_WAIT either
        ours = [c for c in peer.stack.tcp_connections() if c.state not in ("LISTEN", "TIME_WAIT")]
        if not ours:
            break
        await asyncio.sleep(0.05)
    assert ours == []
    r = await peer.run("nstat", "-asz", "TcpInCsumErrors", "TcpInErrs")  # -s: leave nstat's history alone
    counters = dict(re.findall(r"^(Tcp\w+)\s+(\d+)", r.stdout, re.M))
    assert counters == {"TcpInCsumErrors": "0", "TcpInErrs": "0"}, r.stdout + r.stderr


def tcp_checksums(path: Path) -> dict[str, int]:
    """tshark's verdict on the TCP checksum of every segment in our capture: {"good": n, "bad": m}."""
    require_tap("tshark")
    p = subprocess.run(["tshark", "-n", "-r", str(path), "-o", "tcp.check_checksum:TRUE", "-Y", "tcp",
                        "-T", "fields", "-e", "tcp.checksum.status"],
                       capture_output=True, text=True, timeout=60, check=False)
    assert p.returncode == 0, p.stderr
    names = {"0": "bad", "1": "good", "2": "unverified"}
    return dict(Counter(names.get(x, x) for x in p.stdout.split()))


def our_tcp(peer: Peer) -> dict[str, int]:
    return peer.stack.stats()["tcp"]


# -- kernel clients, tcpip servers ---------------------------------------------------------------------
async def test_kernel_curl_gets_the_status_page_and_bytes(peer: Peer) -> None:
    require_tap("curl")
    async with serving(peer, http_handler(lambda: status_page(peer.stack)), 80):
        r = await peer.run("curl", "-sS", "--fail", "-m", "10", f"http://{STACK_IP}/")
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith("tcpip\n")
        assert re.search(r"^  tcp +.*PassiveOpens=1\b", r.stdout, re.M), r.stdout
        # the page lists the very connection it is sent on, and the listener, like ss -tn
        assert re.search(rf"^  ESTABLISHED +\d+ +\d+ {STACK_IP}:80 +{KERNEL_IP}:\d+ ", r.stdout, re.M), r.stdout
        assert re.search(r"^  LISTEN +0 +\d+ 0\.0\.0\.0:80 ", r.stdout, re.M), r.stdout
        # keep-alive: three requests on one connection, 5 MB verified by sha256
        url = f"http://{STACK_IP}/bytes/5000000"
        r = await peer.run("sh", "-c", f"curl -sS -v -m 20 -o /dev/null {url} -o /dev/null "
                           f"http://{STACK_IP}/nope -o - {url} 2>{peer.tmp}/curl.err | sha256sum")
        err = (peer.tmp / "curl.err").read_text()
        assert r.stdout.split()[0] == hashlib.sha256(pattern(5000000)).hexdigest(), err
        assert err.count("Re-using existing connection") + err.count("Reusing existing connection") == 2, err
        assert "< HTTP/1.1 404 Not Found" in err  # no --fail: curl would drop the connection on a 404
    await kernel_clean(peer)
    tcp = our_tcp(peer)
    assert (tcp["PassiveOpens"], tcp["InCsumErrors"], tcp["InErrs"]) == (2, 0, 0), tcp
    peer.pcap.flush()
    assert tcp_checksums(peer.pcap_path) == {"good": tcp["InSegs"] + tcp["OutSegs"]}  # every segment, both ways


_ECHO_CLIENT = """
import hashlib, os, socket, sys, threading
n = int(sys.argv[1])
data = os.urandom(n)
s = socket.create_connection((sys.argv[2], 7), timeout=20)
def send():
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)  # half-close: the echo keeps coming
t = threading.Thread(target=send)
t.start()
got = bytearray()
while chunk := s.recv(1 << 16):
    got += chunk
t.join()
s.close()
print(len(got), got == data)
"""


async def test_kernel_socket_echo_4_mib(peer: Peer) -> None:
    async with serving(peer, tcp_echo, 7):
        r = await peer.python(_ECHO_CLIENT, str(4 * MiB), STACK_IP, timeout=30)
    assert r.stdout.split() == [str(4 * MiB), "True"], r.stdout + r.stderr
    await kernel_clean(peer)
    tcp = our_tcp(peer)
    assert tcp["PassiveOpens"] == 1
    assert tcp["InCsumErrors"] == tcp["InErrs"] == 0


_MANY_CLIENT = """
import asyncio, os, sys
async def main(n, host):
    conns = await asyncio.gather(*(asyncio.open_connection(host, 7) for _ in range(n)))  # all open at once
    async def one(rw):
        r, w = rw
        data = os.urandom(50000)
        w.write(data)
        await w.drain()
        w.write_eof()
        got = await r.read()
        w.close()
        await w.wait_closed()
        return got == data
    print(sum(await asyncio.gather(*(one(c) for c in conns))))
asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
"""


async def test_fifty_concurrent_kernel_connections(peer: Peer) -> None:
    live = peak = 0

    async def counted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal live, peak
        live += 1
        peak = max(peak, live)
        try:
            await tcp_echo(reader, writer)
        finally:
            live -= 1

    async with serving(peer, counted, 7):
        r = await peer.python(_MANY_CLIENT, "50", STACK_IP, timeout=30)
    assert r.stdout.strip() == "50", r.stdout + r.stderr
    assert peak == 50
    assert live == 0
    await kernel_clean(peer)
    tcp = our_tcp(peer)
    assert tcp["PassiveOpens"] == 50
    assert tcp["InCsumErrors"] == tcp["InErrs"] == tcp.get("EstabResets", 0) == 0, tcp


_HALF_CLOSE_CLIENT = """
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
s.sendall(b"request")
s.shutdown(socket.SHUT_WR)
got = bytearray()
while chunk := s.recv(1 << 16):
    got += chunk
s.close()
print(len(got), got == (bytes(range(251)) * 5000)[:1000000])
"""


async def test_half_close_tcpip_keeps_sending_in_close_wait(peer: Peer) -> None:
    """The kernel client sends and shuts down its side first; tcpip (in CLOSE_WAIT) then sends 1 MB."""
    seen: list[bytes] = []

    async def answer_after_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.read())  # until the client's FIN
        for i in range(0, 1000000, 100000):
            writer.write(pattern(1000000)[i:i + 100000])
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    async with serving(peer, answer_after_eof, 5000):
        r = await peer.python(_HALF_CLOSE_CLIENT, STACK_IP, "5000", timeout=20)
    assert r.stdout.split() == ["1000000", "True"], r.stdout + r.stderr
    assert seen == [b"request"]
    await kernel_clean(peer)


async def test_discard_sends_nothing_and_fins_after_the_peer(peer: Peer) -> None:
    async with serving(peer, tcp_discard, 9):
        r = await peer.python(
            "import socket,sys\ns=socket.create_connection((sys.argv[1],9),timeout=10)\n"
            "s.sendall(b'z'*3000000)\ns.shutdown(socket.SHUT_WR)\nprint(repr(s.recv(100)))\ns.close()\n",
            STACK_IP, timeout=20)
    assert r.stdout.strip() == "b''", r.stdout + r.stderr
    await kernel_clean(peer)


_REFUSED_CLIENT = """
import socket, sys, time
t = time.monotonic()
try:
    socket.create_connection((sys.argv[1], 1), timeout=5)
    print("connected")
except ConnectionRefusedError:
    print("refused", time.monotonic() - t)
except OSError as e:
    print("error", e)
"""


async def test_closed_port_refused_fast_both_ways(peer: Peer) -> None:
    r = await peer.python(_REFUSED_CLIENT, STACK_IP)
    word, *rest = r.stdout.split()
    assert word == "refused", r.stdout + r.stderr
    assert float(rest[0]) < 1.0  # an RST, not a SYN timeout (the first retransmission is at 1 s)
    with pytest.raises(ConnectionRefusedError) as e:
        await asyncio.wait_for(peer.stack.open_connection(KERNEL_IP, 1), 5)
    assert e.value.errno == 111
    tcp = our_tcp(peer)
    assert tcp["OutRsts"] >= 1
    assert tcp["AttemptFails"] == 1
    await kernel_clean(peer)


# -- tcpip clients, kernel servers -------------------------------------------------------------------
async def http_get(peer: Peer, port: int, target: str, sink: Callable[[bytes], None]) -> h11.Response:
    reader, writer = await peer.stack.open_connection(KERNEL_IP, port)
    conn = h11.Connection(h11.CLIENT)
    writer.write(conn.send(h11.Request(method="GET", target=target,
                                       headers=[("Host", KERNEL_IP), ("Connection", "close")])))
    writer.write(conn.send(h11.EndOfMessage()))
    resp: h11.Response | None = None
    while True:
        ev = conn.next_event()
        if ev is h11.NEED_DATA:
            conn.receive_data(await asyncio.wait_for(reader.read(1 << 16), 10))
        elif isinstance(ev, h11.Response):
            resp = ev
        elif isinstance(ev, h11.Data):
            sink(bytes(ev.data))
        elif isinstance(ev, h11.EndOfMessage):
            break
    writer.close()
    await writer.wait_closed()
    assert resp is not None
    return resp


async def kernel_http_server(peer: Peer, directory: Path, port: int) -> None:
    proc = await peer.ns.start([sys.executable, "-u", "-m", "http.server", str(port), "--bind", KERNEL_IP,
                                "--directory", str(directory)])
    peer.procs.append(proc)  # stopped by PID by the fixture
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 10)
    assert b"Serving HTTP" in line, line


async def test_tcpip_downloads_20_mb_from_kernel_http_server(peer: Peer, tmp_path: Path) -> None:
    www = tmp_path / "www"
    www.mkdir()
    blob = random.Random(20).randbytes(20_000_000)
    (www / "blob.bin").write_bytes(blob)
    await kernel_http_server(peer, www, 8000)
    h = hashlib.sha256()
    size = 0

    def sink(b: bytes) -> None:
        nonlocal size
        h.update(b)
        size += len(b)

    resp = await http_get(peer, 8000, "/blob.bin", sink)
    assert resp.status_code == 200
    assert (size, h.hexdigest()) == (len(blob), hashlib.sha256(blob).hexdigest())
    tcp = our_tcp(peer)
    assert tcp["ActiveOpens"] == 1
    assert tcp["InCsumErrors"] == tcp["InErrs"] == 0
    await kernel_clean(peer)


_KERNEL_HALF_CLOSE_SERVER = """
import hashlib, socket, sys
ls = socket.create_server((sys.argv[1], 6000))
print("ready", flush=True)
c, _ = ls.accept()
h, n = hashlib.sha256(), 0
while chunk := c.recv(1 << 16):
    h.update(chunk)
    n += len(chunk)
c.sendall(f"{n} {h.hexdigest()}\\n".encode() + bytes(range(256)) * 4096)  # after tcpip's FIN
c.close()
ls.close()
"""


async def test_tcpip_half_closes_and_keeps_reading(peer: Peer) -> None:
    proc = await peer.ns.start([sys.executable, "-c", _KERNEL_HALF_CLOSE_SERVER, KERNEL_IP])
    peer.procs.append(proc)
    assert proc.stdout is not None
    assert await asyncio.wait_for(proc.stdout.readline(), 10) == b"ready\n"
    data = bytes(range(256)) * 8192  # 2 MiB
    reader, writer = await peer.stack.open_connection(KERNEL_IP, 6000)
    writer.write(data)
    await writer.drain()
    assert writer.can_write_eof()
    writer.write_eof()
    line = await asyncio.wait_for(reader.readline(), 10)
    assert line.decode().split() == [str(len(data)), hashlib.sha256(data).hexdigest()]
    rest = await asyncio.wait_for(reader.read(), 10)
    assert rest == bytes(range(256)) * 4096
    assert reader.at_eof()
    writer.close()
    await writer.wait_closed()
    await kernel_clean(peer)


_ODD_WRITES_CLIENT = """
import hashlib, socket, sys
s = socket.create_connection((sys.argv[1], 5001), timeout=20)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
h = hashlib.sha256()
for i in range(1500):
    b = bytes([i % 256]) * (1001 + i % 7)  # odd sizes: segment ends off the window-scale granularity
    s.sendall(b)
    h.update(b)
s.shutdown(socket.SHUT_WR)
print(s.recv(100).decode() == h.hexdigest())
"""


async def test_late_reader_takes_every_in_window_byte(peer: Peer) -> None:
    """The application reads only after a second, so the window closes while odd-sized segments arrive
    on a lossless link: every byte inside the advertised window must be taken (no out-of-order segment,
    which only a dropped in-window byte could cause here), and the data arrives intact."""

    async def late_reader(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(1)
        h = hashlib.sha256()
        while data := await reader.read(1 << 16):
            h.update(data)
        writer.write(h.hexdigest().encode())
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    async with serving(peer, late_reader, 5001):
        r = await peer.python(_ODD_WRITES_CLIENT, STACK_IP, timeout=30)
    assert r.stdout.strip() == "True", r.stdout + r.stderr
    tcp = our_tcp(peer)
    assert tcp.get("zero_window_drop", 0) == 0
    assert tcp.get("TCPOFOQueue", 0) == 0, tcp
    await kernel_clean(peer)

# -- a lossy link ------------------------------------------------------------------------------------
_LOSSY_ECHO_CLIENT = """
import socket, sys, threading, time
data = bytes(i * 7 % 256 for i in range(256)) * (int(sys.argv[2]) // 256)
deadline = time.monotonic() + 20  # the whole exchange, so a stalled connection fails in bounded time
s = socket.create_connection((sys.argv[1], 7), timeout=20)  # sendall: 20 s in total
err = []
def send():
    try:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
    except OSError as e:
        err.append(repr(e))
t = threading.Thread(target=send)
t.start()
got = bytearray()
try:
    while (left := deadline - time.monotonic()) > 0:
        s.settimeout(left)
        chunk = s.recv(1 << 16)
        if not chunk:
            break
        got += chunk
except OSError as e:
    err.append(repr(e))
t.join()
print(len(got), got == data, err)
"""


async def test_echo_8_mib_over_a_lossy_link(kernel_ns: Namespace) -> None:
    """Both directions busy at once (echo) while tcpip's side of the TAP drops 2 %, reorders 3 %,
    duplicates 1 % and corrupts 0.5 % of frames each way: every byte still comes back."""
    dev = await kernel_ns.open_tap(TAP)
    lossy = FaultInjector(dev, seed=7, drop=0.02, reorder=0.03, duplicate=0.01, corrupt=0.005)
    async with await Stack.connect(lossy, ipv4=f"{STACK_IP}/{PREFIX}") as stack:
        server = await stack.start_server(tcp_echo, None, 7)
        try:
            r = await kernel_ns.run_async([sys.executable, "-c", _LOSSY_ECHO_CLIENT, STACK_IP, str(8 * MiB)],
                                          timeout=30)
            rows = [(c.state, c.recv_q, c.send_q, c.cwnd, round(c.rto, 2)) for c in stack.tcp_connections()
                    if c.state != "LISTEN"]
        finally:
            server.close()
            server.abort_clients()
            await asyncio.wait_for(server.wait_closed(), 5)
        assert r.stdout.strip().split(maxsplit=2) == [str(8 * MiB), "True", "[]"], (r.stdout, r.stderr[-500:], rows)
        tcp = stack.stats()["tcp"]
        assert tcp["InCsumErrors"] > 0  # the corrupted frames were caught by the checksum
        assert tcp["RetransSegs"] > 0
