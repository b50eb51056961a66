"""The log's notary: every published checkpoint is cosigned by the policy's witnesses and timestamped.

Flow (one unit of work per checkpoint, never per deposit):

    Log._publish -> listener -> submit(checkpoint id)
        in-process (no Redis): a queue.Queue drained by one worker thread
        Redis configured:      an rq job `depository.jobs.notarize_checkpoint(home, id)` on `notary`
    notarize(id): timestamp that checkpoint, then bring every witness up to the *latest* checkpoint

Choices, and why:

* Every checkpoint is timestamped (issue 4: "Every checkpoint is timestamped"): a TSA request is cheap,
  and each checkpoint's token is what bounds the time of the deposits it first contains.
* Witnesses are asked for the latest checkpoint, not for each queued one: when checkpoints pile up (a
  witness was slow, the queue is backed up), cosigning the newest one advances every witness in one
  round trip with one consistency proof, and a witness can never cosign an older checkpoint after a newer
  one anyway (409). The older checkpoints stay `witnessed = False`; the proof bundle then uses the
  earliest checkpoint that has both the quorum and a token, which is the newest one here -- still a
  tight bound, because it was published moments after them. When the queue is not backed up, "latest" is
  the checkpoint the job is for.
* Witnesses are asked in parallel (one thread each); each witness is sent a consistency proof from the
  size it last cosigned (table `witness_progress`); a 409 names the witness's size and we resend once
  from there. A 409 naming the size we sent is a refusal (a fork at that size), not a race, and is not
  retried.
* Each cosignature line is verified against the policy's key for that witness (Ed25519 cosignature/v1 or
  our SM2 profile) before it is stored; lines from unknown keys are ignored (tlog-witness).
  `witnessed` is set when the stored cosignatures meet the policy quorum. Without a policy file there
  is no quorum to meet (tlog-policy `quorum none`), so `witnessed` is set at once.
* Outages: a party that fails gets exponential backoff (0.5 s doubling, capped at
  `notary_retry_max_s`); nothing here runs on the deposit path, so deposits never wait. A periodic sweep
  (every 0.5 s in-process; an rq `sweep` job when Redis is configured) retries what is missing: tokens
  for every untimestamped checkpoint, cosignatures on the latest checkpoint. So the notary catches up
  by itself when a witness or the TSA returns.
* TSA trust anchors: `$DEPOSITORY_HOME/tsa/tsa-ca.pem` (one or several PEM roots), the same file the
  built-in TSA writes (`notary_bridge.tsa_server`), because Config has no separate setting for it.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import Engine, exc, func, insert, select, update

from depository.config import Config
from depository.errors import ConfigError
from depository.log import Log, PublishedCheckpoint
from depository.models import CheckpointRow, CosignatureRow, TimestampRow, WitnessProgress
from evidence.checkpoint import append_signature_lines
from evidence.cosignature import parse_cosignature, verify_cosignature
from evidence.errors import EvidenceError
from evidence.policy import Policy, PolicyWitness
from evidence.timestamp import parse_token
from notary_bridge.errors import NotaryError, TimestampError, WitnessError
from notary_bridge.tsa import FallbackTimeStamper, HttpTimeStamper, TimeStamper
from notary_bridge.witness_client import WitnessClient, WitnessConflict

__all__ = ["Backoff", "Notary", "build_notary", "tsa_ca_path"]

log = logging.getLogger(__name__)

BACKOFF_BASE_S = 0.5
SWEEP_INTERVAL_S = 0.5
#: How many untimestamped checkpoints one sweep stamps (oldest first); the next sweep does the rest.
SWEEP_BATCH = 200
WITNESS_TIMEOUT_S = 5.0
#: Older queued checkpoints are stamped this many at a time (TSA round trips overlap).
STAMP_PARALLEL = 4
TSA_TIMEOUT_S = 10.0


def tsa_ca_path(home: Path) -> Path:
    """Where a home keeps the TSA root(s) its tokens must chain to."""
    return Path(home) / "tsa" / "tsa-ca.pem"


class Backoff:
    """Exponential backoff for one outside party: after n failures, wait base * 2^(n-1), capped."""

    def __init__(self, max_s: float, base_s: float = BACKOFF_BASE_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.base_s = base_s
        self.max_s = max(max_s, base_s)
        self._clock = clock
        self.failures = 0
        self.errors_total = 0
        self.last_error: str | None = None
        self._next_at = 0.0

    def ready(self) -> bool:
        return self._clock() >= self._next_at

    def failed(self, error: str) -> None:
        self.failures += 1
        self.errors_total += 1
        self.last_error = error
        self._next_at = self._clock() + min(self.base_s * 2 ** (self.failures - 1), self.max_s)

    def succeeded(self) -> None:
        self.failures = 0
        self.last_error = None
        self._next_at = 0.0


@dataclass
class Endpoint:
    """One witness URL and the policy witnesses (keys) it answers for, e.g. Ed25519 and SM2 of one court.

    `key` names its row in `witness_progress`: the policy name of its first witness.
    """

    url: str
    members: list[PolicyWitness]
    backoff: Backoff
    lock: threading.Lock = field(default_factory=threading.Lock)
    client: WitnessClient | None = None

    @property
    def key(self) -> str:
        return self.members[0].name


@dataclass(frozen=True)
class Cosigned:
    witness_name: str
    line: str
    timestamp: int


class Notary:
    """Witnessing and timestamping of the log's checkpoints (see the module docstring)."""

    def __init__(
        self,
        engine: Engine,
        the_log: Log,
        *,
        policy: Policy | None,
        policy_text: str | None,
        stamper: TimeStamper | None,
        tsa_ca_pem: bytes | None,
        retry_max_s: float,
        submit: Callable[[int], None] | None = None,
        request_sweep: Callable[[], None] | None = None,
        queue_depth: Callable[[], int] | None = None,
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        self.engine = engine
        self.log = the_log
        self.policy = policy
        self.policy_text = policy_text or ""
        self.stamper = stamper
        self.tsa_ca_pem = tsa_ca_pem
        self.retry_max_s = retry_max_s
        self.tsa_backoff = Backoff(retry_max_s)
        self.endpoints = _endpoints(policy, retry_max_s)
        self._submit_remote = submit
        self._request_sweep = request_sweep
        self._remote_depth = queue_depth
        self._on_stop = on_stop
        self._queue: queue.Queue[int] = queue.Queue()
        self._stop = threading.Event()
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._pools_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._last_sweep = 0.0
        self._sweep_wait = SWEEP_INTERVAL_S
        self.last_witness_latency_s: float | None = None

    # ---- lifecycle and dispatch --------------------------------------------------------------------

    def on_checkpoint(self, cp: PublishedCheckpoint) -> None:
        """Log listener: hand the checkpoint to the worker; cheap, never blocks publishing for long."""
        if self._submit_remote is not None:
            self._submit_remote(cp.id)
        else:
            self._queue.put(cp.id)

    def start(self) -> None:
        """Start the worker thread (in-process) or the sweep thread that enqueues rq sweeps (Redis)."""
        if self._thread is not None:
            return
        self._stop.clear()
        target = self._run_local if self._submit_remote is None else self._run_sweeper
        self._thread = threading.Thread(target=target, name="notary", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None
        with self._pools_lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.shutdown(wait=True)
        for ep in self.endpoints:
            with ep.lock:
                if ep.client is not None:
                    ep.client.close()
                    ep.client = None
        if self._on_stop is not None:
            self._on_stop()

    def _run_local(self) -> None:
        while not self._stop.is_set():
            try:
                first = self._queue.get(timeout=SWEEP_INTERVAL_S)
            except queue.Empty:
                self._guarded(self.sweep)
                continue
            ids = {first}
            while True:
                try:
                    ids.add(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._guarded(functools.partial(self.notarize_many, sorted(ids)))
            if time.monotonic() - self._last_sweep > SWEEP_INTERVAL_S:
                self._guarded(self.sweep)

    def _run_sweeper(self) -> None:
        """Redis mode: ask the rq workers for a sweep while work is missing, backing off while it stays so."""
        while not self._stop.wait(self._sweep_wait):
            try:
                if self.lagging() and self._request_sweep is not None:
                    self._request_sweep()
                    self._sweep_wait = min(self._sweep_wait * 2, max(self.retry_max_s, SWEEP_INTERVAL_S))
                else:
                    self._sweep_wait = SWEEP_INTERVAL_S
            except Exception:
                log.exception("notary sweep request failed")

    @staticmethod
    def _guarded(fn: Callable[[], object]) -> None:
        try:
            fn()
        except Exception:
            # A database hiccup must not kill the worker; the next sweep redoes what is missing.
            log.exception("notary work failed; the sweep will retry")

    # ---- the work (also what the rq jobs call) ---------------------------------------------------------

    def notarize(self, checkpoint_id: int) -> dict[str, Any]:
        """Timestamp checkpoint `checkpoint_id` and bring the witnesses up to the latest checkpoint."""
        return self.notarize_many([checkpoint_id])

    def notarize_many(self, checkpoint_ids: Sequence[int]) -> dict[str, Any]:
        """Stamp each checkpoint while, at the same time, the witnesses are asked about the latest one.

        The TSA and the witnesses are independent parties, so their round trips overlap: the
        checkpoint-to-done latency is the slower of the two, not their sum. The newest checkpoint is
        stamped first: it is the one the witnesses cosign, so it is the one that makes its deposits
        `witnessed`; when checkpoints queue up (several a second under load), stamping oldest first left
        the witnessed checkpoint without a token until the whole backlog was done. The older ones follow,
        a few at a time (the TSA round trips overlap).
        """
        ids = sorted(set(checkpoint_ids), reverse=True)
        if not ids:
            return {"timestamped": 0, "witnessed": self._witness_latest()}
        witnessing = self._pool("witnessing", 1).submit(self._witness_latest)
        stamped = int(self._timestamp(self.log.checkpoint(ids[0])))
        witnessed = witnessing.result()
        if len(ids) > 1:
            stamped += sum(self._pool("stamping", STAMP_PARALLEL).map(
                lambda cid: self._timestamp(self.log.checkpoint(cid)), ids[1:]))
        return {"timestamped": stamped, "witnessed": witnessed}

    def _pool(self, name: str, workers: int) -> ThreadPoolExecutor:
        """A long-lived pool per kind of work: threads (and their database connections) are reused, not
        made afresh for every checkpoint. Pools are never nested in one another (no deadlock)."""
        with self._pools_lock:
            pool = self._pools.get(name)
            if pool is None:
                pool = self._pools[name] = ThreadPoolExecutor(max_workers=max(1, workers),
                                                              thread_name_prefix=f"notary-{name}")
            return pool

    def sweep(self) -> dict[str, Any]:
        """Redo whatever is missing: tokens (oldest first) and cosignatures on the latest checkpoint."""
        self._last_sweep = time.monotonic()
        stamped = 0
        if self.stamper is not None and self.tsa_backoff.ready():
            with self.engine.connect() as conn:
                rows = conn.execute(select(CheckpointRow).where(CheckpointRow.timestamped.is_(False))
                                    .order_by(CheckpointRow.size).limit(SWEEP_BATCH)).all()
                pending = [PublishedCheckpoint.from_row(r) for r in rows]
            for cp in pending:
                if not self._timestamp(cp):
                    break  # the TSA is failing: leave the rest to the sweep after the backoff
                stamped += 1
        witnessed = self._witness_latest()
        return {"timestamped": stamped, "witnessed": witnessed}

    def lagging(self) -> bool:
        """True if some checkpoint lacks a token or the latest lacks a configured witness's cosignature."""
        # One connection at a time: on SQLite every transaction takes the write lock (BEGIN IMMEDIATE),
        # so a nested connection would wait for its parent.
        if self.stamper is not None:
            with self.engine.connect() as conn:
                if conn.execute(select(CheckpointRow.id)
                                .where(CheckpointRow.timestamped.is_(False)).limit(1)).first():
                    return True
        if self.policy is None:
            return False
        have = self._cosigners(self.log.latest_checkpoint().id)
        return any(not {m.name for m in ep.members} & have for ep in self.endpoints)

    # ---- timestamps ------------------------------------------------------------------------------------

    def _timestamp(self, cp: PublishedCheckpoint) -> bool:
        """Get, verify and store a token over SHA-256(checkpoint body); True if the checkpoint has one."""
        if self.stamper is None:
            return False
        with self.engine.connect() as conn:
            have = conn.execute(select(TimestampRow.id).where(TimestampRow.checkpoint_id == cp.id)).first()
        if have is not None:
            self._set_flag(cp.id, timestamped=True)
            return True
        if not self.tsa_backoff.ready():
            return False
        digest = hashlib.sha256(cp.body.encode("utf-8")).digest()
        try:
            token = self.stamper.timestamp(digest, "sha256")  # verified by the stamper (chain, imprint, nonce)
            info = parse_token(token)
        except (TimestampError, EvidenceError) as e:
            self.tsa_backoff.failed(e.diagnostics())
            log.warning("timestamping checkpoint %d (size %d) failed: %s", cp.id, cp.size, e.diagnostics())
            return False
        self.tsa_backoff.succeeded()
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(TimestampRow).values(
                    checkpoint_id=cp.id, token=token, gen_time=info.gen_time,
                    tsa=(info.tsa_name or self.stamper.label)[:1024]))
                conn.execute(update(CheckpointRow).where(CheckpointRow.id == cp.id).values(timestamped=True))
        except exc.IntegrityError:
            # Another worker stored a token for this checkpoint first; one is enough.
            self._set_flag(cp.id, timestamped=True)
        return True

    def timestamp_for(self, cp: PublishedCheckpoint) -> tuple[bytes | None, str | None]:
        """(DER token, PEM chain: the TSA's certificate first, its root last) or (None, None)."""
        with self.engine.connect() as conn:
            token = conn.execute(select(TimestampRow.token).where(TimestampRow.checkpoint_id == cp.id)).scalar()
        if token is None:
            return None, None
        token = bytes(token)
        return token, self._chain_pem(token)

    def _chain_pem(self, token: bytes) -> str | None:
        info = parse_token(token)
        roots = x509.load_pem_x509_certificates(self.tsa_ca_pem) if self.tsa_ca_pem else []
        if info.tsa_cert is None:
            return "".join(r.public_bytes(Encoding.PEM).decode() for r in roots) or None
        tsa_cert = x509.load_der_x509_certificate(info.tsa_cert)
        issuers = [r for r in roots if r.subject == tsa_cert.issuer] or roots
        chain = [tsa_cert, *[r for r in issuers if r != tsa_cert]]
        return "".join(c.public_bytes(Encoding.PEM).decode() for c in chain)

    # ---- witnesses -------------------------------------------------------------------------------------

    def _witness_latest(self) -> bool:
        """Ask every due witness for a cosignature on the latest checkpoint; True if it meets the quorum."""
        latest = self.log.latest_checkpoint()
        if self.policy is None:
            self._set_flag(latest.id, witnessed=True)
            return True
        have = self._cosigners(latest.id)
        due = [ep for ep in self.endpoints
               if not {m.name for m in ep.members} & have and ep.backoff.ready()]
        if due:
            results = list(self._pool("asking", len(self.endpoints)).map(lambda ep: self._ask(ep, latest), due))
            self._store_cosignatures(latest, [c for r in results for c in r])
            have = self._cosigners(latest.id)
        ok = self.policy.satisfied(have)
        if ok:
            if self._set_flag(latest.id, witnessed=True):
                self.last_witness_latency_s = (datetime.now(UTC) - latest.created_at).total_seconds()
        return ok

    def _cosigners(self, checkpoint_id: int) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.execute(select(CosignatureRow.witness_name)
                                    .where(CosignatureRow.checkpoint_id == checkpoint_id)).scalars())

    def _ask(self, ep: Endpoint, cp: PublishedCheckpoint) -> list[Cosigned]:
        """One witness, serially (its state only moves forward): POST, follow one 409, verify the lines."""
        with ep.lock:
            old = self._progress(ep.key)
            try:
                if ep.client is None:
                    ep.client = WitnessClient(ep.url, timeout_s=WITNESS_TIMEOUT_S)
                for _ in range(3):
                    if old > cp.size:
                        # The witness has cosigned a later checkpoint (another worker got there first).
                        self._set_progress(ep.key, old, None)
                        return []
                    proof = self.log.consistency_proof(old, cp.size)
                    try:
                        lines = ep.client.add_checkpoint(old, proof, cp.note)
                    except WitnessConflict as c:
                        if c.size == old:
                            raise WitnessError(
                                f"witness {ep.url} refuses size {cp.size} from its own size {old}: "
                                "it holds another checkpoint at that size (fork?)") from c
                        old = c.size
                        continue
                    cosigned = self._verify_lines(ep, cp, lines)
                    self._set_progress(ep.key, cp.size, None)
                    ep.backoff.succeeded()
                    return cosigned
                raise WitnessError(f"witness {ep.url}: its size kept changing under us")
            except (NotaryError, EvidenceError) as e:
                ep.backoff.failed(e.diagnostics())
                log.warning("witness %s (%s): %s", ep.key, ep.url, e.diagnostics())
                self._set_progress(ep.key, None, e.diagnostics())
                return []

    def _verify_lines(self, ep: Endpoint, cp: PublishedCheckpoint, lines: list[str]) -> list[Cosigned]:
        """Keep the lines that verify under one of this endpoint's policy keys; ignore unknown keys."""
        out: list[Cosigned] = []
        for line in lines:
            try:
                cosig = parse_cosignature(line)
            except EvidenceError:
                continue
            for m in ep.members:
                if (m.verifier.name, m.verifier.key_id) == (cosig.name, cosig.key_id):
                    try:
                        ts = verify_cosignature(cp.body, line, m.verifier)
                    except EvidenceError as e:
                        raise WitnessError(f"witness {ep.url}: cosignature by {m.name} is invalid") from e
                    out.append(Cosigned(m.name, line if line.endswith("\n") else line + "\n", ts))
        if not out:
            raise WitnessError(f"witness {ep.url}: no cosignature from the policy's key(s)")
        return out

    def _store_cosignatures(self, cp: PublishedCheckpoint, cosigned: list[Cosigned]) -> None:
        for c in cosigned:
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(CosignatureRow).values(
                        checkpoint_id=cp.id, witness_name=c.witness_name, line=c.line, cosigned_at=c.timestamp))
            except exc.IntegrityError:
                pass  # already stored by an earlier attempt; one cosignature per witness is enough

    def _progress(self, key: str) -> int:
        with self.engine.connect() as conn:
            size = conn.execute(select(WitnessProgress.size).where(WitnessProgress.witness_name == key)).scalar()
        return int(size or 0)

    def _set_progress(self, key: str, size: int | None, error: str | None) -> None:
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

    def _set_flag(self, checkpoint_id: int, **flag: bool) -> bool:
        """Set `witnessed`/`timestamped`; True if it changed (so latency is measured once)."""
        (name, value), = flag.items()
        column = getattr(CheckpointRow, name)
        with self.engine.begin() as conn:
            res = conn.execute(update(CheckpointRow).where(CheckpointRow.id == checkpoint_id, column.is_(not value))
                               .values({name: value}))
        return bool(res.rowcount)

    # ---- what the rest of the service reads ------------------------------------------------------------

    def checkpoint_text(self, cp: PublishedCheckpoint) -> str:
        """The log's note with the stored cosignature lines appended, in policy order."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(CosignatureRow.witness_name, CosignatureRow.line)
                                .where(CosignatureRow.checkpoint_id == cp.id)).all()
        if not rows:
            return cp.note
        order = {w.name: i for i, w in enumerate(self.policy.witnesses)} if self.policy else {}
        lines = [line for _, line in sorted(rows, key=lambda r: (order.get(r[0], len(order)), r[0]))]
        return append_signature_lines(cp.note, lines)

    def public_material(self) -> dict[str, Any]:
        """For GET /v1/log/keys: the policy text, each witness's vkey and URL, the TSA root(s)."""
        return {
            "witness_policy": self.policy_text or None,
            "witnesses": [{"name": w.name, "vkey": w.verifier.to_vkey(), "url": w.url}
                          for w in (self.policy.witnesses if self.policy else ())],
            "tsa_ca_pem": self.tsa_ca_pem.decode() if self.tsa_ca_pem else None,
        }

    def _progress_rows(self) -> dict[str, Any]:
        """witness_progress rows (Core rows: .size, .last_error, ...) by witness key."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(WitnessProgress)).all()
        return {r.witness_name: r for r in rows}

    def health(self) -> dict[str, Any]:
        """`witnesses` and `tsa` checks for /healthz: degraded while a party fails (deposits go on)."""
        out: dict[str, Any] = {}
        latest = self.log.latest_checkpoint()
        if self.policy is not None:
            progress = self._progress_rows()
            members: dict[str, Any] = {}
            for ep in self.endpoints:
                row = progress.get(ep.key)
                err = row.last_error if row else ep.backoff.last_error
                members[ep.key] = {"url": ep.url, "size": row.size if row else 0,
                                   "lag": latest.size - (row.size if row else 0),
                                   "status": "ok" if not err else "error", "last_error": err}
            with self.engine.connect() as conn:
                witnessed = conn.execute(select(func.max(CheckpointRow.size))
                                         .where(CheckpointRow.witnessed.is_(True))).scalar() or 0
            bad = any(m["status"] != "ok" for m in members.values())
            out["witnesses"] = {"status": "degraded" if bad else "ok", "quorum": self.policy.quorum,
                                "witnessed_size": witnessed, "members": members}
        if self.stamper is not None:
            with self.engine.connect() as conn:
                pending = conn.execute(select(func.count()).select_from(CheckpointRow)
                                       .where(CheckpointRow.timestamped.is_(False))).scalar() or 0
            err = self.tsa_backoff.last_error
            out["tsa"] = {"status": "degraded" if err or pending > 1 else "ok",
                          "untimestamped_checkpoints": pending, "last_error": err}
        return out

    def queue_depth(self) -> int:
        return self._remote_depth() if self._remote_depth is not None else self._queue.qsize()

    def metrics_lines(self) -> list[str]:
        """Prometheus lines: witness lag and errors, TSA errors, queue depth, untimestamped checkpoints."""
        latest = self.log.latest_checkpoint()
        lines = [
            "# HELP depository_notary_queue_depth Checkpoints waiting for the notary worker.",
            "# TYPE depository_notary_queue_depth gauge",
            f"depository_notary_queue_depth {self.queue_depth()}",
        ]
        if self.policy is not None:
            progress = self._progress_rows()
            lines += ["# HELP depository_witness_lag_entries Leaves the witness has not cosigned yet.",
                      "# TYPE depository_witness_lag_entries gauge"]
            for ep in self.endpoints:
                row = progress.get(ep.key)
                lines.append(f'depository_witness_lag_entries{{witness="{_label(ep.key)}"}} '
                             f"{latest.size - (row.size if row else 0)}")
            lines += ["# HELP depository_witness_errors_total Failed witness requests (this process).",
                      "# TYPE depository_witness_errors_total counter"]
            lines += [f'depository_witness_errors_total{{witness="{_label(ep.key)}"}} {ep.backoff.errors_total}'
                      for ep in self.endpoints]
            if self.last_witness_latency_s is not None:
                lines += ["# HELP depository_witness_latency_seconds Checkpoint publication to quorum, last.",
                          "# TYPE depository_witness_latency_seconds gauge",
                          f"depository_witness_latency_seconds {self.last_witness_latency_s:.3f}"]
        if self.stamper is not None:
            with self.engine.connect() as conn:
                pending = conn.execute(select(func.count()).select_from(CheckpointRow)
                                       .where(CheckpointRow.timestamped.is_(False))).scalar() or 0
            lines += ["# HELP depository_tsa_errors_total Failed TSA requests (this process).",
                      "# TYPE depository_tsa_errors_total counter",
                      f"depository_tsa_errors_total {self.tsa_backoff.errors_total}",
                      "# HELP depository_checkpoints_untimestamped Checkpoints still without a token.",
                      "# TYPE depository_checkpoints_untimestamped gauge",
                      f"depository_checkpoints_untimestamped {pending}"]
        return lines


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _endpoints(policy: Policy | None, retry_max_s: float) -> list[Endpoint]:
    """Group the policy's witnesses by URL: one request per witness server, whatever keys it cosigns with."""
    if policy is None:
        return []
    by_url: dict[str, Endpoint] = {}
    for w in policy.witnesses:
        if not w.url:
            log.warning("policy witness %s has no URL; its cosignatures cannot be requested", w.name)
            continue
        url = w.url.rstrip("/")
        if url not in by_url:
            by_url[url] = Endpoint(url, [], Backoff(retry_max_s))
        by_url[url].members.append(w)
    return list(by_url.values())


