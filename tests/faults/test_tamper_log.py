"""Tamper with everything the log stores, one thing at a time: the integrator refuses to sign, or the audit
names it, on SQLite and on PostgreSQL (issue 14).

A base log is built once per backend: real deposits, integrated in several checkpoints, each witnessed by
three real witness servers (2 of 3) and timestamped by our TSA, with a few deposits still pending. Each
mutation runs on a fresh copy of it (SQLite's backup API; PostgreSQL's CREATE DATABASE ... TEMPLATE):
apply the change as an intruder with write access to the database would, run the audit and require the
named finding(s), then deposit once more and let the integrator try. If it signs, its new root must
extend the pristine tree (the leaves it read, after the pristine ones): it never signs over a tampered
tree. Mutations of the right edge and of the tree state must make it refuse (halt).

A second, larger base (66,314 leaves) has full level-1 tiles and a level-2 tile, for the tile mutations
that need them, among them the one that started the issue (a byte of the level-2 tile, then a deposit).
The mutation classes are listed in docs/architecture.md ("What the audit and the integrator catch").
"""

from __future__ import annotations

import secrets
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, create_engine, text

from depository.audit import audit
from depository.config import load_config
from depository.integrity import IntegrationHalted
from depository.log import integrate_all
from depository.wiring import audit_trust, build_services
from evidence import merkle
from tests.conftest import PG_URL
from tests.integration.test_notary import make_setup
from tests.logfill import deposit_requests

Apply = Callable[[Connection, "Facts"], None]


@dataclass
class Facts:
    """What the mutations aim at in the base log."""

    backend: str
    size: int = 0
    pending: int = 0
    tenant: str = ""
    deposit_at: dict[int, str] = field(default_factory=dict)
    cps: list[tuple[int, int, int]] = field(default_factory=list)  # (id, seq, size) by seq
    cosigs: list[tuple[int, int]] = field(default_factory=list)  # (id, checkpoint id)
    tokens: list[tuple[int, int]] = field(default_factory=list)  # (id, checkpoint id)
    leaf_hashes: list[bytes] = field(default_factory=list)


@dataclass
class Base:
    facts: Facts
    home: Path
    url: str
    workdir: Path
    admin: Any = None
    n: int = 0

    def clone(self) -> tuple[str, Path]:
        self.n += 1
        home = self.workdir / f"clone{self.n}" / "home"
        shutil.copytree(self.home, home)
        if self.facts.backend == "sqlite":
            path = home.parent / "d.db"
            src = sqlite3.connect(self.url.removeprefix("sqlite:///"))
            dst = sqlite3.connect(path)
            src.backup(dst)
            src.close()
            dst.close()
            return f"sqlite:///{path}", home
        name = "dep_" + secrets.token_hex(6)
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{self.url.rsplit("/", 1)[1]}"'))
        return f"{PG_URL.rsplit('/', 1)[0]}/{name}", home

    def drop(self, url: str) -> None:
        if self.facts.backend == "postgresql":
            with self.admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))


