"""Hazard-site import from CSV/XLSX: every row checked first, then the valid ones written; a refused row changes
nothing. Rows update the site named by `id`, else the site already watching the row's station, else add a site."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

from contacts.fields import FieldErrors, parse_site
from contacts.model import HazardSite
from contacts.phone import InvalidPhoneNumber, normalize_e164
from contacts.reference import Reference
from contacts.store import RedisRegistry
from contacts.tabular import FileProblem, iter_rows

#: the columns of a site sheet, each with the headers that name it
COLUMNS: dict[str, tuple[str, ...]] = {
    "id": ("id", "编号"),
    "name": ("name", "名称", "隐患点名称", "站名"),
    "kind": ("kind", "类型", "隐患点类型"),
    "region": ("region", "region_code", "行政区划代码", "区划代码"),
    "lat": ("lat", "latitude", "纬度"),
    "lon": ("lon", "lng", "longitude", "经度"),
    "contacts": ("contacts", "责任人", "责任人手机号码", "责任人电话"),
    "station": ("station", "测站编码", "站码", "测站代码"),
    "warning_level_m": ("warning_level_m", "警戒水位", "警戒水位米"),
    "guarantee_level_m": ("guarantee_level_m", "保证水位", "保证水位米"),
    "downstream": ("downstream", "下游村", "下游村代码", "下游影响村"),
}
REQUIRED = ("name", "kind", "region")
#: rainfall columns: `rain_prepare_mm_1h` / `准备转移雨量1h`, `rain_evacuate_mm_3h` / `立即转移雨量3小时`
_RAIN = re.compile(r"^(rainpreparemm|准备转移雨量|rainevacuatemm|立即转移雨量)([1-9][0-9]*)(h|min|小时|分钟)$")
_UNIT = {"h": "h", "小时": "h", "min": "min", "分钟": "min"}
_CONTACT_ID = re.compile(r"^c[0-9a-f]{12}$")
_SPLIT = re.compile(r"[,，;；、|/\s]+")
#: a sheet of sites is small (a county has hundreds); anything far larger is a mistake
MAX_ROWS = 5000


@dataclass
class SiteImportReport:
    """What an import did: sites added, sites updated, rows refused (spreadsheet row number, reason)."""

    accepted: int = 0
    updated: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "updated": self.updated,
                "rejected": [{"row": r, "error": e} for r, e in sorted(self.rejected)]}


def _fold(header: str) -> str:
    return re.sub(r"[\s_\-*＊\ufeff()（）]", "", str(header)).casefold()


_LOOKUP = {_fold(alias): name for name, aliases in COLUMNS.items() for alias in aliases}


def map_columns(cells: Sequence[str]) -> dict[str, int]:
    """Column index of each field (rainfall columns as `rain_prepare_mm:1h`); FileProblem when unusable."""
    found: dict[str, int] = {}
    for i, cell in enumerate(cells):
        folded = _fold(cell)
        if not folded:
            continue
        rain = _RAIN.match(folded)
        name = (f"{'rain_prepare_mm' if rain.group(1) in ('rainpreparemm', '准备转移雨量') else 'rain_evacuate_mm'}:"
                f"{rain.group(2)}{_UNIT[rain.group(3)]}") if rain else _LOOKUP.get(folded)
        if name is None:
            raise FileProblem(f"第 1 行有未识别的列 unknown column in the header: {str(cell).strip()[:40]}")
        if name in found:
            raise FileProblem(f"第 1 行有重复的列 the header names a column twice: {str(cell).strip()[:40]}")
        found[name] = i
    missing = [f for f in REQUIRED if f not in found]
    if missing:
        raise FileProblem(f"缺少必填列 missing required columns: {', '.join(missing)}")
    return found


def row_fields(cells: list[str], columns: dict[str, int]) -> dict[str, Any]:
    """A sheet row as the fields parse_site reads (thresholds gathered into one object)."""
    cell = {name: (cells[i].strip().removeprefix("'") if i < len(cells) else "") for name, i in columns.items()}
    thresholds: dict[str, Any] = {}
    for name, value in cell.items():
        if not value:
            continue
        if name.startswith("rain_"):
            key, _, window = name.partition(":")
            thresholds.setdefault(key, {})[window] = value
        elif name.endswith("_level_m"):
            thresholds[name] = value
    out: dict[str, Any] = {k: v for k, v in cell.items() if ":" not in k and not k.endswith("_level_m")}
    out["thresholds"] = thresholds or None
    return out


async def _contact_ids(words: str, registry: RedisRegistry, ref: Reference) -> list[str]:
    """Contact ids from a cell of ids or phone numbers; ValueError naming the first unknown one."""
    ids = []
    for word in (w for w in _SPLIT.split(words) if w):
        if _CONTACT_ID.match(word):
            if await registry.get(word) is None:
                raise ValueError(f"联系人不存在 unknown contact id: {word}")
            ids.append(word)
            continue
        try:
            phone, _ = normalize_e164(word, ref.default_phone_region)
        except InvalidPhoneNumber:
            raise ValueError(f"责任人应为联系人编号或手机号码 a keeper is a contact id or phone: {word[:20]}") from None
        contact = await registry.by_phone(phone)
        if contact is None:
            raise ValueError(f"手机号码未登记 phone not in the registry: {word[:3]}****{word[-4:]}")
        ids.append(contact.id)
    return ids


async def _check_row(cells: list[str], columns: dict[str, int], registry: RedisRegistry,
                     ref: Reference) -> HazardSite:
    raw = row_fields(cells, columns)
    sid = str(raw.pop("id", "") or "")
    raw["contacts"] = await _contact_ids(str(raw.get("contacts") or ""), registry, ref)
    try:
        site = parse_site(raw, ref, sid=sid)
    except FieldErrors as exc:
        raise ValueError("; ".join(f"{k}: {v}" for k, v in exc.errors.items())) from None
    if sid and await registry.site(sid) is None:
        raise ValueError(f"隐患点不存在 no site with id {sid}")
    if not sid and site.station:
        same = await registry.sites_of_station(site.station)
        if len(same) > 1:
            raise ValueError(f"多个隐患点使用测站 {site.station}，请填编号 several sites watch station {site.station}: "
                             "give the id")
        if same:
            site = dataclasses.replace(site, id=same[0].id)
    return site


async def import_sites(stream: IO[bytes], fmt: str, registry: RedisRegistry, ref: Reference, *,
                       now: datetime) -> SiteImportReport:
    """Import a CSV/XLSX sheet of hazard sites; FileProblem when the file as a whole is unusable."""
    rows = iter_rows(stream, fmt)
    try:
        header = next(rows, None)
        columns = map_columns(header or [])
        checked: list[tuple[int, HazardSite]] = []
        report = SiteImportReport()
        for number, cells in enumerate(rows, start=2):
            if not any(c.strip() for c in cells):
                continue
            if number > MAX_ROWS + 1:
                raise FileProblem(f"行数过多 more than {MAX_ROWS} rows")
            try:
                checked.append((number, await _check_row(cells, columns, registry, ref)))
            except ValueError as exc:
                report.rejected.append((number, str(exc)))
    finally:
        rows.close()
    first_row: dict[str, int] = {}
    for number, site in checked:
        key = site.id or (f"station {site.station}" if site.station else f"row {number}")
        if key in first_row:
            report.rejected.append((number, (f"与第 {first_row[key]} 行是同一隐患点 the same site as row "
                                            f"{first_row[key]} ({key})")))
            continue
        first_row[key] = number
        stored = await registry.put_site(site, now, create=not site.id)
        if site.id and stored is not None:
            report.updated += 1
        elif stored is not None:
            report.accepted += 1
    return report
