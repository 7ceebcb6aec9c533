"""Administrative division codes (GB/T 2260 and the statistical 12-digit codes) and the region tree."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from contacts.model import Region

#: lengths of a stored code: county, township (乡镇/街道), village (村/社区)
CODE_LENGTHS = (6, 9, 12)
#: lengths a query prefix may have: province and city too
PREFIX_LENGTHS = (2, 4, 6, 9, 12)


class InvalidRegionCode(ValueError):
    """A region code that is not 6, 9 or 12 digits (or 2/4 for a query prefix)."""

    def __init__(self, raw: str, *, prefix: bool = False) -> None:
        self.raw = raw
        lengths = "2、4、6、9 或 12" if prefix else "6、9 或 12"
        super().__init__(f"行政区划代码无效（应为 {lengths} 位数字） invalid region code "
                         f"(expected {lengths.replace('、', ', ').replace('或', 'or')} digits): {raw[:40]}")


class RegionTreeError(ValueError):
    """The region CSV cannot be read; names the line and the reason."""


def normalize_code(raw: str) -> str:
    """A stored region code: 6, 9 or 12 digits; 12/9-digit forms padded with 000 are shortened.

    `510722100000` (a township written in the 12-digit form) becomes `510722100`, and
    `510722000000` becomes `510722`, so each division has one spelling.
    """
    code = str(raw).strip().removesuffix(".0")  # a spreadsheet that stored the code as a number
    if not code.isascii() or not code.isdigit() or len(code) not in CODE_LENGTHS:
        raise InvalidRegionCode(str(raw))
    while len(code) > 6 and code.endswith("000"):
        code = code[:-3]
    return code


def query_prefix(raw: str) -> str:
    """A query prefix: 2, 4, 6, 9 or 12 digits; a city or province code written as 6 digits
    (`510700`, `510000`) is shortened to the prefix it stands for (`5107`, `51`)."""
    code = str(raw).strip()
    if not code.isascii() or not code.isdigit() or len(code) not in PREFIX_LENGTHS:
        raise InvalidRegionCode(str(raw), prefix=True)
    if len(code) > 6:
        return normalize_code(code)
    while len(code) > 2 and code.endswith("00"):
        code = code[:-2]
    return code


def ancestors(code: str) -> list[str]:
    """Every query prefix a code falls under, shortest first, the code itself last."""
    out = [code[:n] for n in PREFIX_LENGTHS if n < len(code)]
    return [*out, code]


def _parent_of(code: str) -> str | None:
    shorter = [code[:n] for n in PREFIX_LENGTHS if n < len(code)]
    return shorter[-1] if shorter else None


def _key(code: str | None) -> str | None:
    """The prefix a division code stands for (`510700` → `5107`), or None for something that is no code."""
    if not code:
        return None
    try:
        return query_prefix(code)
    except InvalidRegionCode:
        return None


class RegionTree:
    """Region names and parent/child links, loaded from a `code,name,parent` CSV.

    A province or city may be written with its 6-digit GB/T 2260 code (`510000`, `510700`) or as the
    prefix it stands for (`51`, `5107`): either spelling finds it, and a county's parent is found from
    its code. Regions keep the code as written.
    """

    def __init__(self, regions: Iterable[Region] = ()) -> None:
        self._by_key: dict[str, Region] = {}
        for region in regions:
            key = _key(region.code)
            if key is None:
                raise RegionTreeError(f"{region.code!r} is not a region code")
            if key in self._by_key:
                raise RegionTreeError(f"{region.code} ({region.name}) repeats {self._by_key[key].code} "
                                      f"({self._by_key[key].name})")
            self._by_key[key] = region
        self._children: dict[str | None, list[str]] = {}
        for key, region in list(self._by_key.items()):
            parent = _key(region.parent) if region.parent else None
            if parent is not None and parent != key and parent in self._by_key:
                self._by_key[key] = Region(region.code, region.name, self._by_key[parent].code)
            else:
                parent = None
            self._children.setdefault(parent, []).append(key)
        for keys in self._children.values():
            keys.sort()

    @classmethod
    def from_csv(cls, path: str | Path) -> RegionTree:
        """Load the tree; a missing parent column is derived from the code."""
        try:
            with open(path, encoding="utf-8-sig", newline="") as fh:
                return cls(_read_regions(csv.reader(fh)))
        except OSError as exc:
            raise RegionTreeError(f"cannot read {path}: {exc.strerror}") from None

    def __len__(self) -> int:
        return len(self._by_key)

    def __contains__(self, code: object) -> bool:
        return isinstance(code, str) and _key(code) in self._by_key

    def get(self, code: str) -> Region | None:
        key = _key(code)
        return self._by_key.get(key) if key else None

    def name(self, code: str) -> str | None:
        region = self.get(code)
        return region.name if region else None

    def children(self, parent: str | None = None) -> list[Region]:
        """Direct children of `parent`, or the top of the tree when None."""
        key = _key(parent) if parent is not None else None
        if parent is not None and key is None:
            return []
        return [self._by_key[c] for c in self._children.get(key, [])]

    def path(self, code: str) -> list[Region]:
        """The known divisions from the top down to `code`."""
        key = _key(code)
        return [self._by_key[a] for a in ancestors(key) if a in self._by_key] if key else []

    def full_name(self, code: str) -> str:
        """`四川省绵阳市三台县潼川镇` for a known code; the code itself when unknown."""
        names = [r.name for r in self.path(code)]
        return "".join(names) if names else code

    def leaves(self, under: str = "") -> list[str]:
        """Codes with no children, below a prefix (the villages of a county)."""
        prefix = (_key(under) or under) if under else ""
        return sorted(r.code for k, r in self._by_key.items() if k.startswith(prefix) and not self._children.get(k))

    def find(self, name: str) -> list[Region]:
        """Divisions with exactly this name."""
        return [r for r in self._by_key.values() if r.name == name]

    def __iter__(self) -> Iterator[Region]:
        return iter(self._by_key.values())


def _read_regions(rows: Iterator[Sequence[str]]) -> Iterator[Region]:
    seen: dict[str, int] = {}
    for line, row in enumerate(rows, start=1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if line == 1 and not row[0].strip().isdigit():
            continue  # header
        if len(row) < 2:
            raise RegionTreeError(f"line {line}: expected code,name[,parent]")
        code = row[0].strip()
        key = _key(code) if code.isascii() else None
        if key is None:
            raise RegionTreeError(f"line {line}: {code!r} is not a 2, 4, 6, 9 or 12-digit code")
        if key in seen:
            raise RegionTreeError(f"line {line}: {code} is the division of line {seen[key]} again")
        seen[key] = line
        if len(code) > 6:
            code = key  # 510722100000 is the township 510722100
        given = row[2].strip() if len(row) > 2 else ""
        above = _key(given) if given.isascii() else None
        if given and above is None:
            raise RegionTreeError(f"line {line}: parent {given!r} is not a 2, 4, 6, 9 or 12-digit code")
        if above is not None and (above == key or not key.startswith(above)):
            raise RegionTreeError(f"line {line}: {given} is not a division above {code}")
        yield Region(code=code, name=row[1].strip(), parent=given or _parent_of(key))
