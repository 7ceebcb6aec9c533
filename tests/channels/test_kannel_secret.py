"""The Kannel DLR hook is authenticated by a secret in the URL: the channel must put it in every dlr-url."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.conftest import make_settings
from warning.bootstrap import build_channels, channel_tables
from warning.channel import Outbound
from warning.clock import FakeClock


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


async def test_no_secret_no_k(tmp_path: Path) -> None:
    [url] = await _dlr_urls(tmp_path)
    assert "k" not in parse_qs(urlsplit(url).query)
