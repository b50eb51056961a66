"""Evidence kinds and their metadata schemas.

Each kind validates the fields a court will look for (a lease: parties, property, term, rent; an invoice:
number, issuer, buyer, amount, currency, date; ...). Extra fields are kept: platforms carry their own
references. `matter` and `follows` are common to all kinds and live in the metadata, so the leaf's `meta`
hash covers them (SPEC.md).
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from depository.errors import ValidationFailed
from depository.inputs import check_json_depth
from evidence.leaf import KINDS

REF_RE = re.compile(r"^[A-Za-z0-9_.:/#-]{1,128}$")
ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_METADATA_BYTES = 64 * 1024


class _Meta(BaseModel):
    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)
    matter: str | None = None
    follows: str | None = None

    @field_validator("matter")
    @classmethod
    def _matter(cls, v: str | None) -> str | None:
        if v is not None and not REF_RE.match(v):
            raise ValueError("matter must be 1-128 characters of letters, digits and _.:/#-")
        return v

    @field_validator("follows")
    @classmethod
    def _follows(cls, v: str | None) -> str | None:
        if v is not None and not ID_RE.match(v):
            raise ValueError("follows must be a deposit id")
        return v


class Party(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str = Field(min_length=1, max_length=255)
    role: str | None = None


class Money(BaseModel):
    amount: Decimal
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    period: str | None = None


class Term(BaseModel):
    start: date
    end: date | None = None


class ContractMeta(_Meta):
    """A contract; a lease additionally names the property, term and rent."""

    parties: list[Party] = Field(min_length=1)
    title: str | None = None
    property: str | None = None
    term: Term | None = None
    rent: Money | None = None


class InvoiceMeta(_Meta):
    number: str = Field(min_length=1, max_length=128)
    issuer: str = Field(min_length=1, max_length=255)
    buyer: str = Field(min_length=1, max_length=255)
    amount: Decimal
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    date: date


class LicenseMeta(_Meta):
    licensor: str = Field(min_length=1, max_length=255)
    licensee: str = Field(min_length=1, max_length=255)
    scope: str = Field(min_length=1)
    term: Term


class CopyrightMeta(_Meta):
    title: str = Field(min_length=1, max_length=500)
    author: str = Field(min_length=1, max_length=255)
    work_type: str = Field(min_length=1, max_length=64)
    first_publication: date | None = None


class WebCaptureMeta(_Meta):
    url: str = Field(min_length=1, max_length=4096)
    captured_at: str
    work_deposit: str | None = None


class OtherMeta(_Meta):
    pass


SCHEMAS: dict[str, type[_Meta]] = {
    "contract": ContractMeta, "invoice": InvoiceMeta, "license": LicenseMeta,
    "copyright": CopyrightMeta, "web-capture": WebCaptureMeta, "other": OtherMeta,
}
assert set(SCHEMAS) == set(KINDS)


def validate_metadata(kind: str, metadata: Any) -> dict[str, Any]:
    """Validate `metadata` for `kind`; returns it unchanged (as sent: its RFC 8785 hash is the leaf's meta)."""
    if kind not in SCHEMAS:
        raise ValidationFailed(f"unknown kind {kind!r}; want one of {', '.join(KINDS)}")
    if not isinstance(metadata, dict):
        raise ValidationFailed("metadata must be a JSON object")
    check_json_depth(metadata, "metadata")
    try:
        SCHEMAS[kind].model_validate(metadata)
    except ValidationError as e:
        errs = [f"{'.'.join(str(p) for p in err['loc']) or 'metadata'}: {err['msg']}" for err in e.errors()[:5]]
        raise ValidationFailed(f"metadata for kind {kind}: " + "; ".join(errs),
                               extra={"errors": errs}) from e
    return metadata
