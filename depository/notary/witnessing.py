"""Bringing the policy's witnesses up to the latest checkpoint (C2SP tlog-witness).

* Witnesses are asked for the latest checkpoint, not for each queued one: cosigning the newest advances
  every witness in one round trip with one consistency proof, and a witness never cosigns an older
  checkpoint after a newer one anyway (409).
* Witnesses are asked in parallel; each is sent a consistency proof from the size it last cosigned (table
  `witness_progress`); a 409 names the witness's size and we resend once from there. A 409 naming the size
  we sent is a refusal (a fork at that size), not a race, and is not retried.
* Each cosignature line is verified against the policy's key for that witness (Ed25519 cosignature/v1 or
  our SM2 profile) before it is stored; lines from unknown keys are ignored. `witnessed` is set when the
  stored cosignatures meet the quorum; without a policy (tlog-policy `quorum none`) at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from depository.log import Log, PublishedCheckpoint
from depository.notary.backoff import Backoff
from depository.notary.store import Cosigned, NotaryStore
from evidence.cosignature import parse_cosignature, verify_cosignature
from evidence.errors import EvidenceError
from evidence.policy import Policy, PolicyWitness
from notary_bridge.errors import NotaryError, WitnessError
from notary_bridge.witness_client import WitnessClient, WitnessConflict

log = logging.getLogger(__name__)
WITNESS_TIMEOUT_S = 5.0


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


def endpoints_for(policy: Policy | None, retry_max_s: float) -> list[Endpoint]:
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


class Witnessing:
    """Asks the due witnesses about the latest checkpoint; `pool(name, workers)` lends the threads."""

    def __init__(self, store: NotaryStore, the_log: Log, policy: Policy | None, endpoints: list[Endpoint],
                 pool: Callable[[str, int], ThreadPoolExecutor]) -> None:
        self.store = store
        self.log = the_log
        self.policy = policy
        self.endpoints = endpoints
        self._pool = pool
        self.last_latency_s: float | None = None

    def witness_latest(self) -> bool:
        """Ask every due witness for a cosignature on the latest checkpoint; True if it meets the quorum."""
        latest = self.log.latest_checkpoint()
        if self.policy is None:
            self.store.set_flag(latest.id, witnessed=True)
            return True
        have = self.store.cosigners(latest.id)
        due = [ep for ep in self.endpoints if not {m.name for m in ep.members} & have and ep.backoff.ready()]
        if due:
            results = list(self._pool("asking", len(self.endpoints)).map(lambda ep: self.ask(ep, latest), due))
            self.store.store_cosignatures(latest.id, [c for r in results for c in r])
            have = self.store.cosigners(latest.id)
        ok = self.policy.satisfied(have)
        if ok and self.store.set_flag(latest.id, witnessed=True):
            self.last_latency_s = (datetime.now(UTC) - latest.created_at).total_seconds()
        return ok

    def missing_on_latest(self) -> bool:
        """True if some endpoint has not cosigned the latest checkpoint."""
        if self.policy is None:
            return False
        have = self.store.cosigners(self.log.latest_checkpoint().id)
        return any(not {m.name for m in ep.members} & have for ep in self.endpoints)

    def ask(self, ep: Endpoint, cp: PublishedCheckpoint) -> list[Cosigned]:
        """One witness, serially (its state only moves forward): POST, follow one 409, verify the lines."""
        with ep.lock:
            old = self.store.progress(ep.key)
            try:
                if ep.client is None:
                    ep.client = WitnessClient(ep.url, timeout_s=WITNESS_TIMEOUT_S)
                for _ in range(3):
                    if old > cp.size:
                        # The witness has cosigned a later checkpoint (another worker got there first).
                        self.store.set_progress(ep.key, old, None)
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
                    cosigned = self.verify_lines(ep, cp, lines)
                    self.store.set_progress(ep.key, cp.size, None)
                    ep.backoff.succeeded()
                    return cosigned
                raise WitnessError(f"witness {ep.url}: its size kept changing under us")
            except (NotaryError, EvidenceError) as e:
                ep.backoff.failed(e.diagnostics())
                log.warning("witness %s (%s): %s", ep.key, ep.url, e.diagnostics())
                self.store.set_progress(ep.key, None, e.diagnostics())
                return []

    @staticmethod
    def verify_lines(ep: Endpoint, cp: PublishedCheckpoint, lines: list[str]) -> list[Cosigned]:
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

    def close(self) -> None:
        for ep in self.endpoints:
            with ep.lock:
                if ep.client is not None:
                    ep.client.close()
                    ep.client = None
