"""TAP offload mode against the Linux kernel (issue 14): IFF_VNET_HDR + TUN_F_CSUM | TUN_F_TSO4 in a private
namespace. 100 MB each way between tcpip and a kernel socket, verified by sha256; the device and TCP counters
show super-frames were used both ways (the kernel's GSO frames in, our TSO frames out); a plain reader opened
after an offload run on the same persistent device gets ordinary frames; `tcpip up --no-offload` works.

Rough throughput (plain vs offload) is printed with `-s`; never asserted (the machine is shared)."""

from __future__ import annotations

import array
import asyncio
import fcntl
import hashlib
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from kernel_support import KERNEL_IP, PREFIX, STACK_IP, TAP, require_tap

from tcpip import Stack
from tcpip.netif.tap import TapDevice
from tcpip.netns import Namespace, enter

pytestmark = pytest.mark.tap

MB = 1_000_000
SIZE = 100 * MB
PORT = 5001

# The kernel peer: `get N` sends N bytes of a fixed pattern; `put` reads to EOF and prints count and sha256.
KERNEL_PEER = r"""
import hashlib, socket, sys
mode = sys.argv[1]
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", int(sys.argv[2]))); ls.listen(1)
print("ready", flush=True)
c, _ = ls.accept()
if mode == "get":
    n = int(sys.argv[3]); block = (bytes(range(251)) * 1045)[:262144]; sent = 0
    while sent < n:
        sent += c.send(block[:min(len(block), n - sent)])
    c.shutdown(socket.SHUT_WR)
    while c.recv(65536):
        pass
    print("sent", sent, flush=True)
else:
    h = hashlib.sha256(); got = 0
    while d := c.recv(1 << 20):
        h.update(d); got += len(d)
    print("got", got, h.hexdigest(), flush=True)
c.close()
"""


def pattern_sha(n: int) -> str:
    block = (bytes(range(251)) * 1045)[:262144]
    h = hashlib.sha256()
    left = n
    while left:
        k = min(left, len(block))
        h.update(block[:k])
        left -= k
    return h.hexdigest()


@pytest.fixture
def ns() -> Iterator[Namespace]:
    """A namespace `tcpip-o<pid>-<n>` with persistent TAP `tap0` (198.18.0.1/24), removed afterwards."""
    require_tap("ip")
    n = Namespace.create("o")
    try:
        n.add_tap(TAP)
        n.add_address(TAP, f"{KERNEL_IP}/{PREFIX}")
        yield n
    finally:
        n.remove()
    assert not n.exists


@asynccontextmanager
async def kernel_peer(ns: Namespace, *args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await ns.start([sys.executable, "-c", KERNEL_PEER, *args])
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 10)
        assert line == b"ready\n", line
        yield proc
    finally:
        await Namespace.stop(proc)


async def download(stack: Stack, ns: Namespace, size: int) -> float:
    """tcpip reads `size` bytes from the kernel (reader.read(256 KiB) loop); returns seconds."""
    async with kernel_peer(ns, "get", str(PORT), str(size)):
        t0 = time.perf_counter()
        r, w = await stack.open_connection(KERNEL_IP, PORT)
        h = hashlib.sha256()
        got = 0
        while chunk := await r.read(262144):
            h.update(chunk)
            got += len(chunk)
        dt = time.perf_counter() - t0
        w.close()
        await w.wait_closed()
    assert (got, h.hexdigest()) == (size, pattern_sha(size))
    return dt


async def upload(stack: Stack, ns: Namespace, size: int) -> float:
    """tcpip writes `size` bytes to the kernel (write(64 KiB) + drain()); the kernel's sha256 must match."""
    block = (bytes(range(251)) * 1045)[:262144]
    async with kernel_peer(ns, "put", str(PORT)) as proc:
        t0 = time.perf_counter()
        r, w = await stack.open_connection(KERNEL_IP, PORT)
        left = size
        off = 0
        while left:
            k = min(65536, left)
            w.write(block[off:off + k])  # the pattern again: block is 4 * 65536 bytes
            off = (off + k) % len(block)
            left -= k
            await w.drain()
        w.write_eof()
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        dt = time.perf_counter() - t0
        assert await r.read() == b""
        w.close()
        await w.wait_closed()
    assert line.split() == [b"got", str(size).encode(), pattern_sha(size).encode()], line
    return dt


