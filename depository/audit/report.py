"""What an audit found: one `Finding` per discrepancy (`table/key: got X, want Y`), and the report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: Findings kept in full; past this the report counts the rest (a wholesale damaged table is not 10^7 lines).
MAX_FINDINGS = 1000


@dataclass(frozen=True)
class Finding:
    """`where` is `table/key` (a row, or a row's column: `deposits/dep_1/kind`); `got` what is stored."""

    where: str
    got: str
    want: str
    note: str = ""

    def line(self) -> str:
        tail = f" ({self.note})" if self.note else ""
        return f"{self.where}: got {self.got}, want {self.want}{tail}"

    def to_json(self) -> dict[str, str]:
        return {"where": self.where, "got": self.got, "want": self.want, "note": self.note}


Progress = Callable[[str, int, int], None]
"""progress(phase, done, total): called as the audit moves through the log (for a progress bar)."""


@dataclass
class AuditReport:
    mode: str = "full"
    from_size: int = 0
    tree_size: int = 0
    next_index: int = 0
    entries: int = 0
    deposits: int = 0
    tiles_checked: int = 0
    checkpoints: int = 0
    checkpoint_seq: int | None = None
    cosignatures: int = 0
    timestamps: int = 0
    open_halts: list[dict[str, Any]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    more_findings: int = 0

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def finding_count(self) -> int:
        return len(self.findings) + self.more_findings

    @property
    def problems(self) -> list[str]:
        """The findings as lines (what the CLI prints)."""
        return [f.line() for f in self.findings]

    def add(self, where: str, got: object, want: object, note: str = "") -> None:
        if len(self.findings) < MAX_FINDINGS:
            self.findings.append(Finding(where, _show(got), _show(want), note))
        else:
            self.more_findings += 1

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "mode": self.mode, "from_size": self.from_size, "tree_size": self.tree_size,
            "next_index": self.next_index, "entries": self.entries, "deposits": self.deposits,
            "tiles_checked": self.tiles_checked, "checkpoints": self.checkpoints,
            "checkpoint_seq": self.checkpoint_seq, "cosignatures": self.cosignatures,
            "timestamps": self.timestamps, "open_halts": self.open_halts,
            "findings": [f.to_json() for f in self.findings], "more_findings": self.more_findings,
            "problems": self.problems,
        }


def _show(value: object) -> str:
    """A value as a finding prints it: bytes as hex (cut), text quoted, None as NULL."""
    if value is None:
        return "NULL"
    if isinstance(value, bytes | bytearray | memoryview):
        b = bytes(value)
        return b[:32].hex() + ("…" if len(b) > 32 else "") + f" ({len(b)} bytes)"
    if isinstance(value, str):
        return repr(value[:120] + ("…" if len(value) > 120 else ""))
    return str(value)
