"""Redis stopped, out of memory (maxmemory with noeviction) or read-only (made a replica): the API answers 503 with
Retry-After and the JSON error body, never a 500; reads that need no write still answer; all recovers with Redis."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient
from redis.exceptions import OutOfMemoryError

from tests.conftest import auth
from warning.redis_server import PrivateRedis, free_port

pytestmark = pytest.mark.timeout(90)
DRAFT = {"event": "rainstorm", "level": "blue", "headline": "暴雨蓝色预警", "areas": ["510722"]}
_phones = itertools.count(1)


def _contact() -> dict[str, str]:
    return {"name": "赵敏", "phone": f"158{next(_phones):08d}", "role": "hazard_monitor", "region": "510722103"}


#: requests that write, each with who may send it
WRITES = [("POST", "/api/v1/warnings", "issuer", lambda: DRAFT), ("POST", "/api/v1/contacts", "admin", _contact)]
#: reads of the registry and of warnings, filtered as the dashboard and the API clients do
READS = ["/api/v1/contacts", "/api/v1/contacts?region=510722&role=hazard_monitor",
         "/api/v1/contacts?region=510722103&role=hazard_monitor&active=true&channel=sms",
         "/api/v1/contacts?active=false", "/api/v1/contacts?role=cadre&limit=1", "/api/v1/warnings"]


async def _unavailable(resp: Any) -> dict[str, Any]:
    assert resp.status == 503, await resp.text()
    assert resp.headers["Retry-After"].isdigit() and int(resp.headers["Retry-After"]) > 0
    body: dict[str, Any] = await resp.json()
    assert body["error"] and body["detail"] and body["request_id"]
    return body


async def _writes_work(client: TestClient[Any, Any]) -> None:
    for method, path, who, body in WRITES:
        resp = await client.request(method, path, json=body(), headers=auth(who))
        assert resp.status == 201, await resp.text()


async def _reads_work(client: TestClient[Any, Any]) -> list[Any]:
    out = []
    for path in READS:
        resp = await client.get(path, headers=auth("viewer"))
        assert resp.status == 200, (path, await resp.text())
        out.append(await resp.json())
    return out


async def test_redis_stopped_is_503_and_the_service_recovers(app_client: TestClient[Any, Any],
                                                             own_redis: PrivateRedis) -> None:
    await _writes_work(app_client)
    own_redis.stop()
    for method, path, who, body in WRITES:
        await _unavailable(await app_client.request(method, path, json=body(), headers=auth(who)))
    for path in READS:
        await _unavailable(await app_client.get(path, headers=auth("viewer")))
    own_redis.start()
    await _reads_work(app_client)
    await _writes_work(app_client)


async def test_out_of_memory_writes_are_503_and_reads_still_answer(app_client: TestClient[Any, Any],
                                                                   admin_redis: aioredis.Redis) -> None:
    await _writes_work(app_client)
    before = await _reads_work(app_client)
    assert before[1]["items"]  # the filtered listing has someone to list
    await admin_redis.config_set("maxmemory-policy", "noeviction")
    await admin_redis.config_set("maxmemory", "1")  # below what is used: every write is refused (OOM)
    with pytest.raises(OutOfMemoryError):  # the server itself refuses writes now
        await admin_redis.set("probe", "x")
    for method, path, who, body in WRITES:
        assert "out of memory" in (await _unavailable(await app_client.request(method, path, json=body(),
                                                                               headers=auth(who))))["detail"]
    assert await _reads_work(app_client) == before  # listing contacts needs no scratch key
    await admin_redis.config_set("maxmemory", "0")
    await _writes_work(app_client)


async def test_read_only_replica_writes_are_503_and_reads_still_answer(app_client: TestClient[Any, Any],
                                                                       admin_redis: aioredis.Redis) -> None:
    await _writes_work(app_client)
    before = await _reads_work(app_client)
    await admin_redis.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))  # a master that is not there
    try:
        for method, path, who, body in WRITES:
            assert "read-only" in (await _unavailable(await app_client.request(method, path, json=body(),
                                                                               headers=auth(who))))["detail"]
        assert await _reads_work(app_client) == before
    finally:
        await admin_redis.execute_command("REPLICAOF", "NO", "ONE")
    await _writes_work(app_client)


async def test_the_document_lists_the_503_on_every_operation(app_client: TestClient[Any, Any]) -> None:
    spec = await (await app_client.get("/api/v1/openapi.json")).json()
    operations = [(m, p, op) for p, ops in spec["paths"].items() for m, op in ops.items()]
    assert len(operations) > 40
    for method, path, op in operations:
        assert "503" in op["responses"], (method, path)
    assert "Retry-After" in spec["paths"]["/api/v1/warnings"]["post"]["responses"]["503"]["headers"]
