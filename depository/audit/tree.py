"""The audit's pass over the log in index order: entries, their deposit rows, and every tile rebuilt.

For each chunk of entries: every index is stored once (no gap, none past the sequence), every leaf is
the `evidence-deposit/v1` leaf its deposit row says it is (id, kind, hashes, size, received, depositor,
metadata digest), and for the integrated part the tiles are rebuilt from the leaves
(`tiles.update_tiles`) and every stored tile, full or partial, compared byte for byte with its rebuilt
twin, inner nodes included. The recomputed root at every checkpoint's size is handed back for the
checkpoint checks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine

from depository.audit.raw import as_time, want_bytes, want_text
from depository.audit.report import AuditReport, Progress
from evidence import merkle, tiles
from evidence.errors import EvidenceError
from evidence.leaf import LeafData, encode_leaf, format_received, meta_hash

CHUNK = 10_000
META_CACHE = 10_000  # metadata digests remembered by their JSON text (batches often repeat metadata)
#: Seconds between a deposit's `received` and its entry's `sequenced_at` beyond which one of them is wrong:
#: both are read from one clock in one request, and a request is one transaction.
SEQUENCING_WINDOW_S = 600


@dataclass
class TreeStart:
    """Where the pass starts: size 0 (full audit), or a verified checkpoint's size with its edge tiles."""

    size: int = 0
    edge: dict[int, tiles.Tile] = field(default_factory=dict)
    frontier: list[bytes] = field(default_factory=list)


_RAW_BLOB = re.compile(r'RAW\(("?\w+"?)\)')


def sql(conn: Connection, text: str) -> str:
    """Driver SQL written with `?`, in the driver's own placeholder style.

    `RAW(column)` reads a binary column as stored: SQLite keeps any type in any column, and a TEXT value
    that is not UTF-8 makes the driver fail the whole fetch, so there a TEXT value comes back as the str
    'text:<hex>' and the type check names it."""
    if conn.dialect.name == "sqlite":
        text = _RAW_BLOB.sub(lambda m: f"CASE WHEN typeof({m[1]}) = 'text' THEN 'text:' || hex({m[1]}) "
                                       f"ELSE {m[1]} END", text)
    else:
        text = _RAW_BLOB.sub(lambda m: m[1], text)
    return text if conn.dialect.paramstyle == "qmark" else text.replace("?", "%s")


