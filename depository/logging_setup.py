"""Structured logs: one JSON object per line, and secrets never reach them.

Why JSON: a fleet of API processes and workers writes to journald or a container log; a log shipper
(Loki, Elasticsearch, Cloud Logging) indexes fields only when each line is one self-describing object.
Every line has `time` (RFC 3339 UTC, milliseconds), `level`, `logger`, `message`; request lines add
`request_id`, `method`, `route`, `status`, `duration_ms` (set by the app's request hooks through
`extra=`), and a failure adds `exc` (the traceback as text).

Why a redacting filter as well: the code never logs headers or bodies, but a library's exception text
might quote a URL or a header. Anything shaped like one of our API keys (`dpk_<id>_<secret>`), a bearer
token, or a `password=`/`secret=` pair is replaced before formatting, in every handler this module
installs. The key id (not secret) is kept so an operator can still tell keys apart.
"""

from __future__ import annotations

import json
import logging
import logging.config
import re
import secrets
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask, Response

__all__ = ["REQUEST_FIELDS", "JsonFormatter", "RedactingFilter", "RequestContextFilter", "configure_logging",
           "dict_config", "init_request_logging", "redact"]

#: Fields a request log line may carry (passed with `extra=`), in output order.
REQUEST_FIELDS = ("request_id", "method", "route", "status", "duration_ms", "tenant_id", "remote")

_KEY_RE = re.compile(r"\b(dpk_[0-9a-f]{32})_[A-Za-z0-9_-]{20,}")
_BEARER_RE = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}")
_PAIR_RE = re.compile(r"(?i)\b(password|passwd|secret|api_key|apikey|token|authorization)"
                      r"(\"?\s*[=:]\s*\"?)[^\s\"&,;}]+")
_URL_PASS_RE = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")


def redact(text: str) -> str:
    """Remove API key secrets, bearer tokens, `password=...`-style values and URL passwords from text."""
    text = _KEY_RE.sub(r"\1_[redacted]", text)
    text = _BEARER_RE.sub(r"\1 [redacted]", text)
    text = _PAIR_RE.sub(r"\1\2[redacted]", text)
    return _URL_PASS_RE.sub(r"\1[redacted]@", text)


class RedactingFilter(logging.Filter):
    """Rewrites a record's message (arguments merged first) so no handler can print a secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep the raw template, never raise from logging
            message = str(record.msg)
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True


class RequestContextFilter(logging.Filter):
    """Stamps every record logged while a request is handled with that request's id and route.

    So an error logged deep in the notary or the database layer can be joined to the access line.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        from flask import g, has_request_context, request

        if has_request_context() and "request_id" not in record.__dict__:
            record.request_id = g.get("request_id")
            record.route = request.url_rule.rule if request.url_rule is not None else None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line; request fields when present; the traceback as `exc` (redacted)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
            + f"{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
            "pid": record.process,
        }
        for name in REQUEST_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                out[name] = value
        if record.exc_info:
            out["exc"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            out["exc"] = redact(record.exc_text)
        return json.dumps(out, ensure_ascii=False, separators=(",", ":"), default=str)


_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"


def dict_config(log_format: str = "json", level: str = "info") -> dict[str, Any]:
    """A `logging.config.dictConfig` dict (also gunicorn's `logconfig_dict`): one stderr handler.

    gunicorn's own loggers (`gunicorn.error`, `gunicorn.access`) go through the same handler, so a
    worker timeout or boot message is a JSON line like any other.
    """
    formatter = ({"()": "depository.logging_setup.JsonFormatter"} if log_format == "json"
                 else {"format": _TEXT_FORMAT})
    handler = {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "main",
               "filters": ["request", "redact"]}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": "depository.logging_setup.RedactingFilter"},
                    "request": {"()": "depository.logging_setup.RequestContextFilter"}},
        "formatters": {"main": formatter},
        "handlers": {"main": handler},
        "root": {"level": level.upper(), "handlers": ["main"]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["main"], "propagate": False},
            "gunicorn.access": {"level": "WARNING", "handlers": ["main"], "propagate": False},
            # werkzeug's dev server logs every request itself; ours does it with fields instead.
            "werkzeug": {"level": "WARNING"},
        },
    }


def configure_logging(log_format: str = "json", level: str = "info") -> None:
    """Install the handler on the root logger (idempotent: dictConfig replaces the previous handlers)."""
    if log_format not in ("json", "text"):
        raise ValueError(f"log_format must be 'json' or 'text', not {log_format!r}")
    logging.config.dictConfig(dict_config(log_format, level))
    logging.captureWarnings(True)
    sys.stderr.flush()


_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_access = logging.getLogger("depository.access")


def init_request_logging(app: Flask, *, access_log: bool = True) -> None:
    """Give every request an id (`X-Request-Id`, kept from the caller when well-formed) and log one line.

    The line carries method, route *template* (`/v1/deposits/<deposit_id>`, so ids do not explode the
    cardinality of a log index), status and duration. It never carries headers, query strings or
    bodies: that is where keys and personal data would be.
    """
    from flask import g, request

    @app.before_request
    def _start() -> None:
        g.request_started = time.perf_counter()
        incoming = request.headers.get("X-Request-Id", "")
        g.request_id = incoming if _REQUEST_ID_RE.match(incoming) else secrets.token_hex(8)

    @app.after_request
    def _finish(resp: Response) -> Response:
        rid = g.get("request_id")
        if rid:
            resp.headers["X-Request-Id"] = rid
        if access_log:
            started = g.get("request_started")
            duration = (time.perf_counter() - started) * 1000 if started is not None else None
            principal = g.get("principal")
            _log_access(request.method, request.url_rule.rule if request.url_rule is not None else None,
                        resp.status_code, duration, rid, getattr(principal, "tenant_id", None),
                        request.remote_addr)
        return resp


def _log_access(method: str, route: str | None, status: int, duration_ms: float | None, request_id: str | None,
                tenant_id: str | None, remote: str | None) -> None:
    level = logging.WARNING if status >= 500 else logging.INFO
    if not _access.isEnabledFor(level):
        return
    _access.log(level, "%s %s %d", method, route or "-", status, extra={
        "request_id": request_id, "method": method, "route": route, "status": status,
        "duration_ms": round(duration_ms, 2) if duration_ms is not None else None,
        "tenant_id": tenant_id, "remote": remote})
