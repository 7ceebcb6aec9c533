"""The README keeps up with the service: serve's options."""

from __future__ import annotations

import re
from pathlib import Path

from warning.cli import build_parser

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def test_serve_host_and_port_are_documented() -> None:
    args = build_parser().parse_args(["serve", "--host", "0.0.0.0", "--port", "9000"])
    assert (args.host, args.port) == ("0.0.0.0", 9000)
    usage = re.search(r"`warning serve \[--config FILE\] \[--demo\] \[--host ADDRESS\] \[--port PORT\]`:(.+?)\n\n",
                      README, re.DOTALL)
    assert usage is not None
    text = usage.group(1)
    assert "`--host`" in text and "`--port`" in text and "[server] host" in text and "[server] port" in text