def _build(tmp: Path, backend: str, n: int, batch: int, notarised: bool, pending: int) -> Base:
    admin = None
    if backend == "sqlite":
        url = f"sqlite:///{tmp / 'base.db'}"
    else:
        admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        name = "dep_base_" + secrets.token_hex(5)
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = f"{PG_URL.rsplit('/', 1)[0]}/{name}"
    config, parties = make_setup(tmp, url)
    if not notarised:
        parties.stop_all()
    s = build_services(config, notary=notarised)
    facts = Facts(backend)
    try:
        facts.tenant = s.tenants.create("Tamper Co")[0]
        done = 0
        while done < n:
            step = min(batch, n - done)
            for start in range(done, done + step, 5000):
                s.deposits.create_many(facts.tenant, deposit_requests(start, min(5000, done + step - start)))
            integrate_all(s.log, batch)
            if notarised:
                s.notary.notarize(s.log.latest_checkpoint().id)
            done += step
        s.deposits.create_many(facts.tenant, deposit_requests(n, pending))
        facts.size, facts.pending = n, pending
        with s.engine.connect() as conn:
            facts.deposit_at = dict(conn.execute(text("SELECT leaf_index, id FROM deposits")).all())
            facts.cps = [tuple(r) for r in conn.execute(text("SELECT id, seq, size FROM checkpoints ORDER BY seq"))]
            facts.cosigs = [tuple(r) for r in conn.execute(text("SELECT id, checkpoint_id FROM cosignatures "
                                                               "ORDER BY checkpoint_id, id"))]
            facts.tokens = [tuple(r) for r in conn.execute(text("SELECT id, checkpoint_id FROM timestamps "
                                                               "ORDER BY id"))]
            facts.leaf_hashes = [merkle.SHA256.hash_leaf(bytes(d)) for (d,) in conn.execute(
                text("SELECT data FROM log_entries WHERE idx < :n ORDER BY idx"), {"n": n})]
        rep = audit(s.engine, audit_trust(config, s.keys))
        assert rep.ok, rep.problems
        if notarised:
            assert facts.cosigs and facts.tokens and rep.cosignatures == len(facts.cosigs)
    finally:
        s.close()
        parties.stop_all()
    if backend == "sqlite":
        with sqlite3.connect(url.removeprefix("sqlite:///")) as c:
            c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return Base(facts, config.home, url, tmp, admin)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def small(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Base]:
    base = _build(tmp_path_factory.mktemp(f"small-{request.param}"), request.param, 700, 300, True, 4)
    yield base
    base.drop(base.url)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def big(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Base]:
    base = _build(tmp_path_factory.mktemp(f"big-{request.param}"), request.param, 65_536 + 3 * 256 + 10, 40_000,
                  False, 2)
    yield base
    base.drop(base.url)


@dataclass
class Outcome:
    wheres: list[str]
    problems: list[str]
    halted: bool


def run(base: Base, apply: Apply) -> Outcome:
    url, home = base.clone()
    config = load_config(env={}, home=home, database_url=url)
    s = build_services(config, notary=False)
    try:
        with s.engine.begin() as conn:
            apply(conn, base.facts)
        rep = audit(s.engine, audit_trust(config, s.keys))
        halted = False
        try:
            s.deposits.create_many(base.facts.tenant, deposit_requests(10**6, 1))
            signed = [s.log.integrate(10_000)]
        except IntegrationHalted:  # the sequencer refuses too when the counter would reuse indices
            halted = True
        if not halted:
            cp = signed[0]
            assert cp is not None
            extra = [merkle.SHA256.hash_leaf(s.log.leaf_data(i)) for i in range(base.facts.size, cp.size)]
            want = merkle.root(merkle.SHA256, base.facts.leaf_hashes + extra)
            assert cp.root_hash == want, "the integrator signed a root that does not extend the signed tree"
        return Outcome([f.where for f in rep.findings], rep.problems, halted)
    finally:
        s.close()
        base.drop(url)


def sql(conn: Connection, statement: str, **params: Any) -> None:
    conn.execute(text(statement), params)


def flip(conn: Connection, table: str, column: str, where: str, offset: int = 0, **params: Any) -> None:
    """Flip one bit of a blob (read, change in Python, write: the same on both backends)."""
    value = bytearray(conn.execute(text(f"SELECT {column} FROM {table} WHERE {where}"), params).scalar_one())
    value[offset] ^= 0x01
    conn.execute(text(f"UPDATE {table} SET {column} = :v WHERE {where}"), {"v": bytes(value), **params})


def retype(conn: Connection, f: Facts, table: str, column: str, to: str) -> None:
    """Store a column's values as another type (SQLite keeps whatever it is given; PostgreSQL changes the column)."""
    if f.backend == "sqlite":
        sql(conn, f"UPDATE {table} SET {column} = CAST({column} AS {to})")
    else:
        pg = {"TEXT": "text", "BLOB": "bytea"}[to]
        using = f"encode({column}, 'hex')" if pg == "text" else f"convert_to({column}, 'UTF8')"
        sql(conn, f'ALTER TABLE {table} ALTER COLUMN "{column}" TYPE {pg} USING {using}')


def cp_id(f: Facts, seq: int) -> int:
    return next(i for i, s, _ in f.cps if s == seq)


def last_seq(f: Facts) -> int:
    return f.cps[-1][1]


