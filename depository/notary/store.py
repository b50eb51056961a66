"""The notary's storage: tokens, cosignatures, each witness's progress, and the checkpoint flags."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, exc, func, insert, select, update

from depository.log import PublishedCheckpoint
from depository.models import CheckpointRow, CosignatureRow, TimestampRow, WitnessProgress


@dataclass(frozen=True)
class Cosigned:
    witness_name: str
    line: str
    timestamp: int


class NotaryStore:
    """Every query the notary makes, over one engine. One connection at a time: on SQLite every
    transaction takes the write lock (BEGIN IMMEDIATE), so a nested connection would wait for its parent."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # ---- timestamps ------------------------------------------------------------------------------------

    def has_token(self, checkpoint_id: int) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(TimestampRow.id).where(TimestampRow.checkpoint_id == checkpoint_id)
                                ).first() is not None

    def token(self, checkpoint_id: int) -> bytes | None:
        with self.engine.connect() as conn:
            token = conn.execute(select(TimestampRow.token).where(TimestampRow.checkpoint_id == checkpoint_id)
                                 ).scalar()
        return None if token is None else bytes(token)

    def store_token(self, checkpoint_id: int, token: bytes, gen_time: datetime, tsa: str) -> None:
        """Store the token and set `timestamped`; a token stored first by another worker is enough."""
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(TimestampRow).values(checkpoint_id=checkpoint_id, token=token,
                                                         gen_time=gen_time, tsa=tsa[:1024]))
                conn.execute(update(CheckpointRow).where(CheckpointRow.id == checkpoint_id)
                             .values(timestamped=True))
        except exc.IntegrityError:
            self.set_flag(checkpoint_id, timestamped=True)

    def untimestamped(self, limit: int) -> list[PublishedCheckpoint]:
        """Checkpoints without a token, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(CheckpointRow).where(CheckpointRow.timestamped.is_(False))
                                .order_by(CheckpointRow.size).limit(limit)).all()
        return [PublishedCheckpoint.from_row(r) for r in rows]

    def count_untimestamped(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(CheckpointRow)
                                    .where(CheckpointRow.timestamped.is_(False))).scalar() or 0)

    def any_untimestamped(self) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(CheckpointRow.id).where(CheckpointRow.timestamped.is_(False))
                                .limit(1)).first() is not None

    # ---- cosignatures and witness progress -------------------------------------------------------------

    def cosigners(self, checkpoint_id: int) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.execute(select(CosignatureRow.witness_name)
                                    .where(CosignatureRow.checkpoint_id == checkpoint_id)).scalars())

    def cosignature_lines(self, checkpoint_id: int) -> list[tuple[str, str]]:
        """(witness name, line) of the stored cosignatures of a checkpoint."""
        with self.engine.connect() as conn:
            return [(r[0], r[1]) for r in conn.execute(select(CosignatureRow.witness_name, CosignatureRow.line)
                                                       .where(CosignatureRow.checkpoint_id == checkpoint_id))]

    def store_cosignatures(self, checkpoint_id: int, cosigned: list[Cosigned]) -> None:
        for c in cosigned:
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(CosignatureRow).values(
                        checkpoint_id=checkpoint_id, witness_name=c.witness_name, line=c.line,
                        cosigned_at=c.timestamp))
            except exc.IntegrityError:
                pass  # already stored by an earlier attempt; one cosignature per witness is enough

    def progress(self, key: str) -> int:
        with self.engine.connect() as conn:
            size = conn.execute(select(WitnessProgress.size).where(WitnessProgress.witness_name == key)).scalar()
        return int(size or 0)

    def set_progress(self, key: str, size: int | None, error: str | None) -> None:
        """Upsert the witness's row; size None keeps the stored size (a failure), error None clears it."""
        values: dict[str, Any] = {"last_error": error[:2000] if error else None}
        if size is not None:
            values["size"] = size
        if error is None:
            values["last_success_at"] = datetime.now(UTC)
        for _ in range(2):
            with self.engine.begin() as conn:
                res = conn.execute(update(WitnessProgress).where(WitnessProgress.witness_name == key)
                                   .values(**values))
                if res.rowcount:
                    return
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(WitnessProgress).values(witness_name=key, **{"size": 0, **values}))
                return
            except exc.IntegrityError:
                continue

    def progress_rows(self) -> dict[str, Any]:
        """witness_progress rows (Core rows: .size, .last_error, ...) by witness key."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(WitnessProgress)).all()
        return {r.witness_name: r for r in rows}

    def witnessed_size(self) -> int:
        """The size of the largest checkpoint witnessed to quorum (0 if none)."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.max(CheckpointRow.size))
                                    .where(CheckpointRow.witnessed.is_(True))).scalar() or 0)

    # ---- flags -----------------------------------------------------------------------------------------

    def set_flag(self, checkpoint_id: int, **flag: bool) -> bool:
        """Set `witnessed`/`timestamped`; True if it changed (so latency is measured once)."""
        (name, value), = flag.items()
        column = getattr(CheckpointRow, name)
        with self.engine.begin() as conn:
            res = conn.execute(update(CheckpointRow).where(CheckpointRow.id == checkpoint_id, column.is_(not value))
                               .values({name: value}))
        return bool(res.rowcount)
