"""Settings: config/default.toml, then the user's TOML file, then WARNING_* environment variables."""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from warning.errors import ConfigError
from warning.redis_connect import is_cluster_url, parse_cluster_url

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / "config"
DEFAULT_FILE = CONFIG_DIR / "default.toml"
DEMO_FILE = CONFIG_DIR / "demo.toml"
ROLES = ("admin", "issuer", "approver", "viewer", "feed")
LEVELS = ("blue", "yellow", "orange", "red")
#: keys whose relative values are resolved against the directory of the file that set them
_PATH_SUFFIXES = ("_csv", "_path", "_dir_ref")


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """[server]: where the web app listens and how it is seen from outside."""

    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = ""
    max_body_bytes: int = 20 * 1024 * 1024
    log_format: str = "auto"
    log_level: str = "INFO"
    workers: int = 1
    #: signs dashboard session cookies; empty: a random secret per process (sessions end at restart)
    session_secret: str = field(default="", repr=False)
    session_ttl_s: int = 8 * 3600


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """[redis]: a server URL, or empty for a private server under data_dir."""

    url: str = ""
    data_dir: str = "data"

    @classmethod
    def from_dsn(cls, dsn: str, data_dir: str = "data") -> RedisSettings:
        """Check a redis URL's scheme; refuse what redis-py would not understand."""
        if dsn and is_cluster_url(dsn):
            parse_cluster_url(dsn)  # a malformed one is told as such first
            raise ConfigError("<redis>", "redis.url", "Redis Cluster (redis+cluster://) is not supported by the "
                              "service's stores yet: use one Redis server (redis://, rediss://, unix://)")
        if dsn and urlparse(dsn).scheme not in ("redis", "rediss", "unix"):
            raise ConfigError("<redis>", "redis.url", f"unsupported scheme in {dsn.split('@')[-1]!r}")
        return cls(url=dsn, data_dir=data_dir)


@dataclass(frozen=True, slots=True)
class RetentionSettings:
    """[retention]: how long a warning's keys (deliveries, receipts, replies, audit) outlive its end."""

    days: int = 400


@dataclass(frozen=True, slots=True)
class Token:
    """One API token: who holds it and what they may do."""

    name: str
    role: str
    token: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting, frozen; `raw` keeps the merged TOML for the sections other modules own."""

    server: ServerSettings
    redis: RedisSettings
    tokens: tuple[Token, ...]
    raw: Mapping[str, Any]
    sources: tuple[str, ...]
    templates_dir: Path = ROOT / "templates"
    retention: RetentionSettings = field(default_factory=RetentionSettings)

    def section(self, name: str) -> Mapping[str, Any]:
        """A top-level table of the merged configuration, empty when absent."""
        value = self.raw.get(name, {})
        return value if isinstance(value, Mapping) else {}

    @property
    def demo(self) -> bool:
        return bool(self.section("demo").get("enabled", False))


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _resolve_paths(data: Any, base_dir: Path) -> Any:
    if isinstance(data, dict):
        return {
            k: (str((base_dir / v).resolve()) if isinstance(v, str) and v and k.endswith(_PATH_SUFFIXES)
                and not Path(v).is_absolute() else _resolve_paths(v, base_dir))
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [_resolve_paths(v, base_dir) for v in data]
    return data


def read_toml(path: Path) -> dict[str, Any]:
    """Read one TOML file, failing with the file and the reason."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(str(path), "-", "file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), "-", f"not valid TOML: {exc}") from None
    return _resolve_paths(data, path.parent)  # type: ignore[no-any-return]


def _coerce(name: str, raw: str, like: Any) -> Any:
    try:
        if isinstance(like, bool):
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true or false")
        if isinstance(like, int):
            return int(raw)
        if isinstance(like, float):
            return float(raw)
        if isinstance(like, list | dict):
            return json.loads(raw)
    except ValueError as exc:
        raise ConfigError("<environment>", name, str(exc)) from None
    return raw


