"""Service names: which service a task is about, and runbook examples adapted to it.

Runbooks show their commands for one example service (`kubectl get pods -n payments`). An
answer about checkout should say `-n checkout`, and the reviewer should accept exactly that
change and nothing else. Both sides use `substitute` below, so "adapted" means one precise
thing: whole-word names of known services replaced by the task's service. A name glued to
more ("search-api", "orders-processor") is a deployment name the runbook invented for its
example; guessing the task's equivalent would be inventing, so such a command stays as the
runbook has it and the line says it is an example.
"""

from __future__ import annotations

import re
from pathlib import Path

_SEED_SERVICES = Path(__file__).parent / "tools" / "seed" / "infra" / "k8s"
KNOWN_SERVICES: tuple[str, ...] = tuple(
    sorted(p.name for p in _SEED_SERVICES.iterdir() if p.is_dir())
)
"""The platform's services: the folders of infra/k8s in the repository the tools change."""

_CODE = re.compile(r"`([^`\n]+)`")
# Whole word: a service name not glued to letters, digits, '_' or '-' on either side.
_EDGE = r"(?<![\w-]){}(?![\w-])"
_GLUED = r"(?<![\w]){0}-[\w-]+|[\w-]+-{0}(?![\w])"
_NAMESPACE = re.compile(r"(?:^|\s)(?:-n|--namespace)[ =]([a-z0-9][a-z0-9-]*)")


def find_service(text: str, services: tuple[str, ...] | list[str] = KNOWN_SERVICES) -> str | None:
    """The service named first in `text` (lower case), or None."""
    found = [(m.start(), s) for s in services if (m := re.search(rf"\b{re.escape(s)}\b", text))]
    return min(found)[1] if found else None


def task_service(text: str) -> str | None:
    """The service a conversation is about: named in its latest message, else an earlier
    one (messages are lines, oldest first); an explicit namespace counts as the name."""
    for message in reversed(text.lower().splitlines()):
        if explicit := _NAMESPACE.search(message):
            return explicit.group(1)
        if service := find_service(message):
            return service
    return None


def substitute(text: str, target: str) -> str:
    """`text` with every whole-word known service name other than `target` replaced by it."""
    for name in KNOWN_SERVICES:
        if name != target:
            text = re.sub(_EDGE.format(re.escape(name)), target, text)
    return text


def examples_in(command: str, target: str) -> list[str]:
    """Known services other than `target` that `command` names."""
    return [
        s
        for s in KNOWN_SERVICES
        if s != target and re.search(rf"(?<!\w){re.escape(s)}(?![^\W_])", command)
    ]


def adapt_line(line: str, target: str | None) -> str:
    """A runbook line with its `commands` rewritten for `target`; a command that names an
    example service only inside a longer name is kept and the line marked as an example."""
    if not target:
        return line
    kept: list[str] = []

    def one(match: re.Match[str]) -> str:
        command = match.group(1)
        others = examples_in(command, target)
        if not others or command in KNOWN_SERVICES:  # a name mentioned, not a command
            return match.group(0)
        if any(re.search(_GLUED.format(re.escape(s)), command) for s in others):
            kept.extend(s for s in others if s not in kept)
            return match.group(0)
        return f"`{substitute(command, target)}`"

    adapted = _CODE.sub(one, line)
    if kept:
        adapted += f" (the runbook's example is for {', '.join(kept)}; use the names of {target})"
    return adapted
