"""Chat: type an operational task, watch the agents work, read the governed answer.

A conversation is the runs that share a session id, read back from the store: it survives a
reload (its id is in the URL, `?c=...`) and shows a paused run's approval requests inline;
after a decision here or on the Approvals page, the continued run appears in place.
"""

from __future__ import annotations

import queue
import threading
import uuid
from typing import Any, Literal

import streamlit as st

from copilot import ui
from copilot.errors import CopilotError
from copilot.guard import safe_markdown
from copilot.llm.base import CITATION
from copilot.run import runs
from copilot.run.context import RunHooks
from copilot.run.engine import Engine, validate_task
from copilot.run.state import RunState, RunStatus
from copilot.run.view import as_dict, plural

BadgeColor = Literal["green", "orange", "red", "gray"]
VERDICT_COLORS: dict[str, BadgeColor] = {"pass": "green", "warn": "orange", "fail": "red"}
AGENT_ICONS = {"retriever": "🔎", "planner": "🗺️", "executor": "🛠️", "reviewer": "⚖️"}
EXAMPLES = (
    "Pods in checkout are OOMKilled; raise the memory limit and open a ticket",
    "p95 latency on the payments API is above 800 ms, what do I check first?",
    "The TLS certificate for api.acme.com expires in 3 days",
)
Event = tuple[str, Any]


class QueueHooks(RunHooks):
    """Runs in worker threads: never touches Streamlit, only posts events."""

    streams = True

    def __init__(self, events: queue.Queue[Event]) -> None:
        self.events = events

    def on_step(self, agent: str, title: str, status: str) -> None:
        self.events.put(("step", (agent, title, status)))

    def on_text(self, position: int, delta: str) -> None:
        self.events.put(("text", (position, delta)))


def _work(engine: Engine, task: str, kwargs: dict[str, Any], events: queue.Queue[Event]) -> None:
    try:
        events.put(("done", engine.start(task, hooks=QueueHooks(events), **kwargs)))
    except BaseException as exc:  # handed to the script thread, which shows or re-raises it
        events.put(("error", exc))


def _drain(events: queue.Queue[Event], box: Any) -> RunState:
    """Step events into the status box; each step's text streams into its own place, so
    steps answered concurrently never mix."""
    places: dict[int, tuple[Any, list[str]]] = {}
    while True:
        kind, payload = events.get()
        if kind == "done":
            return payload
        if kind == "error":
            raise payload
        if kind == "step":
            agent, title, status = payload
            icon = AGENT_ICONS.get(agent, "")
            if status == "running":
                box.update(label=f"{icon} {title}...")
            else:
                box.write(f"{icon} **{agent}** - {title} ({status})")
            continue
        position, delta = payload
        place, text = places.setdefault(position, (box.empty(), []))
        text.append(delta)
        place.markdown(f"**Step {position}**\n\n{quiet_citations(safe_markdown(''.join(text)))}")


def quiet_citations(markdown: str) -> str:
    """Citation markers in gray, so the instructions read first and the sources second."""
    return CITATION.sub(lambda m: f":gray[({m.group(1)})]", markdown)


def snippet(text: str, limit: int = 280) -> str:
    """Runbook text as a quoted plain excerpt cut at a word boundary, never as headings."""
    flat = " ".join(line.lstrip("#>*- ").strip() for line in text.splitlines() if line.strip())
    if len(flat) > limit:
        flat = flat[:limit].rsplit(" ", 1)[0] + " ..."
    return flat


def render_result(result: dict[str, Any]) -> None:
    review = result["review"]
    verdict = review["verdict"]
    if verdict:
        st.badge(
            f"Reviewer: {verdict.upper()}",
            color=VERDICT_COLORS.get(verdict, "gray"),
            icon=":material/verified:" if verdict == "pass" else ":material/report:",
        )
    st.markdown(f"**{result['summary']}**")
    if result["status"] == RunStatus.FAILED:
        st.error(f"The run failed: {result['error']}", icon=":material/error:")
    if result["status"] == RunStatus.INTERRUPTED:
        st.warning(
            "This run was interrupted (its process stopped). Continue it with "
            f"`python -m copilot runs resume {result['run_id']}`.",
            icon=":material/sync_problem:",
        )
    if verdict and verdict != "pass":
        st.warning(
            "The reviewer did not pass this answer: " + "; ".join(review["reasons"][:3]),
            icon=":material/gpp_maybe:",
        )
    # Model, runbook and tool text is inert here: no HTML, no images or links that load.
    st.markdown(quiet_citations(safe_markdown(result["answer"])) or "_No answer steps._")
    pending = [s for s in result["plan"] if s["status"] == "awaiting_approval"]
    if pending:
        st.info(
            f"{plural(len(pending), 'action')} {'waits' if len(pending) == 1 else 'wait'} "
            "for approval before running.",
            icon=":material/pending_actions:",
        )
        for row in ui.pending_rows([s["approval_id"] for s in pending]):
            ui.approval_card(row, key_prefix="chat")
    details(result)


