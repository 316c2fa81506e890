"""Approvals: writes the policy held back, waiting for a person to approve or reject."""

from __future__ import annotations

import streamlit as st

from copilot import approvals, ui


def main() -> None:
    st.title("Approvals")
    st.caption(
        "Tool actions that change GitHub, Jira or the sandbox repo run only after a "
        "person approves them here (or with `python -m copilot approve ID`)."
    )
    ui.show_flash()
    store = ui.services().store
    with ui.user_errors():
        pending = approvals.list_approvals(store, "pending")
        decided = [r for r in approvals.list_approvals(store) if r["status"] != "pending"]
        if not pending:
            st.success(
                "Nothing waits for approval. Tasks that ask for a write (e.g. 'open a "
                "ticket') put their actions here.",
                icon=":material/task_alt:",
            )
        for row in pending:
            ui.approval_card(row, key_prefix="queue")
        st.subheader("Decided")
        if decided:
            st.dataframe(
                [
                    {
                        k: r[k]
                        for k in (
                            "approval_id",
                            "status",
                            "tool",
                            "decided_by",
                            "decided_at",
                            "decision_note",
                            "run_id",
                        )
                    }
                    for r in decided
                ],
                hide_index=True,
                width="stretch",
            )
        else:
            st.caption("No decisions yet.")
        sandbox_objects()


def sandbox_objects() -> None:
    """What approved actions made in the sandbox (no credentials set): tickets and branches."""
    tools = ui.services().tools
    tickets = tools.sandbox_jira.recent() + tools.sandbox_issues.recent()
    branches = tools.repo.branches()
    if not tickets and not branches:
        return
    st.subheader("Made in the sandbox")
    if tickets:
        st.dataframe(
            [{k: t[k] for k in ("key", "summary", "status", "created_at")} for t in tickets],
            hide_index=True,
            width="stretch",
        )
    if branches:
        st.caption(
            f"Pull request branches in `{tools.repo.path}` "
            f"(`git -C {tools.repo.path} diff main...BRANCH`): " + ", ".join(branches)
        )


main()
