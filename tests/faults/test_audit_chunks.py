"""`depository audit` on a log larger than its read chunk (10,000 entries): a chunk that ends inside a
tile must not be reported as a tampered tile. Found by the fault tests (a witness outage under load
grew the log past 10,000 and audit named tile 0/39 and 1/0, which were sound)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from depository.audit import CHUNK, audit
from depository.log import integrate_all
from depository.models import LogEntry


def test_audit_across_chunk_boundaries(services: Any) -> None:
    n = CHUNK + 300  # the first chunk ends at 10,000: inside tile 0/39, and inside tile 1/0
    with services.engine.begin() as conn:
        services.log.sequence(conn, [(f"id-{i}", f"leaf {i}\n".encode()) for i in range(n)])
    integrate_all(services.log, 4000)
    rep = audit(services.engine, services.keys)
    assert rep.ok, rep.problems
    assert rep.entries == n
    # And it still names a real alteration past the boundary.
    with services.engine.begin() as conn:
        conn.execute(update(LogEntry).where(LogEntry.idx == CHUNK + 7).values(data=b"forged\n"))
    rep = audit(services.engine, services.keys)
    assert not rep.ok and any(str(CHUNK + 7) in p for p in rep.problems), rep.problems