# ---- the mutations: (name, apply, finding prefixes the audit must name, must the integrator halt?) ----------

def _swap_entries(c: Connection, f: Facts) -> None:
    a = c.execute(text("SELECT data FROM log_entries WHERE idx = 10")).scalar_one()
    b = c.execute(text("SELECT data FROM log_entries WHERE idx = 20")).scalar_one()
    sql(c, "UPDATE log_entries SET data = :d WHERE idx = 10", d=b)
    sql(c, "UPDATE log_entries SET data = :d WHERE idx = 20", d=a)


def _swap_deposits(c: Connection, f: Facts) -> None:
    sql(c, "UPDATE deposits SET leaf_index = -1 WHERE id = :i", i=f.deposit_at[30])
    sql(c, "UPDATE deposits SET leaf_index = 30 WHERE id = :i", i=f.deposit_at[40])
    sql(c, "UPDATE deposits SET leaf_index = 40 WHERE id = :i", i=f.deposit_at[30])


def _swap_tiles(c: Connection, f: Facts) -> None:
    a = c.execute(text('SELECT hashes, "inner" FROM log_tiles WHERE level = 0 AND idx = 0')).one()
    b = c.execute(text('SELECT hashes, "inner" FROM log_tiles WHERE level = 0 AND idx = 1')).one()
    sql(c, 'UPDATE log_tiles SET hashes = :h, "inner" = :i WHERE level = 0 AND idx = 0', h=b[0], i=b[1])
    sql(c, 'UPDATE log_tiles SET hashes = :h, "inner" = :i WHERE level = 0 AND idx = 1', h=a[0], i=a[1])


def _delete_checkpoint(c: Connection, f: Facts) -> None:
    cid = cp_id(f, 1)
    sql(c, "DELETE FROM cosignatures WHERE checkpoint_id = :i", i=cid)
    sql(c, "DELETE FROM timestamps WHERE checkpoint_id = :i", i=cid)
    sql(c, "DELETE FROM checkpoints WHERE id = :i", i=cid)


def _renumber_after_delete(c: Connection, f: Facts) -> None:
    _delete_checkpoint(c, f)
    for _, seq, _ in f.cps[2:]:
        sql(c, "UPDATE checkpoints SET seq = :s WHERE seq = :o", s=seq - 1, o=seq)


def _swap_checkpoint_seq(c: Connection, f: Facts) -> None:
    sql(c, "UPDATE checkpoints SET seq = -1 WHERE seq = 1")
    sql(c, "UPDATE checkpoints SET seq = 1 WHERE seq = 2")
    sql(c, "UPDATE checkpoints SET seq = 2 WHERE seq = -1")


def _rollback_latest(c: Connection, f: Facts) -> None:
    cid, seq, _ = f.cps[-1]
    prev_size = f.cps[-2][2]
    sql(c, "DELETE FROM cosignatures WHERE checkpoint_id = :i", i=cid)
    sql(c, "DELETE FROM timestamps WHERE checkpoint_id = :i", i=cid)
    sql(c, "DELETE FROM checkpoints WHERE id = :i", i=cid)
    root = c.execute(text("SELECT root_hash FROM checkpoints WHERE seq = :s"), {"s": seq - 1}).scalar_one()
    sql(c, "UPDATE log_tree SET size = :n, root_hash = :r WHERE id = 1", n=prev_size, r=root)


def _swap_cosignature_lines(c: Connection, f: Facts) -> None:
    (a, _), (b, _) = f.cosigs[0], next(x for x in f.cosigs if x[1] != f.cosigs[0][1])
    la = c.execute(text("SELECT line FROM cosignatures WHERE id = :i"), {"i": a}).scalar_one()
    lb = c.execute(text("SELECT line FROM cosignatures WHERE id = :i"), {"i": b}).scalar_one()
    sql(c, "UPDATE cosignatures SET line = :l WHERE id = :i", l=lb, i=a)
    sql(c, "UPDATE cosignatures SET line = :l WHERE id = :i", l=la, i=b)


