"""A TAP read burst: each frame's own output leaves at once, the after-batch callbacks run once per burst that
reached the driver (a burst of echoes answered in the read has nothing for them)."""

from __future__ import annotations

import asyncio
import struct

from tests.netif.test_wakeup_cost import echo_request, stack_on_socketpair, udp_frame


async def test_after_batch_callbacks_run_once_per_burst() -> None:
    """Five echo requests queued before the wake-up, taken by the driver (no fast answer): five replies, sent
    as each frame is handled (all of them already out when the callbacks run), and one run of the
    after-batch callbacks for the burst."""
    async with stack_on_socketpair() as (stack, peer):
        stack.device.attach_fast(None)  # type: ignore[attr-defined]
        seen: list[int] = []
        stack.runner.add_after_batch(lambda: seen.append(stack.device.stats.tx_frames))
        before = stack.device.stats.tx_frames
        for i in range(5):
            peer.send(echo_request(i))
        await asyncio.sleep(0.05)
        replies = [peer.recv(2048) for _ in range(5)]
        runs = len(seen)
    assert [struct.unpack_from("!BBHHH", r, 34)[::4] for r in replies] == [(0, i) for i in range(5)]
    assert seen[0] == before + 5  # the replies left before the burst's drain
    assert runs == 1


async def test_echoes_answered_in_the_read_end_no_burst() -> None:
    """A burst of echoes the fast answer takes reaches no driver: no after-batch run, no burst end. One
    frame for the driver in the next burst (a datagram to a closed port) brings exactly one run."""
    async with stack_on_socketpair() as (stack, peer):
        dev = stack.device
        runs: list[int] = []
        ends = [0]
        stack.runner.add_after_batch(lambda: runs.append(dev.stats.tx_frames))
        inner = dev.on_burst_end  # type: ignore[attr-defined]

        def end() -> None:
            ends[0] += 1
            inner()

        dev.on_burst_end = end  # type: ignore[attr-defined]
        tx0 = dev.stats.tx_frames
        for i in range(5):
            peer.send(echo_request(i))
        await asyncio.sleep(0.05)
        replies = [peer.recv(2048) for _ in range(5)]
        assert [struct.unpack_from("!BBHHH", r, 34)[::4] for r in replies] == [(0, i) for i in range(5)]
        assert (runs, ends[0], dev.stats.tx_frames - tx0) == ([], 0, 5)
        peer.send(echo_request(5))
        peer.send(udp_frame(9, b"nobody"))  # port unreachable: the usual path
        await asyncio.sleep(0.05)
        last = [peer.recv(2048) for _ in range(2)]
        assert (last[0][34], last[1][34]) == (0, 3)
        assert (len(runs), ends[0], dev.stats.tx_frames - tx0) == (1, 1, 7)


async def test_datagrams_of_a_burst_are_all_delivered_and_answered() -> None:
    """Deliveries deferred to the burst's end still reach the endpoint, in order, and its answers leave."""
    got: list[bytes] = []

    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.t = transport

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            got.append(data)
            self.t.sendto(data.upper(), addr)  # type: ignore[attr-defined]

    async with stack_on_socketpair() as (stack, peer):
        transport, _ = await stack.create_datagram_endpoint(Echo, local_addr=("198.18.0.2", 9))
        for i in range(6):
            peer.send(udp_frame(9, b"x%d" % i))
        await asyncio.sleep(0.05)
        answers = [peer.recv(2048) for _ in range(6)]
        transport.close()
    assert got == [b"x%d" % i for i in range(6)]
    assert [a[42:34 + struct.unpack_from("!H", a, 38)[0]] for a in answers] == [b"X%d" % i for i in range(6)]