class TreePass:
    def __init__(self, engine: Engine, rep: AuditReport, hasher: merkle.Hasher, progress: Progress | None) -> None:
        self.engine = engine
        self.rep = rep
        self.hasher = hasher
        self.progress = progress
        self._meta: dict[str, bytes | None] = {}

    def run(self, start: TreeStart, tree_size: int, next_index: int, checkpoint_sizes: Sequence[int]
            ) -> dict[int, bytes]:
        """Recomputed roots by tree size for the `checkpoint_sizes` in (start.size, tree_size]."""
        rep, hasher = self.rep, self.hasher
        roots: dict[int, bytes] = {}
        wanted = sorted(s for s in set(checkpoint_sizes) if start.size < s <= tree_size)
        cr = merkle.CompactRange(hasher, start.size, start.frontier)
        edge = dict(start.edge)
        tree_ok = True  # false once the tree cannot be rebuilt further (an integrated leaf is unknowable)
        pos = start.size
        while pos < next_index:
            end = min(next_index, pos + CHUNK)
            with self.engine.connect() as conn:
                entries = conn.exec_driver_sql(sql(conn, "SELECT idx, identity, RAW(data), sequenced_at "
                                                   "FROM log_entries WHERE idx >= ? AND idx < ? ORDER BY idx"),
                                               (pos, end)).all()
                deposits = {r[8]: r for r in conn.exec_driver_sql(sql(conn, (
                    "SELECT id, tenant_id, kind, sha256, sm3, size, metadata_json, received, leaf_index, matter, "
                    "follows FROM deposits WHERE leaf_index >= ? AND leaf_index < ?")), (pos, end))}
            by_idx = {r[0]: r for r in entries if isinstance(r[0], int)}
            leaf_hashes: list[bytes | None] = []
            for idx in range(pos, end):
                data = self._entry(idx, by_idx.get(idx), deposits.pop(idx, None))
                leaf_hashes.append(None if data is None else hasher.hash_leaf(data))
            rep.entries += len(entries)
            integrated_end = min(end, tree_size)
            if tree_ok and pos < tree_size:
                hashes = self._fill_unknown(leaf_hashes[:integrated_end - pos], pos)
                if hashes is None:
                    tree_ok = False
                else:
                    edge = self._tiles(pos, edge, hashes, integrated_end == tree_size)
                    cr = self._roots(cr, hashes, wanted, roots)
            if self.progress is not None:
                self.progress("entries", end - start.size, next_index - start.size)
            pos = end
        if tree_ok and cr.size == tree_size:
            roots[tree_size] = cr.root()
        self._strays(next_index)
        return roots

    # ---- one entry against its deposit row ----------------------------------------------------------

    def _entry(self, idx: int, row: Any, dep: Any) -> bytes | None:
        """Check entry `idx`; returns its leaf data (None when missing or not bytes)."""
        rep = self.rep
        if row is None:
            rep.add(f"log_entries/{idx}", "missing", "a stored entry", "sequenced indices have no gaps")
            if dep is not None:
                rep.deposits += 1
            return None
        data = want_bytes(rep, f"log_entries/{idx}/data", row[2])
        identity = want_text(rep, f"log_entries/{idx}/identity", row[1])
        if dep is None:
            rep.add(f"deposits[leaf_index={idx}]", "missing",
                    f"the deposit row of log entry {idx}" + (f" ({identity})" if identity else ""))
            return data
        rep.deposits += 1
        if data is not None:
            self._compare(idx, data, identity, dep)
        self._times(idx, row[3], dep)
        return data

    def _times(self, idx: int, sequenced_at: object, dep: Any) -> None:
        """An entry is sequenced after its deposit was received, and not long after (one transaction)."""
        received = as_time(dep[7])
        if isinstance(sequenced_at, bool) or not isinstance(sequenced_at, int | float):
            self.rep.add(f"log_entries/{idx}/sequenced_at", f"{type(sequenced_at).__name__} {sequenced_at!r}"[:80],
                         "a POSIX time")
        elif received is not None and not -1 <= sequenced_at - received.timestamp() <= SEQUENCING_WINDOW_S:
            self.rep.add(f"log_entries/{idx}/sequenced_at", sequenced_at,
                         f"within {SEQUENCING_WINDOW_S} s after the deposit was received ({received.isoformat()})")

    def _compare(self, idx: int, data: bytes, identity: str | None, dep: Any) -> None:
        rep = self.rep
        dep_id, tenant, kind, sha256, sm3, size, meta_json, received, _, matter, follows = dep
        where = f"deposits/{dep_id}"
        self._refs(where, meta_json, matter, follows)
        if identity is not None and identity != dep_id:
            rep.add(f"log_entries/{idx}/identity", identity, dep_id, f"the id of {where}, whose leaf_index is {idx}")
        meta = self._meta_hex(where, meta_json)
        when = as_time(received)
        salt = data[-33:-1] if data[-39:-33] == b"\nsalt " and data.endswith(b"\n") else None
        try:
            expected = encode_leaf(dep_id, kind, sha256, sm3, size, format_received(when) if when else "?",
                                   tenant, meta or "?", salt.decode("ascii") if salt else "?")
        except (TypeError, ValueError, UnicodeDecodeError, AttributeError):
            expected = None
        if expected == data:
            return
        try:
            leaf = LeafData.from_bytes(data)
        except EvidenceError as e:
            rep.add(f"log_entries/{idx}/data", e.diagnostics(), f"the evidence-deposit/v1 leaf of {where}")
            return
        fields = (
            ("id", dep_id, leaf.id), ("tenant_id", tenant, leaf.depositor), ("kind", kind, leaf.kind),
            ("sha256", sha256, leaf.sha256.hex()), ("sm3", sm3, leaf.sm3.hex()), ("size", size, leaf.size),
            ("received", format_received(when) if when else received, format_received(leaf.received)),
        )
        named = False
        if meta is not None and meta != leaf.meta.hex():
            rep.add(f"{where}/metadata_json", f"a document whose RFC 8785 SHA-256 is {meta}",
                    f"one whose digest is {leaf.meta.hex()}", f"what log entry {idx} says")
            named = True
        for column, got, want in fields:
            if got != want:
                rep.add(f"{where}/{column}", got, want, f"what log entry {idx} says")
                named = True
        if not named:
            rep.add(f"log_entries/{idx}/data", data, f"the leaf of {where}", "same fields, other bytes")

    def _refs(self, where: str, meta_json: object, matter: object, follows: object) -> None:
        """The `matter` and `follows` columns are copies of the metadata's (which the leaf covers)."""
        try:
            meta = json.loads(meta_json) if isinstance(meta_json, str) else None
        except (ValueError, RecursionError):
            return  # reported with the metadata digest
        if not isinstance(meta, dict):
            return
        for column, value in (("matter", matter), ("follows", follows)):
            if value != meta.get(column):
                self.rep.add(f"{where}/{column}", value, meta.get(column), "what its metadata says")

    def _meta_hex(self, where: str, meta_json: object) -> str | None:
        if not isinstance(meta_json, str):
            want_text(self.rep, f"{where}/metadata_json", meta_json)
            return None
        if meta_json in self._meta:
            cached = self._meta[meta_json]
            return None if cached is None else cached.hex()
        try:
            digest: bytes | None = meta_hash(json.loads(meta_json))
        except (ValueError, EvidenceError, RecursionError):
            digest = None
        if len(self._meta) >= META_CACHE:
            self._meta.clear()
        self._meta[meta_json] = digest
        if digest is None:
            self.rep.add(f"{where}/metadata_json", meta_json, "a JSON object")
            return None
        return digest.hex()

    # ---- tiles and roots ----------------------------------------------------------------------------

    def _fill_unknown(self, hashes: list[bytes | None], start: int) -> list[bytes] | None:
        """Stand in a stored level-0 hash for leaves that are missing or unreadable (already reported),
        so the rest of the tree can still be rebuilt and checked; None when even that is missing."""
        if all(h is not None for h in hashes):
            return hashes  # type: ignore[return-value]
        needed = sorted({(start + i) >> tiles.TILE_HEIGHT for i, h in enumerate(hashes) if h is None})
        stored = self._stored_tiles([(0, t) for t in needed])
        out: list[bytes] = []
        for i, h in enumerate(hashes):
            if h is None:
                idx = start + i
                row = stored.get((0, idx >> tiles.TILE_HEIGHT))
                p = (idx & (tiles.TILE_WIDTH - 1)) * 32
                if row is None or not isinstance(row[0], bytes) or len(row[0]) < p + 32:
                    return None
                h = row[0][p:p + 32]
            out.append(h)
        return out

    def _tiles(self, start: int, edge: dict[int, tiles.Tile], hashes: list[bytes], at_end: bool
               ) -> dict[int, tiles.Tile]:
        upd = tiles.update_tiles(self.hasher, start, edge.values(), hashes)
        new_size = start + len(hashes)
        want = {c.level: c for c in tiles.right_edge_tiles(new_size)}
        merged = {**edge, **{t.level: t for t in upd.tiles if t.level in want and t.index == want[t.level].index}}
        new_edge = {lvl: t for lvl, t in merged.items() if lvl in want and t.index == want[lvl].index}
        full = [t for t in upd.tiles if t.width == tiles.TILE_WIDTH]
        self._compare_tiles(full + (list(new_edge.values()) if at_end else []))
        return new_edge

    def _roots(self, cr: merkle.CompactRange, hashes: list[bytes], wanted: list[int], roots: dict[int, bytes]
               ) -> merkle.CompactRange:
        base = cr.size
        end = base + len(hashes)
        cut = base
        for s in wanted:
            if base < s <= end:
                cr.extend(hashes[cut - base:s - base])
                cut = s
                roots[s] = cr.root()
        cr.extend(hashes[cut - base:])
        return cr

    def _stored_tiles(self, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], tuple[object, object]]:
        out: dict[tuple[int, int], tuple[object, object]] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(keys), 400):
                part = keys[i:i + 400]
                where = " OR ".join(["(level = ? AND idx = ?)"] * len(part))
                rows = conn.exec_driver_sql(sql(conn, f'SELECT level, idx, RAW(hashes), RAW("inner") FROM log_tiles '  # noqa: S608
                                                f"WHERE {where}"), tuple(v for k in part for v in k)).all()
                out.update({(r[0], r[1]): (_plain(r[2]), _plain(r[3])) for r in rows})
        return out

    def _compare_tiles(self, rebuilt: list[tiles.Tile]) -> None:
        if not rebuilt:
            return
        rep = self.rep
        stored = self._stored_tiles([(t.level, t.index) for t in rebuilt])
        for t in rebuilt:
            rep.tiles_checked += 1
            where = f"log_tiles/{t.level}/{t.index}"
            s = stored.get((t.level, t.index))
            if s is None:
                rep.add(where, "missing", f"a tile of width {t.width}")
                continue
            got_h = want_bytes(rep, f"{where}/hashes", s[0])
            got_i = want_bytes(rep, f"{where}/inner", s[1])
            if got_h is None or got_i is None:
                continue
            if len(got_h) != len(t.hashes):
                rep.add(f"{where}/hashes", f"width {len(got_h) / 32:g}", f"width {t.width}",
                        "the tile's width at this tree size")
            elif got_h != t.hashes:
                p = next(i for i in range(0, len(got_h), 32) if got_h[i:i + 32] != t.hashes[i:i + 32])
                if t.level == 0:
                    leaf = t.index * tiles.TILE_WIDTH + p // 32
                    note = f"the hash of log entry {leaf}: the entry or the tile was altered"
                else:
                    note = "rebuilt from the leaves"
                rep.add(f"{where}/hashes[{p // 32}]", got_h[p:p + 32], t.hashes[p:p + 32], note)
            if len(got_i) != len(t.inner):
                rep.add(f"{where}/inner", f"{len(got_i)} bytes", f"{len(t.inner)} bytes")
            elif got_i != t.inner:
                p = next(i for i in range(0, len(got_i), 32) if got_i[i:i + 32] != t.inner[i:i + 32])
                rep.add(f"{where}/inner[{p // 32}]", got_i[p:p + 32], t.inner[p:p + 32], "rebuilt from the leaves")

    # ---- rows that should not exist ----------------------------------------------------------------

    def _strays(self, next_index: int) -> None:
        rep = self.rep
        with self.engine.connect() as conn:
            for (idx,) in conn.exec_driver_sql(sql(conn, "SELECT idx FROM log_entries WHERE idx >= ? OR idx < 0 "
                                                   "ORDER BY idx LIMIT 20"), (next_index,)):
                rep.add(f"log_entries/{idx}", "a stored entry", f"none: the sequence ends at {next_index}")
            for dep_id, li in conn.exec_driver_sql(sql(conn, "SELECT id, leaf_index FROM deposits WHERE leaf_index "
                                                       ">= ? OR leaf_index < 0 LIMIT 20"), (next_index,)):
                rep.add(f"deposits/{dep_id}/leaf_index", li, f"an index below {next_index} (the sequence)")


def check_tile_set(engine: Engine, rep: AuditReport, tree_size: int) -> None:
    """Every stored tile is one the tree of `tree_size` serves, at exactly its width (no extra, no stale)."""
    want = {(c.level, c.index): c.hash_count for c in tiles.tiles_for_size(tree_size)}
    with engine.connect() as conn:
        rows = conn.exec_driver_sql('SELECT level, idx, length(hashes) FROM log_tiles').all()
    seen = set()
    for level, idx, length in rows:
        key = (level, idx)
        seen.add(key)
        if key not in want:
            rep.add(f"log_tiles/{level}/{idx}", "a stored tile", f"none in a tree of size {tree_size}")
        elif isinstance(length, int) and length != want[key] * 32:
            rep.add(f"log_tiles/{level}/{idx}/hashes", f"{length} bytes", f"{want[key] * 32} bytes (width {want[key]})")
    missing = [k for k in want if k not in seen]
    for level, idx in missing[:20]:
        rep.add(f"log_tiles/{level}/{idx}", "missing", f"a tile of width {want[(level, idx)]}")


def _plain(v: object) -> object:
    return bytes(v) if isinstance(v, memoryview | bytearray) else v


__all__ = ["CHUNK", "TreePass", "TreeStart", "check_tile_set"]
