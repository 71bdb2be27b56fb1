"""`tcpip run`: run a Python program as `python` would, with a StackLoop as asyncio's default loop."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import runpy
import signal
import sys
import traceback
import types
from collections.abc import Sequence
from types import FrameType
from typing import Any

RUN_HELP = """\
Runs a Python program (a script, -m module or -c code, with its own sys.argv and __main__; PYTHONPATH is
honoured) in this process with tcpip's StackLoop installed as asyncio's default loop: an event-loop
policy set before the program starts, so asyncio.run(), asyncio.Runner() and asyncio.new_event_loop()
in the main thread make a loop whose create_connection, create_server, create_datagram_endpoint,
getaddrinfo and sock_connect go through a tcpip stack on the TAP device. Each such loop opens the TAP
when it is created and releases it when it closes. The program's exit status is returned; SIGTERM ends it
(status 143) and frees the TAP. Not covered: loops made in other threads (they get asyncio's default loop),
child processes, and code that uses kernel sockets itself (socket.socket, loop.add_reader). Importing
tcpip never changes the loop of a program that did not ask for it: only `tcpip run` installs the policy.

  tcpip run --tap tap0 --ipv4 198.18.0.2/24 -- -m aiohttp.web -H 0.0.0.0 -P 8080 mymodule:init_app
  tcpip run --tap tap0 --ipv4 198.18.0.2/24 --ipv4-gateway 198.18.0.1 -- client.py --url http://198.18.0.1/
"""


def split_program(argv: Sequence[str]) -> tuple[str, str, list[str]]:
    """("module" | "script" | "code", target, its arguments) from what follows `--`; ValueError if none."""
    rest = list(argv)
    if rest and rest[0] == "--":
        rest = rest[1:]
    if not rest:
        raise ValueError("nothing to run: tcpip run [flags] -- (SCRIPT | -m MODULE | -c CODE) [ARGS...]")
    head = rest.pop(0)
    for flag, kind in (("-m", "module"), ("-c", "code")):
        if head == flag:
            if not rest:
                raise ValueError(f"argument expected for {flag}")
            return kind, rest[0], rest[1:]
        if head.startswith(flag):
            return kind, head[2:], rest
    if head.startswith("-") and head != "-":
        raise ValueError(f"unsupported python option {head!r}: tcpip run takes SCRIPT, -m MODULE or -c CODE")
    return "script", head, rest


def _status(code: Any) -> int:
    """The exit status Python gives for SystemExit(code)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _terminate(signum: int, frame: FrameType | None) -> None:
    # Unwinds the program like sys.exit(): asyncio.run / Runner close the loop, and the loop the stack.
    raise SystemExit(128 + signum)


def execute(kind: str, target: str, args: list[str]) -> int:
    """Run the program in this process; its exit status (an uncaught exception prints its traceback, 1)."""
    saved_argv, saved_path0 = sys.argv, sys.path[0]
    try:
        if kind == "module":
            sys.argv = [target, *args]
            sys.path[0] = os.getcwd()
            runpy.run_module(target, run_name="__main__", alter_sys=True)
        elif kind == "script":
            sys.argv = [target, *args]
            sys.path[0] = os.path.dirname(os.path.abspath(target))
            runpy.run_path(target, run_name="__main__")
        else:
            sys.argv = ["-c", *args]
            sys.path[0] = ""
            main = types.ModuleType("__main__")
            saved_main = sys.modules["__main__"]
            sys.modules["__main__"] = main
            try:
                exec(compile(target, "<string>", "exec"), main.__dict__)  # noqa: S102 - python -c
            finally:
                sys.modules["__main__"] = saved_main
    except SystemExit as e:
        return _status(e.code)
    except KeyboardInterrupt:
        return 130
    except BaseException:
        traceback.print_exc()
        return 1
    finally:
        sys.argv, sys.path[0] = saved_argv, saved_path0
    return 0


def run_program(args: argparse.Namespace, gateways: Sequence[Any]) -> int:
    """`tcpip run`: install the policy for the stack the flags describe, run the program, restore."""
    from tcpip.loop import StackLoopPolicy, loop_factory  # noqa: PLC0415 - keep the CLI's start light

    kind, target, rest = split_program(args.program)
    if getattr(args, "uvloop", False) and importlib.util.find_spec("uvloop") is None:
        raise ValueError("--uvloop: uvloop is not installed (pip install 'tcpip[fast]')")
    if kind == "script" and not os.path.exists(target):
        raise ValueError(f"can't open file {target!r}: no such file")
    factory = loop_factory(tap=args.tap, netns=args.netns, ipv4=args.ipv4, gateways=gateways, mac=args.mac,
                           mtu=args.mtu, pcap=args.pcap, uvloop=getattr(args, "uvloop", False))
    saved_policy = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(StackLoopPolicy(factory))
    saved_term = signal.signal(signal.SIGTERM, _terminate)
    try:
        return execute(kind, target, rest)
    finally:
        signal.signal(signal.SIGTERM, saved_term)
        asyncio.set_event_loop_policy(saved_policy)
        sys.stdout.flush()


__all__ = ["RUN_HELP", "execute", "run_program", "split_program"]
