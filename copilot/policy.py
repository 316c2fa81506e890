"""Which tool actions may run, and which wait for a person. Verdicts are data with a reason."""

from __future__ import annotations

from dataclasses import dataclass

from copilot.tools import TOOLS


@dataclass(frozen=True)
class Decision:
    allowed: bool
    needs_approval: bool
    rule: str  # which rule decided
    reason: str  # always filled, stored in the audit row


def decide(tool: str, *, injection_suspected: bool = False) -> Decision:
    spec = TOOLS.get(tool)
    if spec is None:
        return Decision(
            False,
            False,
            "unknown-tool",
            f"{tool!r} is not a known tool; known: {', '.join(sorted(TOOLS))}",
        )
    if not spec.writes:
        return Decision(True, False, "read-only", f"{tool} only reads, so it runs without approval")
    if injection_suspected:
        return Decision(
            False,
            False,
            "injection-suspected",
            f"{tool} writes, and this run shows signs of prompt injection; "
            "re-run the task from trusted input to request it again",
        )
    return Decision(
        True,
        True,
        "write-needs-approval",
        f"{tool} changes an external system, so a person must approve it first",
    )
