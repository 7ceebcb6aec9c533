"""Every benchmark, then the table of issue 12: each figure beside its reference measured in the same run.

    python bench/all.py [--n 100000] [--growth 10000 100000 300000] [--province 1000000] [--quick]
                        [--only fanout answer ...]

Runs bench/fanout.py, answer.py, callbacks.py, registry.py and growth.py one after the other (each prints its own
lines as it goes), collects their figures, and prints the table with the event loop each side used. A benchmark
that fails is named at the end and the exit status is 1; the others still run. Measure on a quiet machine: other
work on it lowers the service's figures and the references' alike, but not by the same amount.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BENCHMARKS = ("fanout", "answer", "callbacks", "registry", "growth")


def arguments(name: str, args: argparse.Namespace) -> list[str]:
    if args.quick:
        return ["--quick"]
    sized = {"fanout": ["--n", str(args.n)], "answer": ["--n", str(args.n)], "registry": ["--n", str(args.n)],
             "growth": ["--n", *map(str, args.growth), "--province", str(args.province)]}
    return sized.get(name, [])


def ms(pair: list[float]) -> str:
    return f"{pair[0] * 1000:.0f} / {pair[1] * 1000:.0f} ms"


def ms_fine(pair: list[float]) -> str:
    return f"{pair[0] * 1000:.2f} / {pair[1] * 1000:.2f} ms"


def times(ours: list[float], ref: list[float]) -> str:
    return f"{ours[0] / ref[0]:.0f}× / {ours[1] / ref[1]:.0f}×"


Row = tuple[str, str, str, str, str]


def latency_rows(a: dict[str, Any]) -> list[Row]:
    ref, loops = a["reference"], f"{a['service_loop']} vs {a['reference']['loop']}"
    n = a["n"]
    return [
        (f"POST /api/v1/warnings answer, {n}-contact county (p50 / p99, {a['runs']} runs)", ms(a["alone"]["answer"]),
         f"one-SET aiohttp handler {ms_fine(ref['answer'])} ({loops})", times(a["alone"]["answer"], ref["answer"]),
         "≤ 50 ms p99"),
        ("trigger → first provider request, alone", ms(a["alone"]["first"]),
         f"handler SET + one send {ms_fine(ref['first'])}", times(a["alone"]["first"], ref["first"]),
         "≤ 200 ms p99"),
        (f"trigger → first provider request, while a {n} blue fan-out runs", ms(a["under load"]["first"]),
         "(same)", times(a["under load"]["first"], ref["first"]), "≤ 200 ms p99"),
        ("POST answer while that fan-out runs", ms(a["under load"]["answer"]), "(same)",
         times(a["under load"]["answer"], ref["answer"]), ""),
    ]


def fanout_rows(f: dict[str, Any]) -> list[Row]:
    bare, procs = f["bare"], {int(k): v for k, v in f["processes"].items()}
    one = procs[min(procs)]
    rows: list[Row] = [
        (f"fan-out, one process, {f['n']} contacts ({f['loops']})", f"{one['rate']:.0f} msg/s",
         f"bare aiohttp client, {f['bare_loop']}, one core: {bare:.0f} msg/s", f"{one['rate'] / bare:.2f}×", "≥ 0.7×"),
        ("fan-out vs the official twilio client, plain loop", f"{one['rate']:.0f} msg/s",
         f"twilio loop {f['twilio']:.0f} msg/s", f"{one['rate'] / f['twilio']:.1f}×", ""),
        ("Redis memory per delivery", f"{one['bytes_per_delivery']:.0f} B", "", "", "≤ 400 B"),
    ]
    for count, r in sorted(procs.items()):
        rows.append((f"fan-out with {count} process{'es' if count > 1 else ''} (serve + {count - 1} worker)",
                     f"{r['rate']:.0f} msg/s", _cpu(r["cpu"]), f"{r['rate'] / bare:.2f}× bare", ""))
    base = f["fsync"].get("everysec")
    for mode, r in f["fsync"].items():
        vs = f"{r['rate'] / base['rate']:.2f}× everysec" if base and mode != "everysec" else ""
        rows.append((f"fan-out, appendfsync {mode}", f"{r['rate']:.0f} msg/s", _cpu(r["cpu"]), vs, ""))
    return rows


def _cpu(shares: dict[str, float]) -> str:
    return "CPU " + ", ".join(f"{k} {v:.0%}" for k, v in sorted(shares.items(), key=lambda kv: -kv[1]) if v >= 0.05)


def other_rows(c: dict[str, Any] | None, r: dict[str, Any] | None, g: dict[str, Any] | None) -> list[Row]:
    rows: list[Row] = []
    if c:
        rows.append(("receipts (status callbacks/s)", f"{c['app']:.0f}/s",
                     f"parse-only aiohttp handler, {c['loop']}: {c['bare']:.0f}/s", f"{c['ratio']:.2f}×", "≥ 0.85×"))
    if r:
        rows.append(("Redis memory per contact (all indexes)", f"{r['bytes_per_contact']:.0f} B", "", "", "≤ 400 B"))
    if g:
        for n, f in g["fanout"].items():
            t = g["targeting"]["sizes"][n]
            rows.append((f"growth: {n} contacts", f"{f['rate']:.0f} msg/s, {f['cpu_us_per_msg']:.0f} CPU µs/msg",
                         f"targeting {t['us_per_delivery']:.1f} µs/delivery", "", "flat"))
        if "province" in g["targeting"]:
            p = g["targeting"]["province"]
            rows.append((f"growth: one county in a province of {g['targeting']['province_n']}",
                         f"targeting {p['us_per_delivery']:.1f} µs/delivery", f"({p['contacts']} in the county)", "",
                         "flat"))
    return rows


def table(figures: dict[str, dict[str, Any]]) -> str:
    rows: list[Row] = [("measure", "ours", "reference (same run)", "ratio", "aim")]
    if "answer" in figures:
        rows += latency_rows(figures["answer"])
    if "fanout" in figures:
        rows += fanout_rows(figures["fanout"])
    rows += other_rows(figures.get("callbacks"), figures.get("registry"), figures.get("growth"))
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    lines.insert(1, "|---|---|---|---|---|")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="contacts in the county (fanout, answer, registry)")
    parser.add_argument("--growth", type=int, nargs="+", default=[10_000, 100_000, 300_000],
                        help="registry sizes of the growth benchmark")
    parser.add_argument("--province", type=int, default=1_000_000, help="contacts of the growth benchmark's province")
    parser.add_argument("--quick", action="store_true", help="every benchmark in quick mode: proves they run")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS))
    args = parser.parse_args()
    figures: dict[str, dict[str, Any]] = {}
    failed = []
    with tempfile.TemporaryDirectory(prefix="ew-bench-all-") as tmp:
        for name in args.only:
            out = Path(tmp) / f"{name}.json"
            print(f"== bench/{name}.py {' '.join(arguments(name, args))}", flush=True)
            done = subprocess.run([sys.executable, str(HERE / f"{name}.py"), *arguments(name, args),
                                   "--json", str(out)], check=False)
            if done.returncode != 0 or not out.exists():
                failed.append(name)
                continue
            figures[name] = json.loads(out.read_text(encoding="utf-8"))
    print(f"\n== issue 12's table{' (quick mode: the figures only prove the benchmarks run)' if args.quick else ''}")
    print(table(figures))
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
