"""Group commit: concurrent submissions share runs, each gets its own result or its own error."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from depository.group_commit import GroupCommit


class Recorder:
    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.runs: list[list[int]] = []
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0

    def __call__(self, payloads: Sequence[int]) -> list[int]:
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            time.sleep(self.delay)
            if any(p < 0 for p in payloads):
                raise ValueError(f"negative payload in {list(payloads)}")
            with self.lock:
                self.runs.append(list(payloads))
            return [p * 10 for p in payloads]
        finally:
            with self.lock:
                self.active -= 1


def test_each_submission_gets_its_own_result_and_runs_are_grouped_and_never_overlap() -> None:
    rec = Recorder(delay=0.005)
    gc: GroupCommit[int, int] = GroupCommit(rec)
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(gc.submit, range(400)))
    assert results == [p * 10 for p in range(400)]
    assert sorted(p for run in rec.runs for p in run) == list(range(400))  # each exactly once
    assert rec.max_active == 1  # one group at a time: the database sees one writer
    assert len(rec.runs) < 400  # concurrent submissions did share runs
    assert gc.grouped == 400 and gc.groups == len(rec.runs)


def test_a_failing_member_fails_alone() -> None:
    rec = Recorder(delay=0.002)
    gc: GroupCommit[int, int] = GroupCommit(rec)
    payloads = [(-p if p % 7 == 3 else p) for p in range(1, 200)]

    def one(p: int) -> object:
        try:
            return gc.submit(p)
        except ValueError as e:
            return e

    with ThreadPoolExecutor(12) as pool:
        out = list(pool.map(one, payloads))
    for p, r in zip(payloads, out, strict=True):
        if p < 0:
            assert isinstance(r, ValueError) and str(r) == f"negative payload in [{p}]"
        else:
            assert r == p * 10
    committed = [p for run in rec.runs for p in run]
    assert sorted(committed) == sorted(p for p in payloads if p >= 0)  # nobody committed twice


def test_max_group_bounds_a_run_and_leadership_passes_on() -> None:
    rec = Recorder(delay=0.003)
    gc: GroupCommit[int, int] = GroupCommit(rec, max_group=4)
    with ThreadPoolExecutor(20) as pool:
        assert list(pool.map(gc.submit, range(100))) == [p * 10 for p in range(100)]
    assert max(len(r) for r in rec.runs) <= 4


def test_single_caller_runs_alone_and_errors_propagate() -> None:
    gc: GroupCommit[int, int] = GroupCommit(Recorder())
    assert gc.submit(4) == 40
    with pytest.raises(ValueError):
        gc.submit(-1)
    assert gc.submit(5) == 50  # still usable after an error
