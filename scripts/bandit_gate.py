"""Run bandit (medium severity and up) over the four packages; fail on any finding not already reviewed.

A finding counts as reviewed when its line carries ruff's suppression for the same check: ruff's `S`
rules are bandit's checks (B608 is S608, B310 is S310, ...), CI enforces them line by line, and each
`# noqa: S6xx` there was argued in review. bandit itself reads only `# nosec`, so without this gate the
same line would need two suppressions that could drift apart.

    python scripts/bandit_gate.py [package ...]
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

PACKAGES = ["depository", "evidence", "notary_bridge", "cli"]


def main() -> int:
    packages = sys.argv[1:] or PACKAGES
    out = subprocess.run([sys.executable, "-m", "bandit", "-q", "-r", *packages, "--severity-level", "medium",
                          "-f", "json"], capture_output=True, text=True, check=False)
    try:
        report = json.loads(out.stdout)
    except ValueError:
        print(f"bandit did not run: {out.stderr.strip()[-500:]}", file=sys.stderr)
        return 2
    open_findings, reviewed = [], 0
    for r in report["results"]:
        ruff_code = "S" + r["test_id"][1:]
        lines = Path(r["filename"]).read_text(encoding="utf-8").splitlines()
        span = r.get("line_range") or [r["line_number"]]
        text = "\n".join(lines[min(span) - 1:max(span)])
        if re.search(rf"#\s*noqa:[^\n]*\b{ruff_code}\b", text):
            reviewed += 1
            continue
        open_findings.append(f"{r['filename']}:{r['line_number']}: {r['test_id']} {r['issue_severity']} "
                             f"{r['issue_text']}")
    for f in open_findings:
        print(f)
    print(f"bandit: {len(report['results'])} medium+ findings, {reviewed} reviewed (ruff noqa on the line), "
          f"{len(open_findings)} open")
    return 1 if open_findings else 0


if __name__ == "__main__":
    sys.exit(main())
