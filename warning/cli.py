"""The `warning` command: serve, worker, contacts import, cap check."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from warning.errors import ConfigError
from warning.settings import Settings, load_settings

#: subcommand registrars: each adds its parser(s) and sets `func`
Registrar = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


def add_config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", default=os.environ.get("WARNING_CONFIG"),
                   help="TOML configuration file (default: $WARNING_CONFIG, else the demo county)")


def settings_from_args(args: argparse.Namespace, *, demo_when_unconfigured: bool = True) -> Settings:
    """Load settings; with no --config (and no WARNING_CONFIG) the demo county is used."""
    demo = bool(getattr(args, "demo", False)) or (demo_when_unconfigured and not args.config)
    return load_settings(args.config, demo=demo)


def _serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from warning.logs import setup_logging
    from warning.web.app import create_app

    settings = settings_from_args(args)
    setup_logging(settings.server.log_format, settings.server.log_level)
    host = args.host or settings.server.host
    port = args.port or settings.server.port
    if settings.demo:
        print(f"demo county: {settings.section('issuer').get('name')} ({settings.section('issuer').get('code')})")
        print(f"dashboard: http://{host}:{port}/")
        for token in settings.tokens:
            print(f"  demo token  {token.role:<9} {token.token}")
    web.run_app(create_app(settings), host=host, port=port, print=lambda s: print(s, flush=True),
                access_log=None)
    return 0


def _register_serve(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="web, workers and scheduler in one process")
    add_config_arg(p)
    p.add_argument("--demo", action="store_true", help="load the demo county and simulated channels")
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None)
    p.set_defaults(func=_serve)


def registrars() -> list[Registrar]:
    """Every subcommand; modules that own a command provide its registrar."""
    from warning import cap_cli, contacts_cli, worker_cli

    return [_register_serve, worker_cli.register, cap_cli.register, contacts_cli.register]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="warning", description="预警信息发布服务 — early-warning dissemination")
    sub = parser.add_subparsers(dest="command", required=True)
    for register in registrars():
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"no such file: {Path(exc.filename or '')}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
