"""Linux network-namespace helpers for demos and tests: a private namespace, TAP/veth links in it,
addresses, routes, forwarding, commands run inside it, and guaranteed clean-up.

Link and address set-up goes through netlink with pyroute2 (the optional extra `tcpip[netns]`,
imported lazily). Commands run inside a namespace with `ip netns exec` in a subprocess. Switching the
*calling thread* into a namespace (to open a TAP fd there) uses setns(2) directly.

The netlink calls are synchronous. pyroute2's `IPRoute` runs its own event loop, so when one is already
running in the calling thread they are run in a helper thread and waited for (they take milliseconds;
`await asyncio.to_thread(ns.add_address, ...)` avoids even that stall).

Every namespace this process creates is named `tcpip-<tag><pid>-<n>` and is removed by
`Namespace.remove()` (also `with Namespace.create() as ns:`) or, at the latest, at interpreter exit.
Only addresses from 198.18.0.0/15 (RFC 2544 benchmarking) are meant to be used in them.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import errno
import functools
import itertools
import os
import re
import subprocess
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from tcpip.errors import TcpipError
from tcpip.netif.link import setns

if TYPE_CHECKING:
    from tcpip.netif.tap import TapDevice
    from tcpip.wire.mac import MacAddress

__all__ = [
    "BENCHMARK_NET",
    "NETNS_DIR",
    "CommandResult",
    "Namespace",
    "NetnsError",
    "cleanup_stale",
    "enter",
    "netns_available",
]

NETNS_DIR = "/run/netns"
BENCHMARK_NET = IPv4Network("198.18.0.0/15")
_NAME_RE = re.compile(r"^tcpip-([a-z]*)(\d+)-(\d+)$")
_counter = itertools.count()
_created: set[str] = set()
_lock = threading.Lock()


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _off_loop(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run `fn` in a helper thread when an asyncio loop is running in this one (pyroute2's sync
    API cannot run inside a running loop)."""

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return fn(*args, **kwargs)
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="tcpip-netns") as ex:
            return ex.submit(fn, *args, **kwargs).result()

    return wrapper


class NetnsError(TcpipError, OSError):
    """A namespace operation failed, or pyroute2 (the `netns` extra) is not installed."""


def _pyroute2() -> Any:
    try:
        import pyroute2  # noqa: PLC0415 - optional dependency, imported on first use
    except ImportError:
        raise NetnsError(
            errno.ENOSYS, "pyroute2 is required for network namespaces: pip install 'tcpip[netns]'"
        ) from None
    return pyroute2


def netns_available() -> str | None:
    """None when namespaces + TAP can be used here, else the reason why not (for skips and the demo)."""
    if os.geteuid() != 0:
        return "not running as root"
    if not os.path.exists("/dev/net/tun"):
        return "/dev/net/tun is missing"
    try:
        os.close(os.open("/dev/net/tun", os.O_RDWR))
    except OSError as e:
        return f"/dev/net/tun is not usable: {e.strerror}"
    try:
        _pyroute2()
    except NetnsError as e:
        return str(e)
    return None


# -- switching the calling thread ---------------------------------------------------------------
def _setns(fd: int) -> None:
    try:
        setns(fd)
    except OSError as e:
        raise NetnsError(e.errno or errno.EPERM, f"setns failed: {os.strerror(e.errno or errno.EPERM)}") from None


