"""The `warning` command: serve, worker, contacts import, cap check."""

from __future__ import annotations

import argparse
import errno
import os
import re
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from warning.errors import ConfigError
from warning.eventloop import loop_name, new_event_loop
from warning.redis_server import SOCKET_FILE, StartupError, folder_owner
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


def masked_url(url: str) -> str:
    """A store URL fit to print: any password (in the authority or as `?password=`) replaced by ***."""
    url = re.sub(r"(?<=://)([^:@/]*):[^@/]*@", r"\1:***@", url)
    return re.sub(r"(?i)([?&]password=)[^&]*", r"\1***", url)


def command_store(settings: Settings) -> str:
    """The store a command other than `serve` works on, said on stderr: `[redis] url`, else the private Redis of
    the `warning serve` that owns `[redis] data_dir`. Never a store of its own, which nobody would read."""
    if settings.redis.url:
        print(f"存储 store: Redis {masked_url(settings.redis.url)}", file=sys.stderr, flush=True)
        return settings.redis.url
    data_dir = Path(settings.redis.data_dir).resolve()
    owner = folder_owner(data_dir)
    if owner is None:
        raise ConfigError(settings.sources[-1], "redis.url",
                          f"未配置 Redis，且没有运行中的 warning serve 使用数据目录 {data_dir}: no [redis] url, and no "
                          "running `warning serve` owns that data folder; start the service first, or set [redis] "
                          "url (WARNING_REDIS_URL)")
    url = f"unix://{data_dir / SOCKET_FILE}?db=0"
    print(f"存储 store: private Redis of warning serve, {owner}: {url}", file=sys.stderr, flush=True)
    return url


def check_port(host: str, port: int) -> None:
    """StartupError (one line) when `host:port` cannot be listened on, before anything is started."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StartupError(f"无法监听 cannot listen on {host}:{port}: {exc.strerror}") from None
    for family, kind, proto, _, addr in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will: only a listener clashes
            try:
                probe.bind(addr)
            except OSError as exc:
                raise port_error(host, port, exc) from None


def port_error(host: str, port: int, exc: OSError) -> StartupError:
    """The one line said when the web server cannot listen."""
    if exc.errno == errno.EADDRINUSE:
        return StartupError(f"端口已被占用 port in use: {host}:{port} (another process listens on it; see --port)")
    return StartupError(f"无法监听 cannot listen on {host}:{port}: {exc.strerror or exc}")


def _serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from warning.bootstrap import check_channel_config
    from warning.logs import setup_logging
    from warning.web.app import create_app

    settings = settings_from_args(args)
    setup_logging(settings.server.log_format, settings.server.log_level)
    host = args.host or settings.server.host
    port = args.port or settings.server.port
    check_channel_config(settings)  # a bad [[channels]] or a missing hook secret stops us before any store starts
    check_port(host, port)
    if settings.redis.url:
        print(f"存储 store: Redis {masked_url(settings.redis.url)}", file=sys.stderr, flush=True)
    app = create_app(settings)
    if settings.demo:
        base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::', '') else host}:{port}"
        print(f"demo county: {settings.section('issuer').get('name')} ({settings.section('issuer').get('code')})")
        print(f"dashboard: {base}/", flush=True)
        app.on_startup.append(lambda app: _demo_links(app, base))  # once the store is open
    app.on_startup.append(_say_event_loop)  # once the store is open: a serve that cannot start says one line only
    try:
        web.run_app(app, host=host, port=port, print=lambda s: print(s, flush=True), access_log=None,
                    loop=new_event_loop())
    except OSError as exc:  # taken between the check and the bind; the private Redis is stopped by then
        if exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
            raise port_error(host, port, exc) from None
        raise
    return 0


async def _say_event_loop(app: Any) -> None:
    print(f"事件循环 event loop: {loop_name()}", file=sys.stderr, flush=True)


async def _demo_links(app: Any, base: str) -> None:
    from warning.login_link_cli import print_demo_links
    from warning.web.keys import redis_key, settings_key

    await print_demo_links(app[redis_key], app[settings_key], base)


def _register_serve(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="web, workers and scheduler in one process")
    add_config_arg(p)
    p.add_argument("--demo", action="store_true", help="load the demo county and simulated channels")
    p.add_argument("--host", default=None, help="address to listen on (default: [server] host, 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port to listen on (default: [server] port, 8080)")
    p.set_defaults(func=_serve)


def registrars() -> list[Registrar]:
    """Every subcommand; modules that own a command provide its registrar."""
    from warning import cap_cli, contacts_cli, login_link_cli, worker_cli

    return [_register_serve, worker_cli.register, cap_cli.register, contacts_cli.register, login_link_cli.register]


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
    except StartupError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"no such file: {Path(exc.filename or '')}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
