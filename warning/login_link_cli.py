"""`warning login-link --token-name NAME [--ttl 10m]`: print a one-time sign-in link for a configured token.

The link is stored in the running service's store (`[redis] url`, or the private Redis of the `warning serve` that
owns the data folder), so the service that reads that store accepts it; the token itself is never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import Sequence
from datetime import timedelta, timezone

import redis.asyncio as aioredis

from warning.cli import add_config_arg, command_store, settings_from_args
from warning.clock import SystemClock
from warning.settings import Settings, Token
from warning.web.dashboard_session import DASHBOARD_ROLES, MAX_LINK_TTL_S, ROLE_ZH, create_login_link

#: how long a link made by the command, or printed by `serve --demo`, stays valid unless --ttl says otherwise
DEFAULT_TTL = "10m"
_UNITS_S = {"s": 1, "m": 60, "h": 3600}
BEIJING = timezone(timedelta(hours=8))


def parse_ttl(text: str) -> int:
    """Seconds from `90`, `90s`, `10m` or `2h`; ArgumentTypeError (Chinese first) outside 1 s – 24 h."""
    m = re.fullmatch(r"\s*(\d{1,6})\s*([smh]?)\s*", text.lower())
    if m is None:
        raise argparse.ArgumentTypeError(f"有效期格式无效 invalid ttl {text!r}: write 90s, 10m or 2h")
    seconds = int(m.group(1)) * _UNITS_S[m.group(2) or "s"]
    if not 1 <= seconds <= MAX_LINK_TTL_S:
        raise argparse.ArgumentTypeError(f"有效期须在 1 秒到 24 小时之间 ttl must be 1 s to 24 h, not {text!r}")
    return seconds


def base_url(settings: Settings) -> str:
    """Where people reach the dashboard: `[server] public_url`, else the address the service listens on."""
    if settings.server.public_url:
        return settings.server.public_url.rstrip("/")
    host = settings.server.host
    host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    return f"http://{f'[{host}]' if ':' in host else host}:{settings.server.port}"


def dashboard_token(settings: Settings, name: str) -> Token | str:
    """The configured token of that name if it may use the dashboard; else why not (one line, Chinese first)."""
    token = next((t for t in settings.tokens if t.name == name), None)
    if token is None:
        known = ", ".join(t.name for t in settings.tokens if t.role in DASHBOARD_ROLES) or "none"
        return f"没有名为 {name!r} 的令牌 no token named {name!r} in [[auth.tokens]] (dashboard tokens: {known})"
    if token.role not in DASHBOARD_ROLES:
        return f"令牌 {name!r}（{token.role}）不能登录看板 the token {name!r} ({token.role}) cannot use the dashboard"
    return token


async def make_links(url: str, tokens: Sequence[Token], ttl_s: int) -> list[str]:
    """A one-time sign-in path per token, stored in the store at `url`."""
    client = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        return [await create_login_link(client, token, ttl_s=ttl_s) for token in tokens]
    finally:
        await client.aclose()


async def print_demo_links(redis: aioredis.Redis, settings: Settings, base: str) -> None:
    """`serve --demo`: one sign-in link per dashboard role of the demo's tokens (stdout; never the tokens)."""
    ttl_s = parse_ttl(DEFAULT_TTL)
    tokens = [t for role in DASHBOARD_ROLES for t in settings.tokens if t.role == role]
    head = (f"一次性登录链接 one-time sign-in links (each works once, within {ttl_s // 60} min; "
            "more: warning login-link --token-name NAME):")
    lines = [head]
    for token in tokens:
        path = await create_login_link(redis, token, ttl_s=ttl_s)
        lines.append(f"  {ROLE_ZH[token.role]} {token.role:<9} {base}{path}")
    lines.append("API tokens: config/demo.toml [[auth.tokens]]")
    print("\n".join(lines), flush=True)


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    token = dashboard_token(settings, args.token_name)
    if isinstance(token, str):
        print(token, file=sys.stderr)
        return 2
    url = command_store(settings)  # the running service's own store, never a throwaway one
    [path] = asyncio.run(make_links(url, [token], args.ttl))
    until = (SystemClock().now() + timedelta(seconds=args.ttl)).astimezone(BEIJING).strftime("%Y-%m-%d %H:%M")
    print(f"一次性登录链接：{token.name}（{token.role}），仅可使用一次，{until}（北京时间）前有效 "
          f"one-time sign-in link for {token.name} ({token.role}), valid until {until} Beijing time", file=sys.stderr)
    print(base_url(settings) + path)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`warning login-link --token-name NAME [--ttl 10m] [--config FILE]`."""
    p = sub.add_parser("login-link", help="print a one-time dashboard sign-in link for a configured token",
                       description="Prints a link that signs a browser in as the token named, once, within the ttl. "
                                   "The running service must use the same store (run with its configuration and "
                                   "working directory). Exit status 2 when the token or the store cannot be used.")
    p.add_argument("--token-name", required=True, metavar="NAME", help="the `name` of an [[auth.tokens]] entry")
    p.add_argument("--ttl", type=parse_ttl, default=parse_ttl(DEFAULT_TTL), metavar="TIME",
                   help=f"how long the link stays valid: 90s, 10m, 2h (default {DEFAULT_TTL}, at most 24h)")
    add_config_arg(p)
    p.set_defaults(func=run)
