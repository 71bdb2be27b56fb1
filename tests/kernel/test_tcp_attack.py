"""TCP under attack over a TAP against the Linux kernel (issue 13): a SYN flood from 1,000 spoofed on-link
sources while a kernel curl must still get its page, and blind injection (in-window RST, in-window SYN, an
ACK beyond SND.NXT) during a 20 MB upload, each answered by a challenge ACK seen in the capture."""

from __future__ import annotations

import asyncio
import hashlib
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kernel_support import KERNEL_IP, STACK_IP, TAP, Peer, require_tap, tshark_fields

from tcpip import Stack
from tcpip.apps import http_handler, status_page
from tcpip.core.tcp.conn import Connection
from tcpip.netns import Namespace

pytestmark = pytest.mark.tap

MiB = 1 << 20
FLOOD_SECONDS = 4  # 5,000 SYNs/s

# Runs in the namespace: `count` SYNs to dst:port over tap0 from `sources` spoofed addresses (src_base + i,
# on-link in a /22), random ports and sequence numbers, paced over `seconds`; prints how many went out.
_FLOOD = r"""
import os, random, socket, struct, sys, time
iface, dst_mac, src_base, sources, dst, port, count, seconds = sys.argv[1:9]
dst_mac = bytes.fromhex(dst_mac.replace(":", ""))
src_base, sources, count, port, seconds = (int(src_base), int(sources), int(count), int(port),
                                           float(seconds))
dst = socket.inet_aton(dst)
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF
rnd = random.Random(13)
frames = []
for i in range(count):
    src = struct.pack("!I", src_base + i % sources)
    tcp = struct.pack("!HHIIBBHHH", rnd.randint(1024, 65000), port, rnd.getrandbits(32), 0, 0x70, 0x02,
                      64240, 0, 0) + b"\x02\x04\x05\xb4\x04\x02\x01\x03\x03\x07"
    tcp = tcp[:16] + struct.pack("!H", csum(src + dst + struct.pack("!BBH", 0, 6, len(tcp)) + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), i & 0xFFFF, 0, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    mac = bytes([2, 0x5A, 0, 0, (i % sources) >> 8, (i % sources) & 0xFF])
    frames.append(dst_mac + mac + b"\x08\x00" + ip + tcp)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
sent, burst = 0, 200
start = time.monotonic()
for k in range(0, count, burst):
    for f in frames[k:k + burst]:
        try:
            s.send(f)
            sent += 1
        except OSError:
            time.sleep(0.001)
    delay = start + seconds * (k + burst) / count - time.monotonic()
    if delay > 0:
        time.sleep(delay)
print(sent, round(time.monotonic() - start, 2))
"""


def _tap_drops(stack: Stack) -> int:
    """Frames toward us the kernel's TAP queue dropped (full: the stack read too slowly)."""
    return stack.stats().get("device", {}).get("kernel_tx_dropped", 0)


def _rss_kib() -> int:
    text = Path("/proc/self/status").read_text()
    m = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
    assert m is not None
    return int(m.group(1))


@pytest.fixture
def flood_ns() -> Iterator[Namespace]:
    """A namespace with tap0 at 198.18.0.1/22: room for 1,000 on-link spoofed sources."""
    require_tap("ip", "curl")
    ns = Namespace.create("syn")
    try:
        ns.add_tap(TAP)
        ns.add_address(TAP, f"{KERNEL_IP}/22")
        yield ns
    finally:
        ns.remove()
    assert not ns.exists


