"""Helpers for the desk pages' tests: sign in as a role, read a page's CSRF token, post a form, read a workbook."""

from __future__ import annotations

import io
import re
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from tests.dashboard.conftest import login

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def sign_in(client: TestClient[Any, Any], who: str) -> str:
    """Sign in as a test token (after signing out whoever was in); the session's CSRF token."""
    client.session.cookie_jar.clear()
    assert (await login(client, who)).status == 303
    found = _CSRF.search(await (await client.get("/dashboard")).text())
    assert found is not None
    return found.group(1)


async def post(client: TestClient[Any, Any], path: str, data: dict[str, Any] | list[tuple[str, Any]],
               csrf: str | None) -> aiohttp.ClientResponse:
    """Post a form (with the CSRF token unless None); redirects are not followed."""
    fields = list(data.items()) if isinstance(data, dict) else list(data)
    if csrf is not None:
        fields.append(("csrf", csrf))
    return await client.post(path, data=fields, allow_redirects=False)


async def upload(client: TestClient[Any, Any], path: str, body: bytes, filename: str,
                 csrf: str | None) -> aiohttp.ClientResponse:
    """Post a file as a browser's multipart form does."""
    form = aiohttp.FormData()
    if csrf is not None:
        form.add_field("csrf", csrf)
    form.add_field("file", body, filename=filename, content_type="application/octet-stream")
    return await client.post(path, data=form, allow_redirects=False)


def rows_of(html: str, table_id: str) -> list[list[str]]:
    """The text of each body row's cells of a table (tags dropped, spaces squeezed)."""
    body = html.split(f'id="{table_id}"', 1)[1].split("</table>", 1)[0].split("<tbody>", 1)[1]
    rows = []
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.DOTALL):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.DOTALL)
        rows.append([re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", c)).strip() for c in cells])
    return rows


def workbook(body: bytes) -> Any:
    from openpyxl import load_workbook

    return load_workbook(io.BytesIO(body))
