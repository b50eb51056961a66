"""Group commit: concurrent small writes share one transaction (and one WAL flush).

A single deposit is one commit, and on PostgreSQL a commit waits for the WAL to reach the disk; with a
few request threads per process, most of a single deposit's time is that wait. Here the first thread to
arrive becomes the leader: it takes every request queued so far and runs them together through
`run_group` (one transaction), while the others wait. Requests that arrive meanwhile queue up, and when
the leader's group is done the oldest of them becomes the next leader, so no request thread works for
others longer than one group. Nothing is acknowledged before its group commits.

If a group fails, every member is retried in a group of its own, so one bad request (an unknown
`follows`, an idempotency conflict) gets its own error and never fails its neighbours.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

P = TypeVar("P")
R = TypeVar("R")


class _Slot(Generic[P, R]):
    __slots__ = ("done", "error", "lead", "payload", "result", "wake")

    def __init__(self, payload: P) -> None:
        self.payload = payload
        self.result: R | None = None
        self.error: BaseException | None = None
        self.done = False
        self.lead = False
        self.wake = threading.Event()


class GroupCommit(Generic[P, R]):
    """`submit(payload)` returns `run_group([payload, ...])[i]` for its payload, run in groups.

    `run_group` must be all-or-nothing: it either returns one result per payload (after committing them
    all) or raises having written nothing.
    """

    def __init__(self, run_group: Callable[[Sequence[P]], Sequence[R]], *, max_group: int = 256) -> None:
        self._run_group = run_group
        self.max_group = max_group
        self._lock = threading.Lock()
        self._queue: list[_Slot[P, R]] = []
        self._busy = False
        self.groups = 0  # counters for tests and metrics
        self.grouped = 0

    def submit(self, payload: P) -> R:
        slot: _Slot[P, R] = _Slot(payload)
        with self._lock:
            self._queue.append(slot)
            lead = not self._busy
            self._busy = True
        if not lead:
            slot.wake.wait()
            if slot.done:
                return self._outcome(slot)
        # The leader: ours is the oldest queued request, so it is in the group taken now.
        try:
            with self._lock:
                group, self._queue = self._queue[:self.max_group], self._queue[self.max_group:]
            self._run(group)
        finally:
            with self._lock:
                if self._queue:
                    nxt = self._queue[0]
                    nxt.lead = True
                    nxt.wake.set()
                else:
                    self._busy = False
        return self._outcome(slot)

    @staticmethod
    def _outcome(slot: _Slot[P, R]) -> R:
        if slot.error is not None:
            raise slot.error
        return slot.result  # type: ignore[return-value]

    def _run(self, group: list[_Slot[P, R]]) -> None:
        try:
            results = self._run_group([s.payload for s in group])
            if len(results) != len(group):
                raise RuntimeError(f"group commit returned {len(results)} results for {len(group)} requests")
            for s, r in zip(group, results, strict=True):
                s.result = r
            self.groups += 1
            self.grouped += len(group)
        except BaseException as e:
            if len(group) == 1:
                group[0].error = e
            else:
                for s in group:  # find the culprit: each member alone
                    try:
                        s.result = self._run_group([s.payload])[0]
                    except BaseException as e1:
                        s.error = e1
        for s in group:
            s.done = True
            s.wake.set()