async def test_syn_flood_from_1000_spoofed_sources_curl_still_served(flood_ns: Namespace) -> None:
    dev = await flood_ns.open_tap(TAP)
    # The TAP's default burst cap (256 frames per wake-up) lets timers and the application run during it.
    assert dev.max_burst <= 256
    async with await Stack.connect(dev, ipv4=f"{STACK_IP}/22") as stack:
        server = await stack.start_server(http_handler(lambda: status_page(stack)), None, 80, backlog=128)
        layer = stack.tcp.layer
        try:
            r = await flood_ns.run_async(["curl", "-sS", "-m", "5", "-o", "/dev/null", f"http://{STACK_IP}/"])
            assert r.returncode == 0, r.stderr
            rss0 = _rss_kib()
            base = (198 << 24) | (18 << 16) | 16  # 198.18.0.16 .. 198.18.3.247
            flood = asyncio.create_task(flood_ns.run_async(
                [sys.executable, "-c", _FLOOD, TAP, str(stack.mac), str(base), "1000", STACK_IP, "80",
                 "20000", str(FLOOD_SECONDS)], timeout=25))
            in0, drop0 = layer.stats.in_segs, _tap_drops(stack)
            t_start = time.monotonic()
            for _ in range(200):  # until the flood reaches tcpip (the script first builds its frames)
                await asyncio.sleep(0.05)
                if layer.stats.in_segs - in0 > 1000:
                    break
            waited = time.monotonic() - t_start
            half_open_seen = sum(1 for c in stack.tcp_connections() if c.state == "SYN_RECEIVED")
            drop1 = _tap_drops(stack)
            t0 = time.monotonic()
            r = await flood_ns.run_async(["curl", "-sS", "-m", "5", "-o", "/dev/null", "-w",
                                          "%{time_connect} %{time_total}", f"http://{STACK_IP}/"])
            curl_s = time.monotonic() - t0
            curl_drops = _tap_drops(stack) - drop1
            flood_running = not flood.done()
            out = await flood
            sent = int(out.stdout.split()[0])
            # The script has written every SYN, but a stack slowed by other load may still have up to a TAP
            # queue of them unread: wait until each one was read or dropped by the kernel's full queue, and
            # take the counters while the listener is still open (SYNs read after close() get RSTs, 768 of
            # them in a run under load: rx_no_socket, and SyncookiesSent short by as many).
            for _ in range(400):
                if layer.stats.in_segs - in0 + _tap_drops(stack) - drop0 >= sent:
                    break
                await asyncio.sleep(0.05)
            tcp = dict(stack.tcp.stats())
            peak_conns = len(layer.conns)
            rss1 = _rss_kib()
        finally:
            server.close()
            await asyncio.wait_for(server.wait_closed(), 10)
        figures = (f"flood: {out.stdout.strip()} (SYNs sent, seconds); reached tcpip after {waited:.1f} s; "
                   f"curl {curl_s:.2f} s (connect, total: {r.stdout.strip()}; TAP drops during it "
                   f"{curl_drops}), flood still running: {flood_running}; half-open "
                   f"{half_open_seen}; conns after {peak_conns}; RSS +{rss1 - rss0} KiB; "
                   f"SyncookiesSent={tcp['SyncookiesSent']} ListenDrops={tcp['ListenDrops']} "
                   f"InSegs={tcp['InSegs']} rx_no_socket={tcp['rx_no_socket']} TAP drops "
                   f"{_tap_drops(stack) - drop0}")
        print(figures)
        assert r.returncode == 0, (r.stderr, figures)
        # curl's own time_total, not curl_s: starting a process in the namespace took up to ~0.7 s of
        # curl_s under CPU load (0.46 s wall for a 0.09 s request), which says nothing about the stack.
        # 3 s still fails a request whose SYN or ACK went unanswered twice (kernel RTO 1 s, then 2 s).
        assert float(r.stdout.split()[1]) < 3.0, figures
        assert flood_running, figures  # curl was served during the flood, not after it
        assert sent == 20000, figures
        assert half_open_seen <= 128, figures  # the listener's half-open table is bounded by its backlog
        assert peak_conns <= 128 + 2, figures
        # every flood SYN that reached tcpip (the TAP queue drops what a busy stack cannot read in time) was
        # answered statelessly, beyond the 128 half-open ones; the two curls add a few dozen segments
        assert tcp["SyncookiesSent"] >= tcp["InSegs"] - 128 - 60, figures
        assert tcp["rx_no_socket"] == 0, figures  # read while listening: none answered by RST
        assert tcp["InSegs"] > 5000, figures
        assert rss1 - rss0 < 16 * 1024, figures  # bounded: no state per SYN


