"""A small Chrome DevTools Protocol client on aiohttp: start headless Chromium, navigate, evaluate, screenshot."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp


def artifacts_dir(*parts: str) -> Path:
    """Where browser tests keep their screenshots for a person to look at: $WARNING_ARTIFACTS (or the older
    $WARNING_SCREENSHOT_DIR), else tests/.artifacts/ (git-ignored)."""
    base = os.environ.get("WARNING_ARTIFACTS") or os.environ.get("WARNING_SCREENSHOT_DIR")
    path = Path(base) if base else Path(__file__).resolve().parent.parent / ".artifacts"
    path = path.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
         "--hide-scrollbars", "--remote-debugging-port=0")


class Page:
    """One browser tab driven over its DevTools websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)

    async def call(self, method: str, timeout_s: float = 30.0, **params: Any) -> dict[str, Any]:
        """Send one command and return its result (events that arrive meanwhile are dropped)."""
        cid = next(self._ids)
        await self.ws.send_str(json.dumps({"id": cid, "method": method, "params": params}))
        async with asyncio.timeout(timeout_s):
            async for msg in self.ws:
                doc = json.loads(msg.data)
                if doc.get("id") == cid:
                    if "error" in doc:
                        raise AssertionError(f"{method}: {doc['error']}")
                    return doc.get("result", {})  # type: ignore[no-any-return]
        raise AssertionError(f"{method}: the browser went away")

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout_s: float = 20.0) -> Any:
        """Evaluate until the expression is truthy; its value."""
        async with asyncio.timeout(timeout_s):
            while True:
                value = await self.evaluate(expression)
                if value:
                    return value
                await asyncio.wait({asyncio.get_running_loop().create_future()}, timeout=0.05)

    async def screenshot(self, path: Path, *, full: bool = False) -> None:
        """A PNG of the viewport, or (full) of the whole page at the viewport's width."""
        params: dict[str, Any] = {"format": "png", "captureBeyondViewport": full}
        if full:
            size = await self.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
            params["clip"] = {"x": 0, "y": 0, "width": size[0], "height": min(size[1], 8000), "scale": 1}
        data = await self.call("Page.captureScreenshot", **params)
        path.write_bytes(base64.b64decode(data["data"]))

    # ---- driving pages like a person ---------------------------------------------------------
    async def width(self, width: int, height: int = 900) -> None:
        """Resize the viewport (390: a phone, 1400: a desk)."""
        await self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                        mobile=False)

    async def goto(self, url: str, timeout_s: float = 20.0) -> None:
        """Open `url` and wait until the new document has loaded."""
        await self.evaluate("window.__leaving = 1")
        await self.call("Page.navigate", url=url)
        await self.loaded(timeout_s)

    async def loaded(self, timeout_s: float = 20.0) -> None:
        """Wait for the document that replaced the one marked by goto() or submit() to finish loading."""
        await self.wait_for("!window.__leaving && document.readyState === 'complete'", timeout_s)

    async def submit(self, selector: str, timeout_s: float = 20.0) -> None:
        """Click a submit button (a person's click: the form's own checks and scripts run) and wait for the
        page the server answers with."""
        await self.evaluate("window.__leaving = 1")
        await self.click(selector)
        await self.loaded(timeout_s)

    async def click(self, selector: str) -> None:
        found = await self.evaluate(f"(function () {{ var el = document.querySelector({json.dumps(selector)}); "
                                    "if (!el) { return false; } el.scrollIntoView({block: 'center'}); el.click(); "
                                    "return true; })()")
        assert found, f"nothing matches {selector}"

    async def fill(self, selector: str, value: str) -> None:
        """Set a field's value as typing would: input and change events fire."""
        found = await self.evaluate(f"(function () {{ var el = document.querySelector({json.dumps(selector)}); "
                                    f"if (!el) {{ return false; }} el.value = {json.dumps(value)}; "
                                    "el.dispatchEvent(new Event('input', {bubbles: true})); "
                                    "el.dispatchEvent(new Event('change', {bubbles: true})); return true; })()")
        assert found, f"nothing matches {selector}"

    async def text(self, selector: str) -> str | None:
        value = await self.evaluate(f"(function () {{ var el = document.querySelector({json.dumps(selector)}); "
                                    "return el ? el.textContent : null; })()")
        return value if value is None else str(value)

    async def overflow_x(self) -> tuple[int, int]:
        """(scrollWidth, innerWidth): the page scrolls sideways when the first is larger."""
        sizes = await self.evaluate("[document.scrollingElement.scrollWidth, window.innerWidth]")
        return int(sizes[0]), int(sizes[1])

    async def accept_dialogs(self) -> None:
        """Answer every confirm() with OK, as the person clicking would (set for each new document)."""
        await self.call("Page.addScriptToEvaluateOnNewDocument",
                        source="window.confirm = function () { return true; };")

    async def set_viewport(self, width: int, height: int) -> None:
        """Lay the page out at this size (CSS pixels), as a window of that size would."""
        await self.width(width, height)

    async def full_screenshot(self, path: Path, *, max_height: int = 4000) -> None:
        """The whole page (up to max_height) at the current width; the viewport is put back afterwards."""
        width, height = await self.evaluate("[innerWidth, innerHeight]")
        full = await self.evaluate("document.documentElement.scrollHeight")
        await self.set_viewport(width, min(max(full, height), max_height))
        try:
            await self.screenshot(path)
        finally:
            await self.set_viewport(width, height)

    async def click_and_wait(self, selector: str, timeout_s: float = 20.0) -> None:
        """Click an element that leads to another document (a link, a form's button) and wait for it."""
        await self.evaluate("window.__leaving = 1")
        await self.evaluate(f"document.querySelector({json.dumps(selector)}).click()")
        await self.loaded(timeout_s)

    async def type_into(self, selector: str, text: str) -> None:
        """Put text into a field as typing would (the field's value, then an input event)."""
        await self.evaluate(f"(function (el) {{ el.focus(); el.value = {json.dumps(text)}; "
                            "el.dispatchEvent(new Event('input', {bubbles: true})); })"
                            f"(document.querySelector({json.dumps(selector)}))")

    async def set_files(self, selector: str, *paths: Path) -> None:
        """Choose files for an <input type=file>, as the file picker would."""
        root = await self.call("DOM.getDocument", depth=0)
        found = await self.call("DOM.querySelector", nodeId=root["root"]["nodeId"], selector=selector)
        assert found.get("nodeId"), f"no element {selector}"
        await self.call("DOM.setFileInputFiles", nodeId=found["nodeId"], files=[str(p) for p in paths])


@asynccontextmanager
async def headless(profile: Path, *, width: int = 1280, height: int = 900) -> AsyncIterator[Page]:
    """Start Chromium with its own profile directory; yield its first tab; stop it (by its own pid)."""
    assert CHROMIUM is not None
    proc = await asyncio.create_subprocess_exec(CHROMIUM, *FLAGS, f"--user-data-dir={profile}",
                                                f"--window-size={width},{height}", "about:blank",
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    assert proc.stderr is not None
    drain: asyncio.Task[bytes] | None = None
    try:
        async with asyncio.timeout(30):
            while b"DevTools listening on " not in (line := await proc.stderr.readline()):
                if not line:
                    raise AssertionError("chromium exited before DevTools was up")
        drain = asyncio.create_task(proc.stderr.read())  # keep the pipe from filling up
        endpoint = line.decode().split("DevTools listening on ", 1)[1].strip()
        http = endpoint.replace("ws://", "http://").split("/devtools/")[0]
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{http}/json/list") as resp:
                target = next(t for t in await resp.json() if t["type"] == "page")
            async with session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                page = Page(ws)
                await page.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                                deviceScaleFactor=1, mobile=False)
                yield page
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        if drain is not None:
            await drain
