"""Image monitoring on real photographs this project did not make (issue 19): precision and recall of the
hash index (no geometric verification stage yet), per transform.

Photographs: the sample images scikit-image ships inside its wheel (``skimage/data/*.png|jpg``; install
scikit-image in the venv to run this, it is not a dependency of the depository). The hard negative the
issue names is the second frame of the stereo pair ``motorcycle_right`` against ``motorcycle_left``.

    .venv/bin/pip install scikit-image && .venv/bin/python bench/bench_images_real.py
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw, ImageEnhance, ImageOps

from depository.monitoring.fingerprint import fingerprint_image
from depository.monitoring.index import SimilarityIndex

PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "camera.png", "hubble_deep_field.jpg",
          "moon.png", "retina.jpg", "brick.png", "grass.png", "gravel.png", "motorcycle_left.png", "coins.png",
          "page.png", "ihc.png", "microaneurysms.png")


def enc(img: Image.Image, fmt: str = "PNG", quality: int = 85) -> bytes:
    buf = io.BytesIO()
    img = img.convert("RGB") if fmt == "JPEG" else img
    img.save(buf, fmt, quality=quality) if fmt == "JPEG" else img.save(buf, fmt)
    return buf.getvalue()


def watermark(img: Image.Image, heavy: bool) -> Image.Image:
    out = img.convert("RGBA")
    layer = Image.new("RGBA", out.size, (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    w, h = out.size
    step = max(24, h // (8 if heavy else 3))
    for y in range(0, h, step):
        d.text((w // 10, y), "COPYRIGHT STOCK PHOTO " * 4, fill=(255, 255, 255, 160 if heavy else 110))
    if heavy:
        d.rectangle((0, int(h * 0.8), w, h), fill=(0, 0, 0, 150))
    return Image.alpha_composite(out, layer).convert("RGB")


def crop(f: float) -> Callable[[Image.Image], Image.Image]:
    return lambda im: im.crop((int(im.width * f / 2), int(im.height * f / 2), int(im.width * (1 - f / 2)),
                               int(im.height * (1 - f / 2))))


TRANSFORMS: dict[str, Callable[[Image.Image], bytes]] = {
    "jpeg q60": lambda im: enc(im, "JPEG", 60),
    "scale 0.5": lambda im: enc(im.resize((im.width // 2, im.height // 2)), "JPEG"),
    "crop 10%": lambda im: enc(crop(0.10)(im), "JPEG"),
    "crop 25%": lambda im: enc(crop(0.25)(im), "JPEG"),
    "brightness +20%": lambda im: enc(ImageEnhance.Brightness(im.convert("RGB")).enhance(1.2), "JPEG"),
    "recolour (saturation 0.3)": lambda im: enc(ImageEnhance.Color(im.convert("RGB")).enhance(0.3), "JPEG"),
    "watermark": lambda im: enc(watermark(im, False), "JPEG"),
    "heavy watermark": lambda im: enc(watermark(im, True), "JPEG"),
    "flip": lambda im: enc(ImageOps.mirror(im), "JPEG"),
    "flip + crop 10%": lambda im: enc(crop(0.10)(ImageOps.mirror(im)), "JPEG"),
    "rotate 5°": lambda im: enc(im.convert("RGB").rotate(5, expand=False, fillcolor=(255, 255, 255)), "JPEG"),
}


def main() -> None:
    import skimage

    data = Path(skimage.__file__).parent / "data"
    photos = {n: Image.open(data / n) for n in PHOTOS if (data / n).exists()}
    photos = {n: (im.convert("RGB") if im.mode not in ("L", "RGB") else im) for n, im in photos.items()}
    index = SimilarityIndex.from_rows([(n, fingerprint_image(enc(im))) for n, im in photos.items()])
    rows: list[tuple[str, int, int, int]] = []
    tp = fn = fp = 0
    for name, transform in TRANSFORMS.items():
        found = wrong = 0
        for work, im in photos.items():
            hits = {m.work_id for m in index.query(fingerprint_image(transform(im), with_crops=False))}
            found += work in hits
            wrong += len(hits - {work})
        rows.append((name, found, len(photos), wrong))
        tp, fn, fp = tp + found, fn + len(photos) - found, fp + wrong
    stereo = index.query(fingerprint_image(enc(Image.open(data / "motorcycle_right.png")), with_crops=False))
    stereo_fp = len(stereo)
    fp += stereo_fp
    print(f"photographs {len(photos)} (scikit-image {skimage.__version__} data)")
    print("| transform | found | false matches |")
    print("|---|---|---|")
    for name, found, total, wrong in rows:
        print(f"| {name} | {found} / {total} | {wrong} |")
    print(f"| stereo pair: motorcycle_right vs registered motorcycle_left (hard negative) | — | {stereo_fp} "
          f"{[(m.work_id, round(m.score, 3)) for m in stereo]} |")
    print(f"\nprecision {tp / max(1, tp + fp):.3f}  recall {tp / max(1, tp + fn):.3f}  (tp {tp}, fn {fn}, fp {fp})")


if __name__ == "__main__":
    main()