# Runs in the namespace: upload `half` bytes, wait for tcpip's "g", upload `half` more, read "ok <sha>",
# then hold the connection open until the test creates `release` (it resets the connection first). A fixed
# hold of 4 s was shorter than the test's scapy start-up under CPU load (3.4-4.7 s measured): the peer's FIN
# then moved RCV.NXT past the final RST's sequence number, which tcpip rightly ignored.
_UPLOADER = r"""
import hashlib, os, socket, sys, time
host, port, half, release = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
data = bytes((i * 31 + 7) & 0xFF for i in range(256)) * (2 * half // 256)
s = socket.create_connection((host, port), timeout=80)
s.sendall(data[:half])
assert s.recv(1) == b"g"
s.sendall(data[half:])
print(s.recv(100).decode().strip(), hashlib.sha256(data).hexdigest(), flush=True)
end = time.monotonic() + 80
while not os.path.exists(release) and time.monotonic() < end:
    time.sleep(0.05)
"""

# Runs in the namespace: send crafted segments on tap0 with scapy; before each one after the first, wait for
# the test to create `<gate>.<i>` (it does once tcpip answered the one before and the per-connection
# challenge-ACK rate limit, 0.5 s, has passed on tcpip's side: a fixed gap between sends is not that when
# tcpip runs late). An empty `gate`: no waiting.
_INJECT = r"""
import os, sys, time
from scapy.all import Ether, IP, TCP, sendp, conf
conf.verb = 0
iface, src_mac, dst_mac, src, dst, sport, dport, gate = sys.argv[1:9]
for i, spec in enumerate(sys.argv[9:]):
    end = time.monotonic() + 60
    while i and gate and not os.path.exists(f"{gate}.{i}") and time.monotonic() < end:
        time.sleep(0.02)
    flags, seq, ack = spec.split(",")
    p = Ether(src=src_mac, dst=dst_mac) / IP(src=src, dst=dst) / TCP(
        sport=int(sport), dport=int(dport), flags=flags, seq=int(seq), ack=int(ack), window=1000)
    sendp(p, iface=iface)
"""