def details(result: dict[str, Any]) -> None:
    review = result["review"]
    with st.expander(f"Plan ({plural(len(result['plan']), 'step')})"):
        for s in result["plan"]:
            tool = f" - `{s['tool']}`" if s["tool"] else ""
            st.markdown(f"{s['position']}. **{s['title']}**{tool} - _{s['status']}_")
    cites = result["citations"]
    with st.expander(f"Citations ({plural(len(cites), 'runbook passage')})"):
        for c in cites:
            section = c["heading"].split(" > ")[-1]
            st.caption(f"{c['source']} - {section} - score {c['score']:.3f}")
            st.text(snippet(c["snippet"]))
    with st.expander("Reviewer reasons"):
        for reason in review["reasons"]:
            st.text(f"- {reason}")
    checks = review.get("line_checks") or []  # absent in runs saved before the line checks
    if checks:
        flagged = sum(1 for c in checks if c["status"] != "pass")
        with st.expander(f"Line checks ({plural(flagged, 'problem')})"):
            for c in checks:
                where = f"Step {c['step']} line {c['line']}" if c["line"] else "Answer"
                score = "" if c.get("similarity") is None else f" (support {c['similarity']:.2f})"
                st.text(f"{where}: {c['status'].upper()}{score}")
                for reason in c["reasons"]:
                    st.text(f"  - {reason}")
    fell_back = result["fallbacks"]
    st.caption(
        f"Run `{result['run_id']}` - {result['provider']}/{result['model']} - "
        f"cost ${result['cost_usd']:.6f}"
        + (f" - {plural(fell_back, 'step')} fell back to the offline provider" if fell_back else "")
    )


def run_task(task: str, session_id: str, history: list[RunState]) -> RunState | None:
    """Run one task with live progress; a user error is shown, never a traceback."""
    try:
        task = validate_task(task)
        ui.retriever()  # loads the model once per server process, with a spinner
        engine = ui.services().engine(ui.current_provider())
        who = ui.current_identity()
        kwargs = {"user": who.name, "role": who.role, "session_id": session_id, "history": history}
        events: queue.Queue[Event] = queue.Queue()
        # If the user submits again mid-run, Streamlit abandons this script run but the
        # worker goes on and saves the run; the conversation reads it back from the store.
        worker = threading.Thread(target=_work, args=(engine, task, kwargs, events), daemon=True)
        with st.status("Starting the agents...", expanded=True) as box:
            worker.start()
            state = _drain(events, box)
            box.update(
                label=f"Done - verdict {state.verdict.upper()}", state="complete", expanded=False
            )
        return state
    except CopilotError as exc:
        st.error(ui.refusal(task, str(exc)), icon=":material/error:")
        return None


@st.fragment(run_every=1)
def still_working(run_ids: list[str]) -> None:
    """Runs of this conversation still going (e.g. after a resubmission): redraw when done."""
    statuses = runs.status_of(ui.services().store, run_ids)
    if any(s != RunStatus.RUNNING for s in statuses.values()):
        st.rerun(scope="app")
    st.info(
        f"Still working on {plural(len(run_ids), 'earlier task')}...",
        icon=":material/hourglass_top:",
    )


def examples() -> str | None:
    """Clickable example tasks for a first visit; returns the one clicked."""
    st.markdown("**Try one of these, or type your own below:**")
    for column, example in zip(st.columns(len(EXAMPLES)), EXAMPLES, strict=True):
        if column.button(example, width="stretch"):
            return example
    return None


def conversation_id() -> str:
    """The open conversation: from the URL, so a reload reopens it."""
    session_id = st.query_params.get("c")
    if not session_id:
        session_id = uuid.uuid4().hex[:12]
        st.query_params["c"] = session_id
    return session_id


def sidebar_conversations(current: str) -> None:
    with st.sidebar:
        st.divider()
        if st.button("New conversation", icon=":material/add_comment:", width="stretch"):
            st.query_params["c"] = uuid.uuid4().hex[:12]
            st.rerun()
        past = runs.conversations(ui.services().store, ui.current_user())
        if past:
            st.caption("Recent conversations")
        for c in past:
            label = runs.one_line(c["first_task"], 38)
            if st.button(
                label,
                key=f"conv-{c['session_id']}",
                type="primary" if c["session_id"] == current else "tertiary",
                help=f"{plural(c['runs'], 'task')}, last {c['last_at']:%Y-%m-%d %H:%M} UTC",
            ):
                st.query_params["c"] = c["session_id"]
                st.rerun()


def main() -> None:
    st.title("Ops Copilot")
    st.caption(
        "Describe an operational task. The planner breaks it into steps from the runbooks, "
        "the executor acts within policy, the reviewer checks citations and injection. "
        "Writes wait for approval."
    )
    ui.warm_model_in_background()
    ui.show_flash()
    session_id = conversation_id()
    sidebar_conversations(session_id)
    with ui.user_errors():
        past = runs.conversation(ui.services().store, session_id, ui.current_user())
        clicked = examples() if not past else None
        for state in past:
            with st.chat_message("user"):
                st.text(state.task)
            if state.status != RunStatus.RUNNING:
                with st.chat_message("assistant"):
                    render_result(as_dict(state))
        if going := [s.run_id for s in past if s.status == RunStatus.RUNNING]:
            still_working(going)
    task = st.chat_input("Describe an operational task, e.g. 'disk full on db-3, what now?'")
    task = task if task is not None else clicked
    if task is None:
        return
    with st.chat_message("user"):
        st.text(ui.first_line(task) if task.strip() else "(empty)")
    with st.chat_message("assistant"):
        done = run_task(task, session_id, past)
        if done is not None:
            render_result(as_dict(done))


main()
