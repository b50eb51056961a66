"""RFC 9457 problem details for every error the API returns, including Flask's own 404/405/413."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, json, request
from sqlalchemy.exc import DataError, OperationalError
from werkzeug.exceptions import HTTPException

from depository.errors import PROBLEM_BASE, DepositoryError

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"


def problem(status: int, type_slug: str, title: str, detail: str = "", *,
            retry_after: int | None = None, **extra: Any) -> Response:
    body: dict[str, Any] = {"type": PROBLEM_BASE + type_slug, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body["instance"] = request.path
    body.update(extra)
    resp = Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    if retry_after is not None:
        resp.headers["Retry-After"] = str(retry_after)
    return resp


_HTTP_SLUGS = {400: "bad-request", 401: "unauthorized", 403: "forbidden", 404: "not-found",
               405: "method-not-allowed", 409: "conflict", 413: "payload-too-large",
               415: "unsupported-media-type", 422: "validation", 429: "rate-limited"}


def init_app(app: Flask) -> None:
    @app.errorhandler(DepositoryError)
    def _domain(e: DepositoryError) -> Response:
        if e.status >= 500 and e.status != 503:
            log.error("internal error: %s", e.diagnostics())
        return problem(e.status, e.type_slug, e.title, e.detail, retry_after=e.retry_after, **e.extra)

    @app.errorhandler(HTTPException)
    def _http(e: HTTPException) -> Response:
        status = e.code or 500
        return problem(status, _HTTP_SLUGS.get(status, "http-error"), e.name, e.description or "")

    @app.errorhandler(OperationalError)
    def _database_unavailable(e: OperationalError) -> Response:
        # The database restarted or is unreachable: nothing was acknowledged; the client may retry.
        log.warning("database unavailable on %s %s: %s", request.method, request.path, type(e.orig).__name__)
        return problem(503, "database-unavailable", "The database is unavailable; retry shortly",
                       retry_after=2)

    @app.errorhandler(DataError)
    def _unstorable_value(e: DataError) -> Response:
        # The database refused a value (a NUL byte in text, a number past its column): a check missed it,
        # so it is logged, but the client sent it and gets a 4xx, not a 500.
        log.warning("database refused a value on %s %s: %s", request.method, request.path, type(e.orig).__name__)
        return problem(422, "validation", "Validation failed", "a value cannot be stored")

    @app.errorhandler(Exception)
    def _unexpected(e: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem(500, "internal", "Internal error", "an unexpected error occurred; it has been logged")
