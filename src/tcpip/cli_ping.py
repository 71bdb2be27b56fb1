"""`tcpip ping`: its flags and the session, timed and worded like ping(8) (iputils).

Probes go out every `-i` seconds whatever is still outstanding; each waits at most `-W` seconds for its
answer; SIGINT/SIGTERM (the `stop` event) ends the run at once with the summary. Exit status as ping(8):
0 if any reply came, 1 if none, 2 on error (raised as UsageError, reported by the CLI); 130 when stopped
before the first probe (while DHCP or the name lookup ran), as ping(8) dies of SIGINT there."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from ipaddress import IPv4Address
from typing import TYPE_CHECKING, TextIO, TypeVar

from tcpip.clierror import UsageError, prefix
from tcpip.errors import NoRouteError
from tcpip.ping import NETWORK_UNREACHABLE, PingResult, PingResults, is_broadcast

if TYPE_CHECKING:
    from tcpip.stack import Stack

FLOOD_GAP = 0.01  # ping -f without -i: at least 100 probes a second, or one per reply if faster
MIN_INTERVAL = 0.002  # ping(8)'s floor for an unprivileged -i
MAX_SECONDS = 3600.0
STOPPED = 130  # exit status when stopped before the first probe (128 + SIGINT)
_T = TypeVar("_T")


# -- flags ---------------------------------------------------------------------------------------
def _seconds(lo: float, what: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            v = float("nan")
        if not lo <= v <= MAX_SECONDS:  # also NaN
            raise argparse.ArgumentTypeError(f"{what}: {text} (allowed: {lo:g} to {MAX_SECONDS:g} seconds)")
        return v

    parse.__name__ = what
    return parse


def _byte(what: str, lo: int = 0) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            v = int(text, 0)
        except ValueError:
            v = -1
        if not lo <= v <= 255:
            raise argparse.ArgumentTypeError(f"bad {what}: {text} (allowed: {lo} to 255, decimal or 0x hex)")
        return v

    parse.__name__ = what
    return parse


def pattern(text: str) -> bytes:
    """ping -p: up to 16 bytes as hex digits, read two at a time (an odd last digit is one byte)."""
    try:
        if not 0 < len(text) <= 32:
            raise ValueError
        return bytes(int(text[i:i + 2], 16) for i in range(0, len(text), 2))
    except ValueError:
        raise argparse.ArgumentTypeError(f"patterns must be specified as 1 to 32 hex digits: {text}") from None


def pmtu_discovery(text: str) -> str:
    if text not in ("do", "dont"):
        raise argparse.ArgumentTypeError(f"wrong value: {text} (do, dont are available)")
    return text


def add_flags(g: argparse.ArgumentParser, int_range: Callable[[int, int, str], Callable[[str], int]]) -> None:
    """ping(8)'s flags that tcpip ping has (after the device flags)."""
    g.add_argument("-c", "--count", type=int_range(1, 1_000_000, "count"), default=4,
                   help="stop after COUNT probes (default 4)")
    g.add_argument("-s", "--size", type=int_range(0, 65507, "size"), default=56, help="data bytes (default 56)")
    g.add_argument("-i", "--interval", type=_seconds(MIN_INTERVAL, "bad timing interval"), default=None,
                   help="seconds between probes, whatever is outstanding (default 1; with -f 0.01)")
    g.add_argument("-W", "--timeout", type=_seconds(0.001, "bad linger time"), default=1.0,
                   help="seconds to wait for each reply (default 1)")
    g.add_argument("-t", "--ttl", type=_byte("TTL", 1), default=None, help="IP time to live (default 64)")
    g.add_argument("-Q", "--tos", type=_byte("TOS"), default=0, help="IP TOS byte (DSCP and ECN bits)")
    g.add_argument("-M", dest="pmtudisc", type=pmtu_discovery, default="dont", metavar="do|dont",
                   help="do: set DF (a probe too big for the MTU is a local error); dont: DF clear (default)")
    g.add_argument("-p", "--pattern", type=pattern, default=None, metavar="PATTERN",
                   help="fill the data with these hex bytes, e.g. ff00 (up to 16 bytes)")
    g.add_argument("-f", "--flood", action="store_true",
                   help="flood: next probe when the reply is in or after 10 ms; prints . per probe, "
                        "deletes one per reply (bounded by -c)")
    g.add_argument("-b", "--broadcast", action="store_true", help="allow pinging a broadcast address")


# -- output --------------------------------------------------------------------------------------
def ms(seconds: float) -> str:
    """A round-trip time as ping(8) prints it: three significant decimals below 1 ms, fewer above."""
    v = seconds * 1000
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}" if v >= 1 else f"{v:.3f}"


