"""One-time sign-in links a person can make: `warning login-link` against the running service's store, and the links
`serve --demo` prints, one per dashboard role; neither ever prints a token."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import TOKENS, AppFactory
from tests.dashboard.conftest import World
from tests.test_private_redis import servers_on, wait_for
from warning.cli import main
from warning.redis_server import PrivateRedis, free_port
from warning.web.dashboard_session import COOKIE, issue_login_link


def _config(tmp_path: Path, **server: str) -> Path:
    lines = ["[server]", 'log_format = "text"', *(f'{k} = "{v}"' for k, v in server.items()),
             "[redis]", f'data_dir = "{tmp_path / "data"}"']
    for name, value in TOKENS.items():
        role = {"issuer2": "issuer", "approver2": "approver"}.get(name, name)
        lines += ["[[auth.tokens]]", f'name = "{name}"', f'role = "{role}"', f'token = "{value}"']
    path = tmp_path / "service.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def store_env(redis_server: PrivateRedis, monkeypatch: pytest.MonkeyPatch) -> PrivateRedis:
    """The command finds the test's store through WARNING_REDIS_URL, as it would find `[redis] url`."""
    monkeypatch.setenv("WARNING_REDIS_URL", redis_server.url)
    return redis_server


async def _run(*argv: str) -> int:
    """The command, run as from a shell (its own event loop, in a thread beside the test's)."""
    return await asyncio.to_thread(main, list(argv))


def _no_token_in(text: str) -> bool:
    return not any(value in text for value in TOKENS.values())


async def test_the_command_prints_a_link_that_signs_in_once(world: World, store_env: PrivateRedis, redis: Any,
                                                            tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, public_url="https://warn.example.cn/")
    assert await _run("login-link", "--token-name", "approver", "--config", str(config)) == 0
    out, err = capsys.readouterr()
    [line] = out.splitlines()
    assert line.startswith("https://warn.example.cn/login/link?t=") and line.endswith("&next=/dashboard")
    assert "approver" in err and "北京时间" in err and "仅可使用一次" in err and _no_token_in(out + err)
    [key] = await redis.keys("ew:login:*")
    assert 590 <= await redis.ttl(key) <= 600  # ten minutes unless --ttl says otherwise
    link = urlsplit(line)
    path = f"{link.path}?{link.query}"
    resp = await world.client.get(path, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/dashboard"
    page = await world.client.get("/dashboard")
    assert "approver · 审签人" in await page.text()  # signed in as that token
    world.client.session.cookie_jar.clear()
    assert (await world.client.get(path, allow_redirects=False)).status == 403  # once only
    assert await redis.keys("ew:login:*") == []


@pytest.mark.parametrize(("ttl", "seconds"), [("90s", 90), ("90", 90), ("2h", 7200), ("24h", 86400)])
async def test_ttl_sets_how_long_the_link_lasts(store_env: PrivateRedis, redis: Any, tmp_path: Path, ttl: str,
                                                seconds: int) -> None:
    assert await _run("login-link", "--token-name", "viewer", "--ttl", ttl, "--config", str(_config(tmp_path))) == 0
    [key] = await redis.keys("ew:login:*")
    assert seconds - 10 <= await redis.ttl(key) <= seconds


@pytest.mark.parametrize("ttl", ["0", "25h", "10d", "abc", "-5m", ""])
async def test_a_bad_ttl_is_refused_and_writes_nothing(store_env: PrivateRedis, redis: Any, tmp_path: Path,
                                                       ttl: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        await _run("login-link", "--token-name", "viewer", "--ttl", ttl, "--config", str(_config(tmp_path)))
    assert stop.value.code == 2 and "--ttl" in capsys.readouterr().err
    assert await redis.keys("ew:login:*") == []


@pytest.mark.parametrize(("name", "words"), [("nobody", "no token named 'nobody'"),
                                             ("feed", "cannot use the dashboard")])
async def test_a_token_that_cannot_sign_in_gets_one_line_and_exit_2(store_env: PrivateRedis, redis: Any,
                                                                    tmp_path: Path, name: str, words: str,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert await _run("login-link", "--token-name", name, "--config", str(_config(tmp_path))) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1 and words in err and _no_token_in(err)
    assert await redis.keys("ew:login:*") == []


def test_without_a_running_service_the_command_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("WARNING_REDIS_URL", raising=False)
    assert main(["login-link", "--token-name", "admin", "--config", str(_config(tmp_path))]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "warning serve" in err and str(tmp_path / "data") in err
    assert servers_on(tmp_path / "data") == []


async def test_a_rotated_token_ends_its_links(world: World, make_client: AppFactory) -> None:
    path = await issue_login_link(world.client.app, "approver")
    rotated = [{"name": "approver", "role": "approver", "token": "rotated-approver-token-0001"}]
    other = await make_client(auth={"tokens": rotated})
    assert (await other.get(path, allow_redirects=False)).status == 403


async def test_a_link_with_a_mangled_signature_is_refused_not_an_error(world: World) -> None:
    path = await issue_login_link(world.client.app, "viewer")
    nonce = path.split("t=")[1].split(".")[0]
    for signature in ("签名", "%00", ""):
        resp = await world.client.get(f"/login/link?t={nonce}.{signature}", allow_redirects=False)
        assert resp.status in (400, 403) and COOKIE not in {c.key for c in world.client.session.cookie_jar}
    assert (await world.client.get(path, allow_redirects=False)).status == 303  # still unused


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("WARNING_") or k == "WARNING_TESTING"}


def test_serve_demo_prints_one_working_link_per_role_and_no_token(tmp_path: Path) -> None:
    port = free_port()
    out_path, err_path = tmp_path / "serve.out", tmp_path / "serve.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "warning", "serve", "--demo", "--port", str(port)],
                                stdout=out, stderr=err, cwd=tmp_path, env=_env())
    try:
        def printed() -> bool:
            assert proc.poll() is None, err_path.read_text(errors="replace")[-2000:]
            return "Running on" in out_path.read_text()

        wait_for(printed, "serve --demo to start", 90)
        text = out_path.read_text()
        links = {line.split()[1]: line.split()[2] for line in text.splitlines() if "/login/link?t=" in line}
        assert list(links) == ["admin", "issuer", "approver", "viewer"]  # no link for the feed's token
        assert all(u.startswith(f"http://127.0.0.1:{port}/login/link?t=") for u in links.values())
        assert "管理员 admin" in text and "审签人 approver" in text
        assert "token-0000" not in text + err_path.read_text()  # the demo tokens' values are never printed
        opener = urllib.request.build_opener(_NoRedirect)
        for role, url in links.items():
            try:
                opener.open(url, timeout=10)
                pytest.fail("a link must answer with a redirect")
            except urllib.error.HTTPError as exc:
                assert exc.code == 303, role
                cookie = exc.headers["Set-Cookie"].split(";")[0]
            name, value = cookie.split("=", 1)
            payload = json.loads(base64.urlsafe_b64decode(value.split(".")[0] + "=="))
            assert (name, payload["n"]) == (COOKIE, f"demo-{role}")
            req = urllib.request.Request(f"http://127.0.0.1:{port}/dashboard", headers={"Cookie": cookie})
            with urllib.request.urlopen(req, timeout=10) as page:
                assert page.status == 200
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert servers_on(tmp_path / "data") == []


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None

