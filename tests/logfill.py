"""Filling a test log with real deposits (rows and `evidence-deposit/v1` leaves), as intake makes them."""

from __future__ import annotations

import hashlib
from typing import Any

from depository.deposits import DepositRequest
from depository.log import integrate_all

CHUNK = 5000


def deposit_requests(start: int, n: int) -> list[DepositRequest]:
    out = []
    for i in range(start, start + n):
        doc = f"lease agreement {i}".encode()
        meta: dict[str, Any] = {"title": f"Lease {i}"} if i % 3 else {}
        if i % 7 == 0:
            meta["matter"] = f"M-{i % 5}"
        out.append(DepositRequest.from_json({
            "kind": "other", "sha256": hashlib.sha256(doc).hexdigest(),
            "sm3": hashlib.new("sm3", doc).hexdigest(), "size": len(doc) if i % 2 else None,
            "metadata": meta}))
    return out


def fill(services: Any, n: int, *, batch: int = 300, tenant: str | None = None) -> str:
    """Deposit `n` hash-only deposits for a tenant (made if not given) and integrate them in `batch`es."""
    tenant_id = tenant or services.tenants.create("Audit Co")[0]
    done = services.log.sizes()[1]
    for start in range(0, n, CHUNK):
        services.deposits.create_many(tenant_id, deposit_requests(done + start, min(CHUNK, n - start)))
    integrate_all(services.log, batch)
    return tenant_id


def trust(services: Any) -> Any:
    from depository.wiring import audit_trust

    return audit_trust(services.config, services.keys)
