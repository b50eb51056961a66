"""Alert status workflow: the allowed moves and nothing else."""

from __future__ import annotations

import itertools

import pytest

from depository.errors import Conflict, ValidationFailed
from depository.monitoring.workflow import STATUSES, TRANSITIONS, check_transition

ALLOWED = {("new", "confirmed"), ("new", "false-positive"), ("confirmed", "notice-sent"), ("notice-sent", "resolved")}


def test_exactly_the_documented_moves() -> None:
    for a, b in itertools.product(STATUSES, STATUSES):
        if (a, b) in ALLOWED:
            check_transition(a, b)
        else:
            with pytest.raises(Conflict):
                check_transition(a, b)
    assert {(a, b) for a, bs in TRANSITIONS.items() for b in bs} == ALLOWED


def test_unknown_status_is_a_validation_error() -> None:
    with pytest.raises(ValidationFailed):
        check_transition("new", "deleted")
