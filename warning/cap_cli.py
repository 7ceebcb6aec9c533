"""`warning cap check FILE`: parse and validate a CAP document, print the normalised warning or every error."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from warning.cap import DEFAULT_MAX_BYTES, parse_cap
from warning.errors import CapParseError


def _check(args: argparse.Namespace) -> int:
    path = Path(args.file)
    with path.open("rb") as fh:
        data = fh.read(args.max_bytes + 1)
    try:
        warning = parse_cap(data, max_bytes=args.max_bytes)
    except CapParseError as exc:
        print(f"{path}: CAP 文档无效 invalid CAP document ({len(exc.problems)} problem(s))", file=sys.stderr)
        for where, reason in exc.problems:
            print(f"{where}: {reason}")
        return 1
    print(json.dumps(warning.to_json(), ensure_ascii=False, indent=2))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `cap check FILE` to the command line."""
    cap = sub.add_parser("cap", help="CAP documents")
    cap_sub = cap.add_subparsers(dest="cap_command", required=True)
    check = cap_sub.add_parser("check", help="parse and validate a CAP 1.2 document; print it as JSON or the errors")
    check.add_argument("file", metavar="FILE")
    check.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES, help="largest document accepted")
    check.set_defaults(func=_check)
