"""The `tcpip` command (also `python -m tcpip`): `demo`, `up`, `ping` and `run`, flags named like MirageOS's.

Exit status: 0 success; 1 `ping` got no reply (as ping(8)), or `up` lost its TAP; 2 usage or environment
errors (bad flag, bad CIDR, missing /dev/net/tun, no permission), always reported on one line
`tcpip <command>: error: ...` (tcpip.clierror)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from ipaddress import IPv4Address, IPv4Interface
from typing import TYPE_CHECKING, Any, NoReturn

from tcpip import cli_ping
from tcpip.clierror import PROG, UsageError, describe, error_line, with_cap_hint
from tcpip.errors import ConfigurationError, TcpipError
from tcpip.hostconfig import check_gateways, check_mac, host_interface
from tcpip.netif.device import NetworkDevice
from tcpip.wire.mac import MacAddress

if TYPE_CHECKING:
    from tcpip.stack import Stack

_CAP_NET_ADMIN = 12  # capability bit number (linux/capability.h)
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


class _Parser(argparse.ArgumentParser):
    commands: dict[str, argparse.ArgumentParser]  # the top-level parser's subcommands

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")

    def parse_command(self, argv: Sequence[str] | None) -> argparse.Namespace:
        """parse_args, with arguments no parser knows reported by the command's parser (its prefix)."""
        args, extra = self.parse_known_args(argv)
        if extra:
            self.commands.get(args.command, self).error(f"unrecognized arguments: {' '.join(extra)}")
        return args


# -- argument types ------------------------------------------------------------------------------
def cidr(text: str) -> IPv4Interface:
    """ADDR/PREFIX, or a bare ADDR meaning ADDR/32: the same forms and rules as Stack.connect."""
    try:
        return host_interface(text)
    except ConfigurationError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def ipv4(text: str) -> IPv4Address:
    try:
        return IPv4Address(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad IPv4 address {text!r}") from None


def gateways(text: str) -> list[IPv4Address]:
    return [ipv4(t) for t in text.split(",") if t]


def route(text: str) -> tuple[IPv4Interface, IPv4Address]:
    """`CIDR,via=IP` (the --route flag)."""
    net, _, via = text.partition(",")
    if not via.startswith("via="):
        raise argparse.ArgumentTypeError(f"{text!r} is not CIDR,via=IP (e.g. 198.19.0.0/16,via=198.18.0.1)")
    try:
        n = IPv4Interface(net)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"bad route destination {net!r}: {e}") from None
    if n.ip != n.network.network_address:
        raise argparse.ArgumentTypeError(f"{net!r} has host bits set")
    return n, ipv4(via[4:])


