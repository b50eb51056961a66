"""The audit's checks of what was signed and notarised: checkpoints, cosignatures, tokens, state rows.

- checkpoints: types; `seq` runs 0, 1, 2... with no gap; sizes grow and times do not go back with it;
  the chain (`integrity.chain_link`) links every row to the one before; both log signatures verify and
  the signed body is the row's size and root; the root is the tree recomputed from the leaves; each
  checkpoint is consistent with the one before it by a proof read from the stored tiles;
- cosignatures: each belongs to a stored checkpoint, is by a policy witness, verifies on that body, and
  its stored time is the line's; `witnessed` is set only where the policy's quorum verifies;
- timestamps: each belongs to a stored checkpoint and verifies (imprint = SHA-256 of its body, chain to
  the TSA roots); its stored genTime is the token's; `timestamped` is set exactly where a token is;
- state: `log_tree` is the latest checkpoint, `log_sequence` is not behind it, no witness has cosigned
  past it (a rolled-back log).
"""

from __future__ import annotations

import hashlib
import itertools
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from depository.audit.raw import want_bool, want_bytes, want_int, want_text, want_time
from depository.audit.report import AuditReport
from depository.audit.tree import sql
from depository.integrity import chain_link
from evidence import merkle, tiles
from evidence.checkpoint import verify_checkpoint
from evidence.cosignature import verify_cosignature
from evidence.errors import EvidenceError
from evidence.note import Verifier
from evidence.policy import Policy
from evidence.timestamp import verify_token


@dataclass(frozen=True)
class AuditTrust:
    """What the audit verifies against: the log's keys, the chain key, the witness policy, the TSA roots."""

    origin: str
    log_verifiers: Sequence[Verifier]
    chain_key: bytes | None = None
    policy: Policy | None = None
    tsa_ca_pem: bytes | None = None
    hasher: merkle.Hasher = merkle.SHA256


@dataclass
class Cp:
    id: int
    seq: int
    size: int
    root: bytes
    note: str
    created_at: datetime | None
    witnessed: bool | None
    timestamped: bool | None
    chain: bytes | None
    body: str | None = None  # set once the log signatures verified


def read_checkpoints(engine: Engine, rep: AuditReport, from_seq: int) -> tuple[list[Cp], bytes | None]:
    """Checkpoints with seq >= from_seq in seq order (rows of the wrong shape are findings and skipped),
    and the stored chain value of seq from_seq - 1 (None at 0)."""
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(sql(conn, "SELECT id, seq, size, RAW(root_hash), note, created_at, "
                                         "witnessed, timestamped, RAW(chain) FROM checkpoints "
                                         "WHERE seq >= ? OR seq IS NULL "
                                         "ORDER BY seq"), (from_seq,)).all()
        before = None
        if from_seq > 0:
            before = conn.exec_driver_sql(sql(conn, "SELECT RAW(chain) FROM checkpoints WHERE seq = ?"),
                                          (from_seq - 1,)).scalar()
    out = []
    for r in rows:
        where = f"checkpoints/{r[0]}"
        seq = want_int(rep, f"{where}/seq", r[1])
        size = want_int(rep, f"{where}/size", r[2])
        root = want_bytes(rep, f"{where}/root_hash", r[3], 32)
        note = want_text(rep, f"{where}/note", r[4])
        chain = None if r[8] is None else want_bytes(rep, f"{where}/chain", r[8], 32)
        if seq is None or size is None or root is None or note is None:
            continue
        out.append(Cp(r[0], seq, size, root, note, want_time(rep, f"{where}/created_at", r[5]),
                      want_bool(rep, f"{where}/witnessed", r[6]), want_bool(rep, f"{where}/timestamped", r[7]),
                      chain))
    prev = bytes(before) if isinstance(before, bytes | memoryview) else None
    return out, prev


def check_checkpoints(rep: AuditReport, cps: list[Cp], trust: AuditTrust, from_seq: int, prev_chain: bytes | None
                      ) -> None:
    """Order, chain, signatures and signed bodies (roots are compared in `check_roots`)."""
    expect_seq = from_seq
    last: Cp | None = None
    chain = prev_chain
    for cp in cps:
        where = f"checkpoints/seq {cp.seq}"
        if cp.seq != expect_seq:
            rep.add(f"checkpoints/seq {expect_seq}", "missing" if cp.seq > expect_seq else f"seq {cp.seq}",
                    "a checkpoint (the sequence has no gaps)", f"next stored is seq {cp.seq} (size {cp.size})")
        expect_seq = cp.seq + 1
        if last is not None:
            if cp.size <= last.size:
                rep.add(f"{where}/size", cp.size, f"more than {last.size} (seq {last.seq})", "checkpoints reordered")
            if cp.created_at and last.created_at and cp.created_at < last.created_at:
                rep.add(f"{where}/created_at", cp.created_at.isoformat(), f"not before {last.created_at.isoformat()}")
        elif from_seq == 0 and cp.size != 0:
            rep.add(f"{where}/size", cp.size, "0 (the log's first checkpoint is the empty tree)")
        if trust.chain_key is None:
            if cp is cps[0]:
                rep.add("keys/checkpoint-chain.key", "missing", "the chain key (run 'depository init')")
        else:
            want = chain_link(trust.chain_key, chain, cp.seq, cp.note)
            if cp.chain != want:
                rep.add(f"{where}/chain", cp.chain, want,
                        "a checkpoint before it was deleted, reordered or renumbered, or this row was altered")
            chain = cp.chain
        _check_signatures(rep, cp, trust)
        last = cp


