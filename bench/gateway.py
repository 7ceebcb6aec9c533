"""A minimal Twilio-compatible Messages endpoint for benchmarks: answers every request like Twilio does.

    python bench/gateway.py --port 18080

It checks nothing but the path, keeps no state but a counter, and answers 201 with a real-shaped message resource,
so it costs every client the same. It runs on uvloop (where installed) and says so on its first output line.
For the benchmarks: GET /bench/stats gives the message count and, for each marker asked for with
POST /bench/watch?marker=M, the arrival time (time.monotonic, shared by every process of the machine) of the first
message whose body held it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

from aiohttp import web

from warning.eventloop import loop_name, new_event_loop

_counter = itertools.count(1)
_count = 0
#: markers watched and not seen yet; markers seen, with the time of their first message
_watched: set[str] = set()
_first: dict[str, float] = {}


async def create_message(request: web.Request) -> web.Response:
    global _count
    arrived = time.monotonic()
    form = await request.post()
    _count += 1
    n = next(_counter)
    if _watched:
        text = str(form.get("Body", ""))
        for marker in [m for m in _watched if m in text]:
            _watched.discard(marker)
            _first[marker] = arrived
    body = {"sid": f"SM{n:032x}", "status": "queued", "to": form.get("To"), "from": form.get("From"),
            "body": form.get("Body"), "num_segments": "1", "error_code": None, "error_message": None,
            "account_sid": request.match_info["sid"]}
    return web.Response(status=201, text=json.dumps(body), content_type="application/json")


async def watch(request: web.Request) -> web.Response:
    _watched.add(request.query["marker"])
    return web.Response(status=204)


async def stats(request: web.Request) -> web.Response:
    return web.json_response({"count": _count, "first": _first})


async def say_loop(app: web.Application) -> None:
    print(f"gateway event loop: {loop_name()}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", create_message)
    app.router.add_post("/bench/watch", watch)
    app.router.add_get("/bench/stats", stats)
    app.on_startup.append(say_loop)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None, backlog=4096,
                loop=new_event_loop())


if __name__ == "__main__":
    main()
