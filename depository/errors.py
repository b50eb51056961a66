"""Errors of the `depository` service layer, mapped to RFC 9457 problem types by the API.

    DepositoryError                 root; `status`, `type_slug`, `title`, `diagnostics()`
    ├── ConfigError                 bad setting (unknown key, wrong type)           -> CLI only
    ├── NotFound                    no such deposit / tile / checkpoint (or not yours) -> 404
    ├── BadRequest                  malformed input                                  -> 400
    │   └── ValidationFailed        input parsed but violates a schema               -> 422
    ├── Unauthorized                missing, unknown or revoked API key              -> 401
    ├── Forbidden                   key lacks the scope                              -> 403
    ├── Conflict                    idempotency key reused with another body         -> 409
    ├── PayloadTooLarge             upload over the configured limit                 -> 413
    ├── RateLimited                 per-key rate limit                               -> 429 + Retry-After
    ├── Overloaded                  integration is behind; shed load                 -> 503 + Retry-After
    ├── InsufficientStorage         the content store's disk is full                 -> 507
    └── IntegrityError              stored state does not verify (audit)             -> 500, never served as sound

The `type` URI of each problem is stable: `https://depository.example/problems/<type_slug>`.
"""

from __future__ import annotations

PROBLEM_BASE = "https://depository.example/problems/"


class DepositoryError(Exception):
    status = 500
    type_slug = "internal"
    title = "Internal error"

    def __init__(self, detail: str = "", *, retry_after: int | None = None, extra: dict | None = None):
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after
        self.extra = extra or {}

    @property
    def type_uri(self) -> str:
        return PROBLEM_BASE + self.type_slug

    def diagnostics(self) -> str:
        return self.detail or self.title


class ConfigError(DepositoryError):
    type_slug = "config"
    title = "Configuration error"


class NotFound(DepositoryError):
    status = 404
    type_slug = "not-found"
    title = "Not found"


class BadRequest(DepositoryError):
    status = 400
    type_slug = "bad-request"
    title = "Bad request"


class ValidationFailed(BadRequest):
    status = 422
    type_slug = "validation"
    title = "Validation failed"


class Unauthorized(DepositoryError):
    status = 401
    type_slug = "unauthorized"
    title = "Missing or invalid API key"


class Forbidden(DepositoryError):
    status = 403
    type_slug = "forbidden"
    title = "The API key lacks the required scope"


class Conflict(DepositoryError):
    status = 409
    type_slug = "conflict"
    title = "Conflict"


class NotCourtReady(Conflict):
    """The packet would be preliminary (no quorum of witnesses or no timestamp yet): 409, the user may ask
    for the preliminary packet explicitly; Retry-After only when the evidence can still arrive."""

    type_slug = "not-court-ready"
    title = "The packet is not court-ready yet"


class PayloadTooLarge(DepositoryError):
    status = 413
    type_slug = "payload-too-large"
    title = "Payload too large"


class RateLimited(DepositoryError):
    status = 429
    type_slug = "rate-limited"
    title = "Too many requests"


class Overloaded(DepositoryError):
    status = 503
    type_slug = "overloaded"
    title = "Integration is behind; retry later"


class InsufficientStorage(DepositoryError):
    """The content store could not write (disk full, quota, file size limit): nothing was kept."""

    status = 507
    type_slug = "insufficient-storage"
    title = "The content store is full"


class IntegrityError(DepositoryError):
    type_slug = "integrity"
    title = "Stored state does not verify"
