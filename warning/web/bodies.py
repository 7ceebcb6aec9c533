"""Request bodies read for handlers: JSON, forms and multipart uploads; anything malformed is a 400, never a 500.

aiohttp raises ValueError (a multipart type without a boundary, a part cut short), LookupError (a part in
an unknown charset) and json raises RecursionError (arrays nested 100,000 deep): all of them are the
client's mistake and are answered as such, with what was wrong.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import MultiDict, MultiDictProxy

from warning.errors import ApiError, BadRequest
from warning.web.keys import settings_key


class BodyTooLarge(ApiError):
    """413: a body larger than this endpoint takes."""

    status = 413


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


async def read_json(request: web.Request, *, max_bytes: int | None = None) -> Any:
    """The body parsed as JSON; 400 when it is not JSON, 413 when longer than `max_bytes`."""
    return parse_json(await read_bytes(request, max_bytes=max_bytes))


async def read_bytes(request: web.Request, *, max_bytes: int | None = None) -> bytes:
    """The raw body; 413 when longer than `max_bytes`."""
    if max_bytes is not None and (request.content_length or 0) > max_bytes:
        raise _too_large(max_bytes)
    data = await request.read()
    if max_bytes is not None and len(data) > max_bytes:
        raise _too_large(max_bytes)
    return data


def parse_json(data: bytes) -> Any:
    """Bytes parsed as JSON; 400 when they are not JSON (also NaN, nesting too deep, absurd numbers)."""
    try:
        return json.loads(data, parse_constant=_refuse_constant)
    except RecursionError:
        raise BadRequest("请求体不是有效的 JSON body is not valid JSON", "嵌套过深 nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, NaN, a 5,000-digit integer
        raise BadRequest("请求体不是有效的 JSON body is not valid JSON", str(exc)[:200]) from None


def _too_large(max_bytes: int) -> BodyTooLarge:
    return BodyTooLarge("请求体过大 request body too large", f"at most {max_bytes} bytes of JSON here")


async def read_form(request: web.Request) -> MultiDictProxy[Any]:
    """The posted form (urlencoded, or the text fields of a multipart one); 400 when it cannot be read.

    Files in a multipart form are skipped unread: no endpoint that takes a form takes a file, and aiohttp's
    own reader spools them to temporary files that a body cut short leaves open.
    """
    try:
        if request.content_type != "multipart/form-data":
            return await request.post()
        limit = request.app[settings_key].server.max_body_bytes
        form: MultiDict[str] = MultiDict()
        reader = await request.multipart()
        async for part in reader:
            if isinstance(part, BodyPartReader) and part.name and part.filename is None:
                form.add(part.name, await _text(part, limit))
        return MultiDictProxy(form)
    except (ValueError, LookupError, HttpProcessingError) as exc:  # a part's headers can be malformed too
        raise BadRequest("表单无效 malformed form", str(exc)[:200]) from None


async def _text(part: BodyPartReader, limit: int) -> str:
    data = bytearray()
    while chunk := await part.read_chunk():
        data += chunk
        if len(data) > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(data))
    # the bytes as sent: a form field has no business with Content-Encoding (a gzip part could be a bomb)
    return bytes(data).decode(part.get_charset(default="utf-8"))


async def read_file_part(request: web.Request, field: str, limit: int) -> tuple[bytes, str, str] | None:
    """The multipart part named `field`: its bytes (at most `limit`), file name and type; None when absent."""
    try:
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader) or part.name != field:
                continue
            data = bytearray()
            while chunk := await part.read_chunk():
                data += chunk
                if len(data) > limit:  # multipart parts are not held to client_max_size by aiohttp
                    raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(data))
            return bytes(data), part.filename or "", part.headers.get("Content-Type", "")
    except (ValueError, LookupError, HttpProcessingError) as exc:
        raise BadRequest("multipart 格式错误 malformed multipart body", str(exc)[:200]) from None
    return None
