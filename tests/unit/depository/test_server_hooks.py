"""gunicorn hooks of API workers: connection spreading and collector tuning."""

from __future__ import annotations

import gc
from types import SimpleNamespace

from depository.server import RECYCLE_CONNECTION_EVERY, pre_request, tune_gc


def test_one_request_in_n_closes_its_connection() -> None:
    worker = SimpleNamespace()
    closed = 0
    for _ in range(RECYCLE_CONNECTION_EVERY * 3):
        req = SimpleNamespace(must_close=False)
        pre_request(worker, req)
        closed += req.must_close
    assert closed == 3


def test_tune_gc_raises_the_threshold() -> None:
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold()[0] == 50_000
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
