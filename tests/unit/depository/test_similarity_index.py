"""The index must find what a linear scan finds, while looking at only a small part of the works."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from depository.monitoring.fingerprint import (
    IMAGE_MATCH_THRESHOLD,
    MAX_PHASH_DISTANCE,
    TEXT_NUM_PERM,
    FingerprintError,
    ImageFingerprint,
    TextFingerprint,
    fingerprint_image,
    fingerprint_text,
    match,
)
from depository.monitoring.index import STATE_FORMAT, Match, SimilarityIndex

try:  # tests/unit/depository is a package now; stay importable if its __init__.py goes away
    from .test_fingerprint import ARTICLE, UNRELATED, encode, make_picture
except ImportError:
    from test_fingerprint import ARTICLE, UNRELATED, encode, make_picture  # type: ignore[no-redef]

N_RANDOM = 1000


def random_image_fp(rng: np.random.Generator) -> ImageFingerprint:
    h = rng.integers(0, 2**64 - 1, size=(19, 2), dtype=np.uint64, endpoint=True).tolist()
    return ImageFingerprint(h[0][0], h[0][1], 640, 480, tuple((p, d) for p, d in h[1:]))


def random_text_fp(rng: np.random.Generator) -> TextFingerprint:
    values = rng.integers(0, 2**32 - 1, size=TEXT_NUM_PERM, dtype=np.uint32, endpoint=True)
    return TextFingerprint(tuple(values.tolist()), 100)


def flip_bits(value: int, n: int, rng: np.random.Generator) -> int:
    for bit in rng.choice(64, size=n, replace=False):
        value ^= 1 << int(bit)
    return value


@pytest.fixture(scope="module")
def target_image() -> tuple[ImageFingerprint, ImageFingerprint]:
    """(registered fingerprint, fingerprint of a resized, brightened JPEG copy)."""
    img = make_picture(42)
    copy = ImageEnhance.Brightness(img.resize((300, 225))).enhance(1.15)
    return fingerprint_image(encode(img)), fingerprint_image(encode(copy, "JPEG", 50), with_crops=False)


@pytest.fixture
def populated(target_image: tuple[ImageFingerprint, ImageFingerprint]) -> SimilarityIndex:
    rng = np.random.default_rng(3)
    rows: list[tuple[str, ImageFingerprint | TextFingerprint]] = []
    for i in range(N_RANDOM):
        rows.append((f"img-{i}", random_image_fp(rng)))
        rows.append((f"txt-{i}", random_text_fp(rng)))
    rows.append(("target-image", target_image[0]))
    rows.append(("target-text", fingerprint_text(ARTICLE)))
    return SimilarityIndex.from_rows(rows)


def test_image_query_finds_target_among_random_works(
    populated: SimilarityIndex, target_image: tuple[ImageFingerprint, ImageFingerprint]
) -> None:
    matches = populated.query(target_image[1])
    assert [m.work_id for m in matches] == ["target-image"]
    assert matches[0].score >= IMAGE_MATCH_THRESHOLD and matches[0].method == "image:phash+dhash"
    # 1,001 works x 19 stored hashes: the lookup verified a small fraction of them.
    assert populated.last_candidates < 0.05 * 19 * (N_RANDOM + 1)


def test_text_query_finds_target_among_random_works(populated: SimilarityIndex) -> None:
    copy = fingerprint_text(ARTICLE.replace("\n", " ").replace(",", "").replace("museum", "gallery"))
    matches = populated.query(copy)
    assert [m.work_id for m in matches] == ["target-text"]
    assert matches[0].method == "text:minhash-jaccard"
    assert populated.last_candidates < 10
    assert populated.query(fingerprint_text(UNRELATED)) == []


def test_unrelated_image_matches_nothing(populated: SimilarityIndex) -> None:
    assert populated.query(fingerprint_image(encode(make_picture(43)), with_crops=False)) == []


def test_recent_additions_are_found_before_compaction(
    populated: SimilarityIndex, target_image: tuple[ImageFingerprint, ImageFingerprint]
) -> None:
    populated.add("late", target_image[0])  # lands in the unsorted delta part
    assert {m.work_id for m in populated.query(target_image[1])} == {"target-image", "late"}
    populated.compact()
    assert {m.work_id for m in populated.query(target_image[1])} == {"target-image", "late"}


def test_remove_and_replace(
    populated: SimilarityIndex, target_image: tuple[ImageFingerprint, ImageFingerprint]
) -> None:
    assert populated.remove("target-image") is True
    assert populated.remove("target-image") is False
    assert populated.query(target_image[1]) == []
    populated.add("target-image", target_image[0])
    populated.add("target-image", target_image[0])  # replacing must not duplicate
    assert [m.work_id for m in populated.query(target_image[1])] == ["target-image"]
    assert populated.remove("target-text") is True
    assert populated.query(fingerprint_text(ARTICLE)) == []
    populated.compact()
    assert [m.work_id for m in populated.query(target_image[1])] == ["target-image"]


def test_state_round_trip_through_json(
    populated: SimilarityIndex, target_image: tuple[ImageFingerprint, ImageFingerprint]
) -> None:
    populated.remove("img-7")
    populated.add("late", random_image_fp(np.random.default_rng(99)))  # still in the delta part
    state = json.loads(json.dumps(populated.to_state()))
    assert state["format"] == STATE_FORMAT
    rebuilt = SimilarityIndex.from_state(state)
    assert len(rebuilt) == len(populated) == 2 * N_RANDOM + 2
    assert dict(rebuilt.items()) == dict(populated.items())
    assert "img-7" not in dict(rebuilt.items())
    assert rebuilt.query(target_image[1]) == populated.query(target_image[1])
    assert rebuilt.query(fingerprint_text(ARTICLE)) == populated.query(fingerprint_text(ARTICLE))
    with pytest.raises(FingerprintError):
        SimilarityIndex.from_state({**state, "format": "other/1"})


@pytest.mark.parametrize("compact", [True, False])
def test_multi_index_hashing_agrees_with_linear_scan(compact: bool) -> None:
    """Reference check: every stored hash within MAX_PHASH_DISTANCE bits whose score clears the threshold
    is returned, by either the sorted tables or the delta scan, for distances up to the guarantee."""
    rng = np.random.default_rng(11)
    index = SimilarityIndex()
    works = {f"w{i}": random_image_fp(rng) for i in range(300)}
    query_phash = int(rng.integers(0, 2**63))
    query_dhash = int(rng.integers(0, 2**63))
    # Plant works whose crop hash lies at every distance 0..MAX_PHASH_DISTANCE + 2 from the query.
    for d in range(MAX_PHASH_DISTANCE + 3):
        base = random_image_fp(rng)
        crops = list(base.crops)
        crops[d % len(crops)] = (flip_bits(query_phash, d, rng), flip_bits(query_dhash, d // 3, rng))
        works[f"planted-{d}"] = ImageFingerprint(base.phash, base.dhash, 10, 10, tuple(crops))
    for work_id, fp in works.items():
        index.add(work_id, fp)
    if compact:
        index.compact()
    probe = ImageFingerprint(query_phash, query_dhash, 10, 10)
    expected = []
    for work_id, fp in works.items():
        score, method = match(probe, fp)
        if score >= IMAGE_MATCH_THRESHOLD:
            expected.append(Match(work_id, score, method))
    expected.sort(key=lambda m: (-m.score, m.work_id))
    got = index.query(probe)
    assert [(m.work_id, round(m.score, 9)) for m in got] == [(m.work_id, round(m.score, 9)) for m in expected]
    assert {f"planted-{d}" for d in range(4)} <= {m.work_id for m in got}


def test_index_rejects_foreign_algorithms() -> None:
    index = SimilarityIndex()
    fp = ImageFingerprint(1, 2, 3, 4, algorithm="other")
    with pytest.raises(FingerprintError):
        index.add("x", fp)
    with pytest.raises(TypeError):
        index.add("x", "not a fingerprint")  # type: ignore[arg-type]


def test_decoded_image_round_trips_through_index(
    target_image: tuple[ImageFingerprint, ImageFingerprint],
) -> None:
    """A PNG->JPEG->PNG chain of the registered image still resolves through a rebuilt index."""
    img = make_picture(42)
    twice = encode(Image.open(io.BytesIO(encode(img, "JPEG", 70))))
    index = SimilarityIndex.from_rows([("target-image", target_image[0])])
    assert [m.work_id for m in index.query(fingerprint_image(twice))] == ["target-image"]