async def test_offload_100mb_each_way_with_super_frames(ns: Namespace) -> None:
    dev = await ns.open_tap(TAP, offload=True)
    assert dev.offload is True
    async with await Stack.connect(dev, ipv4=f"{STACK_IP}/{PREFIX}") as stack:
        t_get = await download(stack, ns, SIZE)
        t_put = await upload(stack, ns, SIZE)
        st = dev.stats
        tcp = stack.tcp.layer.stats
        # The kernel handed us super-frames (GSO) and took ours (TSO), and the counters say so.
        assert st.rx_gso_frames > 100, st
        assert st.rx_gso_segments > 5 * st.rx_gso_frames, st  # several segments per super-frame
        assert st.tx_gso_frames > 100, st
        assert st.tx_gso_segments > 5 * st.tx_gso_frames, st
        assert tcp.rx_gso_frames == st.rx_gso_frames, tcp
        assert tcp.tx_tso_frames >= st.tx_gso_frames, tcp
        assert st.rx_gso_split == 0
        assert st.rx_gso_dropped == 0
        assert tcp.in_csum_errors == 0
        assert tcp.in_errs == 0
        # Every segment counted: at least one per MSS of data each way.
        assert tcp.in_segs >= SIZE // 1460, tcp.in_segs
        assert tcp.out_segs >= SIZE // 1460, tcp.out_segs
    r = await ns.run_async(["nstat", "-asz", "TcpInCsumErrors", "TcpInErrs"])  # the kernel's view
    assert dict(re.findall(r"^(Tcp\w+)\s+(\d+)", r.stdout, re.M)) == {"TcpInCsumErrors": "0", "TcpInErrs": "0"}
    print(f"\noffload: get {SIZE * 8 / t_get / 1e6:.0f} Mbit/s, put {SIZE * 8 / t_put / 1e6:.0f} Mbit/s")


async def test_plain_reader_after_offload_run(ns: Namespace) -> None:
    """Offload flags live on the persistent device: a plain open must clear them, or it would be handed
    partial-checksum super-frames it cannot read."""
    dev = await ns.open_tap(TAP, offload=True)
    async with await Stack.connect(dev, ipv4=f"{STACK_IP}/{PREFIX}") as stack:
        await download(stack, ns, 5 * MB)
        assert dev.stats.rx_gso_frames > 0
    assert dev.closed
    plain = await ns.open_tap(TAP, offload=False)
    assert plain.offload is False
    async with await Stack.connect(plain, ipv4=f"{STACK_IP}/{PREFIX}") as stack:
        t_get = await download(stack, ns, 20 * MB)
        t_put = await upload(stack, ns, 20 * MB)
        st = plain.stats
        assert st.rx_gso_frames == st.tx_gso_frames == 0
        tcp = stack.tcp.layer.stats
        assert tcp.in_csum_errors == 0
        assert tcp.rx_csum_trusted == 0
        assert tcp.tx_tso_frames == 0
        assert stack.core.ip_stats.rx_offload_dropped == 0
        assert stack.core.eth_stats.rx_oversize == 0  # no super-frame reached the plain reader
    print(f"\nplain: get {20 * MB * 8 / t_get / 1e6:.0f} Mbit/s, put {20 * MB * 8 / t_put / 1e6:.0f} Mbit/s")


def _udp_sum_ok(frame: bytes) -> bool:
    """The IPv4/UDP frame's checksum verifies over the pseudo-header (a partial one does not)."""
    ihl = (frame[14] & 15) * 4
    udp = frame[14 + ihl:14 + int.from_bytes(frame[16:18], "big")]
    data = frame[26:34] + b"\0\x11" + len(udp).to_bytes(2, "big") + udp + b"\0" * (len(udp) & 1)
    s = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s == 0xFFFF


async def test_foreign_plain_reader_after_an_offload_close(ns: Namespace) -> None:
    """Closing an offload-mode device clears the device's offloads, so a program that is not tcpip (no
    virtio header, no TUNSETOFFLOAD of its own: a minimal responder, a capture tool) opening the persistent
    device afterwards is handed frames with finished checksums, not the kernel's partial sums."""
    dev = await ns.open_tap(TAP, offload=True)
    async with await Stack.connect(dev, ipv4=f"{STACK_IP}/{PREFIX}") as stack:
        await stack.udp_echo(7)
        r = await ns.run_async([sys.executable, "-c", UDP_ONE, STACK_IP, "7"])
        assert r.stdout.strip() == "echo", r.stderr  # the offload path carried a datagram
        assert stack.core.fast.udp_echoes == 1
    assert dev.closed
    with enter(ns.name):
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, 0x400454CA, struct.pack("16sH", TAP.encode(), 0x0002 | 0x1000).ljust(40, b"\0"))
        await ns.run_async(["ip", "neigh", "replace", STACK_IP, "lladdr", "02:00:00:00:99:01", "dev", TAP,
                            "nud", "permanent"])
        await ns.run_async([sys.executable, "-c", UDP_SEND, STACK_IP, "9"])
        frames: list[bytes] = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                f = os.read(fd, 2048)
            except BlockingIOError:
                await asyncio.sleep(0.01)
                continue
            if f[12:14] == b"\x08\x00" and f[23] == 17 and f[36:38] == b"\x00\x09":
                frames.append(f)
                break
        assert frames, "the kernel's datagram never reached the plain reader"
        assert frames[0][42:75] == b"q" * 33
        assert _udp_sum_ok(frames[0]), frames[0].hex()
    finally:
        os.close(fd)


