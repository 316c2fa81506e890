"""Chat: type an operational task, watch the agents work, read the governed answer."""

from __future__ import annotations

import re
import uuid
from typing import Any, Literal

import streamlit as st

from copilot import ui
from copilot.agents import RunHooks, RunResult, validate_task
from copilot.errors import CopilotError

BadgeColor = Literal["green", "orange", "red", "gray"]
VERDICT_COLORS: dict[str, BadgeColor] = {"pass": "green", "warn": "orange", "fail": "red"}
AGENT_ICONS = {"retriever": "🔎", "planner": "🗺️", "executor": "🛠️", "reviewer": "⚖️"}
CITATION = re.compile(r"\[([^\[\]\s]+#[^\[\]\s]+)\]")
EXAMPLES = (
    "Pods in checkout are OOMKilled; raise the memory limit and open a ticket",
    "p95 latency on the payments API is above 800 ms, what do I check first?",
    "The TLS certificate for api.acme.com expires in 3 days",
)


class StatusHooks(RunHooks):
    """Writes each agent step into an st.status box as it happens."""

    def __init__(self, box: Any) -> None:
        self.box = box

    def on_step(self, agent: str, title: str, status: str) -> None:
        if status == "running":
            self.box.update(label=f"{AGENT_ICONS.get(agent, '')} {title}...")
        else:
            self.box.write(f"{AGENT_ICONS.get(agent, '')} **{agent}** - {title} ({status})")


def quiet_citations(markdown: str) -> str:
    """Citation markers in gray, so the instructions read first and the sources second."""
    return CITATION.sub(lambda m: f":gray[({m.group(1)})]", markdown)


def render_result(result: dict[str, Any]) -> None:
    review = result["review"]
    verdict = review["verdict"]
    st.badge(
        f"Reviewer: {verdict.upper()}",
        color=VERDICT_COLORS.get(verdict, "gray"),
        icon=":material/verified:" if verdict == "pass" else ":material/report:",
    )
    st.markdown(f"**{result['summary']}**")
    if verdict != "pass":
        st.warning(
            "The reviewer did not pass this answer: " + "; ".join(review["reasons"][:3]),
            icon=":material/gpp_maybe:",
        )
    st.markdown(quiet_citations(result["answer"]) or "_No answer steps._")
    pending = [s for s in result["plan"] if s["status"] == "awaiting_approval"]
    if pending:
        st.info(
            f"{len(pending)} action(s) wait for approval before they run.",
            icon=":material/pending_actions:",
        )
        st.page_link(
            "pages/approvals.py", label="Open the approval queue", icon=":material/approval:"
        )
    with st.expander(f"Plan ({len(result['plan'])} steps)"):
        for s in result["plan"]:
            tool = f" - `{s['tool']}`" if s["tool"] else ""
            st.markdown(f"{s['position']}. **{s['title']}**{tool} - _{s['status']}_")
    with st.expander(f"Citations ({len(result['citations'])} runbook passages)"):
        for c in result["citations"]:
            st.markdown(
                f"**{c['source']}** - {c['heading']}  \n`{c['chunk_id']}` - score {c['score']:.3f}"
            )
            st.caption(c["snippet"])
    with st.expander("Reviewer reasons"):
        for reason in review["reasons"]:
            st.markdown(f"- {reason}")
    st.caption(
        f"Run `{result['run_id']}` - {result['provider']}/{result['model']} - "
        f"cost ${result['cost_usd']:.6f}"
        + (
            f" - {result['fallbacks']} step(s) fell back to the offline provider"
            if result["fallbacks"]
            else ""
        )
    )


def run_task(task: str, history: list[str]) -> RunResult | None:
    """Run one task with live progress; a user error is shown, never a traceback."""
    try:
        task = validate_task(task)
        ui.retriever()  # loads the model once per server process, with a spinner
        with st.status("Starting the agents...", expanded=True) as box:
            copilot = ui.services().copilot(ui.current_provider())
            result = copilot.run(
                task,
                user=ui.current_user(),
                session_id=st.session_state["session_id"],
                history=history,
                hooks=StatusHooks(box),
            )
            box.update(
                label=f"Done - verdict {result.verdict.upper()}", state="complete", expanded=False
            )
        return result
    except CopilotError as exc:
        st.error(str(exc), icon=":material/error:")
        return None


def examples() -> str | None:
    """Clickable example tasks for a first visit; returns the one clicked."""
    st.markdown("**Try one of these, or type your own below:**")
    for column, example in zip(st.columns(len(EXAMPLES)), EXAMPLES, strict=True):
        if column.button(example, width="stretch"):
            return example
    return None


def main() -> None:
    st.title("Ops Copilot")
    st.caption(
        "Describe an operational task. The planner breaks it into steps from the runbooks, "
        "the executor acts within policy, the reviewer checks citations and injection. "
        "Writes wait for approval."
    )
    ui.warm_model_in_background()
    state = st.session_state
    state.setdefault("messages", [])
    state.setdefault("session_id", uuid.uuid4().hex[:12])
    clicked = examples() if not state["messages"] else None
    if state["messages"] and st.button("New conversation", icon=":material/add_comment:"):
        state["messages"] = []
        state["session_id"] = uuid.uuid4().hex[:12]
        st.rerun()
    for message in state["messages"]:
        with st.chat_message(message["role"]):
            if message["role"] == "user":
                st.markdown(message["content"])
            else:
                render_result(message["result"])
    task = st.chat_input("Describe an operational task, e.g. 'disk full on db-3, what now?'")
    task = task if task is not None else clicked
    if task is None:
        return
    with st.chat_message("user"):
        st.markdown(task if task.strip() else "_(empty)_")
    history = [m["content"] for m in state["messages"] if m["role"] == "user"]
    with st.chat_message("assistant"):
        result = run_task(task, history)
        if result is not None:
            render_result(result.as_dict())
    if result is not None:
        state["messages"] += [
            {"role": "user", "content": task},
            {"role": "assistant", "result": result.as_dict()},
        ]


main()
