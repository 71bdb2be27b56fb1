"""The TCP floor: the least work any Python TCP must do on a TAP, as its own small program.

One read or write per frame on the TAP fd (a plain select loop, no asyncio), one struct unpack per
header, headers built from a template with RFC 1071 checksums (one's-complement sums taken mod 0xFFFF),
an ACK every two segments (or when the input queue runs dry), a fixed large window (65535 << 7), go-back-N
on a fixed timer, no reassembly (out-of-order data is dropped and answered with a duplicate ACK), no
congestion control. It answers ARP for its address and asks for the peer's. It is the client of
bench/tcp_peer.py's asyncio server on the kernel's side of the TAP and speaks its protocol:

  ip netns exec NS python bench/tcp_floor.py get|put N [--offload] [--tap tap0] [--ip 198.18.0.2]
        [--peer 198.18.0.1] [--port 5001]

get: receive N bytes from the kernel; put: send N bytes to it (then read its `COUNT SHA256\\n` reply).
Checksums are verified on receive (IPv4 always; TCP unless the virtio header says NEEDS_CSUM/DATA_VALID)
and the sha256 of the data is checked. Plain mode sets TUNSETOFFLOAD 0 (the flags persist on the device);
offload mode opens with IFF_VNET_HDR, TUNSETVNETHDRSZ 10, TUNSETOFFLOAD TUN_F_CSUM|TUN_F_TSO4, receives the
kernel's super-frames and sends 64 KiB super-segments (gso_type TCPV4, gso_size = MSS, NEEDS_CSUM, the
pseudo-header partial sum in the checksum field). Prints one JSON line like tcp_peer.py's clients.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import random
import resource
import select
import struct
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/tcp_floor.py`: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.tcp_peer import chunk, expected_sha256

TUNSETIFF, TUNSETOFFLOAD, TUNSETVNETHDRSZ = 0x400454CA, 0x400454D0, 0x400454D8
IFF_TAP, IFF_NO_PI, IFF_VNET_HDR = 0x0002, 0x1000, 0x4000
TUN_F_CSUM, TUN_F_TSO4 = 0x01, 0x02
NEEDS_CSUM, DATA_VALID, GSO_TCPV4 = 1, 2, 1
VNET = struct.Struct("=BBHHHH")  # flags, gso_type, hdr_len, gso_size, csum_start, csum_offset (native)
IP_TCP = struct.Struct("!BxHxxHxBxxII HHIIHH")  # vihl, total, flags/frag, proto, src, dst, TCP fields
U16 = struct.Struct("!H")
IP_VAR = struct.Struct("!HH")  # total length, ident
TCP_VAR = struct.Struct("!IIHH")  # seq, ack, offset/flags, window
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
MASK = 0xFFFFFFFF
WSCALE = 7
RTO = 0.2  # go-back-N timer (fixed)
_from = int.from_bytes


def _ip(s: str) -> int:
    return _from(bytes(map(int, s.split("."))), "big")


def open_tap(name: str, offload: bool) -> int:
    """Attach to TAP `name` (in this process's namespace) and set its offload flags either way."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        flags = IFF_TAP | IFF_NO_PI | (IFF_VNET_HDR if offload else 0)
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), flags).ljust(40, b"\0"))
        if offload:
            fcntl.ioctl(fd, TUNSETVNETHDRSZ, struct.pack("i", 10))
        fcntl.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 if offload else 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