@contextlib.contextmanager
def enter(name: str) -> Iterator[None]:
    """Run the body with the calling thread in namespace `name` (sockets and TAP fds opened there
    stay bound to it). Never `await` inside: other tasks of the loop would run in the namespace."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            target = os.open(os.path.join(NETNS_DIR, name), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NetnsError(errno.ENOENT, f"no network namespace named {name!r}") from None
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(home)


# -- commands --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool = False

    def check(self) -> CommandResult:
        if self.returncode != 0 or self.timed_out:
            what = "timed out" if self.timed_out else f"exited with {self.returncode}"
            raise NetnsError(
                errno.EIO, f"{' '.join(self.argv)} {what}: {self.stderr.strip() or self.stdout.strip()}"
            )
        return self


def cleanup_stale() -> list[str]:
    """Remove `tcpip-*` namespaces left by processes that no longer exist (after a crash/kill -9)."""
    removed: list[str] = []
    try:
        names = os.listdir(NETNS_DIR)
    except FileNotFoundError:
        return removed
    for name in names:
        m = _NAME_RE.match(name)
        if m is None or int(m.group(2)) == os.getpid():
            continue
        if os.path.exists(f"/proc/{m.group(2)}"):
            continue
        with contextlib.suppress(OSError):
            _pyroute2().netns.remove(name)
            removed.append(name)
    return removed


@atexit.register
def _remove_leftovers() -> None:
    # Only in the creating process: a forked child (pyroute2 forks helpers) must not remove them.
    for name in list(_created):
        m = _NAME_RE.match(name)
        if m is None or int(m.group(2)) != os.getpid():
            continue
        with contextlib.suppress(Exception):
            Namespace(name).remove()


class Namespace:
    """A network namespace by name. `Namespace.create()` makes a fresh uniquely named one."""

    def __init__(self, name: str) -> None:
        self.name = name

    @classmethod
    @_off_loop
    def create(cls, tag: str = "n", *, loopback_up: bool = True) -> Namespace:
        """Create `tcpip-<tag><pid>-<n>` (with `lo` up). Remove it with `remove()` or `with`."""
        if not re.fullmatch(r"[a-z]{0,4}", tag):
            raise ValueError(f"tag must be 0-4 lowercase letters, got {tag!r}")
        pr = _pyroute2()
        with _lock:
            name = f"tcpip-{tag}{os.getpid()}-{next(_counter)}"
            while os.path.exists(os.path.join(NETNS_DIR, name)):
                name = f"tcpip-{tag}{os.getpid()}-{next(_counter)}"
            try:
                pr.netns.create(name)
            except OSError as e:
                raise NetnsError(e.errno, f"cannot create namespace {name}: {e}") from None
            _created.add(name)
        ns = cls(name)
        try:
            if loopback_up:
                ns.set_up("lo")
        except BaseException:
            ns.remove()
            raise
        return ns

    def remove(self) -> None:
        """Delete the namespace (its TAP and veth devices go with it). Idempotent."""
        _created.discard(self.name)
        if os.path.exists(os.path.join(NETNS_DIR, self.name)):
            try:
                _pyroute2().netns.remove(self.name)
            except OSError as e:
                raise NetnsError(e.errno, f"cannot remove namespace {self.name}: {e}") from None

    @property
    def exists(self) -> bool:
        return os.path.exists(os.path.join(NETNS_DIR, self.name))

    def __enter__(self) -> Namespace:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.remove()

    def __repr__(self) -> str:
        return f"Namespace({self.name!r})"

    # -- netlink ----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def iproute(self) -> Iterator[Any]:
        """A pyroute2 `IPRoute` bound to this namespace (synchronous: not on a running loop's thread)."""
        if not self.exists:
            raise NetnsError(errno.ENOENT, f"no network namespace named {self.name!r}")
        # flags=0: never let pyroute2 create the namespace implicitly (its default is O_CREAT)
        with _pyroute2().IPRoute(netns=self.name, flags=0) as ipr:
            yield ipr

    def _index(self, ipr: Any, ifname: str) -> int:
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            raise NetnsError(errno.ENODEV, f"no interface {ifname!r} in {self.name}")
        return int(found[0])

    @_off_loop
    def set_up(self, ifname: str, *, mtu: int | None = None) -> None:
        with self.iproute() as ipr:
            idx = self._index(ipr, ifname)
            if mtu is not None:
                ipr.link("set", index=idx, mtu=mtu)
            ipr.link("set", index=idx, state="up")

    @_off_loop
    def add_tap(self, ifname: str = "tap0", *, mtu: int | None = None, up: bool = True) -> None:
        """Create a persistent TAP interface here (open it later with `open_tap`)."""
        with self.iproute() as ipr:
            ipr.link("add", ifname=ifname, kind="tuntap", mode="tap")
        if up or mtu is not None:
            self.set_up(ifname, mtu=mtu)

    @_off_loop
    def add_veth(self, ifname: str, peer: Namespace, peer_ifname: str) -> None:
        """Create a veth pair `ifname` (here) <-> `peer_ifname` (in `peer`), both up."""
        with self.iproute() as ipr:
            ipr.link("add", ifname=ifname, kind="veth", peer={"ifname": peer_ifname})
            pidx = self._index(ipr, peer_ifname)
            fd = os.open(os.path.join(NETNS_DIR, peer.name), os.O_RDONLY | os.O_CLOEXEC)
            try:
                ipr.link("set", index=pidx, net_ns_fd=fd)
            finally:
                os.close(fd)
            ipr.link("set", index=self._index(ipr, ifname), state="up")
        peer.set_up(peer_ifname)

    @_off_loop
    def add_address(self, ifname: str, cidr: str | IPv4Interface) -> None:
        iface = IPv4Interface(cidr)
        if iface.ip not in BENCHMARK_NET:
            raise ValueError(f"{iface} is outside {BENCHMARK_NET}: refusing")
        with self.iproute() as ipr:
            ipr.addr(
                "add", index=self._index(ipr, ifname), address=str(iface.ip),
                prefixlen=iface.network.prefixlen,
            )

    @_off_loop
    def add_route(self, dst: str, gateway: str | IPv4Address) -> None:
        """Route `dst` ("default" or a CIDR) via `gateway`."""
        with self.iproute() as ipr:
            ipr.route("add", dst="0.0.0.0/0" if dst == "default" else dst, gateway=str(gateway))

    def sysctl(self, key: str, value: str | int) -> None:
        """Write a net.* sysctl of this namespace, e.g. `sysctl("net.ipv4.ip_forward", 1)`."""
        if not key.startswith("net."):
            raise ValueError("only net.* sysctls are per-namespace")
        path = "/proc/sys/" + key.replace(".", "/")
        with enter(self.name), open(path, "w") as f:
            f.write(f"{value}\n")

    def set_forwarding(self, on: bool = True) -> None:
        self.sysctl("net.ipv4.ip_forward", int(on))

    @_off_loop
    def link_mac(self, ifname: str) -> str:
        with self.iproute() as ipr:
            link = ipr.link("get", index=self._index(ipr, ifname))[0]
            return str(link.get_attr("IFLA_ADDRESS"))

    @_off_loop
    def neighbours(self, ifname: str | None = None) -> dict[str, tuple[str | None, str]]:
        """The kernel neighbour table: {ip: (mac or None, state name)}."""
        pr = _pyroute2()
        states = {v: k for k, v in pr.netlink.rtnl.ndmsg.states.items()}
        out: dict[str, tuple[str | None, str]] = {}
        with self.iproute() as ipr:
            kw = {"ifindex": self._index(ipr, ifname)} if ifname is not None else {}
            for n in ipr.neigh("dump", **kw):
                ip = n.get_attr("NDA_DST")
                if ip is None or ":" in ip:
                    continue
                out[ip] = (n.get_attr("NDA_LLADDR"), states.get(n["state"], str(n["state"])))
        return out

    # -- TAP on our side ------------------------------------------------------------------------
    async def open_tap(
        self, ifname: str = "tap0", *, mac: MacAddress | str | None = None, mtu: int | None = 1500,
        txqueuelen: int | None = None, offload: bool | None = None,
    ) -> TapDevice:
        """Open TAP `ifname` inside this namespace (created if absent) for a stack running in this
        process: the thread enters the namespace only for the open and returns at once; the fd stays
        bound to the namespace's interface. `mtu` None adopts the interface's; `txqueuelen` None: the
        TapDevice default (see `TapDevice.open`); `offload` as `TapDevice.open`."""
        from tcpip.netif.tap import TXQUEUELEN, TapDevice  # noqa: PLC0415 - keep this module light

        with enter(self.name):
            fd, real, ctl = TapDevice.open_fd(ifname, offload=offload)
        return await TapDevice.adopt(fd, real, ctl, mac=mac, mtu=mtu, offload=offload,
                                     txqueuelen=TXQUEUELEN if txqueuelen is None else txqueuelen)

    # -- commands ---------------------------------------------------------------------------------
    def argv(self, cmd: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *cmd]

    def run(self, cmd: Sequence[str], *, timeout: float = 30.0, input: str | None = None) -> CommandResult:
        """Run `cmd` in the namespace, synchronously, killed after `timeout` seconds."""
        argv = self.argv(cmd)
        try:
            p = subprocess.run(  # noqa: S603 - fixed argv, no shell
                argv, input=input, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as e:
            return CommandResult(tuple(argv), -9, _text(e.stdout), _text(e.stderr), timed_out=True)
        return CommandResult(tuple(argv), p.returncode, p.stdout, p.stderr)

    async def run_async(
        self, cmd: Sequence[str], *, timeout: float = 30.0, input: str | None = None
    ) -> CommandResult:
        """Run `cmd` in the namespace as an asyncio subprocess (the loop keeps serving the stack
        meanwhile); killed (by its PID) after `timeout` seconds."""
        argv = self.argv(cmd)
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        timed_out = False
        try:
            out, err = await asyncio.wait_for(
                proc.communicate(None if input is None else input.encode()), timeout
            )
        except TimeoutError:
            timed_out = True
            out, err = b"", b""
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        rc = proc.returncode if proc.returncode is not None else -9
        return CommandResult(
            tuple(argv), rc, out.decode(errors="replace"), err.decode(errors="replace"), timed_out
        )

    async def start(self, cmd: Sequence[str]) -> asyncio.subprocess.Process:
        """Start a long-running `cmd` in the namespace (stdout/stderr piped); stop it with `stop`."""
        return await asyncio.create_subprocess_exec(
            *self.argv(cmd),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )

    @staticmethod
    async def stop(
        proc: asyncio.subprocess.Process, *, signal: int = 15, timeout: float = 5.0
    ) -> tuple[str, str]:
        """Signal a process started with `start` and collect its output; SIGKILL if it lingers."""
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            out, err = await proc.communicate()
        return out.decode(errors="replace"), err.decode(errors="replace")


def _text(b: bytes | str | None) -> str:
    if b is None:
        return ""
    return b if isinstance(b, str) else b.decode(errors="replace")
