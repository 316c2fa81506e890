"""Untrusted text as a type: what came from a runbook, a tool or an MCP server carries its
source and the guard's verdict, so a write built from it cannot forget where it came from.

Taint is deterministic and only grows: a value derived from a flagged one is flagged
(`derive`), and `taint_of` answers "does any input of this action carry a flag?".
"""

from __future__ import annotations

from dataclasses import dataclass, field

from copilot.guard.detector import GuardResult, assess


@dataclass(frozen=True)
class Untrusted:
    text: str
    source: str  # "runbook disk-full.md#triage", "tool github.get_file", "mcp <server>/<tool>"
    flagged: bool = False
    reasons: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def from_result(cls, text: str, source: str, result: GuardResult) -> Untrusted:
        return cls(text, source, result.flagged, tuple(result.reasons))

    @classmethod
    def checked(cls, text: str, source: str) -> Untrusted:
        """Wrap text after running the guard over it (loads the model on first use)."""
        return cls.from_result(text, source, assess(text, source))

    def derive(self, text: str, source: str | None = None) -> Untrusted:
        """New text built from this one keeps its flag and reasons: taint never clears."""
        return Untrusted(text, source or self.source, self.flagged, self.reasons)

    def __str__(self) -> str:
        return self.text


def taint_of(*values: object) -> bool:
    """True when any value (or any item of a list, tuple or set given) is flagged Untrusted.
    Plain strings and other values are not tainted: only what the guard saw carries a flag."""
    return any(_tainted(v) for v in values)


def _tainted(value: object) -> bool:
    if isinstance(value, Untrusted):
        return value.flagged
    if isinstance(value, list | tuple | set | frozenset):
        return taint_of(*value)
    if isinstance(value, dict):
        return taint_of(*value.values())
    return False


def reasons_of(*values: object) -> list[str]:
    """The reasons of every flagged value, in order and without repeats: what the approval
    card shows under "why a person must approve this"."""
    found: list[str] = []
    for value in values:
        if isinstance(value, Untrusted) and value.flagged:
            found += [f"{value.source}: {r}" for r in value.reasons]
        elif isinstance(value, list | tuple | set | frozenset):
            found += reasons_of(*value)
        elif isinstance(value, dict):
            found += reasons_of(*value.values())
    return list(dict.fromkeys(found))
