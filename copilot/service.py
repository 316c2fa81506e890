"""Wiring: the one place that builds the store, retriever, tools, policy and run engine from
Settings, for every entry point (app, CLI, sidecar)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

from copilot.config import Settings
from copilot.embeddings import Encoder, get_embedder
from copilot.errors import ConfigError
from copilot.governance import identity
from copilot.governance.policy import Decision, Policy, load_policy
from copilot.guard import Redactor
from copilot.llm import Models, get_provider
from copilot.pgstore import PgStore, is_postgres_url
from copilot.retriever import Retriever
from copilot.run.context import PolicyDecision, RunContext
from copilot.run.engine import Engine, sweep
from copilot.run.state import RunState
from copilot.store import Store
from copilot.tools import Toolbox


def open_store(settings: Settings) -> Store:
    """The DuckDB file under COPILOT_HOME, or PostgreSQL when COPILOT_DATABASE_URL is set."""
    return store_at(
        settings.database_url or settings.db_path,
        redact=Redactor(settings.secret_values()),
        home=settings.home,
        lock_timeout_s=settings.db_lock_timeout_s,
    )


def store_at(
    target: str | Path,
    *,
    redact: Redactor | None = None,
    home: Path | None = None,
    lock_timeout_s: float = 20.0,
) -> Store:
    """A store from a DuckDB file path or a postgresql:// URL. Both have the same interface;
    the PostgreSQL store is typed as `Store` for callers. `home` keeps PostgreSQL's audit
    head file beside the app's other files (a DuckDB file keeps it beside itself)."""
    if is_postgres_url(str(target)):
        pg: Any = PgStore(str(target), home=home, redact=redact, lock_timeout_s=lock_timeout_s)
        return cast(Store, pg)
    return Store(Path(target), lock_timeout_s=lock_timeout_s, redact=redact)


def make_retriever(settings: Settings, encoder: Callable[[], Encoder] = get_embedder) -> Retriever:
    return Retriever(settings.corpus, settings.index_dir, encoder)


class CedarPolicy:
    """The Cedar policy as the engine's policy port: rule ids and hash travel with each answer."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def decide(
        self, user: str, role: str, tool: str, *, writes: bool | None, target: str, tainted: bool
    ) -> PolicyDecision:
        if writes is None:
            return PolicyDecision(
                False, False, "unknown-tool", f"{tool!r} is not a known tool, so it is denied",
                self.policy.hash,
            )  # fmt: skip
        return _port(
            self.policy.decide(user, role, tool, writes=writes, target=target, tainted=tainted)
        )

    def can_approve(
        self,
        approver: str,
        role: str,
        *,
        approval_id: str,
        requested_by: str,
        tool: str,
        target: str,
    ) -> PolicyDecision:
        return _port(
            self.policy.can_approve(
                approver,
                role,
                approval_id=approval_id,
                requested_by=requested_by,
                tool=tool,
                target=target,
            )
        )


class AllowAll:
    """The evaluation's baseline policy: every known tool runs as the model decides, with no
    approval gate. Never wired for people; it exists to measure what the gates are worth."""

    def decide(
        self, user: str, role: str, tool: str, *, writes: bool | None, target: str, tainted: bool
    ) -> PolicyDecision:
        if writes is None:
            return PolicyDecision(False, False, "unknown-tool", f"{tool!r} is not a known tool")
        return PolicyDecision(True, False, "baseline-allow-all", "baseline: no policy gates")

    def can_approve(
        self,
        approver: str,
        role: str,
        *,
        approval_id: str,
        requested_by: str,
        tool: str,
        target: str,
    ) -> PolicyDecision:
        return PolicyDecision(True, False, "baseline-allow-all", "baseline: no policy gates")


CONFIGS = ("governed", "baseline")
"""governed: policy, approvals, reviewer, guard, budgets (the product); baseline: none of
them, for the evaluation harness (copilot.evaluation)."""


def _port(d: Decision) -> PolicyDecision:
    rule = ",".join(d.rule_ids) or d.effect
    return PolicyDecision(d.allowed, d.needs_approval, rule, d.reason, d.policy_hash)


@dataclass
class Services:
    settings: Settings
    store: Store = field(init=False)
    retriever: Retriever = field(init=False)

    policy: Policy = field(init=False)
    tools: Toolbox = field(init=False)

    def __post_init__(self) -> None:
        self.store = open_store(self.settings)
        self.retriever = make_retriever(self.settings)
        self.tools = Toolbox(self.settings, self.store)
        # A broken policy file stops every entry point here, with its line and message.
        self.policy = load_policy(self.settings, {t.name: t.writes for t in self.tools.specs()})

    def engine(
        self, provider: str | None = None, *, config: str = "governed", models: Models | None = None
    ) -> Engine:
        """The run engine; `config="baseline"` (evaluation only) drops the policy gates, the
        reviewer and the guard; `models` replaces the configured provider (evaluation only)."""
        if config not in CONFIGS:
            raise ConfigError(f"config {config!r} is not known; use one of {', '.join(CONFIGS)}.")
        settings = self.settings.with_provider(provider) if provider else self.settings
        governed = config == "governed"
        return Engine(
            RunContext(
                settings=settings,
                store=self.store,
                retriever=self.retriever,
                models=models or Models(get_provider(settings)),
                tools=self.tools,
                policy=CedarPolicy(self.policy) if governed else AllowAll(),
                approval_ttl=timedelta(seconds=settings.approval_ttl_s),
                role_of=identity.role_lookup(self.store, settings),
                guard=governed,
                review=governed,
            )
        )

    def run(
        self,
        task: str,
        *,
        user: str | None = None,
        provider: str | None = None,
        **kwargs: Any,
    ) -> RunState:
        """Start a run as `user` (default COPILOT_USER) and advance it as far as it goes."""
        return self.engine(provider).start(task, user=user or self.settings.user, **kwargs)

    def sweep(self) -> list[str]:
        """Called once when an entry point starts: runs whose process died become
        `interrupted`, requests past their expiry expire. Returns the interrupted run ids."""
        with self.store.transaction() as tx:
            return sweep(tx)
