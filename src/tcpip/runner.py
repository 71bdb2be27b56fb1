"""Runner: the thin driver between a device and the sans-I/O core: frames in, frames out, timers, ARP waiters.

Every path that may have queued frames ends in one *drain* (`flush()`): the after-batch callbacks run
(upper layers deliver application callbacks there, never inside `receive()`), then `poll_transmit()` goes to
the device, then the timer is re-armed if `poll_at()` may have moved. A drain happens
- after each received frame (`on_frame`, the device's push callback: one frame is one input batch); a
  `kick()` from inside that frame's `receive()` (e.g. a datagram queued for an endpoint) is served by this
  drain, without a `call_soon`. A device that reads in bursts and reports their end (`on_burst_end`, the
  TAP) gets the frame's output at once and one full drain per burst instead;
- after each timer (`handle_timeout`);
- once per loop turn after `kick()`: code that queues output or deliveries outside those two (ping, a new
  address, the seed API's input, queued protocol callbacks; TCP's transport next) calls `kick()`; all kicks
  of one turn share one `call_soon`, so the frames of a burst go out together. Without a running loop
  (sans-loop drivers, benchmarks) `kick()` drains at once.
`transmit()` is the exception for zero-copy sends whose callers may reuse their buffers on return (UDP
`sendto`, the seed API's `write`): it hands the queued frames to the device at once, without running
callbacks.
`add_after_batch(cb, pending)` registers `cb()` to run at the start of every drain in which `pending()` is
true (the hook has work: a drain per wake-up then costs one C-level call per hook, not a Python frame);
without `pending`, every drain (so `cb` must be cheap when it has nothing to do). A callback that leaves
work for another round calls `kick()`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import cast

from tcpip.core.echo import fast_answer
from tcpip.core.ethernet import Frame
from tcpip.core.interface import Interface
from tcpip.errors import DeviceClosedError, HostUnreachableError, TcpipError
from tcpip.netif.clock import Clock, LoopClock, TimerHandle
from tcpip.netif.device import Deliver, NetworkDevice
from tcpip.wire.ipv4 import ip_str

log = logging.getLogger("tcpip")


class Runner:
    """Owns the timer and the transmit drain of one Interface on one device."""

    def __init__(self, device: NetworkDevice, core: Interface, clock: Clock) -> None:
        self.device = device
        self.core = core
        self.clock = clock
        self._timer: TimerHandle | None = None
        self._timer_at: float | None = None
        self._arp_waiters: dict[int, list[asyncio.Future[bytes]]] = {}
        self.tx_errors = 0
        self.rx_errors = 0
        core.arp.on_resolved = self._arp_resolved
        core.arp.on_failed = self._arp_failed
        core.arp.on_conflict = self._arp_conflict
        self._conflicts: set[tuple[int, bytes]] = set()
        core.icmp.utc_ms = _utc_ms  # ICMP/IP timestamps: the core reads no clock
        self._loop_scheduled = False
        self._after: list[tuple[Callable[[], None], Callable[[], object] | None]] = []
        self._due: Callable[[], object] | None = None  # any after-batch hook has work (None: no hooks)
        self._kicked = False  # a drain is scheduled with call_soon
        self._draining = False  # the after-batch callbacks are running
        self._rekick = False  # kick() during them: one more round on the next turn
        self._in_input = False  # inside on_frame's receive: a drain follows at once
        self._closed = False
        self._offload = False  # attach_offload() was called
        self._answer_offloaded = False  # on_frame_offloaded returns an input's one frame (attach_offload)
        # The per-frame clock read: the loop's own time() when the clock is the loop's; asyncio's is a Python
        # method returning time.monotonic(), so call that directly (same clock, one frame less per frame).
        self._time = clock.now
        if getattr(clock.now, "__func__", None) is asyncio.BaseEventLoop.time:
            self._time = time.monotonic
        self._receive = core.receive  # bound once: on_frame runs per frame
        self._receive_offloaded = core.receive_offloaded
        self._tx = core.tx  # the core's output queue (never replaced)
        self._loopback = core.loopback  # never replaced either (loopback_input copies and clears it)
        self._arp = core.arp
        # A device that reads in bursts (TAP: up to max_burst frames per wake-up) reports each burst's end:
        # then a frame's own output still leaves at once, but the after-batch callbacks (application
        # deliveries: one read and one data_received for a burst, not one per segment) run once per burst.
        # Declared by the device's class: a wrapper forwarding attribute reads (__getattr__) would take the
        # hook itself, the device would never call it, and kicks made inside receive() would wait for the
        # next frame. (Not `vars(device)`: reading an instance's __dict__ turns its attribute loads slow.)
        self._bursts = hasattr(type(device), "on_burst_end")
        if self._bursts:  # flush itself, no wrapper call per wake-up: close() unhooks it
            device.on_burst_end = self.flush  # type: ignore[attr-defined]

    def now(self) -> float:
        return self.clock.now()

    def attach(self) -> None:
        """Take the device's frames: `attach_answering` where its class has it (it writes the fast echo's
        reply that on_frame returns: the core's `answer_direct`), else `attach_bytes`, else `attach`.
        Declared by the class: a wrapper forwarding attribute reads (fault injector, pcap) must not be
        bypassed, and only a device that writes answers may be given them."""
        dev, cls = self.device, type(self.device)
        if hasattr(cls, "attach_answering"):
            dev.attach_answering(self.on_frame)  # type: ignore[attr-defined]
            self.core.answer_direct = True
            if hasattr(cls, "attach_fast"):  # echoes answered in the device's read (core.echo), without on_frame,
                # receive or a flush: issue 10, about a quarter fewer cache lines touched per ping
                dev.attach_fast(fast_answer(self.core, self._time))  # type: ignore[attr-defined]
        elif hasattr(cls, "attach_bytes"):
            dev.attach_bytes(self.on_frame)  # type: ignore[attr-defined]
        else:
            dev.attach(cast("Deliver", self.on_frame))  # answer_direct is off: it returns None

    def attach_offload(self) -> None:
        """Take an offload-mode device's TCP and UDP frames with their metadata (`on_frame_offloaded`): with
        `attach_offload_answering` where its class has it (a UDP frame may then come as bytes, and an
        input's one output frame is returned for the device to write), else `attach_offload`."""
        dev, cls = self.device, type(self.device)
        if hasattr(cls, "attach_offload_answering"):
            dev.attach_offload_answering(self.on_frame_offloaded)  # type: ignore[attr-defined]
            self._answer_offloaded = True
        else:
            dev.attach_offload(self.on_frame_offloaded)  # type: ignore[attr-defined]
        self._offload = True

    def detach(self) -> None:
        """Stop taking frames (and answering them directly), offloaded ones too."""
        self.core.answer_direct = False
        if hasattr(type(self.device), "attach_fast"):
            self.device.attach_fast(None)  # type: ignore[attr-defined]
        self.device.attach(None)
        if self._offload:
            self._offload = self._answer_offloaded = False
            self.device.attach_offload(None)  # type: ignore[attr-defined]

    # -- the per-frame path --------------------------------------------------------------------
    def on_frame(self, frame: memoryview | bytes) -> bytearray | None:
        """Push-model receive: one frame through the core, then one drain (bursting device: its output).
        Attached with the device's `attach_bytes` where it has one: `frame` may then be `bytes`. Attached
        with `attach_answering` (the core's `answer_direct` set, see `attach`), a fast-path echo's reply
        is returned for the device to write: no transmit call, no queue (issue 10: ~80 bytecodes per ping);
        otherwise None."""
        self._in_input = True  # kick() from inside receive: the flush below serves it, no call_soon
        try:
            out = self._receive(frame, self._time())
        except Exception:
            out = None
            self.rx_errors += 1  # a bug by definition (bad input is a counted drop): never kill the loop
            log.exception("unexpected error on input")
        finally:
            self._in_input = False
        if out is not None:
            return out  # the only output of that input: nothing queued, no timer moved
        if not self._bursts:
            self.flush()
            return None
        # A bursting device: this frame's output leaves now; the callbacks and the timer wait for the
        # burst-end flush (it serves kicks from receive). Most frames send nothing or one reply: that case
        # is _send_queued() spelled out.
        tx = self._tx
        if len(tx) == 1 and not self._loopback:
            f = tx.pop()
            try:
                self.device.transmit(f)
            except (DeviceClosedError, OSError, TcpipError) as e:
                self.tx_errors += 1
                log.debug("transmit failed: %s", e)
        elif tx or self._loopback:
            self._send_queued()
        return None

    def on_frame_offloaded(self, frame: memoryview | bytes, csum_ok: bool, gso_size: int) -> Frame | None:
        """Push-model receive of an offloading device's TCP or UDP frame (trusted checksum / super-frame).
        Attached with `attach_offload_answering` (see `attach_offload`), a UDP frame may be `bytes`, and when
        the input queued exactly one frame (a UDP echo's reply, a TCP ACK) that frame is returned for the
        device to write (issue 10: the transmit call and its checks, ~1,000 instructions per datagram)."""
        self._in_input = True
        try:
            out = self._receive_offloaded(frame, self._time(), csum_ok, gso_size)
        except Exception:
            out = None
            self.rx_errors += 1
            log.exception("unexpected error on input")
        finally:
            self._in_input = False
        if out is not None:  # the core's fast answer (answer_direct: the UDP echo service)
            if self._answer_offloaded:
                return (out,)
            self._tx.append((out,))
        if not self._bursts:
            self.flush()
            return None
        tx = self._tx  # as in on_frame
        if len(tx) == 1 and not self._loopback:
            if self._answer_offloaded:
                return tx.pop()
            f = tx.pop()
            try:
                self.device.transmit(f)
            except (DeviceClosedError, OSError, TcpipError) as e:
                self.tx_errors += 1
                log.debug("transmit failed: %s", e)
        elif tx or self._loopback:
            self._send_queued()
        return None

    def add_after_batch(self, cb: Callable[[], None], pending: Callable[[], object] | None = None) -> None:
        """Run `cb()` at the start of every drain, before transmission (application callbacks go here);
        with `pending`, only in drains where `pending()` is true: make it a C-level callable (a bound
        `__len__`, `functools.partial(getattr, obj, name)`), it runs once per drain."""
        self._after.append((cb, pending))
        self._set_due()

    def remove_after_batch(self, cb: Callable[[], None]) -> None:
        self._after = [h for h in self._after if h[0] != cb]
        self._set_due()

    def _set_due(self) -> None:
        """`_due`, the drain's one test: a lone hook's own `pending`, else a function of them all."""
        checks = [p for _cb, p in self._after]
        if not checks:
            self._due = None
        elif None in checks:
            self._due = _always
        elif len(checks) == 1:
            self._due = checks[0]
        else:
            self._due = lambda: any(p() for p in checks)  # type: ignore[misc]  # None excluded above

    def kick(self) -> None:
        """Output or deliveries are waiting: drain once on this loop turn (at once without a loop)."""
        if self._draining:
            self._rekick = True
            return
        if self._kicked or self._in_input:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._kicked = True
        loop.call_soon(self._on_kick)

    def _on_kick(self) -> None:
        self._kicked = False
        if not self._closed:
            self.flush()

    def flush(self) -> None:
        """One drain now: after-batch callbacks, the core's frames to the device, the timer re-armed."""
        due = self._due  # a Stack always has TCP's hook: one C-level test per drain when it has no work
        if due is not None and due():
            self._run_after()
        if self._loopback and not self._loop_scheduled:
            self._loop_scheduled = True
            asyncio.get_running_loop().call_soon(self._loop_in)
        if self._tx:  # transmit(), inlined: this runs per frame
            transmit = self.device.transmit
            for f in self.core.poll_transmit():
                try:
                    transmit(f)
                except (DeviceClosedError, OSError, TcpipError) as e:
                    self.tx_errors += 1
                    log.debug("transmit failed: %s", e)
        if self._arp.pending or self.core.timers_dirty:  # only then can a new deadline exist
            self.schedule()

    def _run_after(self) -> None:
        """The after-batch hooks that have work, in registration order (a kick() from them: one more round)."""
        self._draining = True
        try:
            for cb, pending in self._after:
                if pending is not None and not pending():
                    continue
                try:
                    cb()
                except Exception:
                    log.exception("after-batch callback raised")
        finally:
            self._draining = False
        if self._rekick:
            self._rekick = False
            self.kick()

    def transmit(self, immutable: bool = False) -> None:
        """The core's queued frames to the device now, no callbacks run (safe inside one): for zero-copy
        sends (a transport's sendto, the seed API's write) whose callers may reuse their buffers on return.
        `immutable`: the caller's buffers cannot change (bytes), so inside a drain's after-batch callbacks
        (an application answering from datagram_received) the frames wait for that drain's own transmit,
        one pass for the whole batch."""
        if immutable and self._draining:
            return
        self._send_queued()
        if self.core.arp.pending or self.core.timers_dirty:  # only then can a new deadline exist
            self.schedule()

    def _send_queued(self) -> None:
        """transmit() without the timer: a burst's frames leave one by one, the burst-end flush re-arms it once."""
        if self.core.loopback and not self._loop_scheduled:
            self._schedule_loopback()
        tx = self._tx
        if tx:
            frames = tx.copy()  # core.poll_transmit(), inlined: a transmit may queue more (sent next drain)
            tx.clear()
            transmit = self.device.transmit
            for f in frames:
                try:
                    transmit(f)
                except (DeviceClosedError, OSError, TcpipError) as e:
                    self.tx_errors += 1
                    log.debug("transmit failed: %s", e)

    def _schedule_loopback(self) -> None:
        """Datagrams to ourselves: delivered on a later loop turn (never inside this input batch)."""
        self._loop_scheduled = True
        asyncio.get_running_loop().call_soon(self._loop_in)

    def _loop_in(self) -> None:
        self._loop_scheduled = False
        self.core.loopback_input(self.clock.now())
        self.flush()

    # -- timers --------------------------------------------------------------------------------
    def schedule(self) -> None:
        self.core.timers_dirty = False
        at = self.core.poll_at()
        if at is None:
            return
        if self._timer_at is not None and self._timer_at <= at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = self.clock.call_at(at, self._on_timer)

    def _on_timer(self) -> None:
        at = self._timer_at
        self._timer = None
        self._timer_at = None
        # A loop clock coarser than the deadline (uvloop: 1 ms) may fire a hair early: run what was due
        # rather than re-arm for the same instant in a busy loop.
        now = self.clock.now()
        self.core.handle_timeout(at if at is not None and at > now else now)
        self.flush()
        self.schedule()

    def close(self) -> None:
        """Stop: what is already queued goes out first (the device is still open), then no more drains."""
        if not self._closed and not self.device.closed:
            self.flush()
        self._closed = True
        if self._bursts and getattr(self.device, "on_burst_end", None) == self.flush:
            self.device.on_burst_end = None  # type: ignore[attr-defined]  # no drain after close
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for ip, futs in self._arp_waiters.items():
            for f in futs:
                if not f.done():
                    f.set_exception(HostUnreachableError(f"{ip_str(ip)}: interface closed"))
        self._arp_waiters.clear()

    # -- ARP waiters for the async API ---------------------------------------------------------
    async def resolve(self, ip: int) -> bytes:
        """The MAC of on-link `ip`, querying ARP and waiting for the answer if needed."""
        core = self.core
        mac = core.arp.lookup(ip, self.clock.now())
        if mac is not None:
            if core.tx:  # a refresh request went out
                self.kick()
            return mac
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._arp_waiters.setdefault(ip, []).append(fut)
        core.arp.resolve(ip, None, self.clock.now())
        self.kick()
        return await fut

    def _arp_resolved(self, ip: int, mac: bytes) -> None:
        for f in self._arp_waiters.pop(ip, ()):
            if not f.done():
                f.set_result(mac)

    def _arp_conflict(self, ip: int, mac: bytes) -> None:
        # Logged once per conflict (address, other MAC), however often that host repeats its claim.
        if (ip, mac) in self._conflicts:
            return
        if len(self._conflicts) >= 256:  # bounded: a flood of forged MACs can't grow it
            self._conflicts.clear()
        self._conflicts.add((ip, mac))
        log.warning("address conflict: %s is also claimed by %s; defending it (RFC 5227: one announcement "
                    "per %g s)", ip_str(ip), ":".join(f"{b:02x}" for b in mac), self.core.arp.defend_interval)

    def _arp_failed(self, ip: int) -> None:
        tries = self.core.config.arp_tries
        for f in self._arp_waiters.pop(ip, ()):
            if not f.done():
                f.set_exception(HostUnreachableError(
                    f"{ip_str(ip)}: no ARP reply after {tries} requests"))


def _always() -> bool:
    return True


def _utc_ms() -> int:
    """Milliseconds since midnight UT (RFC 791/792 timestamps)."""
    return int(time.time() * 1000) % 86_400_000


def default_clock(clock: Clock | None) -> Clock:
    return clock if clock is not None else LoopClock()


def default_rng(rng: random.Random | None) -> random.Random:
    return rng if rng is not None else random.Random()
