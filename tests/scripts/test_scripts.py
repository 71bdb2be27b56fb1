"""Every TCP script in tests/scripts/ (*.tcp) run against the core on virtual time, plus the runner's own
failure reports (a test harness that cannot fail proves nothing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tcpip.testing.script_format import ScriptError, parse
from tcpip.testing.scripts import ScriptRunner, main, run_file

HERE = Path(__file__).parent
SCRIPTS = sorted(HERE.glob("*.tcp"))

HANDSHAKE = """\
0     listen
+0    < S 0:0(0) win 8000 <mss 1000>
+0    > S. 0:0(0) ack 1 <mss 1460>
"""


def test_at_least_forty_scripts() -> None:
    assert len(SCRIPTS) >= 40


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_script(path: Path) -> None:
    run_file(path)


def test_mismatch_shows_expected_and_actual_side_by_side() -> None:
    with pytest.raises(ScriptError) as e:
        ScriptRunner().run(HANDSHAKE.replace("ack 1 <mss 1460>", "ack 2 <mss 1460>"), "t")
    lines = str(e.value).splitlines()
    assert lines[0] == "t:3: +0    > S. 0:0(0) ack 2 <mss 1460>"
    assert lines[1] == "expected: > S. 0:0(0) ack 2 <mss 1460>"
    assert lines[2] == "actual:   > S. 0:0(0) ack 1 win 65535 <mss 1460>"
    assert lines[3] == "(ack)"


def test_unexpected_segment_fails() -> None:
    with pytest.raises(ScriptError, match=r"at the end\nunexpected segment at 0\.000: > S\. 0:0"):
        ScriptRunner().run(HANDSHAKE.rsplit("\n", 2)[0], "t")


def test_missing_segment_fails() -> None:
    with pytest.raises(ScriptError, match="nothing sent by"):
        ScriptRunner().run(HANDSHAKE + "+0 > . 1:1(0) ack 1\n", "t")


def test_wrong_time_fails() -> None:
    with pytest.raises(ScriptError, match=r"sent at 1.000, expected at 1.500"):
        ScriptRunner().run(HANDSHAKE + "+1.5 > S. 0:0(0) ack 1\n", "t")


def test_option_and_payload_checks() -> None:
    with pytest.raises(ScriptError, match=r"\(options\)"):
        ScriptRunner().run(HANDSHAKE.replace("<mss 1460>", "<mss 1460,sackOK>"), "t")
    with pytest.raises(ScriptError, match="flags"):
        ScriptRunner().run(HANDSHAKE.replace("> S.", "> S"), "t")


def test_expectations_fail() -> None:
    for line, msg in (("+0 expect stat PassiveOpens 1", "expected == 1, have 0"),
                      ("+0 expect state ESTABLISHED", "expected ESTABLISHED, have NONE"),
                      ("+0 expect event ACCEPT", "no ACCEPT event"),
                      ("+0 accept", "no established connection"),
                      ("+0 expect stat NoSuchCounter 1", "no counter")):
        with pytest.raises(ScriptError, match=msg):
            ScriptRunner().run(HANDSHAKE + line + "\n", "t")


def test_parse_errors_name_the_line() -> None:
    for bad in ("+0 < S 0:1(0)", "+0 < Q 0:0(0)", "+0 < S 0:0(0) <bogus 1>", "+0 < S 0:0(0) win"):
        with pytest.raises(ScriptError, match="line 2"):
            parse("0 listen\n" + bad)


def test_main_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.tcp"
    good.write_text(HANDSHAKE)
    bad = tmp_path / "bad.tcp"
    bad.write_text(HANDSHAKE.replace("ack 1", "ack 9"))
    assert main([str(good)]) == 0
    assert main([str(good), str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"ok    {good}" in out
    assert "FAIL  bad.tcp:3" in out
