"""Telemetry: LLM cost and latency, tokens, approvals, reviewer outcomes and providers.

Figures come from `copilot.telemetry`, the same queries the CLI and the sidecar use, read on
one connection and cached for 10 s per filter set. Each panel offers the exact DataFrame it
draws as CSV.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from copilot import telemetry, ui
from copilot.approvals import STATUSES
from copilot.store import utcnow
from copilot.telemetry import Dashboard, Filters

PRESETS = {
    "Last hour": timedelta(hours=1),
    "Last 24 hours": timedelta(hours=24),
    "Last 7 days": timedelta(days=7),
    "Last 30 days": timedelta(days=30),
    "Custom dates": None,
}
INTERVALS = ["Auto", "1m", "5m", "15m", "1h", "6h", "1d"]
ALL = "All"
SCOPE_HELP = (
    "LLM panels count each call under the provider that answered it (a fallback counts as "
    "stub); approval and reviewer panels follow the provider the run was started with."
)
HOW_TO = "Run a task on the Chat page or `python -m copilot demo`."
VERDICT_COLOURS = {"pass": "#2e7d32", "warn": "#f9a825", "fail": "#c62828"}


@st.cache_data(ttl=10, show_spinner=False)
def load_options(db: str) -> dict[str, list[str]]:
    return telemetry.filter_options(ui.services().store)


@st.cache_data(ttl=10, show_spinner="Reading telemetry...")
def load_dashboard(db: str, filters: Filters, interval: str | None) -> Dashboard:
    # `db` is part of the cache key: two homes never share cached figures.
    return telemetry.dashboard(ui.services().store, filters, interval)


def time_range(preset: str) -> tuple[datetime, datetime]:
    """Preset ranges end at the next whole minute, so the cache key holds for a minute."""
    span = PRESETS[preset]
    if span is None:
        return custom_range()
    end = (utcnow() + timedelta(minutes=1)).replace(second=0, microsecond=0)
    return end - span, end


def custom_range() -> tuple[datetime, datetime]:
    today = utcnow().date()
    picked = st.date_input(
        "Dates (UTC, inclusive)", value=(today - timedelta(days=7), today), key="tm_dates"
    )
    days = [d for d in (picked if isinstance(picked, tuple) else (picked,)) if isinstance(d, date)]
    first = days[0] if days else today
    last = days[-1] if days else today
    return datetime.combine(first, time()), datetime.combine(last + timedelta(days=1), time())


def filter_bar(options: dict[str, list[str]]) -> tuple[Filters, str | None]:
    left, provider_col, model_col, user_col, bucket_col = st.columns([2, 1.3, 1.3, 1.3, 1])
    preset = left.selectbox("Time range", list(PRESETS), index=1, key="tm_range")
    provider = provider_col.selectbox(
        "Provider", [ALL, *options["providers"]], key="tm_provider", help=SCOPE_HELP
    )
    model = model_col.selectbox("Model", [ALL, *options["models"]], key="tm_model")
    user = user_col.selectbox("User", [ALL, *options["users"]], key="tm_user")
    interval = bucket_col.selectbox("Bucket", INTERVALS, key="tm_interval")
    start, end = time_range(preset)
    chosen = [None if v == ALL else v for v in (provider, model, user)]
    return Filters(start, end, *chosen), None if interval == "Auto" else interval


def download(frame: pd.DataFrame, name: str) -> None:
    st.download_button(
        "Download CSV",
        frame.to_csv(index=False),
        file_name=f"{name}.csv",
        mime="text/csv",
        key=f"csv-{name}",
        icon=":material/download:",
    )


def show(fig: go.Figure, frame: pd.DataFrame, name: str) -> None:
    """A panel's chart and the CSV of exactly the data it draws."""
    st.plotly_chart(fig, key=f"chart-{name}")
    download(frame, name)


def dual_axis(left: str, right: str) -> go.Figure:
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.update_yaxes(title_text=left, secondary_y=False)
    fig.update_yaxes(title_text=right, secondary_y=True)
    return fig


def empty(what: str) -> None:
    st.info(f"{what} {HOW_TO}", icon=":material/query_stats:")


