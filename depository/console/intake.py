"""A person's upload, through the same service path as `POST /v1/deposits` (multipart).

The request class (`DepositoryRequest`) has already streamed the file into a `HashingSpool`, so the
SHA-256 and SM3 are known when the form is read; what follows mirrors the API's `_create_from_file`:
metadata validated per kind, content stored first when the tenant keeps content, then one
`Deposits.create_many` transaction that sequences the leaf.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from werkzeug.datastructures import FileStorage, MultiDict

from depository.deposits import Deposit, merge_refs
from depository.errors import BadRequest, ValidationFailed
from depository.kinds import validate_metadata
from depository.uploads import HashingSpool, deposit_spooled_file
from depository.wiring import Services
from evidence.leaf import KINDS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UploaderKey:
    """What the rate limiter keys on for a person (API callers are keyed by their API key id)."""

    key_id: str


def metadata_from_form(form: MultiDict[str, str]) -> tuple[str, dict[str, Any]]:
    """(kind, metadata) from the upload form: optional JSON details, plus title, parties and matter.

    Parties are typed as one name per line (or comma-separated) and become the contract's `parties`.
    """
    kind = form.get("kind", "")
    if kind not in KINDS:
        raise ValidationFailed(f"choose a kind: one of {', '.join(KINDS)}")
    raw = (form.get("metadata") or "").strip()
    try:
        metadata = json.loads(raw) if raw else {}
    except RecursionError as e:
        raise ValidationFailed("the details nest too deep") from e
    except ValueError as e:
        raise ValidationFailed(f"the details are not valid JSON: {e}") from e
    if not isinstance(metadata, dict):
        raise ValidationFailed("the details must be a JSON object")
    title = (form.get("title") or "").strip()
    if title:
        metadata.setdefault("title", title)
    names = [n.strip() for line in (form.get("parties") or "").splitlines() for n in line.split(",") if n.strip()]
    if names:
        metadata.setdefault("parties", [{"name": n} for n in names])
    metadata = merge_refs(metadata, (form.get("matter") or "").strip() or None,
                          (form.get("follows") or "").strip() or None)
    validate_metadata(kind, metadata)
    return kind, metadata


def deposit_upload(s: Services, tenant_id: str, user_id: str, upload: FileStorage | None,
                   form: MultiDict[str, str]) -> Deposit:
    """Deposit the uploaded file for `tenant_id`; returns the sequenced deposit."""
    if upload is None or not isinstance(upload.stream, HashingSpool):
        raise BadRequest("choose a file to deposit")
    s.check_backpressure(UploaderKey("user:" + user_id))
    kind, metadata = metadata_from_form(form)
    spool: HashingSpool = upload.stream
    result = deposit_spooled_file(s, tenant_id, upload, kind, metadata)
    assert isinstance(result, list)  # no idempotency key: never a replay
    if kind == "copyright" and s.monitoring is not None:
        _register_work(s, tenant_id, result[0].id, spool, result[0])
    return result[0]


def _register_work(s: Services, tenant_id: str, deposit_id: str, spool: HashingSpool, req: Deposit) -> None:
    """Fingerprint a copyright work for monitoring, as the API's upload hook does. The deposit stands
    whatever happens here: a work without fingerprints is only not monitored."""
    try:
        spool.file.seek(0)
        s.monitoring.register_work(tenant_id, deposit_id, spool.file.read(), req.content_type, req.filename)
    except Exception:
        log.exception("fingerprinting copyright deposit %s failed", deposit_id)
