"""Fingerprints must survive the edits a republisher makes and must not confuse unrelated works."""

from __future__ import annotations

import io
import struct
import time
import tracemalloc
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageFont

from depository.monitoring.fingerprint import (
    IMAGE_MATCH_THRESHOLD,
    TEXT_MATCH_THRESHOLD,
    FingerprintError,
    ImageFingerprint,
    TextFingerprint,
    fingerprint_image,
    fingerprint_text,
    match,
    match_images,
    normalise_text,
)


def make_picture(seed: int) -> Image.Image:
    """A deterministic picture: gradient, textured noise, shapes and a caption."""
    rng = np.random.default_rng(seed)
    w, h = 480, 360
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    c0, c1 = rng.random(3) * 255, rng.random(3) * 255
    t = (xx / w * rng.random() + yy / h * rng.random())[..., None]
    t /= t.max()
    coarse = Image.fromarray((rng.random((12, 16)) * 255).astype(np.uint8)).resize(
        (w, h), Image.Resampling.BICUBIC
    )
    base = (c0 * (1 - t) + c1 * t) * (0.6 + np.asarray(coarse, np.float32)[..., None] / 400)
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        x0, y0 = int(rng.integers(0, w - 60)), int(rng.integers(0, h - 60))
        box = (x0, y0, x0 + int(rng.integers(40, 200)), y0 + int(rng.integers(40, 150)))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    draw.text((20, h - 50), f"WORK {seed}", fill=(255, 255, 255), font=ImageFont.load_default(size=28))
    return img


def encode(img: Image.Image, fmt: str = "PNG", quality: int = 90) -> bytes:
    buf = io.BytesIO()
    (img.convert("RGB") if fmt == "JPEG" else img).save(buf, fmt, quality=quality)
    return buf.getvalue()


def _gain(img: Image.Image) -> Image.Image:
    r, g, b = img.split()
    return Image.merge(
        "RGB", (r.point(lambda v: min(255, int(v * 1.15))), g.point(lambda v: int(v * 0.88)), b)
    )


TRANSFORMS: dict[str, Callable[[Image.Image], bytes]] = {
    "resize-0.3": lambda im: encode(im.resize((144, 108), Image.Resampling.BILINEAR)),
    "resize-2.0": lambda im: encode(im.resize((960, 720), Image.Resampling.BICUBIC)),
    "jpeg-q30": lambda im: encode(im, "JPEG", 30),
    "jpeg-q90": lambda im: encode(im, "JPEG", 90),
    "crop-10%-left-top": lambda im: encode(im.crop((48, 36, 480, 360))),
    "crop-10%-split": lambda im: encode(im.crop((12, 30, 447, 354))),
    "crop-5%-centre": lambda im: encode(im.crop((12, 9, 468, 351))),
    "brightness+20%": lambda im: encode(ImageEnhance.Brightness(im).enhance(1.2)),
    "brightness-20%": lambda im: encode(ImageEnhance.Brightness(im).enhance(0.8)),
    "colour-gain": lambda im: encode(_gain(im)),
    "saturation": lambda im: encode(ImageEnhance.Color(im).enhance(0.5)),
    "combined": lambda im: encode(
        ImageEnhance.Brightness(im.crop((30, 0, 470, 340)).resize((220, 170))).enhance(1.15), "JPEG", 40
    ),
}

SEEDS = (1, 2, 3)


@pytest.fixture(scope="module")
def originals() -> dict[int, tuple[Image.Image, ImageFingerprint]]:
    out = {}
    for seed in SEEDS:
        img = make_picture(seed)
        out[seed] = (img, fingerprint_image(encode(img, "PNG")))
    return out


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
@pytest.mark.parametrize("seed", SEEDS)
def test_transformed_copy_matches_original_and_not_unrelated(
    originals: dict[int, tuple[Image.Image, ImageFingerprint]], seed: int, name: str
) -> None:
    img, registered = originals[seed]
    copy = fingerprint_image(TRANSFORMS[name](img), with_crops=False)
    score, method = match(registered, copy)
    assert method == "image:phash+dhash"
    assert score >= IMAGE_MATCH_THRESHOLD, f"{name} copy of {seed} scored {score:.3f}"
    for other_seed, (_, other) in originals.items():
        if other_seed != seed:
            other_score, _ = match(other, copy)
            assert other_score < IMAGE_MATCH_THRESHOLD, f"{name} copy of {seed} matched {other_seed}"


