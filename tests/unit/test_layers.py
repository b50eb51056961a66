"""Dependencies point one way: cli -> depository -> (evidence, notary_bridge); evidence imports none of ours.

Imports are read from the source (ast), so a lazy import inside a function counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = {
    "evidence": {"evidence"},
    "notary_bridge": {"notary_bridge", "evidence"},
    "depository": {"depository", "evidence", "notary_bridge"},
    "cli": {"cli", "depository", "evidence", "notary_bridge"},
}
FORBIDDEN_IN_LIBRARY = {"click"}
IO_MODULES = {"sqlalchemy", "flask", "requests", "urllib.request", "http.client", "socket", "redis", "rq"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_it_may(package: str) -> None:
    ours = set(ALLOWED)
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        if "migrations" in path.parts:
            continue
        for name in _imports(path):
            top = name.split(".")[0]
            if top in ours and top not in ALLOWED[package]:
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
            if package != "cli" and top in FORBIDDEN_IN_LIBRARY:
                bad.append(f"{path.relative_to(ROOT)} imports {name} (the library never imports click)")
            if package == "evidence" and (name in IO_MODULES or top in IO_MODULES):
                bad.append(f"{path.relative_to(ROOT)} imports {name} (evidence does no network or database I/O)")
    assert not bad, "\n".join(bad)