async def _until(cond: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll `cond` every 20 ms; fail naming `what` if it does not hold within `seconds` (a bound for a
    loaded machine, not a figure the test asserts)."""
    end = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < end, f"not within {seconds} s: {what}"
        await asyncio.sleep(0.02)


def _conn(peer: Peer, port: int) -> Connection:
    for c in peer.stack.tcp.layer.conns.values():
        if c.local_port == port and c.state.name == "ESTABLISHED":
            return c
    raise AssertionError("no established connection")


async def test_blind_injection_during_20_mb_upload(peer: Peer) -> None:
    require_tap("tshark")
    half = 10 * MiB
    reset_seen: list[BaseException] = []
    done = asyncio.Event()
    go = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        h = hashlib.sha256()
        h.update(await reader.readexactly(half))
        await go.wait()  # the test injects while the upload is paused (stable numbers)
        writer.write(b"g")
        h.update(await reader.readexactly(half))
        writer.write(f"ok {h.hexdigest()}\n".encode())
        await writer.drain()
        done.set()
        try:
            await reader.read(1)
        except ConnectionResetError as e:
            reset_seen.append(e)

    server = await peer.stack.start_server(handler, None, 5001)
    release = peer.tmp / "release"
    gate = peer.tmp / "gate"
    try:
        up = asyncio.create_task(peer.python(_UPLOADER, STACK_IP, "5001", str(half), str(release), timeout=120))

        def first_half_read() -> bool:
            cs = [c for c in peer.stack.tcp.layer.conns.values() if c.local_port == 5001]
            return bool(cs) and cs[0].rcvbuf.rcv_nxt - cs[0].irs - 1 >= half and not cs[0].readable

        await _until(first_half_read, 60, "the first half received and read")
        c = _conn(peer, 5001)
        # Quiet: the peer has nothing more to send before "g", and once tcpip has ACKed all of it (by the read's
        # window update or the delayed ACK, since a bulk receiver ACKs once per delivery batch) no segment
        # of ours is due either, so RCV.NXT and SND.NXT stay put and the injected segments' next answers are
        # the challenge ACKs. (A fixed 0.3 s sleep stood for this.)
        await _until(lambda: c.last_ack_sent == c.rcvbuf.rcv_nxt and not c.ack_pending, 10, "all data ACKed")
        rcv_nxt, snd_nxt = c.rcvbuf.rcv_nxt, c.snd_nxt
        base = [TAP, peer.kernel_mac, str(peer.stack.mac), KERNEL_IP, STACK_IP, str(c.remote_port), "5001"]
        inject = asyncio.create_task(peer.python(
            _INJECT, *base, str(gate), f"R,{(rcv_nxt + 5000) % 2**32},0", f"S,{(rcv_nxt + 9000) % 2**32},0",
            f"A,{rcv_nxt},{(snd_nxt + 1_000_000) % 2**32}", timeout=120))
        for i in range(1, 4):  # one at a time: each is answered before the next is sent
            def answered(i: int = i) -> bool:
                return inject.done() or peer.stack.stats()["tcp"]["TCPChallengeACK"] >= i

            await _until(answered, 60, f"injected segment {i} answered")
            if i < 3:
                await asyncio.sleep(c.config.invalid_ratelimit + 0.1)  # past the limit, counted from the answer
                (peer.tmp / f"gate.{i}").touch()
        r = await inject
        assert r.returncode == 0, r.stderr
        stats = dict(peer.stack.stats()["tcp"])
        go.set()
        await asyncio.wait_for(done.wait(), 60)
        c = _conn(peer, 5001)
        r = await peer.python(_INJECT, *base, "", f"R,{c.rcvbuf.rcv_nxt},0", timeout=60)
        assert r.returncode == 0, r.stderr
        await _until(lambda: bool(reset_seen), 10, "the exact RST seen by the handler")
        release.touch()
        res = await up
        assert res.returncode == 0, res.stderr
        words = res.stdout.split()
        assert words[0] == "ok", res.stdout
        assert words[1] == words[2], res.stdout  # the 20 MB arrived intact
    finally:
        release.touch()
        server.close()
        server.abort_clients()
        await asyncio.wait_for(server.wait_closed(), 10)
    assert [type(e) for e in reset_seen] == [ConnectionResetError], reset_seen
    assert (stats["rx_rst_challenged"], stats["rx_syn_in_window"], stats["rx_ack_unsent"]) == (1, 1, 1), stats
    assert stats["TCPChallengeACK"] == 3, stats
    # the capture: after each injected segment, tcpip's next segment on the connection is a bare ACK of
    # RCV.NXT (the challenge ACK)
    peer.pcap.flush()
    rows = tshark_fields(peer.pcap_path, "tcp.port == 5001", "ip.src", "tcp.flags.str", "tcp.seq_raw",
                         "tcp.ack_raw", "tcp.len")
    injected = {(str((rcv_nxt + 5000) % 2**32), "0"), (str((rcv_nxt + 9000) % 2**32), "0"),
                (str(rcv_nxt), str((snd_nxt + 1_000_000) % 2**32))}
    challenged = 0
    for i, (src, _flags, seq, ack, _n) in enumerate(rows):
        if src == KERNEL_IP and (seq, ack) in injected:
            nxt = next(r for r in rows[i + 1:] if r[0] == STACK_IP)
            assert (nxt[3], nxt[4], nxt[1].count("A"), nxt[1].count("R")) == (str(rcv_nxt), "0", 1, 0), nxt
            challenged += 1
    assert challenged == 3, rows[-20:]
