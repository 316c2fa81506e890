"""The project's exception tree, drawn once.

* CopilotError              anything a user can cause; the message says what to do next
  x ConfigError             missing or impossible settings
  x InputError              a task, query or argument that cannot be used as given
  x CorpusError             the corpus directory is missing, empty or unusable
  x StoreError              the governance DB cannot be opened (damaged, newer version, ...)
    x StoreBusy             it stayed locked by another process too long
  x ProviderError           an LLM call failed after retries (provider, model, attempts)
  x ToolError               a tool adapter failed (status_code, url)
  x PolicyDenied            the policy refused an action (decision)
  x NotFound                an id (run, approval) that does not exist
  x BudgetExceeded          the configured spend limit would be crossed

Each edge (CLI, Streamlit pages, sidecar) translates CopilotError in one place.
"""

from __future__ import annotations

from typing import Any


class CopilotError(Exception):
    """Base class: an error whose message is fit to show to the user."""


class ConfigError(CopilotError):
    pass


class InputError(CopilotError):
    pass


class CorpusError(CopilotError):
    pass


class StoreError(CopilotError):
    pass


class StoreBusy(StoreError):
    pass


class NotFound(CopilotError):
    pass


class BudgetExceeded(CopilotError):
    pass


class ProviderError(CopilotError):
    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        model: str = "",
        attempts: int = 0,
        error_class: str = "",
        retryable: bool = False,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.model = model
        self.attempts = attempts
        self.error_class = error_class or type(self).__name__
        self.retryable = retryable


class ToolError(CopilotError):
    def __init__(self, message: str, *, status_code: int | None = None, url: str = "") -> None:
        super().__init__(message)
        self.status_code = status_code
        self.url = url


class PolicyDenied(CopilotError):
    def __init__(self, message: str, *, decision: Any = None) -> None:
        super().__init__(message)
        self.decision = decision
