"""What every Streamlit page shares: cached services, the sidebar choices, error display.

Pages stay thin: they read state from here, call `copilot`, and render. Nothing here loads
the embedding model; only the chat page asks for it, through `retriever()`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import streamlit as st

from copilot import approvals
from copilot.config import Settings
from copilot.embeddings import get_embedder
from copilot.errors import CopilotError
from copilot.retriever import Retriever
from copilot.run.runs import decided_line
from copilot.service import Services


@st.cache_resource(show_spinner=False)
def services() -> Services:
    """One Services per server process, built from the environment and .env. Starting it
    marks runs whose process died as interrupted and expires stale approval requests."""
    built = Services(Settings.load())
    built.sweep()
    return built


@st.cache_resource(show_spinner="Loading the runbook index and the MiniLM model (once)...")
def retriever() -> Retriever:
    """The retriever with its index loaded and the model warm: the chat page's first cost."""
    r = services().retriever
    r.refresh()
    r.search("warm up", 1)
    return r


@st.cache_resource(show_spinner=False)
def warm_model_in_background() -> threading.Thread:
    """Start loading the model while the analyst types; cached, so once per process."""
    thread = threading.Thread(target=get_embedder, name="warm-minilm", daemon=True)
    thread.start()
    return thread


def settings() -> Settings:
    return services().settings


def current_user() -> str:
    return str(st.session_state.get("user") or settings().user)


def current_provider() -> str:
    return str(st.session_state.get("provider") or settings().llm_provider)


@contextmanager
def user_errors() -> Iterator[None]:
    """Show a CopilotError as st.error with its advice instead of a traceback."""
    try:
        yield
    except CopilotError as exc:
        st.error(str(exc), icon=":material/error:")


def first_line(text: str, limit: int = 200) -> str:
    """What to echo of a task: its first line, cut, so a huge paste is not shown back whole."""
    lines = text.strip().splitlines() or [""]
    head = lines[0][:limit]
    more = len(text.strip()) - len(head)
    return head + (f" ... ({more:,} more characters)" if more > 0 else "")


def refusal(task: str, reason: str) -> str:
    return (
        f"Not run: {reason}" if not task.strip() else f"Not run: {first_line(task, 80)}\n\n{reason}"
    )


def show_flash() -> None:
    """The outcome of a decision, kept across the rerun that the decision triggers."""
    kind, text = st.session_state.pop("flash", (None, ""))
    if kind:
        {"error": st.error, "warning": st.warning, "success": st.success}[kind](text)


def approval_row(approval_id: str) -> dict[str, Any]:
    rows = approvals.list_approvals(services().store, "pending")
    return next((r for r in rows if r["approval_id"] == approval_id), {"approval_id": approval_id})


def approval_card(row: dict[str, Any], *, key_prefix: str) -> None:
    """One pending request: what it does, where, why it waits; Approve or Reject with a
    reason. The same card on the Approvals page and inline in the chat."""
    approval_id = row["approval_id"]
    if "tool" not in row:
        return  # decided meanwhile; the next rerun shows the outcome
    with st.container(border=True):
        st.markdown(f"**{row['tool']}** on `{row.get('target') or 'sandbox'}` - {row['action']}")
        expires = row.get("expires_at")
        st.caption(
            f"Request `{approval_id}` - run `{row['run_id']}` - asked by "
            f"{row['requested_by']} at {row['created_at']:%Y-%m-%d %H:%M} UTC"
            + (f" - expires {expires:%Y-%m-%d %H:%M} UTC" if expires else "")
            + f" - rule `{row['rule']}`: {row['reason']}"
        )
        if row.get("task"):
            st.caption(f"Task: {first_line(row['task'], 300)}")
        cites = json.loads(row.get("citations_json") or "[]")
        if cites:
            st.caption("Motivated by: " + ", ".join(cites))
        preview = json.loads(row.get("preview_json") or "null")
        if preview and preview.get("kind") == "diff":
            st.code(preview["text"], language="diff", wrap_lines=True)
        args = json.loads(row["args_json"])
        shown = {k: v for k, v in args.items() if k != "changes"}  # the diff shows those
        st.code(json.dumps(shown, indent=2), language="json", wrap_lines=True)
        key = f"{key_prefix}-{approval_id}"
        note = st.text_input(
            "Note (required to reject)", key=f"note-{key}", placeholder="why, for the record"
        )
        left, right, _ = st.columns([1, 1, 4])
        if left.button("Approve", key=f"approve-{key}", type="primary", icon=":material/check:"):
            decide(approval_id, True, note)
        if right.button("Reject", key=f"reject-{key}", icon=":material/close:"):
            decide(approval_id, False, note)


def decide(approval_id: str, approve: bool, note: str) -> None:
    """Decide; the run goes on in this process. The outcome survives the rerun."""
    try:
        with st.spinner("Recording the decision and continuing the run..."):
            done = (
                services()
                .engine(current_provider())
                .decide(approval_id, approve=approve, user=current_user(), note=note)
            )
    except CopilotError as exc:
        st.session_state["flash"] = ("error", str(exc))
    else:
        step = done.state.step(int(done.approval["step"]))
        text = decided_line(done, step) + f" - run {done.state.run_id} is {done.state.status}"
        st.session_state["flash"] = ("warning" if done.tool_error else "success", text)
    st.rerun()
