"""Run TCP scripts (docs/tcp-scripts.md) against the sans-I/O core on virtual time: inject segments, expect
ours, call the API, check state, counters and events. `python -m tcpip.testing.scripts FILE...`."""

from __future__ import annotations

import random
import struct
import sys
from collections import deque
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from tcpip.core.tcp.config import TcpConfig
from tcpip.core.tcp.conn import Connection
from tcpip.core.tcp.layer import TcpLayer
from tcpip.core.tcp.listener import Listener
from tcpip.testing.script_commands import run_command
from tcpip.testing.script_format import (
    LOCAL,
    LPORT,
    MASK,
    PEER_BASE,
    REMOTE,
    ScriptError,
    SegSpec,
    Step,
    TsSpec,
    format_segment,
    parse,
    pattern,
)
from tcpip.wire.tcp import ACK, SYN, TcpRepr, fill_checksum, verify

Buffer = bytes | bytearray | memoryview


class _Output:
    def __init__(self, runner: ScriptRunner) -> None:
        self.runner = runner

    def tcp_send(self, src: int, dst: int, parts: Sequence[Buffer], now: float) -> None:
        raw = b"".join(bytes(p) for p in parts)
        if not verify(raw, src, dst):
            raise AssertionError("tcpip sent a segment with a bad checksum")
        r, payload = TcpRepr.parse(raw)
        if r.flags & SYN:  # learn our ISS: outbound numbers are relative to it
            self.runner.our_iss[r.dst_port] = r.seq
        if r.timestamp is not None:
            self.runner.our_tsval[r.dst_port] = r.timestamp[0]
        self.runner.pending.append((now, r, bytes(payload)))

    def tcp_mss(self, dst: int, now: float) -> int:
        return self.runner.path_mss

    def is_local(self, addr: int) -> bool:
        return addr == LOCAL


