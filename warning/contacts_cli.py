"""`warning contacts import FILE`: import a CSV/XLSX file into the registry and print the row report."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import IO, TextIO

import redis.asyncio as aioredis

from contacts.importer import ImportReport, import_contacts, row_ranges
from contacts.reference import Reference
from contacts.store import RedisRegistry
from contacts.tabular import FileProblem, sniff_format
from warning.cli import add_config_arg, command_store, settings_from_args
from warning.clock import SystemClock
from warning.settings import Settings

#: exit statuses: every row imported / some rows refused / the file or the configuration unusable /
#: the store failed midway (the report says which rows were written)
EXIT_OK, EXIT_REJECTED, EXIT_UNUSABLE, EXIT_INTERRUPTED = 0, 1, 2, 3
LINE_EVERY_ROWS = 10_000
BAR_WIDTH = 30


class ProgressPrinter:
    """A progress bar on a terminal, a line every LINE_EVERY_ROWS rows otherwise."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self._last_line = 0

    def __call__(self, phase: str, done: int, total: int | None) -> None:
        label = "检查 checking" if phase == "check" else "写入 writing"
        if self.tty:
            if total:
                filled = BAR_WIDTH * done // max(total, 1)
                bar = "#" * filled + "." * (BAR_WIDTH - filled)
                self.out.write(f"\r{label} [{bar}] {done}/{total}")
            else:
                self.out.write(f"\r{label} {done} rows")
            if total and done >= total:
                self.out.write("\n")
            self.out.flush()
        elif done - self._last_line >= LINE_EVERY_ROWS or (total and done >= total):
            self._last_line = done
            self.out.write(f"{label}: {done}{f'/{total}' if total else ''} rows\n")
            self.out.flush()


def print_report(report: ImportReport, out: TextIO) -> None:
    """The summary, then a table of refused rows and one of remarks."""
    out.write(f"新增 accepted: {report.accepted}  更新 updated: {report.updated} (未变 unchanged: {report.unchanged})"
              f"  拒绝 rejected: {len(report.rejected)}\n")
    for title, problems in (("拒绝的行 rejected rows", report.rejected), ("提示 warnings", report.warnings)):
        if not problems:
            continue
        out.write(f"\n{title}\n{'行 row':>8}  原因 reason\n")
        out.writelines(f"{p.row:>8}  {p.message}\n" for p in sorted(problems, key=lambda p: p.row))
    if report.interrupted is not None:
        print_interruption(report, out)


def print_interruption(report: ImportReport, out: TextIO) -> None:
    """Which rows a store failure left written, not written, or unknown; and what to do."""
    out.write(f"\n导入中途失败，存储不可用 import stopped midway, the store failed: {report.interrupted}\n")
    for title, rows in (("已写入的行 rows written", report.written), ("未写入的行 rows not written", report.not_written),
                        ("不确定是否写入的行 rows perhaps written (the connection broke)", report.unconfirmed),
                        ("上级未关联的行 rows written without their supervisor", report.supervisor_not_linked)):
        if rows:
            runs = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in row_ranges(rows))
            out.write(f"{title} ({len(rows)}): {runs}\n")
    out.write("存储恢复后重新导入同一文件（按手机号匹配，不会重复） Import the same file again once the store is back: "
              "rows are matched by phone, none is doubled.\n")


async def _import(url: str, settings: Settings, stream: IO[bytes], fmt: str, ref: Reference,
                  progress: ProgressPrinter) -> ImportReport:
    client = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        batch = int(settings.section("registry").get("import_batch_rows", 1000))
        return await import_contacts(stream, fmt, RedisRegistry(client), ref, now=SystemClock().now(),
                                     batch_rows=batch, progress=progress)
    finally:
        await client.aclose()


def run_import(args: argparse.Namespace) -> int:
    """Import the file named on the command line; the exit status says whether rows were refused."""
    from warning.web.contacts_api import build_reference

    settings = settings_from_args(args)
    ref = build_reference(settings)
    path = Path(args.file)
    with path.open("rb") as stream:
        try:
            fmt = sniff_format(stream.read(8), path.name)
            stream.seek(0)
            url = command_store(settings)  # the service's own store, never a throwaway one
            report = asyncio.run(_import(url, settings, stream, fmt, ref, ProgressPrinter(sys.stderr)))
        except FileProblem as exc:
            print(f"文件无法导入 file cannot be imported: {exc}", file=sys.stderr)
            return EXIT_UNUSABLE
    print_report(report, sys.stdout)
    if report.interrupted is not None:
        return EXIT_INTERRUPTED
    return EXIT_REJECTED if report.rejected else EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`warning contacts import FILE [--config FILE]`."""
    contacts = sub.add_parser("contacts", help="the contact registry")
    commands = contacts.add_subparsers(dest="contacts_command", required=True)
    p = commands.add_parser("import", help="import contacts from a CSV or XLSX file (upsert by phone)",
                            description="Exit status: 0 every row imported, 1 some rows refused (listed), "
                                        "2 the file or the configuration cannot be used, 3 the store failed "
                                        "midway (the rows written and not written are listed).")
    p.add_argument("file", metavar="FILE", help="CSV (UTF-8 or GB18030) or XLSX, header in row 1")
    add_config_arg(p)
    p.set_defaults(func=run_import)
