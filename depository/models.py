"""Tables. The log's own tables (sequence, entries, tiles, checkpoints) know nothing of deposits; the
deposit tables reference log indices. Timestamps and cosignatures hang off checkpoints.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# ---- the log ---------------------------------------------------------------------------------------

class LogSequence(Base):
    """One row: the next index to assign. Row-locked while a batch is sequenced."""

    __tablename__ = "log_sequence"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    next_index: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


class LogTree(Base):
    """One row: the integrated tree (size, root). Updated compare-and-set by the single integrator."""

    __tablename__ = "log_tree"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class LogEntry(Base):
    """A sequenced entry: durable index, identity (deduplication key) and leaf data."""

    __tablename__ = "log_entries"
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    identity: Mapped[str] = mapped_column(String(128), nullable=False, unique=True)
    data: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    sequenced_at: Mapped[float] = mapped_column(nullable=False)


class TileRow(Base):
    """A tlog-tiles tile (height 8) plus its complete inner nodes; append-only in content."""

    __tablename__ = "log_tiles"
    level: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hashes: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    inner: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class CheckpointRow(Base):
    """A published checkpoint: body (what is signed) and the note with the log's signatures.

    `seq` numbers checkpoints 0, 1, 2... in publication order, and `chain` is HMAC-SHA256 under the home's
    chain key of (previous chain, seq, SHA-256 of the note), so the audit sees a checkpoint deleted,
    reordered or renumbered (see depository/integrity.py).
    """

    __tablename__ = "checkpoints"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False, unique=True)
    chain: Mapped[bytes | None] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False, unique=True)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    note: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    witnessed: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    timestamped: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)


class LogHalt(Base):
    """Integration stopped because the stored tree failed a check before signing; open while cleared_at is NULL.

    Rows are never deleted: they are the trail of what failed and who resumed integration, and why.
    """

    __tablename__ = "log_halts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    raised_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    tree_size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    cleared_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cleared_by: Mapped[str | None] = mapped_column(String(255))
    clear_reason: Mapped[str | None] = mapped_column(Text)


class LogAudit(Base):
    """One run of `depository audit`: what it covered and what it found (incremental audits start here)."""

    __tablename__ = "log_audits"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    finished_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    from_size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    tree_size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    checkpoint_seq: Mapped[int | None] = mapped_column(BigInteger)
    findings: Mapped[int] = mapped_column(Integer, nullable=False)


class CosignatureRow(Base):
    __tablename__ = "cosignatures"
    __table_args__ = (UniqueConstraint("checkpoint_id", "witness_name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    checkpoint_id: Mapped[int] = mapped_column(ForeignKey("checkpoints.id"), nullable=False, index=True)
    witness_name: Mapped[str] = mapped_column(String(255), nullable=False)
    line: Mapped[str] = mapped_column(Text, nullable=False)
    cosigned_at: Mapped[int] = mapped_column(BigInteger, nullable=False)


class TimestampRow(Base):
    __tablename__ = "timestamps"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    checkpoint_id: Mapped[int] = mapped_column(ForeignKey("checkpoints.id"), nullable=False, unique=True)
    token: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    gen_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    tsa: Mapped[str] = mapped_column(String(1024), nullable=False)


class WitnessProgress(Base):
    """The size each witness last cosigned, so the next request carries the right consistency proof."""

    __tablename__ = "witness_progress"
    witness_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_success_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# ---- tenants and deposits --------------------------------------------------------------------------

class TenantRow(Base):
    __tablename__ = "tenants"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    store_content: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    content_cipher: Mapped[str] = mapped_column(String(32), nullable=False, default="aes-256-gcm")
    # The tenant's content key, wrapped (AES-KW) under the depository's master key; never stored plain.
    wrapped_content_key: Mapped[bytes | None] = mapped_column(LargeBinary)


class ApiKeyRow(Base):
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), nullable=False, index=True)
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    scopes: Mapped[str] = mapped_column(String(255), nullable=False)
    label: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DepositRow(Base):
    __tablename__ = "deposits"
    __table_args__ = (
        Index("ix_deposits_tenant_sha256", "tenant_id", "sha256"),
        Index("ix_deposits_tenant_matter", "tenant_id", "matter"),
        Index("ix_deposits_tenant_received", "tenant_id", "received"),
    )
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    sm3: Mapped[str] = mapped_column(String(64), nullable=False)
    size: Mapped[int | None] = mapped_column(BigInteger)
    filename: Mapped[str | None] = mapped_column(String(255))
    content_type: Mapped[str | None] = mapped_column(String(255))
    metadata_json: Mapped[str] = mapped_column(Text, nullable=False)
    matter: Mapped[str | None] = mapped_column(String(128))
    follows: Mapped[str | None] = mapped_column(String(64))
    received: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    leaf_index: Mapped[int] = mapped_column(BigInteger, nullable=False, unique=True)
    content_stored: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)


class IdempotencyRow(Base):
    __tablename__ = "idempotency_keys"
    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    status: Mapped[int] = mapped_column(Integer, nullable=False)
    response_json: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


# ---- security: attempt throttling and the audit trail of its decisions ------------------------------

class ThrottleRow(Base):
    """One counter of failed attempts (`depository.throttle`): per sign-in account, account and address,
    known device, or client address. Locked while an attempt is counted and decided."""

    __tablename__ = "throttle_counters"
    key: Mapped[str] = mapped_column(String(512), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, nullable=False)
    last_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class SecurityEventRow(Base):
    """Append-only audit trail of authentication decisions: who (e-mail or API key id), from where (the
    real client address), what was decided and why."""

    __tablename__ = "security_events"
    __table_args__ = (Index("ix_security_events_subject_at", "subject", "at"),
                      Index("ix_security_events_ip_at", "ip", "at"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)  # console-sign-in | api-key
    subject: Mapped[str] = mapped_column(String(320), nullable=False)
    ip: Mapped[str] = mapped_column(String(64), nullable=False)
    decision: Mapped[str] = mapped_column(String(32), nullable=False)
    detail: Mapped[str | None] = mapped_column(String(255))