def _strip_below_quorum(c: Connection, f: Facts) -> None:
    cid = cp_id(f, last_seq(f))
    ids = [i for i, k in f.cosigs if k == cid]
    for i in ids[1:]:
        sql(c, "DELETE FROM cosignatures WHERE id = :i", i=i)


def _edit_note(c: Connection, f: Facts) -> None:
    note = c.execute(text("SELECT note FROM checkpoints WHERE seq = 2")).scalar_one()
    sql(c, "UPDATE checkpoints SET note = :n WHERE seq = 2", n=note.replace("\n600\n", "\n601\n", 1))


def _drop_sm2_line(c: Connection, f: Facts) -> None:
    note = c.execute(text("SELECT note FROM checkpoints WHERE seq = 1")).scalar_one()
    body, sigs = note.split("\n\n", 1)
    sql(c, "UPDATE checkpoints SET note = :n WHERE seq = 1", n=body + "\n\n" + sigs.splitlines(True)[0])


def _set_deposit_12(column: str, value: object) -> Apply:
    def apply(c: Connection, f: Facts) -> None:
        sql(c, f"UPDATE deposits SET {column} = :v WHERE id = :i", v=value, i=f.deposit_at[12])
    return apply


SMALL: list[tuple[str, Apply, list[str], bool]] = [
    # log_entries
    ("entry data, integrated leaf", lambda c, f: flip(c, "log_entries", "data", "idx = 5", 40),
     ["log_tiles/0/0/hashes[5]"], False),
    ("entry data, pending leaf", lambda c, f: flip(c, "log_entries", "data", "idx = 701", 30),
     [f"deposits/{{{701}}}/"], False),
    ("entry data truncated", lambda c, f: sql(c, "UPDATE log_entries SET data = :d WHERE idx = 6", d=b"evidence"),
     ["log_entries/6/data", "log_tiles/0/0/hashes[6]"], False),
    ("entry identity", lambda c, f: sql(c, "UPDATE log_entries SET identity = 'forged' WHERE idx = 7"),
     ["log_entries/7/identity"], False),
    ("entry sequenced_at", lambda c, f: sql(c, "UPDATE log_entries SET sequenced_at = 1 WHERE idx = 8"),
     ["log_entries/8/sequenced_at"], False),
    ("entry idx moved", lambda c, f: sql(c, "UPDATE log_entries SET idx = 5000000 WHERE idx = 9"),
     ["log_entries/9", "log_entries/5000000"], False),
    ("entry deleted", lambda c, f: sql(c, "DELETE FROM log_entries WHERE idx = 11"), ["log_entries/11"], False),
    ("pending entry deleted", lambda c, f: sql(c, "DELETE FROM log_entries WHERE idx = 700"),
     ["log_entries/700"], True),
    ("entries swapped", _swap_entries,
     ["log_tiles/0/0/hashes[10]", "deposits/{10}/sha256", "deposits/{20}/sha256"], False),
    ("entry data type", lambda c, f: retype(c, f, "log_entries", "data", "TEXT"), ["log_entries/0/data"], True),
    # deposits
    *[(f"deposit {col}", _set_deposit_12(col, v), [f"deposits/{{12}}/{want}"], False) for col, v, want in [
        ("kind", "invoice", "kind"), ("sha256", "0" * 64, "sha256"), ("sm3", "1" * 64, "sm3"),
        ("size", 999, "size"), ("metadata_json", '{"title":"Forged"}', "metadata_json"),
        ("matter", "M-forged", "matter"), ("follows", "dep_x", "follows"),
        ("received", "2020-01-01 00:00:00.000000", "received")]],
    ("deposit tenant", lambda c, f: (sql(c, "INSERT INTO tenants (id, name, created_at, store_content, "
                                        "content_cipher) VALUES ('other', 'Other', '2026-01-01', false, 'aes')"),
                                    sql(c, "UPDATE deposits SET tenant_id = 'other' WHERE id = :i",
                                        i=f.deposit_at[13])),
     ["deposits/{13}/tenant_id"], False),
    ("deposit deleted", lambda c, f: sql(c, "DELETE FROM deposits WHERE id = :i", i=f.deposit_at[14]),
     ["deposits[leaf_index=14]"], False),
    ("deposit leaf_index out of the log", lambda c, f: sql(c, "UPDATE deposits SET leaf_index = 99999 "
                                                          "WHERE id = :i", i=f.deposit_at[15]),
     ["deposits[leaf_index=15]", "deposits/{15}/leaf_index"], False),
    ("deposits swapped", _swap_deposits, ["log_entries/30/identity", "log_entries/40/identity"], False),
    ("deposit size type", lambda c, f: sql(c, "UPDATE deposits SET size = 'abc' WHERE id = :i", i=f.deposit_at[16])
     if f.backend == "sqlite" else sql(c, "UPDATE deposits SET size = -5 WHERE id = :i", i=f.deposit_at[16]),
     ["deposits/{16}/size"], False),
    # tiles
    ("full level-0 tile hash", lambda c, f: flip(c, "log_tiles", "hashes", "level = 0 AND idx = 0", 32 * 3),
     ["log_tiles/0/0/hashes[3]"], False),
    ("full level-0 tile inner", lambda c, f: flip(c, "log_tiles", '"inner"', "level = 0 AND idx = 1", 64),
     ["log_tiles/0/1/inner[2]"], False),
    ("partial level-0 tile hash", lambda c, f: flip(c, "log_tiles", "hashes", "level = 0 AND idx = 2", 0),
     ["log_tiles/0/2/hashes[0]"], True),
    ("partial level-0 tile inner", lambda c, f: flip(c, "log_tiles", '"inner"', "level = 0 AND idx = 2", 0),
     ["log_tiles/0/2/inner[0]"], True),
    ("partial level-1 tile hash", lambda c, f: flip(c, "log_tiles", "hashes", "level = 1 AND idx = 0", 33),
     ["log_tiles/1/0/hashes[1]"], True),
    ("partial level-1 tile inner", lambda c, f: flip(c, "log_tiles", '"inner"', "level = 1 AND idx = 0", 0),
     ["log_tiles/1/0/inner[0]"], True),
    ("edge tile deleted", lambda c, f: sql(c, "DELETE FROM log_tiles WHERE level = 0 AND idx = 2"),
     ["log_tiles/0/2"], True),
    ("full tile deleted", lambda c, f: sql(c, "DELETE FROM log_tiles WHERE level = 0 AND idx = 0"),
     ["log_tiles/0/0"], False),
    ("tiles swapped", _swap_tiles, ["log_tiles/0/0/hashes[0]", "log_tiles/0/1/hashes[0]"], False),
    ("tile truncated", lambda c, f: sql(c, "UPDATE log_tiles SET hashes = :h WHERE level = 0 AND idx = 2",
                                        h=b"\x00" * 31), ["log_tiles/0/2"], True),
    ("tile hashes type", lambda c, f: retype(c, f, "log_tiles", "hashes", "TEXT"), ["log_tiles/0/0/hashes"], True),
    ("extra tile", lambda c, f: sql(c, 'INSERT INTO log_tiles (level, idx, hashes, "inner") VALUES (0, 77, :h, :i)',
                                    h=b"\x00" * 32, i=b""), ["log_tiles/0/77"], False),
    # checkpoints
    ("checkpoint note body", _edit_note, ["checkpoints/seq 2/note"], False),
    ("checkpoint SM2 signature line dropped", _drop_sm2_line, ["checkpoints/seq 1/note"], False),
    ("checkpoint size", lambda c, f: sql(c, "UPDATE checkpoints SET size = 650 WHERE seq = 2"),
     ["checkpoints/seq 2/size"], False),
    ("checkpoint root", lambda c, f: flip(c, "checkpoints", "root_hash", "seq = 1"),
     ["checkpoints/seq 1/root_hash"], False),
    ("latest checkpoint root", lambda c, f: flip(c, "checkpoints", "root_hash", f"seq = {last_seq(f)}"),
     ["checkpoints/seq {last}/root_hash"], True),
    ("checkpoint created_at", lambda c, f: sql(c, "UPDATE checkpoints SET created_at = '2001-01-01 00:00:00' "
                                              "WHERE seq = 2"), ["checkpoints/seq 2/created_at"], False),
    ("checkpoint witnessed", lambda c, f: sql(c, "UPDATE checkpoints SET witnessed = true WHERE seq = 1 AND "
                                             "NOT witnessed") or _strip_all_cosigs(c, f, 1),
     ["checkpoints/seq 1/witnessed"], False),
    ("checkpoint timestamped", lambda c, f: sql(c, "DELETE FROM timestamps WHERE checkpoint_id = :i",
                                               i=cp_id(f, 2)), ["checkpoints/seq 2/timestamped"], False),
    ("checkpoint chain", lambda c, f: flip(c, "checkpoints", "chain", "seq = 1"), ["checkpoints/seq 1/chain"], False),
    ("checkpoint chain NULL", lambda c, f: sql(c, "UPDATE checkpoints SET chain = NULL WHERE seq = 2"),
     ["checkpoints/seq 2/chain"], False),
    ("middle checkpoint deleted", _delete_checkpoint, ["checkpoints/seq 1"], False),
    ("checkpoint deleted and the rest renumbered", _renumber_after_delete, ["checkpoints/seq 1/chain"], False),
    ("checkpoints swapped", _swap_checkpoint_seq, ["checkpoints/seq 2/size", "checkpoints/seq 1/chain"], False),
    ("latest checkpoint rolled back", _rollback_latest, ["witness_progress/"], True),
    ("checkpoint note type", lambda c, f: retype(c, f, "checkpoints", "note", "BLOB"), ["checkpoints/"], True),
    # cosignatures
    ("cosignature line", lambda c, f: flip_text(c, "cosignatures", "line", f"id = {f.cosigs[0][0]}"),
     ["cosignatures/{c0}/line"], False),
    ("cosignature witness", lambda c, f: sql(c, "UPDATE cosignatures SET witness_name = 'w9' WHERE id = :i",
                                            i=f.cosigs[0][0]), ["cosignatures/{c0}/witness_name"], False),
    ("cosignature time", lambda c, f: sql(c, "UPDATE cosignatures SET cosigned_at = 5 WHERE id = :i",
                                         i=f.cosigs[0][0]), ["cosignatures/{c0}/cosigned_at"], False),
    ("cosignature moved to another checkpoint", lambda c, f: sql(
        c, "UPDATE cosignatures SET checkpoint_id = :k WHERE id = :i", k=cp_id(f, 0), i=f.cosigs[0][0]),
     ["cosignatures/{c0}/line"], False),
    ("cosignatures swapped", _swap_cosignature_lines, ["cosignatures/{c0}/line"], False),
    ("cosignatures deleted below quorum", _strip_below_quorum, ["checkpoints/seq {last}/witnessed"], False),
    ("cosignature type", lambda c, f: retype(c, f, "cosignatures", "line", "BLOB"), ["cosignatures/{c0}/line"], False),
    # timestamps
    ("token byte", lambda c, f: flip(c, "timestamps", "token", f"id = {f.tokens[0][0]}", 200),
     ["timestamps/{t0}/token"], False),
    ("token truncated", lambda c, f: sql(c, "UPDATE timestamps SET token = :t WHERE id = :i", t=b"\x30\x03",
                                         i=f.tokens[0][0]), ["timestamps/{t0}/token"], False),
    ("token moved to another checkpoint", lambda c, f: (
        sql(c, "DELETE FROM timestamps WHERE checkpoint_id = :k", k=f.tokens[1][1]),
        sql(c, "UPDATE timestamps SET checkpoint_id = :k WHERE id = :i", k=f.tokens[1][1], i=f.tokens[0][0])),
     ["timestamps/{t0}/token"], False),
    ("token genTime", lambda c, f: sql(c, "UPDATE timestamps SET gen_time = '2001-01-01 00:00:00' WHERE id = :i",
                                       i=f.tokens[0][0]), ["timestamps/{t0}/gen_time"], False),
    ("token type", lambda c, f: retype(c, f, "timestamps", "token", "TEXT"), ["timestamps/{t0}/token"], False),
    # state rows
    ("tree size", lambda c, f: sql(c, "UPDATE log_tree SET size = 600 WHERE id = 1"), ["log_tree/1/size"], True),
    ("tree root", lambda c, f: flip(c, "log_tree", "root_hash", "id = 1"), ["log_tree/1/root_hash"], True),
    ("tree root type", lambda c, f: retype(c, f, "log_tree", "root_hash", "TEXT"), ["log_tree/1/root_hash"], True),
    ("extra tree row", lambda c, f: sql(c, "INSERT INTO log_tree (id, size, root_hash) VALUES (2, 0, :r)", r=b"x"),
     ["log_tree"], False),
    ("sequence behind the tree", lambda c, f: sql(c, "UPDATE log_sequence SET next_index = 10 WHERE id = 1"),
     ["log_sequence/1/next_index"], True),
    ("sequence beyond the entries", lambda c, f: sql(c, "UPDATE log_sequence SET next_index = 720 WHERE id = 1"),
     ["log_entries/704"], True),
    ("witness progress beyond the log", lambda c, f: sql(c, "UPDATE witness_progress SET size = 100000"),
     ["witness_progress/"], False),
]