def apply_env(data: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """Override `[section] key` from WARNING_SECTION_KEY (lists and tables as JSON)."""
    out = dict(data)
    for section, table in data.items():
        if isinstance(table, dict):
            new = dict(table)
            for key, value in table.items():
                name = f"WARNING_{section}_{key}".upper().replace(".", "_").replace("-", "_")
                if name in env:
                    new[key] = _coerce(name, env[name], value)
            out[section] = new
        else:
            name = f"WARNING_{section}".upper()
            if name in env:
                out[section] = _coerce(name, env[name], table)
    for name in ("WARNING_AUTH_TOKENS",):
        if name in env:
            out.setdefault("auth", {})
            out["auth"] = {**out["auth"], "tokens": _coerce(name, env[name], [])}
    return out


def _table(cls: Any, data: Mapping[str, Any], section: str, source: str) -> Any:
    allowed = set(cls.__dataclass_fields__)
    for key in data:
        if key not in allowed:
            raise ConfigError(source, f"{section}.{key}", f"unknown key (known: {', '.join(sorted(allowed))})")
    defaults = cls()
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        want = type(getattr(defaults, key))
        if want is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError(source, f"{section}.{key}", f"expected an integer, got {value!r}")
        if want is str and not isinstance(value, str):
            raise ConfigError(source, f"{section}.{key}", f"expected a string, got {value!r}")
        kwargs[key] = value
    return cls(**kwargs)


def _tokens(data: Mapping[str, Any], source: str) -> tuple[Token, ...]:
    tokens = []
    seen: set[str] = set()
    for i, entry in enumerate(data.get("auth", {}).get("tokens", [])):
        key = f"auth.tokens[{i}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(source, key, "expected a table with name, role, token")
        name, role, token = entry.get("name"), entry.get("role"), entry.get("token")
        if not isinstance(name, str) or not name:
            raise ConfigError(source, f"{key}.name", "missing")
        if role not in ROLES:
            raise ConfigError(source, f"{key}.role", f"{role!r} is not one of {', '.join(ROLES)}")
        if not isinstance(token, str) or len(token) < 16:
            raise ConfigError(source, f"{key}.token", "missing or shorter than 16 characters")
        if token in seen:
            raise ConfigError(source, f"{key}.token", "the same token is given twice")
        seen.add(token)
        tokens.append(Token(name=name, role=role, token=token))
    return tuple(tokens)


def load_settings(
    path: str | Path | None = None, *, demo: bool = False, env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Merge default.toml, demo.toml (when asked), the given file, overrides and the environment."""
    env = os.environ if env is None else env
    data = read_toml(DEFAULT_FILE)
    sources = [str(DEFAULT_FILE)]
    if demo:
        data = _merge(data, read_toml(DEMO_FILE))
        sources.append(str(DEMO_FILE))
    if path is not None:
        data = _merge(data, read_toml(Path(path)))
        sources.append(str(path))
    if overrides:
        data = _merge(data, overrides)
    data = apply_env(data, env)
    source = sources[-1]
    server = _table(ServerSettings, data.get("server", {}), "server", source)
    if server.public_url and urlparse(server.public_url).scheme not in ("http", "https"):
        raise ConfigError(source, "server.public_url", "must start with http:// or https://")
    if not 0 < server.port < 65536:
        raise ConfigError(source, "server.port", f"{server.port} is not a port number")
    if server.log_format not in ("auto", "json", "text"):
        raise ConfigError(source, "server.log_format", "must be auto, json or text")
    redis_table = _table(RedisSettings, data.get("redis", {}), "redis", source)
    try:
        redis = RedisSettings.from_dsn(redis_table.url, redis_table.data_dir)
    except ConfigError as exc:
        raise ConfigError(source, exc.key, exc.reason) from None
    retention = _table(RetentionSettings, data.get("retention", {}), "retention", source)
    if retention.days <= 0:
        raise ConfigError(source, "retention.days", f"must be a positive number of days, got {retention.days}")
    return Settings(server=server, redis=redis, tokens=_tokens(data, source), raw=data, sources=tuple(sources),
                    retention=retention)
