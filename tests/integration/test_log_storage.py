"""The log on real storage (SQLite and PostgreSQL): sequence -> integrate -> publish, proofs from tiles,
tiles served per tlog-tiles, and a root rebuilt from served tiles alone."""

from __future__ import annotations

import random
from typing import Any

import pytest
from sqlalchemy import select

from depository.log import integrate_all
from depository.models import TileRow
from evidence import merkle, tiles
from evidence.checkpoint import verify_checkpoint
from tests.conftest import auth
from tests.unit.evidence.merkle_reference import mth
from tests.unit.evidence.merkle_reference import path as ref_path
from tests.unit.evidence.merkle_reference import proof as ref_proof


def _add(services: Any, n: int, start: int = 0) -> list[bytes]:
    data = [f"entry {i}\n".encode() for i in range(start, start + n)]
    with services.engine.begin() as conn:
        services.log.sequence(conn, [(f"id-{start + i}", d) for i, d in enumerate(data)])
    return data


def test_sequence_assigns_contiguous_indices_and_dedupes(services: Any) -> None:
    with services.engine.begin() as conn:
        first = services.log.sequence(conn, [("a", b"A\n"), ("b", b"B\n"), ("a", b"A again\n")])
    assert first == [0, 1, 0]
    assert services.log.add("b", b"B\n") == 1
    assert services.log.add("c", b"C\n") == 2
    assert services.log.sizes() == (0, 3)


def test_fresh_sequencing_reserves_in_one_step_and_writes_nothing_when_refused(services: Any) -> None:
    from sqlalchemy.exc import IntegrityError

    from depository.errors import Overloaded

    with services.engine.begin() as conn:
        assert services.log.sequence(conn, [("x", b"X\n"), ("y", b"Y\n")], fresh=True) == [0, 1]
    with services.engine.begin() as conn:
        assert services.log.sequence(conn, [("z", b"Z\n")], fresh=True) == [2]
    assert services.log.sizes() == (0, 3)
    services.log.integrate(10)
    assert services.log.leaf_data(1) == b"Y\n"
    # fresh=True promised new identities: a reused one fails the whole transaction, nothing is kept
    with pytest.raises(IntegrityError), services.engine.begin() as conn:
        services.log.sequence(conn, [("w", b"W\n"), ("x", b"X again\n")], fresh=True)
    assert services.log.sizes() == (3, 3)
    # integration lagging: refused before anything counts (the caller's transaction rolls back)
    services.log.max_pending_entries = 2
    with services.engine.begin() as conn:
        services.log.sequence(conn, [("p1", b"1\n"), ("p2", b"2\n")], fresh=True)
    with pytest.raises(Overloaded), services.engine.begin() as conn:
        services.log.sequence(conn, [("p3", b"3\n")], fresh=True)
    assert services.log.sizes() == (3, 5)


def test_integrate_in_batches_matches_reference_and_proves(services: Any) -> None:
    rnd = random.Random(7)
    data: list[bytes] = []
    while len(data) < 3000:
        data += _add(services, rnd.randint(1, 700), len(data))
        services.log.integrate(rnd.choice([50, 333, 1000, 5000]))
    integrate_all(services.log, 1000)
    leaves = [merkle.SHA256.hash_leaf(d) for d in data]
    cp = services.log.latest_checkpoint()
    assert cp.size == len(data)
    assert cp.root_hash == mth(leaves)
    verify_checkpoint(cp.note, [services.keys.ed25519.verifier(), services.keys.sm2.verifier()])
    for _ in range(40):
        size = rnd.randint(1, len(data))
        index = rnd.randrange(size)
        proof = services.log.inclusion_proof(index, size)
        assert proof == ref_path(index, leaves[:size])
        merkle.verify_inclusion(merkle.SHA256, index, size, leaves[index], proof, mth(leaves[:size]))
        size1 = rnd.randint(1, size)
        cons = services.log.consistency_proof(size1, size)
        assert cons == ref_proof(size1, leaves[:size])
        merkle.verify_consistency(merkle.SHA256, size1, size, cons, mth(leaves[:size1]), mth(leaves[:size]))


