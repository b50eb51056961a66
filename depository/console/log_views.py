"""The log page: latest checkpoint, each witness's progress and lag, the tenant's deposits per day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from flask import render_template

from depository.console import queries
from depository.console.web import bp, current_user, services

CHART_W, CHART_H, CHART_PAD = 600, 160, 20


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    w: float
    h: float
    day: date
    count: int


def chart_bars(series: list[tuple[date, int]]) -> tuple[list[Bar], int]:
    """Bar geometry for the inline SVG chart (no script, so it also works under our CSP)."""
    top = max((c for _, c in series), default=0) or 1
    slot = CHART_W / max(1, len(series))
    inner = CHART_H - CHART_PAD
    bars = [Bar(round(i * slot + slot * 0.1, 2), round(inner - inner * c / top, 2), round(slot * 0.8, 2),
                round(inner * c / top, 2), d, c) for i, (d, c) in enumerate(series)]
    return bars, top


@bp.get("/log")
def log_page() -> str:
    s = services()
    cp = s.log.latest_checkpoint_or_none()
    size, next_index = s.log.sizes()
    note = s.notary_checkpoint_text(cp) if cp is not None else ""
    wits = queries.witnesses(s, cp.size if cp else 0, cp.created_at if cp else None)
    series = queries.deposits_per_day(s, current_user().tenant_id)
    bars, top = chart_bars(series)
    return render_template("console/log.html", cp=cp, note=note, size=size, pending=next_index - size,
                           witnesses=wits, quorum=queries.quorum(s), bars=bars, top=top, series=series,
                           total=sum(c for _, c in series), chart_w=CHART_W, chart_h=CHART_H,
                           now=datetime.now(UTC))
