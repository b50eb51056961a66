"""The machine's clock against the TSA, at the start and end of a capture.

A capture's times come from the machine that rendered it; the other side's first question is whether
that clock was right. Before and after rendering we ask the configured RFC 3161 TSA for a token over
SHA-256 of `evidence-capture-clock/v1 <capture id> <start|end>`, and record the token's genTime against
the local clock at the middle of the round trip (offset = genTime - local midpoint). The tokens are kept
as artefacts (`clock-start.tsr`, `clock-end.tsr`), so anyone can re-check them with `openssl ts -verify`.
The offset is only as fine as the TSA's genTime (often whole seconds) plus half the round trip: both are
recorded.
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from evidence.timestamp import parse_token
from notary_bridge.tsa import TimeStamper

__all__ = ["clock_probe", "clock_subject"]


def clock_subject(capture_id: str, moment: str) -> bytes:
    return f"evidence-capture-clock/v1 {capture_id} {moment}".encode()


def clock_probe(stamper: TimeStamper, capture_id: str, moment: str) -> tuple[dict[str, Any], bytes | None]:
    """(what the manifest records, the token DER) -- or the error, recorded, when the TSA fails."""
    digest = hashlib.sha256(clock_subject(capture_id, moment)).digest()
    before = datetime.now(UTC)
    t0 = time.monotonic()
    try:
        token = stamper.timestamp(digest, "sha256")
    except Exception as e:  # a TSA outage must not lose the capture; the manifest says it was not measured
        return {"moment": moment, "tsa": getattr(stamper, "label", "tsa"),
                "error": f"{type(e).__name__}: {e}"[:300]}, None
    rtt = time.monotonic() - t0
    midpoint = before + timedelta(seconds=rtt / 2)
    gen = parse_token(token).gen_time
    return {"moment": moment, "tsa": getattr(stamper, "label", "tsa"), "local_time": midpoint.isoformat(),
            "tsa_gen_time": gen.isoformat(), "offset_ms": round((gen - midpoint).total_seconds() * 1000, 1),
            "round_trip_ms": round(rtt * 1000, 1),
            "subject": clock_subject(capture_id, moment).decode(), "token": f"clock-{moment}.tsr"}, token