UDP_SIZES = r"""
import socket, sys
def udp_counts():
    rows = [line.split() for line in open("/proc/net/snmp") if line.startswith("Udp:")]
    return dict(zip(rows[0][1:], map(int, rows[1][1:])))
before = udp_counts()
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5)
ok = 0
for n in (0, 1, 2, 33, 511, 512, 1471, 1472):
    data = bytes((i * 7 + n) & 0xFF for i in range(n))
    s.sendto(data, (sys.argv[1], int(sys.argv[2])))
    ok += s.recv(2000) == data
after = udp_counts()
print(ok, after["InDatagrams"] - before["InDatagrams"], after["InCsumErrors"] - before["InCsumErrors"])
"""


async def test_udp_echo_replies_keep_the_kernels_partial_sum(ns: Namespace) -> None:
    """The kernel's datagrams come with NEEDS_CSUM and the pseudo-header sum; the echo service's replies keep
    that header and field (`Udp.fast_echo`) and the kernel takes them, every size, odd ones included, as it
    takes a virtio guest's: each echo back intact, no checksum error counted."""
    from tcpip.netif import tap_vnet

    headers: list[bytes] = []
    real = tap_vnet._write

    def spy(fd: int, buf: bytes) -> int:
        headers.append(bytes(buf[:10]))
        return real(fd, buf)

    dev = await ns.open_tap(TAP, offload=True)
    async with await Stack.connect(dev, ipv4=f"{STACK_IP}/{PREFIX}") as stack:
        await stack.udp_echo(7)
        tap_vnet._write = spy  # type: ignore[assignment]
        try:
            r = await ns.run_async([sys.executable, "-c", UDP_SIZES, STACK_IP, "7"])
        finally:
            tap_vnet._write = real
        assert r.stdout.split() == ["8", "8", "0"], (r.stdout, r.stderr)
        assert stack.core.fast.udp_echoes == 8
    assert headers == [struct.pack("<BBHHHH", 1, 0, 0, 0, 34, 6)] * 8


