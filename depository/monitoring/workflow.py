"""The alert status workflow: new -> confirmed | false-positive; confirmed -> notice-sent -> resolved.

Pure (no I/O) so the API, the console and tests share one definition. A rights holder first judges the
match (confirmed or false-positive; a false positive is final), then records that a takedown notice went
out, then that the copy is gone. Any other move is refused (HTTP 409), so the history an alert carries is
always a path through this graph.
"""

from __future__ import annotations

from depository.errors import Conflict, ValidationFailed

__all__ = ["STATUSES", "TRANSITIONS", "check_transition"]

STATUSES = ("new", "confirmed", "false-positive", "notice-sent", "resolved")

TRANSITIONS: dict[str, frozenset[str]] = {
    "new": frozenset({"confirmed", "false-positive"}),
    "confirmed": frozenset({"notice-sent"}),
    "false-positive": frozenset(),
    "notice-sent": frozenset({"resolved"}),
    "resolved": frozenset(),
}


def check_transition(current: str, wanted: str) -> None:
    """Raise ValidationFailed (422) for an unknown status, Conflict (409) for a move the graph lacks."""
    if wanted not in STATUSES:
        raise ValidationFailed(f"status must be one of {', '.join(STATUSES)}")
    if wanted not in TRANSITIONS.get(current, frozenset()):
        allowed = ", ".join(sorted(TRANSITIONS.get(current, frozenset()))) or "none (final)"
        raise Conflict(f"an alert in status {current} cannot become {wanted}; allowed: {allowed}",
                       extra={"current": current, "wanted": wanted})
