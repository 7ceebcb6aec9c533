"""Import direction (contacts ← warning ← channels) and the single clock seam."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMPOSITION_ROOTS = {"warning/bootstrap.py", "warning/web/app.py"}
TIME_CALLS = {("datetime", "now"), ("datetime", "utcnow"), ("time", "time"), ("time", "monotonic"),
              ("asyncio", "sleep"), ("time", "sleep"), ("time", "perf_counter"), ("date", "today")}


def _modules(pkg: str) -> list[Path]:
    return sorted((ROOT / pkg).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_contacts_imports_neither_warning_nor_channels() -> None:
    bad = {str(p.relative_to(ROOT)): _imports(p) & {"warning", "channels"} for p in _modules("contacts")}
    assert {k: v for k, v in bad.items() if v} == {}


def test_only_composition_root_imports_channels() -> None:
    bad = [str(p.relative_to(ROOT)) for p in _modules("warning")
           if "channels" in _imports(p) and str(p.relative_to(ROOT)) not in COMPOSITION_ROOTS]
    assert bad == []


def test_only_clock_reads_the_time() -> None:
    offenders = []
    for pkg in ("warning", "contacts", "channels"):
        for path in _modules(pkg):
            if path.name == "clock.py" or path.name == "redis_server.py":
                # redis_server waits for a child process at start-up, before any clock exists
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                        and (node.value.id, node.attr) in TIME_CALLS):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value.id}.{node.attr}")
    assert offenders == []
