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


# Flask (and werkzeug) belong to the web layer: the HTTP API, the console, the app factory and server, plus
# two helpers they share -- the spooling request stream of uploads and the request fields of log lines.
WEB_LAYER = ("depository/api/", "depository/console/", "depository/app.py", "depository/server.py",
             "depository/uploads.py", "depository/logging_setup.py")


def test_flask_only_in_the_web_layer() -> None:
    bad = []
    for package in ("depository", "evidence", "notary_bridge"):
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith(WEB_LAYER) or (package == "notary_bridge" and path.name.endswith("_server.py")):
                continue
            if package == "notary_bridge" and path.name == "serving.py":
                continue  # the WSGI thread the TSA and witness servers run in
            for name in _imports(path):
                if name.split(".")[0] in ("flask", "werkzeug"):
                    bad.append(f"{rel} imports {name}")
    assert not bad, "\n".join(bad)