class ScriptRunner:
    """One run of one script: our TcpLayer at 198.18.0.1:80, the scripted peer at 198.18.0.2."""

    def __init__(self, **config: Any) -> None:
        self.settings: dict[str, Any] = {"timestamps": False, "sack": False, "window_scaling": False}
        self.settings.update(config)
        self.path_mss = 1460
        self.tolerance = 0.005
        self.layer: TcpLayer | None = None
        self.now = 0.0
        self.t = 0.0  # the script's time (lines are relative to the previous line's time)
        self.pending: deque[tuple[float, TcpRepr, bytes]] = deque()
        self.our_iss: dict[int, int] = {}
        self.our_tsval: dict[int, int] = {}
        self.conns: dict[int, Connection] = {}
        self.listener: Listener | None = None
        self.events: list[tuple[int, Any, Any]] = []
        self.read_off: dict[int, int] = {}
        self.write_off: dict[int, int] = {}

    # -- driving ------------------------------------------------------------------------------------------
    def run(self, text: str, name: str = "<script>") -> None:
        for step in parse(text):
            try:
                self._step(step)
            except ScriptError as e:
                raise ScriptError(f"{name}:{step.lineno}: {step.text}\n{e}") from None
        try:
            self._no_pending()
        except ScriptError as e:
            raise ScriptError(f"{name}: at the end\n{e}") from None

    def _get_layer(self) -> TcpLayer:
        if self.layer is None:
            names = {f.name for f in fields(TcpConfig)}
            cfg = TcpConfig(**{k: v for k, v in self.settings.items() if k in names})
            self.layer = TcpLayer(cfg, _Output(self), random.Random(1), b"tcpip script runner")
        return self.layer

    def _advance(self, t: float) -> None:
        layer = self._get_layer()
        while True:
            at = layer.poll_at()
            if at is None or at > t:
                break
            self.now = max(self.now, at)
            layer.handle_timeout(self.now)
        self.now = max(self.now, t)
        self._drain()

    def _drain(self) -> None:
        if self.layer is not None:
            self.events.extend(self.layer.poll_events())

    def _no_pending(self) -> None:
        if self.pending:
            at, r, payload = self.pending[0]
            raise ScriptError(f"unexpected segment at {at:.3f}: > {self._show(r, payload)}")

    def _step(self, step: Step) -> None:
        t = self.t + step.time if step.relative else step.time
        if t < self.t - 1e-9:
            raise ScriptError(f"time {t} goes back (script time is {self.t})")
        self.t = t
        if step.kind == "cmd" and step.args[0] == "config":
            self._config(step.args[1:])
            return
        self._advance(t)
        if step.kind == "out":
            assert step.seg is not None
            self._expect_segment(step, t)
            return
        self._no_pending()
        if step.kind == "in":
            assert step.seg is not None
            self._inject(step.port, step.seg)
        else:
            self._command(step)
        self._drain()

    # -- segments -----------------------------------------------------------------------------------------
    def _inject(self, port: int, spec: SegSpec) -> None:
        layer = self._get_layer()
        iss = self.our_iss.get(port, 0)
        ack = (iss + spec.ack) & MASK if spec.ack is not None else 0
        opts = bytearray()
        for name, val in spec.options or ():
            if name == "nop":
                opts.append(1)
            elif name == "eol":
                opts.append(0)
            elif name == "mss":
                opts += struct.pack("!BBH", 2, 4, int(str(val)))
            elif name == "wscale":
                opts += struct.pack("!BBB", 3, 3, int(str(val)))
            elif name == "sackOK":
                opts += b"\x04\x02"
            elif name == "TS":
                assert isinstance(val, TsSpec)
                ecr = val.ecr if val.ecr is not None else self.our_tsval.get(port, 0)
                opts += struct.pack("!BBII", 8, 10, val.val or 0, ecr)
            elif name == "sack":
                assert isinstance(val, tuple)
                opts += struct.pack("!BB", 5, 2 + 8 * len(val))
                for left, right in val:
                    opts += struct.pack("!II", (iss + left) & MASK, (iss + right) & MASK)
            elif name == "raw":
                assert isinstance(val, bytes)
                opts += val
        while len(opts) % 4:
            opts.append(0)
        doff = spec.doff if spec.doff is not None else 5 + len(opts) // 4
        hdr = bytearray(struct.pack("!HHIIBBHHH", port, LPORT, (PEER_BASE + spec.seq) & MASK, ack,
                                    (doff & 0xF) << 4, spec.flags, 65535 if spec.win is None else spec.win,
                                    0, spec.urg)) + opts
        payload = pattern(spec.seq - 1, spec.length) if spec.length else b""
        fill_checksum(hdr, REMOTE, LOCAL, payload)
        if spec.csum == "0":
            hdr[16:18] = b"\x00\x00"
        elif spec.csum == "bad":
            hdr[17] ^= 0x01
        raw = memoryview(bytes(hdr) + payload)
        layer.input(REMOTE, LOCAL, raw, raw, self.now, False)

    def _show(self, r: TcpRepr, payload: bytes) -> str:
        port = r.dst_port
        iss = self.our_iss.get(port, 0)
        text = format_segment(r, len(payload), (r.seq - iss) & MASK, (r.ack - PEER_BASE) & MASK)
        return text if port == 40000 else f":{port} {text}"

    def _expect_segment(self, step: Step, t: float) -> None:
        spec = step.seg
        assert spec is not None
        if not self.pending:
            self._advance(t + self.tolerance)
        if not self.pending:
            raise ScriptError(f"expected: > {step.text.split('>', 1)[1].strip()}\nactual:   nothing sent by "
                              f"{t + self.tolerance:.3f}")
        at, r, payload = self.pending.popleft()
        problems = self._compare(step.port, spec, r, payload)
        if abs(at - t) > self.tolerance:
            problems.append(f"sent at {at:.3f}, expected at {t:.3f}")
        if problems:
            raise ScriptError(f"expected: > {step.text.split('>', 1)[1].strip()}\nactual:   > "
                              f"{self._show(r, payload)}\n({'; '.join(problems)})")

    def _compare(self, port: int, spec: SegSpec, r: TcpRepr, payload: bytes) -> list[str]:
        iss = self.our_iss.get(port, 0)
        bad = []
        if r.dst_port != port:
            bad.append(f"port {r.dst_port} != {port}")
        if r.flags != spec.flags:
            bad.append("flags")
        if (r.seq - iss) & MASK != spec.seq & MASK:
            bad.append("seq")
        if len(payload) != spec.length:
            bad.append("length")
        elif payload and payload != pattern((r.seq - iss - 1) & MASK, len(payload)):
            bad.append("payload bytes")
        if spec.ack is not None and (not r.flags & ACK or (r.ack - PEER_BASE) & MASK != spec.ack & MASK):
            bad.append("ack")
        if spec.win is not None and r.window != spec.win:
            bad.append("win")
        if spec.options is not None:
            want: dict[str, object] = {k: v for k, v in spec.options if k not in ("nop", "eol")}
            have: dict[str, object] = {}
            if r.mss is not None:
                have["mss"] = r.mss
            if r.wscale is not None:
                have["wscale"] = r.wscale
            if r.sack_permitted:
                have["sackOK"] = None
            if r.sack:
                have["sack"] = tuple(((a - PEER_BASE) & MASK, (b - PEER_BASE) & MASK) for a, b in r.sack)
            if r.timestamp is not None:
                have["TS"] = r.timestamp
            ts = want.pop("TS", None)
            got_ts = have.pop("TS", None)
            if isinstance(ts, TsSpec):
                if not isinstance(got_ts, tuple) or (ts.val is not None and got_ts[0] != ts.val) or \
                        (ts.ecr is not None and got_ts[1] != ts.ecr):
                    bad.append("timestamps")
            elif got_ts is not None:
                bad.append("timestamps")
            if want != have:
                bad.append("options")
        return bad

    # -- commands -----------------------------------------------------------------------------------------
    def _config(self, args: list[str]) -> None:
        if self.layer is not None:
            raise ScriptError("config must come before anything else")
        for a in args:
            k, _, v = a.partition("=")
            val: Any
            if v in ("on", "true"):
                val = True
            elif v in ("off", "false"):
                val = False
            else:
                val = float(v) if "." in v else int(v)
            if k == "path_mss":
                self.path_mss = val
            elif k == "tolerance":
                self.tolerance = float(val)
            elif k in {f.name for f in fields(TcpConfig)}:
                self.settings[k] = val
            else:
                raise ScriptError(f"unknown config key {k!r}")

    def _conn(self, port: int) -> Connection:
        c = self.conns.get(port)
        if c is None:
            raise ScriptError(f"no connection with the peer port {port} (accept or connect first)")
        return c

    def _command(self, step: Step) -> None:
        run_command(self, step)


def run_file(path: str | Path, **config: Any) -> None:
    """Run one script file; ScriptError (with the file, line and a side-by-side report) on a mismatch."""
    p = Path(path)
    ScriptRunner(**config).run(p.read_text(), p.name)


def main(argv: list[str] | None = None) -> int:
    failed = 0
    for name in argv if argv is not None else sys.argv[1:]:
        try:
            run_file(name)
            print(f"ok    {name}")
        except ScriptError as e:
            failed += 1
            print(f"FAIL  {e}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
