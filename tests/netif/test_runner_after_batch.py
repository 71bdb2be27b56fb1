"""Runner's after-batch hooks with a pending test: a drain calls a hook only when its test says it has work
(the TCP driver's: layer events; UDP endpoints': queued callbacks), in registration order, every hook with
work; hooks without a test run in every drain."""

from __future__ import annotations

import random

from tcpip.core.config import InterfaceConfig
from tcpip.core.interface import Interface
from tcpip.netif import Hub
from tcpip.netif.clock import VirtualClock
from tcpip.runner import Runner


def runner() -> Runner:
    hub = Hub()
    core = Interface(InterfaceConfig(address=0xC6120002, netmask=0xFFFFFF00), now=0.0, rng=random.Random(1))
    return Runner(hub.port(), core, VirtualClock())


def test_a_hook_runs_only_in_drains_where_it_has_work() -> None:
    r = runner()
    calls: list[str] = []
    work: list[int] = []
    r.add_after_batch(lambda: calls.append("a"), work.__len__)
    r.flush()
    assert calls == []
    work.append(1)
    r.flush()
    r.flush()
    assert calls == ["a", "a"]  # the hook did not consume the work: it still has some
    work.clear()
    r.flush()
    assert calls == ["a", "a"]


def test_several_hooks_each_run_when_it_has_work_in_order() -> None:
    r = runner()
    calls: list[str] = []
    a: list[int] = []
    b: list[int] = []
    r.add_after_batch(lambda: calls.append("a"), a.__len__)
    r.add_after_batch(lambda: calls.append("b"), b.__len__)
    r.add_after_batch(lambda: calls.append("always"))
    r.flush()
    assert calls == ["always"]
    b.append(1)
    r.flush()
    assert calls == ["always", "b", "always"]
    a.append(1)
    r.flush()
    assert calls == ["always", "b", "always", "a", "b", "always"]


def test_removed_hooks_no_longer_run() -> None:
    r = runner()
    calls: list[str] = []
    work = [1]

    def hook() -> None:
        calls.append("x")

    r.add_after_batch(hook, work.__len__)
    r.flush()
    r.remove_after_batch(hook)
    r.flush()
    assert calls == ["x"]
