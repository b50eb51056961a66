"""Tamper, the witnesses' side: a log operator (or an intruder with the log's key) who rewrites history
gets no cosignature. tests/integration/test_audit.py shows `depository audit` naming altered leaves,
tiles and checkpoints; here the same forgeries go to three real witness servers (policy 2 of 3):

* a checkpoint at a size the witnesses already cosigned, with another root, signed with the log's own
  key: every witness answers 409 (a fork), none cosigns;
* a leaf altered in the database and the tree re-integrated from the altered leaves, published as a
  larger checkpoint through the notary: the consistency proof from what the witnesses saw cannot verify
  (422), so the new checkpoint gets no cosignature, never reaches quorum, and /healthz turns degraded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, update

from depository.audit import audit
from depository.log import integrate_all
from depository.models import LogEntry, LogTree, TileRow
from depository.wiring import Services, build_services
from evidence import merkle
from evidence.checkpoint import Checkpoint
from notary_bridge.errors import WitnessError
from notary_bridge.witness_client import WitnessClient, WitnessConflict
from tests.integration.test_notary import Parties, cosigners, deposit, make_setup, row


@pytest.fixture
def witnessed(tmp_path: Path) -> Iterator[tuple[Services, Parties, int]]:
    config, parties = make_setup(tmp_path, None)
    services = build_services(config)
    try:
        size = deposit(services, 40, "t")
        services.notary.notarize(services.log.latest_checkpoint().id)
        assert row(services, size).witnessed and cosigners(services, size) == {"w1", "w2", "w3"}
        yield services, parties, size
    finally:
        services.close()
        parties.stop_all()


def test_forged_root_at_a_cosigned_size_gets_no_cosignature(witnessed: tuple[Services, Parties, int]) -> None:
    services, parties, size = witnessed
    forged_root = hashlib.sha256(b"another history").digest()
    note = services.keys.sign(Checkpoint(services.keys.origin, size, forged_root).to_text())
    refused = {}
    for name, port in parties.ports.items():
        client = WitnessClient(f"http://127.0.0.1:{port}", timeout_s=5)
        try:
            with pytest.raises((WitnessConflict, WitnessError)) as e:
                client.add_checkpoint(size, [], note)
            refused[name] = type(e.value).__name__
        finally:
            client.close()
    assert set(refused) == {"w1", "w2", "w3"}, refused
    print(f"forged checkpoint at size {size}: refused by {refused}")


def test_altered_leaf_reintegrated_is_not_cosigned(witnessed: tuple[Services, Parties, int]) -> None:
    services, _parties, size = witnessed
    # The intruder rewrites leaf 7, rebuilds the tree from the altered leaves, and publishes on top.
    with services.engine.begin() as conn:
        conn.execute(update(LogEntry).where(LogEntry.idx == 7).values(data=b"evidence-deposit/v1\nid forged\n"))
        conn.execute(delete(TileRow))
        conn.execute(update(LogTree).where(LogTree.id == 1).values(size=0, root_hash=merkle.SHA256.empty_root()))
    for i in range(3):
        services.log.add(f"after-{i}", b"evidence-deposit/v1\nid after-%d\n" % i)
    integrate_all(services.log, 10_000)
    forged = services.log.latest_checkpoint()
    assert forged.size == size + 3
    result = services.notary.notarize(forged.id)
    assert result["witnessed"] is False
    assert cosigners(services, forged.size) == set(), "a witness cosigned a rewritten history"
    assert not row(services, forged.size).witnessed
    health = services.health()
    assert health["status"] == "degraded"
    errors = {k: m["last_error"] for k, m in health["checks"]["witnesses"]["members"].items()}
    assert all(errors.values()), errors
    rep = audit(services.engine, services.keys)
    assert not rep.ok and any(f"checkpoint {size}" in p for p in rep.problems), rep.problems
    print(f"re-integrated after altering leaf 7: no cosignature at size {forged.size}; witnesses said "
          f"{sorted(set(errors.values()))[:1]}; audit: {rep.problems[0]}")
