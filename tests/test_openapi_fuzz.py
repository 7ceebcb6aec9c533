"""A property-based run of our OpenAPI document (schemathesis) against the real app on a real Redis, bounded in
examples and derandomized: no 5xx, and every answer conforms to the document (statuses listed, content types,
bodies, 405 with Allow for methods a path lacks)."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import pytest
import redis
import requests
import schemathesis
from aiohttp import web

from tests.conftest import TOKENS, make_settings
from warning import keys
from warning.clock import SystemClock
from warning.redis_server import PrivateRedis, free_port
from warning.web.app import create_app
from warning.web.dashboard_session import COOKIE
from warning.web.keys import Deps, session_book_key, settings_key

# a hard bound on the whole run; it takes ~20 s on the 2-core development machine
pytestmark = pytest.mark.timeout(150)
#: examples per operation and phase; the run is derandomized, so each run sends the same requests
MAX_EXAMPLES = 6
#: each request goes as one of these in turn, admin first: every role's answers are held to the document
ROLES = ("admin", "issuer", "approver", "viewer", "feed")
SESSIONS: dict[str, str] = {}
USED: Counter[str] = Counter()
_turn = itertools.count()


class ServedApp:
    """The app served over real HTTP from a thread with its own event loop (schemathesis calls it with requests)."""

    def __init__(self, app: web.Application) -> None:
        self.app, self.port = app, free_port()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), name="fuzzed-app", daemon=True)
        self.error: BaseException | None = None
        self.redis_url = ""

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        runner = web.AppRunner(self.app)
        try:
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.port).start()
            self._ready.set()
            await self._stop.wait()
        except BaseException as exc:
            self.error = exc
            self._ready.set()
            raise
        finally:
            await runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        self._thread.start()
        assert self._ready.wait(30) and self.error is None, self.error
        return self

    def __exit__(self, *_: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedApp]:
    """The real app (dispatch off: nothing is sent) on a Redis of its own."""
    tmp = Path(tmp_path_factory.mktemp("fuzz"))
    server = PrivateRedis(tmp / "redis", port=free_port(), appendonly=False)
    server.start()
    try:
        settings = make_settings(tmp, server={"session_secret": "fuzz-session-secret-0123456789"})
        app = create_app(settings, deps=Deps(redis_url=server.url, extra={"background": False}))
        with ServedApp(app) as served:
            served.redis_url = server.url
            yield served
    finally:
        server.stop()


@pytest.fixture(scope="module")
def api_schema(served: ServedApp) -> Any:
    """The document the app serves; requests carry a role's bearer token and dashboard session (see `_as`)."""
    doc = requests.get(f"{served.url}/api/v1/openapi.json", timeout=10).json()
    book = served.app[session_book_key]
    for token in served.app[settings_key].tokens:
        SESSIONS[token.name] = book.issue(token, SystemClock().now())
    config = schemathesis.Config.from_dict({
        "base-url": served.url,
        # unknown query parameters are ignored, as HTTP APIs do: not a refusal the document promises
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none",
                       "allow-extra-parameters": False},
        "phases": {"stateful": {"enabled": False}},
        # the document gives each body's shape, not every rule (a phone that exists, a region in the tree, an
        # event type we know): a schema-valid request may rightly get its documented 400
        "checks": {"positive_data_acceptance": {"enabled": False}},
    })
    return schemathesis.openapi.from_dict(doc, config=config)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.auth(refresh_interval=None)
class EachRoleInTurn:
    """A role's bearer token and dashboard session on each request, the roles in turn (never on a request that
    leaves credentials out on purpose: schemathesis does not call an auth provider for those)."""

    def get(self, case: Any, ctx: Any) -> str:
        return ROLES[next(_turn) % len(ROLES)]

    def set(self, case: Any, data: str, ctx: Any) -> None:
        USED[data] += 1
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {TOKENS[data]}",
                        "Cookie": f"{COOKIE}={SESSIONS[data]}"}


@schema.parametrize()
def test_the_api_keeps_to_its_document(case: Any, served: ServedApp) -> None:
    # every request comes from 127.0.0.1: the cases sent without credentials on purpose would soon pause that
    # address (20 answers 401 in 5 minutes) and leave the rest of the run answered 429. Throttling has its own
    # tests; here every case starts with no failures counted.
    with redis.Redis.from_url(served.redis_url) as r:
        stale = list(r.scan_iter(match=keys.throttle_key("*", "*", 0)[:-1] + "*", count=1000))
        if stale:
            r.delete(*stale)
    case.call_and_validate(timeout=10)


def test_the_run_went_as_every_role() -> None:
    """The run above (pytest keeps file order) sent requests as every role, not only as the admin."""
    if not USED:
        pytest.skip("only meaningful after the run above")
    assert set(USED) == set(ROLES) and min(USED.values()) >= 20, USED
