"""Deterministic targeted edits: the service comes from the task, one field changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from copilot.tools.edits import Edit, EditNote, parse_intent, plan_edit
from copilot.tools.sandbox import SEED


class SeedFiles:
    """The sandbox seed on disk, read the way plan_edit reads GitHub or the sandbox repo."""

    def __init__(self, root: Path = SEED, overrides: dict[str, str] | None = None) -> None:
        self.root = root
        self.overrides = overrides or {}

    def list_dir(self, path: str) -> list[str]:
        folder = self.root / path
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []

    def read_text(self, path: str) -> str | None:
        if path in self.overrides:
            return self.overrides[path]
        file = self.root / path
        return file.read_text() if file.is_file() else None


@pytest.mark.parametrize(
    ("task", "path", "summary"),
    [
        (
            "raise the memory limit of checkout to 1Gi",
            "infra/k8s/checkout/deployment.yaml",
            "checkout: resources.limits.memory 512Mi -> 1Gi",
        ),
        (
            "pods in payments are OOMKilled, raise the limit",
            "infra/k8s/payments/deployment.yaml",
            "payments: resources.limits.memory 768Mi -> 1152Mi",
        ),
        (
            "raise the memory request of search to 1536Mi",
            "infra/k8s/search/deployment.yaml",
            "search: resources.requests.memory 1Gi -> 1536Mi",
        ),
        (
            "search is CPU throttled, raise the cpu limit to 2",
            "infra/k8s/search/deployment.yaml",
            "search: resources.limits.cpu 1500m -> 2",
        ),
        (
            "scale payments to 6 replicas",
            "infra/k8s/payments/deployment.yaml",
            "payments: spec.replicas 3 -> 6",
        ),
        ("scale up orders", "infra/k8s/orders/deployment.yaml", "orders: spec.replicas 3 -> 5"),
        (
            "search keeps hitting its HPA ceiling: raise maxReplicas of search to 30",
            "infra/k8s/search/hpa.yaml",
            "search: spec.maxReplicas 20 -> 30",
        ),
        (
            "raise the checkout min replicas to 6",
            "infra/k8s/checkout/hpa.yaml",
            "checkout: spec.minReplicas 4 -> 6",
        ),
        (
            "disable the new-search flag",
            "flags/flags.yaml",
            "flag checkout.new-search turned off",
        ),
        (
            "enable the search.semantic-suggest flag",
            "flags/flags.yaml",
            "flag search.semantic-suggest turned on",
        ),
        (
            "kill switch: turn off payments new-psp-routing flag",
            "flags/payments.json",
            "flag payments.new-psp-routing turned off",
        ),
        (
            "checkout's payments client times out: raise the payments client timeout to 5s",
            "config/checkout.toml",
            "checkout: payments_client.timeout_ms 2000 -> 5000",
        ),
        (
            "raise the payments gateway timeout to 45s",
            "config/payments.ini",
            "payments: gateway.timeout 30 -> 45",
        ),
        (
            "set the orders consumer session timeout to 1m",
            "config/orders.ini",
            "orders: consumer.session_timeout 45 -> 60",
        ),
    ],
)
def test_targeted_edits(task: str, path: str, summary: str):
    edit = plan_edit(task, SeedFiles())
    assert isinstance(edit, Edit), edit
    assert (edit.path, edit.summary) == (path, summary)
    changed = [
        line
        for line in edit.diff.splitlines()
        if line[:1] in "+-" and line[:3] not in ("+++", "---")
    ]
    assert len(changed) == 2  # exactly one line out, one line in
    assert edit.diff.startswith(f"--- a/{path}\n+++ b/{path}\n")


def test_json_flags_keep_their_layout():
    edit = plan_edit("disable the payments.3ds-v2 flag", SeedFiles())
    assert isinstance(edit, Edit)
    assert edit.after == edit.before.replace('"enabled": true', '"enabled": false', 1)


def test_the_service_named_first_wins_over_later_mentions():
    intent = parse_intent(
        "checkout is slow because search times out; raise checkout memory", ["checkout", "search"]
    )
    assert intent is not None and intent.service == "checkout" and intent.kind == "memory_limit"


@pytest.mark.parametrize(
    ("task", "note"),
    [
        ("restart the frontend", "none of the changes"),
        ("raise the memory limit of frontend to 2Gi", "names no service"),
        ("raise the memory limit of checkout to 512Mi", "already 512Mi"),
        ("disable the turbo flag", "No flag named 'turbo'"),
        ("disable search.semantic-suggest flag", "already off"),
        ("raise the checkout timeout", "say the new timeout"),
        ("set the auth timeout to 3s", "No config file for auth"),
        ("raise maxReplicas of payments to 9", "hpa.yaml does not exist"),
    ],
)
def test_what_cannot_be_done_is_said(task: str, note: str):
    result = plan_edit(task, SeedFiles())
    assert isinstance(result, EditNote) and note in result.note


def test_a_manifest_without_the_field_is_reported():
    bare = "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template: {}\n"
    files = SeedFiles(overrides={"infra/k8s/auth/deployment.yaml": bare})
    result = plan_edit("raise the memory limit of auth to 1Gi", files)
    assert isinstance(result, EditNote)
    assert (
        result.note == "infra/k8s/auth/deployment.yaml: no resources.limits.memory field to change"
    )