def _check_signatures(rep: AuditReport, cp: Cp, trust: AuditTrust) -> None:
    where = f"checkpoints/seq {cp.seq}"
    try:
        verified = verify_checkpoint(cp.note, trust.log_verifiers)
    except EvidenceError as e:
        rep.add(f"{where}/note", e.diagnostics(), "a checkpoint signed by the log")
        return
    missing = [f"{v.name}+{v.key_id:08x}" for v in trust.log_verifiers if not verified.note.verified_by(v)]
    if missing:
        rep.add(f"{where}/note", "signatures by " + ", ".join(sorted(verified.note.verified_names)),
                "every log key (Ed25519 and SM2)", "unverified: " + ", ".join(missing))
    c = verified.checkpoint
    if c.origin != trust.origin:
        rep.add(f"{where}/note", f"origin {c.origin!r}", f"origin {trust.origin!r}")
    if c.size != cp.size:
        rep.add(f"{where}/size", cp.size, c.size, "what its signed note says")
    if c.root_hash != cp.root:
        rep.add(f"{where}/root_hash", cp.root, c.root_hash, "what its signed note says")
    cp.body = cp.note.split("\n\n", 1)[0] + "\n"


def check_roots(rep: AuditReport, cps: list[Cp], roots: dict[int, bytes], start_size: int, tree_known: bool) -> None:
    for cp in cps:
        if cp.size <= start_size:
            continue
        got = roots.get(cp.size)
        if got is None:
            if tree_known:
                rep.add(f"checkpoints/seq {cp.seq}/size", cp.size, "a size within the stored tree")
            continue
        if got != cp.root:
            rep.add(f"checkpoints/seq {cp.seq}/root_hash", cp.root, got, "the root recomputed from the stored leaves")


def check_consistency(engine: Engine, rep: AuditReport, cps: list[Cp], hasher: merkle.Hasher) -> None:
    """Each checkpoint is consistent with the one before, by a proof read from the stored tiles."""
    cache: OrderedDict[tuple[int, int], tiles.Tile | None] = OrderedDict()

    def load(keys: list[tuple[int, int]]) -> dict[tuple[int, int], tiles.Tile]:
        need = [k for k in keys if k not in cache]
        if need:
            with engine.connect() as conn:
                where = " OR ".join(["(level = ? AND idx = ?)"] * len(need))
                rows = conn.exec_driver_sql(sql(conn, f'SELECT level, idx, RAW(hashes), RAW("inner") FROM log_tiles '  # noqa: S608
                                                f"WHERE {where}"), tuple(v for k in need for v in k)).all()
            for k in need:
                cache[k] = None
            for r in rows:
                try:
                    cache[(r[0], r[1])] = tiles.Tile(r[0], r[1], bytes(r[2]), bytes(r[3]))
                except (TypeError, EvidenceError):
                    pass  # reported by the tile comparison
            while len(cache) > 4096:
                cache.popitem(last=False)
        return {k: t for k in keys if (t := cache.get(k)) is not None}

    signed = [cp for cp in cps if cp.body is not None]
    for a, b in itertools.pairwise(signed):
        if a.size == 0 or b.size <= a.size:
            continue
        plan = merkle.plan_consistency(a.size, b.size)
        try:
            proof = tiles.fetch_plan(plan, load(tiles.tiles_for_plan(plan)), hasher)
            merkle.verify_consistency(hasher, a.size, b.size, proof, a.root, b.root)
        except (KeyError, IndexError) as e:
            rep.add(f"checkpoints/seq {b.seq}", f"no consistency proof from seq {a.seq} ({e})",
                    "a proof from the stored tiles")
        except EvidenceError as e:
            rep.add(f"checkpoints/seq {b.seq}", e.diagnostics(),
                    f"a stored-tile consistency proof from seq {a.seq} (size {a.size}) that verifies")


