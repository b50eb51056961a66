"""Checks on untrusted values that every layer shares: JSON nesting depth, text that storage can hold.

Why here and not at each route: a 1,000-deep JSON value once reached the stdlib's recursive encoder
(RecursionError -> 500), and a NUL byte in an id or URL reached PostgreSQL, which refuses NUL in text
(DataError -> 500). Both are properties of the value, not of the route, so one definition serves the API,
the console and the services.
"""

from __future__ import annotations

from typing import Any

from depository.errors import ValidationFailed

# Deeper than any real contract's metadata (parties -> address -> lines is 4), far below every recursive
# encoder's limit (orjson's writer stops at 255, the stdlib's at ~1,000 frames).
MAX_JSON_DEPTH = 32


def json_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0, `[]` is 1), counted without recursion; stops
    counting once past `limit` (so a hostile value costs at most its size)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            children: Any = v.values()
        elif isinstance(v, list):
            children = v
        else:
            continue
        d += 1
        if d > deepest:
            deepest = d
            if deepest > limit:
                return deepest
        stack.extend((c, d) for c in children)
    return deepest


def check_json_depth(value: Any, what: str = "the JSON value", limit: int = MAX_JSON_DEPTH) -> None:
    """ValidationFailed (422) when `value` nests deeper than `limit`."""
    if json_depth(value, limit) > limit:
        raise ValidationFailed(f"{what} nests deeper than {limit} levels")


def storable_text(value: str) -> bool:
    """True when `value` can be stored in a text column of every supported database (no NUL) and holds no
    other control character either: ids, URLs, addresses and names never need one."""
    return value.isprintable()
