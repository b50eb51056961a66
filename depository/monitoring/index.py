"""In-memory lookup of suspect fingerprints among all registered works, without scanning every work.

A crawled page carries ~20 pictures and one text; with 100,000 registered works a linear scan per picture
(x19 stored hashes each) would cost too much, so each kind has a sub-linear candidate step followed by an
exact verification step that uses the same scoring as :mod:`depository.monitoring.fingerprint`:

Images: multi-index hashing (Norouzi et al., "Fast Search in Hamming Space with Multi-Index Hashing").
    The 64-bit pHash is split into ``CHUNKS`` = 4 chunks of 16 bits. If two hashes differ in ``d`` bits,
    by pigeonhole at least one chunk differs in at most ``floor(d / 4)`` bits; so probing every chunk value
    within ``r = floor(MAX_PHASH_DISTANCE / 4)`` bits of the query's chunk, in each of the 4 tables, finds
    every stored hash within ``4 * (r + 1) - 1 >= MAX_PHASH_DISTANCE`` bits. Candidates are then verified
    by full Hamming distance on pHash and dHash.
    Storage is columnar numpy (a sorted "main" part plus a small unsorted "delta" that is scanned
    linearly and merged when it grows), so 100,000 works x 19 hashes cost ~80 MB, and adds stay O(1).
Texts: ``datasketch.MinHashLSH`` banding for candidates, then the MinHash Jaccard estimate; and, for a
    suspect that carries its containment hash set, an inverted index of every work's bottom-k sample,
    which scores how much of each *work* is in the page (a work quoted inside boilerplate).

The index holds no database handle: the service rebuilds it at start from stored fingerprint rows
(:meth:`SimilarityIndex.from_rows`) or a snapshot (:meth:`SimilarityIndex.to_state` / ``from_state``).
It is not thread-safe; callers serialise writes (one index per worker process).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from datasketch import LeanMinHash, MinHashLSH

from depository.monitoring.fingerprint import (
    IMAGE_ALGORITHM,
    IMAGE_MATCH_THRESHOLD,
    IMAGE_METHOD,
    MAX_PHASH_DISTANCE,
    TEXT_ALGORITHM,
    TEXT_CONTAINMENT_METHOD,
    TEXT_CONTAINMENT_THRESHOLD,
    TEXT_MATCH_THRESHOLD,
    TEXT_METHOD,
    TEXT_MINHASH_SEED,
    TEXT_NUM_PERM,
    FingerprintError,
    ImageFingerprint,
    TextFingerprint,
    image_score,
)

__all__ = ["STATE_FORMAT", "TEXT_LSH_THRESHOLD", "Match", "SimilarityIndex"]

STATE_FORMAT = "depository-similarity-index/1"

CHUNKS = 4
CHUNK_BITS = 64 // CHUNKS
_CHUNK_MASK = (1 << CHUNK_BITS) - 1

#: The delta part is scanned linearly (XOR + popcount over all its rows); past this many rows it is merged
#: into the sorted main part. A 64k-row scan costs well under a millisecond; a merge of 2M rows ~0.5 s.
DELTA_MERGE_ROWS = 65_536

#: LSH banding threshold, below the match threshold so that LSH misses (false negatives of banding) are
#: rare for true matches; the exact estimate then applies ``TEXT_MATCH_THRESHOLD``.
TEXT_LSH_THRESHOLD = 0.3


@dataclass(frozen=True)
class Match:
    """A registered work that a suspect fingerprint matched; ``method`` names the comparison used."""

    work_id: str
    score: float
    method: str


def _probe_masks(radius: int) -> np.ndarray:
    """All CHUNK_BITS-bit XOR masks of Hamming weight <= radius (137 masks for radius 2)."""
    masks = [0]
    for weight in range(1, radius + 1):
        for bits in itertools.combinations(range(CHUNK_BITS), weight):
            masks.append(sum(1 << b for b in bits))
    return np.asarray(masks, dtype=np.int64)


def _chunk(values: np.ndarray, table: int) -> np.ndarray:
    return ((values >> np.uint64(table * CHUNK_BITS)) & np.uint64(_CHUNK_MASK)).astype(np.int64)


class _ImageIndex:
    """Multi-index hashing over pHash, verified with pHash + dHash. Rows are hashes, slots are works."""

    def __init__(self, max_phash_distance: int, threshold: float) -> None:
        self.max_phash_distance = max_phash_distance
        self.threshold = threshold
        self._masks = _probe_masks(max_phash_distance // CHUNKS)
        # Slots: one per add(); a removed work's slot is marked dead and its rows dropped at the next merge.
        self._slot_ids: list[str] = []
        self._slot_alive = np.zeros(0, dtype=bool)
        self._slot_dims: list[tuple[int, int, int]] = []  # width, height, crop rows
        self._slot_of: dict[str, int] = {}
        # Main part: rows in insertion order, plus per table a permutation sorted by chunk and bucket starts.
        self._ph = np.zeros(0, dtype=np.uint64)
        self._dh = np.zeros(0, dtype=np.uint64)
        self._slot = np.zeros(0, dtype=np.int64)
        self._order: list[np.ndarray] = []
        self._starts: list[np.ndarray] = []
        # Delta part: plain lists, turned into arrays lazily.
        self._d_ph: list[int] = []
        self._d_dh: list[int] = []
        self._d_slot: list[int] = []
        self._d_arrays: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._build_tables()

    def __len__(self) -> int:
        return len(self._slot_of)

    def __contains__(self, work_id: str) -> bool:
        return work_id in self._slot_of

    def add(self, work_id: str, fp: ImageFingerprint, *, merge: bool = True) -> None:
        """Append ``fp``'s rows to the delta; ``merge=False`` (bulk loads) leaves merging to the caller."""
        if fp.algorithm != IMAGE_ALGORITHM:
            raise FingerprintError("algorithm-mismatch", f"got {fp.algorithm!r}, want {IMAGE_ALGORITHM!r}")
        if work_id in self._slot_of:
            self.remove(work_id)
        slot = len(self._slot_ids)
        self._slot_ids.append(work_id)
        self._slot_dims.append((fp.width, fp.height, len(fp.crops)))
        self._slot_of[work_id] = slot
        if slot >= len(self._slot_alive):
            grown = np.zeros(max(1024, 2 * len(self._slot_alive)), dtype=bool)
            grown[: len(self._slot_alive)] = self._slot_alive
            self._slot_alive = grown
        self._slot_alive[slot] = True
        for phash, dhash in fp.all_hashes():
            self._d_ph.append(phash)
            self._d_dh.append(dhash)
            self._d_slot.append(slot)
        self._d_arrays = None
        if merge and len(self._d_ph) >= DELTA_MERGE_ROWS:
            self.compact()

    def remove(self, work_id: str) -> bool:
        slot = self._slot_of.pop(work_id, None)
        if slot is None:
            return False
        self._slot_alive[slot] = False
        return True

    def compact(self) -> None:
        """Merge the delta into the sorted main part and drop rows of removed works."""
        ph = np.concatenate([self._ph, np.asarray(self._d_ph, dtype=np.uint64)])
        dh = np.concatenate([self._dh, np.asarray(self._d_dh, dtype=np.uint64)])
        slot = np.concatenate([self._slot, np.asarray(self._d_slot, dtype=np.int64)])
        keep = self._slot_alive[slot]
        self._ph, self._dh, self._slot = ph[keep], dh[keep], slot[keep]
        self._d_ph, self._d_dh, self._d_slot = [], [], []
        self._d_arrays = None
        self._build_tables()

    def _build_tables(self) -> None:
        self._order, self._starts = [], []
        for table in range(CHUNKS):
            keys = _chunk(self._ph, table)
            order = np.argsort(keys, kind="stable")
            starts = np.searchsorted(keys[order], np.arange((1 << CHUNK_BITS) + 1))
            self._order.append(order)
            self._starts.append(starts)

    def _delta(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._d_arrays is None:
            self._d_arrays = (
                np.asarray(self._d_ph, dtype=np.uint64),
                np.asarray(self._d_dh, dtype=np.uint64),
                np.asarray(self._d_slot, dtype=np.int64),
            )
        return self._d_arrays

    def candidate_rows(self, phash: int) -> np.ndarray:
        """Main-part rows sharing a chunk within the probe radius with ``phash`` (may repeat rows)."""
        query = np.asarray([phash], dtype=np.uint64)
        parts: list[np.ndarray] = []
        for table in range(CHUNKS):
            keys = int(_chunk(query, table)[0]) ^ self._masks
            starts = self._starts[table][keys]
            lengths = self._starts[table][keys + 1] - starts
            total = int(lengths.sum())
            if total == 0:
                continue
            # Concatenate the ranges [start, start + length) without a Python loop.
            offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
            parts.append(self._order[table][offsets + np.arange(total)])
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def _verify(
        self, phash: int, dhash: int, ph: np.ndarray, dh: np.ndarray, slots: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        pd = np.bitwise_count(ph ^ np.uint64(phash))
        dd = np.bitwise_count(dh ^ np.uint64(dhash))
        scores = image_score(pd.astype(np.float64), dd.astype(np.float64))
        ok = (pd <= self.max_phash_distance) & (scores >= self.threshold) & self._slot_alive[slots]
        return slots[ok], scores[ok]

    def query(self, fp: ImageFingerprint) -> tuple[list[Match], int]:
        """Matches for ``fp``'s whole-image hashes, best first, and the number of rows verified."""
        if fp.algorithm != IMAGE_ALGORITHM:
            raise FingerprintError("algorithm-mismatch", f"got {fp.algorithm!r}, want {IMAGE_ALGORITHM!r}")
        # Not deduplicated: a row found through two chunks is verified twice, which is cheaper than
        # np.unique (measured ~3 ms for 16k rows) and harmless, as only the best score per work is kept.
        rows = self.candidate_rows(fp.phash)
        main_slots, main_scores = self._verify(
            fp.phash, fp.dhash, self._ph[rows], self._dh[rows], self._slot[rows]
        )
        d_ph, d_dh, d_slot = self._delta()
        delta_slots, delta_scores = self._verify(fp.phash, fp.dhash, d_ph, d_dh, d_slot)
        best: dict[int, float] = {}
        for slot, score in zip(
            np.concatenate([main_slots, delta_slots]).tolist(),
            np.concatenate([main_scores, delta_scores]).tolist(),
            strict=True,
        ):
            if score > best.get(slot, -1.0):
                best[slot] = score
        matches = [
            Match(score=s, work_id=self._slot_ids[slot], method=IMAGE_METHOD) for slot, s in best.items()
        ]
        matches.sort(key=lambda m: (-m.score, m.work_id))
        return matches, len(rows) + len(d_ph)

    def items(self) -> Iterator[tuple[str, ImageFingerprint]]:
        """Rebuild each live work's fingerprint from its rows (whole image, crops, then the mirror)."""
        ph = np.concatenate([self._ph, self._delta()[0]]).tolist()
        dh = np.concatenate([self._dh, self._delta()[1]]).tolist()
        slots = np.concatenate([self._slot, self._delta()[2]]).tolist()
        rows_of: dict[int, list[tuple[int, int]]] = {}
        for p, d, s in zip(ph, dh, slots, strict=True):
            if self._slot_alive[s]:
                rows_of.setdefault(s, []).append((p, d))
        for slot, rows in rows_of.items():
            width, height, n_crops = self._slot_dims[slot]
            yield (
                self._slot_ids[slot],
                ImageFingerprint(
                    phash=rows[0][0], dhash=rows[0][1], width=width, height=height,
                    crops=tuple(rows[1 : 1 + n_crops]), mirrored=rows[1 + n_crops] if len(rows) > 1 + n_crops else None,
                ),
            )


@functools.lru_cache(maxsize=16)
def _lsh_params(threshold: float) -> tuple[int, int]:
    """Bands and rows for `threshold`, computed once per process: datasketch derives them by numerical
    integration (~0.25 s), which would otherwise be paid by every per-tenant index built at start."""
    probe = MinHashLSH(threshold=threshold, num_perm=TEXT_NUM_PERM)
    return int(probe.b), int(probe.r)


class _ContainmentIndex:
    """Inverted index of every work's containment sample: sorted (hash, slot) columns plus an unsorted
    delta, like the image index. A suspect's probe set is looked up with one ``searchsorted`` per probe
    hash; ``bincount`` over the hits gives, per work, how many of its sample hashes the page holds. That
    count over the work's sample size (below the probe's cut-off) *is* the containment estimate, so no
    separate verification step is needed. Memory: 8 bytes x sample size (256) per work."""

    def __init__(self) -> None:
        self._slot_of: dict[str, int] = {}
        self._slot_ids: list[str] = []
        self._samples: list[np.ndarray] = []
        self._alive = np.zeros(0, dtype=bool)
        self._h = np.zeros(0, dtype=np.uint32)
        self._s = np.zeros(0, dtype=np.uint32)
        self._d_h: list[np.ndarray] = []
        self._d_s: list[np.ndarray] = []
        self._d_rows = 0

    def add(self, work_id: str, sample: np.ndarray, *, merge: bool = True) -> None:
        self.remove(work_id)
        slot = len(self._slot_ids)
        self._slot_ids.append(work_id)
        self._samples.append(sample)
        self._slot_of[work_id] = slot
        if slot >= len(self._alive):
            grown = np.zeros(max(1024, 2 * len(self._alive)), dtype=bool)
            grown[: len(self._alive)] = self._alive
            self._alive = grown
        self._alive[slot] = True
        self._d_h.append(sample)
        self._d_s.append(np.full(len(sample), slot, dtype=np.uint32))
        self._d_rows += len(sample)
        if merge and self._d_rows >= DELTA_MERGE_ROWS:
            self.compact()

    def remove(self, work_id: str) -> None:
        slot = self._slot_of.pop(work_id, None)
        if slot is not None:
            self._alive[slot] = False

    def compact(self) -> None:
        h = np.concatenate([self._h, *self._d_h])
        sl = np.concatenate([self._s, *self._d_s])
        keep = self._alive[sl]
        h, sl = h[keep], sl[keep]
        order = np.argsort(h, kind="stable")
        self._h, self._s = h[order], sl[order]
        self._d_h, self._d_s, self._d_rows = [], [], 0

    def query(self, probe: np.ndarray, cutoff: int, threshold: float) -> tuple[dict[str, float], int]:
        """Works whose sample is at least ``threshold`` contained in ``probe``; and rows touched."""
        if not len(self._slot_ids):
            return {}, 0
        lo = np.searchsorted(self._h, probe, side="left")
        hi = np.searchsorted(self._h, probe, side="right")
        lengths = hi - lo
        total = int(lengths.sum())
        hits = [np.zeros(0, dtype=np.uint32)]
        if total:
            offsets = np.repeat(lo - np.cumsum(lengths) + lengths, lengths)
            hits.append(self._s[offsets + np.arange(total)])
        if self._d_rows:
            d_h = np.concatenate(self._d_h)
            d_s = np.concatenate(self._d_s)
            hits.append(d_s[np.isin(d_h, probe)])
        counts = np.bincount(np.concatenate(hits).astype(np.int64), minlength=len(self._slot_ids))
        out: dict[str, float] = {}
        for slot in np.flatnonzero(counts).tolist():
            if not self._alive[slot]:
                continue
            sample = self._samples[slot]
            denom = int(np.count_nonzero(sample.astype(np.uint64) < np.uint64(cutoff)))
            if denom and counts[slot] / denom >= threshold:
                out[self._slot_ids[slot]] = float(counts[slot] / denom)
        return out, total + self._d_rows


class _TextIndex:
    """MinHashLSH candidates verified by the MinHash Jaccard estimate, and the containment index."""

    def __init__(self, lsh_threshold: float, threshold: float, containment_threshold: float) -> None:
        self.threshold = threshold
        self.containment_threshold = containment_threshold
        self._lsh = MinHashLSH(threshold=lsh_threshold, num_perm=TEXT_NUM_PERM, params=_lsh_params(lsh_threshold))
        self._fps: dict[str, TextFingerprint] = {}
        self._contained = _ContainmentIndex()

    def __len__(self) -> int:
        return len(self._fps)

    def __contains__(self, work_id: str) -> bool:
        return work_id in self._fps

    @staticmethod
    def _lean(fp: TextFingerprint) -> LeanMinHash:
        if fp.algorithm != TEXT_ALGORITHM:
            raise FingerprintError("algorithm-mismatch", f"got {fp.algorithm!r}, want {TEXT_ALGORITHM!r}")
        return LeanMinHash(seed=TEXT_MINHASH_SEED, hashvalues=fp.array(), scheme="affine32")

    def add(self, work_id: str, fp: TextFingerprint) -> None:
        lean = self._lean(fp)
        if work_id in self._fps:
            self.remove(work_id)
        self._lsh.insert(work_id, lean, check_duplication=False)
        self._fps[work_id] = fp
        if fp.sample:
            self._contained.add(work_id, fp.sample_array())

    def add_many(self, rows: Iterable[tuple[str, TextFingerprint]]) -> None:
        """Bulk insert through datasketch's insertion session (buffers the band-table writes)."""
        with self._lsh.insertion_session() as session:
            for work_id, fp in rows:
                lean = self._lean(fp)
                if work_id in self._fps:
                    self.remove(work_id)
                session.insert(work_id, lean, check_duplication=False)
                self._fps[work_id] = fp
                if fp.sample:
                    self._contained.add(work_id, fp.sample_array(), merge=False)
        self._contained.compact()

    def remove(self, work_id: str) -> bool:
        if self._fps.pop(work_id, None) is None:
            return False
        self._lsh.remove(work_id)
        self._contained.remove(work_id)
        return True

    def query(self, fp: TextFingerprint) -> tuple[list[Match], int]:
        """Jaccard matches (LSH candidates, exact estimate) and, for a suspect with a probe set,
        containment matches; per work the higher score wins and names its method."""
        candidates = self._lsh.query(self._lean(fp))
        probe = fp.array()
        best: dict[str, Match] = {}
        for work_id in candidates:
            score = float(np.mean(self._fps[work_id].array() == probe))
            if score >= self.threshold:
                best[work_id] = Match(score=score, work_id=work_id, method=TEXT_METHOD)
        touched = len(candidates)
        if fp.probe is not None:
            contained, rows = self._contained.query(fp.probe, fp.probe_cutoff, self.containment_threshold)
            touched += rows
            for work_id, score in contained.items():
                if work_id not in best or score > best[work_id].score:
                    best[work_id] = Match(score=score, work_id=work_id, method=TEXT_CONTAINMENT_METHOD)
        matches = sorted(best.values(), key=lambda m: (-m.score, m.work_id))
        return matches, touched

    def items(self) -> Iterator[tuple[str, TextFingerprint]]:
        yield from self._fps.items()


class SimilarityIndex:
    """Registered works' fingerprints, queryable by a suspect's fingerprint.

    Images and texts live in separate sub-indexes keyed by the same ``work_id`` namespace; a work may have
    one fingerprint of each kind. Thresholds default to the values tuned by bench/bench_fingerprints.py.
    """

    def __init__(
        self,
        *,
        image_threshold: float = IMAGE_MATCH_THRESHOLD,
        max_phash_distance: int = MAX_PHASH_DISTANCE,
        text_threshold: float = TEXT_MATCH_THRESHOLD,
        text_lsh_threshold: float = TEXT_LSH_THRESHOLD,
        text_containment_threshold: float = TEXT_CONTAINMENT_THRESHOLD,
    ) -> None:
        self._images = _ImageIndex(max_phash_distance, image_threshold)
        self._texts = _TextIndex(text_lsh_threshold, text_threshold, text_containment_threshold)
        self.last_candidates = 0
        """Rows or works verified by the most recent query: shows the lookup did not scan everything."""

    def __len__(self) -> int:
        return len(self._images) + len(self._texts)

    def add(self, work_id: str, fingerprint: ImageFingerprint | TextFingerprint) -> None:
        """Register (or replace) the fingerprint of ``work_id``'s image or text."""
        if isinstance(fingerprint, ImageFingerprint):
            self._images.add(work_id, fingerprint)
        elif isinstance(fingerprint, TextFingerprint):
            self._texts.add(work_id, fingerprint)
        else:
            raise TypeError(f"not a fingerprint: {type(fingerprint).__name__}")

    def remove(self, work_id: str) -> bool:
        """Forget ``work_id`` (both kinds); returns whether anything was registered under it."""
        removed_image = self._images.remove(work_id)
        removed_text = self._texts.remove(work_id)
        return removed_image or removed_text

    def compact(self) -> None:
        """Fold recent image additions into the sorted tables and reclaim removed rows.

        Optional: the index compacts itself as the unsorted part grows; calling it after a bulk load keeps
        the first queries fast.
        """
        self._images.compact()

    def query(self, fingerprint: ImageFingerprint | TextFingerprint) -> list[Match]:
        """Registered works that ``fingerprint`` matches at or above the threshold, best first."""
        if isinstance(fingerprint, ImageFingerprint):
            matches, self.last_candidates = self._images.query(fingerprint)
        elif isinstance(fingerprint, TextFingerprint):
            matches, self.last_candidates = self._texts.query(fingerprint)
        else:
            raise TypeError(f"not a fingerprint: {type(fingerprint).__name__}")
        return matches

    def items(self) -> Iterator[tuple[str, ImageFingerprint | TextFingerprint]]:
        """Every registered (work_id, fingerprint), images first."""
        yield from self._images.items()
        yield from self._texts.items()

    @classmethod
    def from_rows(
        cls, rows: Iterable[tuple[str, ImageFingerprint | TextFingerprint]], **params: Any
    ) -> SimilarityIndex:
        """Build an index from (work_id, fingerprint) rows, e.g. streamed from the database at start."""
        index = cls(**params)
        texts: list[tuple[str, TextFingerprint]] = []
        for work_id, fingerprint in rows:
            if isinstance(fingerprint, TextFingerprint):
                texts.append((work_id, fingerprint))
            elif isinstance(fingerprint, ImageFingerprint):
                index._images.add(work_id, fingerprint, merge=False)
            else:
                raise TypeError(f"not a fingerprint: {type(fingerprint).__name__}")
        index._texts.add_many(texts)
        index.compact()
        return index

    def to_state(self) -> dict[str, Any]:
        """JSON-ready snapshot of every registered fingerprint (not of the derived lookup tables)."""
        images: dict[str, Any] = {}
        texts: dict[str, Any] = {}
        for work_id, fingerprint in self.items():
            (images if isinstance(fingerprint, ImageFingerprint) else texts)[work_id] = fingerprint.to_dict()
        return {"format": STATE_FORMAT, "images": images, "texts": texts}

    @classmethod
    def from_state(cls, state: dict[str, Any], **params: Any) -> SimilarityIndex:
        """Rebuild from :meth:`to_state` output; the lookup tables are recomputed, never trusted."""
        if state.get("format") != STATE_FORMAT:
            raise FingerprintError(
                "bad-state", f"got state format {state.get('format')!r}, want {STATE_FORMAT!r}"
            )
        rows: list[tuple[str, ImageFingerprint | TextFingerprint]] = [
            (work_id, ImageFingerprint.from_dict(d)) for work_id, d in state.get("images", {}).items()
        ]
        rows += [(work_id, TextFingerprint.from_dict(d)) for work_id, d in state.get("texts", {}).items()]
        return cls.from_rows(rows, **params)
