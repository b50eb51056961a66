"""Each deposit's RFC 4998 EvidenceRecord: made, stored and renewed (`GET /v1/deposits/<id>/evidence-record`,
`depository renew`).

The data object is the deposit's content; its hash is the deposit's SHA-256. Records are made in batches:
one RFC 4998 hash tree over many deposits, one token from the depository's own TSA for its root, and
each deposit keeps its reduced hash tree (`evidence.ers.build_tree`). A record asked for before any batch
has reached it is made on the spot (a tree of one).

Renewal keeps old evidence convincing (RFC 4998 §5):
* timestamp renewal, for every record whose newest stamp's TSA certificate expires within a window
  (`renew_by`, the certificate's notAfter, is stored beside the record), again one tree over many;
* hash-tree renewal with a new algorithm (`--hash sha512`), which needs the content itself to hash it
  anew: a deposit whose content the depository does not hold (hash-only intake) is skipped and reported.

A record is replaced compare-and-set on `version`, so two renewers never lose each other's stamps; a
record is only ever extended, never rebuilt (every earlier stamp stays inside it).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from asn1crypto import x509 as ax509
from sqlalchemy import Engine, exc, insert, select, update

from depository.deposits import Deposit
from depository.errors import Conflict, DepositoryError, Overloaded
from depository.models import DepositRow, EvidenceRecordRow
from evidence.errors import EvidenceError
from evidence.ers import (
    ArchiveStamp,
    EvidenceRecordData,
    build_tree,
    hash_renewal_item,
    parse_record,
    timestamp_renewal_item,
)
from evidence.timestamp import normalize_hash_name, parse_token
from notary_bridge.errors import TimestampError
from notary_bridge.tsa import TimeStamper

__all__ = ["BATCH", "EvidenceRecords", "RenewalReport", "evidence_records_for"]

log = logging.getLogger(__name__)

#: Deposits (or records) under one hash tree and one token.
BATCH = 4096
#: The media type we serve a DER EvidenceRecord with (RFC 4998 registers none).
MEDIA_TYPE = "application/octet-stream"
#: Default window: renew a record when its newest stamp's TSA certificate expires within this many days.
RENEW_WITHIN_DAYS = 180

Original = Callable[[Deposit], "bytes | None"]


@dataclass
class RenewalReport:
    created: int = 0
    timestamp_renewed: int = 0
    hash_renewed: int = 0
    skipped: list[str] = field(default_factory=list)  # "deposit id: reason"

    def to_json(self) -> dict[str, Any]:
        return {"created": self.created, "timestamp_renewed": self.timestamp_renewed,
                "hash_renewed": self.hash_renewed, "skipped": self.skipped}


class EvidenceRecords:
    """Make, store and renew evidence records with `stamper` (tokens verified against `ca_pems`).

    `original(deposit)` returns the deposit's content when the depository holds it (hash renewal).
    """

    def __init__(self, engine: Engine, stamper: TimeStamper, ca_pems: Sequence[bytes], original: Original,
                 *, clock: Callable[[], dt.datetime] | None = None) -> None:
        self.engine = engine
        self.stamper = stamper
        self.ca_pems = list(ca_pems)
        self.original = original
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))

    # ---- read ------------------------------------------------------------------------------------------

    def get(self, d: Deposit) -> bytes:
        """The deposit's record (DER), made now if no batch has reached it yet."""
        der = self._stored(d.id)
        if der is not None:
            return der
        self._create([(d.id, bytes.fromhex(d.sha256))])
        der = self._stored(d.id)
        if der is None:  # pragma: no cover - _create stored it or raised
            raise Conflict(f"evidence record of {d.id} could not be stored; retry", retry_after=1)
        return der

    def _stored(self, deposit_id: str) -> bytes | None:
        with self.engine.connect() as conn:
            der = conn.execute(select(EvidenceRecordRow.record)
                               .where(EvidenceRecordRow.deposit_id == deposit_id)).scalar()
        return bytes(der) if der is not None else None

    # ---- create ----------------------------------------------------------------------------------------

    def create_missing(self, *, limit: int | None = None, batch: int = BATCH) -> int:
        """Make records for deposits that have none, `batch` per token; how many were made."""
        made = 0
        while limit is None or made < limit:
            n = batch if limit is None else min(batch, limit - made)
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(DepositRow.id, DepositRow.sha256)
                    .outerjoin(EvidenceRecordRow, EvidenceRecordRow.deposit_id == DepositRow.id)
                    .where(EvidenceRecordRow.deposit_id.is_(None))
                    .order_by(DepositRow.leaf_index).limit(n)).all()
            if not rows:
                break
            made += self._create([(r.id, bytes.fromhex(r.sha256)) for r in rows])
        return made

    def _create(self, items: Sequence[tuple[str, bytes]]) -> int:
        alg = "sha256"
        root, reduced = build_tree(alg, [[h] for _, h in items])
        token, gen_time, not_after = self._stamp(root, alg)
        now = self.clock()
        made = 0
        for (deposit_id, _), rht in zip(items, reduced, strict=True):
            der = EvidenceRecordData.first(ArchiveStamp(alg, rht, token)).to_der()
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(EvidenceRecordRow).values(
                        deposit_id=deposit_id, record=der, hash_algorithm=alg, last_gen_time=gen_time,
                        renew_by=not_after, version=1, updated_at=now))
                made += 1
            except exc.IntegrityError:
                pass  # another process made this deposit's record first: one is enough
        return made

    def _stamp(self, digest: bytes, alg: str) -> tuple[bytes, dt.datetime, dt.datetime | None]:
        try:
            token = self.stamper.timestamp(digest, alg)  # verified by the stamper (chain, imprint, nonce)
            info = parse_token(token)
        except (TimestampError, EvidenceError) as e:
            log.warning("evidence record timestamp failed: %s", e.diagnostics())
            raise Overloaded(f"the TSA did not give a timestamp: {e.diagnostics()}", retry_after=5) from e
        not_after = ax509.Certificate.load(info.tsa_cert).not_valid_after if info.tsa_cert else None
        return token, info.gen_time, not_after

    # ---- renew -----------------------------------------------------------------------------------------

    def renew_timestamps(self, *, within: dt.timedelta = dt.timedelta(days=RENEW_WITHIN_DAYS),
                         batch: int = BATCH) -> int:
        """Add a timestamp renewal to every record whose newest TSA certificate expires within `within`."""
        started = self.clock()
        horizon = started + within
        done = 0
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(EvidenceRecordRow.deposit_id, EvidenceRecordRow.record, EvidenceRecordRow.version)
                    .where(EvidenceRecordRow.renew_by.is_not(None), EvidenceRecordRow.renew_by < horizon,
                           EvidenceRecordRow.updated_at < started)  # each record once a run
                    .order_by(EvidenceRecordRow.renew_by).limit(batch)).all()
            if not rows:
                return done
            by_alg: dict[str, list[tuple[Any, EvidenceRecordData, tuple[bytes, ...]]]] = {}
            for r in rows:
                rec = parse_record(bytes(r.record))
                alg, group = timestamp_renewal_item(rec)
                by_alg.setdefault(alg, []).append((r, rec, group))
            for alg, items in by_alg.items():
                root, reduced = build_tree(alg, [g for _, _, g in items])
                token, gen_time, not_after = self._stamp(root, alg)
                for (r, rec, _), rht in zip(items, reduced, strict=True):
                    new = rec.with_timestamp_renewal(ArchiveStamp(alg, rht, token))
                    done += self._replace(r.deposit_id, r.version, new, alg, gen_time, not_after)

    def renew_hash(self, alg: str, *, batch: int = BATCH, report: RenewalReport | None = None) -> int:
        """Add a hash-tree renewal with `alg` to every record whose newest chain uses another algorithm."""
        alg = normalize_hash_name(alg)
        report = report if report is not None else RenewalReport()
        done = 0
        skipped: set[str] = set()
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(EvidenceRecordRow.deposit_id, EvidenceRecordRow.record, EvidenceRecordRow.version,
                           DepositRow)
                    .join(DepositRow, DepositRow.id == EvidenceRecordRow.deposit_id)
                    .where(EvidenceRecordRow.hash_algorithm != alg)
                    .order_by(DepositRow.leaf_index).limit(batch + len(skipped))).all()
            rows = [r for r in rows if r.deposit_id not in skipped][:batch]
            if not rows:
                return done
            items: list[tuple[Any, EvidenceRecordData, bytes]] = []
            for r in rows:
                d = Deposit.from_row(r)
                try:
                    content = self.original(d)
                except DepositoryError as e:
                    content, why = None, e.diagnostics()
                else:
                    why = "the depository does not hold its content (hash-only deposit)"
                if content is None or hashlib.sha256(content).hexdigest() != d.sha256:
                    if content is not None:
                        why = "the stored content does not match the deposit's SHA-256"
                    skipped.add(d.id)
                    report.skipped.append(f"{d.id}: {why}")
                    continue
                rec = parse_record(bytes(r.record))
                items.append((r, rec, hash_renewal_item(rec, alg, hashlib.new(alg, content).digest())))
            if not items:
                continue
            root, reduced = build_tree(alg, [[h] for _, _, h in items])
            token, gen_time, not_after = self._stamp(root, alg)
            for (r, rec, _), rht in zip(items, reduced, strict=True):
                new = rec.with_hash_renewal(ArchiveStamp(alg, rht, token))
                done += self._replace(r.deposit_id, r.version, new, alg, gen_time, not_after)

    def _replace(self, deposit_id: str, version: int, rec: EvidenceRecordData, alg: str,
                 gen_time: dt.datetime, not_after: dt.datetime | None) -> int:
        with self.engine.begin() as conn:
            n = conn.execute(update(EvidenceRecordRow).where(
                EvidenceRecordRow.deposit_id == deposit_id, EvidenceRecordRow.version == version).values(
                record=rec.to_der(), hash_algorithm=alg, last_gen_time=gen_time, renew_by=not_after,
                version=version + 1, updated_at=self.clock())).rowcount
        if n != 1:
            log.info("evidence record of %s changed while it was renewed; the next run renews it", deposit_id)
        return 1 if n == 1 else 0

    def renew(self, *, within: dt.timedelta = dt.timedelta(days=RENEW_WITHIN_DAYS),
              hash_algorithm: str | None = None) -> RenewalReport:
        """What `depository renew` and the scheduled job do: create missing, renew timestamps, renew hash."""
        report = RenewalReport()
        report.created = self.create_missing()
        report.timestamp_renewed = self.renew_timestamps(within=within)
        if hash_algorithm is not None:
            report.hash_renewed = self.renew_hash(hash_algorithm, report=report)
        return report


def evidence_records_for(s: Any) -> EvidenceRecords:
    """The records service of a `Services`: its TSA (the notary's, else config.tsa_urls) and content store.

    Conflict when no TSA is configured: an evidence record without a timestamp proves nothing.
    """
    from depository.packets import packet_timestamper, stored_original

    stamper, cas = packet_timestamper(s)
    if stamper is None:
        raise Conflict("no TSA is configured (tsa_urls): evidence records need RFC 3161 timestamps")
    return EvidenceRecords(s.engine, stamper, cas, lambda d: stored_original(s, d))
