"""End to end on a TAP device in a private namespace, with the kernel on the other side.

Implementations answering at 198.18.0.2 behind `tap0` (the kernel's side is 198.18.0.1/24), each in its own
process (`bench/e2e_server.py`) and namespace, so that its CPU time (user+sys) per echo answered is measured
beside its rate in the same run:
  tcpip      - `Stack` on a `TapDevice`, `stack.udp_echo(7)`, asyncio's default loop;
  responder  - the floor for Python on TAP: a reader callback on the TAP fd answering ARP, ICMP echo and
               UDP port 7 by swapping fields in place, no validation;
  +uvloop    - both again on uvloop's loop (when installed);
  pytcp      - PyTCP 3.0.9 (`python -O`), the issue's peer, when a Python 3.14 with it is found
               (`bench/pytcp_chroot.sh` makes one in /opt/tcpip-pytcp; `bench/pytcp_server.py`);
and, for comparison, the kernel itself over a veth pair between two namespaces (198.18.1.1 <-> .2):
  kernel+asyncio - a Python asyncio UDP echo server (`bench/echo_server.py`) on the kernel's stack; for
               ping the kernel answers itself.

Load (bounded in count AND time): `ping -f -c N -w 30` and `bench/udp_client.py` (one datagram in flight,
N datagrams, 1 s per-datagram timeout, 30 s cap), both run inside the namespace with `ip netns exec`.
Every namespace is named tcpip-b<pid>-<n>, uses 198.18.0.0/15 only, and is deleted in a finally block;
the only processes ever stopped are the ones started here, by their PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import re
import shutil
import statistics
import struct
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from bench.frames import OUR_IP_S

Log = Callable[[str], None]
HERE = Path(__file__).resolve().parent
TAP_KERNEL = "198.18.0.1/24"
VETH_CLIENT = "198.18.1.1/24"
VETH_SERVER = "198.18.1.2/24"
MAC = "02:00:00:00:00:02"

_TUNSETIFF = 0x400454CA
_IFF_TAP = 0x0002
_IFF_NO_PI = 0x1000
_PING_SUMMARY = re.compile(r"(\d+) packets transmitted, (\d+) received.*?time (\d+)ms")
_PING_RTT = re.compile(r"= ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms")


# CPU for everything in the end-to-end runs (this process, the load generators, the echo server).
# On a small VM a round trip that crosses CPUs is bimodal (idle-exit / IPI latency: 15k or 70k per
# second, run to run); on one CPU it is stable and measures the software path. None: no pinning.
PIN: int | None = None


def default_pin() -> int | None:
    cpus = sorted(os.sched_getaffinity(0))
    return cpus[-1] if cpus else None


def pinned(cmd: list[str]) -> list[str]:
    return cmd if PIN is None else ["taskset", "-c", str(PIN), *cmd]


@contextlib.contextmanager
def pin_self() -> Iterator[None]:
    if PIN is None:
        yield
        return
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {PIN})
    try:
        yield
    finally:
        os.sched_setaffinity(0, old)


def unavailable() -> str | None:
    """None when the end-to-end part can run here, else why not."""
    try:
        from tcpip.netns import netns_available
    except ImportError as e:
        return f"tcpip.netns is missing ({e})"
    why = netns_available()
    if why:
        return why
    for tool in ("ping", "ip"):
        if not any(os.access(os.path.join(p, tool), os.X_OK) for p in os.environ.get("PATH", "").split(":")):
            return f"{tool} is not installed"
    return None


def uvloop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


# -- load generators (run inside the namespace) ----------------------------------------------------
def parse_ping(out: str) -> dict[str, Any]:
    m = _PING_SUMMARY.search(out)
    if m is None:
        return {"error": f"unparsed ping output: {out.strip()[-300:]!r}"}
    sent, recv, ms = int(m.group(1)), int(m.group(2)), int(m.group(3))
    r: dict[str, Any] = {"sent": sent, "received": recv, "lost": sent - recv, "elapsed": ms / 1000,
                         "per_s": recv / (ms / 1000) if ms else 0.0}
    rtt = _PING_RTT.search(out)
    if rtt is not None:
        r["rtt_avg_ms"] = float(rtt.group(2))
    return r


async def ping_flood(ns: Any, dst: str, count: int, cap: int, *, warm: bool = True) -> dict[str, Any]:
    if warm:  # ARP resolution and a warm path, not counted
        await ns.run_async(pinned(["ping", "-c", "3", "-i", "0.2", "-W", "1", dst]), timeout=10)
    t = time.monotonic()
    res = await ns.run_async(pinned(["ping", "-f", "-q", "-c", str(count), "-w", str(cap), dst]), timeout=cap + 15)
    r = parse_ping(res.stdout)
    r["wall"] = time.monotonic() - t
    if res.timed_out:
        r["error"] = "ping timed out"
    return r


async def udp_rtt(ns: Any, dst: str, count: int, cap: int) -> dict[str, Any]:
    cmd = [sys.executable, str(HERE / "udp_client.py"), dst, "--count", str(count), "--cap", str(cap)]
    res = await ns.run_async(pinned(cmd), timeout=cap + 30)
    try:
        r: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        return {"error": f"udp client: rc={res.returncode} {res.stderr.strip()[-300:]!r}"}
    r["per_s"] = r.pop("rtt_per_s")
    return r


# -- the implementations ---------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def tcpip_server(ns: Any) -> AsyncIterator[dict[str, Any]]:
    from tcpip.stack import Stack

    dev = await ns.open_tap("tap0", mac=MAC)
    stack = await Stack.connect(dev, ipv4=f"{OUR_IP_S}/24")
    await stack.udp_echo(7)
    info: dict[str, Any] = {}
    try:
        yield info
    finally:
        st = stack.stats()
        info["counters"] = {"device": st.get("device", {}), "icmp_tx_echo_replies": st["icmp"]["tx_echo_replies"],
                            "udp": {k: v for k, v in st["udp"].items() if v}}
        info["rx_wakeups"] = getattr(dev, "rx_wakeups", None)
        await stack.disconnect()


class Responder:
    """The minimal hand-written responder: swap fields in place and write back, no validation."""

    def __init__(self, fd: int, mac: bytes, ip: bytes) -> None:
        self.fd = fd
        self.mac = mac
        self.ip = ip
        self.answered = 0
        self.tx_dropped = 0
        self.wakeups = 0

    def drain(self) -> None:
        self.wakeups += 1
        fd = self.fd
        read, write = os.read, os.write
        mac, ip = self.mac, self.ip
        for _ in range(256):
            try:
                f = read(fd, 2048)
            except (BlockingIOError, InterruptedError):
                return
            et = f[12:14]
            if et == b"\x08\x00":
                proto = f[23]
                if f[30:34] != ip:
                    continue
                if proto == 1 and f[34] == 8:
                    out = bytearray(f)
                    out[0:12] = f[6:12] + f[0:6]
                    out[26:34] = f[30:34] + f[26:30]
                    out[34] = 0
                    c = ((f[36] << 8) | f[37]) + 0x0800  # RFC 1624: type 8 -> 0
                    c = (c & 0xFFFF) + (c >> 16)
                    out[36] = c >> 8
                    out[37] = c & 0xFF
                elif proto == 17 and f[36:38] == b"\x00\x07":
                    out = bytearray(f)
                    out[0:12] = f[6:12] + f[0:6]
                    out[26:34] = f[30:34] + f[26:30]
                    out[34:38] = f[36:38] + f[34:36]
                else:
                    continue
            elif et == b"\x08\x06" and f[20:22] == b"\x00\x01" and f[38:42] == ip:
                out = bytearray(f[6:12] + mac + b"\x08\x06" + f[14:20] + b"\x00\x02" + mac + ip + f[22:32])
            else:
                continue
            try:
                write(fd, out)
            except OSError:
                self.tx_dropped += 1
                continue
            self.answered += 1


def open_tap_fd(name: str) -> int:
    """Attach to the (existing, up) TAP `name` in the calling thread's namespace: a non-blocking fd."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, _TUNSETIFF, struct.pack("16sH", name.encode(), _IFF_TAP | _IFF_NO_PI).ljust(40, b"\0"))
    except BaseException:
        os.close(fd)
        raise
    return fd


