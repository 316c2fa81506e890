"""The Cedar policy: the shipped default table-driven, a team's own file, broken files.

No embedding model here: the policy needs nothing but cedarpy.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from copilot import cli
from copilot.config import Settings
from copilot.errors import ConfigError
from copilot.governance.policy import DEFAULT_POLICY, ROLES, Decision, Policy, load_policy

REGISTRY = {"jira.search": False, "jira.create_issue": True, "github.create_pull_request": True}
KIND_TOOL = {"read": ("jira.search", False), "write": ("jira.create_issue", True)}
TEAM_RULES = """
// Approvers open OPS tickets themselves; tainted ones still go to a person.
@id("approvers-open-ops-tickets")
@reason("approvers open OPS tickets without waiting")
permit (principal in Role::"approver", action == Action::"jira.create_issue",
        resource == Target::"jira:OPS");

@id("no-prs-on-prod")
@reason("nobody opens pull requests on the production repository")
forbid (principal, action == Action::"github.create_pull_request",
        resource == Target::"github:acme/prod");
"""


@pytest.fixture(scope="module")
def default() -> Policy:
    return Policy.load(None, tools=REGISTRY)


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    path = tmp_path_factory.mktemp("team") / "team.cedar"
    path.write_text(DEFAULT_POLICY.read_text() + TEAM_RULES)
    return Policy.load(path, tools=REGISTRY)


# kind, role, tainted -> effect, rule ids
DEFAULT_TABLE = [
    *[("read", role, tainted, "allow", ("read-allowed",)) for role in ROLES
      for tainted in (False, True)],
    *[("write", role, False, "approval", ("write-needs-approval",)) for role in ROLES],
    *[("write", role, True, "approval",
       ("tainted-write-needs-approval", "write-needs-approval")) for role in ROLES],
    *[("unknown", role, tainted, "deny", ()) for role in ROLES for tainted in (False, True)],
    ("read", "guest", False, "deny", ()),
    ("write", "guest", False, "deny", ()),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "role", "tainted", "effect", "rules"), DEFAULT_TABLE)
def test_default_policy_decides_each_kind_role_and_taint(
    default: Policy, kind: str, role: str, tainted: bool, effect: str, rules: tuple[str, ...]
) -> None:
    tool, writes = KIND_TOOL.get(kind, ("shell.exec", False))
    decision = default.decide("ann", role, tool, writes=writes, target="jira:OPS", tainted=tainted)
    assert (decision.effect, decision.rule_ids) == (effect, rules)
    assert decision.reason and decision.policy_hash == default.hash
    assert decision.allowed is (effect == "allow")
    assert decision.needs_approval is (effect == "approval")


def test_unknown_tool_is_denied_even_when_the_caller_calls_it_a_read(default: Policy) -> None:
    decision = default.decide("ann", "admin", "shell.exec", writes=False, target="sandbox")
    assert decision.effect == "deny" and "not a known tool" in decision.reason
    # Group names are not tools: nobody can ask for Action::"write" itself.
    for group in ("read", "write", "approve"):
        assert default.decide("ann", "admin", group, writes=False, target="x").effect == "deny"


def test_a_catch_all_team_rule_still_runs_no_unknown_tool(tmp_path: Path) -> None:
    path = tmp_path / "lax.cedar"
    path.write_text('@id("everything")\npermit (principal, action, resource);\n')
    lax = Policy.load(path, tools=REGISTRY)
    assert lax.decide("ann", "requester", "jira.create_issue", writes=True, target="x").allowed
    assert lax.decide("ann", "requester", "shell.exec", writes=True, target="x").effect == "deny"


def test_without_a_registry_the_callers_writes_flag_places_the_tool() -> None:
    policy = Policy.load(None)
    assert policy.decide("ann", "requester", "new.tool", writes=True, target="x").needs_approval
    assert policy.decide("ann", "requester", "new.tool", writes=False, target="x").allowed


# approver role, approver is the requester -> effect, rule ids
APPROVE_TABLE = [
    ("requester", False, "deny", ()),
    ("requester", True, "deny", ("four-eyes",)),
    ("approver", False, "allow", ("approver-may-approve",)),
    ("approver", True, "deny", ("four-eyes",)),
    ("admin", False, "allow", ("approver-may-approve",)),
    ("admin", True, "deny", ("four-eyes",)),
    ("guest", False, "deny", ()),
]


@pytest.mark.parametrize(("role", "self_approval", "effect", "rules"), APPROVE_TABLE)
def test_approving_needs_an_approver_who_is_not_the_requester(
    default: Policy, role: str, self_approval: bool, effect: str, rules: tuple[str, ...]
) -> None:
    requester = "bob" if self_approval else "ann"
    decision = default.can_approve(
        "bob", role, approval_id="ap1", requested_by=requester,
        tool="jira.create_issue", target="jira:OPS",
    )  # fmt: skip
    assert (decision.effect, decision.rule_ids) == (effect, rules)
    if self_approval:
        assert "four eyes" in decision.reason


TEAM_TABLE = [
    ("approver", "jira.create_issue", "jira:OPS", False, "allow", ("approvers-open-ops-tickets",)),
    ("admin", "jira.create_issue", "jira:OPS", False, "allow", ("approvers-open-ops-tickets",)),
    ("approver", "jira.create_issue", "jira:OPS", True, "approval",
     ("tainted-write-needs-approval", "approvers-open-ops-tickets", "write-needs-approval")),
    ("requester", "jira.create_issue", "jira:OPS", False, "approval", ("write-needs-approval",)),
    ("approver", "jira.create_issue", "jira:SEC", False, "approval", ("write-needs-approval",)),
    ("admin", "github.create_pull_request", "github:acme/prod", False, "deny",
     ("no-prs-on-prod",)),
    ("admin", "github.create_pull_request", "github:acme/dev", False, "approval",
     ("write-needs-approval",)),
]  # fmt: skip


@pytest.mark.parametrize(("role", "tool", "target", "tainted", "effect", "rules"), TEAM_TABLE)
def test_team_policy_lets_approvers_open_tickets_but_taint_still_needs_a_person(
    team: Policy, role: str, tool: str, target: str, tainted: bool, effect: str, rules: tuple
) -> None:
    decision = team.decide("bob", role, tool, writes=True, target=target, tainted=tainted)
    assert decision.effect == effect
    assert set(decision.rule_ids) == set(rules)
    assert decision.policy_hash == team.hash != Policy.load(None).hash


BROKEN = """@id("ok")
permit (principal, action in Action::"read", resource);

