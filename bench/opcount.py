"""The benches' bytecode counter: a sys.settrace hook counting Python bytecodes and calls by function
("file:function"), a deterministic measure of interpreter work (not a timing)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

Tracer = Callable[[FrameType, str, Any], Any]


def tracer() -> tuple[Tracer, Counter[str], Counter[str]]:
    """A trace function for sys.settrace and the (bytecodes, calls) counters it fills."""
    ops: Counter[str] = Counter()
    calls: Counter[str] = Counter()

    def trace(frame: FrameType, event: str, _arg: Any) -> Any:
        if event == "call":
            frame.f_trace_opcodes = True
            calls[f"{Path(frame.f_code.co_filename).name}:{frame.f_code.co_name}"] += 1
        elif event == "opcode":
            ops[f"{Path(frame.f_code.co_filename).name}:{frame.f_code.co_name}"] += 1
        return trace

    return trace, ops, calls
