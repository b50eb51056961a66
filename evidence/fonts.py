"""The packet's fonts: every one embedded and subset, including Chinese, so a court's viewer shows the text.

An archival evidence document may not rely on the reader's fonts: the 14 standard PDF fonts (Helvetica,
Courier) and reportlab's CID fonts (STSong-Light) are *not embedded*, and on a machine without Adobe's Asian
font pack 李伟 prints as □□. So the packet uses TrueType files only (reportlab embeds a subset of each):

* Latin text: Liberation Sans and Liberation Mono (SIL OFL 1.1, Debian `fonts-liberation`), metric-compatible
  with Helvetica and Courier, so the layout is unchanged; DejaVu (`fonts-dejavu-core`) as a fallback;
* Chinese: WenQuanYi Micro Hei (Apache 2.0 / GPLv3 with font exception, Debian `fonts-wqy-microhei`) or
  another TrueType-outline CJK font found on disk (reportlab cannot embed CFF-outline OpenType such as
  Noto Sans CJK's .otf).

A missing font is a FontError naming the Debian package to install: never a silent fallback to a
non-embedded font.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reportlab.lib.fonts import addMapping
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFError, TTFont

from evidence.errors import FontError

SANS, SANS_BOLD, SANS_ITALIC, SANS_BOLD_ITALIC = ("EvidenceSans", "EvidenceSans-Bold", "EvidenceSans-Italic",
                                                  "EvidenceSans-BoldItalic")
MONO, MONO_BOLD = "EvidenceMono", "EvidenceMono-Bold"
CJK = "EvidenceCJK"

_TRUETYPE = "/usr/share/fonts/truetype"
#: (registered name, candidate files in order, Debian package that ships the first)
LATIN_FILES: dict[str, tuple[tuple[str, ...], str]] = {
    SANS: ((f"{_TRUETYPE}/liberation/LiberationSans-Regular.ttf", f"{_TRUETYPE}/liberation2/LiberationSans-Regular.ttf",
            f"{_TRUETYPE}/dejavu/DejaVuSans.ttf"), "fonts-liberation"),
    SANS_BOLD: ((f"{_TRUETYPE}/liberation/LiberationSans-Bold.ttf", f"{_TRUETYPE}/liberation2/LiberationSans-Bold.ttf",
                 f"{_TRUETYPE}/dejavu/DejaVuSans-Bold.ttf"), "fonts-liberation"),
    SANS_ITALIC: ((f"{_TRUETYPE}/liberation/LiberationSans-Italic.ttf",
                   f"{_TRUETYPE}/liberation2/LiberationSans-Italic.ttf",
                   f"{_TRUETYPE}/dejavu/DejaVuSans-Oblique.ttf"), "fonts-liberation"),
    SANS_BOLD_ITALIC: ((f"{_TRUETYPE}/liberation/LiberationSans-BoldItalic.ttf",
                        f"{_TRUETYPE}/liberation2/LiberationSans-BoldItalic.ttf",
                        f"{_TRUETYPE}/dejavu/DejaVuSans-BoldOblique.ttf"), "fonts-liberation"),
    MONO: ((f"{_TRUETYPE}/liberation/LiberationMono-Regular.ttf", f"{_TRUETYPE}/liberation2/LiberationMono-Regular.ttf",
            f"{_TRUETYPE}/dejavu/DejaVuSansMono.ttf"), "fonts-liberation"),
    MONO_BOLD: ((f"{_TRUETYPE}/liberation/LiberationMono-Bold.ttf", f"{_TRUETYPE}/liberation2/LiberationMono-Bold.ttf",
                 f"{_TRUETYPE}/dejavu/DejaVuSansMono-Bold.ttf"), "fonts-liberation"),
}
#: TrueType-outline fonts with Chinese glyphs, (file, index in a .ttc), in order of preference.
CJK_FILES: tuple[tuple[str, int], ...] = (
    (f"{_TRUETYPE}/wqy/wqy-microhei.ttc", 0),
    (f"{_TRUETYPE}/wqy/wqy-zenhei.ttc", 0),
    (f"{_TRUETYPE}/arphic/uming.ttc", 0),
    (f"{_TRUETYPE}/droid/DroidSansFallbackFull.ttf", 0),
)
CJK_PACKAGE = "fonts-wqy-microhei"


@dataclass(frozen=True)
class Fonts:
    """The registered font names and the files they came from (for docs and the packet's metadata)."""

    files: dict[str, str]

    def has_glyph(self, ch: str, font: str = SANS) -> bool:
        face = pdfmetrics.getFont(font).face
        return ord(ch) in face.charToGlyph


_registered: Fonts | None = None


def _register(name: str, candidates: Sequence[tuple[str, int]]) -> str | None:
    for path, index in candidates:
        if Path(path).is_file():
            try:
                pdfmetrics.registerFont(TTFont(name, path, subfontIndex=index))
            except (OSError, TTFError):
                continue
            return path
    return None


def packet_fonts(latin: dict[str, tuple[tuple[str, ...], str]] | None = None,
                 cjk: Sequence[tuple[str, int]] | None = None) -> Fonts:
    """Register (once per process) the packet's embedded fonts; FontError naming the package if missing.

    `latin` and `cjk` replace the candidate tables (tests); only the default tables' result is cached.
    """
    global _registered
    if _registered is not None and latin is None and cjk is None:
        return _registered
    files: dict[str, str] = {}
    missing: list[str] = []
    cjk_files = CJK_FILES if cjk is None else tuple(cjk)
    for name, (paths, package) in (LATIN_FILES if latin is None else latin).items():
        got = _register(name, [(p, 0) for p in paths])
        if got is None:
            missing.append(f"{name} ({paths[0]}, Debian package {package})")
        else:
            files[name] = got
    got = _register(CJK, cjk_files)
    if got is None:
        missing.append(f"a Chinese TrueType font ({CJK_FILES[0][0]}, Debian package {CJK_PACKAGE})")
    else:
        files[CJK] = got
    if missing:
        raise FontError("cannot lay out an archival packet: fonts to embed are not installed: " + "; ".join(missing)
                        + f" (apt-get install fonts-liberation {CJK_PACKAGE})")
    for bold in (0, 1):
        for italic in (0, 1):
            addMapping(SANS, bold, italic, (SANS, SANS_ITALIC, SANS_BOLD, SANS_BOLD_ITALIC)[bold * 2 + italic])
            addMapping(MONO, bold, italic, MONO_BOLD if bold else MONO)
    fonts = Fonts(files)
    if latin is None and cjk is None:
        _registered = fonts
    return fonts
