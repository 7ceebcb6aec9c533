"""Shared test data for the registry tests: reference data and file builders."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from contacts.positions import PositionBook
from contacts.reference import Reference, RoleBook
from contacts.regions import RegionTree
from warning.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent.parent
NOW = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)
EN_HEADER = ["name", "phone", "role", "region", "lat", "lon", "channels", "lang", "supervisor_phone"]
ZH_HEADER = ["姓名", "手机号码", "角色", "行政区划代码", "纬度", "经度", "渠道", "语言", "上级手机号码"]


def reference(with_tree: bool = True) -> Reference:
    """The default roles and positions, and the demo county's region tree."""
    settings = load_settings(None, env={})
    tree = RegionTree.from_csv(ROOT / "config" / "demo_regions.csv") if with_tree else RegionTree()
    roles = RoleBook.from_config(settings.section("roles"))
    return Reference(roles, tree, positions=PositionBook.from_config(settings.section("positions"), roles.keys()))


def csv_bytes(rows: Sequence[Sequence[str]], encoding: str = "utf-8") -> bytes:
    """Rows as CSV text in an encoding (utf-8-sig writes the BOM)."""
    text = "\r\n".join(",".join(rows_cell(c) for c in row) for row in rows) + "\r\n"
    return text.encode(encoding)


def rows_cell(cell: str) -> str:
    return f'"{cell}"' if "," in cell else cell


def xlsx_bytes(rows: Sequence[Sequence[object]]) -> bytes:
    """Rows as an XLSX workbook (cells keep their Python types, as Excel would store numbers)."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(list(row))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
