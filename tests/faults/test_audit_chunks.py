"""`depository audit` on a log larger than its read chunk (10,000 entries): a chunk that ends inside a
tile must not be reported as a tampered tile, and a partial tile at the end of the tree is compared too
(a byte flipped in partial tile 1/0 at size 10,060 once passed)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from depository.audit import CHUNK, audit
from depository.models import LogEntry, TileRow
from tests.logfill import fill, trust


def test_audit_across_chunk_boundaries(services: Any) -> None:
    n = CHUNK + 60  # the first chunk ends at 10,000: inside tile 0/39, and inside tile 1/0
    fill(services, n, batch=4000)
    rep = audit(services.engine, trust(services))
    assert rep.ok, rep.problems
    assert rep.entries == n
    # A partial level-1 tile at the end of the tree is compared byte for byte.
    with services.engine.begin() as conn:
        tile = select(TileRow.hashes).where(TileRow.level == 1, TileRow.idx == 0)
        hashes = bytearray(conn.execute(tile).scalar_one())
        hashes[40] ^= 0x01
        conn.execute(update(TileRow).where(TileRow.level == 1, TileRow.idx == 0).values(hashes=bytes(hashes)))
    rep = audit(services.engine, trust(services))
    assert [p.split(":")[0] for p in rep.problems] == ["log_tiles/1/0/hashes[1]"], rep.problems
    # And it still names an alteration past the chunk boundary.
    with services.engine.begin() as conn:
        conn.execute(update(LogEntry).where(LogEntry.idx == CHUNK + 7).values(identity="forged"))
    rep = audit(services.engine, trust(services))
    assert any(p.startswith(f"log_entries/{CHUNK + 7}/identity") for p in rep.problems), rep.problems
