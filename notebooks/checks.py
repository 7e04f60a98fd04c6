"""System checks: a RAGFlow setup that cannot make agents is found at start-up, not at the first chat."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Warning, register

from notebooks.ragflow.dsl import DEFAULT_TEMPLATE, dsl_build, template_load


@register()
def check_ragflow_agent_settings(app_configs=None, **kwargs):
    if not settings.RAGFLOW_BASE_URL:
        return []
    errors = []
    if not settings.RAGFLOW_LLM_ID:
        errors.append(
            Warning(
                "RAGFLOW_BASE_URL is set but RAGFLOW_LLM_ID is not: no notebook's agent can be created.",
                hint="Set it to a chat model RAGFlow knows for the key's tenant, e.g. 'qwen-plus@Tongyi-Qianwen'.",
                id="notebooks.W001",
            )
        )
    try:
        # Filled in with stand-ins: a placeholder left outside the places filled in fails here too.
        dsl_build(template=template_load(name=DEFAULT_TEMPLATE), dataset_id="dataset", llm_id="llm")
    except (OSError, ValueError) as exc:
        errors.append(Error(f"The agent template {DEFAULT_TEMPLATE!r} cannot be used: {exc}", id="notebooks.E001"))
    return errors
