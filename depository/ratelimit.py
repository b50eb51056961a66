"""Per-key rate limits: a token bucket in-process, or a shared fixed window in Redis when configured
(so N API processes enforce one limit together).

When Redis is unreachable the shared limiter falls back to the in-process bucket (`FailoverRateLimiter`)
instead of failing the request (issue 21: every deposit answered 500 while Redis was stopped, though
docs/deploy.md promises that intake goes on). Each process then enforces the limit on its own, so a key
can get up to N times its rate from N processes until Redis is back; /healthz says so. Redis is tried
again after `RETRY_S`, so a dead Redis costs one failed connect per interval, not one per request.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from depository.errors import RateLimited

log = logging.getLogger(__name__)


class LocalRateLimiter:
    def __init__(self, per_second: float, burst: int) -> None:
        self.rate = per_second
        self.burst = max(burst, int(per_second) or 1)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def check(self, key: str, cost: int = 1) -> None:
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens < cost:
                self._buckets[key] = (tokens, now)
                wait = max(1, int((cost - tokens) / self.rate + 0.999))
                raise RateLimited(f"rate limit of {self.rate:g} requests/s exceeded", retry_after=wait)
            self._buckets[key] = (tokens - cost, now)


class RedisRateLimiter:
    def __init__(self, redis: Any, per_second: float, burst: int) -> None:
        self.redis = redis
        self.limit = max(burst, int(per_second) or 1)

    def check(self, key: str, cost: int = 1) -> None:
        window = int(time.time())
        rkey = f"depository:rl:{key}:{window}"
        pipe = self.redis.pipeline()
        pipe.incrby(rkey, cost)
        pipe.expire(rkey, 2)
        count, _ = pipe.execute()
        if int(count) > self.limit:
            raise RateLimited(f"rate limit of {self.limit} requests/s exceeded", retry_after=1)


class FailoverRateLimiter:
    """The shared Redis limiter while Redis answers, the local one while it does not."""

    RETRY_S = 5.0

    def __init__(self, shared: RedisRateLimiter, local: LocalRateLimiter) -> None:
        self.shared = shared
        self.local = local
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._lock = threading.Lock()

    def check(self, key: str, cost: int = 1) -> None:
        import redis

        if self._down_since is None or time.monotonic() >= self._retry_at:
            try:
                self.shared.check(key, cost)
            except redis.RedisError as e:
                self._went_down(e)
            else:
                self._came_back()
                return
        self.local.check(key, cost)

    def _went_down(self, e: Exception) -> None:
        now = time.monotonic()
        with self._lock:
            first = self._down_since is None
            if first:
                self._down_since = now
            self._retry_at = now + self.RETRY_S
        if first:
            log.warning("Redis unreachable (%s): rate limits are enforced per process until it is back",
                        type(e).__name__)

    def _came_back(self) -> None:
        if self._down_since is None:
            return
        with self._lock:
            was, self._down_since = self._down_since, None
        if was is not None:
            log.warning("Redis is back: rate limits are shared again")

    def health(self) -> dict[str, Any]:
        down = self._down_since
        if down is None:
            return {"status": "ok", "mode": "shared"}
        return {"status": "degraded", "mode": "local",
                "detail": "Redis unreachable: each process enforces the rate limit on its own",
                "since_s": round(time.monotonic() - down, 1)}


class ConcurrencyLimiter:
    """At most `limit` requests of one key running at once (per process): slow work (scans that fetch
    31 resources, packets that sign PDFs) by one tenant cannot occupy every worker thread while another
    tenant's deposits wait (issue 21: 8 slow scans delayed another tenant's deposit by 18 s)."""

    def __init__(self, limit: int, retry_after_s: int = 5) -> None:
        self.limit = limit
        self.retry_after_s = retry_after_s
        self._running: dict[str, int] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str, what: str) -> _Slot:
        with self._lock:
            n = self._running.get(key, 0)
            if n >= self.limit:
                raise RateLimited(f"at most {self.limit} {what} at a time per API key; retry shortly",
                                  retry_after=self.retry_after_s)
            self._running[key] = n + 1
        return _Slot(self, key)

    def _release(self, key: str) -> None:
        with self._lock:
            n = self._running.get(key, 1) - 1
            if n <= 0:
                self._running.pop(key, None)
            else:
                self._running[key] = n

    def running(self, key: str) -> int:
        with self._lock:
            return self._running.get(key, 0)


class _Slot:
    def __init__(self, owner: ConcurrencyLimiter, key: str) -> None:
        self._owner, self._key = owner, key

    def __enter__(self) -> _Slot:
        return self

    def __exit__(self, *exc: object) -> None:
        self._owner._release(self._key)
