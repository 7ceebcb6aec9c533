"""`warning contacts import FILE`: report, exit status, progress (which store it uses: tests/test_store_owner.py)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import redis as syncredis

from tests.contacts.helpers import EN_HEADER, ROOT, ZH_HEADER, csv_bytes, xlsx_bytes
from warning.cli import main
from warning.contacts_cli import ProgressPrinter
from warning.redis_server import PrivateRedis

ROWS = [["张伟", "13800138000", "党政干部", "510722100", "", "", "", "", ""],
        ["李娜", "13900000001", "村监测员", "510722100001", "", "", "", "", "13800138000"]]


@pytest.fixture
def config(tmp_path: Path, redis_server: PrivateRedis, monkeypatch: pytest.MonkeyPatch) -> str:
    """A config file naming the demo region tree; Redis comes from WARNING_REDIS_URL."""
    path = tmp_path / "c.toml"
    path.write_text(f'[registry]\nregions_csv = "{ROOT / "config" / "demo_regions.csv"}"\n', encoding="utf-8")
    monkeypatch.setenv("WARNING_REDIS_URL", redis_server.url)
    client = syncredis.Redis.from_url(redis_server.url)
    client.flushdb()
    client.close()
    return str(path)


def _count(url: str) -> int:
    client = syncredis.Redis.from_url(url)
    try:
        return int(client.zcard("ew:contacts:ids"))
    finally:
        client.close()


def test_import_prints_report_and_exits_0(tmp_path: Path, config: str, redis_server: PrivateRedis,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "people.csv"
    path.write_bytes(csv_bytes([ZH_HEADER, *ROWS], "gb18030"))
    assert main(["contacts", "import", str(path), "--config", config]) == 0
    out = capsys.readouterr()
    assert "新增 accepted: 2" in out.out and "拒绝 rejected: 0" in out.out
    assert "2/2" in out.err  # progress on stderr
    assert _count(redis_server.url) == 2
    assert main(["contacts", "import", str(path), "--config", config]) == 0
    assert "更新 updated: 2 (未变 unchanged: 2)" in capsys.readouterr().out
    assert _count(redis_server.url) == 2


def test_rejected_rows_are_listed_and_exit_1(tmp_path: Path, config: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "people.xlsx"
    path.write_bytes(xlsx_bytes([EN_HEADER, *ROWS, ["坏", "12345", "cadre", "510722", None, None, None, None, None]]))
    assert main(["contacts", "import", str(path), "--config", config]) == 1
    out = capsys.readouterr().out
    assert "新增 accepted: 2" in out
    assert "       4  手机号码无效 invalid phone number: 12345" in out


@pytest.mark.parametrize(("content", "message"), [(b"name,phone\n", "缺少必填列"), (b"\xd0\xcf\x11\xe0xxxx", ".xls")])
def test_unusable_file_exits_2(tmp_path: Path, config: str, capsys: pytest.CaptureFixture[str], content: bytes,
                               message: str) -> None:
    path = tmp_path / "bad.xls"
    path.write_bytes(content)
    assert main(["contacts", "import", str(path), "--config", config]) == 2
    assert message in capsys.readouterr().err


def test_missing_file_exits_2(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["contacts", "import", "/nonexistent/people.csv", "--config", config]) == 2
    assert "no such file" in capsys.readouterr().err


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_and_lines_otherwise() -> None:
    tty = _Tty()
    bar = ProgressPrinter(tty)
    bar("check", 5000, None)
    bar("write", 500, 1000)
    bar("write", 1000, 1000)
    assert "\r写入 writing [" + "#" * 15 + "." * 15 + "] 500/1000" in tty.getvalue()
    assert tty.getvalue().endswith("] 1000/1000\n")
    plain = io.StringIO()
    lines = ProgressPrinter(plain)
    for done in range(1000, 25_001, 1000):
        lines("write", done, 25_000)
    assert plain.getvalue().splitlines() == ["写入 writing: 10000/25000 rows", "写入 writing: 20000/25000 rows",
                                             "写入 writing: 25000/25000 rows"]


def test_cli_is_registered(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["contacts", "import", "--help"])
    assert "Exit status: 0 every row imported" in capsys.readouterr().out


