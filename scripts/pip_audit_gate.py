"""Audit the installed virtualenv with pip-audit (PyPI's advisory data); fail on a known vulnerability.

pip-audit needs the network: it asks PyPI's JSON API for each installed version's advisories. Where
that service cannot be reached (a sandbox whose package mirror serves only the simple index), every
package comes back "not found on PyPI" or the run fails to connect. That is not a clean bill of health,
and it is not a vulnerability either: the gate then says so, loudly, and does not fail the build.

    python scripts/pip_audit_gate.py
"""

from __future__ import annotations

import json
import subprocess
import sys

OWN = {"evidence-depository"}


def main() -> int:
    out = subprocess.run([sys.executable, "-m", "pip_audit", "--local", "--format", "json", "--progress-spinner",
                          "off", "--timeout", "20"], capture_output=True, text=True, check=False, timeout=900)
    try:
        report = json.loads(out.stdout)
    except ValueError:
        tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"pip-audit: NOT AUDITED -- the advisory service could not be reached ({tail[:300]}); "
              "run scripts/pip_audit_gate.py where PyPI's JSON API is reachable")
        return 0
    deps = [d for d in report.get("dependencies", []) if d.get("name") not in OWN]
    vulnerable = [d for d in deps if d.get("vulns")]
    skipped = [d for d in deps if d.get("skip_reason")]
    audited = len(deps) - len(skipped)
    for d in vulnerable:
        ids = ", ".join(v["id"] + (f" (fixed in {', '.join(v['fix_versions'])})" if v.get("fix_versions") else "")
                        for v in d["vulns"])
        print(f"pip-audit: {d['name']} {d['version']}: {ids}")
    if vulnerable:
        print(f"pip-audit: {len(vulnerable)} vulnerable package(s) of {audited} audited")
        return 1
    if audited == 0:
        print(f"pip-audit: NOT AUDITED -- the advisory service answered for none of the {len(deps)} installed "
              "packages (unreachable from this machine); this is not a pass")
        return 0
    note = f"; {len(skipped)} not found on PyPI and not audited" if skipped else ""
    print(f"pip-audit: no known vulnerabilities in {audited} audited packages{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
