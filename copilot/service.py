"""Wiring: builds the store, retriever and runtime from Settings for every entry point."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from copilot.agents import Copilot
from copilot.config import Settings
from copilot.embeddings import get_embedder
from copilot.guard import Redactor
from copilot.index import Encoder
from copilot.llm import Models, get_provider
from copilot.retriever import Retriever
from copilot.store import Store


def open_store(settings: Settings) -> Store:
    return Store(
        settings.db_path,
        lock_timeout_s=settings.db_lock_timeout_s,
        redact=Redactor(settings.secret_values()),
    )


def make_retriever(settings: Settings, encoder: Callable[[], Encoder] = get_embedder) -> Retriever:
    return Retriever(settings.corpus, settings.index_dir, encoder)


@dataclass
class Services:
    settings: Settings
    store: Store = field(init=False)
    retriever: Retriever = field(init=False)

    def __post_init__(self) -> None:
        self.store = open_store(self.settings)
        self.retriever = make_retriever(self.settings)

    def copilot(self, provider: str | None = None) -> Copilot:
        settings = self.settings.with_provider(provider) if provider else self.settings
        return Copilot(settings, self.store, self.retriever, Models(get_provider(settings)))
