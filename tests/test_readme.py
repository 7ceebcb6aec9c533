"""The README keeps up with the service: serve's options, and every endpoint that needs no bearer token."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import make_settings
from warning.cli import build_parser
from warning.web.app import create_app
from warning.web.keys import route_tables_key

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    start = README.index(title)
    end = README.find("\n#", start + len(title))
    return README[start:end if end > 0 else None]


def test_serve_host_and_port_are_documented() -> None:
    args = build_parser().parse_args(["serve", "--host", "0.0.0.0", "--port", "9000"])
    assert (args.host, args.port) == ("0.0.0.0", 9000)
    usage = re.search(r"`warning serve \[--config FILE\] \[--demo\] \[--host ADDRESS\] \[--port PORT\]`:(.+?)\n\n",
                      README, re.DOTALL)
    assert usage is not None
    text = usage.group(1)
    assert "`--host`" in text and "`--port`" in text and "[server] host" in text and "[server] port" in text


def test_every_endpoint_without_a_bearer_token_is_listed(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    open_routes = {(d.method, d.path) for table in app[route_tables_key] for d in table.docs if d.roles is None}
    listed = set()
    for methods, path in re.findall(r"`([A-Z|]+) (/[^`\s]*)`", _section("### Endpoints without a bearer token")):
        listed |= {(m, path) for m in methods.split("|")}
    assert open_routes == listed
