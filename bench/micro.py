"""Micro benchmarks: receive, transmit and checksum, ns per frame, tcpip vs peers vs the floor."""

from __future__ import annotations

import functools
import os
import random
import struct
from collections.abc import Callable, Coroutine, Sequence
from ipaddress import IPv4Address
from typing import Any, TypeVar

from bench import floor, peers
from bench.frames import (
    DPORT,
    OUR_IP,
    OUR_MAC,
    PEER_IP,
    PEER_MAC,
    SPORT,
    RxFrame,
    check_udp_frame,
    cksum,
    rx_frames,
    tx_payloads,
)
from bench.timing import loop_overhead, measure_many

T = TypeVar("T")
Log = Callable[[str], None]
CHECKSUM_SIZES = (20, 64, 576, 1480)


def drive(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (no event loop): one send, the result in StopIteration."""
    try:
        coro.send(None)
    except StopIteration as e:
        return e.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError("coroutine suspended: it needs an event loop")


# -- tcpip ---------------------------------------------------------------------------------------
def tcpip_interface() -> Any:
    """A bare sans-I/O Interface for 198.18.0.2/24 with the peer's MAC pre-resolved."""
    from tcpip.core.config import InterfaceConfig
    from tcpip.core.interface import Interface
    from tcpip.wire.mac import MacAddress

    cfg = InterfaceConfig(mac=MacAddress(OUR_MAC), address=OUR_IP, netmask=0xFFFFFF00)
    iface = Interface(cfg, now=0.0, rng=random.Random(1))
    iface.arp.add_static(PEER_IP, PEER_MAC)
    if not iface.config.verify_checksums:
        raise AssertionError("checksum verification must be on")
    return iface


def tcpip_rx(frame: bytes, handlers: peers.Handlers) -> Callable[[], object]:
    """tcpip's real input path: `Interface.receive(frame, now)`; echo replies are drained from `tx`."""
    iface = tcpip_interface()
    on_udp, on_tcp = handlers[17], handlers[6]
    iface.register(17, lambda _s, _d, payload, _p, _now, _b: on_udp(payload))
    iface.register(6, lambda _s, _d, payload, _p, _now, _b: on_tcp(payload))
    mv = memoryview(frame)
    recv = iface.receive
    tx = iface.tx

    def step() -> None:
        recv(mv, 1.0)
        tx.clear()

    step.iface = iface  # type: ignore[attr-defined]
    return step


def floor_rx(frame: bytes, handlers: peers.Handlers) -> Callable[[], object]:
    on_udp, on_tcp = handlers[17], handlers[6]
    r = floor.FloorReceiver(OUR_MAC, OUR_IP, PEER_MAC, lambda _s, _d, p: on_udp(p), lambda _s, _d, p: on_tcp(p))
    mv = memoryview(frame)
    recv = r.receive
    tx = r.tx

    def step() -> None:
        recv(mv)
        tx.clear()

    step.iface = r  # type: ignore[attr-defined]
    return step


class DiscardDevice:
    """Built lazily as a tcpip BaseDevice subclass whose `_send` drops the frame (or keeps the last)."""

    @staticmethod
    def create(keep: bool = False) -> Any:
        from tcpip.netif.device import BaseDevice
        from tcpip.wire.mac import MacAddress

        class _Discard(BaseDevice):
            last: Sequence[Any] = ()

            def _send(self, parts: Sequence[Any], size: int) -> None:
                if keep:
                    self.last = parts

        return _Discard(MacAddress(OUR_MAC), 1500)


def tcpip_stack(keep: bool = False) -> Any:
    from tcpip.netif.clock import VirtualClock
    from tcpip.stack import Stack

    dev = DiscardDevice.create(keep)
    stack = drive(Stack.connect(dev, ipv4="198.18.0.2/24", clock=VirtualClock(1.0), rng=random.Random(1)))
    stack.core.arp.add_static(PEER_IP, PEER_MAC)
    return stack


def tcpip_tx_seed(payload: bytes, keep: bool = False) -> Callable[[], object]:
    """The seed API: `allocate_frame` + UDP header and checksum written by the caller + `write`."""
    from tcpip.wire.checksum import checksum_parts, pseudo_header_sum

    stack = tcpip_stack(keep)
    ipv4 = stack.ipv4
    alloc, write = ipv4.allocate_frame, ipv4.write
    dest = IPv4Address(PEER_IP)
    n = 8 + len(payload)
    psum = pseudo_header_sum(OUR_IP, PEER_IP, 17, n)
    pack = struct.Struct("!HHHH").pack_into

    def step() -> None:
        c = alloc(proto=17, dest_ip=dest)
        try:
            c.send(None)
        except StopIteration as e:
            frame, hl = e.value
        pack(frame, hl, DPORT, SPORT, n, 0)
        udp = frame[hl:hl + 8]
        ck = checksum_parts((udp, payload), psum) or 0xFFFF
        udp[6] = ck >> 8
        udp[7] = ck & 0xFF
        w = write(frame[:hl + 8], payload)
        try:
            w.send(None)
        except StopIteration:
            pass

    step.device = stack.device  # type: ignore[attr-defined]
    return step


def tcpip_tx_core(payload: bytes, keep: bool = False) -> Callable[[], object]:
    """The path tcpip's own UDP endpoints take: `UdpLayer.send` then the runner's flush to the device."""
    stack = tcpip_stack(keep)
    send = stack.udp.send
    flush = stack.runner.flush

    def step() -> None:
        send(DPORT, PEER_IP, SPORT, payload, 1.0)
        flush()

    step.device = stack.device  # type: ignore[attr-defined]
    return step


def floor_tx(payload: bytes, keep: bool = False) -> Callable[[], object]:
    box: list[Any] = []
    sink: Callable[[tuple[Any, ...]], Any] = box.append if keep else (lambda _parts: None)
    s = floor.FloorSender(DPORT, SPORT, sink)
    send = s.send_udp

    def step() -> None:
        send(payload)

    step.box = box  # type: ignore[attr-defined]
    return step


# -- verification --------------------------------------------------------------------------------
def _handlers(record: list[tuple[int, int]]) -> peers.Handlers:
    def mk(proto: int) -> Callable[[Any], None]:
        def cb(p: Any) -> None:
            try:
                n = len(p)
            except TypeError:  # a parsed layer object without a length (impacket)
                n = -1
            record.append((proto, n))

        return cb

    return {1: mk(1), 6: mk(6), 17: mk(17)}


def _noop_handlers() -> peers.Handlers:
    def noop(p: Any) -> None:
        return None

    return {1: noop, 6: noop, 17: noop}


def verify_rx(impl: str, factory: peers.RxFactory, f: RxFrame) -> str | None:
    """None when `impl` dispatched the frame's payload to the right callback (or answered the echo)."""
    rec: list[tuple[int, int]] = []
    step = factory(f.data, _handlers(rec))
    step()
    want = len(f.data) - 34
    if impl in ("tcpip", "floor") and f.proto == 1:
        s2 = factory(f.data, _handlers(rec))
        holder = s2.iface  # type: ignore[attr-defined]
        holder.tx.clear()
        holder.receive(memoryview(f.data), 1.0) if impl == "tcpip" else holder.receive(memoryview(f.data))
        tx = list(holder.tx)
        if len(tx) != 1:
            return f"expected one echo reply, got {len(tx)}"
        out = b"".join(bytes(p) for p in tx[0])
        if len(out) != 60 or out[34] != 0 or cksum(out[14:34]) or cksum(out[34:60]) or out[42:60] != f.data[42:60]:
            return f"bad echo reply {out.hex()}"
        return None
    # Peers hand over their own layer objects: the protocol must match; tcpip and the floor: the bytes too.
    if [r[0] for r in rec] != [f.proto] or (impl in ("tcpip", "floor") and rec[0][1] != want):
        return f"dispatched {rec}, expected {[(f.proto, want)]}"
    return None


def verify_tx(factory: Callable[[bytes, bool], Callable[[], object]], payload: bytes) -> str | None:
    step = factory(payload, True)
    step()
    dev = getattr(step, "device", None)
    parts = dev.last if dev is not None else step.box[-1]  # type: ignore[attr-defined]
    return check_udp_frame(b"".join(bytes(p) for p in parts), payload)


def verify_checksums() -> list[str]:
    """Cross-check tcpip's checksum and the idioms against the word-by-word reference."""
    from tcpip.wire.checksum import checksum

    rnd = random.Random(7)
    cases: list[bytes] = [b"", b"\0", b"\0\0", b"\xff\xff", b"\xff", b"\xff\xff" * 10, bytes(20), bytes(1481)]
    cases += [rnd.randbytes(n) for n in range(1, 80)]
    cases += [rnd.randbytes(n) for n in (575, 576, 1479, 1480, 1481, 9000)]
    # data summing to 0xFFFF (checksum 0) with an odd length
    cases.append(b"\xff\xfe\x00")
    bad: list[str] = []
    fns: dict[str, Callable[[bytes], int]] = {"tcpip": checksum, **floor.IDIOMS}
    for data in cases:
        want = cksum(data)
        for name, fn in fns.items():
            got = fn(data)
            if got != want:
                bad.append(f"{name}: len {len(data)} {data[:8].hex()}: {got:#06x} != {want:#06x}")
    return bad


# -- runs ----------------------------------------------------------------------------------------
def run(repeats: int, target_s: float, log: Log) -> dict[str, Any]:
    over = loop_overhead(repeats, target_s)
    log(f"  timing loop + empty call: {over.ns:.0f} ns (included in every figure)")
    out: dict[str, Any] = {"loop_overhead_ns": round(over.ns, 1), "receive": {}, "transmit": {}, "checksum": {},
                           "errors": []}
    rx_impls: dict[str, peers.RxFactory] = {"tcpip": tcpip_rx, "floor": floor_rx}
    rx_impls.update({n: peers.RX[n] for n in peers.PEERS if peers.available(n)})
    for f in rx_frames():
        steps: dict[str, Callable[[], object]] = {}
        for impl, fac in rx_impls.items():
            err = verify_rx(impl, fac, f)
            if err is not None:
                out["errors"].append(f"receive {f.name} {impl}: {err}")
                log(f"  ! receive {f.name} {impl}: {err}")
                continue
            steps[impl] = fac(f.data, _noop_handlers())
        row: dict[str, Any] = {k: t.as_dict() for k, t in
                               measure_many(steps, repeats=repeats, target_s=target_s).items()}
        out["receive"][f.name] = row
        log("  receive  " + f"{f.name:14}" + "  ".join(f"{k} {v['ns']:.0f}" for k, v in row.items()))
    tx_impls: dict[str, Callable[[bytes, bool], Callable[[], object]]] = {
        "tcpip": tcpip_tx_seed, "tcpip-core": tcpip_tx_core, "floor": floor_tx}
    for name in peers.PEERS:
        if peers.available(name):
            tx_impls[name] = functools.partial(_peer_tx_step, peers.TX[name])
    for pname, payload in tx_payloads().items():
        steps = {}
        for impl, tfac in tx_impls.items():
            err = verify_tx(tfac, payload)
            if err is not None:
                out["errors"].append(f"transmit {pname} {impl}: {err}")
                log(f"  ! transmit {pname} {impl}: {err}")
                continue
            steps[impl] = tfac(payload, False)
        row = {k: t.as_dict() for k, t in measure_many(steps, repeats=repeats, target_s=target_s).items()}
        out["transmit"][pname] = row
        log("  transmit " + f"{pname:14}" + "  ".join(f"{k} {v['ns']:.0f}" for k, v in row.items()))
    bad = verify_checksums()
    for b in bad:
        out["errors"].append(f"checksum {b}")
        log(f"  ! checksum {b}")
    from tcpip.wire.checksum import checksum

    rnd = random.Random(11)
    broken = {b.split(":")[0] for b in bad}
    for size in CHECKSUM_SIZES:
        data = rnd.randbytes(size)
        fns: dict[str, Callable[[bytes], int]] = {"tcpip": checksum, **floor.IDIOMS}
        csteps: dict[str, Callable[[], object]] = {
            name: functools.partial(fn, data) for name, fn in fns.items() if name not in broken}
        row = {k: t.as_dict() for k, t in measure_many(csteps, repeats=repeats, target_s=target_s).items()}
        idioms = {k: v for k, v in row.items() if k != "tcpip"}
        best = min(idioms, key=lambda k: idioms[k]["ns"])
        row["best_idiom"] = best
        out["checksum"][str(size)] = row
        log(f"  checksum {size:5} B   tcpip {row['tcpip']['ns']:.0f}  best idiom ({best}) {row[best]['ns']:.0f}")
    out["cpu"] = _cpu_model()
    return out


def _peer_tx_step(fac: peers.TxFactory, payload: bytes, keep: bool) -> Callable[[], object]:
    build = fac(payload)
    box: list[Any] = []
    if not keep:
        return build

    def step() -> None:
        box.append((build(),))

    step.box = box  # type: ignore[attr-defined]
    return step


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip() + f" x{os.cpu_count()}"
    except OSError:
        pass
    return "unknown"

