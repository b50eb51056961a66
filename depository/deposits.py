"""Deposits: intake (file, hash-only, batch), lookup, status and matters.

A deposit is acknowledged only after its transaction commits: the deposit row and its sequenced log entry
are written together (log.sequence inside the same transaction), so a 2xx always means the entry has a
durable index and cannot be lost. Batches are all-or-nothing: one invalid item rejects the whole request
before anything is written.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, insert, select
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from depository.db import bulk_insert
from depository.errors import BadRequest, Conflict, NotFound, ValidationFailed
from depository.group_commit import GroupCommit
from depository.kinds import ID_RE, validate_metadata
from depository.log import Log
from depository.models import DepositRow, IdempotencyRow
from evidence.hashes import parse_hex64
from evidence.leaf import KINDS, MAX_SIZE, SALT_BYTES, encode_leaf, format_received, meta_hash, valid_id

GROUP_COMMIT_MAX_ITEMS = 100  # requests this small share transactions; bigger batches are one already
DEPOSIT_COLUMNS = ("id", "tenant_id", "kind", "sha256", "sm3", "size", "filename", "content_type", "metadata_json",
                   "matter", "follows", "received", "leaf_index", "content_stored")


_FIELDS = frozenset({"kind", "sha256", "sm3", "size", "filename", "metadata", "matter", "follows", "content_type"})


@dataclass
class DepositRequest:
    """One validated deposit, before it has an id."""

    kind: str
    sha256: bytes
    sm3: bytes
    size: int | None
    metadata: dict[str, Any]
    filename: str | None = None
    content_type: str | None = None
    metadata_json: str = ""

    def __post_init__(self) -> None:
        if not self.metadata_json:
            self.metadata_json = metadata_text(self.metadata)

    @classmethod
    def from_json(cls, obj: Any, *, where: str = "") -> DepositRequest:
        """Parse a hash-only deposit object (`kind`, `sha256`, `sm3`, `size`?, `filename`?, `metadata`)."""
        pre = f"{where}: " if where else ""
        if not isinstance(obj, dict):
            raise ValidationFailed(f"{pre}a deposit must be a JSON object")
        if not obj.keys() <= _FIELDS:
            raise ValidationFailed(f"{pre}unknown field(s): {', '.join(sorted(set(obj) - _FIELDS))}")
        kind = obj.get("kind")
        if kind not in KINDS:
            raise ValidationFailed(f"{pre}kind must be one of {', '.join(KINDS)}")
        try:
            sha256 = parse_hex64(obj.get("sha256"), "sha256")  # type: ignore[arg-type]
            sm3 = parse_hex64(obj.get("sm3"), "sm3")  # type: ignore[arg-type]
        except Exception as e:
            raise ValidationFailed(f"{pre}{e}") from e
        size = obj.get("size")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_SIZE):
            raise ValidationFailed(f"{pre}size must be an integer from 0 to 2^63-1")
        filename = obj.get("filename")
        if filename is not None and (not isinstance(filename, str) or not 0 < len(filename) <= 255
                                     or not filename.isprintable()):
            raise ValidationFailed(f"{pre}filename must be 1 to 255 printable characters")
        content_type = obj.get("content_type")
        if content_type is not None and (not isinstance(content_type, str) or not 0 < len(content_type) <= 255
                                         or not content_type.isprintable()):
            raise ValidationFailed(f"{pre}content_type must be 1 to 255 printable characters")
        metadata = merge_refs(obj.get("metadata", {}), obj.get("matter"), obj.get("follows"), pre)
        try:
            validate_metadata(kind, metadata)
        except ValidationFailed as e:
            raise ValidationFailed(pre + e.detail, extra=e.extra) from e
        return cls(kind, sha256, sm3, size, metadata, filename, content_type,
                   metadata_text(metadata, pre))


def merge_refs(metadata: Any, matter: Any, follows: Any, pre: str = "") -> dict[str, Any]:
    """Fold top-level `matter`/`follows` into the metadata (where the leaf's meta hash covers them)."""
    if not isinstance(metadata, dict):
        raise ValidationFailed(f"{pre}metadata must be a JSON object")
    metadata = dict(metadata)
    for key, value in (("matter", matter), ("follows", follows)):
        if value is None or value == "":  # "" is absent, as in the multipart form
            continue
        if key in metadata and metadata[key] != value:
            raise ValidationFailed(f"{pre}{key} given twice with different values")
        metadata[key] = value
    return metadata


def metadata_text(metadata: dict[str, Any], pre: str = "") -> str:
    """The metadata as stored (compact JSON), refusing more than 64 KiB."""
    if not metadata:
        return "{}"
    try:
        text = orjson.dumps(metadata).decode()
    except TypeError:  # an integer beyond 64 bits (from a multipart form's metadata): the stdlib writes it
        text = json.dumps(metadata, separators=(",", ":"), ensure_ascii=False)
    if len(text) > 64 * 1024:
        raise ValidationFailed(f"{pre}metadata is larger than 64 KiB")
    return text


@dataclass
class Deposit:
    id: str
    tenant_id: str
    kind: str
    sha256: str
    sm3: str
    size: int | None
    filename: str | None
    content_type: str | None
    metadata: dict[str, Any]
    received: datetime
    leaf_index: int
    content_stored: bool
    status: str = "pending"
    extra: dict[str, Any] = field(default_factory=dict)
    received_text: str = ""  # rfc3339_ms(received), when the batch already formatted it

    @classmethod
    def from_row(cls, r: Any) -> Deposit:
        received = r.received if r.received.tzinfo else r.received.replace(tzinfo=UTC)
        return cls(r.id, r.tenant_id, r.kind, r.sha256, r.sm3, r.size, r.filename, r.content_type,
                   json.loads(r.metadata_json), received, r.leaf_index, r.content_stored)

    def summary(self, status: str) -> dict[str, Any]:
        """What a batch answer lists per deposit: identity, hashes, place in the log, status."""
        return {"id": self.id, "kind": self.kind, "sha256": self.sha256, "sm3": self.sm3,
                "received": self.received_text or rfc3339_ms(self.received), "leaf_index": self.leaf_index,
                "status": status}

    def to_json(self) -> dict[str, Any]:
        out = {"id": self.id, "kind": self.kind, "sha256": self.sha256, "sm3": self.sm3, "size": self.size,
               "filename": self.filename, "content_type": self.content_type,
               "received": self.received_text or rfc3339_ms(self.received), "leaf_index": self.leaf_index,
               "status": self.status, "matter": self.metadata.get("matter"),
               "follows": self.metadata.get("follows"), "metadata": self.metadata,
               "content_stored": self.content_stored}
        out.update(self.extra)
        return out


def rfc3339_ms(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def new_deposit_id() -> str:
    """`dep_` + 12 hex digits of milliseconds + 12 random hex digits: unguessable, and time-ordered so
    the primary-key and identity indexes grow at their right edge instead of splitting pages at random."""
    return new_deposit_ids(1)[0]


def new_deposit_ids(n: int) -> list[str]:
    """`n` deposit ids at once: one clock reading and one draw from `secrets` for the whole batch."""
    ms = f"dep_{int(time.time() * 1000):012x}"
    rnd = secrets.token_hex(6 * n)
    return [ms + rnd[12 * i:12 * i + 12] for i in range(n)]


def request_fingerprint(body: bytes) -> bytes:
    return hashlib.sha256(body).digest()


@dataclass
class _Job:
    """One intake request on its way through the group commit."""

    tenant_id: str
    reqs: Sequence[DepositRequest]
    ids: Sequence[str] | None
    content_stored: bool
    idempotency: tuple[str, bytes] | None
    response_builder: Any


class Deposits:
    def __init__(self, engine: Engine, the_log: Log) -> None:
        self.engine = engine
        self.log = the_log
        self._group: GroupCommit[_Job, list[Deposit]] = GroupCommit(self._commit)

    # ---- intake ------------------------------------------------------------------------------------

    def _rows(self, tenant_id: str, reqs: Sequence[DepositRequest], ids: Sequence[str] | None = None,
              content_stored: bool = False) -> tuple[list[Deposit], list[tuple[Any, ...]], list[tuple[str, bytes]]]:
        """Deposits, their insert tuples (DEPOSIT_COLUMNS order, leaf index and content flag added later)
        and their log entries. One received time per batch (the batch is one transaction); what is the same
        for every item (time text, depositor check, ids and salts from `secrets`) is done once per batch:
        this loop is the intake's hot path."""
        now = datetime.now(UTC)
        received = now.replace(microsecond=now.microsecond // 1000 * 1000)
        received_text = format_received(received)
        if not valid_id(tenant_id):
            raise ValueError(f"tenant id {tenant_id!r} cannot be a leaf's depositor")
        ids = list(ids) if ids else new_deposit_ids(len(reqs))
        if not all(valid_id(i) for i in ids):
            raise ValueError("a deposit id must match [A-Za-z0-9_-]{1,64}")
        salts = secrets.token_bytes(SALT_BYTES * len(reqs)).hex()
        step = 2 * SALT_BYTES
        deposits, rows, entries = [], [], []
        for i, req in enumerate(reqs):
            dep_id = ids[i]
            sha256, sm3 = req.sha256.hex(), req.sm3.hex()
            metadata = req.metadata
            entries.append((dep_id, encode_leaf(dep_id, req.kind, sha256, sm3, req.size, received_text, tenant_id,
                                                meta_hash(metadata).hex(), salts[step * i:step * i + step])))
            deposits.append(Deposit(dep_id, tenant_id, req.kind, sha256, sm3, req.size, req.filename,
                                    req.content_type, metadata, received, -1, content_stored,
                                    received_text=received_text))
            rows.append((dep_id, tenant_id, req.kind, sha256, sm3, req.size, req.filename, req.content_type,
                         req.metadata_json, metadata.get("matter"), metadata.get("follows"), received))
        return deposits, rows, entries

    def _check_follows(self, conn: Connection, tenant_id: str, reqs: Sequence[DepositRequest]) -> None:
        wanted = {r.metadata["follows"] for r in reqs if r.metadata.get("follows")}
        if not wanted:
            return
        found = set(conn.execute(select(DepositRow.id).where(
            DepositRow.tenant_id == tenant_id, DepositRow.id.in_(wanted))).scalars())
        missing = wanted - found
        if missing:
            raise ValidationFailed(f"follows names unknown deposit(s): {', '.join(sorted(missing))}")

    def create_many(self, tenant_id: str, reqs: Sequence[DepositRequest], *, ids: Sequence[str] | None = None,
                    content_stored: bool = False, idempotency: tuple[str, bytes] | None = None,
                    response_builder: Any = None) -> list[Deposit] | tuple[int, str]:
        """Sequence deposits in one transaction. With `idempotency=(key, request hash)`, returns the stored
        `(status, response json)` of an earlier identical request instead, or raises Conflict.

        Small requests (single deposits, small batches) go through the group commit: concurrent ones
        share a transaction, each still acknowledged only once it is committed."""
        if idempotency:
            replay = self.idempotent_replay(tenant_id, *idempotency)
            if replay is not None:
                return replay
        job = _Job(tenant_id, reqs, ids, content_stored, idempotency, response_builder)
        try:
            if len(reqs) <= GROUP_COMMIT_MAX_ITEMS:
                return self._group.submit(job)
            return self._commit([job])[0]
        except SAIntegrityError as e:
            if idempotency:
                replay = self.idempotent_replay(tenant_id, *idempotency)
                if replay is not None:
                    return replay
            self.log.check_sequence()  # a counter behind the stored entries halts instead (tampering)
            raise Conflict("a deposit with this id already exists") from e

    def _commit(self, jobs: Sequence[_Job]) -> list[list[Deposit]]:
        """Sequence and store every job's deposits in one transaction (all or nothing)."""
        prepared = [self._rows(j.tenant_id, j.reqs, j.ids, j.content_stored) for j in jobs]
        with self.engine.begin() as conn:
            # Lock first. Ids drawn here are fresh (48 random bits beside the millisecond): no savepoint
            # for duplicates; the once-in-2^48 clash fails the group, whose members retry with new ids.
            indices = self.log.sequence(conn, [e for _, _, entries in prepared for e in entries],
                                        fresh=all(j.ids is None for j in jobs))
            for j in jobs:
                self._check_follows(conn, j.tenant_id, j.reqs)
            rows: list[tuple[Any, ...]] = []
            pos = 0
            for j, (deps, job_rows, _) in zip(jobs, prepared, strict=True):
                for d, r in zip(deps, job_rows, strict=True):
                    d.leaf_index = indices[pos]
                    rows.append((*r, indices[pos], j.content_stored))
                    pos += 1
            bulk_insert(conn, "deposits", DEPOSIT_COLUMNS, rows)
            now = datetime.now(UTC)
            idem_rows = []
            for j, (deps, _, _) in zip(jobs, prepared, strict=True):
                if j.idempotency:
                    status, body = j.response_builder(deps)
                    idem_rows.append({"tenant_id": j.tenant_id, "key": j.idempotency[0],
                                      "request_hash": j.idempotency[1], "status": status,
                                      "response_json": body, "created_at": now})
            if idem_rows:
                conn.execute(insert(IdempotencyRow), idem_rows)
        return [deps for deps, _, _ in prepared]

    def idempotent_replay(self, tenant_id: str, key: str, req_hash: bytes) -> tuple[int, str] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(IdempotencyRow).where(IdempotencyRow.tenant_id == tenant_id,
                                                            IdempotencyRow.key == key)).first()
        if row is None:
            return None
        if row.request_hash != req_hash:
            raise Conflict("this Idempotency-Key was used with a different request body")
        return row.status, row.response_json

    # ---- read --------------------------------------------------------------------------------------

    def get(self, tenant_id: str, deposit_id: str) -> Deposit:
        if not ID_RE.match(deposit_id):
            raise NotFound(f"no deposit {deposit_id[:64]}")
        with self.engine.connect() as conn:
            row = conn.execute(select(DepositRow).where(DepositRow.id == deposit_id,
                                                        DepositRow.tenant_id == tenant_id)).first()
        if row is None:
            raise NotFound(f"no deposit {deposit_id}")
        return Deposit.from_row(row)

    def find(self, tenant_id: str, *, sha256: str | None = None, matter: str | None = None,
             kind: str | None = None, since: datetime | None = None, until: datetime | None = None,
             query: str | None = None, limit: int = 100, offset: int = 0) -> list[Deposit]:
        q = select(DepositRow).where(DepositRow.tenant_id == tenant_id)
        if sha256 is not None:
            try:
                q = q.where(DepositRow.sha256 == parse_hex64(sha256, "sha256").hex())
            except Exception as e:
                raise BadRequest(str(e)) from e
        if matter is not None:
            q = q.where(DepositRow.matter == matter)
        if kind is not None:
            q = q.where(DepositRow.kind == kind)
        if since is not None:
            q = q.where(DepositRow.received >= since)
        if until is not None:
            q = q.where(DepositRow.received <= until)
        if query:
            query = query.replace("\x00", "")[:200]  # PostgreSQL refuses NUL in text
            like = f"%{query}%"
            q = q.where(DepositRow.id.like(like) | DepositRow.sha256.like(like.lower())
                        | DepositRow.sm3.like(like.lower()) | DepositRow.filename.like(like)
                        | DepositRow.metadata_json.like(like))
        order = DepositRow.leaf_index if matter is not None else DepositRow.leaf_index.desc()
        q = q.order_by(order).limit(max(1, min(limit, 1000))).offset(max(0, offset))
        with self.engine.connect() as conn:
            return [Deposit.from_row(r) for r in conn.execute(q)]

    def count(self, tenant_id: str) -> int:
        from sqlalchemy import func

        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(DepositRow)
                                    .where(DepositRow.tenant_id == tenant_id)).scalar_one())

