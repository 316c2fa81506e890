"""Answers of the offline provider as a user reads them, and the one substitution the
reviewer allows in a quoted command (the runbook's example service -> the task's service).

Real offline runs over the shipped corpus with the real MiniLM model; the grounding checks on
constructed states use real runbook text.
"""

from __future__ import annotations

import re

import pytest

from copilot.embeddings import get_embedder
from copilot.names import adapt_line, task_service
from copilot.run import grounding
from copilot.run.state import RunState, StepState, StepStatus
from copilot.service import Services
from tests.test_reviewer import passage

FIVE_XX = "elevated-http-5xx-errors.md#mitigation"  # its commands are for payments
_BULLET = re.compile(r"^- .*\[[^\]]+\]$")


def bullets(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if _BULLET.match(ln)]


# The offline answers ---------------------------------------------------------------------
def test_the_answer_opens_with_what_to_do_now_in_one_to_three_lines(services: Services):
    state = services.run("p99 latency doubled after the deploy of checkout")
    assert state.answer.startswith("**1. What to do now**\n- ")
    direct = state.steps[0]
    assert 1 <= len(bullets(direct.answer)) <= 3
    # A regression after a deploy: undoing it is what to do first.
    assert "roll it back" in bullets(direct.answer)[0]
    assert len(state.steps) > 2  # the steps follow the direct answer


def test_a_checkout_task_gets_checkout_commands_and_the_reviewer_accepts_them(
    services: Services,
):
    state = services.run("checkout is returning 5xx errors since 10 minutes")
    commands = re.findall(r"`([^`]+)`", state.answer)
    assert "kubectl rollout undo deployment/checkout -n checkout" in commands
    assert not [c for c in commands if re.search(r"-n (payments|search)\b", c)]
    assert all(c["status"] != "fail" for c in state.line_checks), state.line_checks
    assert state.verdict != "fail"


def test_a_follow_up_answers_what_is_new_instead_of_the_plan_again(services: Services):
    first = services.run("p99 latency doubled after the deploy of checkout", session_id="c1")
    again = services.run("is it safe to roll back?", session_id="c1")
    assert again.prior.startswith("Task: p99 latency doubled")
    assert again.answer.startswith("**1. What to do now**")
    assert len(again.steps) < len(first.steps)
    assert not set(bullets(again.answer)) & set(bullets(first.answer))
    # A new subject in the same conversation is planned on its own.
    fresh = services.run("disk full on the postgres volume of db-3", session_id="c1")
    assert fresh.prior == ""
    assert all("latency" not in s.title.lower() for s in fresh.steps)


def test_tool_arguments_quote_the_runbook_line_for_the_tasks_service(services: Services):
    state = services.run("Pods in checkout are OOMKilled; raise the limit and open a ticket")
    pull = next(s for s in state.steps if s.tool == "github.create_pull_request")
    assert "infra/k8s/checkout/deployment.yaml" in pull.args["body"]
    assert "infra/k8s/search" not in pull.args["body"]
    # the step's title, what the approver reads first, names the same file
    assert "infra/k8s/checkout/deployment.yaml" in pull.title


# Adapting a runbook line -------------------------------------------------------------------
def test_a_line_is_adapted_by_whole_service_names_only():
    line = "Check: `kubectl get pods -n payments -o wide` and `acme/payments`."
    assert adapt_line(line, "checkout") == (
        "Check: `kubectl get pods -n checkout -o wide` and `acme/checkout`."
    )
    assert adapt_line(line, None) == line
    # A name mentioned as such stays; a command with a derived name is kept and marked.
    assert adapt_line("namespaces such as `search` or `orders`", "checkout") == (
        "namespaces such as `search` or `orders`"
    )
    kept = adapt_line("Scale: `kubectl scale deployment/search-api -n search`.", "checkout")
    assert "`kubectl scale deployment/search-api -n search`" in kept
    assert kept.endswith("(the runbook's example is for search; use the names of checkout)")


@pytest.mark.parametrize(
    ("conversation", "service"),
    [
        ("checkout is returning 5xx", "checkout"),
        ("pods in checkout are OOMKilled\nsame for orders", "orders"),
        ("pods in checkout are OOMKilled\nand the replicas?", "checkout"),
        ("restart the api with -n shop", "shop"),
        ("our postgres has too many connections", None),
    ],
)
def test_the_service_of_a_conversation_is_the_latest_one_named(conversation, service):
    assert task_service(conversation) == service


# The reviewer: adapted passes, altered fails -------------------------------------------------
def checked(line: str, task: str = "checkout is returning 5xx errors") -> list[str]:
    """The reasons rule 2 gives for one answer line citing the 5xx mitigation section."""
    state = RunState(run_id="r1", task=task, user="ana", query=task)
    state.note_passages([passage(FIVE_XX)])
    state.step_retrieved = {1: [FIVE_XX]}
    answer = f"- {line} [{FIVE_XX}]"
    state.steps = [
        StepState(1, "Mitigate", "answer", [FIVE_XX], status=StepStatus.DONE, answer=answer)
    ]
    checks = grounding.check_lines(state, get_embedder(), None)
    return [r for c in checks for r in c.reasons if "quotes" in r]


def test_a_command_adapted_to_the_tasks_service_passes():
    assert checked("roll back: `kubectl rollout undo deployment/checkout -n checkout`") == []
    assert checked("roll back: `kubectl rollout undo deployment/payments -n payments`") == []


@pytest.mark.parametrize(
    "command",
    [
        "kubectl rollout undo deployment/checkout -n checkout --to-revision=1",  # added flag
        "kubectl delete deployment/checkout -n checkout",  # another verb
        "kubectl scale deployment/checkout -n checkout --replicas=50",  # altered value
        "kubectl rollout undo deployment/orders -n orders",  # a service the task never named
        "kubectl rollout undo deployment/checkout -n kube-system",  # not a service name swap
    ],
)
def test_an_altered_or_invented_command_still_fails(command):
    assert checked(f"roll back: `{command}`"), command


def test_no_substitution_is_allowed_when_the_task_names_no_service():
    reasons = checked(
        "roll back: `kubectl rollout undo deployment/checkout -n checkout`",
        task="errors went up after the release",
    )
    assert reasons
