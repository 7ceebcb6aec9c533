"""Growth benchmark: fan-out and targeting at registry sizes of 10k, 100k and 300k contacts, and targeting one
county inside a province of 1M: the cost per message must stay flat as the registry grows.

    python bench/growth.py [--n 10000 100000 300000] [--province 1000000] [--runs 1] [--quick]

For each size, a fresh private Redis (AOF on) with that many contacts in the county, `warning serve` alone (one
process) and one blue warning to the whole county, as bench/fanout.py does it: msg/s, wall µs per message, and
CPU µs per message summed over every process (service, redis-server, gateway); then bench/targeting.py's
resolution at each size and inside the province.
"""

from __future__ import annotations

import argparse
from typing import Any

import fanout
import targeting
from lab import CPUS, OTHERS, World, run, write_json


async def main(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"fanout": {}}
    for n in args.n:
        async with World(n, appendonly=True) as world:
            service = world.service("service")
            try:
                r = await fanout.series(world, service, f"{n} contacts, 1 process", args.runs)
            finally:
                service.stop()
        r["cpu_us_per_msg"] = sum(v for k, v in r["cpu"].items() if k != OTHERS) / r["rate"] * 1e6
        out["fanout"][n] = r
    out["targeting"] = await targeting.main(targeting.parse(
        ["--n", *map(str, args.n), "--province", str(args.province), "--runs", str(args.runs)]))
    print(f"{'contacts':>9} | fan-out msg/s | wall µs/msg | CPU µs/msg (all processes, {CPUS} cores) | "
          f"targeting µs/delivery")
    for n in args.n:
        f, t = out["fanout"][n], out["targeting"]["sizes"][n]
        print(f"{n:>9} | {f['rate']:13.0f} | {1e6 / f['rate']:11.0f} | {f['cpu_us_per_msg']:39.0f} | "
              f"{t['us_per_delivery']:8.1f}")
    if args.province:
        p = out["targeting"]["province"]
        print(f"a county of {p['contacts']} in a province of {out['targeting']['province_n']}: targeting "
              f"{p['us_per_delivery']:.1f} µs per delivery")
    return out


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[10_000, 100_000, 300_000])
    parser.add_argument("--province", type=int, default=1_000_000, help="0: no province")
    parser.add_argument("--runs", type=int, default=1, help="fan-outs and resolutions per size (the median)")
    parser.add_argument("--quick", action="store_true", help="small sizes, one run: proves the benchmark runs")
    parser.add_argument("--json", metavar="FILE", help="also write the figures here (bench/all.py)")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.runs, args.province = [200, 600], 1, 1800
    return args


if __name__ == "__main__":
    options = parse()
    write_json(options.json, run(main(options)))