def cost_latency_panel(frame: pd.DataFrame, interval: str) -> None:
    st.subheader("LLM cost vs latency")
    if frame.empty:
        return empty("No LLM calls in this range.")
    fig = dual_axis("USD", "ms")
    fig.add_trace(go.Bar(x=frame["bucket"], y=frame["cost_usd"], name="cost (USD)"))
    for column, label in (("avg_latency_ms", "avg latency"), ("p95_latency_ms", "p95 latency")):
        line = go.Scatter(x=frame["bucket"], y=frame[column], name=f"{label} (ms)", mode="lines")
        fig.add_trace(line, secondary_y=True)
    fig.update_layout(xaxis_title=f"UTC, {interval} buckets", legend_orientation="h")
    show(fig, frame, "llm_cost_latency")


def tokens_panel(frame: pd.DataFrame) -> None:
    st.subheader("Tokens by model")
    if frame.empty:
        return empty("No tokens recorded in this range.")
    labels = frame["provider"] + "/" + frame["model"]  # an Azure deployment may reuse a name
    fig = go.Figure(
        [
            go.Bar(x=labels, y=frame["prompt_tokens"], name="prompt"),
            go.Bar(x=labels, y=frame["completion_tokens"], name="completion"),
        ]
    )
    fig.update_layout(barmode="group", yaxis_title="tokens", legend_orientation="h")
    show(fig, frame, "tokens_by_model")


def approvals_panel(frame: pd.DataFrame, median_s: float | None) -> None:
    st.subheader("Approval queue")
    if int(frame["approvals"].sum()) == 0:
        return empty("No approval requests in this range; tasks that ask for a write make them.")
    counts = dict(zip(frame["status"], frame["approvals"], strict=True))
    columns = st.columns(5)
    for column, status in zip(columns, STATUSES, strict=False):
        column.metric(status.capitalize(), int(counts.get(status, 0)))
    columns[4].metric("Median wait", format_seconds(median_s))
    st.caption("Median wait: time from request to a person's decision (approved or rejected).")
    fig = go.Figure(go.Bar(x=frame["status"], y=frame["approvals"], name="requests"))
    fig.update_layout(yaxis_title="requests")
    show(fig, frame, "approvals_by_status")


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def reviewer_panel(frame: pd.DataFrame) -> None:
    st.subheader("Reviewer outcomes")
    if frame.empty:
        return empty("No reviewer verdicts in this range.")
    fig = dual_axis("runs", "flags")
    for verdict, colour in VERDICT_COLOURS.items():
        bar = go.Bar(x=frame["bucket"], y=frame[verdict], name=verdict, marker_color=colour)
        fig.add_trace(bar)
    flags = go.Scatter(x=frame["bucket"], y=frame["injection_flags"], name="injection flags")
    fig.add_trace(flags, secondary_y=True)
    fig.update_layout(barmode="stack", legend_orientation="h")
    show(fig, frame, "reviewer_outcomes")


def provider_panel(frame: pd.DataFrame) -> None:
    st.subheader("Provider snapshot")
    if frame.empty:
        return empty("No provider has answered in this range.")
    st.dataframe(frame, hide_index=True)
    labels = frame["provider"] + "/" + frame["model"]
    fig = go.Figure(
        [go.Bar(x=labels, y=frame[c], name=c) for c in ("calls", "failures", "fallbacks")]
    )
    fig.update_layout(barmode="group", legend_orientation="h")
    show(fig, frame, "provider_snapshot")


def headline(frame: pd.DataFrame) -> None:
    calls, failures, cost = (frame[c].sum() for c in ("calls", "failures", "cost_usd"))
    columns = st.columns(3)
    columns[0].metric("LLM calls", f"{int(calls):,}")
    columns[1].metric("Failed calls", f"{int(failures):,}")
    columns[2].metric("Spend (known prices)", f"${cost:,.4f}")


def main() -> None:
    st.title("Telemetry")
    st.caption(
        "LLM spend, latency and tokens, the approval queue and reviewer verdicts, from the "
        "governance store (UTC). The sidecar serves the same figures to Grafana."
    )
    with ui.user_errors():
        db = str(ui.services().store.path)
        filters, interval = filter_bar(load_options(db))
        board = load_dashboard(db, filters, interval)
        headline(board.provider_snapshot)
        left, right = st.columns(2)
        with left:
            cost_latency_panel(board.cost_latency, board.interval)
        with right:
            tokens_panel(board.tokens_by_model)
        left, right = st.columns(2)
        with left:
            approvals_panel(board.approvals, board.median_s_to_decision)
        with right:
            reviewer_panel(board.reviewer_outcomes)
        provider_panel(board.provider_snapshot)


main()