def flip_text(conn: Connection, table: str, column: str, where: str) -> None:
    value = conn.execute(text(f"SELECT {column} FROM {table} WHERE {where}")).scalar_one()
    i = len(value) - 10
    value = value[:i] + ("A" if value[i] != "A" else "B") + value[i + 1:]
    conn.execute(text(f"UPDATE {table} SET {column} = :v WHERE {where}"), {"v": value})


def _strip_all_cosigs(c: Connection, f: Facts, seq: int) -> None:
    sql(c, "DELETE FROM cosignatures WHERE checkpoint_id = :i", i=cp_id(f, seq))
    sql(c, "UPDATE checkpoints SET witnessed = true WHERE seq = :s", s=seq)


BIG: list[tuple[str, Apply, list[str], bool]] = [
    ("level-2 tile hash (the issue's attack)", lambda c, f: flip(c, "log_tiles", "hashes", "level = 2 AND idx = 0", 5),
     ["log_tiles/2/0/hashes[0]"], True),
    ("full level-1 tile hash", lambda c, f: flip(c, "log_tiles", "hashes", "level = 1 AND idx = 0", 32 * 200),
     ["log_tiles/1/0/hashes[200]"], False),
    ("full level-1 tile inner", lambda c, f: flip(c, "log_tiles", '"inner"', "level = 1 AND idx = 0", 32 * 10),
     ["log_tiles/1/0/inner[10]"], False),
    ("partial level-1 tile hash", lambda c, f: flip(c, "log_tiles", "hashes", "level = 1 AND idx = 1", 32),
     ["log_tiles/1/1/hashes[1]"], True),
    ("leaf in the second level-1 tile", lambda c, f: flip(c, "log_entries", "data", "idx = 65540", 50),
     ["log_tiles/0/256/hashes[4]"], False),
]


