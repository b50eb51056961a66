"""Every copyright deposit says whether it is monitored (and why not); PDF and .docx works are monitored;
a work quoted inside a long page of boilerplate is found by containment; big uploads are streamed."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from tests.conftest import auth
from tests.integration.test_monitoring_api import make_env, site  # noqa: F401  (fixture)
from tests.integration.test_monitoring_web import Site, page
from tests.unit.depository.test_worktext import make_docx, make_pdf

LICENSES = Path("/usr/share/common-licenses")
GPL2 = (LICENSES / "GPL-2").read_text(encoding="utf-8")
OTHER = " ".join((LICENSES / n).read_text(encoding="utf-8") for n in ("Apache-2.0", "MPL-2.0", "Artistic"))
META = {"title": "A licence", "author": "FSF", "work_type": "text"}


def upload(client: Any, key: str, data: bytes, filename: str, ctype: str) -> str:
    resp = client.post("/v1/deposits", headers=auth(key), content_type="multipart/form-data",
                       data={"kind": "copyright", "metadata": json.dumps(META),
                             "file": (io.BytesIO(data), filename, ctype)})
    assert resp.status_code == 201, resp.json
    return str(resp.json["id"])


def monitoring_of(client: Any, key: str, deposit_id: str) -> dict[str, Any]:
    resp = client.get(f"/v1/deposits/{deposit_id}", headers=auth(key))
    assert resp.status_code == 200
    return dict(resp.json["monitoring"])


def test_each_deposit_states_its_monitoring(tmp_path: Path, site: Site) -> None:  # noqa: F811
    e = make_env(tmp_path, f"sqlite:///{tmp_path / 'd.db'}")
    try:
        client, (_, key) = e["client"], e["tenant"]
        pdf = upload(client, key, make_pdf(GPL2), "gpl2.pdf", "application/pdf")
        docx = upload(client, key, make_docx(GPL2), "gpl2.docx",
                      "application/vnd.openxmlformats-officedocument.wordprocessingml.document")
        zipped = upload(client, key, b"PK\x05\x06" + b"\x00" * 18, "archive.zip", "application/zip")
        broken = upload(client, key, b"%PDF-1.4 broken", "broken.pdf", "application/pdf")
        assert monitoring_of(client, key, pdf) == {"status": "fingerprinted", "reason": None, "fingerprints": 1,
                                                   "kinds": ["text"]}
        assert monitoring_of(client, key, docx)["status"] == "fingerprinted"
        z = monitoring_of(client, key, zipped)
        assert z["status"] == "unsupported" and "PDF or .docx" in z["reason"] and z["fingerprints"] == 0
        b = monitoring_of(client, key, broken)
        assert b["status"] == "failed" and b["reason"].startswith("bad-pdf")
        # Another tenant sees neither the deposit nor its monitoring.
        _, other_key = e["other"]
        assert client.get(f"/v1/deposits/{pdf}", headers=auth(other_key)).status_code == 404
        # A page quoting the whole work between two long runs of other licence text: Jaccard alone is
        # under its threshold, containment finds the PDF work (and the .docx one, same text).
        half = len(OTHER) // 2
        url = site.add("/terms", page("Our terms", OTHER[:half] + "\n" + GPL2 + "\n" + OTHER[half:]))
        resp = client.post("/v1/scans", headers=auth(key), json={"url": url})
        assert resp.status_code == 200, resp.json
        found = {m["work_deposit"]: m for m in resp.json["matches"]}
        assert set(found) == {pdf, docx}
        assert found[pdf]["method"] == "text:containment" and found[pdf]["score"] > 0.9
        # An uploaded suspect file is streamed and scored the same way.
        resp = client.post("/v1/scans", headers=auth(key), content_type="multipart/form-data",
                           data={"file": (io.BytesIO((OTHER + GPL2).encode()), "suspect.txt", "text/plain")})
        assert resp.status_code == 200 and {m["work_deposit"] for m in resp.json["matches"]} == {pdf, docx}
    finally:
        e["s"].close()