def test_png_to_jpeg_and_back_match(originals: dict[int, tuple[Image.Image, ImageFingerprint]]) -> None:
    img, _ = originals[1]
    registered_jpeg = fingerprint_image(encode(img, "JPEG", 85))
    as_png = encode(Image.open(io.BytesIO(encode(img, "JPEG", 85))))
    assert match_images(registered_jpeg, fingerprint_image(as_png))[0] >= IMAGE_MATCH_THRESHOLD


def test_transparent_png_matches_its_jpeg_on_white() -> None:
    img = make_picture(9).convert("RGBA")
    alpha = Image.new("L", img.size, 255)
    ImageDraw.Draw(alpha).rectangle((0, 0, 80, 360), fill=0)
    img.putalpha(alpha)
    flattened = Image.alpha_composite(Image.new("RGBA", img.size, (255, 255, 255, 255)), img)
    assert match(fingerprint_image(encode(img)), fingerprint_image(encode(flattened, "JPEG", 60)))[0] >= 0.95


def test_exif_orientation_is_applied(originals: dict[int, tuple[Image.Image, ImageFingerprint]]) -> None:
    img, registered = originals[2]
    # A camera stores pixels rotated and says so in EXIF Orientation=6 (rotate 90 CW to display).
    stored = img.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    stored.save(buf, "JPEG", quality=90, exif=exif.tobytes())
    assert match(registered, fingerprint_image(buf.getvalue()))[0] >= IMAGE_MATCH_THRESHOLD


def test_fingerprint_dict_round_trip(originals: dict[int, tuple[Image.Image, ImageFingerprint]]) -> None:
    _, fp = originals[1]
    data = fp.to_dict()
    assert len(data["crops"]) == 18 and len(data["phash"]) == 16
    assert ImageFingerprint.from_dict(data) == fp
    with pytest.raises(FingerprintError) as err:
        ImageFingerprint.from_dict({**data, "algorithm": "imagehash4:phash256"})
    assert err.value.reason == "algorithm-mismatch"
    with pytest.raises(FingerprintError):
        ImageFingerprint.from_dict({**data, "phash": "xyz"})


def test_non_image_named_jpg_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"<!doctype html><html><body>404 Not Found</body></html>")
    with pytest.raises(FingerprintError) as err:
        fingerprint_image(path.read_bytes())
    assert err.value.reason == "not-an-image"


