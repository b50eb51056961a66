"""Request authentication: `Authorization: Bearer <api key>` to a Principal with scopes."""

from __future__ import annotations

from flask import current_app, g, request

from depository.tenants import Principal


def principal(scope: str) -> Principal:
    """The caller's principal, requiring `scope`; raises Unauthorized / Forbidden (401 / 403)."""
    # remote_addr is the real client (depository/proxies.py): failures are throttled per address.
    p: Principal = current_app.extensions["depository"].tenants.authenticate(request.headers.get("Authorization"),
                                                                             request.remote_addr or "-")
    p.require(scope)
    g.principal = p
    return p
