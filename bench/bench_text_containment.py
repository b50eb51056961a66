"""Text monitoring on real prose this project did not write (issue 19, point 2): precision and recall.

Works: the licence texts in /usr/share/common-licenses. Boilerplate and negatives: README files under
/usr/share/doc (package prose on software topics) and the other licences. Revisions of one licence
(GPL-1, GPL-2, LGPL-2, LGPL-2.1; GFDL-1.2/GFDL-1.3) share most of their text and are left out as
negatives of each other: finding one in the other is correct.

Positives per work (a page that holds the work): the whole work inside 4x its length of boilerplate;
a 40% excerpt inside boilerplate; a reflowed, re-punctuated copy. Negatives: each other licence as a page
(same topic, hard), and boilerplate-only pages. One SimilarityIndex of all works, queried as the scanner
does (``fingerprint_text(page, probe=True)``).

    .venv/bin/python bench/bench_text_containment.py
"""

from __future__ import annotations

import glob
import gzip
import random
import re
from pathlib import Path

from depository.monitoring.fingerprint import fingerprint_text
from depository.monitoring.index import SimilarityIndex

# GPL-1, GPL-2, LGPL-2 and LGPL-2.1 copy 50-88% of each other's five-word shingles verbatim (the preamble
# and the terms): a containment score of 0.5-0.9 between them is a true measurement, not a false match.
FAMILY = {"GPL-1": "fsf-v1v2", "GPL-2": "fsf-v1v2", "LGPL-2": "fsf-v1v2", "LGPL-2.1": "fsf-v1v2",
          "GFDL-1.2": "gfdl", "GFDL-1.3": "gfdl"}


def docs() -> list[str]:
    out = []
    for p in sorted(glob.glob("/usr/share/doc/*/README*")):
        try:
            raw = Path(p).read_bytes()
            text = (gzip.decompress(raw) if p.endswith(".gz") else raw).decode("utf-8")
        except (OSError, UnicodeDecodeError, EOFError):
            continue
        if len(text.split()) > 200:
            out.append(text)
    return out


def main() -> None:
    rng = random.Random(19)
    paths = sorted(glob.glob("/usr/share/common-licenses/*"))
    works = {Path(p).name: Path(p).read_text(encoding="utf-8") for p in paths
             if not Path(p).is_symlink() and Path(p).name not in ("GPL", "LGPL", "GFDL")}
    filler_docs = docs()
    filler = " ".join(filler_docs).split()
    index = SimilarityIndex.from_rows([(n, fingerprint_text(t)) for n, t in works.items()])

    def bp(n: int) -> str:
        start = rng.randrange(0, max(1, len(filler) - n))
        return " ".join(filler[start : start + n])

    results: dict[str, list[int]] = {}  # kind -> [tp, fn, fp, tn]

    def record(kind: str, want: str | None, text: str, exclude: set[str]) -> None:
        found = {m.work_id for m in index.query(fingerprint_text(text, probe=True))} - exclude
        r = results.setdefault(kind, [0, 0, 0, 0])
        if want is not None:
            r[0 if want in found else 1] += 1
            r[2] += len(found - {want})
        else:
            r[2] += len(found)
            r[3] += not found

    for name, text in works.items():
        fam = {n for n in works if FAMILY.get(n) and FAMILY.get(n) == FAMILY.get(name)} - {name}
        n = len(text.split())
        record("whole work inside 4x boilerplate", name, bp(2 * n) + "\n" + text + "\n" + bp(2 * n), fam)
        words = text.split()
        for share in (0.4, 0.5):
            start = rng.randrange(0, int((1 - share) * len(words)))
            excerpt = " ".join(words[start : start + int(share * len(words))])
            record(f"{share:.0%} excerpt inside boilerplate", name, bp(n) + "\n" + excerpt + "\n" + bp(n), fam)
        reflowed = re.sub(r"\s+", " ", text).replace(",", "").replace(";", ".")
        record("reflowed copy", name, reflowed, fam)
        # Hard negative: this licence as a page, scored against every other (non-revision) work.
        hits = {m.work_id for m in index.query(fingerprint_text(text, probe=True))} - {name} - fam
        r = results.setdefault("other licence as page (hard negative)", [0, 0, 0, 0])
        r[2] += len(hits)
        r[3] += len(works) - 1 - len(fam) - len(hits)
    for doc in filler_docs[:200]:
        record("package README as page (negative)", None, doc, set())
    tp = sum(r[0] for r in results.values())
    fn = sum(r[1] for r in results.values())
    fp = sum(r[2] for r in results.values())
    print(f"works {len(works)}, READMEs {len(filler_docs)}")
    print("| case | found / expected | false matches | clean negatives |")
    print("|---|---|---|---|")
    for kind, (a, b, c, d) in results.items():
        print(f"| {kind} | {a} / {a + b} | {c} | {d} |")
    print(f"\nprecision {tp / max(1, tp + fp):.3f}  recall {tp / max(1, tp + fn):.3f}  (tp {tp}, fn {fn}, fp {fp})")


if __name__ == "__main__":
    main()
