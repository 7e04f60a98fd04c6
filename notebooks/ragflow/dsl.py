"""The agent templates: versioned RAGFlow DSL files, filled in for one notebook.

A template is a JSON file in `templates/` holding a v0.20+ agent DSL with two placeholders,
`<DATASET_ID>` (every Retrieval's `kb_ids`, also inside an Agent's tools) and `<LLM_ID>` (every
LLM or Agent component's `llm_id`), plus a top-level `deepsight_template_version` that is stripped
before the DSL goes to RAGFlow. Change a template's DSL, bump its version: the version is stored
on each `RagFlowAgent`, so agents made from an older template can be found.
"""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
DEFAULT_TEMPLATE = "knowledge_base_agent"
VERSION_KEY = "deepsight_template_version"
DATASET_PLACEHOLDER = "<DATASET_ID>"
LLM_PLACEHOLDER = "<LLM_ID>"
_LLM_COMPONENTS = {"LLM", "Agent"}


@dataclass(frozen=True)
class AgentTemplate:
    name: str
    version: str
    #: The DSL with its placeholders; never mutated (`dsl_build` copies it).
    dsl: dict[str, Any]


@functools.cache
def template_load(*, name: str = DEFAULT_TEMPLATE) -> AgentTemplate:
    """Read `templates/<name>.json`; raises `ValueError` for a file without a version."""
    if not name.replace("_", "").isalnum():
        raise ValueError(f"Not a template name: {name!r}")
    raw = json.loads((TEMPLATES_DIR / f"{name}.json").read_text(encoding="utf-8"))
    version = str(raw.pop(VERSION_KEY, "") or "")
    if not version:
        raise ValueError(f"The agent template {name!r} has no {VERSION_KEY!r}")
    return AgentTemplate(name=name, version=version, dsl=raw)


def dsl_build(*, template: AgentTemplate, dataset_id: str, llm_id: str) -> dict[str, Any]:
    """The template's DSL for one notebook: its dataset in every retrieval, the configured LLM."""
    if not dataset_id:
        raise ValueError("An agent DSL needs the notebook's dataset id")
    if not llm_id:
        raise ValueError("An agent DSL needs an LLM id (set RAGFLOW_LLM_ID, e.g. 'qwen-plus@Tongyi-Qianwen')")
    dsl = copy.deepcopy(template.dsl)
    for component in (dsl.get("components") or {}).values():
        obj = component.get("obj") or {}
        params = obj.setdefault("params", {})
        if obj.get("component_name") == "Retrieval":
            params["kb_ids"] = [dataset_id]
        if obj.get("component_name") in _LLM_COMPONENTS:
            params["llm_id"] = llm_id
        for tool in params.get("tools") or ():
            if tool.get("component_name") == "Retrieval":
                tool.setdefault("params", {})["kb_ids"] = [dataset_id]
    text = json.dumps(dsl)
    if DATASET_PLACEHOLDER in text or LLM_PLACEHOLDER in text:
        raise ValueError(f"The agent template {template.name!r} has a placeholder outside the places filled in")
    return dsl