def _median_run(xs: list[dict[str, Any]]) -> dict[str, Any]:
    """The repeat with the median rate, with loss summed over all repeats and every rate listed; CPU per
    echo is the median over the repeats (every value listed)."""
    good = [x for x in xs if "error" not in x]
    if not good:
        return xs[-1] if xs else {"error": "no run"}
    good.sort(key=lambda x: x.get("per_s", 0.0))
    med = dict(good[len(good) // 2])
    med["rates"] = [round(x.get("per_s", 0.0)) for x in xs if "error" not in x]
    med["lost_total"] = sum(x.get("lost", 0) for x in good)
    med["sent_total"] = sum(x.get("sent", 0) for x in good)
    cpus = [x["cpu_us_per_echo"] for x in xs if x.get("cpu_us_per_echo") is not None]
    if cpus:
        med["cpu_us_all"] = [round(c, 1) for c in cpus]
        med["cpu_us_per_echo"] = round(statistics.median(cpus), 2)
    errs = [x["error"] for x in xs if "error" in x]
    if errs:
        med["errors"] = errs
    return med


# -- CPU time of a responder process ---------------------------------------------------------------
def cpu_ns(pid: int) -> int:
    """On-CPU time (user+sys) of every thread of `pid` in ns: the scheduler's sum_exec_runtime from
    /proc/<pid>/task/*/schedstat (ns resolution; /proc/<pid>/stat counts 10 ms ticks)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(FileNotFoundError), open(f"/proc/{pid}/task/{tid}/schedstat") as f:
            total += int(f.read().split()[0])
    return total


def cpu_ticks_s(pid: int) -> float:
    """utime + stime of `pid` from /proc/<pid>/stat, in seconds (tick resolution: a cross-check)."""
    u, s = cpu_user_sys_s(pid)
    return u + s


def cpu_user_sys_s(pid: int) -> tuple[float, float]:
    """utime and stime of `pid` from /proc/<pid>/stat, in seconds (tick-sampled: which side of a syscall
    each tick landed on)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    hz = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / hz, int(fields[12]) / hz


def ctx_switches(pid: int) -> tuple[int, int]:
    """(voluntary, involuntary) context switches of `pid`'s main thread (/proc/<pid>/status): the regime of
    a load. Pinned, the load preempts the responder at (nearly) each of its writes: ~1 involuntary switch
    per echo; a responder that empties its queue and sleeps switches voluntarily."""
    v = n = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches"):
                v = int(line.split()[1])
            elif line.startswith("nonvoluntary_ctxt_switches"):
                n = int(line.split()[1])
    return v, n


async def measured(pid: int, load: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """Run one load and add the responder's CPU time per echo answered (the load's own warm-up included
    in both the time and the count: `warmup_ok` of the UDP client) and its context switches per echo."""
    c0, (u0, s0), (v0, n0) = cpu_ns(pid), cpu_user_sys_s(pid), ctx_switches(pid)
    r = await load
    c1, (u1, s1), (v1, n1) = cpu_ns(pid), cpu_user_sys_s(pid), ctx_switches(pid)
    answered = int(r.get("received", 0)) + int(r.get("warmup_ok", 0))
    if answered:
        r["ctx_vol_per_echo"] = round((v1 - v0) / answered, 3)
        r["ctx_invol_per_echo"] = round((n1 - n0) / answered, 3)
    r["cpu_s"] = round((c1 - c0) / 1e9, 4)
    r["cpu_ticks_s"] = round(u1 - u0 + s1 - s0, 3)
    r["cpu_user_share"] = round((u1 - u0) / (u1 - u0 + s1 - s0), 3) if u1 - u0 + s1 - s0 > 0 else None
    r["cpu_us_per_echo"] = round((c1 - c0) / 1e3 / answered, 2) if answered else None
    return r


async def start_server(ns: Any, impl: str, loop_name: str, cap: float,
                       extra: tuple[str, ...] = ()) -> asyncio.subprocess.Process:
    """`bench/e2e_server.py` in namespace `ns` (pinned like the load), running the same tcpip source as
    this process; returns once it prints "ready"."""
    import tcpip

    src = str(Path(tcpip.__file__).resolve().parent.parent)
    if impl == "pytcp":
        proc = await ns.start(pinned(_pytcp_cmd(cap)))
    else:
        proc = await ns.start(pinned([sys.executable, str(HERE / "e2e_server.py"), "--impl", impl, "--loop",
                                      loop_name, "--src", src, "--cap", str(cap), *extra]))
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
    except TimeoutError:
        line = b""
    if line.strip() != b"ready":
        from tcpip.netns import Namespace

        _, err = await Namespace.stop(proc)
        raise RuntimeError(f"{impl}/{loop_name} server did not start: {line!r} {err.strip()[-300:]!r}")
    started: asyncio.subprocess.Process = proc
    return started


def _counters(out: str) -> dict[str, Any]:
    for line in reversed(out.strip().splitlines()):
        with contextlib.suppress(json.JSONDecodeError):
            c = json.loads(line)
            if isinstance(c, dict):
                return c
    return {"error": f"no counters: {out.strip()[-200:]!r}"}


# Each label: (implementation, loop). All are up at once, each in its own process and namespace.
SPECS: dict[str, tuple[str, str]] = {"tcpip": ("tcpip", "asyncio"), "responder": ("responder", "asyncio"),
                                     "tcpip+uvloop": ("tcpip", "uvloop"), "responder+uvloop": ("responder", "uvloop"),
                                     "pytcp": ("pytcp", "threads")}

# PyTCP 3.0.9 needs Python 3.14: a root directory holding it (`bench/pytcp_chroot.sh`: a Debian sid chroot,
# outside the repository), run with `chroot`. TCPIP_BENCH_PYTCP names another root, or "off".
PYTCP_ROOT = "/opt/tcpip-pytcp"
PYTCP_PYTHON = "/opt/pytcp/bin/python"  # inside the root


def pytcp_root() -> str | None:
    """The chroot that has PyTCP, or None (the PyTCP row is then the issue's quoted figures only)."""
    root = os.environ.get("TCPIP_BENCH_PYTCP", PYTCP_ROOT)
    if root in ("", "0", "off"):
        return None
    return root if os.access(root + PYTCP_PYTHON, os.X_OK) and os.path.exists(root + "/dev/net/tun") else None


_PYTCP_SCRIPT = "/tmp/tcpip-bench-pytcp-server-{pid}.py"  # inside the root


def _pytcp_cmd(cap: float) -> list[str]:
    """`bench/pytcp_server.py` copied into the chroot (it runs there, under PyTCP's Python) and its command."""
    root = pytcp_root()
    assert root is not None
    name = _PYTCP_SCRIPT.format(pid=os.getpid())
    shutil.copyfile(HERE / "pytcp_server.py", root + name)
    return ["chroot", root, PYTCP_PYTHON, "-O", name, MAC, f"{OUR_IP_S}/24", str(cap)]


def _pytcp_cleanup() -> None:
    if (root := pytcp_root()) is not None:
        with contextlib.suppress(OSError):
            os.remove(root + _PYTCP_SCRIPT.format(pid=os.getpid()))


async def _until_answered(ns: Any, dst: str, within: float) -> None:
    """Ping until one is answered (PyTCP probes its address, RFC 5227, before it answers: seconds)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        res = await ns.run_async(pinned(["ping", "-c", "1", "-W", "1", dst]), timeout=5)
        if res.returncode == 0:
            return
        await asyncio.sleep(0.2)


async def _tap_session(nss: dict[str, Any], count: int, cap: int, reps: int, log: Log) -> dict[str, dict[str, Any]]:
    """Every responder process up at once (one namespace each), measured round robin, `reps` times."""
    from tcpip.netns import Namespace

    samples: dict[str, dict[str, list[dict[str, Any]]]] = {label: {"ping": [], "udp": []} for label in nss}
    procs: dict[str, asyncio.subprocess.Process] = {}
    counters: dict[str, dict[str, Any]] = {}
    try:
        for label, ns in nss.items():
            procs[label] = await start_server(ns, *SPECS[label], reps * (2 * cap + 60) + 120)
        labels = list(nss)
        for rep in range(reps):
            # Counterbalanced: each pair of adjacent labels (tcpip, then its responder on the same loop) swaps
            # order every other repeat, so neither is always measured first after the other's load
            order = labels if rep % 2 == 0 else [labels[i ^ 1] if (i ^ 1) < len(labels) else labels[i]
                                                 for i in range(len(labels))]
            for label in order:
                ns = nss[label]
                pid = procs[label].pid
                if rep == 0:  # ARP resolution and a warm path, not counted
                    if label == "pytcp":
                        await _until_answered(ns, OUR_IP_S, 30)
                    await ns.run_async(pinned(["ping", "-c", "3", "-i", "0.2", "-W", "1", OUR_IP_S]), timeout=10)
                samples[label]["ping"].append(await measured(pid, ping_flood(ns, OUR_IP_S, count, cap, warm=False)))
                samples[label]["udp"].append(await measured(pid, udp_rtt(ns, OUR_IP_S, count, cap)))
                p, u = samples[label]["ping"][-1], samples[label]["udp"][-1]
                log(f"    {label:16} #{rep + 1} ping {p.get('per_s', 0):8.0f}/s {p.get('cpu_us_per_echo') or 0:6.1f} us"
                    f"  udp {u.get('per_s', 0):8.0f}/s {u.get('cpu_us_per_echo') or 0:6.1f} us CPU/echo"
                    f"  (switches per echo, voluntary+involuntary: ping {p.get('ctx_vol_per_echo')}"
                    f"+{p.get('ctx_invol_per_echo')}, udp {u.get('ctx_vol_per_echo')}+{u.get('ctx_invol_per_echo')})")
    finally:
        for label, proc in procs.items():
            out, _err = await Namespace.stop(proc)
            counters[label] = _counters(out)
        if "pytcp" in procs:
            _pytcp_cleanup()
    return {label: {"ping": _median_run(samples[label]["ping"]), "udp": _median_run(samples[label]["udp"]),
                    "counters": counters.get(label, {})} for label in nss}


def _run_loop(factory: Callable[[], asyncio.AbstractEventLoop] | None,
              main: Callable[[], Awaitable[Any]]) -> Any:
    with pin_self(), asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main())  # type: ignore[arg-type]


def tap_namespace() -> Any:
    from tcpip.netns import Namespace

    ns = Namespace.create("b")
    try:
        for key in ("net.ipv6.conf.all.disable_ipv6", "net.ipv6.conf.default.disable_ipv6"):
            with contextlib.suppress(OSError, ValueError):
                ns.sysctl(key, 1)  # no router solicitations or MLD reports in the measurements
        ns.add_tap("tap0")
        ns.add_address("tap0", TAP_KERNEL)
    except BaseException:
        ns.remove()
        raise
    return ns


def run_tap(labels: list[str], count: int, cap: int, reps: int, log: Log) -> dict[str, Any]:
    nss: dict[str, Any] = {}
    try:
        for label in labels:
            nss[label] = tap_namespace()
        res: dict[str, Any] = _run_loop(None, lambda: _tap_session(nss, count, cap, reps, log))
    finally:
        for ns in nss.values():
            ns.remove()
    return res


async def _kernel_run(client: Any, server: Any, count: int, cap: int, reps: int) -> dict[str, Any]:
    from tcpip.netns import Namespace

    srv_ip = VETH_SERVER.split("/", maxsplit=1)[0]
    proc = await server.start(pinned([sys.executable, str(HERE / "echo_server.py"), "--host", srv_ip,
                                      "--cap", str(reps * (2 * cap + 60))]))
    pings: list[dict[str, Any]] = []
    udps: list[dict[str, Any]] = []
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 10)
        if line.strip() != b"ready":
            return {"error": f"echo server did not start: {line!r}"}
        for rep in range(reps):
            pings.append(await ping_flood(client, srv_ip, count, cap, warm=rep == 0))
            udps.append(await udp_rtt(client, srv_ip, count, cap))
    finally:
        await Namespace.stop(proc)  # signals this PID only
    return {"ping": _median_run(pings), "udp": _median_run(udps)}


def run_kernel(count: int, cap: int, reps: int) -> dict[str, Any]:
    from tcpip.netns import Namespace

    client = Namespace.create("b")
    try:
        server = Namespace.create("b")
        try:
            client.add_veth("veth0", server, "veth1")
            client.add_address("veth0", VETH_CLIENT)
            server.add_address("veth1", VETH_SERVER)
            return _run_loop(None, lambda: _kernel_run(client, server, count, cap, reps))  # type: ignore[no-any-return]
        finally:
            server.remove()
    finally:
        client.remove()


class _CProfiler:
    """cProfile behind pyinstrument's start/stop/output_text: call counts per function are exact, so the
    calls per echo (clock reads, reads, flushes, loop iterations) can be read off the text."""

    def __init__(self) -> None:
        import cProfile

        self._p = cProfile.Profile()

    def start(self) -> None:
        self._p.enable()

    def stop(self) -> None:
        self._p.disable()

    def output_text(self) -> str:
        import io
        import pstats

        buf = io.StringIO()
        pstats.Stats(self._p, stream=buf).sort_stats("tottime").print_stats(45)
        return buf.getvalue()


def _profiler() -> Any:
    try:
        from pyinstrument import Profiler
    except ImportError:
        return _CProfiler()
    return _PyInstrument(Profiler(interval=0.0002, async_mode="disabled"))


class _PyInstrument:
    def __init__(self, prof: Any) -> None:
        self._p = prof
        self.start = prof.start
        self.stop = prof.stop

    def output_text(self) -> str:
        text: str = self._p.output_text(unicode=False, color=False, show_all=False)
        return text


async def _profile_session(ns: Any, count: int, cap: int, out_dir: Path) -> dict[str, str]:
    files: dict[str, str] = {}
    async with tcpip_server(ns):
        await ping_flood(ns, OUR_IP_S, 200, cap)
        for what in ("ping", "udp"):
            prof = _profiler()
            prof.start()
            if what == "ping":
                await ping_flood(ns, OUR_IP_S, count, cap, warm=False)
            else:
                await udp_rtt(ns, OUR_IP_S, count, cap)
            prof.stop()
            path = out_dir / f"profile_tcpip_{what}.txt"
            path.write_text(prof.output_text())
            files[what] = str(path)
    return files


def profile(count: int, cap: int, out_dir: Path, log: Log) -> dict[str, Any]:
    """pyinstrument (cProfile when it is not installed) over tcpip, in this process, while the kernel floods
    it (ping, then UDP round trips)."""
    why = unavailable()
    if why:
        return {"skipped": why}
    ns = tap_namespace()
    try:
        files = _run_loop(None, lambda: _profile_session(ns, count, cap, out_dir))
    finally:
        ns.remove()
    for f in files.values():
        log(f"  profile written to {f}")
    return {"files": files}


def run(quick: bool, log: Log, pin: bool = True) -> dict[str, Any]:
    global PIN  # noqa: PLW0603 - one setting for the whole run
    why = unavailable()
    if why:
        log(f"  end to end skipped: {why}")
        return {"skipped": why}
    PIN = default_pin() if pin else None
    log(f"  pinned to CPU {PIN} (server, load generators)" if PIN is not None else "  not pinned")
    count = 5000 if quick else 20000
    cap = 10 if quick else 30
    reps = 1 if quick else 3
    out: dict[str, Any] = {"count": count, "cap_s": cap, "repeats": reps, "pinned_cpu": PIN, "runs": {}}
    from tcpip.netns import cleanup_stale

    cleanup_stale()
    labels = list(SPECS)
    if pytcp_root() is None:
        labels.remove("pytcp")
        out["pytcp"] = "not found (bench/pytcp_chroot.sh makes it)"
    if uvloop_factory() is None:
        labels = [x for x in labels if SPECS[x][1] != "uvloop"]
        out["uvloop"] = "not installed"
    try:
        out["runs"].update(run_tap(labels, count, cap, reps, log))
    except Exception as e:  # one broken run must not hide the others
        out["runs"]["tap"] = {"error": f"{type(e).__name__}: {e}"}
    try:
        out["runs"]["kernel+asyncio"] = run_kernel(count, cap, reps)
    except Exception as e:
        out["runs"]["kernel+asyncio"] = {"error": f"{type(e).__name__}: {e}"}
    out["quoted"] = QUOTED
    for label, r in out["runs"].items():
        log("  " + _summary(label, r))
    return out


# The figures issue 10 quotes for PyTCP, shown as a reference row beside the measured one (when measured).
QUOTED: dict[str, dict[str, Any]] = {
    "PyTCP 3.0.9 (python -O)": {"cpu_us_per_echo": [602, 747], "source": "issue 10, quoted, not measured"}}


def _summary(label: str, r: dict[str, Any]) -> str:
    if "error" in r:
        return f"{label:16} error: {r['error']}"
    parts = []
    for k in ("ping", "udp"):
        x = r.get(k, {})
        if "error" in x:
            parts.append(f"{k}: error {x['error']}")
        else:
            cpu = x.get("cpu_us_per_echo")
            parts.append(f"{k} {x.get('per_s', 0):8.0f}/s lost {x.get('lost_total')}/{x.get('sent_total')}"
                         + (f" cpu {cpu:6.1f} us/echo" if cpu is not None else ""))
    return f"{label:16} " + "   ".join(parts)
