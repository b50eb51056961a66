"""Tables of infringement monitoring, on the shared `Base` (migration 0002_monitoring).

Every row carries `tenant_id`: a tenant's works, watches, alerts and notification endpoints are only ever
read through queries that name it, so one tenant's key can never reach another's rows (the API answers 404).

    monitoring_fingerprints   one row per (deposit, image|text): the registered work's fingerprint (JSON)
    monitoring_watches        a URL or feed fetched every `interval_s`; `next_run_at` is claimed by CAS
    monitoring_fetches        one row per fetched resource (page, feed item, image, robots refusal):
                              ok or failed with a short `reason` slug -- bad input ends here, not in a crash
    monitoring_alerts         a match above the threshold: work, URL, method, score, capture deposit, status
    monitoring_endpoints      where a tenant's alerts go: a signed webhook (secret) or an email address
    monitoring_deliveries     one alert to one endpoint: attempts, next attempt (backoff), delivered | dead
    monitoring_delivery_log   every attempt of a delivery (the per-alert delivery log)
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from depository.models import Base

__all__ = ["AlertRow", "DeliveryLogRow", "DeliveryRow", "EndpointRow", "FetchRow", "FingerprintRow",
           "WatchRow"]


class FingerprintRow(Base):
    """A registered work's perceptual fingerprint; `data_json` is `ImageFingerprint/TextFingerprint.to_dict()`."""

    __tablename__ = "monitoring_fingerprints"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64), nullable=False)
    deposit_id: Mapped[str] = mapped_column(String(64), nullable=False)
    kind: Mapped[str] = mapped_column(String(8), nullable=False)  # image | text
    algorithm: Mapped[str] = mapped_column(String(128), nullable=False)
    data_json: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    __table_args__ = (UniqueConstraint("deposit_id", "kind"), Index("ix_monitoring_fingerprints_tenant",
                                                                     "tenant_id", "id"))


class WatchRow(Base):
    __tablename__ = "monitoring_watches"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    url: Mapped[str] = mapped_column(String(4096), nullable=False)
    kind: Mapped[str] = mapped_column(String(8), nullable=False)  # page | feed | auto
    interval_s: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    next_run_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, index=True)
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_status: Mapped[str | None] = mapped_column(String(16))  # ok | failed
    last_reason: Mapped[str | None] = mapped_column(String(255))
    runs: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)


class FetchRow(Base):
    __tablename__ = "monitoring_fetches"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64), nullable=False)
    watch_id: Mapped[str | None] = mapped_column(String(64), index=True)
    scan_id: Mapped[str | None] = mapped_column(String(64), index=True)
    url: Mapped[str] = mapped_column(String(4096), nullable=False)
    role: Mapped[str] = mapped_column(String(8), nullable=False)  # page | feed | image
    fetched_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    ok: Mapped[bool] = mapped_column(Boolean, nullable=False)
    reason: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(String(1024))
    status: Mapped[int | None] = mapped_column(Integer)
    resolved_ip: Mapped[str | None] = mapped_column(String(64))
    elapsed_ms: Mapped[float | None] = mapped_column(Float)


class AlertRow(Base):
    __tablename__ = "monitoring_alerts"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64), nullable=False)
    work_deposit_id: Mapped[str] = mapped_column(String(64), nullable=False)
    page_url: Mapped[str] = mapped_column(String(4096), nullable=False)
    matched_url: Mapped[str] = mapped_column(String(4096), nullable=False)
    dedupe_key: Mapped[str] = mapped_column(String(64), nullable=False)
    method: Mapped[str] = mapped_column(String(64), nullable=False)
    score: Mapped[float] = mapped_column(Float, nullable=False)
    capture_deposit_id: Mapped[str] = mapped_column(String(64), nullable=False)
    watch_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    history_json: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    __table_args__ = (UniqueConstraint("tenant_id", "dedupe_key"),
                      Index("ix_monitoring_alerts_tenant_created", "tenant_id", "created_at"))


class EndpointRow(Base):
    __tablename__ = "monitoring_endpoints"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    channel: Mapped[str] = mapped_column(String(8), nullable=False)  # webhook | email
    target: Mapped[str] = mapped_column(String(4096), nullable=False)  # URL or address
    secret: Mapped[str | None] = mapped_column(String(128))  # whsec_... (webhooks only)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)


class DeliveryRow(Base):
    __tablename__ = "monitoring_deliveries"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64), nullable=False)
    alert_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    endpoint_id: Mapped[str] = mapped_column(String(64), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # pending | delivered | dead
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, index=True)
    last_error: Mapped[str | None] = mapped_column(String(1024))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class DeliveryLogRow(Base):
    __tablename__ = "monitoring_delivery_log"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    attempt: Mapped[int] = mapped_column(Integer, nullable=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    ok: Mapped[bool] = mapped_column(Boolean, nullable=False)
    http_status: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(1024))
    message_id: Mapped[str] = mapped_column(String(64), nullable=False)
