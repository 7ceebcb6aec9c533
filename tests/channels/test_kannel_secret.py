"""Provider channels fail closed: Kannel's hooks are authenticated by a secret in the URL (the channel puts it in
every dlr-url, and does not start without one); a Twilio channel does not start without its auth token."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.conftest import make_settings
from warning.bootstrap import build_channels, channel_tables
from warning.channel import Outbound
from warning.clock import FakeClock
from warning.errors import ConfigError
from warning.redis_server import free_port


async def _dlr_urls(tmp_path: Path, **overrides: Any) -> list[str]:
    seen: list[str] = []

    async def sendsms(request: web.Request) -> web.Response:
        seen.append(request.query["dlr-url"])
        return web.Response(status=202, text="0: Accepted for delivery")

    app = web.Application()
    app.router.add_get("/cgi-bin/sendsms", sendsms)
    async with TestServer(app) as server:
        table = {"name": "sms-kannel", "kind": "sms", "provider": "kannel", "username": "u",
                 "password": "kannel-password-123", "sendsms_url": str(server.make_url("/cgi-bin/sendsms"))}
        settings = make_settings(tmp_path, channels=[table], **overrides)
        async with aiohttp.ClientSession() as http:
            channel = build_channels(settings, channel_tables(settings), http=http, clock=FakeClock())["sms-kannel"]
            await channel.send([Outbound(delivery_id="d1", address="+8613800138000", body="【测试】暴雨蓝色预警")])
    return seen


async def test_hook_secret_reaches_the_dlr_url(tmp_path: Path) -> None:
    [url] = await _dlr_urls(tmp_path, hooks={"kannel_secret": "s3cret-for-kannel"})
    q = parse_qs(urlsplit(url).query)
    assert q["k"] == ["s3cret-for-kannel"] and q["ref"] == ["d1"]


@pytest.mark.parametrize("hooks", [{}, {"kannel_secret": ""}, {"kannel_secret": "short-secret"},
                                   {"kannel_secret": " " * 20}, {"kannel_secret": 1234567890123456}])
async def test_a_kannel_channel_without_the_hook_secret_does_not_start(tmp_path: Path, hooks: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as err:
        await _dlr_urls(tmp_path, hooks=hooks)
    assert err.value.key == "hooks.kannel_secret" and "16" in err.value.reason and "sms-kannel" in err.value.reason


def test_a_short_hook_secret_is_refused_without_a_kannel_channel(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, hooks={"kannel_secret": "short"})
    with pytest.raises(ConfigError, match="hooks.kannel_secret"):
        build_channels(settings, channel_tables(settings), http=None, clock=FakeClock())


async def test_kannel_hooks_refuse_everything_when_no_secret_is_set(client: Any) -> None:
    # no kannel channel, no secret: nobody may post receipts or replies as Kannel
    for path in ("/hooks/kannel/dlr", "/hooks/kannel/mo"):
        resp = await client.get(path, params={"type": "1", "ref": "d1", "from": "8613800138000", "text": "1", "k": ""})
        assert resp.status == 403, path


TWILIO = {"name": "sms-twilio", "kind": "sms", "provider": "twilio", "account_sid": "AC0123", "from": "+15005550006"}


@pytest.mark.parametrize(("extra", "key"), [({}, "channels[0].auth_token"), ({"auth_token": "   "}, "channels[0].auth_token"),
                                            ({"auth_token_env": "NO_SUCH_VARIABLE_SET"}, "channels[0].auth_token_env")])
async def test_a_twilio_channel_without_its_auth_token_does_not_start(tmp_path: Path, extra: dict[str, str],
                                                                      key: str) -> None:
    settings = make_settings(tmp_path, channels=[{**TWILIO, **extra}])
    async with aiohttp.ClientSession() as http:
        with pytest.raises(ConfigError) as err:
            build_channels(settings, channel_tables(settings), http=http, clock=FakeClock())
    assert err.value.key == key


@pytest.mark.parametrize(("table", "key"), [
    (('[[channels]]\nname = "sms-kannel"\nkind = "sms"\nprovider = "kannel"\nsendsms_url = "http://127.0.0.1:13013/x"'
     '\nusername = "u"\npassword = "p"\n'), "hooks.kannel_secret"),
    (('[[channels]]\nname = "sms-twilio"\nkind = "sms"\nprovider = "twilio"\naccount_sid = "AC0123"\n'
     'from = "+15005550006"\n'), "channels[0].auth_token"),
])
def test_serve_refuses_to_start_naming_the_key(tmp_path: Path, table: str, key: str) -> None:
    config = tmp_path / "service.toml"
    config.write_text(f'[redis]\ndata_dir = "{tmp_path / "data"}"\n[server]\nlog_level = "WARNING"\n{table}',
                      encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARNING_")}
    run = subprocess.run([sys.executable, "-m", "warning", "serve", "--config", str(config), "--port",
                          str(free_port())], capture_output=True, text=True, timeout=60, env=env, check=False)
    assert run.returncode == 2
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith(f"configuration error: {config}: {key}: "), run.stderr
    assert "Traceback" not in run.stderr