UDP_ONE = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5)
s.sendto(b"p" * 33, (sys.argv[1], int(sys.argv[2])))
print("echo" if s.recv(100) == b"p" * 33 else "wrong")
"""
UDP_SEND = r"""
import socket, sys
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"q" * 33, (sys.argv[1], int(sys.argv[2])))
"""


async def test_offload_device_with_a_plain_consumer_cuts_super_frames(ns: Namespace) -> None:
    """An offload-mode TAP under a middleware that knows nothing of offloads (here: a Stack on a wrapper
    without `offload`) still works: super-frames are cut and checksums finished in software."""
    dev = await ns.open_tap(TAP)  # None: offload where supported

    class Plain:
        """A pass-through wrapper without offload support."""

        def __init__(self, inner: TapDevice) -> None:
            self.inner = inner
            self.mac, self.mtu = inner.mac, inner.mtu

        def __getattr__(self, name: str) -> object:
            if name in ("offload", "attach_offload"):
                raise AttributeError(name)
            return getattr(self.inner, name)

    assert dev.offload is True
    async with await Stack.connect(Plain(dev), ipv4=f"{STACK_IP}/{PREFIX}") as stack:  # type: ignore[arg-type]
        await download(stack, ns, 5 * MB)
        await upload(stack, ns, 1 * MB)
        assert dev.stats.rx_gso_split > 0
        assert dev.stats.tx_gso_frames == 0
        assert stack.tcp.layer.stats.in_csum_errors == 0


def test_cli_up_no_offload(ns: Namespace, tmp_path: Path) -> None:
    """`tcpip up --no-offload` opens the TAP plain (the kernel sees offloads cleared) and serves TCP."""
    require_tap("ip")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tcpip", "up", "--tap", TAP, "--netns", ns.name, "--ipv4", f"{STACK_IP}/{PREFIX}",
         "--tcp-echo", "7", "--no-offload"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("tcpip up:"), line + (proc.stderr.read() if proc.stderr and proc.poll() else "")
        r = ns.run([sys.executable, "-c",
                    "import socket,sys; s=socket.create_connection((sys.argv[1], 7), 5); d=bytes(range(256))*4000;"
                    "s.sendall(d); s.shutdown(1); b=b''\nwhile (x:=s.recv(65536)): b+=x\nprint(b==d, len(b))",
                    STACK_IP], timeout=20)
        assert r.stdout.split() == ["True", "1024000"], r.stdout + r.stderr
        feats = ns.run(["ethtool", "-k", TAP], timeout=10) if shutil.which("ethtool") else None
        if feats is not None and feats.returncode == 0:
            assert "tcp-segmentation-offload: off" in feats.stdout, feats.stdout
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- the partial checksum, checked by the kernel ------------------------------------------------------
_SIOCETHTOOL = 0x8946
_ETHTOOL_SRXCSUM, _ETHTOOL_STXCSUM, _ETHTOOL_STSO, _ETHTOOL_SGSO = 0x15, 0x17, 0x1F, 0x24


def _ethtool_off(ns: Namespace, ifname: str, *cmds: int) -> None:
    """Legacy SIOCETHTOOL set-one-feature calls (ethtool -K IF ... off) inside `ns`."""
    for cmd in cmds:
        val = array.array("I", [cmd, 0])
        req = struct.pack("16sP", ifname.encode(), val.buffer_info()[0]).ljust(40, b"\0")
        with enter(ns.name), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            fcntl.ioctl(s, _SIOCETHTOOL, req)


async def test_kernel_segments_our_super_frames_with_correct_checksums(ns: Namespace) -> None:
    """Locally delivered, the kernel trusts a partial checksum without looking at it, so the sha256 of an
    upload proves nothing about our partial sums. Routed on to a veth without TSO or checksum offload, the
    kernel must cut our super-frames itself (tcp_gso_segment) and finish every segment's checksum from
    the partial sum we wrote; the far namespace, with receive checksum offload off, verifies each one."""
    far = Namespace.create("of")
    try:
        def plumb() -> None:
            ns.add_veth("va", far, "vb")
            ns.add_address("va", "198.18.1.1/24")
            far.add_address("vb", "198.18.1.2/24")
            far.add_route(f"198.18.0.0/{PREFIX}", "198.18.1.1")
            ns.set_forwarding(True)
            _ethtool_off(ns, "va", _ETHTOOL_STSO, _ETHTOOL_SGSO, _ETHTOOL_STXCSUM)
            _ethtool_off(far, "vb", _ETHTOOL_SRXCSUM)

        await asyncio.to_thread(plumb)
        dev = await ns.open_tap(TAP, offload=True)
        async with await Stack.connect(dev, ipv4=f"{STACK_IP}/{PREFIX}", gateways=[KERNEL_IP]) as stack:
            size = 320 * 65536  # 21 MB in whole 64 KiB writes
            block = (bytes(range(251)) * 1045)[:262144]
            proc = await far.start([sys.executable, "-c", KERNEL_PEER, "put", str(PORT)])
            try:
                assert proc.stdout is not None
                assert await asyncio.wait_for(proc.stdout.readline(), 10) == b"ready\n"
                _r, w = await stack.open_connection("198.18.1.2", PORT)
                for off in range(0, size, 65536):
                    w.write(block[off % len(block):off % len(block) + 65536])
                    await w.drain()
                w.write_eof()
                line = await asyncio.wait_for(proc.stdout.readline(), 60)
                w.close()
            finally:
                await Namespace.stop(proc)
            assert line.split() == [b"got", str(size).encode(), pattern_sha(size).encode()], line
            assert dev.stats.tx_gso_frames > 50  # the data went out as super-frames
        r2 = await far.run_async(["nstat", "-asz", "TcpInCsumErrors", "TcpInSegs"])
        got = dict(re.findall(r"^(Tcp\w+)\s+(\d+)", r2.stdout, re.M))
        assert got["TcpInCsumErrors"] == "0", r2.stdout
        assert int(got["TcpInSegs"]) > size // 1460  # the far end saw MSS-sized segments, each verified
    finally:
        await asyncio.to_thread(far.remove)