class Floor:
    """One client connection, driven by `run()` until done; counters in `self.stats`."""

    def __init__(self, fd: int, offload: bool, mac: bytes, ip: int, peer_ip: int, port: int,
                 out: bytes, n: int, rng: random.Random) -> None:
        self.fd, self.offload, self.vh = fd, offload, 10 if offload else 0
        self.mac, self.ip, self.peer_ip, self.port = mac, ip, peer_ip, port
        self.peer_mac = b""
        self.lport = rng.randrange(32768, 61000)
        self.iss, self.irs = rng.getrandbits(32), 0
        self.prefix = out  # the request line; a put's data follows it from the pattern
        self.is_get = out.startswith(b"get")
        self.n_out = len(out) + (0 if self.is_get else n)
        self.snd_una = self.snd_nxt = 0  # stream offsets (sequence numbers minus iss + 1)
        self.peer_win = self.peer_ws = 0
        self.mss = 1460
        self.rcv = 0  # bytes received in order (offset of rcv_nxt)
        self.established = self.fin_rcvd = self.fin_sent = False
        self.want_fin = not self.is_get  # put: FIN right after the data (write_eof); get: after theirs
        self.pending = 0  # segments received since the last ACK
        self.deadline = 0.0
        self.hash = hashlib.sha256()
        self.reply = bytearray()
        self.stats = dict.fromkeys(("rx_frames", "tx_frames", "rx_super", "tx_super", "acks", "dup_acks",
                                    "go_back", "rx_csum_bad", "rx_csum_skipped"), 0)
        tmpl = bytearray(54)  # Ethernet (MACs set by set_peer_mac) + IPv4 + TCP
        tmpl[12:14] = b"\x08\x00"
        tmpl[14:34] = struct.pack("!BBHHHBBHII", 0x45, 0, 0, 0, 0x4000, 64, 6, 0, ip, peer_ip)
        tmpl[34:38] = struct.pack("!HH", self.lport, port)
        self.tmpl = tmpl
        self.ip_sum = _from(tmpl[14:34], "big")  # constant words; length and ident added per frame
        self.ps_sum = (ip >> 16) + (ip & 0xFFFF) + (peer_ip >> 16) + (peer_ip & 0xFFFF) + 6
        self.tcp_sum = self.ps_sum + self.lport + port  # pseudo-header + ports (2**16 == 1 mod 0xFFFF)
        self.ident = 0

    # -- output ------------------------------------------------------------------------------------
    def _write(self, parts: list[Any]) -> None:
        try:
            os.writev(self.fd, parts)
            self.stats["tx_frames"] += 1
        except BlockingIOError:
            pass  # a full queue is a lost frame: go-back-N repairs it

    def set_peer_mac(self, mac: bytes) -> None:
        self.peer_mac = mac
        self.tmpl[0:12] = mac + self.mac

    def segment(self, seq: int, flags: int, payload: memoryview | bytes = b"", opts: bytes = b"") -> None:
        n = len(payload)
        tl = 20 + len(opts) + n
        h = bytearray(self.tmpl)
        if opts:
            h += opts
        self.ident = ident = (self.ident + 1) & 0xFFFF
        s = (self.ip_sum + 20 + tl + ident) % 0xFFFF
        IP_VAR.pack_into(h, 16, 20 + tl, ident)
        U16.pack_into(h, 24, 0xFFFF - s if s else 0)
        ack = (self.irs + 1 + self.rcv + self.fin_rcvd) & MASK if self.established else 0
        offflags = ((20 + len(opts)) << 10) | flags
        win = 0xFFFF  # fixed: 65535 (<< WSCALE once established)
        TCP_VAR.pack_into(h, 38, seq, ack, offflags, win)
        if self.offload:
            pseudo = (self.ps_sum + tl) % 0xFFFF or 0xFFFF  # partial sum, not complemented
            U16.pack_into(h, 50, pseudo)
            gso = n > self.mss
            vnet = VNET.pack(NEEDS_CSUM, GSO_TCPV4 if gso else 0, 54 + len(opts), self.mss if gso else 0, 34, 16)
            self.stats["tx_super"] += gso
            self._write([vnet, h, payload])
            return
        x = _from(h[54:], "big") if opts else 0  # options follow the 20-byte header
        p = _from(payload, "big") << 8 if n & 1 else _from(payload, "big")
        c = (self.tcp_sum + tl + seq + ack + offflags + win + x + p) % 0xFFFF
        U16.pack_into(h, 50, 0xFFFF - c if c else 0)
        self._write([h, payload])

    def send_ack(self) -> None:
        self.pending = 0
        self.stats["acks"] += 1
        self.segment((self.iss + 1 + self.snd_nxt) & MASK, ACK)

    def push(self, now: float) -> None:
        """Send what the peer's window allows (go-back-N restarts from snd_una)."""
        limit = self.snd_una + self.peer_win
        seg = self.mss * (44 if self.offload else 1)  # 44 * 1460 = 64240: one super-segment
        sent = False
        while self.snd_nxt < self.n_out and self.snd_nxt < limit:
            off = self.snd_nxt
            k = min(seg, self.n_out - off, limit - off)
            if k < self.mss and off + k < self.n_out:
                break  # no silly-window segments
            p = len(self.prefix)
            data = self.prefix[off:off + k] if off < p else chunk(off - p, k)
            if off < p < off + k:
                data = self.prefix[off:] + bytes(chunk(0, off + k - p))
            self.segment((self.iss + 1 + off) & MASK, ACK | PSH, data)
            self.snd_nxt = off + len(data)
            sent = True
        if self.want_fin and self.snd_nxt == self.n_out and not self.fin_sent:
            self.segment((self.iss + 1 + self.n_out) & MASK, FIN | ACK)
            self.snd_nxt += 1
            self.fin_sent = sent = True
        if sent:
            self.pending = 0  # our segments carry the ACK
            if self.deadline == 0.0:
                self.deadline = now + RTO

    # -- input -------------------------------------------------------------------------------------
    def arp(self, f: bytes, o: int) -> None:
        op = U16.unpack_from(f, o + 20)[0]
        tip = _from(f[o + 38:o + 42], "big")
        if op == 1 and tip == self.ip:
            mac = f[o + 22:o + 28]
            body = b"\x00\x01\x08\x00\x06\x04\x00\x02" + self.mac + self.ip.to_bytes(4, "big") + mac + f[o + 28:o + 32]
            self._write([b"\0" * 10] * (self.vh > 0) + [mac + self.mac + b"\x08\x06" + body])
        elif op == 2 and _from(f[o + 28:o + 32], "big") == self.peer_ip:
            self.set_peer_mac(bytes(f[o + 22:o + 28]))

    def input(self, f: bytes, now: float) -> None:
        o = self.vh
        et = f[o + 12:o + 14]
        if et == b"\x08\x06":
            self.arp(f, o)
            return
        if et != b"\x08\x00" or len(f) < o + 54:
            return
        vihl, total, frag, proto, src, dst, sport, dport, seq, ack, offflags, win = IP_TCP.unpack_from(f, o + 14)
        if vihl != 0x45 or proto != 6 or src != self.peer_ip or dst != self.ip or frag & 0x3FFF \
                or sport != self.port or dport != self.lport or o + 14 + total > len(f):
            return
        if _from(f[o + 14:o + 34], "big") % 0xFFFF:
            self.stats["rx_csum_bad"] += 1
            return
        seg = memoryview(f)[o + 34:o + 14 + total]
        tl = total - 20
        gso_size = 0
        if o:
            vflags, gso_type, _hl, gso_size, _cs, _co = VNET.unpack_from(f, 0)
            gso_size = gso_size if gso_type else 0
            if vflags & (NEEDS_CSUM | DATA_VALID):
                self.stats["rx_csum_skipped"] += 1
                tl = -1
        if tl >= 0:
            x = _from(seg, "big") << 8 if tl & 1 else _from(seg, "big")
            if (x + self.ps_sum + tl) % 0xFFFF:
                self.stats["rx_csum_bad"] += 1
                return
        self.stats["rx_frames"] += 1
        flags = offflags & 0x3F
        if flags & RST:
            raise ConnectionResetError("RST from the peer")
        doff = (offflags >> 12) * 4
        if not self.established:
            if flags & (SYN | ACK) == SYN | ACK and ack == (self.iss + 1) & MASK:
                self.irs = seq
                self._options(seg[20:doff])
                self.established = True
                self.peer_win = win  # never scaled in a SYN
                self.deadline = 0.0
                self.send_ack()
            return
        if flags & ACK:
            a = (ack - self.iss - 1) & MASK
            if self.snd_una < a <= self.snd_nxt:
                self.snd_una = a
                self.deadline = now + RTO if a < self.snd_nxt else 0.0
            self.peer_win = win << self.peer_ws
        n = len(seg) - doff
        off = (seq - self.irs - 1) & MASK
        if n:
            if off != self.rcv or self.fin_rcvd:
                self.stats["dup_acks"] += 1
                self.send_ack()  # no reassembly: out of order is dropped, the kernel resends
                return
            data = seg[doff:]
            if self.is_get:
                self.hash.update(data)
            else:
                self.reply += data
            self.rcv += n
            if gso_size:
                self.stats["rx_super"] += 1
                self.pending += -(-n // gso_size)
            else:
                self.pending += 1
            if self.pending >= 2:
                self.send_ack()
        if flags & FIN and off + n == self.rcv and not self.fin_rcvd:
            self.fin_rcvd = True
            self.want_fin = True
            self.send_ack()

    def _options(self, opts: memoryview) -> None:
        i = 0
        while i < len(opts) and opts[i]:  # EOL ends the list
            if opts[i] == 1:  # NOP
                i += 1
                continue
            kind, ln = opts[i], opts[i + 1] if i + 1 < len(opts) else 0
            if ln < 2:
                break
            if kind == 2 and ln == 4:
                self.mss = min(1460, U16.unpack_from(opts, i + 2)[0])
            elif kind == 3 and ln == 3:
                self.peer_ws = min(14, opts[i + 2])
            i += ln

    # -- the loop ----------------------------------------------------------------------------------
    def done(self) -> bool:
        return self.fin_rcvd and self.fin_sent and self.snd_una == self.snd_nxt

    def run(self, cap: float) -> None:
        fd, read, bufsize = self.fd, os.read, 65550 + self.vh + 64
        t_end = time.monotonic() + cap
        t_arp = 0.0
        while not self.peer_mac:  # ARP for the peer (answers for us come through input() too)
            now = time.monotonic()
            if now > t_end:
                raise TimeoutError("no ARP reply")
            if now >= t_arp:
                req = (b"\xff" * 6 + self.mac + b"\x08\x06\x00\x01\x08\x00\x06\x04\x00\x01" + self.mac
                       + self.ip.to_bytes(4, "big") + b"\0" * 6 + self.peer_ip.to_bytes(4, "big"))
                self._write([b"\0" * 10] * (self.vh > 0) + [req])
                t_arp = now + 0.2
            if select.select([fd], [], [], 0.05)[0]:
                self.input(read(fd, bufsize), now)
        syn_opts = struct.pack("!BBH", 2, 4, 1460) + bytes((1, 3, 3, WSCALE))
        t_syn = 0.0
        while not self.done():
            now = time.monotonic()
            if now > t_end:
                raise TimeoutError(f"not done after {cap} s: {self.rcv} bytes in, {self.snd_una} acked")
            if self.deadline and now >= self.deadline:
                self.stats["go_back"] += 1
                self.snd_nxt = self.snd_una  # go-back-N (a lost FIN is resent with the data)
                self.fin_sent = self.fin_sent and self.snd_una > self.n_out
                self.deadline = 0.0
            if not self.established:
                if now >= t_syn:
                    self.segment(self.iss, SYN, b"", syn_opts)
                    t_syn = now + 1.0
            else:
                self.push(now)
            try:
                f = read(fd, bufsize)
            except BlockingIOError:
                if self.pending:
                    self.send_ack()  # the queue ran dry: ACK what we have
                wait = 0.05 if self.deadline == 0.0 else max(0.0, self.deadline - now)
                select.select([fd], [], [], wait)
                continue
            self.input(f, now)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cmd", choices=("get", "put"))
    ap.add_argument("n", type=int)
    ap.add_argument("--offload", action="store_true")
    for opt, default in (("--tap", "tap0"), ("--ip", "198.18.0.2"), ("--peer", "198.18.0.1"),
                         ("--mac", "02:00:00:00:00:02")):
        ap.add_argument(opt, default=default)
    ap.add_argument("--port", type=int, default=5001)
    ap.add_argument("--cap", type=float, default=120.0, help="give up after this many seconds")
    a = ap.parse_args(argv)
    fd = open_tap(a.tap, a.offload)
    try:
        fl = Floor(fd, a.offload, bytes.fromhex(a.mac.replace(":", "")), _ip(a.ip), _ip(a.peer), a.port,
                   f"{a.cmd} {a.n}\n".encode(), a.n, random.Random())
        expected = expected_sha256(a.n)  # before the clock starts
        t0, c0, r0 = time.perf_counter(), os.times(), resource.getrusage(resource.RUSAGE_SELF)
        err = None
        try:
            fl.run(a.cap)
        except (TimeoutError, ConnectionError) as e:
            err = str(e)
        dt, c1, r1 = time.perf_counter() - t0, os.times(), resource.getrusage(resource.RUSAGE_SELF)
    finally:
        os.close(fd)
    if fl.is_get:
        got, digest = fl.rcv, fl.hash.hexdigest()
    else:
        parts = bytes(fl.reply).split()
        got, digest = (int(parts[0]), parts[1].decode()) if len(parts) == 2 else (-1, "")
    res: dict[str, Any] = {"bytes": got, "sha256_ok": digest == expected, "ok": got == a.n and digest == expected,
                           "seconds": dt, "mbit_s": a.n * 8 / dt / 1e6,
                           "cpu_s": (c1.user - c0.user) + (c1.system - c0.system), "offload": a.offload,
                           "cpu_ru_s": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime),
                           "cpu_sys_s": r1.ru_stime - r0.ru_stime,
                           "counters": {k: v for k, v in fl.stats.items() if v}}
    if err:
        res["error"] = err
    print(json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
