"""Chat: type an operational task, watch the agents work, read the governed answer."""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Iterator
from typing import Any, Literal

import streamlit as st

from copilot import ui
from copilot.agents import Copilot, RunHooks, RunResult, validate_task
from copilot.errors import CopilotError
from copilot.llm.base import CITATION

BadgeColor = Literal["green", "orange", "red", "gray"]
VERDICT_COLORS: dict[str, BadgeColor] = {"pass": "green", "warn": "orange", "fail": "red"}
AGENT_ICONS = {"retriever": "🔎", "planner": "🗺️", "executor": "🛠️", "reviewer": "⚖️"}
EXAMPLES = (
    "Pods in checkout are OOMKilled; raise the memory limit and open a ticket",
    "p95 latency on the payments API is above 800 ms, what do I check first?",
    "The TLS certificate for api.acme.com expires in 3 days",
)


class QueueHooks(RunHooks):
    """Runs in the worker thread: never touches Streamlit, only posts events."""

    streams = True

    def __init__(self, events: queue.Queue[Event]) -> None:
        self.events = events

    def on_step(self, agent: str, title: str, status: str) -> None:
        self.events.put(("step", (agent, title, status)))

    def on_text(self, position: int, delta: str) -> None:
        self.events.put(("text", delta))


Event = tuple[str, Any]


def _work(
    copilot: Copilot,
    task: str,
    kwargs: dict[str, Any],
    events: queue.Queue[Event],
    inflight: dict[str, Any],
) -> None:
    try:
        result = copilot.run(task, hooks=QueueHooks(events), **kwargs)
        inflight["result"] = result  # survives a rerun that abandons the queue
        events.put(("done", result))
    except BaseException as exc:  # handed to the script thread, which shows or re-raises it
        inflight["error"] = exc
        events.put(("error", exc))


def _show_step(box: Any, payload: tuple[str, str, str]) -> None:
    agent, title, status = payload
    icon = AGENT_ICONS.get(agent, "")
    if status == "running":
        box.update(label=f"{icon} {title}...")
    else:
        box.write(f"{icon} **{agent}** - {title} ({status})")


def _drain(events: queue.Queue[Event], box: Any) -> RunResult:
    """Show step events in the status box and stream answer text as it arrives."""
    pending: Event | None = None
    while True:
        kind, payload = pending or events.get()
        pending = None
        if kind == "done":
            return payload
        if kind == "error":
            raise payload
        if kind == "step":
            _show_step(box, payload)
            continue

        def pieces(first: str = payload) -> Iterator[str]:
            nonlocal pending
            yield first
            while (item := events.get())[0] == "text":
                yield item[1]
            pending = item  # not text: the loop above handles it

        box.write_stream(pieces())


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
            "pages/screens/approvals.py",
            label="Open the approval queue",
            icon=":material/approval:",
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
        copilot = ui.services().copilot(ui.current_provider())
        kwargs = {
            "user": ui.current_user(),
            "session_id": st.session_state["session_id"],
            "history": history,
        }
        events: queue.Queue[Event] = queue.Queue()
        # If the user submits again mid-run, Streamlit abandons this script run but the
        # worker goes on; `inflight` lets the next run pick the answer up (see adopt_inflight).
        inflight: dict[str, Any] = {"task": task, "result": None, "error": None}
        st.session_state["inflight"].append(inflight)
        worker = threading.Thread(
            target=_work, args=(copilot, task, kwargs, events, inflight), daemon=True
        )
        with st.status("Starting the agents...", expanded=True) as box:
            worker.start()
            result = _drain(events, box)
            box.update(
                label=f"Done - verdict {result.verdict.upper()}", state="complete", expanded=False
            )
        st.session_state["inflight"].remove(inflight)
        return result
    except CopilotError as exc:
        st.session_state["inflight"] = [r for r in st.session_state["inflight"] if not r["error"]]
        st.error(str(exc), icon=":material/error:")
        return None


def remember(task: str, result: RunResult) -> None:
    st.session_state["messages"] += [
        {"role": "user", "content": task},
        {"role": "assistant", "result": result.as_dict()},
    ]


def adopt_inflight() -> None:
    """Runs whose script run was abandoned: add the finished ones, wait for the rest."""
    waiting = []
    for inflight in st.session_state["inflight"]:
        if inflight["result"] is not None:
            remember(inflight["task"], inflight["result"])
        elif inflight["error"] is None:
            waiting.append(inflight)
    st.session_state["inflight"] = waiting
    for inflight in waiting:
        waiting_for(inflight)


@st.fragment(run_every=1)
def waiting_for(inflight: dict[str, Any]) -> None:
    st.info(f"Still working on: {inflight['task'][:120]}", icon=":material/hourglass_top:")
    if inflight["result"] is not None or inflight["error"] is not None:
        st.rerun(scope="app")


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
    state.setdefault("inflight", [])
    clicked = examples() if not state["messages"] else None
    if state["messages"] and st.button("New conversation", icon=":material/add_comment:"):
        state["messages"] = []
        state["session_id"] = uuid.uuid4().hex[:12]
        st.rerun()
    adopt_inflight()
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
        remember(task, result)


main()
