"""Health check and the OpenAPI document."""

from __future__ import annotations

from aiohttp import web
from redis.exceptions import RedisError

from warning.web.keys import redis_key, route_tables_key, settings_key
from warning.web.openapi import build_openapi
from warning.web.routing import ApiRoutes

routes = ApiRoutes("system")


@routes.get("/healthz", summary="Liveness: whether the service and its store answer (no token needed)", roles=None,
            description="Says only `ok` or `unavailable`: where the store is and how it is reached is not "
                        "for anonymous callers.",
            responses={"503": {"description": "the store does not answer"}})
async def healthz(request: web.Request) -> web.Response:
    try:
        await request.app[redis_key].ping()
    except (RedisError, OSError):  # any connection failure means unhealthy, not a 500
        return web.json_response({"status": "unavailable"}, status=503, headers={"Retry-After": "5"})
    return web.json_response({"status": "ok"})


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
