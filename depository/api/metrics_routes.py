"""`GET /metrics`: Prometheus text exposition of the log and intake."""

from __future__ import annotations

from flask import Blueprint, Response, current_app

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    s = current_app.extensions["depository"]
    size, nxt = s.log.sizes()
    lines = [
        "# HELP depository_tree_size Leaves integrated into the Merkle tree.",
        "# TYPE depository_tree_size gauge",
        f"depository_tree_size {size}",
        "# HELP depository_sequenced_total Entries sequenced (durably indexed).",
        "# TYPE depository_sequenced_total counter",
        f"depository_sequenced_total {nxt}",
        "# HELP depository_pending_entries Entries sequenced but not yet integrated.",
        "# TYPE depository_pending_entries gauge",
        f"depository_pending_entries {nxt - size}",
    ]
    if s.notary is not None:
        lines.extend(s.notary.metrics_lines())
    return Response("\n".join(lines) + "\n", mimetype="text/plain; version=0.0.4")
