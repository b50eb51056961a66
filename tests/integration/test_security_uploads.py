"""Upload and path checks (SQLite and PostgreSQL): hostile filenames never become paths and never 500;
path parameters cannot climb out of the tile store or the console's static folder."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import auth

# name -> what the server must answer: (201, the stored filename) or (400, None). Each outcome is pinned, so a
# change in sanitising (or a name that starts to be refused) fails here instead of passing as "some 4xx".
HOSTILE_NAMES: dict[str, tuple[int, str | None]] = {
    "../../../../etc/passwd": (201, "etcpasswd"),
    "..\\..\\windows\\system.ini": (201, "windowssystem.ini"),
    "/absolute/path.pdf": (201, "absolutepath.pdf"),
    "nul\x00byte.pdf": (201, "nulbyte.pdf"),
    "x" * 10_000 + ".pdf": (201, "x" * 255),
    # The CR LF ends the part's header line: the file part no longer parses, so there is no file.
    "lease\r\nX-Injected: 1.pdf": (400, None),
    "ünïcødé-契約.pdf": (201, "ünïcødé-契約.pdf"),
    ".": (201, "upload.bin"),
    "": (201, "upload.bin"),
}


@pytest.fixture
def storing_tenant(services: Any) -> tuple[str, str]:
    wrapped = services.content.new_tenant_key("aes-256-gcm")
    return services.tenants.create("Keeps Files", store_content=True,  # type: ignore[no-any-return]
                                   wrapped_content_key=wrapped)


def _all_files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def test_hostile_upload_filenames(client: Any, services: Any, storing_tenant: tuple[str, str], tmp_path: Path) -> None:
    """One app for all names (a fresh database per name costs more than the checks)."""
    tenant_id, key = storing_tenant
    for name, (want_status, want_name) in HOSTILE_NAMES.items():
        outside_before = _all_files(tmp_path) - _all_files(services.config.content_dir)
        r = client.post("/v1/deposits", headers=auth(key), content_type="multipart/form-data",
                        data={"kind": "other", "metadata": "{}", "file": (io.BytesIO(name.encode() or b"-"), name)})
        assert r.status_code == want_status, (name[:40], r.status_code, r.get_data(as_text=True)[:300])
        assert r.mimetype == ("application/json" if want_status == 201 else "application/problem+json")
        new_outside = (_all_files(tmp_path) - _all_files(services.config.content_dir)) - outside_before
        assert all(p.name.startswith("depository.db") for p in new_outside), new_outside
        if r.status_code == 201:
            dep = r.json
            stored = services.config.content_dir / tenant_id / f"{dep['id']}.bin"
            assert stored.is_file(), "content is stored under the deposit id, never under the filename"
            got = client.get(f"/v1/deposits/{dep['id']}", headers=auth(key)).json
            assert got["filename"] == want_name


@pytest.mark.parametrize(("name", "want"), [("../../x.pdf", 201), ("nul\x00.pdf", 422), ("y" * 5000, 422)])
def test_hostile_filename_in_hash_only_deposit(client: Any, tenant: tuple[str, str], name: str, want: int) -> None:
    """A hash-only deposit's filename is a label, never a path: kept as given when printable, else refused."""
    _, key = tenant
    body = {"kind": "other", "sha256": "ab" * 32, "sm3": "cd" * 32, "filename": name, "metadata": {}}
    r = client.post("/v1/deposits", headers=auth(key), data=json.dumps(body), content_type="application/json")
    assert r.status_code == want, (r.status_code, r.get_data(as_text=True)[:300])
    if want == 201:
        assert client.get(f"/v1/deposits/{r.json['id']}", headers=auth(key)).json["filename"] == name
    else:
        assert "filename must be 1 to 255 printable characters" in r.json["detail"]


@pytest.mark.parametrize("path", [
    "/tile/../../../../etc/passwd", "/tile/0/..%2f..%2fetc%2fpasswd", "/tile/0/x001/../../../config.toml",
    "/console/static/../../app.py", "/console/static/..%2f..%2fconfig.py", "/static/../depository.db",
    "/v1/deposits/..%2f..%2fetc%2fpasswd", "/v1/matters/..%2f..%2f..", "/tile/" + "9/" * 2000 + "0",
])
def test_path_parameters_cannot_escape(client: Any, tenant: tuple[str, str], path: str) -> None:
    r = client.get(path, headers=auth(tenant[1]))
    assert r.status_code in (400, 404, 308, 301), (path, r.status_code)
    body = r.get_data()
    r.close()
    assert b"root:" not in body and b"import " not in body and b"SQLite format" not in body


def test_oversized_upload_is_413_problem(tmp_path: Path, services: Any, tenant: tuple[str, str]) -> None:
    from depository.app import create_app
    from depository.config import load_config

    config = load_config(env={}, home=services.config.home, database_url=services.config.effective_database_url,
                         max_upload_bytes=1024, log_origin=services.config.log_origin)
    client = create_app(config, services).test_client()
    r = client.post("/v1/deposits", headers=auth(tenant[1]), content_type="multipart/form-data",
                    data={"kind": "other", "file": (io.BytesIO(b"x" * 4096), "big.bin")})
    assert r.status_code == 413 and r.mimetype == "application/problem+json"
