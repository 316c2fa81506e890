"""Settings, built once by each entry point from the environment and `.env`.

No import-time singleton: the CLI, the Streamlit app and the sidecar call `Settings.load()`;
tests build `Settings(home=tmp_path, ...)` directly.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import dotenv_values

from copilot.errors import ConfigError

PROVIDERS = ("stub", "openai", "azure")
BUDGET_ACTIONS = ("fallback", "stop")
AUTH_MODES = ("local", "header", "oidc", "none")
MAX_TASK_CHARS = 8000


@dataclass(frozen=True)
class Settings:
    home: Path = Path("runtime")
    """COPILOT_HOME: folder holding the governance DB and the search index."""
    corpus: Path = Path("corpus")
    """COPILOT_CORPUS: folder of Markdown runbooks the retriever indexes."""
    user: str = "analyst"
    """COPILOT_USER: who is recorded as the actor when no user is given."""
    top_k: int = 4
    """COPILOT_TOP_K: passages retrieved per task and per step."""
    budget_usd: float = 0.0
    """COPILOT_BUDGET_USD: spend limit per UTC day across all runs; 0 means no limit."""
    db_lock_timeout_s: float = 20.0
    """COPILOT_DB_LOCK_TIMEOUT: seconds to keep retrying while another process holds the DB."""
    database_url: str = ""
    """COPILOT_DATABASE_URL: postgresql://USER[:PASSWORD]@HOST[:PORT]/DB puts the governance
    store on PostgreSQL (several replicas); empty: the DuckDB file under COPILOT_HOME."""
    llm_provider: str = "stub"
    """LLM_PROVIDER: stub (offline, default), openai or azure."""
    openai_api_key: str = ""
    """OPENAI_API_KEY: key for OpenAI or an OpenAI-compatible server."""
    openai_model: str = "gpt-4o-mini"
    """OPENAI_MODEL: model name sent to OpenAI or the compatible server."""
    openai_base_url: str = ""
    """OPENAI_BASE_URL: base URL of an OpenAI-compatible server (Ollama, vLLM, ...)."""
    azure_endpoint: str = ""
    """AZURE_OPENAI_ENDPOINT: https://<resource>.openai.azure.com"""
    azure_api_key: str = ""
    """AZURE_OPENAI_API_KEY: key of the Azure OpenAI resource."""
    azure_deployment: str = ""
    """AZURE_OPENAI_DEPLOYMENT: deployment name (Azure's word for the model)."""
    azure_api_version: str = "2024-10-21"
    """AZURE_OPENAI_API_VERSION: REST API version sent to Azure."""
    llm_rate_limit_per_min: int = 60
    """LLM_RATE_LIMIT_PER_MIN: client-side request limit shared by all threads of a process."""
    llm_max_attempts: int = 4
    """LLM_MAX_ATTEMPTS: attempts per call (first try included) on 429/5xx/timeouts."""
    llm_timeout_s: float = 30.0
    """LLM_TIMEOUT_S: seconds one HTTP request may take."""
    llm_max_retry_s: float = 60.0
    """LLM_MAX_RETRY_S: total seconds one call may spend across retries."""
    policy: Path | None = None
    """COPILOT_POLICY: a team's Cedar policy file; unset = the shipped default policy."""
    budget_run_usd: float = 0.0
    """COPILOT_BUDGET_RUN_USD: LLM spend limit per run; 0 means no limit."""
    budget_user_usd: float = 0.0
    """COPILOT_BUDGET_USER_USD: LLM spend limit per user per UTC day; 0 means no limit."""
    budget_action: str = "fallback"
    """COPILOT_BUDGET_ACTION: when a call cannot be reserved, fallback (offline) or stop."""
    approval_ttl_s: float = 86400.0
    """COPILOT_APPROVAL_TTL_S: seconds an approval request stays decidable."""
    github_token: str = field(default="", repr=False)
    """GITHUB_TOKEN: token for the GitHub API; empty = sandbox repository under COPILOT_HOME."""
    github_api_url: str = "https://api.github.com"
    """GITHUB_API_URL: REST API root; https://<host>/api/v3 for GitHub Enterprise."""
    github_repository: str = "acme/infra"
    """GITHUB_REPOSITORY: owner/name the GitHub tools act on by default."""
    jira_base_url: str = ""
    """JIRA_BASE_URL: https://<site>.atlassian.net; empty = sandbox tickets in the store."""
    jira_email: str = ""
    """JIRA_EMAIL: the Atlassian account the API token belongs to."""
    jira_api_token: str = field(default="", repr=False)
    """JIRA_API_TOKEN: API token of JIRA_EMAIL (id.atlassian.com, Security, API tokens)."""
    jira_project: str = "OPS"
    """JIRA_PROJECT: default project key for new tickets and searches."""
    mcp_servers: str = ""
    """COPILOT_MCP_SERVERS: JSON or TOML file listing stdio MCP servers; empty = none."""
    tool_timeout_s: float = 20.0
    """TOOL_TIMEOUT_S: seconds one GitHub, Jira or MCP request may take."""
    tool_max_retry_s: float = 60.0
    """TOOL_MAX_RETRY_S: total seconds one tool call may wait on rate limits."""
    auth: str = "local"
    """COPILOT_AUTH: sign-in mode: local (users in the store), header, oidc or none (dev)."""
    auth_user_header: str = "X-Forwarded-User"
    """COPILOT_AUTH_USER_HEADER: header mode: the request header carrying the user name."""
    auth_groups_header: str = "X-Forwarded-Groups"
    """COPILOT_AUTH_GROUPS_HEADER: header mode: the header carrying the user's groups."""
    auth_role_map: str = ""
    """COPILOT_AUTH_ROLE_MAP: header/oidc: group=role pairs, e.g. ops-admins=admin,ops=requester."""
    auth_default_role: str = ""
    """COPILOT_AUTH_DEFAULT_ROLE: header/oidc: role when no group matches; empty = no access."""
    oidc_name_claim: str = "email"
    """COPILOT_OIDC_NAME_CLAIM: oidc: the ID-token claim used as the user name."""
    oidc_role_claim: str = "groups"
    """COPILOT_OIDC_ROLE_CLAIM: oidc: the claim holding the groups COPILOT_AUTH_ROLE_MAP maps."""
    extra: Mapping[str, str] = field(default_factory=dict, repr=False)
    """Anything else read from the environment, for adapters that look up their own keys."""

    def __post_init__(self) -> None:
        self.validate()

    @property
    def db_path(self) -> Path:
        return self.home / "governance.duckdb"

    @property
    def index_dir(self) -> Path:
        return self.home / "index"

    def validate(self) -> None:
        if self.llm_provider not in PROVIDERS:
            raise ConfigError(
                f"LLM_PROVIDER={self.llm_provider!r} is not known; "
                f"use one of {', '.join(PROVIDERS)}."
            )
        if self.llm_provider == "openai" and not self.openai_api_key:
            raise ConfigError(
                "LLM_PROVIDER=openai needs OPENAI_API_KEY; set it in .env (any placeholder "
                "will do for a local server that needs no key), or use LLM_PROVIDER=stub."
            )
        if self.llm_provider == "azure":
            missing = [
                name
                for name, value in (
                    ("AZURE_OPENAI_ENDPOINT", self.azure_endpoint),
                    ("AZURE_OPENAI_API_KEY", self.azure_api_key),
                    ("AZURE_OPENAI_DEPLOYMENT", self.azure_deployment),
                )
                if not value
            ]
            if missing:
                raise ConfigError(
                    f"LLM_PROVIDER=azure needs {', '.join(missing)}; set them in .env, "
                    "or use LLM_PROVIDER=stub."
                )
        self._validate_tools()
        self._validate_auth()
        _check_range("COPILOT_TOP_K", self.top_k, 1, 50)
        _check_range("LLM_RATE_LIMIT_PER_MIN", self.llm_rate_limit_per_min, 1, 100_000)
        _check_range("LLM_MAX_ATTEMPTS", self.llm_max_attempts, 1, 10)
        _check_range("COPILOT_BUDGET_USD", self.budget_usd, 0, 1_000_000)
        _check_range("COPILOT_BUDGET_RUN_USD", self.budget_run_usd, 0, 1_000_000)
        _check_range("COPILOT_BUDGET_USER_USD", self.budget_user_usd, 0, 1_000_000)
        _check_range("COPILOT_APPROVAL_TTL_S", self.approval_ttl_s, 1, 365 * 86400)
        if self.budget_action not in BUDGET_ACTIONS:
            raise ConfigError(
                f"COPILOT_BUDGET_ACTION={self.budget_action!r} is not known; "
                f"use one of {', '.join(BUDGET_ACTIONS)}."
            )
        _check_range("COPILOT_DB_LOCK_TIMEOUT", self.db_lock_timeout_s, 0.1, 600)
        if self.database_url and urlsplit(self.database_url).scheme not in _PG_SCHEMES:
            raise ConfigError(
                "COPILOT_DATABASE_URL must be postgresql://USER@HOST[:PORT]/DB (the password "
                "may come from PGPASSWORD); unset it to use the DuckDB file under COPILOT_HOME."
            )
        _check_range("LLM_TIMEOUT_S", self.llm_timeout_s, 0.1, 600)
        _check_range("LLM_MAX_RETRY_S", self.llm_max_retry_s, 0.1, 3600)

    def _validate_tools(self) -> None:
        if self.github_token and not re.fullmatch(r"[\w.-]+/[\w.-]+", self.github_repository):
            raise ConfigError(
                f"GITHUB_REPOSITORY={self.github_repository!r} is not owner/name; fix it in .env."
            )
        jira = {
            "JIRA_BASE_URL": self.jira_base_url,
            "JIRA_EMAIL": self.jira_email,
            "JIRA_API_TOKEN": self.jira_api_token,
        }
        missing = [name for name, value in jira.items() if not value]
        if 0 < len(missing) < len(jira):
            raise ConfigError(
                f"Jira needs {', '.join(missing)} as well; set them in .env, or unset all "
                "JIRA_* settings to use sandbox tickets."
            )
        _check_range("TOOL_TIMEOUT_S", self.tool_timeout_s, 0.1, 600)
        _check_range("TOOL_MAX_RETRY_S", self.tool_max_retry_s, 0, 3600)

    def _validate_auth(self) -> None:
        # Imported here: the governance package may import settings itself.
        from copilot.errors import InputError
        from copilot.governance.identity import ROLES, parse_role_map

        if self.auth not in AUTH_MODES:
            raise ConfigError(
                f"COPILOT_AUTH={self.auth!r} is not known; use one of {', '.join(AUTH_MODES)}."
            )
        if self.auth_default_role and self.auth_default_role not in ROLES:
            raise ConfigError(
                f"COPILOT_AUTH_DEFAULT_ROLE={self.auth_default_role!r} is not a role; use one "
                f"of {', '.join(ROLES)}, or leave it empty."
            )
        try:
            parse_role_map(self.auth_role_map)
        except InputError as exc:
            raise ConfigError(str(exc)) from None

    def secret_values(self) -> list[str]:
        """Values that must never be stored or logged: configured keys, tokens, passwords."""
        names = ("_KEY", "_TOKEN", "_SECRET", "_PASSWORD", "_PAT")
        values = [self.openai_api_key, self.azure_api_key, self.github_token, self.jira_api_token]
        values.append(urlsplit(self.database_url).password or "")
        values.append(self.extra.get("PGPASSWORD", ""))  # libpq's own variable
        return values + [v for k, v in self.extra.items() if k.upper().endswith(names)]

    def available_providers(self) -> list[str]:
        """Providers whose keys are set, so the UI can offer a switch between them."""
        names = ["stub"]
        if self.openai_api_key:
            names.append("openai")
        if self.azure_endpoint and self.azure_api_key and self.azure_deployment:
            names.append("azure")
        return names

    def with_provider(self, name: str) -> Settings:
        return dataclasses.replace(self, llm_provider=name)

    @classmethod
    def load(
        cls,
        environ: Mapping[str, str] | None = None,
        dotenv: Path | None = Path(".env"),
        **overrides: object,
    ) -> Settings:
        """Settings from `.env` (lower priority) and the environment (higher)."""
        env: dict[str, str] = {}
        if dotenv is not None and dotenv.is_file():
            env.update({k: v for k, v in dotenv_values(dotenv).items() if v is not None})
        env.update(os.environ if environ is None else environ)
        values: dict[str, object] = {}
        for name, (var, kind) in _ENV_FIELDS.items():
            raw = env.get(var, "").strip()
            if raw:
                values[name] = _parse(var, raw, kind)
        values.update(overrides)
        return cls(**values, extra=env)  # type: ignore[arg-type]


