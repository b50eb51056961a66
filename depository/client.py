"""A small HTTP client for platforms (and the CLI): deposit files, hashes and batches; fetch proofs.

Uses only the standard library so a platform can vendor it. Errors come back as `ClientError` carrying
the server's RFC 9457 problem (type, title, detail, status).
"""

from __future__ import annotations

import http.client
import json
import mimetypes
import secrets
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evidence.hashes import digest_stream


@dataclass
class ClientError(Exception):
    status: int
    title: str
    detail: str = ""
    type: str = ""

    def __str__(self) -> str:
        return f"{self.status} {self.title}" + (f": {self.detail}" if self.detail else "")

    def diagnostics(self) -> str:
        return str(self)


class DepositoryClient:
    def __init__(self, base_url: str, api_key: str | None, *, timeout_s: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout_s = timeout_s

    def _request(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None,
                 headers: dict[str, str] | None = None) -> tuple[int, bytes, str]:
        req = urllib.request.Request(self.base_url + path, data=body, method=method)  # noqa: S310
        if self.api_key:
            req.add_header("Authorization", f"Bearer {self.api_key}")
        if content_type:
            req.add_header("Content-Type", content_type)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:  # noqa: S310 - URL from the user
                return resp.status, resp.read(), resp.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                problem = json.loads(raw)
                raise ClientError(e.code, problem.get("title", e.reason), problem.get("detail", ""),
                                  problem.get("type", "")) from None
            except ValueError:
                raise ClientError(e.code, str(e.reason), raw[:200].decode(errors="replace")) from None
        except urllib.error.URLError as e:
            raise ClientError(0, "cannot reach the depository", f"{self.base_url}: {e.reason}") from None
        except (OSError, http.client.HTTPException) as e:
            # A connection reset or a server that died mid-answer: nothing was acknowledged.
            raise ClientError(0, "the connection to the depository failed", f"{self.base_url}: {e}") from None

    def _json(self, method: str, path: str, obj: Any = None, headers: dict[str, str] | None = None) -> Any:
        body = json.dumps(obj).encode() if obj is not None else None
        _, raw, _ = self._request(method, path, body, "application/json" if body is not None else None, headers)
        return json.loads(raw)

    def deposit_file(self, path: Path, kind: str, metadata: dict[str, Any] | None = None, *,
                     matter: str | None = None, follows: str | None = None, wait_s: float = 0,
                     idempotency_key: str | None = None) -> dict[str, Any]:
        boundary = "----depository" + secrets.token_hex(12)
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        fields = {"kind": kind, "metadata": json.dumps(metadata or {})}
        if matter:
            fields["matter"] = matter
        if follows:
            fields["follows"] = follows
        parts = []
        for name, value in fields.items():
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
                         .encode())
        safe_name = path.name.replace('"', "_")
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{safe_name}"\r\n'
                     f"Content-Type: {ctype}\r\n\r\n".encode())
        body = b"".join(parts) + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        q = f"?wait={wait_s:g}" if wait_s else ""
        _, raw, _ = self._request("POST", "/v1/deposits" + q, body, f"multipart/form-data; boundary={boundary}",
                                  headers)
        return json.loads(raw)

    def deposit_hashes(self, kind: str, sha256: str, sm3: str, *, size: int | None = None,
                       filename: str | None = None, metadata: dict[str, Any] | None = None,
                       wait_s: float = 0, idempotency_key: str | None = None) -> dict[str, Any]:
        obj: dict[str, Any] = {"kind": kind, "sha256": sha256, "sm3": sm3, "metadata": metadata or {}}
        if size is not None:
            obj["size"] = size
        if filename:
            obj["filename"] = filename
        q = f"?wait={wait_s:g}" if wait_s else ""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return self._json("POST", "/v1/deposits" + q, obj, headers)

    def deposit_batch(self, deposits: list[dict[str, Any]], *, idempotency_key: str | None = None
                      ) -> list[dict[str, Any]]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return self._json("POST", "/v1/deposits/batch", {"deposits": deposits}, headers)["deposits"]

    def get(self, deposit_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/deposits/{deposit_id}")

    def find_by_sha256(self, sha256: str) -> list[dict[str, Any]]:
        return self._json("GET", f"/v1/deposits?sha256={sha256}")["deposits"]

    def proof(self, deposit_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/deposits/{deposit_id}/proof")

    def packet(self, deposit_id: str) -> bytes:
        _, raw, _ = self._request("GET", f"/v1/deposits/{deposit_id}/packet.pdf")
        return raw

    def matter(self, ref: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/matters/{ref}")

    def keys(self) -> dict[str, Any]:
        return self._json("GET", "/v1/log/keys")

    def capture(self, url: str, *, matter: str | None = None, operator: str | None = None) -> dict[str, Any]:
        body = {k: v for k, v in (("url", url), ("matter", matter), ("operator", operator)) if v is not None}
        return self._json("POST", "/v1/captures", body)

    def get_capture(self, capture_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/captures/{urllib.parse.quote(capture_id, safe='')}")

    def capture_artefact(self, capture_id: str, name: str) -> bytes:
        _, raw, _ = self._request("GET", f"/v1/captures/{urllib.parse.quote(capture_id, safe='')}/artefacts/"
                                         f"{urllib.parse.quote(name, safe='')}")
        return raw


def hash_file(path: Path) -> dict[str, Any]:
    """SHA-256, SM3 and size of a file, read once."""
    with path.open("rb") as f:
        h = digest_stream(f)
    return {"sha256": h.sha256.hex(), "sm3": h.sm3.hex(), "size": h.size}


def iter_files(path: Path) -> Iterator[Path]:
    if path.is_file():
        yield path
        return
    for p in sorted(path.rglob("*")):
        if p.is_file() and not p.name.startswith("."):
            yield p
