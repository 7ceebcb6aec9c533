"""Health check and the OpenAPI document."""

from __future__ import annotations

from aiohttp import web
from redis.exceptions import RedisError

from warning.web.keys import clock_key, redis_info_key, redis_key, route_tables_key, settings_key
from warning.web.openapi import build_openapi
from warning.web.routing import ApiRoutes

routes = ApiRoutes("system")


@routes.get("/healthz", summary="Liveness and Redis reachability", roles=None,
            responses={"503": {"description": "Redis unreachable"}})
async def healthz(request: web.Request) -> web.Response:
    where: dict[str, str] = request.app[redis_info_key]
    info: dict[str, object] = dict(where)
    clock = request.app[clock_key]
    started = clock.monotonic()
    try:
        await request.app[redis_key].ping()
        info.update(ok=True, latency_ms=round((clock.monotonic() - started) * 1000, 2))
        status = 200
    except (RedisError, OSError) as exc:  # any connection failure means unhealthy, not a 500
        info.update(ok=False, error=type(exc).__name__)
        status = 503
    return web.json_response({"status": "ok" if status == 200 else "degraded", "redis": info}, status=status)


@routes.get("/api/v1/openapi.json", summary="This API's OpenAPI 3 document", roles=None)
async def openapi(request: web.Request) -> web.Response:
    from warning.web.app import app_version

    settings = request.app[settings_key]
    docs = [d for table in request.app[route_tables_key] for d in table.docs]
    server = settings.server.public_url or f"http://{settings.server.host}:{settings.server.port}"
    return web.json_response(build_openapi(docs, version=app_version(), server_url=server))


def setup(app: web.Application) -> None:
    from warning.web.app import add_routes

    add_routes(app, routes)
