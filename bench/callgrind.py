"""Deterministic figure: instructions per received ICMP echo under callgrind (tcpip and the floor)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

Log = Callable[[str], None]
HERE = Path(__file__).resolve().parent
_COLLECTED = re.compile(r"Collected : (\d+)")


def instructions(script: str, *args: object, timeout: float = 900) -> int:
    """Instructions callgrind counts for `python bench/<script> <args>`: PYTHONHASHSEED=0, no bytecode
    written, ASLR off, so the count is bit-identical run to run (every callgrind figure uses this)."""
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}
    with tempfile.TemporaryDirectory() as d:
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={d}/cg.out", sys.executable,
               str(HERE / script), *map(str, args)]
        if shutil.which("setarch"):
            cmd = ["setarch", "-R", *cmd]  # no ASLR: bit-identical counts
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False)
    m = _COLLECTED.search(p.stderr)
    if p.returncode != 0 or m is None:
        raise RuntimeError(f"callgrind failed (rc {p.returncode}): {p.stderr.strip()[-400:]}")
    return int(m.group(1))


def _instructions(n: int, impl: str) -> int:
    return instructions("callgrind_echo.py", n, impl, timeout=600)


def run(log: Log, n1: int = 100, n2: int = 1100) -> dict[str, Any]:
    if shutil.which("valgrind") is None:
        log("  callgrind skipped: valgrind is not installed")
        return {"skipped": "valgrind is not installed"}
    out: dict[str, Any] = {"n1": n1, "n2": n2}
    for impl in ("tcpip", "floor"):
        a, b = _instructions(n1, impl), _instructions(n2, impl)
        again = _instructions(n2, impl) if impl == "tcpip" else b
        out[impl] = {"instructions_per_echo": round((b - a) / (n2 - n1)), "n1_total": a, "n2_total": b,
                     "bit_identical": again == b}
        log(f"  callgrind {impl:6} {out[impl]['instructions_per_echo']:7} instructions per echo"
            + ("" if impl != "tcpip" else f"  (repeat bit-identical: {again == b})"))
    out["ratio"] = round(out["tcpip"]["instructions_per_echo"] / out["floor"]["instructions_per_echo"], 3)
    return out
