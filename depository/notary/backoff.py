"""Exponential backoff for one outside party (a witness server, the TSA)."""

from __future__ import annotations

import time
from collections.abc import Callable

BACKOFF_BASE_S = 0.5


class Backoff:
    """After n failures, wait base * 2^(n-1), capped at `max_s`; a success resets it."""

    def __init__(self, max_s: float, base_s: float = BACKOFF_BASE_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.base_s = base_s
        self.max_s = max(max_s, base_s)
        self._clock = clock
        self.failures = 0
        self.errors_total = 0
        self.last_error: str | None = None
        self._next_at = 0.0

    def ready(self) -> bool:
        return self._clock() >= self._next_at

    def failed(self, error: str) -> None:
        self.failures += 1
        self.errors_total += 1
        self.last_error = error
        self._next_at = self._clock() + min(self.base_s * 2 ** (self.failures - 1), self.max_s)

    def succeeded(self) -> None:
        self.failures = 0
        self.last_error = None
        self._next_at = 0.0
