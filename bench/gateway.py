"""A minimal Twilio-compatible Messages endpoint for benchmarks: answers every request like Twilio does.

    python bench/gateway.py --port 18080

It checks nothing but the path, keeps no state but a counter, and answers 201 with a real-shaped
message resource, so it costs every client the same.
"""

from __future__ import annotations

import argparse
import itertools
import json

from aiohttp import web

_counter = itertools.count(1)


async def create_message(request: web.Request) -> web.Response:
    form = await request.post()
    n = next(_counter)
    body = {"sid": f"SM{n:032x}", "status": "queued", "to": form.get("To"), "from": form.get("From"),
            "body": form.get("Body"), "num_segments": "1", "error_code": None, "error_message": None,
            "account_sid": request.match_info["sid"]}
    return web.Response(status=201, text=json.dumps(body), content_type="application/json")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", create_message)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None, backlog=4096)


if __name__ == "__main__":
    main()