def _expand(pattern: str, f: Facts) -> str:
    out = pattern.replace("{last}", str(last_seq(f)))
    if f.cosigs:
        out = out.replace("{c0}", str(f.cosigs[0][0]))
    if f.tokens:
        out = out.replace("{t0}", str(f.tokens[0][0]))
    for idx in sorted(f.deposit_at, reverse=True):
        out = out.replace("{" + str(idx) + "}", f.deposit_at[idx])
    return out


def _check(base: Base, name: str, apply: Apply, wants: list[str], must_halt: bool) -> str:
    out = run(base, apply)
    for want in (_expand(w, base.facts) for w in wants):
        assert any(w.startswith(want) for w in out.wheres), f"{name}: audit did not name {want}: {out.problems}"
    if must_halt:
        assert out.halted, f"{name}: the integrator signed over a tampered right edge or state"
    return f"{name}: audit -> {out.problems[0]}; integrator {'halted' if out.halted else 'signed a sound extension'}"


@pytest.mark.parametrize("case", SMALL, ids=[c[0] for c in SMALL])
def test_every_mutation_is_caught(small: Base, case: tuple[str, Apply, list[str], bool]) -> None:
    print(_check(small, *case))


@pytest.mark.parametrize("case", BIG, ids=[c[0] for c in BIG])
def test_mutations_of_upper_tiles_are_caught(big: Base, case: tuple[str, Apply, list[str], bool]) -> None:
    print(_check(big, *case))
