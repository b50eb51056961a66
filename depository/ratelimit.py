"""Per-key rate limits: a token bucket in-process, or a shared fixed window in Redis when configured
(so N API processes enforce one limit together)."""

from __future__ import annotations

import threading
import time
from typing import Any

from depository.errors import RateLimited


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
