"""Policy as code: which tool actions run, which wait for a person, who may approve.

The rules live in a Cedar file (`default.cedar`, or the team's own named by COPILOT_POLICY);
this module asks Cedar one question per decision and returns the answer as data with the
deciding rule ids (`@id`), a reason (the rules' `@reason`) and the policy set's sha256.

A decision evaluates the request twice in one batch: with `context.approved == false`
(allowed -> "allow"), then with `approved == true` (allowed -> "approval", else "deny").
Cedar denies what no rule permits, so an unknown role is denied without a rule for it. A
tool is placed in `Action::"read"` or `Action::"write"` by the caller's `writes` flag; when
the policy knows the tool registry, a tool missing from it is denied before Cedar is asked,
so not even a team's catch-all permit runs a tool that does not exist.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cedarpy

from copilot.config import Settings
from copilot.errors import ConfigError

DEFAULT_POLICY = Path(__file__).with_name("default.cedar")
SCHEMA = Path(__file__).with_name("schema.cedarschema")
ROLES = ("requester", "approver", "admin")
# Each role is also in the one before it, so rules for approvers cover admins too.
_ROLE_PARENTS = {"requester": [], "approver": ["requester"], "admin": ["approver"]}
_GROUPS = ("read", "write", "approve")
_ACTION_LITERAL = re.compile(r'Action::"((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Decision:
    effect: str  # "allow" | "approval" | "deny"
    rule_ids: tuple[str, ...]  # deciding @id annotations
    reason: str  # always filled
    policy_hash: str  # sha256 of the policy set text

    @property
    def allowed(self) -> bool:
        return self.effect == "allow"

    @property
    def needs_approval(self) -> bool:
        return self.effect == "approval"

    def as_dict(self) -> dict[str, Any]:
        return {
            "effect": self.effect,
            "rule_ids": list(self.rule_ids),
            "reason": self.reason,
            "policy_hash": self.policy_hash,
        }


@dataclass(frozen=True)
class _Rule:
    rule_id: str
    effect: str
    reason: str


class Policy:
    """A parsed, checked policy set; `decide` and `can_approve` are safe across threads."""

    def __init__(self, text: str, source: str, tools: Mapping[str, bool] | None = None) -> None:
        self.text = text
        self.source = source
        self.hash = hashlib.sha256(text.encode()).hexdigest()
        self._tools = dict(tools) if tools is not None else None
        self._set = _parse(text, source)
        self._rules = _rules(text, source)

    @property
    def rule_ids(self) -> list[str]:
        return list(self._rules)

    @classmethod
    def load(cls, path: Path | None, *, tools: Mapping[str, bool] | None = None) -> Policy:
        """The policy in `path` (the shipped default when None), checked against the schema.

        `tools` (name -> writes), when given, is the registry: a tool missing from it is
        denied even if the caller says it reads. Raises ConfigError naming line and message.
        """
        file = path or DEFAULT_POLICY
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"Cannot read the policy file {file}: {exc}. Fix COPILOT_POLICY, "
                "or unset it to use the default policy."
            ) from None
        policy = cls(text, str(file), tools)
        policy.validate()
        return policy

    def validate(self) -> None:
        """Type-check the rules against the schema (typos in attributes, wrong types)."""
        actions = sorted(set(_ACTION_LITERAL.findall(self.text)) - set(_GROUPS))
        if self._tools is not None:
            self._check_tools_known(actions, self._tools)
            actions = sorted(set(actions) | set(self._tools))
        result = cedarpy.validate_policies(self.text, schema_text(actions, self._tools or {}))
        if result.validation_passed:
            return
        error = result.errors[0]
        starts = _statement_lines(self.text)
        index = _index(error.policy_id)
        line = starts[index] if index < len(starts) else 1
        rule = result.id_annotations_by_policy_id.get(error.policy_id, error.policy_id)
        raise ConfigError(
            f"{self.source}: line {line}: rule {rule!r} does not fit the schema: {error.error}. "
            f"The entity model is in {SCHEMA}; fix the rule, or unset COPILOT_POLICY."
        )

    def _check_tools_known(self, actions: list[str], tools: Mapping[str, bool]) -> None:
        """A rule naming a tool the registry lacks is a typo or a stale rule: it would
        silently never match, so refuse it."""
        unknown = [name for name in actions if name not in tools]
        if unknown:
            where = self.text[: self.text.index(f'Action::"{unknown[0]}"')].count("\n") + 1
            raise ConfigError(
                f"{self.source}: line {where}: Action::{json.dumps(unknown[0])} is not a known "
                f"tool; known: {', '.join(sorted(tools))}. Fix the rule's tool name."
            )

    def decide(
        self,
        user: str,
        role: str,
        tool: str,
        *,
        writes: bool,
        target: str,
        tainted: bool = False,
        environment: str = "default",
    ) -> Decision:
        """May `user` (in `role`) run `tool` on `target` now, after approval, or never?"""
        if tool in _GROUPS:
            # A group is `in` itself for Cedar, so asking for it would match the group's rules.
            return Decision("deny", (), f"{tool!r} is an action group, not a tool", self.hash)
        if self._tools is not None and tool not in self._tools:
            # Not even a team's catch-all permit may run a tool that does not exist.
            return Decision("deny", (), f"{tool!r} is not a known tool, so it is denied", self.hash)
        entities = [
            *_role_entities(),
            _user(user, role),
            {"uid": _uid("Action", tool), "attrs": {}, "parents": _groups(writes)},
            {"uid": _uid("Target", target), "attrs": {}, "parents": []},
        ]
        request = {
            "principal": _uid("User", user),
            "action": _uid("Action", tool),
            "resource": _uid("Target", target),
        }
        context = {"tainted": tainted, "environment": environment}
        decision = self._two_step(request, context, entities)
        if decision.effect == "deny" and role not in ROLES:
            return _with_reason(decision, f"{role!r} is not a role ({', '.join(ROLES)})")
        return decision

    def can_approve(
        self,
        approver: str,
        role: str,
        *,
        approval_id: str,
        requested_by: str,
        tool: str,
        target: str,
    ) -> Decision:
        """May `approver` approve this request? Role and four eyes are rules in the policy."""
        entities = [
            *_role_entities(),
            _user(approver, role),
            {"uid": _uid("Action", "approve"), "attrs": {}, "parents": []},
            {"uid": _uid("Target", target), "attrs": {}, "parents": []},
            {
                "uid": _uid("Approval", approval_id),
                "attrs": {
                    "requested_by": {"__entity": _uid("User", requested_by)},
                    "tool": tool,
                    "target": {"__entity": _uid("Target", target)},
                },
                "parents": [],
            },
        ]
        if requested_by != approver:
            # The requester may be of any role, or gone; it only needs to exist as an entity.
            entities.append({"uid": _uid("User", requested_by), "attrs": {}, "parents": []})
        request = {
            "principal": _uid("User", approver),
            "action": _uid("Action", "approve"),
            "resource": _uid("Approval", approval_id),
        }
        context = {"tainted": False, "environment": "default"}
        result = self._evaluate([request], context, entities, approved=(False,))[0]
        ids = self._ids(result)
        if result.allowed:
            return Decision("allow", ids, self._reason(ids, "allow", "approve"), self.hash)
        return Decision("deny", ids, self._reason(ids, "deny", "approve"), self.hash)

    def _two_step(
        self, request: dict[str, Any], context: dict[str, Any], entities: list[dict[str, Any]]
    ) -> Decision:
        first, second = self._evaluate(
            [request, request], context, entities, approved=(False, True)
        )
        tool = request["action"]["id"]
        if first.allowed:
            ids = self._ids(first)
            return Decision("allow", ids, self._reason(ids, "allow", tool), self.hash)
        if second.allowed:
            # What held it back (a forbid, if any) and what lets it through once approved.
            ids = tuple(dict.fromkeys(self._ids(first) + self._ids(second)))
            return Decision("approval", ids, self._reason(ids, "approval", tool), self.hash)
        ids = self._ids(second)
        return Decision("deny", ids, self._reason(ids, "deny", tool), self.hash)

    def _evaluate(
        self,
        requests: list[dict[str, Any]],
        context: dict[str, Any],
        entities: list[dict[str, Any]],
        *,
        approved: tuple[bool, ...],
    ) -> list[cedarpy.AuthzResult]:
        batch = [
            {**req, "context": {**context, "approved": flag}}
            for req, flag in zip(requests, approved, strict=True)
        ]
        results = cedarpy.is_authorized_batch(batch, self._set, entities)
        for result in results:
            if result.diagnostics.errors:
                # A rule that errors is skipped by Cedar; say so rather than hide it.
                raise ConfigError(
                    f"{self.source}: a rule failed while deciding: "
                    f"{'; '.join(map(str, result.diagnostics.errors))}"
                )
        return results

    def _ids(self, result: cedarpy.AuthzResult) -> tuple[str, ...]:
        names = result.diagnostics.id_annotations_by_reason
        return tuple(sorted(names.get(pid) or pid for pid in result.diagnostics.reasons))

    def _reason(self, ids: tuple[str, ...], effect: str, action: str) -> str:
        why = [self._rules[i].reason for i in ids if i in self._rules and self._rules[i].reason]
        if why:
            return f"{action}: " + "; ".join(why)
        if effect == "deny":
            return f"{action}: no rule of the policy permits it, so it is denied"
        if effect == "approval":
            return f"{action}: allowed only once a person approves it ({', '.join(ids)})"
        return f"{action}: allowed by {', '.join(ids)}"


def load_policy(settings: Settings, tools: Mapping[str, bool] | None = None) -> Policy:
    """The policy the app and the CLI use: COPILOT_POLICY or the shipped default.

    Called at start, so a broken file stops the app with the same message as `policy check`.
    """
    return Policy.load(settings.policy, tools=tools)


def schema_text(actions: list[str], tools: Mapping[str, bool]) -> str:
    """The shipped schema plus one declaration per tool action the policy names."""
    lines = [SCHEMA.read_text(encoding="utf-8")]
    # Cedar rejects a rule on a group with no member; these stand for tools not named.
    actions = [*actions, "any.read_tool", "any.write_tool"]
    tools = {**tools, "any.read_tool": False, "any.write_tool": True}
    for name in actions:
        groups = ('"write"' if tools[name] else '"read"') if name in tools else '"read", "write"'
        lines.append(
            f"action {json.dumps(name)} in [{groups}] "
            "appliesTo { principal: User, resource: Target, context: Context };"
        )
    return "\n".join(lines)


def _parse(text: str, source: str) -> cedarpy.PolicySet:
    try:
        return cedarpy.PolicySet.from_str(text)
    except ValueError as exc:
        line = _error_line(text)
        raise ConfigError(
            f"{source}: line {line}: {exc}. Fix the rule, or unset COPILOT_POLICY to use "
            "the default policy; `python -m copilot policy check FILE` checks it."
        ) from None


def _error_line(text: str) -> int:
    """Cedar's parse errors carry no position here: find the first line whose prefix already
    fails for a reason other than running out of input."""
    lines = text.splitlines()
    for number in range(1, len(lines) + 1):
        try:
            cedarpy.PolicySet.from_str("\n".join(lines[:number]))
        except ValueError as exc:
            if "unexpected end of input" not in str(exc):
                return number
    last = [n for n, line in enumerate(lines, 1) if line.strip()]
    return last[-1] if last else 1


def _statement_lines(text: str) -> list[int]:
    """First line of each policy statement (annotations included), in order."""
    starts: list[int] = []
    line, in_string, in_comment, pending = 1, False, False, True
    previous = ""
    for char in text:
        if in_comment:
            in_comment = char != "\n"
        elif in_string:
            in_string = not (char == '"' and previous != "\\")
        elif char == "/" and previous == "/":
            in_comment = True
        elif char == '"':
            in_string = True
        elif char == ";":
            pending = True
        elif pending and not char.isspace() and char != "/":
            starts.append(line)
            pending = False
        if char == "\n":
            line += 1
        previous = char
    return starts


def _rules(text: str, source: str) -> dict[str, _Rule]:
    """Rules by @id, in file order. Two rules with one @id would make stored decisions
    ambiguous, so that is refused."""
    data = json.loads(cedarpy.policies_to_json_str(text))
    rules: dict[str, _Rule] = {}
    starts = _statement_lines(text)
    for pid, body in sorted(data.get("staticPolicies", {}).items(), key=lambda kv: _index(kv[0])):
        notes = body.get("annotations", {})
        rule_id = notes.get("id") or pid
        if rule_id in rules:
            index = _index(pid)
            line = starts[index] if index < len(starts) else 1
            raise ConfigError(
                f"{source}: line {line}: a second rule is @id({json.dumps(rule_id)}); give "
                "each rule its own @id, since decisions record them."
            )
        rules[rule_id] = _Rule(rule_id, body["effect"], notes.get("reason", ""))
    return rules


def _index(policy_id: str) -> int:
    """Cedar numbers the policies of a file policy0, policy1, ... in order."""
    return int(policy_id[6:]) if policy_id.startswith("policy") and policy_id[6:].isdigit() else 0


def _uid(kind: str, name: str) -> dict[str, str]:
    return {"type": kind, "id": name}


def _groups(writes: bool) -> list[dict[str, str]]:
    return [_uid("Action", "write" if writes else "read")]


def _user(name: str, role: str) -> dict[str, Any]:
    return {"uid": _uid("User", name), "attrs": {}, "parents": [_uid("Role", role)]}


def _role_entities() -> list[dict[str, Any]]:
    return [
        {"uid": _uid("Role", r), "attrs": {}, "parents": [_uid("Role", p) for p in parents]}
        for r, parents in _ROLE_PARENTS.items()
    ]


def _with_reason(decision: Decision, reason: str) -> Decision:
    return Decision(decision.effect, decision.rule_ids, reason, decision.policy_hash)
