"""What the integrator checks in storage before it signs (docs/architecture.md, "Never sign a lie").

Each check raises TamperFound naming what disagrees (`table/key: ...`); `Log.integrate` records it as a
halt. The Merkle side of the check (edge tiles against the signed root, the extension's consistency) is
pure and lives in `evidence.tilecheck`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import DBAPIError

from depository.integrity import HighWater
from depository.models import CheckpointRow
from evidence.checkpoint import verify_checkpoint
from evidence.errors import EvidenceError
from evidence.note import Verifier


class TamperFound(Exception):
    """The stored tree is not the tree the log signed (raised inside integrate, recorded as a halt)."""


def unreadable(e: DBAPIError) -> bool:
    """A stored value the driver cannot even decode (SQLite keeps any type in any column: a BLOB column
    holding TEXT that is not UTF-8). That is tampering, not an outage."""
    return "could not decode" in str(e.orig).lower()


def signed_root(engine: Engine, verifier: Verifier, origin: str, high_water: HighWater, size: int, tree_root: Any,
                latest: Any) -> bytes:
    """The signed root of the tree the integrator is about to extend (`size`, `tree_root` from `log_tree`,
    `latest` the newest checkpoint row); TamperFound if storage disagrees."""
    if latest is None:
        raise TamperFound("no checkpoint is stored: the log has nothing signed to extend")
    if not isinstance(tree_root, bytes | memoryview):
        raise TamperFound(f"log_tree/1/root_hash: got {type(tree_root).__name__}, want bytes")
    if not isinstance(latest.note, str) or not isinstance(latest.root_hash, bytes | memoryview):
        raise TamperFound(f"checkpoints/seq {latest.seq}: got note {type(latest.note).__name__}, root_hash "
                          f"{type(latest.root_hash).__name__}; want str and bytes")
    try:
        verified = verify_checkpoint(latest.note, [verifier])
    except EvidenceError as e:
        raise TamperFound(f"checkpoints/seq {latest.seq}: the log's signature does not verify "
                          f"({e.diagnostics()})") from e
    signed = verified.checkpoint
    if signed.origin != origin:
        raise TamperFound(f"checkpoints/seq {latest.seq}: origin {signed.origin!r}, want {origin!r}")
    if (latest.size, bytes(latest.root_hash)) != (signed.size, signed.root_hash):
        raise TamperFound(f"checkpoints/seq {latest.seq}: row says size {latest.size} root "
                          f"{bytes(latest.root_hash).hex()}, its signed note says size {signed.size} "
                          f"root {signed.root_hash.hex()}")
    _check_high_water(engine, high_water, latest)
    if (size, bytes(tree_root)) != (signed.size, signed.root_hash):
        raise TamperFound(f"log_tree: got size {size} root {bytes(tree_root).hex()}, want the signed "
                          f"size {signed.size} root {signed.root_hash.hex()}")
    return signed.root_hash

def _check_high_water(engine: Engine, high_water: HighWater, latest: Any) -> None:
    """The stored checkpoints still hold the last one this home signed (see integrity.HighWater)."""
    mark = high_water.read()
    if mark is None:
        return
    seq, size, digest = mark
    if seq < 0:
        raise TamperFound(f"{high_water.path}: unreadable high-water mark")
    if latest.seq < seq:
        raise TamperFound(f"checkpoints: the latest stored is seq {latest.seq}, but this home signed seq {seq} "
                          f"(size {size}): checkpoints were deleted or the log rolled back")
    with engine.connect() as conn:
        note = conn.execute(select(CheckpointRow.note).where(CheckpointRow.seq == seq)).scalar()
    if not isinstance(note, str) or hashlib.sha256(note.encode()).hexdigest() != digest:
        raise TamperFound(f"checkpoints/seq {seq}: not the checkpoint this home signed at size {size}")


def contiguous_leaves(rows: Sequence[Any], start: int, end: int) -> list[bytes]:
    """The leaf data of entries [start, end) in order; TamperFound on a gap or a value that is not bytes."""
    if len(rows) != end - start:
        have = {r.idx for r in rows}
        gap = next((i for i in range(start, end) if i not in have), end)
        raise TamperFound(f"log_entries/{gap}: missing (entries {start}..{end - 1} were sequenced, "
                          f"{len(rows)} are stored)")
    out = []
    for i, r in enumerate(rows):
        if r.idx != start + i:
            raise TamperFound(f"log_entries/{start + i}: missing (found {r.idx} in its place)")
        if not isinstance(r.data, bytes | memoryview):
            raise TamperFound(f"log_entries/{r.idx}: data is {type(r.data).__name__}, want bytes")
        out.append(bytes(r.data))
    return out