class _FirstAndRest(argparse.Action):
    """--ipv4 repeated: the first is `ipv4` (the primary address), every one is in `ipv4_all`."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        if getattr(namespace, "ipv4", None) is None:
            namespace.ipv4 = values
        namespace.ipv4_all = [*getattr(namespace, "ipv4_all", []), values]


def mac(text: str) -> MacAddress:
    try:
        m = MacAddress(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad MAC address {text!r}") from None
    if m.is_multicast:
        raise argparse.ArgumentTypeError(f"{text!r} is a multicast MAC; a host needs a unicast one")
    return m


def _int_range(lo: int, hi: int, what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            v = int(text, 0)
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad {what} {text!r}") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{what} {v} outside {lo}..{hi}")
        return v

    parse.__name__ = what
    return parse


def positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad number {text!r}") from None
    if not 0 < v < 3600:
        raise argparse.ArgumentTypeError(f"{v} must be > 0 and < 3600")
    return v


def build_parser() -> _Parser:
    p = _Parser(prog=PROG, description="tcpip: a user-space IPv4 stack (Ethernet, ARP, IPv4, ICMP, UDP).")
    p.add_argument("--log-level", choices=LOG_LEVELS, default="warning", help="logging level (default warning)")
    sub = p.add_subparsers(dest="command", metavar="{demo,up,ping,run}", parser_class=_Parser)
    sub.required = True

    d = sub.add_parser("demo", help="tcpip and the Linux kernel on a TAP in a private namespace (or an in-memory hub)",
                       description="Without root or /dev/net/tun, runs two tcpip hosts on an in-memory hub.")
    mode = d.add_mutually_exclusive_group()
    mode.add_argument("--hub", dest="mode", action="store_const", const="hub", help="force the in-memory hub")
    mode.add_argument("--kernel", dest="mode", action="store_const", const="kernel", help="require the kernel peer")
    d.set_defaults(mode="auto")
    d.add_argument("--pcap", metavar="FILE", help="record tcpip's frames to FILE")
    d.add_argument("--log-level", choices=LOG_LEVELS, default=argparse.SUPPRESS)

    def device_flags(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--tap", required=True, metavar="NAME", help="TAP interface (created if absent)")
        sp.add_argument("--ipv4", type=cidr, metavar="ADDR/PREFIX", action=_FirstAndRest, default=None,
                        help="our address, e.g. 198.18.0.2/24 (repeatable: more addresses; or --dhcp)")
        sp.set_defaults(ipv4_all=[])
        sp.add_argument("--dhcp", action="store_true", help="get the address, gateways and DNS servers by DHCP")
        sp.add_argument("--dhcp-timeout", type=positive_float, default=30.0, metavar="S",
                        help="give up when no lease comes within S seconds (default 30)")
        sp.add_argument("--hostname", help="hostname sent to the DHCP server (option 12)")
        sp.add_argument("--dns", action="append", type=gateways, default=[], metavar="IP",
                        help="DNS server (repeatable, or comma-separated; default: the DHCP lease's)")
        sp.add_argument("--route", action="append", type=route, default=[], metavar="CIDR,via=IP",
                        help="a static route, e.g. 198.19.0.0/16,via=198.18.0.1 (repeatable)")
        sp.add_argument("--ipv4-gateway", action="append", type=gateways, default=[], metavar="IP",
                        help="gateway for off-link destinations (repeatable, or comma-separated)")
        sp.add_argument("--mac", type=mac, help="our MAC (default: random locally administered)")
        sp.add_argument("--mtu", type=_int_range(68, 65535, "MTU"), default=1500,
                        help="the TAP's MTU (default: up adopts the TAP's own and restores a given one on exit; "
                             "ping and run set 1500)")
        sp.add_argument("--pcap", metavar="FILE", help="record every frame to FILE (pcap)")
        sp.add_argument("--netns", metavar="NAME", help="open the TAP inside network namespace NAME")
        sp.add_argument("--no-offload", action="store_true",
                        help="plain TAP: no virtio header, TSO or checksum offload (default: on where supported)")
        sp.add_argument("--log-level", choices=LOG_LEVELS, default=argparse.SUPPRESS)

    u = sub.add_parser("up", help="run the stack on a TAP device until SIGINT/SIGTERM")
    device_flags(u)
    u.add_argument("--udp-echo", type=_int_range(1, 65535, "port"), metavar="PORT", action="append", default=[],
                   help="run a UDP echo service on PORT (repeatable)")
    u.add_argument("--tcp-echo", type=_int_range(1, 65535, "port"), metavar="PORT", action="append", default=[],
                   help="run a TCP echo service on PORT (repeatable)")
    u.add_argument("--tcp-discard", type=_int_range(1, 65535, "port"), metavar="PORT", action="append",
                   default=[], help="run a TCP discard service on PORT (repeatable)")
    u.add_argument("--http", type=_int_range(1, 65535, "port"), metavar="PORT", action="append", default=[],
                   help="run an HTTP/1.1 server on PORT: / = counters, /bytes/N = N bytes (repeatable; needs h11)")
    u.add_argument("--exit-on-link-loss", action="store_true",
                   help="exit with status 1 when the TAP is deleted (default: reopen it when it reappears)")
    u.add_argument("--txqueuelen", type=_int_range(0, 1_000_000, "txqueuelen"), default=None, metavar="N",
                   help="lengthen the kernel's queue toward us to N frames if shorter (0: leave it; default "
                        "4096); its drops are the summary's kernel tx_dropped")
    u.set_defaults(mtu=None)  # the TAP's MTU belongs to the link

    g = sub.add_parser("ping", help="our stack pings DEST, like ping(8)")
    g.add_argument("dest", metavar="DEST", help="an IPv4 address or a name (resolved through --dns/DHCP)")
    device_flags(g)
    cli_ping.add_flags(g, _int_range)

    from tcpip.run import RUN_HELP  # noqa: PLC0415 - `tcpip run`: its own module (tcpip.run)

    r = sub.add_parser("run", help="run a Python program (script, -m module, -c code) with tcpip as asyncio's "
                       "network", description=RUN_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    device_flags(r)
    r.add_argument("--uvloop", action="store_true", help="uvloop's event loop under the program (needs uvloop)")
    r.add_argument("program", nargs=argparse.REMAINDER, metavar="-- PROGRAM [ARGS]",
                   help="what python would take: SCRIPT, -m MODULE or -c CODE, then its arguments")
    p.commands = dict(sub.choices)
    return p


# -- running -------------------------------------------------------------------------------------
def _check_tun() -> None:
    from tcpip.netif import tap  # noqa: PLC0415

    path = tap.TUN_PATH
    if not os.path.exists(path):
        raise UsageError(f"{path} is missing: load the tun module (modprobe tun) or run the demo's hub mode")
    if not os.access(path, os.R_OK | os.W_OK):
        raise UsageError(with_cap_hint(f"no permission to open {path}"))


async def _open_device(args: argparse.Namespace) -> NetworkDevice:
    from tcpip.netif.tap import TXQUEUELEN, TapDevice, TapError  # noqa: PLC0415

    _check_tun()
    offload = False if getattr(args, "no_offload", False) else None
    try:
        if args.netns:
            from tcpip.netns import Namespace, NetnsError  # noqa: PLC0415

            try:
                dev: NetworkDevice = await Namespace(args.netns).open_tap(
                    args.tap, mac=args.mac, mtu=args.mtu, txqueuelen=getattr(args, "txqueuelen", None),
                    offload=offload)
            except NetnsError as e:
                raise UsageError(describe(e)) from None
        else:
            txq = getattr(args, "txqueuelen", None)
            dev = await TapDevice.open(args.tap, mac=args.mac, mtu=args.mtu, offload=offload,
                                       txqueuelen=TXQUEUELEN if txq is None else txq)
    except TapError as e:
        raise UsageError(describe(e)) from None
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.pcap:
        from tcpip.netif.pcap import PcapWriter  # noqa: PLC0415

        try:
            dev = PcapWriter(dev, args.pcap)
        except OSError as e:
            await dev.disconnect()
            raise UsageError(f"cannot write {args.pcap}: {e.strerror}") from None
    return dev


def _all_gateways(args: argparse.Namespace) -> list[IPv4Address]:
    return [g for group in args.ipv4_gateway for g in group]


def check_addressing(args: argparse.Namespace) -> None:
    """Before anything is opened: an address must come from somewhere."""
    if args.ipv4 is None and not args.dhcp:
        raise UsageError("give --ipv4 ADDR/PREFIX or --dhcp")


async def _connect(args: argparse.Namespace, dev: NetworkDevice) -> Stack:
    """The stack as the device flags say: static addresses and/or DHCP, DNS servers, static routes."""
    from tcpip.errors import DhcpTimeoutError  # noqa: PLC0415
    from tcpip.stack import Stack  # noqa: PLC0415

    dns = [a for group in args.dns for a in group]
    try:
        stack = await Stack.connect(dev, ipv4=args.ipv4, gateways=_all_gateways(args), dhcp=args.dhcp,
                                    dhcp_timeout=args.dhcp_timeout, hostname=args.hostname, dns=dns)
    except DhcpTimeoutError as e:
        raise UsageError(str(e)) from None
    try:
        for extra in args.ipv4_all[1:]:
            stack.add_address(extra)
        for net, via in args.route:
            stack.add_route(net.network, via=via)
    except (ValueError, TcpipError) as e:
        await stack.disconnect()
        raise UsageError(str(e)) from None
    return stack


def lease_line(stack: Stack) -> str:
    """The lease as `tcpip up --dhcp` prints it."""
    lease = stack.dhcp.lease if stack.dhcp is not None else None
    if lease is None:
        return "no lease"
    routers = ", ".join(str(IPv4Address(r)) for r in lease.routers) or "none"
    dns = ", ".join(str(IPv4Address(d)) for d in lease.dns_servers) or "none"
    return (f"{stack.interface} router {routers} dns {dns} server {IPv4Address(lease.server_id)} "
            f"lease {lease.lease_time:g}s (renew {lease.t1:g}s, rebind {lease.t2:g}s)")


def tcp_services(args: argparse.Namespace) -> list[tuple[str, int]]:
    """(service, port) for every TCP flag of `up`, checked before anything is opened."""
    services = ([("echo", p) for p in args.tcp_echo] + [("discard", p) for p in args.tcp_discard]
                + [("http", p) for p in args.http])
    seen: dict[int, str] = {}
    for name, port in services:
        if port in seen:
            raise UsageError(f"TCP port {port} is given to both {seen[port]} and {name}")
        seen[port] = name
    if args.http and importlib.util.find_spec("h11") is None:
        raise UsageError("--http needs the h11 library: pip install 'tcpip[http]'")
    return services


async def _start_tcp(stack: Stack, services: Sequence[tuple[str, int]], servers: list[Any]) -> None:
    """Start each service, appending its server to `servers` (so a failure part-way stops the others)."""
    from tcpip import apps  # noqa: PLC0415

    handlers: dict[str, apps.Handler] = {"echo": apps.tcp_echo, "discard": apps.tcp_discard}
    if any(name == "http" for name, _ in services):
        handlers["http"] = apps.http_handler(lambda: apps.status_page(stack))
    for name, port in services:
        try:
            servers.append(await stack.start_server(handlers[name], None, port))
        except OSError as e:
            raise UsageError(f"TCP {name} on port {port}: {e.strerror or e}") from None


async def _stop_tcp(servers: Sequence[Any], grace: float = 2.0) -> None:
    """Stop listening, FIN the open connections, and reset whatever is still there after `grace` s."""
    for s in servers:
        s.close()
        s.close_clients()
    try:
        await asyncio.wait_for(asyncio.gather(*(s.wait_closed() for s in servers)), grace)
    except TimeoutError:
        for s in servers:
            s.abort_clients()


async def cmd_up(args: argparse.Namespace) -> int:
    from tcpip.demo import format_counters  # noqa: PLC0415
    from tcpip.up import dump_state, kernel_line, serve  # noqa: PLC0415

    services = tcp_services(args)
    check_addressing(args)
    dev = await _open_device(args)
    stack = await _connect(args, dev)
    if stack.dhcp is not None:
        print(f"tcpip up: DHCP bound {lease_line(stack)}", flush=True)

        def on_dhcp(event: object) -> None:
            kind = type(event).__name__
            what = lease_line(stack) if kind != "Lost" else f"lost ({getattr(event, 'reason', '')})"
            print(f"tcpip up: DHCP {kind.lower()} {what}", flush=True)

        stack.dhcp.add_listener(on_dhcp)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, dump_state, stack, args.tap, sys.stderr)
    servers: list[Any] = []
    status = 0
    try:
        for port in args.udp_echo:
            await stack.udp_echo(port)
        await _start_tcp(stack, services, servers)
        gws = ", ".join(map(str, stack.ipv4.get_ipv4_gateways())) or "none"
        echo = f", UDP echo on {', '.join(map(str, args.udp_echo))}" if args.udp_echo else ""
        for name in ("echo", "discard", "http"):
            ports = [str(p) for n, p in services if n == name]
            if ports:
                echo += f", {'HTTP' if name == 'http' else 'TCP ' + name} on {', '.join(ports)}"
        addrs = " ".join(map(str, args.ipv4_all[1:]))
        print(f"tcpip up: {args.tap} {stack.mac} {stack.interface}{' ' + addrs if addrs else ''} "
              f"mtu {stack.ethif.mtu}, gateways {gws}{echo}; "
              "SIGINT/SIGTERM to stop, SIGUSR1 to show the state", flush=True)
        status = await serve(stack, args, stop)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
            loop.remove_signal_handler(sig)
        await _stop_tcp(servers)
        if stack.dhcp is not None:
            await stack.dhcp.release()  # DHCPRELEASE (waits at most 1 s for the server's MAC)
        stats = stack.stats()
        kernel = kernel_line(stack, args.tap)
        await stack.disconnect()
    print("tcpip down; counters:")
    for line in format_counters(stats):
        print(line)
    if kernel is not None:
        print(kernel)
    return status


async def cmd_ping(args: argparse.Namespace) -> int:
    check_addressing(args)
    dev = await _open_device(args)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()  # SIGINT/SIGTERM: stop at once and print the summary, as ping(8)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        stack = await cli_ping.unless_stopped(_connect(args, dev), stop)
        if stack is None:  # stopped while DHCP ran
            await dev.disconnect()
            return cli_ping.STOPPED
        async with stack:
            return await cli_ping.run(stack, args, stop)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def cmd_demo(args: argparse.Namespace) -> int:
    from tcpip import demo  # noqa: PLC0415

    try:
        rep = await demo.run(args.mode, pcap=args.pcap)
    except RuntimeError as e:
        raise UsageError(str(e)) from None
    print(f"demo {'passed' if rep.ok else 'FAILED'} ({rep.mode} peer, "
          f"{sum(ok for _, ok, _ in rep.steps)}/{len(rep.steps)} checks)")
    return 0 if rep.ok else 1


def _check_run_device(args: argparse.Namespace) -> None:
    """`tcpip run` opens the TAP in the program's first event loop, too late for a one-line error: check
    beforehand, without side effects, that the namespace can be entered and the TAP created."""
    from tcpip.netns import enter  # noqa: PLC0415

    with enter(args.netns) if args.netns else contextlib.nullcontext():  # NetnsError: absent, EPERM
        try:
            socket.if_nametoindex(args.tap)
            return  # it exists: attaching may need no capability (a TAP owned by us)
        except OSError:
            pass
    with open("/proc/self/status") as f:
        caps = next((int(line.split()[1], 16) for line in f if line.startswith("CapEff:")), 0)
    if not caps >> _CAP_NET_ADMIN & 1:
        raise UsageError(with_cap_hint(f"cannot create TAP {args.tap!r}: Operation not permitted"))


def cmd_run(args: argparse.Namespace) -> int:
    """`tcpip run` (tcpip.run): synchronous, since the program makes its own loops. Logging is left for
    the program to configure (only tcpip's logger gets --log-level)."""
    from tcpip.run import run_program  # noqa: PLC0415

    logging.getLogger("tcpip").setLevel(args.log_level.upper())
    try:
        _check_tun()
        _check_run_device(args)
        return run_program(args, _all_gateways(args))
    except (UsageError, ValueError, OSError) as e:
        print(error_line("run", describe(e)), file=sys.stderr)
        return 2


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when it is installed (the `tcpip[fast]` extra), unless TCPIP_LOOP=asyncio."""
    if os.environ.get("TCPIP_LOOP", "").lower() == "asyncio":
        return None
    try:
        import uvloop  # noqa: PLC0415
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_command(argv)
    if args.command == "run":
        return cmd_run(args)
    try:  # what Linux refuses, refused before anything is opened (status 2, one line)
        if getattr(args, "mac", None) is not None:
            check_mac(args.mac)
        if getattr(args, "ipv4", None) is not None and len(getattr(args, "ipv4_all", ())) <= 1:
            check_gateways(args.ipv4, _all_gateways(args))
    except ConfigurationError as e:
        parser.error(str(e))
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    cmd = {"demo": cmd_demo, "up": cmd_up, "ping": cmd_ping}[args.command]
    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            return runner.run(cmd(args))
    except UsageError as e:
        print(error_line(args.command, str(e)), file=sys.stderr)
        return 2
    except (OSError, TcpipError) as e:  # the environment refused (file, namespace, device): one line
        print(error_line(args.command, describe(e)), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
