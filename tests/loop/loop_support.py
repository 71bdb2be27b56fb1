"""Helpers for running unchanged asyncio libraries on a StackLoop against the Linux kernel: a namespace
`tcpip-l<pid>-<n>` with TAP `tap0` (kernel 198.18.0.1/24), a StackLoop runner on that TAP (198.18.0.2/24),
and kernel-side processes started inside the namespace and stopped by PID. Everything is removed afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from kernel.kernel_support import KERNEL_IP, PREFIX, STACK_IP, TAP, require_tap

import tcpip
from tcpip.netns import Namespace

SRC = str(Path(__file__).resolve().parents[2] / "src")


class Kernel:
    """The namespace's kernel side: processes it runs, started and stopped by PID."""

    def __init__(self, ns: Namespace, tmp: Path) -> None:
        self.ns = ns
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, argv: Sequence[str], *, port: int | None = None, udp: bool = False,
              env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.Popen[bytes]:
        """Start `argv` in the namespace (`ip netns exec` execs it: the PID is the program's); with `port`,
        wait until it listens there (TCP, or UDP with `udp`)."""
        log = open(self.tmp / f"proc{len(self.procs)}.log", "wb")  # noqa: SIM115 - closed with the process
        p = subprocess.Popen(self.ns.argv(list(argv)), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                             env={**os.environ, **(env or {})}, cwd=cwd)
        log.close()
        self.procs.append(p)
        if port is not None:
            self.wait_listening(port, udp=udp, proc=p)
        return p

    def wait_listening(self, port: int, *, udp: bool = False, proc: subprocess.Popen[bytes] | None = None) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            r = self.ns.run(["ss", "-ulnH" if udp else "-tlnH", f"sport = :{port}"], timeout=5)
            if r.stdout.strip():
                return
            if proc is not None and proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"nothing listening on {port}: {self.log(proc)}")

    def log(self, proc: subprocess.Popen[bytes] | None) -> str:
        if proc is None:
            return ""
        return (self.tmp / f"proc{self.procs.index(proc)}.log").read_text(errors="replace")

    def run(self, argv: Sequence[str], *, timeout: float = 30, input: bytes | None = None,
            ) -> subprocess.CompletedProcess[bytes]:
        """Run `argv` in the namespace to completion (call it from a thread while a StackLoop serves)."""
        return subprocess.run(self.ns.argv(list(argv)), input=input, capture_output=True, timeout=timeout,
                              check=False)

    async def arun(self, argv: Sequence[str], *, timeout: float = 30, input: bytes | None = None,
                   ) -> subprocess.CompletedProcess[bytes]:
        """`run` without blocking the loop (tcpip keeps serving meanwhile)."""
        return await asyncio.to_thread(self.run, argv, timeout=timeout, input=input)

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGTERM)
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)


def kernel_namespace(tmp: Path) -> Iterator[Kernel]:
    """The fixture `kernel`: the namespace and its TAP, removed (and its processes stopped) afterwards."""
    require_tap("ip", "ss")
    ns = Namespace.create("l")
    k = Kernel(ns, tmp)
    try:
        ns.add_tap(TAP)
        ns.add_address(TAP, f"{KERNEL_IP}/{PREFIX}")
        yield k
    finally:
        k.stop_all()
        ns.remove()
    assert not ns.exists


def stack_runner(k: Kernel, *, uvloop: bool = False) -> asyncio.Runner:
    """asyncio.Runner on a StackLoop whose stack is on the namespace's TAP: the only tcpip-specific line."""
    return asyncio.Runner(loop_factory=tcpip.loop_factory(tap=TAP, netns=k.ns.name, ipv4=f"{STACK_IP}/{PREFIX}",
                                                          uvloop=uvloop))


# A kernel-side HTTPS server: address, port, cert+key PEM, directory to serve.
TLS_SERVER = '''
import functools, http.server, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[3])
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[4])
httpd = http.server.ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), handler)
httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
httpd.serve_forever()
'''


def kernel_python(k: Kernel, code: str, *args: str, port: int | None = None, udp: bool = False,
                  ) -> subprocess.Popen[bytes]:
    """A kernel-side Python peer (the system's libraries, kernel sockets)."""
    path = k.tmp / f"peer{len(k.procs)}.py"
    path.write_text(code)
    return k.start([sys.executable, str(path), *args], port=port, udp=udp)


__all__ = ["KERNEL_IP", "SRC", "STACK_IP", "TAP", "TLS_SERVER", "Kernel", "kernel_namespace", "kernel_python",
           "stack_runner"]
