"""Channel adapters behind the warning.channel port, and the explicit registry that builds them from config."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

from channels.devices_http import HttpDeviceChannel
from channels.mqtt import MqttDeviceChannel
from channels.simulator import Behaviour, SimClock, SimulatorChannel
from channels.sms_kannel import KannelSmsChannel
from channels.sms_twilio import TwilioSmsChannel
from channels.voice_twilio import TwilioVoiceChannel
from warning.channel import Channel

#: Provider name → adapter class, per kind. Explicit, so a typo fails at start, not at 3 a.m.
CHANNEL_TYPES: dict[str, type] = {
    "sms_twilio": TwilioSmsChannel,
    "voice_twilio": TwilioVoiceChannel,
    "sms_kannel": KannelSmsChannel,
    "http": HttpDeviceChannel,
    "mqtt": MqttDeviceChannel,
    "simulator": SimulatorChannel,
}
#: Keys every [[channels]] table may carry, read by the core (dispatcher, workers), not by adapters.
COMMON_KEYS = frozenset({"name", "kind", "provider", "rate_per_s", "failover", "failover_after", "max_attempts",
                         "batch", "concurrency", "account"})

__all__ = ["CHANNEL_TYPES", "HttpDeviceChannel", "KannelSmsChannel", "MqttDeviceChannel", "SimulatorChannel",
           "TwilioSmsChannel", "TwilioVoiceChannel", "build_channel"]


class _Table:
    """Typed, key-checked reads of one [[channels]] table; errors name the channel and the key."""

    def __init__(self, name: str, table: Mapping[str, Any], allowed: set[str], env: Mapping[str, str]) -> None:
        self.name, self.table, self.env = name, table, env
        unknown = sorted(set(table) - COMMON_KEYS - allowed)
        if unknown:
            raise ValueError(f"channels.{name}.{unknown[0]}: unknown key (known: {', '.join(sorted(allowed))})")

    def text(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self.table.get(key, default)
        if value is None or value == "":
            if required:
                raise ValueError(f"channels.{self.name}.{key}: required")
            return None
        if not isinstance(value, str):
            raise TypeError(f"channels.{self.name}.{key}: expected a string, got {type(value).__name__}")
        return value

    def secret(self, key: str, *, required: bool = True) -> str | None:
        """A secret, from `key` or from the environment variable named by `key_env` (preferred)."""
        env_name = self.text(f"{key}_env")
        if env_name:
            value = self.env.get(env_name, "")
            if not value and required:
                raise ValueError(f"channels.{self.name}.{key}_env: environment variable {env_name} is not set")
            return value or None
        return self.text(key, required=required)

    def number(self, key: str, default: float | None = None, *, minimum: float = 0.0) -> float | None:
        value = self.table.get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
            raise ValueError(f"channels.{self.name}.{key}: expected a number ≥ {minimum:g}, got {value!r}")
        return float(value)

    def integer(self, key: str, default: int | None = None, *, minimum: int = 0) -> int | None:
        value = self.number(key, default, minimum=minimum)
        return None if value is None else int(value)


def _need_http(name: str, http: aiohttp.ClientSession | None) -> aiohttp.ClientSession:
    if http is None:
        raise ValueError(f"channels.{name}: needs the shared HTTP session")
    return http


def _twilio(t: _Table, http: aiohttp.ClientSession | None, public_url: str, kind: str) -> Channel:
    token = t.secret("auth_token")
    if not (token or "").strip():  # it authenticates us to Twilio and Twilio's webhooks to us
        raise ValueError(f"channels.{t.name}.auth_token: required (or auth_token_env): Twilio's webhooks are "
                         "checked with it")
    common: dict[str, Any] = {
        "name": t.name, "http": _need_http(t.name, http), "public_url": public_url,
        "account_sid": t.text("account_sid", required=True), "auth_token": token,
        "api_base": t.text("api_base", "https://api.twilio.com"), "max_per_s": t.number("rate_per_s"),
        "timeout_s": t.number("timeout_s", 10.0),
    }
    if kind == "voice":
        return TwilioVoiceChannel(**common, from_=t.text("from", required=True) or "",
                                  ring_timeout_s=t.integer("ring_timeout_s", 45, minimum=5) or 45,
                                  repeat=t.integer("repeat", 2, minimum=1) or 2)
    if not (t.text("from") or t.text("messaging_service_sid")):
        raise ValueError(f"channels.{t.name}.from: required (or messaging_service_sid)")
    return TwilioSmsChannel(**common, from_=t.text("from"), messaging_service_sid=t.text("messaging_service_sid"),
                            validity_period_s=t.integer("validity_period_s"))


def _kannel(t: _Table, http: aiohttp.ClientSession | None, public_url: str) -> Channel:
    return KannelSmsChannel(name=t.name, http=_need_http(t.name, http), public_url=public_url,
                            sendsms_url=t.text("sendsms_url", required=True) or "",
                            username=t.text("username", required=True) or "", password=t.secret("password") or "",
                            from_=t.text("from"), smsc=t.text("smsc"), dlr_mask=t.integer("dlr_mask", 31) or 0,
                            max_per_s=t.number("rate_per_s"), timeout_s=t.number("timeout_s", 10.0) or 10.0,
                            callback_secret=t.secret("callback_secret", required=False))


def _http(t: _Table, http: aiohttp.ClientSession | None, public_url: str, kind: str, allow_loopback: bool) -> Channel:
    return HttpDeviceChannel(name=t.name, http=_need_http(t.name, http), public_url=public_url, kind=kind,
                             token=t.secret("token", required=False), max_batch=t.integer("max_batch", minimum=1),
                             max_per_s=t.number("rate_per_s"), timeout_s=t.number("timeout_s", 5.0) or 5.0,
                             allow_loopback=allow_loopback)


def _mqtt(t: _Table, public_url: str, kind: str) -> Channel:
    return MqttDeviceChannel(name=t.name, host=t.text("host", required=True) or "", port=t.integer("port", 1883) or 1883,
                             public_url=public_url, kind=kind, username=t.text("username"),
                             password=t.secret("password", required=False), topic_prefix=t.text("topic_prefix") or "",
                             max_batch=t.integer("max_batch", minimum=1), max_per_s=t.number("rate_per_s"),
                             timeout_s=t.number("timeout_s", 5.0) or 5.0)


def _simulator(t: _Table, clock: SimClock, kind: str) -> Channel:
    behaviour = Behaviour(delay_s=t.number("delay_s", 2.0) or 0.0, failure_rate=t.number("failure_rate", 0.02) or 0.0,
                          reply_share=t.number("reply_share", 0.3) or 0.0,
                          reply_delay_s=t.number("reply_delay_s", 30.0) or 0.0, seed=t.integer("seed", 0) or 0)
    if behaviour.failure_rate > 1 or behaviour.reply_share > 1:
        raise ValueError(f"channels.{t.name}: failure_rate and reply_share are shares between 0 and 1")
    return SimulatorChannel(name=t.name, clock=clock, kind=kind, behaviour=behaviour,
                            max_batch=t.integer("max_batch", minimum=1), max_per_s=t.number("rate_per_s"))


_PROVIDER_KEYS: dict[str, set[str]] = {
    "twilio": {"account_sid", "auth_token", "auth_token_env", "api_base", "from", "messaging_service_sid",
               "timeout_s", "validity_period_s", "ring_timeout_s", "repeat"},
    "kannel": {"sendsms_url", "username", "password", "password_env", "from", "smsc", "dlr_mask", "timeout_s",
               "callback_secret", "callback_secret_env"},
    "http": {"token", "token_env", "max_batch", "timeout_s"},
    "mqtt": {"host", "port", "username", "password", "password_env", "topic_prefix", "max_batch", "timeout_s"},
    "simulator": {"delay_s", "failure_rate", "reply_share", "reply_delay_s", "seed", "max_batch"},
}
_KINDS = {"twilio": ("sms", "voice"), "kannel": ("sms",), "http": ("escreen", "broadcast"), "mqtt": ("escreen", "broadcast"),
          "simulator": ("sms", "voice", "escreen", "broadcast")}


def build_channel(name: str, config: Mapping[str, Any], *, http: aiohttp.ClientSession | None, clock: SimClock,
                  public_url: str, env: Mapping[str, str] | None = None, allow_loopback: bool = False) -> Channel:
    """One channel instance from its [[channels]] table; ValueError naming `channels.<name>.<key>` when wrong.

    `allow_loopback` (`[devices] allow_loopback`) lets device channels send to this machine and link-local networks.
    """
    provider, kind = config.get("provider"), config.get("kind")
    if provider not in _PROVIDER_KEYS:
        raise ValueError(f"channels.{name}.provider: {provider!r} is not one of {', '.join(sorted(_PROVIDER_KEYS))}")
    if kind not in _KINDS[provider]:
        raise ValueError(f"channels.{name}.kind: provider {provider} carries {' or '.join(_KINDS[provider])}, "
                         f"not {kind!r}")
    t = _Table(name, config, _PROVIDER_KEYS[provider], os.environ if env is None else env)
    builders: dict[str, Callable[[], Channel]] = {
        "twilio": lambda: _twilio(t, http, public_url, kind),
        "kannel": lambda: _kannel(t, http, public_url),
        "http": lambda: _http(t, http, public_url, kind, allow_loopback),
        "mqtt": lambda: _mqtt(t, public_url, kind),
        "simulator": lambda: _simulator(t, clock, kind),
    }
    return builders[provider]()
