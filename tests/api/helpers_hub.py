"""Helpers for tests that run stacks on an in-memory Hub."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def settle(cond: Callable[[], bool] | None = None, rounds: int = 200) -> None:
    """Let the loop deliver hub frames: until `cond()` holds, or `rounds` iterations."""
    for _ in range(rounds):
        if cond is not None and cond():
            return
        await asyncio.sleep(0)
    if cond is not None:
        assert cond(), "condition not reached"
