"""Every exception the stack raises is a TcpipError (or an OSError where asyncio demands one), and the
asyncio facades only compose: no import cycle between the Stack and the UDP facade."""

from __future__ import annotations

import ast
import errno
import random
from pathlib import Path

import pytest
from testlib import Recorder

import tcpip
from tcpip import InterfaceConfig, PortInUseError, Stack, TcpipError
from tcpip.core.interface import Interface
from tcpip.core.udp import UdpLayer
from tcpip.netif import Hub

PKG = Path(tcpip.__file__).parent


def test_port_in_use_is_a_tcpip_error_and_an_eaddrinuse_oserror() -> None:
    layer = UdpLayer(Interface(InterfaceConfig(), now=0.0, rng=random.Random(1)), random.Random(2))
    layer.bind(5000, 0, lambda *a: None)
    with pytest.raises(PortInUseError) as info:
        layer.bind(5000, 0, lambda *a: None)
    assert isinstance(info.value, TcpipError)
    assert isinstance(info.value, OSError)
    assert info.value.errno == errno.EADDRINUSE
    assert info.value.port == 5000


async def test_endpoint_on_a_taken_port_raises_eaddrinuse() -> None:
    async with await Stack.connect(Hub().port(), ipv4="198.18.0.1/24") as a:
        await a.create_datagram_endpoint(Recorder, local_addr=("0.0.0.0", 7000))
        with pytest.raises(OSError, match="address already in use") as info:
            await a.create_datagram_endpoint(Recorder, local_addr=("0.0.0.0", 7000))
        assert info.value.errno == errno.EADDRINUSE


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


@pytest.mark.parametrize("module", ["aio/udp.py", "udp.py", "runner.py", "ethif.py", "ipv4.py"])
def test_facades_never_import_the_stack(module: str) -> None:
    """Stack composes the facades; none of them reaches back for it (not even under TYPE_CHECKING)."""
    assert "tcpip.stack" not in _imports(PKG / module)


def test_the_core_imports_no_facade() -> None:
    for path in (PKG / "core").glob("*.py"):
        bad = {m for m in _imports(path) if m.startswith("tcpip.") and not m.startswith(("tcpip.core", "tcpip.wire",
                                                                                        "tcpip.errors"))}
        assert bad == set(), path.name


def test_old_import_paths_still_work() -> None:
    from tcpip.aio.udp import UdpTransport as new
    from tcpip.core.interface import Accepted, Interface
    from tcpip.core.udp import PortInUse
    from tcpip.udp import UdpTransport as old

    assert old is new
    assert PortInUse is PortInUseError
    assert Interface.__name__ == "Host"
    assert Accepted._fields == ("src", "dst", "proto", "payload", "packet", "broadcast")


def test_no_facade_drains_the_runner_by_hand() -> None:
    """Output leaves through the runner's own drains (after input, timers, kick); facades kick, and the
    zero-copy sends call `transmit()`. Nothing outside the runner calls its `flush()`."""
    offenders = [p.relative_to(PKG).as_posix() for p in PKG.rglob("*.py")
                 if p.name != "runner.py" and "runner.flush" in p.read_text()]
    assert offenders == []
