"""What the notary tells /healthz and /metrics: each witness's size, lag and last error; the TSA's."""

from __future__ import annotations

from typing import Any

from depository.log import Log
from depository.notary.backoff import Backoff
from depository.notary.store import NotaryStore
from depository.notary.witnessing import Witnessing


def health(the_log: Log, store: NotaryStore, witnessing: Witnessing, stamping_on: bool,
           tsa_backoff: Backoff) -> dict[str, Any]:
    """`witnesses` and `tsa` checks for /healthz: degraded while a party fails (deposits go on)."""
    out: dict[str, Any] = {}
    latest = the_log.latest_checkpoint()
    if witnessing.policy is not None:
        progress = store.progress_rows()
        members: dict[str, Any] = {}
        for ep in witnessing.endpoints:
            row = progress.get(ep.key)
            err = row.last_error if row else ep.backoff.last_error
            members[ep.key] = {"url": ep.url, "size": row.size if row else 0,
                               "lag": latest.size - (row.size if row else 0),
                               "status": "ok" if not err else "error", "last_error": err}
        bad = any(m["status"] != "ok" for m in members.values())
        out["witnesses"] = {"status": "degraded" if bad else "ok", "quorum": witnessing.policy.quorum,
                            "witnessed_size": store.witnessed_size(), "members": members}
    if stamping_on:
        pending = store.count_untimestamped()
        err = tsa_backoff.last_error
        out["tsa"] = {"status": "degraded" if err or pending > 1 else "ok",
                      "untimestamped_checkpoints": pending, "last_error": err}
    return out


def metrics_lines(the_log: Log, store: NotaryStore, witnessing: Witnessing, stamping_on: bool,
                  tsa_backoff: Backoff, queue_depth: int) -> list[str]:
    """Prometheus lines: witness lag and errors, TSA errors, queue depth, untimestamped checkpoints."""
    latest = the_log.latest_checkpoint()
    lines = [
        "# HELP depository_notary_queue_depth Checkpoints waiting for the notary worker.",
        "# TYPE depository_notary_queue_depth gauge",
        f"depository_notary_queue_depth {queue_depth}",
    ]
    if witnessing.policy is not None:
        progress = store.progress_rows()
        lines += ["# HELP depository_witness_lag_entries Leaves the witness has not cosigned yet.",
                  "# TYPE depository_witness_lag_entries gauge"]
        for ep in witnessing.endpoints:
            row = progress.get(ep.key)
            lines.append(f'depository_witness_lag_entries{{witness="{_label(ep.key)}"}} '
                         f"{latest.size - (row.size if row else 0)}")
        lines += ["# HELP depository_witness_errors_total Failed witness requests (this process).",
                  "# TYPE depository_witness_errors_total counter"]
        lines += [f'depository_witness_errors_total{{witness="{_label(ep.key)}"}} {ep.backoff.errors_total}'
                  for ep in witnessing.endpoints]
        if witnessing.last_latency_s is not None:
            lines += ["# HELP depository_witness_latency_seconds Checkpoint publication to quorum, last.",
                      "# TYPE depository_witness_latency_seconds gauge",
                      f"depository_witness_latency_seconds {witnessing.last_latency_s:.3f}"]
    if stamping_on:
        lines += ["# HELP depository_tsa_errors_total Failed TSA requests (this process).",
                  "# TYPE depository_tsa_errors_total counter",
                  f"depository_tsa_errors_total {tsa_backoff.errors_total}",
                  "# HELP depository_checkpoints_untimestamped Checkpoints still without a token.",
                  "# TYPE depository_checkpoints_untimestamped gauge",
                  f"depository_checkpoints_untimestamped {store.count_untimestamped()}"]
    return lines


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
