"""`POST /verify` streams (issue 18): a 90 MB original is hashed while it is spooled to disk and never read
into memory, an oversized "packet" is refused with 413 before it is read, and the check still passes for
the real packet and its original."""

from __future__ import annotations

import hashlib
import re
import tracemalloc
from pathlib import Path
from typing import Any

from tests.conftest import auth
from tests.integration.test_sign_in_throttle import _make

BIG = 90 * 1024 * 1024


def _big_file(path: Path) -> tuple[str, str]:
    sha, sm3 = hashlib.sha256(), hashlib.new("sm3")
    block = hashlib.sha256(b"seed").digest() * (1 << 15)  # 1 MiB
    with open(path, "wb") as f:
        for i in range(BIG // len(block)):
            chunk = bytes([i % 251]) + block[1:]
            sha.update(chunk)
            sm3.update(chunk)
            f.write(chunk)
    return sha.hexdigest(), sm3.hexdigest()


def _post_multipart(client: Any, fields: dict[str, Any]) -> tuple[Any, int]:
    """POST /verify with a multipart body encoded to a temporary file first (Werkzeug's test client would
    leave its own temporary file open), under tracemalloc; returns (response, traced peak)."""
    from werkzeug.test import stream_encode_multipart

    stream, length, boundary = stream_encode_multipart(fields, use_tempfile=True)
    try:
        tracemalloc.start()
        try:
            r = client.post("/verify", input_stream=stream, content_length=length,
                            content_type=f"multipart/form-data; boundary={boundary}")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    finally:
        stream.close()
    return r, peak


def _csrf(client: Any) -> str:
    m = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', client.get("/verify").text)
    assert m
    return m.group(1)


def test_a_90_mb_original_is_checked_without_holding_it_in_memory(tmp_path: Path) -> None:
    from depository.log import integrate_all

    _, services, app = _make(tmp_path, f"sqlite:///{tmp_path / 'd.db'}", verify_max_packet_bytes=8 << 20)
    try:
        client = app.test_client()
        _, key = services.tenants.create("Studio")
        original = tmp_path / "film.bin"
        sha, sm3 = _big_file(original)
        dep = client.post("/v1/deposits", headers=auth(key), json={
            "kind": "other", "sha256": sha, "sm3": sm3, "size": BIG}).json
        integrate_all(services.log, 1000)
        pdf = client.get(f"/v1/deposits/{dep['id']}/packet.pdf", headers=auth(key))
        assert pdf.status_code == 200
        (tmp_path / "packet.pdf").write_bytes(pdf.data)
        token = _csrf(client)
        from werkzeug.datastructures import FileStorage

        with open(tmp_path / "packet.pdf", "rb") as p, open(original, "rb") as f:
            r, peak = _post_multipart(client, {"csrf_token": token, "packet": FileStorage(p, "packet.pdf"),
                                               "file": FileStorage(f, "film.bin")})
        assert r.status_code == 200, r.text[:2000]
        assert "and the file you gave is the deposited one" in r.text
        assert peak < 24 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB while checking a 90 MiB original"
        # A 90 MB "packet" is refused by its size, without being read.
        with open(original, "rb") as f:
            r, peak = _post_multipart(client, {"csrf_token": token, "packet": FileStorage(f, "packet.pdf")})
        assert r.status_code == 413 and "at most 8 MiB" in r.text
        assert peak < 24 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB while refusing a 90 MiB packet"
    finally:
        services.close()
