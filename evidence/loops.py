"""pyHanko and pyhanko-certvalidator drive asyncio with `asyncio.run()`, which fails in a thread whose event
loop is already running (a caller inside an async framework, or Playwright's sync API in tests). Everything
here that reaches them goes through `outside_event_loop`: inline when no loop runs, else on a short-lived
worker thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def outside_event_loop(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`fn(*args, **kwargs)`, on a worker thread if this thread runs an event loop."""
    if not _loop_running():
        return fn(*args, **kwargs)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn, *args, **kwargs).result()


def run_coroutine(coro: Awaitable[T]) -> T:
    """Run a coroutine to completion from sync code, even if an event loop is already running here."""

    async def wrapper() -> T:
        return await coro

    return outside_event_loop(asyncio.run, wrapper())
