"""Request parameters and bodies every API route reads the same way: paging, JSON bodies, NUL bytes.

* Paging: `limit` 1..1000 and `offset` 0..10^9, ASCII digits only. A 20-digit offset once reached
  SQLite's 64-bit binding (OverflowError -> 500); `int()` also takes "١٢" and "1_000", which no schema
  says.
* JSON bodies: the content type must be `application/json` (415 otherwise), the body parses with orjson
  (which refuses NaN and lone surrogates and stops at 1,024 levels) and nests at most
  `inputs.MAX_JSON_DEPTH` levels (422).
* NUL bytes: PostgreSQL cannot store or even compare them in text, so a NUL anywhere in the path, the
  query string or a url-encoded form answers 400 before any route runs (one check for every route,
  today's and tomorrow's). NUL inside JSON strings is left to the fields' own checks: metadata may carry
  one (it is stored as escaped JSON).
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from flask import Flask, Response, request

from depository.errors import BadRequest, DepositoryError, PayloadTooLarge, ValidationFailed
from depository.inputs import check_json_depth
from depository.ratelimit import ConcurrencyLimiter, LocalRateLimiter

MAX_LIMIT = 1000
MAX_OFFSET = 10**9
_DIGITS = re.compile(r"^[0-9]{1,10}$")


class UnsupportedMediaType(DepositoryError):
    status = 415
    type_slug = "unsupported-media-type"
    title = "Unsupported media type"


def _int_arg(name: str, default: int, lo: int, hi: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not _DIGITS.match(raw) or not lo <= int(raw) <= hi:
        raise BadRequest(f"{name} must be an integer from {lo} to {hi}")
    return int(raw)


def paging(default_limit: int = 100) -> tuple[int, int]:
    """(limit, offset) from the query string; BadRequest when out of range."""
    return _int_arg("limit", default_limit, 1, MAX_LIMIT), _int_arg("offset", 0, 0, MAX_OFFSET)


def require_json() -> None:
    if request.mimetype != "application/json":
        raise UnsupportedMediaType(f"send application/json, not {request.mimetype or 'no content type'}")


def body_bytes() -> bytes:
    """The whole request body, or PayloadTooLarge. A chunked body (no Content-Length) is cut at
    MAX_CONTENT_LENGTH by Werkzeug without a word (issue 21: a 150 MB chunked batch answered 400
    "unexpected end of data" at 101 MiB); reaching the limit here means there was more."""
    raw = request.get_data(cache=True)
    limit = request.max_content_length
    if limit is not None and request.content_length is None and len(raw) >= limit:
        raise PayloadTooLarge(f"the request body is larger than {limit} bytes")
    return raw


def json_body() -> Any:
    """The body as parsed JSON: 415 for another content type, 400 when it does not parse, 422 when it
    nests too deep."""
    require_json()
    try:
        value = orjson.loads(body_bytes() or b"null")
    except orjson.JSONDecodeError as e:
        raise BadRequest(f"request body is not valid JSON: {e}") from e
    check_json_depth(value, "the request body")
    return value


def json_object() -> dict[str, Any]:
    obj = json_body()
    if not isinstance(obj, dict):
        raise ValidationFailed("the body must be a JSON object")
    return obj


MAX_EXPENSIVE_PER_KEY = 2  # scans and packets running at once per API key, per process


def expensive(key_id: str, what: str, rate: LocalRateLimiter | None = None) -> Any:
    """A slot for slow work of one API key (a context manager), or 429 + Retry-After: at most
    MAX_EXPENSIVE_PER_KEY at once, and within `rate` when given."""
    from flask import current_app

    ext = current_app.extensions
    limiter: ConcurrencyLimiter = ext.setdefault("expensive_limiter", ConcurrencyLimiter(MAX_EXPENSIVE_PER_KEY))
    if rate is not None:
        rate.check(key_id)
    return limiter.acquire(key_id, what)


def init_app(app: Flask) -> None:
    @app.before_request
    def _refuse_nul() -> Response | None:
        where = None
        if "\x00" in request.path:
            where = "the path"
        elif b"%00" in request.query_string or any("\x00" in k or "\x00" in v
                                                   for k, v in request.args.items(multi=True)):
            where = "the query string"
        elif request.mimetype == "application/x-www-form-urlencoded" and any(
                "\x00" in k or "\x00" in v for k, v in request.form.items(multi=True)):
            where = "the form"
        if where is None:
            return None
        from depository.api.problems import problem

        return problem(400, "bad-request", "Bad request", f"{where} contains a NUL byte")