def check_cosignatures(engine: Engine, rep: AuditReport, cps: list[Cp], trust: AuditTrust, all_ids: set[int]
                       ) -> None:
    by_id = {cp.id: cp for cp in cps}
    witnesses = {w.name: w for w in trust.policy.witnesses} if trust.policy else {}
    valid: dict[int, set[str]] = {}
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT id, checkpoint_id, witness_name, line, cosigned_at FROM cosignatures").all()
    for rid, cp_id, name, line, at in rows:
        where = f"cosignatures/{rid}"
        if cp_id not in all_ids:
            rep.add(f"{where}/checkpoint_id", cp_id, "a stored checkpoint")
            continue
        cp = by_id.get(cp_id)
        if cp is None:
            continue  # before an incremental audit's start
        rep.cosignatures += 1
        if want_text(rep, f"{where}/line", line) is None or want_text(rep, f"{where}/witness_name", name) is None:
            continue
        w = witnesses.get(name)
        if w is None:
            rep.add(f"{where}/witness_name", name, "a witness of the policy" if trust.policy else
                    "no cosignatures (no witness policy is configured)")
            continue
        if cp.body is None:
            continue
        try:
            ts = verify_cosignature(cp.body, line, w.verifier)
        except EvidenceError as e:
            rep.add(f"{where}/line", e.diagnostics(), f"{name}'s valid cosignature on checkpoint seq {cp.seq}")
            continue
        if at != ts:
            rep.add(f"{where}/cosigned_at", at, ts, "the time inside the cosignature")
        valid.setdefault(cp_id, set()).add(name)
    for cp in cps:
        if cp.witnessed and trust.policy is not None and not trust.policy.satisfied(valid.get(cp.id, set())):
            rep.add(f"checkpoints/seq {cp.seq}/witnessed", "true", "false",
                    f"verified cosigners {sorted(valid.get(cp.id, set()))} do not meet the quorum")


def check_timestamps(engine: Engine, rep: AuditReport, cps: list[Cp], trust: AuditTrust, all_ids: set[int]) -> None:
    by_id = {cp.id: cp for cp in cps}
    stamped: set[int] = set()
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(sql(conn, "SELECT id, checkpoint_id, RAW(token), gen_time FROM timestamps")).all()
    for rid, cp_id, token, gen_time in rows:
        where = f"timestamps/{rid}"
        if cp_id not in all_ids:
            rep.add(f"{where}/checkpoint_id", cp_id, "a stored checkpoint")
            continue
        cp = by_id.get(cp_id)
        stamped.add(cp_id)
        if cp is None:
            continue
        rep.timestamps += 1
        der = want_bytes(rep, f"{where}/token", token)
        if der is None or cp.body is None:
            continue
        if not trust.tsa_ca_pem:
            rep.add(f"{where}/token", "a token", "none: no TSA root is configured to verify it against")
            continue
        digest = hashlib.sha256(cp.body.encode("utf-8")).digest()
        try:
            info = verify_token(der, digest, "sha256", [trust.tsa_ca_pem])
        except EvidenceError as e:
            rep.add(f"{where}/token", e.diagnostics(), f"a valid token over checkpoint seq {cp.seq}")
            continue
        stored = want_time(rep, f"{where}/gen_time", gen_time)
        if stored is not None and abs((stored - info.gen_time).total_seconds()) >= 0.001:
            rep.add(f"{where}/gen_time", stored.isoformat(), info.gen_time.isoformat(), "the token's genTime")
    for cp in cps:
        if cp.timestamped is not None and cp.timestamped != (cp.id in stamped):
            rep.add(f"checkpoints/seq {cp.seq}/timestamped", str(cp.timestamped).lower(),
                    str(cp.id in stamped).lower(), "whether a token is stored")


def check_state(engine: Engine, rep: AuditReport, latest: Cp | None) -> tuple[int, int] | None:
    """(tree size, next index) from the state rows, checked against the latest checkpoint."""
    with engine.connect() as conn:
        trees = conn.exec_driver_sql(sql(conn, "SELECT id, size, RAW(root_hash) FROM log_tree")).all()
        seqs = conn.exec_driver_sql("SELECT id, next_index FROM log_sequence").all()
        progress = conn.exec_driver_sql("SELECT witness_name, size FROM witness_progress").all()
    if [r[0] for r in trees] != [1]:
        rep.add("log_tree", f"rows {[r[0] for r in trees]}", "one row, id 1")
    if [r[0] for r in seqs] != [1]:
        rep.add("log_sequence", f"rows {[r[0] for r in seqs]}", "one row, id 1")
    tree: Any = next((r for r in trees if r[0] == 1), None)
    seq_row: Any = next((r for r in seqs if r[0] == 1), None)
    if tree is None or seq_row is None:
        return None
    size = want_int(rep, "log_tree/1/size", tree[1])
    root = want_bytes(rep, "log_tree/1/root_hash", tree[2], 32)
    nxt = want_int(rep, "log_sequence/1/next_index", seq_row[1])
    if size is None or nxt is None:
        return None
    if nxt < size:
        rep.add("log_sequence/1/next_index", nxt, f">= {size} (the integrated size)")
    if latest is not None:
        if size != latest.size:
            rep.add("log_tree/1/size", size, latest.size, f"the size of the latest checkpoint (seq {latest.seq})")
        elif root is not None and root != latest.root:
            rep.add("log_tree/1/root_hash", root, latest.root, f"the root of the latest checkpoint (seq {latest.seq})")
        for name, wsize in progress:
            if isinstance(wsize, int) and wsize > latest.size:
                rep.add(f"witness_progress/{name}/size", wsize, f"<= {latest.size} (the latest checkpoint)",
                        "a witness cosigned a larger tree: checkpoints were rolled back")
    return size, nxt