class Session:
    """Counts and per-probe lines of one run."""

    def __init__(self, args: argparse.Namespace, dest: str, out: TextIO, err: TextIO) -> None:
        self.args = args
        self.dest = dest
        self.out = out
        self.err = err
        self.sent = 0
        self.errors = 0
        self.rtts: list[float] = []
        self.ewma = 0.0
        self.failure: BaseException | None = None  # an unexpected exception from a probe

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def sending(self) -> None:
        self.sent += 1
        if self.args.flood:
            self._write(".")

    def done(self, task: asyncio.Task[PingResults]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.failure = self.failure or exc
            return
        self.show(task.result().probes[0])

    def show(self, p: PingResult) -> None:
        flood = self.args.flood
        if p.rtt is not None:
            self.rtts.append(p.rtt)
            self.ewma = p.rtt if len(self.rtts) == 1 else self.ewma + (p.rtt - self.ewma) / 8
            if flood:
                self._write("\b \b")
                return
            src = p.src or self.dest  # another host answers a broadcast
            shown = f"{self.args.dest} ({src})" if src == self.dest != self.args.dest else src
            self._write(f"{self.args.size + 8} bytes from {shown}: icmp_seq={p.seq} ttl={p.ttl} "
                        f"time={ms(p.rtt)} ms\n")
        elif p.error is not None:
            self.errors += 1
            if flood:
                self._write("\bE")
            elif p.error_from is None or p.error.startswith("local error") or p.error == NETWORK_UNREACHABLE:
                what = f"sendmsg: {p.error}" if p.error == NETWORK_UNREACHABLE else p.error
                print(f"{prefix('ping')}: {what}", file=self.err, flush=True)
            else:
                self._write(f"From {p.error_from} icmp_seq={p.seq} {p.error}\n")

    def summary(self, elapsed: float) -> int:
        received = len(self.rtts)
        parts = [f"{self.sent} packets transmitted", f"{received} received"]
        if self.errors:
            parts.append(f"+{self.errors} errors")
        loss = 100.0 * (self.sent - received) / self.sent if self.sent else 0.0
        parts += [f"{loss:g}% packet loss", f"time {elapsed * 1000:.0f}ms"]
        self._write(f"\n--- {self.args.dest} ping statistics ---\n{', '.join(parts)}\n")
        if self.rtts:
            v = [r * 1000 for r in self.rtts]
            line = (f"rtt min/avg/max/mdev = {min(v):.3f}/{statistics.fmean(v):.3f}/{max(v):.3f}/"
                    f"{statistics.pstdev(v):.3f} ms")
            if self.args.flood and self.sent > 1:  # ping -f adds the inter-probe gap and the rtt's EWMA
                line += f", ipg/ewma {elapsed * 1000 / (self.sent - 1):.3f}/{self.ewma * 1000:.3f} ms"
            self._write(line + "\n")
        return 0 if self.rtts else 1


# -- the run -------------------------------------------------------------------------------------
async def unless_stopped(aw: Awaitable[_T], stop: asyncio.Event) -> _T | None:
    """`aw`'s result, or None when `stop` is set first (`aw` is then cancelled)."""
    task = asyncio.ensure_future(aw)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    return None if task.cancelled() else task.result()


async def _destination(stack: Stack, args: argparse.Namespace, err: TextIO) -> IPv4Address:
    """Resolve DEST and refuse what ping(8) refuses before its first probe."""
    try:
        dest = (await stack.resolve(args.dest))[0]
    except OSError as e:  # a ResolveError is a socket.gaierror
        raise UsageError(f"{args.dest}: {e.strerror or e}") from None
    if is_broadcast(stack.core, int(dest)):
        if not args.broadcast:
            raise UsageError("Do you want to ping broadcast? Then -b. If not, check your local firewall rules")
        print(f"{prefix('ping')}: warning: pinging broadcast address", file=err, flush=True)
    try:
        stack.ipv4.route(dest)
    except NoRouteError:  # as ping(8): nothing is sent, status 2
        raise UsageError(f"connect: {NETWORK_UNREACHABLE}") from None
    return dest


async def run(stack: Stack, args: argparse.Namespace, stop: asyncio.Event, out: TextIO = sys.stdout,
              err: TextIO = sys.stderr) -> int:
    """One `tcpip ping` run on a connected stack; returns the exit status (summary printed)."""
    dest = await unless_stopped(_destination(stack, args, err), stop)
    if dest is None:
        return STOPPED
    if args.pattern is not None:
        print(f"PATTERN: 0x{args.pattern.hex()}", file=out)
    print(f"PING {args.dest} ({dest}) {args.size}({args.size + 28}) bytes of data.", file=out, flush=True)
    s = Session(args, str(dest), out, err)
    loop = asyncio.get_running_loop()
    interval = args.interval if args.interval is not None else FLOOD_GAP if args.flood else 1.0
    per_reply = args.flood and args.interval is None  # flood: the next probe as soon as the reply is in
    ident = stack.rng.getrandbits(16)  # one identifier for the run, sequence numbers 1, 2, ... like ping(8)
    stopper = asyncio.ensure_future(stop.wait())
    tasks: set[asyncio.Task[PingResults]] = set()
    t0 = time.monotonic()
    try:
        for seq in range(1, args.count + 1):
            if stop.is_set():
                break
            tick = loop.time()
            task = loop.create_task(stack.ping(
                dest, size=args.size, timeout=args.timeout, ident=ident, seq=seq, ttl=args.ttl, tos=args.tos,
                dont_frag=args.pmtudisc == "do", pattern=args.pattern, allow_broadcast=args.broadcast))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            task.add_done_callback(s.done)
            s.sending()
            if seq < args.count:
                wake = {stopper, task} if per_reply else {stopper}
                await asyncio.wait(wake, timeout=max(0.0, tick + interval - loop.time()),
                                   return_when=asyncio.FIRST_COMPLETED)
        while tasks and not stop.is_set():  # the last replies, each bounded by -W
            await asyncio.wait({stopper, *tasks}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (*tasks, stopper):
            t.cancel()
        await asyncio.gather(*tasks, stopper, return_exceptions=True)
    if s.failure is not None:
        raise s.failure
    return s.summary(time.monotonic() - t0)