def load_policy(path: Path, origin: str) -> tuple[Policy, str]:
    """Read and check the tlog-policy file; a policy naming logs must name ours."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        policy = Policy.from_text(text)
    except OSError as e:
        raise ConfigError(f"witness policy {path}: {e.strerror or e}") from e
    except EvidenceError as e:
        raise ConfigError(f"witness policy {path}: {e.diagnostics()}") from e
    if policy.logs and origin not in {lg.verifier.name for lg in policy.logs}:
        raise ConfigError(f"witness policy {path} lists logs, but not this log ({origin})")
    return policy, text


def build_stamper(config: Config) -> tuple[TimeStamper | None, bytes | None]:
    """A FallbackTimeStamper over config.tsa_urls, trusting `$home/tsa/tsa-ca.pem`."""
    if not config.tsa_urls:
        return None, None
    ca_path = tsa_ca_path(config.home)
    try:
        ca_pem = ca_path.read_bytes()
    except OSError as e:
        raise ConfigError(f"tsa_urls is set but the TSA root {ca_path} cannot be read: {e.strerror}") from e
    stampers: list[TimeStamper] = [HttpTimeStamper(url, ca_pem, timeout=TSA_TIMEOUT_S) for url in config.tsa_urls]
    return FallbackTimeStamper(stampers), ca_pem


def build_notary(config: Config, engine: Engine, the_log: Log) -> Notary:
    """The notary for a configuration, registered as a listener of `the_log` (called by the wiring).

    With `config.redis_url`, checkpoints become rq jobs on the `notary` queue (run by
    `depository worker`); otherwise an in-process thread does the work once `start()` is called.
    """
    policy, text = (load_policy(config.witness_policy_file, the_log.origin)
                    if config.witness_policy_file else (None, None))
    stamper, ca_pem = build_stamper(config)
    submit = request_sweep = depth = on_stop = None
    if config.redis_url:
        from depository import jobs

        dispatcher = jobs.Dispatcher(config)
        submit, request_sweep, depth = dispatcher.submit, dispatcher.request_sweep, dispatcher.depth
        on_stop = dispatcher.close
    notary = Notary(engine, the_log, policy=policy, policy_text=text, stamper=stamper, tsa_ca_pem=ca_pem,
                    retry_max_s=config.notary_retry_max_s, submit=submit, request_sweep=request_sweep,
                    queue_depth=depth, on_stop=on_stop)
    the_log.add_listener(notary.on_checkpoint)
    return notary
