"""The one-click infringement packet of an alert: the work and the capture, both proven, side by side.

Reuses `depository.packets.build_packet` with both deposits (each gets its certificate, witnesses and
inclusion proof pages and its proof.json) plus a `Comparison`, which puts the comparison page first: the
work's earlier proven time next to the capture's later one. The capture's WARC is attached as its original
whether it lives in the encrypted content store or in monitoring's capture directory.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from depository.packets import build_packet
from depository.wiring import Services
from evidence.packet import Comparison

__all__ = ["build_infringement_packet"]


def build_infringement_packet(s: Services, alert: Any, *, preliminary: bool = False) -> bytes:
    """Signed PDF; Conflict (409 + Retry-After) while the capture is not yet in a checkpoint."""
    work = s.deposits.get(alert.tenant_id, alert.work_deposit_id)
    capture = s.deposits.get(alert.tenant_id, alert.capture_deposit_id)
    captured_at = None
    raw = capture.metadata.get("captured_at")
    if isinstance(raw, str):
        try:
            captured_at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            captured_at = None
    comparison = Comparison(alert_id=alert.id, work_deposit_id=work.id, capture_deposit_id=capture.id,
                            page_url=alert.page_url, matched_url=alert.matched_url, method=alert.method,
                            score=alert.score, captured_at=captured_at)
    originals = {}
    warc = s.monitoring.capture_bytes(alert.tenant_id, capture.id) if s.monitoring is not None else None
    if warc is not None:
        originals[capture.id] = warc
    return build_packet(s, [work, capture], comparison=comparison, originals=originals, preliminary=preliminary)
