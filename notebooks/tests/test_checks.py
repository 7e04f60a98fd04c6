"""System checks catch a RAGFlow setup that cannot make agents at start-up."""

from __future__ import annotations

from django.core.management import call_command

from notebooks.checks import check_ragflow_agent_settings
from notebooks.ragflow import dsl


def ids() -> set[str]:
    return {message.id for message in check_ragflow_agent_settings()}


def test_without_ragflow_nothing_is_checked(settings):
    settings.RAGFLOW_BASE_URL = ""
    settings.RAGFLOW_LLM_ID = ""

    assert ids() == set()


def test_ragflow_with_its_llm_and_the_repositorys_template_passes(settings):
    settings.RAGFLOW_BASE_URL = "http://ragflow.internal:9380"
    settings.RAGFLOW_LLM_ID = "qwen-plus@Tongyi-Qianwen"

    assert ids() == set()


def test_ragflow_without_an_llm_is_a_warning(settings):
    settings.RAGFLOW_BASE_URL = "http://ragflow.internal:9380"
    settings.RAGFLOW_LLM_ID = ""

    assert ids() == {"notebooks.W001"}


def test_a_template_with_a_placeholder_left_unfilled_is_an_error(settings, template_deploy):
    settings.RAGFLOW_BASE_URL = "http://ragflow.internal:9380"
    settings.RAGFLOW_LLM_ID = "qwen-plus@Tongyi-Qianwen"

    template_deploy(lambda raw: raw["components"]["LLM:Answer"]["obj"]["params"].update(sys_prompt="<DATASET_ID>"))

    assert ids() == {"notebooks.E001"}


def test_a_template_without_its_version_is_an_error(settings, template_deploy):
    settings.RAGFLOW_BASE_URL = "http://ragflow.internal:9380"
    settings.RAGFLOW_LLM_ID = "qwen-plus@Tongyi-Qianwen"

    template_deploy(lambda raw: raw.pop(dsl.VERSION_KEY))

    assert ids() == {"notebooks.E001"}


def test_the_check_is_registered(settings, capsys):
    settings.RAGFLOW_BASE_URL = "http://ragflow.internal:9380"
    settings.RAGFLOW_LLM_ID = ""

    call_command("check")

    assert "notebooks.W001" in capsys.readouterr().err
