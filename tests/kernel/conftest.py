"""Fixtures for tests against the Linux kernel's own stack: a fresh network namespace with a TAP
device (kernel side 198.18.0.1/24), and our Stack (198.18.0.2/24) on the other end of it, running
in the test's event loop. Everything is removed afterwards, also on failure.

These tests need root, /dev/net/tun and pyroute2; without them they skip with the reason."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from kernel_support import KERNEL_IP, PREFIX, TAP, Peer, require_tap, running_stack

from tcpip.netns import Namespace


@pytest.fixture
def kernel_ns() -> Iterator[Namespace]:
    """A namespace `tcpip-k<pid>-<n>` holding TAP `tap0` (198.18.0.1/24, up), removed afterwards."""
    require_tap("ip")
    ns = Namespace.create("k")
    try:
        ns.add_tap(TAP)
        ns.add_address(TAP, f"{KERNEL_IP}/{PREFIX}")
        yield ns
    finally:
        ns.remove()
    assert not ns.exists


@pytest.fixture
async def peer(kernel_ns: Namespace, tmp_path: Path) -> AsyncIterator[Peer]:
    mac = await asyncio.to_thread(kernel_ns.link_mac, TAP)
    path = tmp_path / "stack.pcap"
    async with running_stack(kernel_ns, path) as (stack, pcap):
        p = Peer(kernel_ns, stack, path, pcap, mac, tmp_path)
        try:
            yield p
        finally:
            for proc in p.procs:
                await Namespace.stop(proc)
