"""bench.e2e's PyTCP row without PyTCP: where it looks for PyTCP's Python, and the ratios the report draws
from a measured PyTCP row (beside the quoted figures; its losses are its own)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import e2e, report  # noqa: E402 - needs the checkout's root on the path


def test_pytcp_root_needs_python_and_tun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TCPIP_BENCH_PYTCP", str(tmp_path))
    assert e2e.pytcp_root() is None  # empty root
    py = tmp_path / e2e.PYTCP_PYTHON.lstrip("/")
    py.parent.mkdir(parents=True)
    py.write_text("#!/bin/sh\n")
    py.chmod(0o755)
    assert e2e.pytcp_root() is None  # no /dev/net/tun node in it
    (tmp_path / "dev/net").mkdir(parents=True)
    (tmp_path / "dev/net/tun").write_text("")
    assert e2e.pytcp_root() == str(tmp_path)
    monkeypatch.setenv("TCPIP_BENCH_PYTCP", "off")
    assert e2e.pytcp_root() is None


def test_pytcp_cmd_copies_the_server_into_the_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(e2e, "pytcp_root", lambda: str(tmp_path))
    (tmp_path / "tmp").mkdir()
    cmd = e2e._pytcp_cmd(12.0)
    script = f"/tmp/tcpip-bench-pytcp-server-{os.getpid()}.py"
    assert cmd[:5] == ["chroot", str(tmp_path), e2e.PYTCP_PYTHON, "-O", script]
    assert cmd[5:] == [e2e.MAC, "198.18.0.2/24", "12.0"]
    copied = (tmp_path / cmd[4].lstrip("/")).read_bytes()
    assert copied == (ROOT / "bench" / "pytcp_server.py").read_bytes()
    e2e._pytcp_cleanup()
    assert not (tmp_path / script.lstrip("/")).exists()


def _run(per_s: float, cpu: float, lost: int = 0) -> dict[str, object]:
    return {"per_s": per_s, "cpu_us_per_echo": cpu, "lost_total": lost}


def test_report_ratios_from_a_measured_pytcp_row() -> None:
    runs = {label: {"ping": _run(10000, 50), "udp": _run(9000, 60)} for label in e2e.SPECS}
    runs["pytcp"] = {"ping": _run(2000, 500, lost=7), "udp": _run(1800, 540, lost=2)}
    rows = {r.what: r for r in report.ratios({"e2e": {"runs": runs, "quoted": e2e.QUOTED}})}
    r = rows["CPU per echo: PyTCP 3.0.9 (measured) / tcpip, ping"]
    assert (r.value, r.target, r.met) == (10.0, ">= 10", True)
    r = rows["CPU per echo: PyTCP 3.0.9 (measured) / tcpip, udp"]
    assert (r.value, r.met) == (9.0, False)
    assert rows["CPU per echo: PyTCP 3.0.9 (measured) / tcpip+uvloop, udp"].target == ""
    assert rows["TAP ping rate: tcpip / PyTCP 3.0.9"].value == 5.0
    assert rows["CPU per echo: PyTCP 3.0.9 (python -O) / tcpip, ping"].value == round(602 / 50, 3)
    lost = rows["datagrams/echoes lost, all runs"]
    assert (lost.value, lost.met) == (0.0, True)  # PyTCP's 9 lost are in its own row, not counted as ours


def test_report_without_pytcp_has_no_measured_rows() -> None:
    runs = {label: {"ping": _run(10000, 50), "udp": _run(9000, 60)} for label in e2e.SPECS if label != "pytcp"}
    whats = [r.what for r in report.ratios({"e2e": {"runs": runs, "quoted": e2e.QUOTED}})]
    assert not [w for w in whats if "measured" in w]
    assert "CPU per echo: PyTCP 3.0.9 (python -O) / tcpip, udp" in whats