def test_tree_storage_stays_under_100_bytes_per_leaf(services: Any) -> None:
    _add(services, 5000)
    integrate_all(services.log, 1000)
    with services.engine.connect() as conn:
        total = sum(len(r.hashes) + len(r.inner) for r in conn.execute(select(TileRow.hashes, TileRow.inner)))
    assert total / 5000 <= 100


def test_tiles_served_rebuild_the_checkpoint_root(client: Any, services: Any) -> None:
    _add(services, 70_000 // 64)  # a partial tile at level 0 and level 1
    integrate_all(services.log, 400)
    note = client.get("/checkpoint").get_data(as_text=True)
    cp = verify_checkpoint(note, [services.keys.ed25519.verifier()]).checkpoint

    def fetch(coord: tiles.TileCoord) -> bytes:
        resp = client.get("/" + coord.path)
        assert resp.status_code == 200, coord.path
        return resp.data

    assert tiles.root_from_tiles(cp.size, fetch) == cp.root_hash


@pytest.mark.parametrize("path,status", [
    ("/tile/0/x", 404), ("/tile/0/000.p/0", 404), ("/tile/0/000.p/256", 404), ("/tile/0/0000", 404),
    ("/tile/99/000", 404), ("/tile/0/999", 404), ("/tile/entries/000", 404), ("/tile/-1/000", 404),
    ("/tile/0/001", 404), ("/tile/0/000.p/200", 404),
])
def test_malformed_or_absent_tiles_are_problem_json(client: Any, services: Any, path: str, status: int) -> None:
    _add(services, 10)
    integrate_all(services.log, 100)
    resp = client.get(path)
    assert resp.status_code == status
    assert resp.mimetype == "application/problem+json"
    assert resp.json["status"] == status


def test_partial_tile_of_an_older_size_stays_served(client: Any, services: Any) -> None:
    _add(services, 10)
    integrate_all(services.log, 100)
    old = client.get("/tile/0/000.p/10").data
    _add(services, 300, 10)
    integrate_all(services.log, 1000)
    assert client.get("/tile/0/000.p/10").data == old
    assert len(client.get("/tile/0/000").data) == 256 * 32


def test_proof_beyond_tree_is_404_not_500(services: Any, client: Any, tenant: tuple[str, str]) -> None:
    from depository.errors import BadRequest, NotFound

    _add(services, 5)
    integrate_all(services.log, 100)
    with pytest.raises(NotFound):
        services.log.inclusion_proof(0, 6)
    with pytest.raises(BadRequest):
        services.log.inclusion_proof(5, 5)
    assert client.get("/v1/log/keys").json["log_vkey"] == services.keys.vkey
    assert client.get("/v1/deposits/x", headers=auth(tenant[1])).status_code == 404


def test_proofs_stay_right_while_the_tree_grows_under_the_tile_cache(services: Any) -> None:
    """Proofs cache tiles; a tile cached while partial must be refetched when a bigger tree needs more of it,
    and may still serve proofs for the smaller tree."""
    data: list[bytes] = []
    sizes = []
    for step in (300, 1, 255, 70, 66_000 // 64):
        data += _add(services, step, len(data))
        integrate_all(services.log, 10_000)
        sizes.append(len(data))
        leaves = [merkle.SHA256.hash_leaf(d) for d in data]
        for size in sizes:
            for index in (0, size // 2, size - 1):
                assert services.log.inclusion_proof(index, size) == ref_path(index, leaves[:size])
            if size > 1:
                assert services.log.consistency_proof(1, size) == ref_proof(1, leaves[:size])


def test_read_connections_of_ended_threads_are_closed(pg_url: str) -> None:
    """Each thread gets its own PostgreSQL read connection; threads that have ended must not keep theirs
    (the notary's short-lived threads once exhausted max_connections within a minute)."""
    import threading

    from sqlalchemy import create_engine

    from depository.db import ReadConnections

    engine = create_engine(pg_url)
    reads = ReadConnections(engine)
    try:
        for _ in range(30):
            th = threading.Thread(target=lambda: reads.fetchall("SELECT 1", []))
            th.start()
            th.join()
        reads.fetchall("SELECT 1", [])  # a new connection prunes those of dead threads
        assert len(reads._all) <= 2
        with engine.connect() as conn:
            from sqlalchemy import text

            n = conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
                             ).scalar_one()
        assert n <= 4  # ours, the live read connection, maybe one being torn down
    finally:
        reads.close()
        engine.dispose()