_ENV_FIELDS: dict[str, tuple[str, type]] = {
    "home": ("COPILOT_HOME", Path),
    "corpus": ("COPILOT_CORPUS", Path),
    "user": ("COPILOT_USER", str),
    "top_k": ("COPILOT_TOP_K", int),
    "budget_usd": ("COPILOT_BUDGET_USD", float),
    "db_lock_timeout_s": ("COPILOT_DB_LOCK_TIMEOUT", float),
    "database_url": ("COPILOT_DATABASE_URL", str),
    "llm_provider": ("LLM_PROVIDER", str),
    "openai_api_key": ("OPENAI_API_KEY", str),
    "openai_model": ("OPENAI_MODEL", str),
    "openai_base_url": ("OPENAI_BASE_URL", str),
    "azure_endpoint": ("AZURE_OPENAI_ENDPOINT", str),
    "azure_api_key": ("AZURE_OPENAI_API_KEY", str),
    "azure_deployment": ("AZURE_OPENAI_DEPLOYMENT", str),
    "azure_api_version": ("AZURE_OPENAI_API_VERSION", str),
    "llm_rate_limit_per_min": ("LLM_RATE_LIMIT_PER_MIN", int),
    "llm_max_attempts": ("LLM_MAX_ATTEMPTS", int),
    "llm_timeout_s": ("LLM_TIMEOUT_S", float),
    "llm_max_retry_s": ("LLM_MAX_RETRY_S", float),
    "policy": ("COPILOT_POLICY", Path),
    "budget_run_usd": ("COPILOT_BUDGET_RUN_USD", float),
    "budget_user_usd": ("COPILOT_BUDGET_USER_USD", float),
    "budget_action": ("COPILOT_BUDGET_ACTION", str),
    "approval_ttl_s": ("COPILOT_APPROVAL_TTL_S", float),
    "github_token": ("GITHUB_TOKEN", str),
    "github_api_url": ("GITHUB_API_URL", str),
    "github_repository": ("GITHUB_REPOSITORY", str),
    "jira_base_url": ("JIRA_BASE_URL", str),
    "jira_email": ("JIRA_EMAIL", str),
    "jira_api_token": ("JIRA_API_TOKEN", str),
    "jira_project": ("JIRA_PROJECT", str),
    "mcp_servers": ("COPILOT_MCP_SERVERS", str),
    "tool_timeout_s": ("TOOL_TIMEOUT_S", float),
    "tool_max_retry_s": ("TOOL_MAX_RETRY_S", float),
    "auth": ("COPILOT_AUTH", str),
    "auth_user_header": ("COPILOT_AUTH_USER_HEADER", str),
    "auth_groups_header": ("COPILOT_AUTH_GROUPS_HEADER", str),
    "auth_role_map": ("COPILOT_AUTH_ROLE_MAP", str),
    "auth_default_role": ("COPILOT_AUTH_DEFAULT_ROLE", str),
    "oidc_name_claim": ("COPILOT_OIDC_NAME_CLAIM", str),
    "oidc_role_claim": ("COPILOT_OIDC_ROLE_CLAIM", str),
}


_PG_SCHEMES = ("postgresql", "postgres")
_LOWERCASE = ("LLM_PROVIDER", "COPILOT_BUDGET_ACTION", "COPILOT_AUTH")


def _parse(var: str, raw: str, kind: type) -> object:
    if kind is str:
        return (
            raw.lower() if var in ("LLM_PROVIDER", "COPILOT_BUDGET_ACTION", "COPILOT_AUTH") else raw
        )
    try:
        return kind(raw)
    except ValueError:
        raise ConfigError(
            f"{var}={raw!r} is not a valid {kind.__name__}; fix it in .env."
        ) from None


def _check_range(var: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ConfigError(f"{var}={value} is out of range; use a value from {low} to {high}.")
