"""Perceptual fingerprints of registered works and of suspect copies: bytes or text in, values out.

Monitoring must recognise a registered image after a web page has resized, recompressed, cropped or
recoloured it, and a registered text after it was reflowed, re-punctuated or lightly edited. Exact digests
(SHA-256) cannot do that, so this module computes *perceptual* fingerprints whose distance grows with how
different two works look or read, not with how different their bytes are.

The module is pure: no I/O, no database, no clock. Every fingerprint carries the name of the algorithm
and parameters that produced it (``algorithm``), the same way a digest carries its hash algorithm, so two
fingerprints made with different settings are never compared by accident.

Images
    pHash (DCT of a 32x32 greyscale thumbnail, 64 bits) and dHash (horizontal gradient signs of a 9x8
    thumbnail, 64 bits), both from ``imagehash``. They survive resizing, recompression, brightness and
    colour changes, but a crop shifts the whole thumbnail and moves pHash by up to ~25 bits. A registered
    image therefore also stores the hashes of a grid of crops of itself (``crops``): a suspect that is a
    crop of the original then lands within a few bits of one of them.
Texts
    NFKC + casefold + punctuation stripped + whitespace collapsed, word shingles of ``TEXT_SHINGLE_WORDS``
    words, MinHash (``datasketch``, ``TEXT_NUM_PERM`` permutations). The fraction of equal MinHash values
    estimates the Jaccard similarity of the shingle sets.
"""

from __future__ import annotations

import hashlib
import io
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, overload

import imagehash
import numpy as np
from datasketch import MinHash
from PIL import Image, ImageOps

__all__ = [
    "DEFAULT_MAX_IMAGE_PIXELS",
    "IMAGE_ALGORITHM",
    "IMAGE_MATCH_THRESHOLD",
    "MAX_PHASH_DISTANCE",
    "TEXT_ALGORITHM",
    "TEXT_MATCH_THRESHOLD",
    "FingerprintError",
    "ImageFingerprint",
    "TextFingerprint",
    "fingerprint_image",
    "fingerprint_text",
    "image_score",
    "match",
    "match_images",
    "match_texts",
    "normalise_text",
    "text_shingles",
]


