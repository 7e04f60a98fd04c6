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


def test_the_chat_panel_speaks_of_the_hosts_containers_only_in_the_hosts_words():
    from django.template.loader import render_to_string

    plain = render_to_string("chat_sessions/chat_panel.html", {"chat_api_url": "/api/projects/1/chat/sessions/"})
    worded = render_to_string(
        "chat_sessions/chat_panel.html",
        {"chat_api_url": "/x/", "chat_intro": "Ask about this project.", "chat_empty_hint": "Ask the project."},
    )

    assert "notebook" not in plain.lower()
    assert "Ask a question and the answer appears as it is written." in plain
    assert "Ask about this project." in worded
    assert "Ask the project." in worded


def test_an_unknown_container_is_named_as_the_host_names_its_model(owner_client, settings):
    from chat_sessions.access import container_model

    container_model()._meta.verbose_name = "research project"
    try:
        response = owner_client.get("/api/v1/notebooks/00000000-0000-0000-0000-000000000000/chat/sessions/")
    finally:
        container_model()._meta.verbose_name = "notebook"

    assert response.status_code == 404
    assert response.json() == {"detail": "No such research project."}
