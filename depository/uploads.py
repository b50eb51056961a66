"""File uploads: a multipart file part is spooled to disk while it is hashed (SHA-256 and SM3, one pass),
then deposited, with its content kept encrypted when the tenant opted in. Shared by the API and the console.
"""

from __future__ import annotations

import tempfile
from typing import IO, Any

from flask import Request, current_app
from werkzeug.datastructures import FileStorage

from depository.deposits import Deposit, DepositRequest, new_deposit_id
from depository.errors import BadRequest, PayloadTooLarge
from depository.wiring import Services
from evidence.hashes import DualHasher


class HashingSpool:
    """A temporary file that hashes (SHA-256 and SM3) what is written to it: one pass over an upload."""

    def __init__(self, limit: int) -> None:
        self.file = tempfile.SpooledTemporaryFile(max_size=1 << 20)  # closed with the request
        self.hasher = DualHasher()
        self.limit = limit

    def write(self, chunk: bytes) -> int:
        if self.hasher.size + len(chunk) > self.limit:
            raise PayloadTooLarge(f"the file is larger than the limit of {self.limit} bytes")
        self.hasher.update(chunk)
        return self.file.write(chunk)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.file, name)


class DepositoryRequest(Request):
    """Streams multipart file parts into HashingSpool, so a file is hashed as it arrives."""

    def _get_file_stream(self, total_content_length: int | None, content_type: str | None,
                         filename: str | None = None, content_length: int | None = None) -> IO[bytes]:
        spool = HashingSpool(current_app.config["DEPOSITORY_MAX_UPLOAD_BYTES"])
        self.__dict__.setdefault("_spools", []).append(spool)
        return spool  # type: ignore[return-value]

    def close(self) -> None:
        """Close every spool, including those of a parse that failed half-way (no leaked temp files)."""
        for spool in self.__dict__.pop("_spools", []):
            spool.file.close()
        super().close()


def safe_filename(name: str | None) -> str:
    """The client's file name without path separators or control characters, at most 255 characters."""
    cleaned = "".join(c for c in (name or "") if c.isprintable() and c not in "/\\").strip(" .")
    return cleaned[:255] or "upload.bin"


def deposit_spooled_file(s: Services, tenant_id: str, upload: FileStorage | None, kind: str,
                         metadata: dict[str, Any], *, idempotency: tuple[str, bytes] | None = None,
                         response_builder: Any = None) -> list[Deposit] | tuple[int, str]:
    """Deposit an uploaded (already hashed) file for `tenant_id`; `create_many`'s result."""
    if upload is None or not isinstance(upload.stream, HashingSpool):
        raise BadRequest("a multipart deposit needs a 'file' part")
    spool: HashingSpool = upload.stream
    h = spool.hasher
    mimetype = upload.mimetype if upload.mimetype and upload.mimetype.isprintable() else ""
    req = DepositRequest(kind, h.sha256, h.sm3, h.size, metadata, safe_filename(upload.filename),
                         mimetype[:255] or "application/octet-stream")
    if idempotency:  # a replay answers before any content is written (no orphan files)
        replay = s.deposits.idempotent_replay(tenant_id, *idempotency)
        if replay is not None:
            return replay
    tenant = s.tenants.cached(tenant_id)
    deposit_id, stored = None, False
    if tenant.store_content and tenant.wrapped_content_key:
        deposit_id = new_deposit_id()
        spool.file.seek(0)
        # Content first, then the deposit: an acknowledged deposit never lacks the content it promised.
        s.content.put(tenant_id, deposit_id, tenant.content_cipher, tenant.wrapped_content_key,
                      spool.file)  # type: ignore[arg-type]
        stored = True
    return s.deposits.create_many(tenant_id, [req], ids=[deposit_id] if deposit_id else None,
                                  content_stored=stored, idempotency=idempotency,
                                  response_builder=response_builder)
