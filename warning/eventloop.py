"""The event loop the service runs on: uvloop where it is installed (a dependency on Linux), else asyncio's own."""

from __future__ import annotations

import asyncio


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new event loop for `warning serve` and `warning worker`: uvloop's when installed, else asyncio's.

    uvloop answers HTTP and Redis round trips with less CPU per message than asyncio's selector loop, and CPU per
    message is what binds a fan-out. A factory handed to the one place that runs the loop (`web.run_app(loop=...)`,
    `asyncio.Runner(loop_factory=...)`) rather than a process-wide event loop policy: nothing else in the process
    changes (commands called in-process by the tests), and policies are deprecated from Python 3.14 on.
    """
    try:
        import uvloop
    except ImportError:  # not a dependency off Linux; asyncio's loop works the same, only slower
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def loop_name(loop: asyncio.AbstractEventLoop | None = None) -> str:
    """What the running (or given) loop is, for start-up lines and benchmark output: "uvloop" or "asyncio"."""
    loop = loop or asyncio.get_running_loop()
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
