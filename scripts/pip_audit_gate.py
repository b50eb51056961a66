"""Audit the installed virtualenv with pip-audit (PyPI's advisory data); fail on a known vulnerability.

pip-audit needs the network: it asks PyPI's JSON API for each installed version's advisories. Where
that service cannot be reached (a sandbox whose package mirror serves only the simple index), every
package comes back "not found on PyPI" or the run fails to connect. That is not a clean bill of health,
and it is not a vulnerability either: the gate then says so, loudly, and does not fail the build.

    python scripts/pip_audit_gate.py

When only PyPI's per-project pages answer (seen here), they are used instead: see project_page_audit.
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
        print(f"pip-audit: the advisory service answered for none of the {len(deps)} installed packages; "
              "falling back to PyPI's project pages")
        return project_page_audit()
    note = f"; {len(skipped)} not found on PyPI and not audited" if skipped else ""
    print(f"pip-audit: no known vulnerabilities in {audited} audited packages{note}")
    return 0


def project_page_audit() -> int:
    """Where PyPI's per-release JSON (what pip-audit asks) is unreachable but its per-project JSON answers:
    that page lists the advisories of the project's *latest* release, so it audits exactly the installed
    packages that are at their latest release; every other package is named as not audited."""
    import importlib.metadata
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    installed = {d.metadata["Name"]: d.version for d in importlib.metadata.distributions()
                 if d.metadata["Name"] and d.metadata["Name"].lower() not in OWN}

    def page(name: str) -> tuple[str, str | None, list[dict[str, object]]]:
        try:
            with urllib.request.urlopen(f"https://pypi.org/pypi/{name}/json", timeout=20) as r:
                data = json.load(r)
            return name, data["info"]["version"], data.get("vulnerabilities") or []
        except Exception:  # unreachable, or not on PyPI: not audited
            return name, None, []

    with ThreadPoolExecutor(16) as pool:
        pages = list(pool.map(page, sorted(installed)))
    audited, vulnerable, behind, unreachable = 0, [], [], []
    for name, latest, vulns in pages:
        if latest is None:
            unreachable.append(name)
        elif latest != installed[name]:
            behind.append(f"{name} {installed[name]} (latest {latest})")
        else:
            audited += 1
            if vulns:
                vulnerable.append((name, latest, vulns))
    for name, version, vulns in vulnerable:
        ids = ", ".join(str(v.get("id")) for v in vulns)
        print(f"pip-audit (PyPI project pages): {name} {version}: {ids}")
    if audited == 0:
        print(f"pip-audit: NOT AUDITED -- neither the advisory service nor PyPI's project pages answered for any "
              f"of the {len(installed)} installed packages; this is not a pass")
        return 0
    print(f"pip-audit (PyPI project pages): {len(vulnerable)} vulnerable of {audited} audited packages at their "
          f"latest release; NOT AUDITED, older than the latest release: {', '.join(behind) or 'none'}; "
          f"unreachable: {', '.join(unreachable) or 'none'}")
    return 1 if vulnerable else 0


if __name__ == "__main__":
    sys.exit(main())
