"""The proof bundle of SPEC.md for one deposit (`GET /v1/deposits/<id>/proof`, `proof.json` in packets).

The checkpoint chosen is the earliest that contains the deposit, carries the quorum's cosignatures and has a
timestamp token: it bounds the deposit's time most tightly. Without witnesses or a TSA (or before they
answered), the earliest signed checkpoint that contains the deposit.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from depository.deposits import Deposit
from depository.errors import Conflict
from depository.log import PublishedCheckpoint
from depository.models import CheckpointRow
from depository.wiring import Services
from evidence.bundle import BUNDLE_FORMAT, ProofBundle
from evidence.tlogproof import TlogProof


def choose_checkpoint(s: Services, index: int) -> PublishedCheckpoint | None:
    with s.engine.connect() as conn:
        base = select(CheckpointRow).where(CheckpointRow.size > index).order_by(CheckpointRow.size).limit(1)
        row = None
        if s.notary is not None:
            row = conn.execute(base.where(CheckpointRow.witnessed.is_(True),
                                          CheckpointRow.timestamped.is_(True))).first()
        if row is None:
            row = conn.execute(base).first()
    return PublishedCheckpoint.from_row(row) if row else None


def build_bundle(s: Services, d: Deposit) -> ProofBundle | None:
    cp = choose_checkpoint(s, d.leaf_index)
    if cp is None:
        return None
    leaf_data = s.log.leaf_data(d.leaf_index)
    proof = s.log.inclusion_proof(d.leaf_index, cp.size)
    note = s.notary_checkpoint_text(cp)
    tlog = TlogProof(extra=leaf_data, index=d.leaf_index, proof=tuple(proof), checkpoint_text=note)
    token, ca_pem, policy = None, None, None
    if s.notary is not None:
        token, ca_pem = s.notary.timestamp_for(cp)
        policy = s.notary.policy_text
    return ProofBundle(
        deposit_id=d.id, leaf_data=leaf_data, leaf_index=d.leaf_index, tree_size=cp.size,
        inclusion_proof=proof, checkpoint=note, tlog_proof=tlog.to_text(), log_vkey=s.keys.vkey,
        log_sm2_public_key_pem=s.keys.sm2_public_pem, witness_policy=policy, timestamp_token=token,
        timestamp_ca_pem=ca_pem, metadata=d.metadata)


def build_proof(s: Services, d: Deposit, *, allow_pending: bool = False) -> dict[str, Any]:
    bundle = build_bundle(s, d)
    if bundle is None:
        if allow_pending:
            return {"format": BUNDLE_FORMAT, "deposit_id": d.id, "leaf_index": d.leaf_index,
                    "status": "pending"}
        raise Conflict(f"deposit {d.id} is not in a checkpoint yet; retry shortly", retry_after=1)
    return bundle.to_json()

