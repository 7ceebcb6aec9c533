"""`warning cap check FILE` in-process: JSON and exit 0, or every error and exit 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from warning.cli import main

DATA = Path(__file__).resolve().parent.parent / "data" / "cap"


def test_good_file_prints_the_normalised_warning(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cap", "check", str(DATA / "cma_rainstorm_red.xml")]) == 0
    out = capsys.readouterr().out
    doc = json.loads(out)
    assert doc["level"] == "red" and doc["event_type"] == "rainstorm"
    assert doc["infos"][0]["severity"] == "Extreme" and doc["infos"][0]["areas"][0]["region_codes"] == ["510726"]
    assert "北川羌族自治县" in out  # not \u-escaped


def test_bad_file_prints_every_problem_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cap", "check", str(DATA / "bad_missing_required.xml")]) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 8
    assert lines[0].startswith("alert/identifier: ")
    assert lines[-1].startswith("alert/info[2]/area[1]/geocode[1]/value: ")
    assert "8 problem(s)" in captured.err


def test_hostile_file_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cap", "check", str(DATA / "hostile_xxe.xml")]) == 1
    assert "refused unsafe XML" in capsys.readouterr().out


def test_size_cap_is_applied_without_reading_the_whole_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    big = tmp_path / "big.xml"
    big.write_bytes((DATA / "cma_rainstorm_red.xml").read_bytes())
    assert main(["cap", "check", "--max-bytes", "100", str(big)]) == 1
    assert "document too large: more than 100 bytes" in capsys.readouterr().out


def test_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cap", "check", str(tmp_path / "nope.xml")]) == 2
    assert "no such file" in capsys.readouterr().err