class FingerprintError(ValueError):
    """Input that cannot be fingerprinted (not an image, a decompression bomb, empty text) or fingerprints
    that cannot be compared (different algorithms).

    ``reason`` is a short machine-readable slug the API can put into a problem+json ``type``; the message
    says what was wrong in words.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail

    def diagnostics(self) -> str:
        """Human-readable explanation for the CLI."""
        return f"cannot fingerprint or compare: {self.detail} ({self.reason})"


# ---------------------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------------------

#: Largest decoded image accepted (width x height). A 40-megapixel photo is bigger than anything a web page
#: shows; a PNG that claims more is treated as a decompression bomb and refused before any pixel is decoded.
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000

#: Decoders we allow Pillow to try. Fewer plugins means less attack surface for hostile bytes from the web.
ALLOWED_IMAGE_FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF")

#: Every image is first scaled to fit this box, so crops and hashes cost the same for a 40 MP photo and a
#: thumbnail, and so the registered image and the suspect go through exactly the same resampling path.
WORKING_SIZE = 256

#: Crop grid stored with a registered image: for each trimmed fraction, the 3x3 positions (left/centre/
#: right x top/middle/bottom) of a window that keeps ``1 - fraction`` of width and height. Measured in
#: bench/bench_fingerprints.py: without it a random 10% crop moves pHash by up to 26 bits, with it by <= 10.
CROP_FRACTIONS = (0.05, 0.10)
_CROP_POSITIONS = (0.0, 0.5, 1.0)

IMAGE_ALGORITHM = "imagehash4:phash64+dhash64;L;fit256;crops=3x3@0.05,0.10"

#: Weight of pHash in the image score; dHash reacts to colour shifts on flat areas (measured: up to 26 of 64
#: bits for a mild channel scaling) so it only nudges the score.
PHASH_WEIGHT = 0.75

#: pHash distance beyond which two images are never the same work; the index's multi-index hashing is
#: sized to find every stored hash within this distance (see index.py).
MAX_PHASH_DISTANCE = 10

#: Score at or above which two images are reported as the same work (tuned in bench/bench_fingerprints.py).
IMAGE_MATCH_THRESHOLD = 0.82

IMAGE_METHOD = "image:phash+dhash"


def _hash_hex(value: int) -> str:
    return f"{value:016x}"


def _parse_hash_hex(text: object) -> int:
    if not isinstance(text, str) or not re.fullmatch(r"[0-9a-f]{16}", text):
        raise FingerprintError("bad-fingerprint", f"expected 16 lowercase hex digits, got {text!r}")
    return int(text, 16)


@dataclass(frozen=True)
class ImageFingerprint:
    """Perceptual hashes of one image.

    ``phash``/``dhash`` describe the whole image and are what a suspect is looked up by. ``crops`` are the
    (phash, dhash) pairs of the crop grid; they let a registered work be found from a cropped copy. A
    fingerprint of a suspect may carry them too (they are cheap), they are simply not used for lookup.
    """

    phash: int
    dhash: int
    width: int
    height: int
    crops: tuple[tuple[int, int], ...] = ()
    algorithm: str = IMAGE_ALGORITHM
    mirrored: tuple[int, int] | None = None
    """(phash, dhash) of the left-right mirror image, so a flipped copy is found (registered works only;
    absent from fingerprints stored before issue 19)."""

    def all_hashes(self) -> tuple[tuple[int, int], ...]:
        """The whole-image pair, the crop pairs, then the mirror pair: everything a suspect may be
        compared with."""
        return ((self.phash, self.dhash), *self.crops, *((self.mirrored,) if self.mirrored else ()))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (hashes as 16 hex digits) for the database column."""
        return {
            "algorithm": self.algorithm,
            "width": self.width,
            "height": self.height,
            "phash": _hash_hex(self.phash),
            "dhash": _hash_hex(self.dhash),
            "crops": [[_hash_hex(p), _hash_hex(d)] for p, d in self.crops],
            **({"mirrored": [_hash_hex(self.mirrored[0]), _hash_hex(self.mirrored[1])]} if self.mirrored else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageFingerprint:
        """Parse the form written by :meth:`to_dict`; refuses fingerprints of another algorithm."""
        algorithm = data.get("algorithm")
        if algorithm != IMAGE_ALGORITHM:
            raise FingerprintError(
                "algorithm-mismatch", f"got image algorithm {algorithm!r}, want {IMAGE_ALGORITHM!r}"
            )
        crops_raw = data.get("crops", [])
        if not isinstance(crops_raw, list):
            raise FingerprintError("bad-fingerprint", "crops must be a list of [phash, dhash] pairs")
        crops: list[tuple[int, int]] = []
        for pair in crops_raw:
            if not isinstance(pair, list | tuple) or len(pair) != 2:
                raise FingerprintError("bad-fingerprint", f"crop entry {pair!r} is not a [phash, dhash] pair")
            crops.append((_parse_hash_hex(pair[0]), _parse_hash_hex(pair[1])))
        width, height = data.get("width"), data.get("height")
        if not isinstance(width, int) or not isinstance(height, int):
            raise FingerprintError("bad-fingerprint", "width and height must be integers")
        mirrored_raw = data.get("mirrored")
        mirrored: tuple[int, int] | None = None
        if mirrored_raw is not None:
            if not isinstance(mirrored_raw, list) or len(mirrored_raw) != 2:
                raise FingerprintError("bad-fingerprint", "mirrored must be a [phash, dhash] pair")
            mirrored = (_parse_hash_hex(mirrored_raw[0]), _parse_hash_hex(mirrored_raw[1]))
        return cls(
            mirrored=mirrored,
            phash=_parse_hash_hex(data.get("phash")),
            dhash=_parse_hash_hex(data.get("dhash")),
            width=width,
            height=height,
            crops=tuple(crops),
        )


def _decode_image(data: bytes, max_pixels: int) -> tuple[Image.Image, int, int]:
    """Decode untrusted bytes into a small greyscale working image, refusing bombs before decoding pixels.

    ``Image.open`` reads only the header, so the pixel count is checked before ``load()`` allocates
    anything. Pillow's own global bomb check may fire first (it warns above ``Image.MAX_IMAGE_PIXELS`` and
    raises above twice that); both outcomes become the same ``FingerprintError``. We do not mutate the
    global ``Image.MAX_IMAGE_PIXELS``: that would race between threads of a worker.
    """
    try:
        opened = Image.open(io.BytesIO(data), formats=ALLOWED_IMAGE_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise FingerprintError("decompression-bomb", f"image header claims too many pixels ({e})") from e
    except Exception as e:
        # Pillow raises a zoo of types on hostile input (UnidentifiedImageError, SyntaxError, struct.error,
        # IndexError...). All of them mean the same thing to the caller.
        raise FingerprintError("not-an-image", f"bytes are not a supported image ({e})") from e
    width, height = opened.size
    if width <= 0 or height <= 0 or width * height > max_pixels:
        raise FingerprintError(
            "decompression-bomb", f"image claims {width}x{height} pixels, limit is {max_pixels} pixels"
        )
    try:
        # JPEG can decode at 1/2, 1/4, 1/8 scale for free; keeps a 40 MP photo cheap.
        opened.draft("RGB", (WORKING_SIZE * 2, WORKING_SIZE * 2))
        opened.load()
        image: Image.Image = ImageOps.exif_transpose(opened)
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            # Transparent pixels become white, as browsers show them on a default page and as a JPEG copy
            # of a transparent PNG usually looks.
            rgba = image.convert("RGBA")
            canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            image = Image.alpha_composite(canvas, rgba)
        grey = image.convert("L")
        grey.thumbnail((WORKING_SIZE, WORKING_SIZE), Image.Resampling.LANCZOS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise FingerprintError("decompression-bomb", f"image expands too far ({e})") from e
    except Exception as e:
        raise FingerprintError("not-an-image", f"image data is corrupt or truncated ({e})") from e
    return grey, width, height


def _hash_pair(image: Image.Image) -> tuple[int, int]:
    return int(str(imagehash.phash(image)), 16), int(str(imagehash.dhash(image)), 16)


def _crop_grid(image: Image.Image) -> list[Image.Image]:
    width, height = image.size
    out: list[Image.Image] = []
    for fraction in CROP_FRACTIONS:
        dx, dy = round(width * fraction), round(height * fraction)
        for fy in _CROP_POSITIONS:
            for fx in _CROP_POSITIONS:
                left, top = round(fx * dx), round(fy * dy)
                out.append(image.crop((left, top, left + width - dx, top + height - dy)))
    return out


def fingerprint_image(
    data: bytes, *, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS, with_crops: bool = True
) -> ImageFingerprint:
    """Fingerprint encoded image bytes (PNG, JPEG, GIF, WebP, BMP, TIFF).

    ``with_crops=False`` skips the crop grid: suspects are looked up by their whole-image hashes only, so a
    crawler can save the 18 extra hashes per picture. Registered works must keep the default.

    Raises ``FingerprintError`` (reason ``not-an-image`` or ``decompression-bomb``) for anything else.
    """
    grey, width, height = _decode_image(data, max_pixels)
    phash, dhash = _hash_pair(grey)
    crops = tuple(_hash_pair(c) for c in _crop_grid(grey)) if with_crops else ()
    mirrored = _hash_pair(ImageOps.mirror(grey)) if with_crops else None
    return ImageFingerprint(phash=phash, dhash=dhash, width=width, height=height, crops=crops, mirrored=mirrored)


@overload
def image_score(phash_distance: int, dhash_distance: int) -> float: ...
@overload
def image_score(phash_distance: np.ndarray, dhash_distance: np.ndarray) -> np.ndarray: ...
def image_score(phash_distance: Any, dhash_distance: Any) -> Any:
    """Similarity in [0, 1] from two Hamming distances over 64 bits; works on ints or numpy arrays.

    Shared by :func:`match_images` and the index so a pairwise check and an index lookup agree exactly.
    """
    return 1.0 - (PHASH_WEIGHT * phash_distance + (1.0 - PHASH_WEIGHT) * dhash_distance) / 64.0


def _check_same_algorithm(kind: str, a: str, b: str) -> None:
    if a != b:
        raise FingerprintError("algorithm-mismatch", f"cannot compare {kind} fingerprints {a!r} and {b!r}")


def match_images(a: ImageFingerprint, b: ImageFingerprint) -> tuple[float, str]:
    """Best score of either image's whole-image hashes against all of the other's (whole + crops).

    Symmetric, so it does not matter which argument is the registered work. Pairs further than
    ``MAX_PHASH_DISTANCE`` in pHash score 0: the index cannot find them, and a pairwise check must not
    claim what a lookup would miss.
    """
    _check_same_algorithm("image", a.algorithm, b.algorithm)
    best = 0.0
    for probe, stored in (((a.phash, a.dhash), b.all_hashes()), ((b.phash, b.dhash), a.all_hashes())):
        for phash, dhash in stored:
            pd = (probe[0] ^ phash).bit_count()
            if pd <= MAX_PHASH_DISTANCE:
                best = max(best, image_score(pd, (probe[1] ^ dhash).bit_count()))
    return best, IMAGE_METHOD


# ---------------------------------------------------------------------------------------------------------
# Texts
# ---------------------------------------------------------------------------------------------------------

#: Words per shingle. Measured in the bench: k=3 keeps 5%-edited copies above Jaccard ~0.7 while unrelated
#: licence and README paragraphs stay below ~0.1; k=5 halves the edited copies' similarity.
TEXT_SHINGLE_WORDS = 3
TEXT_NUM_PERM = 128
TEXT_MINHASH_SEED = 1
_TEXT_SCHEME = "affine32"
TEXT_ALGORITHM = (
    f"minhash-{_TEXT_SCHEME}:perm={TEXT_NUM_PERM};seed={TEXT_MINHASH_SEED};"
    f"shingle={TEXT_SHINGLE_WORDS}w;nfkc-casefold-nopunct"
)

#: Estimated Jaccard at or above which two texts are reported as the same work (tuned in the bench).
TEXT_MATCH_THRESHOLD = 0.45

TEXT_METHOD = "text:minhash-jaccard"

_HYPHEN_BREAK = re.compile(r"(\w)-[ \t]*\r?\n\s*(\w)")
_APOSTROPHES = re.compile(r"['\u2018\u2019\u02bc`´]")
_WHITESPACE = re.compile(r"\s+")

# One MinHash template: permutation generation is the expensive part of constructing a MinHash.
_TEMPLATE = MinHash(num_perm=TEXT_NUM_PERM, seed=TEXT_MINHASH_SEED, scheme=_TEXT_SCHEME, hashfunc=int)
"""Fed with the shingles' 32-bit SHA-1 values (``_sha1_32``, datasketch's own ``sha1_hash32``), hashed once
and shared with the samples; ``hashfunc=int`` passes them through, so signatures equal datasketch's
``update_batch`` on the shingle bytes (the stored algorithm name is unchanged)."""


class _PunctuationTable(dict[int, str]):
    """str.translate table: punctuation, symbols and control characters become a space, decided once
    per code point (a per-character ``unicodedata.category`` call in Python dominated big texts)."""

    def __missing__(self, cp: int) -> str:
        ch = chr(cp)
        out = " " if unicodedata.category(ch)[0] in "PSC" else ch
        if len(self) < 65_536:
            self[cp] = out
        return out


_PUNCT_TO_SPACE = _PunctuationTable()


def normalise_text(text: str) -> str:
    """Reduce text to lowercase words separated by single spaces.

    Why each step: NFKC folds ligatures, full-width forms and compatibility characters a republisher's
    editor may introduce; casefold is Unicode-aware lowercasing; words hyphenated across a line end are
    rejoined so reflowing does not split them; apostrophes are deleted (``don't``/``don’t``/``dont`` agree)
    and all other punctuation and symbols become spaces; whitespace runs collapse, so line breaks vanish.
    """
    text = unicodedata.normalize("NFKC", text)
    text = _HYPHEN_BREAK.sub(r"\1\2", text)
    text = _APOSTROPHES.sub("", text.casefold())
    text = text.translate(_PUNCT_TO_SPACE)
    return _WHITESPACE.sub(" ", text).strip()


def text_shingles(normalised: str, k: int = TEXT_SHINGLE_WORDS) -> set[str]:
    """Distinct runs of ``k`` consecutive words; a text shorter than ``k`` words is one shingle."""
    words = normalised.split(" ") if normalised else []
    if not words:
        return set()
    if len(words) < k:
        return {" ".join(words)}
    return {" ".join(words[i : i + k]) for i in range(len(words) - k + 1)}


#: Containment sketch ("second sketch"): the ``CONTAINMENT_SAMPLE`` smallest distinct 32-bit hashes of the
#: text's ``CONTAINMENT_SHINGLE_WORDS``-word shingles (``_window_hashes``: BLAKE2b per word, combined in
#: numpy; a bottom-k sample, Broder 1997). The fraction of a
#: work's sample found among a page's shingle hashes estimates how much of the *work* is in the page
#: (containment), which Jaccard cannot: a work quoted whole inside four times as much boilerplate has
#: Jaccard ~0.25 but containment 1.0. Five-word shingles, not three: measured on the licence texts in
#: /usr/share/common-licenses, three-word shingles put 44% of GPL-2 "in" GPL-3 (shared stock phrases), five
#: words 35%, which leaves room under a 40%-excerpt threshold (bench/bench_fingerprints.py).
CONTAINMENT_SHINGLE_WORDS = 5
CONTAINMENT_SAMPLE = 256
CONTAINMENT_ALGORITHM = (
    f"bottomk{CONTAINMENT_SAMPLE}-blake2b-wordpoly-32:shingle={CONTAINMENT_SHINGLE_WORDS}w;nfkc-casefold-nopunct"
)

#: Containment at or above which a work is reported as (partly) copied in a page (tuned in the bench).
TEXT_CONTAINMENT_THRESHOLD = 0.4
TEXT_CONTAINMENT_METHOD = "text:containment"

#: A suspect page keeps at most this many distinct shingle hashes for the containment lookup (16 MB). A
#: bigger text keeps only the hashes below a value cut-off that halves until it fits; works are then
#: judged on the part of their sample below the same cut-off (consistent sub-sampling), so memory stays
#: bounded for any upload while containment stays an unbiased estimate.
MAX_PROBE_HASHES = 4 * 1024 * 1024

#: Characters of text normalised and hashed per step; bounds the working set of :func:`fingerprint_text`
#: (the MinHash update of one step is ``shingles x TEXT_NUM_PERM`` uint32 values: ~4 MB at 8,192 shingles).
TEXT_CHUNK_CHARS = 1 << 20
_MINHASH_BATCH = 8192
_COUNT_SAMPLE = 4096  # bottom-k used to count distinct shingles (exact below 4,096, estimated above)
_U32 = np.uint64(1 << 32)


def _sha1_32(shingle: str) -> int:
    # The hash datasketch's MinHash applies to bytes (sha1_hash32): the first four bytes, little-endian.
    return int.from_bytes(hashlib.sha1(shingle.encode("utf-8"), usedforsecurity=False).digest()[:4], "little")


_WORD_CACHE_MAX = 1 << 16
# Odd multipliers (from the SHA-256 of "depository containment"), one per word position of a shingle.
_POSITION_MULT = np.asarray([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93,
                             0xFF51AFD7ED558CCD], dtype=np.uint64)


def _fmix64(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


def _window_hashes(words: np.ndarray, k: int) -> np.ndarray:
    """32-bit hash of every run of ``k`` consecutive word hashes: position-weighted sum (mod 2^64, so word
    order matters), MurmurHash3's 64-bit finaliser, high half. Vectorised: no per-shingle Python work."""
    n = len(words) - k + 1
    acc = np.zeros(n, dtype=np.uint64)
    for j in range(k):
        acc += words[j : j + n] * _POSITION_MULT[j]
    return (_fmix64(acc) >> np.uint64(32)).astype(np.uint32)


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values by sort + neighbour compare. numpy >= 2.3's ``np.unique`` uses a hash table
    for integers, which for millions of values cost ~10x the array in memory (measured at 100 MB)."""
    values = np.sort(values)
    if len(values) < 2:
        return values
    keep = np.empty(len(values), dtype=bool)
    keep[0] = True
    np.not_equal(values[1:], values[:-1], out=keep[1:])
    return values[keep]


def _below(values: np.ndarray, cutoff: int) -> np.ndarray:
    """``values`` (uint32) under ``cutoff`` (which may be 2^32, i.e. all of them) without a uint64 copy."""
    return values if cutoff >= 1 << 32 else values[values < np.uint32(cutoff)]


def _bottom_k(current: np.ndarray, new: np.ndarray, k: int) -> np.ndarray:
    merged = np.union1d(current, new)
    return merged[:k]


@dataclass(frozen=True)
class TextFingerprint:
    """MinHash signature of a text's shingle set, the set's size, and the containment sample.

    ``sample`` (sorted bottom-k hashes, see ``CONTAINMENT_ALGORITHM``) is empty for fingerprints stored
    before it existed: those works are matched by Jaccard only. ``probe`` is not stored: it is the full
    (or consistently sub-sampled, below ``probe_cutoff``) set of a *suspect* text's containment hashes,
    used by the index to measure how much of each registered work the suspect holds.
    """

    hashvalues: tuple[int, ...]
    shingle_count: int
    algorithm: str = TEXT_ALGORITHM
    sample: tuple[int, ...] = ()
    probe: np.ndarray | None = field(default=None, repr=False, compare=False)
    probe_cutoff: int = 1 << 32
    _array: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.hashvalues) != TEXT_NUM_PERM:
            raise FingerprintError(
                "bad-fingerprint", f"got {len(self.hashvalues)} MinHash values, want {TEXT_NUM_PERM}"
            )
        if len(self.sample) > CONTAINMENT_SAMPLE:
            raise FingerprintError("bad-fingerprint", f"containment sample longer than {CONTAINMENT_SAMPLE}")
        object.__setattr__(self, "_array", np.asarray(self.hashvalues, dtype=np.uint32))

    def array(self) -> np.ndarray:
        """The signature as a uint32 array (what datasketch stores), for vectorised comparison."""
        return self._array

    def sample_array(self) -> np.ndarray:
        return np.asarray(self.sample, dtype=np.uint32)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: the signature is big-endian uint32 values as one hex string (1,024 digits);
        the containment sample likewise, under ``containment``."""
        out: dict[str, Any] = {
            "algorithm": self.algorithm,
            "shingle_count": self.shingle_count,
            "hashvalues": self._array.astype(">u4").tobytes().hex(),
        }
        if self.sample:
            out["containment"] = {
                "algorithm": CONTAINMENT_ALGORITHM,
                "sample": self.sample_array().astype(">u4").tobytes().hex(),
            }
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TextFingerprint:
        """Parse the form written by :meth:`to_dict`; refuses fingerprints of another algorithm."""
        algorithm = data.get("algorithm")
        if algorithm != TEXT_ALGORITHM:
            raise FingerprintError(
                "algorithm-mismatch", f"got text algorithm {algorithm!r}, want {TEXT_ALGORITHM!r}"
            )
        raw, count = data.get("hashvalues"), data.get("shingle_count")
        if not isinstance(raw, str) or not re.fullmatch(f"[0-9a-f]{{{8 * TEXT_NUM_PERM}}}", raw):
            raise FingerprintError("bad-fingerprint", f"hashvalues must be {8 * TEXT_NUM_PERM} hex digits")
        if not isinstance(count, int) or count < 1:
            raise FingerprintError("bad-fingerprint", "shingle_count must be a positive integer")
        values = np.frombuffer(bytes.fromhex(raw), dtype=">u4")
        sample: tuple[int, ...] = ()
        containment = data.get("containment")
        if containment is not None:
            if not isinstance(containment, dict) or containment.get("algorithm") != CONTAINMENT_ALGORITHM:
                raise FingerprintError("algorithm-mismatch", f"containment sketch is not {CONTAINMENT_ALGORITHM!r}")
            hexed = containment.get("sample")
            if not isinstance(hexed, str) or not re.fullmatch(r"(?:[0-9a-f]{8})+", hexed):
                raise FingerprintError("bad-fingerprint", "containment sample must be 8-hex-digit groups")
            sample = tuple(int(v) for v in np.frombuffer(bytes.fromhex(hexed), dtype=">u4"))
            if list(sample) != sorted(set(sample)):
                raise FingerprintError("bad-fingerprint", "containment sample must be sorted and distinct")
        return cls(hashvalues=tuple(int(v) for v in values), shingle_count=count, sample=sample)


def _split_chunks(chunks: Iterable[str]) -> Iterator[str]:
    """Re-cut a stream of text at whitespace, never inside a word or a line-end hyphenation, so that
    normalising piece by piece gives the same words as normalising the whole."""
    carry = ""
    for chunk in chunks:
        text = carry + chunk
        cut = len(text)
        while cut > 0:
            ws = max(text.rfind(c, 0, cut) for c in " \n\t\r")
            if ws <= 0:
                cut = -1
                break
            start = ws
            while start > 0 and text[start - 1].isspace():
                start -= 1
            if start > 0 and text[start - 1] != "-":
                cut = start
                break
            cut = start
        if cut <= 0:
            if len(text) > 4 * TEXT_CHUNK_CHARS:  # no usable whitespace in megabytes: cut anyway
                yield text
                carry = ""
            else:
                carry = text
            continue
        yield text[:cut]
        carry = text[cut:]
    if carry:
        yield carry


class _TextSketcher:
    """Incremental MinHash + counting sample + containment sample (+ optional probe set) over words."""

    def __init__(self, keep_probe: bool) -> None:
        self.minhash = _TEMPLATE.copy()
        self.count_sample = np.zeros(0, dtype=np.uint32)
        self.sample = np.zeros(0, dtype=np.uint32)
        self.keep_probe = keep_probe
        self.probe = np.zeros(0, dtype=np.uint32)
        self.cutoff = 1 << 32
        self._pending: list[np.ndarray] = []
        self._pending_rows = 0
        self._word_cache: dict[str, int] = {}
        self.words: list[str] = []  # tail of the previous step (shingles spanning steps)
        self.any_words = False

    def feed(self, words: list[str]) -> None:
        if not words:
            return
        self.any_words = True
        tail = max(TEXT_SHINGLE_WORDS, CONTAINMENT_SHINGLE_WORDS) - 1
        seq = self.words + words
        first = len(self.words)  # shingles starting before `first` were already counted
        self._add(seq, TEXT_SHINGLE_WORDS, first)
        self._add_containment(seq, first)
        self.words = seq[-tail:]

    def _add(self, seq: list[str], k: int, first: int) -> None:
        # A shingle is identified by its last word; those ending at positions < first were seen already.
        lo = max(first - k + 1, 0)
        for start in range(lo, max(len(seq) - k + 1, 0), _MINHASH_BATCH):
            stop = min(start + _MINHASH_BATCH, len(seq) - k + 1)
            hashes = [_sha1_32(" ".join(seq[i : i + k])) for i in range(start, stop) if i + k > first]
            if not hashes:
                continue
            arr = _sorted_unique(np.asarray(hashes, dtype=np.uint32))
            self.minhash.update_batch(arr.tolist())
            self.count_sample = _bottom_k(self.count_sample, arr, _COUNT_SAMPLE)

    def _word_hashes(self, words: list[str]) -> np.ndarray:
        cache = self._word_cache
        if len(cache) > _WORD_CACHE_MAX:
            cache.clear()
        out = np.empty(len(words), dtype=np.uint64)
        for i, w in enumerate(words):
            h = cache.get(w)
            if h is None:
                h = cache[w] = int.from_bytes(hashlib.blake2b(w.encode("utf-8"), digest_size=8).digest(), "little")
            out[i] = h
        return out

    def _add_containment(self, seq: list[str], first: int) -> None:
        k = CONTAINMENT_SHINGLE_WORDS
        lo = max(first - k + 1, 0)
        if len(seq) - k + 1 <= lo:
            return
        arr = _sorted_unique(_window_hashes(self._word_hashes(seq[lo:]), k))
        self.sample = _bottom_k(self.sample, arr, CONTAINMENT_SAMPLE)
        if self.keep_probe:
            self._add_probe(arr)

    def _add_probe(self, arr: np.ndarray) -> None:
        # Pending batches are folded in when they reach a quarter of the cap: linear time, and at most
        # 1.25 x MAX_PROBE_HASHES values (+ one np.unique's temporaries) held at once.
        self._pending.append(_below(arr, self.cutoff))
        self._pending_rows += len(self._pending[-1])
        if self._pending_rows >= MAX_PROBE_HASHES // 4:
            self._fold_probe()

    def _fold_probe(self) -> None:
        if self._pending:
            self.probe = _sorted_unique(np.concatenate([self.probe, *self._pending]))
            self._pending, self._pending_rows = [], 0
        while len(self.probe) > MAX_PROBE_HASHES:
            self.cutoff //= 2
            # Sorted: the values below the cut-off are a prefix, so this is a view, not a copy.
            self.probe = self.probe[: int(np.searchsorted(self.probe, np.uint32(self.cutoff)))].copy()

    def finish(self) -> TextFingerprint:
        if not self.any_words:
            raise FingerprintError("empty-text", "text contains no words")
        # Texts shorter than k words are one shingle (the whole text), as text_shingles() has it.
        if not self.count_sample.size:
            self.minhash.update_batch([_sha1_32(" ".join(self.words))])
            self.count_sample = np.asarray([_sha1_32(" ".join(self.words))], dtype=np.uint32)
        if not self.sample.size:
            whole = _window_hashes(self._word_hashes(self.words), len(self.words))
            self.sample = whole
            if self.keep_probe:
                self._add_probe(whole)
        if self.keep_probe:
            self._fold_probe()
        n = len(self.count_sample)
        if n < _COUNT_SAMPLE:
            count = n
        else:  # KMV estimate of the number of distinct shingles
            count = round((_COUNT_SAMPLE - 1) * float(_U32) / (float(self.count_sample[-1]) + 1.0))
        return TextFingerprint(
            hashvalues=tuple(int(v) for v in self.minhash.hashvalues),
            shingle_count=max(count, 1),
            sample=tuple(int(v) for v in self.sample),
            probe=self.probe if self.keep_probe else None,
            probe_cutoff=self.cutoff,
        )


def fingerprint_text_stream(chunks: Iterable[str], *, probe: bool = False) -> TextFingerprint:
    """Fingerprint text arriving in pieces (a decoded upload read a megabyte at a time).

    Memory is bounded by the piece size, not the text: shingles are hashed and folded into the MinHash
    and the bottom-k samples step by step, never collected. ``probe=True`` (suspects) also keeps the
    containment hash set, capped at ``MAX_PROBE_HASHES``. Same result as :func:`fingerprint_text` on the
    joined text.
    """
    sketcher = _TextSketcher(probe)
    for piece in _split_chunks(chunks):
        normalised = normalise_text(piece)
        if normalised:
            sketcher.feed(normalised.split(" "))
    return sketcher.finish()


def _pieces(text: str) -> Iterator[str]:
    for i in range(0, len(text), TEXT_CHUNK_CHARS):
        yield text[i : i + TEXT_CHUNK_CHARS]


def fingerprint_text(text: str, *, probe: bool = False) -> TextFingerprint:
    """Fingerprint plain text (a registered document, or text extracted from a suspect HTML page).

    Raises ``FingerprintError("empty-text", ...)`` when nothing word-like is left after normalisation:
    an empty signature would otherwise match every other empty one. ``probe=True`` keeps the suspect's
    containment hash set (see :class:`TextFingerprint`).
    """
    return fingerprint_text_stream(_pieces(text), probe=probe)


def containment(work: TextFingerprint, suspect: TextFingerprint) -> float | None:
    """Estimated fraction of ``work``'s five-word shingles that occur in ``suspect`` (needs the suspect's
    probe set); ``None`` when either side lacks what is needed (an old fingerprint without a sample)."""
    if suspect.probe is None or not work.sample:
        return None
    sample = _below(work.sample_array(), suspect.probe_cutoff)
    if not sample.size:
        return None
    return float(np.isin(sample, suspect.probe, assume_unique=True).mean())


def match_texts(a: TextFingerprint, b: TextFingerprint) -> tuple[float, str]:
    """Estimated Jaccard similarity of the two shingle sets (fraction of equal MinHash values), or, when
    ``b`` is a suspect with a probe set and ``a`` a work with a sample, the larger of that and the
    containment of ``a`` in ``b`` (method ``text:containment`` when containment decides)."""
    _check_same_algorithm("text", a.algorithm, b.algorithm)
    jaccard = float(np.mean(a.array() == b.array()))
    contained = containment(a, b)
    if contained is not None and contained >= TEXT_CONTAINMENT_THRESHOLD and contained > jaccard:
        return contained, TEXT_CONTAINMENT_METHOD
    return jaccard, TEXT_METHOD


def match(a: ImageFingerprint | TextFingerprint, b: ImageFingerprint | TextFingerprint) -> tuple[float, str]:
    """Score two fingerprints of the same kind; ``(score in [0, 1], method name)``."""
    if isinstance(a, ImageFingerprint) and isinstance(b, ImageFingerprint):
        return match_images(a, b)
    if isinstance(a, TextFingerprint) and isinstance(b, TextFingerprint):
        return match_texts(a, b)
    raise FingerprintError("kind-mismatch", f"cannot compare {type(a).__name__} with {type(b).__name__}")