def test_truncated_image_is_refused(originals: dict[int, tuple[Image.Image, ImageFingerprint]]) -> None:
    data = encode(originals[1][0], "JPEG", 90)
    with pytest.raises(FingerprintError) as err:
        fingerprint_image(data[: len(data) // 3])
    assert err.value.reason == "not-an-image"


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height RGB pixels, followed by a tiny IDAT and IEND."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(("width", "height"), [(100_000, 100_000), (8_000, 8_000)])
def test_decompression_bomb_is_refused_quickly_without_allocating(width: int, height: int) -> None:
    # 100000^2 trips Pillow's own hard limit; 8000^2 (64 MP) is under it but over ours (40 MP).
    data = _png_header_only(width, height)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(FingerprintError) as err:
            fingerprint_image(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert err.value.reason == "decompression-bomb"
    assert time.perf_counter() - started < 1.0
    assert peak < 5_000_000


def test_max_pixels_is_per_call(originals: dict[int, tuple[Image.Image, ImageFingerprint]]) -> None:
    data = encode(originals[1][0])
    with pytest.raises(FingerprintError):
        fingerprint_image(data, max_pixels=1000)
    assert fingerprint_image(data).width == 480


# ---------------------------------------------------------------------------------------------------------
# Texts
# ---------------------------------------------------------------------------------------------------------

ARTICLE = """The museum's new wing opened on Saturday after four years of construction. Visitors queued
along the river from early morning, and by noon the curators had counted more than six thousand guests.
The building, designed by a small studio from Porto, uses reclaimed brick from the old warehouse that
stood on the site; its long galleries are lit from above through narrow slits in the roof. Critics have
praised the restraint of the design, although some residents complained about the loss of the market
square that used to fill the space on weekends. The first exhibition brings together paintings, letters
and photographs of the harbour between 1880 and 1930, many of them shown for the first time. A second
show, on the shipbuilders' families, follows in the spring. Entry is free for children under twelve and
for residents of the city on the first Sunday of each month, the director said in her opening speech."""

UNRELATED = """Preheat the oven to two hundred degrees. Mix the flour, salt and yeast in a large bowl, then
add warm water and olive oil and knead the dough for ten minutes until it is smooth and elastic. Cover it
with a damp towel and leave it to rise in a warm place for an hour, or until it has doubled in size.
Knock it back, shape it into a round loaf, slash the top with a sharp knife and bake for thirty-five
minutes, until the crust is golden and the loaf sounds hollow when tapped underneath. Let it cool on a
wire rack before slicing, otherwise the crumb will be gummy. The same dough makes excellent pizza bases:
divide it into four, roll each thinly and bake on a hot stone for eight minutes with your toppings."""


def _edit_5_percent(text: str) -> str:
    words = text.split()
    for i in range(0, len(words), 20):  # every 20th word: 5%
        words[i] = "banana"
    return " ".join(words)


TEXT_TRANSFORMS: dict[str, Callable[[str], str]] = {
    "reflow": lambda t: "\n".join(" ".join(t.split()[i : i + 7]) for i in range(0, len(t.split()), 7)),
    "punctuation": lambda t: t.replace(",", "").replace("'", "\u2019").replace(".", " .").replace(";", " -"),
    "case-and-fullwidth": lambda t: t.upper().replace("A", "\uff21"),
    "edit-5%": _edit_5_percent,
    "all": lambda t: _edit_5_percent(t.replace(",", ";")).replace(" the ", "\nthe "),
    "html-extract": lambda t: "Home | News | Contact\n" + t + "\nShare: Facebook Twitter",
}


@pytest.mark.parametrize("name", sorted(TEXT_TRANSFORMS))
def test_text_copy_matches_and_unrelated_does_not(name: str) -> None:
    registered = fingerprint_text(ARTICLE)
    copy = fingerprint_text(TEXT_TRANSFORMS[name](ARTICLE))
    score, method = match(registered, copy)
    assert method == "text:minhash-jaccard"
    assert score >= TEXT_MATCH_THRESHOLD, f"{name}: {score:.3f}"
    assert match(fingerprint_text(UNRELATED), copy)[0] < 0.1


def test_normalise_text_removes_layout_and_punctuation() -> None:
    assert normalise_text("Don\u2019t  STOP—\nbelieving,\r\n   ok?") == normalise_text(
        "dont stop believing ok"
    )
    assert normalise_text("ﬁnal re-\nflow") == "final reflow"
    assert normalise_text("  \n\t!!!") == ""


def test_empty_text_is_refused() -> None:
    with pytest.raises(FingerprintError) as err:
        fingerprint_text(" ... \n -- ")
    assert err.value.reason == "empty-text"


def test_short_text_still_fingerprints_and_matches_itself() -> None:
    assert match(fingerprint_text("Two words"), fingerprint_text("two  WORDS!"))[0] == 1.0


def test_text_fingerprint_dict_round_trip() -> None:
    fp = fingerprint_text(ARTICLE)
    data = fp.to_dict()
    assert isinstance(data["hashvalues"], str)
    back = TextFingerprint.from_dict(data)
    assert back == fp and match(back, fp)[0] == 1.0
    with pytest.raises(FingerprintError):
        TextFingerprint.from_dict({**data, "algorithm": "minhash-legacy:perm=256"})
    with pytest.raises(FingerprintError):
        TextFingerprint.from_dict({**data, "hashvalues": "00"})


def test_match_refuses_mixed_kinds(originals: dict[int, tuple[Image.Image, ImageFingerprint]]) -> None:
    with pytest.raises(FingerprintError) as err:
        match(originals[1][1], fingerprint_text(ARTICLE))
    assert err.value.reason == "kind-mismatch"
