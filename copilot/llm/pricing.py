"""USD cost of a response from a price table users can edit (copilot/llm/prices.json).

Prices are per 1M tokens, input and output. A model missing from the table costs None
(recorded as NULL with a warning), never a made-up price. The stub is free.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from copilot.llm.base import LLMResponse

log = logging.getLogger(__name__)
DEFAULT_PRICES = Path(__file__).with_name("prices.json")


class PriceTable:
    def __init__(self, prices: dict[str, dict[str, float]]) -> None:
        self.prices = prices
        self._warned: set[str] = set()

    @classmethod
    def load(cls, path: Path | None = None) -> PriceTable:
        data = json.loads((path or DEFAULT_PRICES).read_text())
        return cls({k: v for k, v in data.items() if not k.startswith("_")})

    def lookup(self, model: str) -> dict[str, float] | None:
        """Exact name first, then the longest known prefix (dated snapshots share a price)."""
        if model in self.prices:
            return self.prices[model]
        prefixes = [k for k in self.prices if model.startswith(k)]
        return self.prices[max(prefixes, key=len)] if prefixes else None

    def cost(self, response: LLMResponse) -> float | None:
        if response.provider == "stub":
            return 0.0
        price = self.lookup(response.model)
        if price is None:
            if response.model not in self._warned:
                self._warned.add(response.model)
                log.warning(
                    "no price for model %r; cost recorded as NULL. Add it to %s",
                    response.model,
                    DEFAULT_PRICES,
                )
            return None
        return (
            response.prompt_tokens * price["input"] + response.completion_tokens * price["output"]
        ) / 1_000_000
