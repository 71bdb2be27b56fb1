"""README's quick start and the seed API example run as written and print what they promise."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(code_or_file: list[str]) -> str:
    r = subprocess.run([sys.executable, *code_or_file], cwd=ROOT, capture_output=True, text=True, timeout=60,
                       check=False, env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_readme_quick_start_runs() -> None:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick start\s+```python\n(.*?)```", text, re.S)
    assert block is not None
    out = _run(["-c", block.group(1)])
    lines = out.splitlines()
    rtts = eval(lines[0])
    assert len(rtts) == 3
    assert all(isinstance(r, float) and r >= 0 for r in rtts)
    assert "echo: b'hello' from ('198.18.0.2', 7)" in out
    assert "'requests_sent': 1" in lines[-1]


def test_seed_api_example_runs() -> None:
    out = _run(["examples/seed_api.py"])
    assert "B received b'hello, seed API' from 198.18.0.1 to 198.18.0.2 (UDP ports (40000, 9))" in out
    assert "mtu towards B: 1500" in out


def test_readme_tcp_example_runs() -> None:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## TCP: asyncio's streams and protocols.*?```python\n(.*?)```", text, re.S)
    assert block is not None
    out = _run(["-c", block.group(1)])
    lines = out.splitlines()
    assert lines[0] == "b'HELLO\\n'"
    assert lines[1].startswith("1 [")  # one active open; b's table lists what is left (TIME_WAIT or none)
