"""`tcpip up` on a live link: following a TAP that disappears and comes back, the SIGUSR1 state dump, the summary."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING, TextIO

from tcpip.core.arp import STATIC
from tcpip.netif.taplink import LinkEvent
from tcpip.wire.ipv4 import ip_str

if TYPE_CHECKING:
    from tcpip.stack import Stack

__all__ = ["arp_lines", "dump_state", "kernel_line", "pmtu_lines", "serve"]


def _mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def arp_lines(stack: Stack) -> list[str]:
    """The ARP cache like `ip neigh`: address, MAC, state (Linux's names), age since last confirmed."""
    now = stack.runner.now()
    out = []
    for ip, e in stack.core.arp.entries.items():
        if e.state == STATIC:
            state = "PERMANENT"
        elif e.mac is None:
            state = "INCOMPLETE"
        elif e.refreshing:
            state = "PROBE"
        elif now >= e.expires:
            state = "STALE"
        else:
            state = "REACHABLE"
        age = f"{now - e.updated:.1f}s" if e.updated != float("-inf") else "-"
        out.append(f"    {ip_str(ip):<15} {_mac(e.mac) if e.mac else '(none)':<17} {state:<10} age {age}")
    return out


def pmtu_lines(stack: Stack) -> list[str]:
    """Path MTUs learned from ICMP "fragmentation needed" and still valid."""
    now = stack.runner.now()
    return [f"    {ip_str(dst):<15} mtu {mtu} expires in {exp - now:.0f}s"
            for dst, (mtu, exp) in stack.core.pmtu.items() if exp > now]


def kernel_line(stack: Stack, tap: str) -> str | None:
    """The kernel interface's drops toward us (we read too slowly) and of our frames, if readable."""
    k = stack.link.kernel_stats()
    if not k:
        return None
    return (f"    kernel    {tap} tx_dropped={k['kernel_tx_dropped']} (dropped toward tcpip, queue of "
            f"{k['kernel_txqueuelen']} frames full) rx_dropped={k['kernel_rx_dropped']}")


def dump_state(stack: Stack, tap: str, file: TextIO) -> None:
    """SIGUSR1: counters, the ARP cache and the path-MTU table, without stopping."""
    from tcpip.demo import format_counters  # noqa: PLC0415

    lines = [f"tcpip up: state of {tap} {stack.interface} mtu {stack.ethif.mtu}"
             + (f" (link lost: {stack.link.reason})" if stack.link.lost.is_set() else ""), "  counters:"]
    lines += format_counters(stack.stats())
    k = kernel_line(stack, tap)
    if k is not None:
        lines.append(k)
    arp = arp_lines(stack)
    lines.append(f"  ARP cache ({len(arp)} entries): address, MAC, state, age")
    lines += arp
    pmtu = pmtu_lines(stack)
    lines.append(f"  path MTU ({len(pmtu)} entries)" + (":" if pmtu else ""))
    lines += pmtu
    print("\n".join(lines), file=file, flush=True)


async def _first(*aws: asyncio.Future[object] | asyncio.Task[object]) -> None:
    await asyncio.wait(aws, return_when=asyncio.FIRST_COMPLETED)
    for a in aws:
        a.cancel()


async def serve(stack: Stack, args: argparse.Namespace, stop: asyncio.Event) -> int:
    """Run until `stop` (SIGINT/SIGTERM). A lost TAP is reopened when it reappears (each state change
    printed), or with `--exit-on-link-loss` ends the run. Returns 0, or 1 when the link was lost then
    (the reason on one stderr line)."""
    link = stack.link

    def on_link(ev: LinkEvent) -> None:
        what = f"{ev.detail}; the stack follows it" if ev.kind == "mtu" else f"{ev.kind}: {ev.detail}"
        print(f"tcpip up: {args.tap} {what}", flush=True)

    link.add_listener(on_link)
    while True:
        await _first(asyncio.ensure_future(stop.wait()), asyncio.ensure_future(link.lost.wait()))
        if stop.is_set():
            if link.lost.is_set():
                print(f"tcpip up: error: {args.tap} was lost ({link.reason}) and had not come back",
                      file=sys.stderr, flush=True)
                return 1
            return 0
        if args.exit_on_link_loss:
            print(f"tcpip up: error: {args.tap} lost: {link.reason} (--exit-on-link-loss)",
                  file=sys.stderr, flush=True)
            return 1
        reopen = asyncio.ensure_future(link.reopen())
        await _first(asyncio.ensure_future(stop.wait()), reopen)
        if reopen.done() and not reopen.cancelled() and (reopen.exception() or not reopen.result()):
            print(f"tcpip up: error: {args.tap} lost: {link.reason}; reopening failed: {reopen.exception()}",
                  file=sys.stderr, flush=True)
            return 1
