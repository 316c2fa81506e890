from pathlib import Path

import pytest

from copilot.config import Settings
from copilot.errors import ConfigError


def test_defaults_are_offline():
    s = Settings.load(environ={}, dotenv=None)
    assert s.llm_provider == "stub" and s.home == Path("runtime") and s.corpus == Path("corpus")
    assert s.db_path == Path("runtime/governance.duckdb")
    assert s.available_providers() == ["stub"]


def test_environment_overrides_dotenv(tmp_path: Path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("COPILOT_HOME=/from/dotenv\nCOPILOT_TOP_K=7\nOPENAI_MODEL=gpt-4o\n")
    s = Settings.load(environ={"COPILOT_HOME": "/from/env"}, dotenv=dotenv)
    assert s.home == Path("/from/env") and s.top_k == 7 and s.openai_model == "gpt-4o"


@pytest.mark.parametrize(
    "env, message",
    [
        ({"LLM_PROVIDER": "claude"}, "not known; use one of stub, openai, azure"),
        ({"LLM_PROVIDER": "openai"}, "needs OPENAI_API_KEY.*LLM_PROVIDER=stub"),
        (
            {"LLM_PROVIDER": "azure", "AZURE_OPENAI_API_KEY": "k"},
            "AZURE_OPENAI_ENDPOINT, AZURE_OPENAI_DEPLOYMENT",
        ),
        ({"COPILOT_TOP_K": "zero"}, "COPILOT_TOP_K='zero' is not a valid int"),
        ({"LLM_RATE_LIMIT_PER_MIN": "0"}, "LLM_RATE_LIMIT_PER_MIN=0 is out of range"),
        ({"COPILOT_BUDGET_USD": "-1"}, "COPILOT_BUDGET_USD=-1.0 is out of range"),
    ],
)
def test_impossible_settings_fail_at_start_saying_how_to_fix(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.load(environ=env, dotenv=None)


def test_provider_switch_lists_only_configured_providers():
    s = Settings.load(environ={"OPENAI_API_KEY": "sk-x"}, dotenv=None)
    assert s.available_providers() == ["stub", "openai"]
    assert s.with_provider("openai").llm_provider == "openai"
