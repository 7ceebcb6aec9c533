"""The HTTP side of Idempotency-Key: replay the first answer, refuse a reused key with another body."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from warning.errors import ApiError, BadRequest, Conflict
from warning.idempotency import TTL_S, IdempotencyStore, digest
from warning.web.keys import services_key
from warning.web.routing import principal

logger = logging.getLogger(__name__)
HEADER = "Idempotency-Key"
MAX_KEY_CHARS = 255
#: the answer to a request, as (status, JSON body)
Answer = tuple[int, Any]
#: OpenAPI declaration of the header
PARAM = {"name": HEADER, "in": "header", "required": False,
         "description": f"一个请求一个键：{TTL_S // 3600} 小时内重复发送只得到第一次的回答，不会再创建 a key per request "
                        f"(per token): a repeat within {TTL_S // 3600} h gets the first answer and creates nothing; "
                        "the same key with another body → 422, while the first is still running → 409",
         "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_CHARS}}


class Unprocessable(ApiError):
    """422: the request is well-formed but cannot be taken as sent (an Idempotency-Key reused with another body)."""

    status = 422


def fingerprint(path: str, body: bytes) -> str:
    """What makes two requests the same: path and body (JSON compared by value, not by spacing or key order)."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, ensure_ascii=False).encode()
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        canonical = body
    return digest(path.encode() + b"\n" + canonical)


def _respond(status: int, body: Any, *, replayed: bool = False) -> web.Response:
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return web.json_response(body, status=status, headers=headers, dumps=lambda o: json.dumps(o, ensure_ascii=False))


def _key_of(request: web.Request) -> str | None:
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not 0 < len(key) <= MAX_KEY_CHARS or not all(" " <= c <= "~" for c in key):
        raise BadRequest("invalid Idempotency-Key", f"幂等键应为1至{MAX_KEY_CHARS}个可见ASCII字符 the key must be 1 to "
                                                    f"{MAX_KEY_CHARS} visible ASCII characters")
    return key


async def once(request: web.Request, body: bytes, new_id: str, run: Callable[[str], Awaitable[Answer]],
               stored: Callable[[str], Awaitable[Answer | None]]) -> web.Response:
    """Run a create at most once per Idempotency-Key (when the request has one).

    :param new_id: the warning id the create is to use; a key remembers it, so a repeat after a crash finds
        what the first attempt stored
    :param run: the create, given the warning id to use
    :param stored: the answer describing what is stored under a warning id, None when nothing is
    """
    key = _key_of(request)
    if key is None:
        return _respond(*await run(new_id))
    services = request.app[services_key]
    store = IdempotencyStore(services.redis, clock=services.clock)
    caller = principal(request).name
    fp = fingerprint(request.path, body)
    held = await store.claim(caller, key, fp, new_id)
    wid = new_id
    if held is not None:
        if held.fingerprint != fp:
            raise Unprocessable("Idempotency-Key reused", "该幂等键已用于另一个请求 the key was used with another request "
                                                          "body; use a new key for a new request")
        if held.status is not None:
            return _respond(held.status, held.body, replayed=True)
        if not store.stale(held):
            raise Conflict("request in progress", "同一幂等键的请求仍在处理中，请稍后重试 the first request with this "
                                                  "key is still being handled; repeat it in a moment")
        found = await stored(held.warning_id)
        if found is None and not await store.take_over(caller, key, held):
            raise Conflict("request in progress", "同一幂等键的请求仍在处理中，请稍后重试 the first request with this "
                                                  "key is still being handled; repeat it in a moment")
        if found is not None:
            await store.answer(caller, key, fp, held.warning_id, *found)
            return _respond(*found, replayed=True)
        wid = held.warning_id
    try:
        status, answer = await run(wid)
    except ApiError:
        await store.release(caller, key)  # refused before anything was stored: the key may be used again
        raise
    except Exception:
        # stored or not? Look: if this lookup fails too, the key stays held and a repeat after the lease looks again
        found = await stored(wid)
        if found is None:
            await store.release(caller, key)
            raise
        logger.exception("create of %s failed after it was stored; answering with what was stored", wid)
        status, answer = found
    await store.answer(caller, key, fp, wid, status, answer)
    return _respond(status, answer)
