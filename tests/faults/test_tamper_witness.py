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
from sqlalchemy import delete, select, update

from depository.audit import audit
from depository.integrity import IntegrationHalted
from depository.log import integrate_all
from depository.models import CheckpointRow, LogEntry, LogTree, TileRow
from depository.wiring import Services, build_services
from evidence import merkle, tiles
from evidence.checkpoint import Checkpoint
from notary_bridge.errors import WitnessError
from notary_bridge.witness_client import WitnessClient, WitnessConflict
from tests.integration.test_notary import Parties, cosigners, deposit, make_setup, row
from tests.logfill import trust


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
    # The intruder rewrites leaf 7 and rolls the tree back so that it can be rebuilt from the altered leaves.
    with services.engine.begin() as conn:
        conn.execute(update(LogEntry).where(LogEntry.idx == 7).values(data=b"evidence-deposit/v1\nid forged\n"))
        conn.execute(delete(TileRow))
        conn.execute(update(LogTree).where(LogTree.id == 1).values(size=0, root_hash=merkle.SHA256.empty_root()))
    for i in range(3):
        services.log.add(f"after-{i}", b"evidence-deposit/v1\nid after-%d\n" % i)
    # Our integrator refuses to sign on top of the rolled-back tree (it is not the tree it signed) ...
    with pytest.raises(IntegrationHalted, match="log_tree"):
        integrate_all(services.log, 10_000)
    assert services.log.latest_checkpoint().size == size
    # ... so the intruder, holding the log's key too, rebuilds and signs the forged history itself.
    data = [services.log.leaf_data(i) for i in range(size + 3)]
    forged_root = merkle.root(merkle.SHA256, [merkle.SHA256.hash_leaf(d) for d in data])
    upd = tiles.update_tiles(merkle.SHA256, 0, [], [merkle.SHA256.hash_leaf(d) for d in data])
    with services.engine.begin() as conn:
        services.log._store_tiles(conn, upd.tiles)
        conn.execute(update(LogTree).where(LogTree.id == 1).values(size=size + 3, root_hash=forged_root))
    services.log.halts.clear("test intruder", "the intruder clears the halt too")
    forged = services.log._publish(size + 3, forged_root, [], size + 3,
                                   _latest_row(services))
    assert forged is not None
    result = services.notary.notarize(forged.id)
    assert result["witnessed"] is False
    assert cosigners(services, forged.size) == set(), "a witness cosigned a rewritten history"
    assert not row(services, forged.size).witnessed
    health = services.health()
    assert health["status"] == "degraded"
    errors = {k: m["last_error"] for k, m in health["checks"]["witnesses"]["members"].items()}
    assert all(errors.values()), errors
    rep = audit(services.engine, trust(services))
    assert not rep.ok and any(f"checkpoints/seq {_seq_of(services, size)}" in p for p in rep.problems), rep.problems
    print(f"re-integrated after altering leaf 7: our integrator halted; the intruder's own checkpoint at size "
          f"{forged.size} got no cosignature; witnesses said {sorted(set(errors.values()))[:1]}; "
          f"audit: {rep.problems[0]}")


def _latest_row(services: Services) -> object:
    with services.engine.connect() as conn:
        return conn.execute(select(CheckpointRow).order_by(CheckpointRow.seq.desc()).limit(1)).one()


def _seq_of(services: Services, size: int) -> int:
    with services.engine.connect() as conn:
        return int(conn.execute(select(CheckpointRow.seq).where(CheckpointRow.size == size)).scalar_one())
