"""Approvals: writes the policy held back, waiting for a person to approve or reject."""

from __future__ import annotations

import json
from typing import Any

import streamlit as st

from copilot import approvals, ui
from copilot.errors import CopilotError
from copilot.tools import Sandbox


def decide(row: dict[str, Any], approve: bool, note: str) -> None:
    """Decide, then rerun; the outcome is kept for the next run so the rerun cannot wipe it."""
    services = ui.services()
    try:
        updated = approvals.decide(
            services.store,
            Sandbox(services.settings.home),
            row["approval_id"],
            approve=approve,
            user=ui.current_user(),
            note=note,
        )
    except CopilotError as exc:
        st.session_state["flash"] = ("error", str(exc))
    else:
        text = f"{updated['tool']} {updated['status']} ({updated['approval_id']})"
        if updated["tool_error"]:
            st.session_state["flash"] = (
                "warning",
                f"{text}, but the tool failed: {updated['tool_error']}",
            )
        else:
            st.session_state["flash"] = ("success", text + (" and ran" if approve else ""))
    st.rerun()


def show_flash() -> None:
    kind, text = st.session_state.pop("flash", (None, ""))
    if kind:
        {"error": st.error, "warning": st.warning, "success": st.success}[kind](text)


def pending_card(row: dict[str, Any]) -> None:
    with st.container(border=True):
        st.markdown(f"**{row['tool']}** - {row['action']}")
        st.caption(
            f"Request `{row['approval_id']}` - run `{row['run_id']}` - asked by "
            f"{row['requested_by']} at {row['created_at']:%Y-%m-%d %H:%M} UTC - "
            f"rule `{row['rule']}`: {row['reason']}"
        )
        if row.get("task"):
            st.caption(f"Task: {row['task'][:300]}")
        st.code(
            json.dumps(json.loads(row["args_json"]), indent=2), language="json", wrap_lines=True
        )
        if not ui.current_identity().can("approver"):
            st.caption("Only approvers and admins can approve or reject this request.")
            return
        note = st.text_input("Note (optional)", key=f"note-{row['approval_id']}")
        left, right, _ = st.columns([1, 1, 4])
        if left.button(
            "Approve", key=f"approve-{row['approval_id']}", type="primary", icon=":material/check:"
        ):
            decide(row, True, note)
        if right.button("Reject", key=f"reject-{row['approval_id']}", icon=":material/close:"):
            decide(row, False, note)


def main() -> None:
    st.title("Approvals")
    st.caption(
        "Tool actions that change GitHub, Jira or the sandbox repo run only after a "
        "person approves them here (or with `python -m copilot approve ID`)."
    )
    show_flash()
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
            pending_card(row)
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


main()
