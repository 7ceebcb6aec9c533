"""Fetching a feed's documents: conditional requests, a time limit and a size limit; `file://` for offline use."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import aiohttp

from warning.errors import EarlyWarningError

#: bytes read from a response at a time while its size is checked
CHUNK_BYTES = 64 * 1024


class FetchError(EarlyWarningError):
    """A fetch that failed: a short reason (the metric and health label) and a detail people read; no secrets."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}")


@dataclass(frozen=True, slots=True)
class Fetched:
    """A document as fetched (status 200), or nothing new (status 304), with the validators for the next request."""

    status: int
    body: bytes = b""
    etag: str | None = None
    last_modified: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.status == 304


async def fetch(http: aiohttp.ClientSession, url: str, *, headers: Mapping[str, str] | None = None,
                etag: str | None = None, last_modified: str | None = None, timeout_s: float = 10.0,
                max_bytes: int = 1024 * 1024) -> Fetched:
    """GET `url` (http, https or file); FetchError on a failure, a status other than 200/304, or a body too big."""
    if urlsplit(url).scheme == "file":
        return await _read_file(url, last_modified=last_modified, max_bytes=max_bytes)
    sent = dict(headers or {})
    if etag:
        sent["If-None-Match"] = etag
    if last_modified:
        sent["If-Modified-Since"] = last_modified
    try:
        async with http.get(url, headers=sent, timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            if resp.status == 304:
                return Fetched(304, etag=etag, last_modified=last_modified)
            if resp.status != 200:
                raise FetchError(f"http_{resp.status}", f"HTTP {resp.status}")
            if resp.content_length is not None and resp.content_length > max_bytes:
                raise FetchError("too_large", f"文档过大 body of {resp.content_length} bytes, more than {max_bytes}")
            body = bytearray()
            async for chunk in resp.content.iter_chunked(CHUNK_BYTES):
                body += chunk
                if len(body) > max_bytes:
                    raise FetchError("too_large", f"文档过大 body larger than {max_bytes} bytes")
            return Fetched(200, bytes(body), resp.headers.get("ETag"), resp.headers.get("Last-Modified"))
    except TimeoutError:
        raise FetchError("timeout", f"超时 no answer within {timeout_s:g} s") from None
    except aiohttp.ClientError as exc:
        # the exception's text may hold the URL (and so a token in it): say only what kind of failure it was
        raise FetchError("connection", f"连接失败 connection failed ({type(exc).__name__})") from None


async def _read_file(url: str, *, last_modified: str | None, max_bytes: int) -> Fetched:
    path = Path(url2pathname(urlsplit(url).path))
    try:
        stat = await asyncio.to_thread(path.stat)
    except OSError as exc:
        raise FetchError("file", f"无法读取文件 cannot read the file: {exc.strerror}") from None
    # our own validator for a file: its modification time (to the nanosecond) and size
    modified = f"file:{stat.st_mtime_ns}:{stat.st_size}"
    if last_modified == modified:
        return Fetched(304, last_modified=modified)
    if stat.st_size > max_bytes:
        raise FetchError("too_large", f"文档过大 file of {stat.st_size} bytes, more than {max_bytes}")
    try:
        body = await asyncio.to_thread(path.read_bytes)
    except OSError as exc:
        raise FetchError("file", f"无法读取文件 cannot read the file: {exc.strerror}") from None
    if len(body) > max_bytes:
        raise FetchError("too_large", f"文档过大 file larger than {max_bytes} bytes")
    return Fetched(200, body, last_modified=modified)
