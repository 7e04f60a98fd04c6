"""The reusable app stays reusable: it never imports the host project's apps."""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parents[1]
HOST_PACKAGES = {"notebooks", "deepsight"}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_chat_sessions_code_never_imports_the_host_project():
    offenders = {
        str(path.relative_to(APP)): sorted(imported_packages(path) & HOST_PACKAGES)
        for path in APP.rglob("*.py")
        if "tests" not in path.parts and imported_packages(path) & HOST_PACKAGES
    }

    assert offenders == {}


def test_the_boundary_check_would_notice_an_import(tmp_path):
    module = tmp_path / "bad.py"
    module.write_text("from notebooks.models import Notebook\n")

    assert imported_packages(module) & HOST_PACKAGES == {"notebooks"}