@id("broken")
forbid (principal, action, resource)
when { context.tainted == };
"""


def test_a_broken_policy_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.cedar"
    path.write_text(BROKEN)
    with pytest.raises(ConfigError, match=r"broken.cedar: line 6: unexpected token"):
        Policy.load(path)
    # The app calls load_policy at start: the same message stops it.
    with pytest.raises(ConfigError, match=r"line 6"):
        load_policy(Settings(home=tmp_path, policy=path))


def test_a_rule_that_does_not_fit_the_schema_is_refused_with_its_id_and_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "typo.cedar"
    path.write_text(DEFAULT_POLICY.read_text() + '\n@id("typo")\npermit (principal, action, '
                    "resource)\nwhen { context.aproved };\n")  # fmt: skip
    lines = path.read_text().splitlines()
    line = lines.index('@id("typo")') + 1
    with pytest.raises(ConfigError, match=rf"line {line}: rule 'typo'.*aproved"):
        Policy.load(path)


def test_cli_policy_check_and_explain(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "broken.cedar"
    bad.write_text(BROKEN)
    home = ["--home", str(tmp_path / "home")]
    assert cli.main([*home, "policy", "check", str(bad)]) == 2
    assert "line 6: unexpected token" in capsys.readouterr().err
    out = io.StringIO()
    assert cli.main([*home, "policy", "check"], stdout=out) == 0
    assert "policy OK" in out.getvalue() and "four-eyes" in out.getvalue()
    out = io.StringIO()
    argv = [*home, "policy", "explain", "--user", "ann", "--role", "requester", "--action",
            "jira.create_issue", "--target", "jira:OPS", "--tainted", "--json"]  # fmt: skip
    assert cli.main(argv, stdout=out) == 0
    answer = json.loads(out.getvalue())
    assert answer["effect"] == "approval"
    assert "tainted-write-needs-approval" in answer["rule_ids"]
    assert answer["policy_hash"] == Policy.load(None).hash
    out = io.StringIO()
    argv = [*home, "policy", "explain", "--user", "bob", "--role", "approver",
            "--action", "approve", "--requested-by", "bob"]  # fmt: skip
    assert cli.main(argv, stdout=out) == 0
    assert "decision: deny" in out.getvalue() and "four-eyes" in out.getvalue()


def test_a_rule_naming_a_tool_the_registry_lacks_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "stale.cedar"
    path.write_text(DEFAULT_POLICY.read_text() + '\n@id("stale")\npermit (principal, '
                    'action == Action::"jira.create_issu", resource);\n')  # fmt: skip
    line = len(DEFAULT_POLICY.read_text().splitlines()) + 3
    with pytest.raises(ConfigError, match=rf"line {line}: Action::\"jira.create_issu\" is not"):
        Policy.load(path, tools=REGISTRY)
    assert Policy.load(path).hash  # without a registry the copilot cannot tell


ENVIRONMENT_AND_APPROVAL_RULES = """
@id("requesters-no-prod-writes")
forbid (principal, action in Action::"write", resource)
when { context.environment == "production" && !(principal in Role::"approver") };

@id("only-admins-approve-github")
forbid (principal, action == Action::"approve", resource is Approval)
when { resource.tool like "github.*" && !(principal in Role::"admin") };
"""


def test_team_rules_can_use_the_environment_and_the_approvals_attributes(tmp_path: Path) -> None:
    path = tmp_path / "team.cedar"
    path.write_text(DEFAULT_POLICY.read_text() + ENVIRONMENT_AND_APPROVAL_RULES)
    policy = Policy.load(path, tools=REGISTRY)

    def ask(role: str, env: str) -> str:
        return policy.decide(
            "ann", role, "jira.create_issue", writes=True, target="jira:OPS", environment=env
        ).effect

    assert (ask("requester", "production"), ask("requester", "staging")) == ("deny", "approval")
    assert ask("approver", "production") == "approval"

    def approve(role: str, tool: str) -> Decision:
        return policy.can_approve(
            "bob", role, approval_id="ap9", requested_by="ann", tool=tool, target="github:acme/app"
        )

    assert approve("approver", "jira.create_issue").allowed
    denied = approve("approver", "github.create_pull_request")
    assert not denied.allowed and denied.rule_ids == ("only-admins-approve-github",)
    assert approve("admin", "github.create_pull_request").allowed


def test_two_rules_with_one_id_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "dup.cedar"
    path.write_text(
        '@id("a")\npermit (principal, action in Action::"read", resource);\n\n'
        '@id("a")\nforbid (principal, action in Action::"write", resource);\n'
    )
    with pytest.raises(ConfigError, match=r'line 4: a second rule is @id\("a"\)'):
        Policy.load(path)
