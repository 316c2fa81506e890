"""Telemetry: LLM cost and latency, tokens, approvals, reviewer outcomes and providers.

Figures come from `copilot.telemetry`, the same queries the CLI and the sidecar use, read on
one connection and cached until the store changes. Each panel offers the exact DataFrame it
draws as CSV. Charts stay legible from empty to a million rows and at laptop or desktop
widths: count axes are whole numbers from zero, time ticks follow the bucket width, and a
handful of buckets still shows as bars and markers.
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
# Up to this many buckets a series also draws markers: one point alone as a line is
# invisible. (Comments, not docstrings: Streamlit's magic would render a bare string.)
FEW_POINTS = 48
CHART_HEIGHT = 380
# Tick label per bucket width: short, and a second line rather than a wider label.
TIME_FORMATS = ((timedelta(days=1), "%b %-d"), (timedelta(hours=1), "%H:%M<br>%b %-d"))
PROVIDER_COLUMNS = {
    "provider": st.column_config.TextColumn("Provider"),
    "model": st.column_config.TextColumn("Model"),
    "calls": st.column_config.NumberColumn("Calls", format="localized"),
    "failures": st.column_config.NumberColumn("Failed", format="localized"),
    "fallbacks": st.column_config.NumberColumn("Fallback", format="localized"),
    "p50_latency_ms": st.column_config.NumberColumn("p50 ms", format="%.0f"),
    "p95_latency_ms": st.column_config.NumberColumn("p95 ms", format="%.0f"),
    "cost_usd": st.column_config.NumberColumn("Cost", format="dollar"),
    "unpriced_calls": st.column_config.NumberColumn("Unpriced", format="localized"),
    "prompt_tokens": st.column_config.NumberColumn("Prompt tok.", format="compact"),
    "completion_tokens": st.column_config.NumberColumn("Compl. tok.", format="compact"),
}


# Keyed by the store's change stamp, so a write shows on the next rerun; the ttl only bounds
# how long figures nobody asks for again stay in memory.
@st.cache_data(ttl=300, show_spinner=False)
def load_options(db: str, stamp: str) -> dict[str, list[str]]:
    return telemetry.filter_options(ui.services().store)


@st.cache_data(ttl=300, show_spinner="Reading telemetry...")
def load_dashboard(db: str, stamp: str, filters: Filters, interval: str | None) -> Dashboard:
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


def show(fig: go.Figure, frame: pd.DataFrame, name: str) -> None:
    ui.chart_with_csv(fig, frame, name)


def dual_axis(left: str, right: str) -> go.Figure:
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.update_yaxes(title_text=left, secondary_y=False)
    fig.update_yaxes(title_text=right, secondary_y=True, showgrid=False)
    return fig


def nice_step(peak: float, ticks: int = 5) -> int:
    """A whole 1-2-5 step giving at most `ticks` intervals up to `peak` (1 at least), so a
    count axis never shows 0.5 requests or the same label twice."""
    step = 1
    while peak / step > ticks:
        for factor in (2, 5 / 2, 2):  # 1 -> 2 -> 5 -> 10 -> 20 ...
            step = int(step * factor)
            if peak / step <= ticks:
                break
    return step


def count_axis(fig: go.Figure, peak: float, title: str, **where: object) -> None:
    """Whole numbers from zero: requests, runs, calls and tokens are never negative."""
    peak = 0.0 if pd.isna(peak) else peak  # a column of NULLs has no maximum
    big = peak >= 1_000_000
    fig.update_yaxes(
        title_text=title,
        rangemode="nonnegative",
        tick0=0,
        dtick=nice_step(peak),
        tickformat="~s" if big else ",d",
        range=[0, max(peak, 1) * 1.08],
        **where,
    )


def measure_axis(fig: go.Figure, title: str, tickformat: str, **where: object) -> None:
    fig.update_yaxes(title_text=title, rangemode="nonnegative", tickformat=tickformat, **where)


def time_axis(fig: go.Figure, frame: pd.DataFrame, interval: str, filters: Filters) -> None:
    """The whole chosen range (a quiet month shows as one), ticks formatted for the bucket
    width, at most 8 of them and level, so none overlap."""
    step = telemetry.parse_interval(interval)
    tickformat = next((f for width, f in TIME_FORMATS if step >= width), "%H:%M")
    start = min(filters.start or frame["bucket"].min(), frame["bucket"].min())
    end = max(filters.end or frame["bucket"].max(), frame["bucket"].max() + step)
    fig.update_xaxes(
        title_text=f"UTC, {interval} buckets",
        type="date",
        tickformat=tickformat,
        nticks=8,
        tickangle=0,
        range=[start, end],  # bucket starts align with time_bucket, so bars stay whole
    )


def bucket_bars(frame: pd.DataFrame, column: str, interval: str, **style: object) -> go.Bar:
    """Bars spanning their bucket (start + 80 % of its width), visible however few there are."""
    width = telemetry.parse_interval(interval)
    return go.Bar(
        x=frame["bucket"] + width * 0.5,
        y=frame[column],
        width=width.total_seconds() * 1000 * 0.8,
        **style,
    )


def bucket_line(frame: pd.DataFrame, column: str, interval: str, **style: object) -> go.Scatter:
    centre = frame["bucket"] + telemetry.parse_interval(interval) * 0.5
    mode = "lines+markers" if len(frame) <= FEW_POINTS else "lines"
    return go.Scatter(x=centre, y=frame[column], mode=mode, **style)


def layout(fig: go.Figure) -> None:
    fig.update_layout(
        height=CHART_HEIGHT,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
    )


def empty(what: str) -> None:
    st.info(f"{what} {HOW_TO}", icon=":material/query_stats:")


def cost_latency_panel(frame: pd.DataFrame, interval: str, filters: Filters) -> None:
    st.subheader("LLM cost vs latency")
    if frame.empty:
        return empty("No LLM calls in this range.")
    fig = dual_axis("USD", "ms")
    fig.add_trace(bucket_bars(frame, "cost_usd", interval, name="cost (USD)"))
    for column, label in (("avg_latency_ms", "avg latency"), ("p95_latency_ms", "p95 latency")):
        fig.add_trace(bucket_line(frame, column, interval, name=f"{label} (ms)"), secondary_y=True)
    measure_axis(fig, "USD", "$,.4~f", secondary_y=False)
    measure_axis(fig, "ms", ",.0f", secondary_y=True)
    time_axis(fig, frame, interval, filters)
    layout(fig)
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
    fig.update_layout(barmode="group")
    peak = max(frame["prompt_tokens"].max(), frame["completion_tokens"].max())
    count_axis(fig, float(peak), "tokens")
    fig.update_xaxes(type="category", tickangle=0 if len(frame) <= 4 else -30)
    layout(fig)
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
    count_axis(fig, float(frame["approvals"].max()), "requests")
    fig.update_xaxes(type="category", tickangle=0)
    layout(fig)
    show(fig, frame, "approvals_by_status")


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def reviewer_panel(frame: pd.DataFrame, interval: str, filters: Filters) -> None:
    st.subheader("Reviewer outcomes")
    if frame.empty:
        return empty("No reviewer verdicts in this range.")
    fig = dual_axis("runs", "flags")
    for verdict, colour in VERDICT_COLOURS.items():
        fig.add_trace(bucket_bars(frame, verdict, interval, name=verdict, marker_color=colour))
    flags = bucket_line(frame, "injection_flags", interval, name="injection flags")
    fig.add_trace(flags, secondary_y=True)
    fig.update_layout(barmode="stack")
    runs = frame[list(VERDICT_COLOURS)].sum(axis=1).max()
    count_axis(fig, float(runs), "runs", secondary_y=False)
    count_axis(fig, float(frame["injection_flags"].max()), "flags", secondary_y=True)
    time_axis(fig, frame, interval, filters)
    layout(fig)
    show(fig, frame, "reviewer_outcomes")


def provider_panel(frame: pd.DataFrame) -> None:
    st.subheader("Provider snapshot")
    if frame.empty:
        return empty("No provider has answered in this range.")
    st.dataframe(frame, hide_index=True, width="stretch", column_config=PROVIDER_COLUMNS)
    labels = frame["provider"] + "/" + frame["model"]
    columns = ("calls", "failures", "fallbacks")
    fig = go.Figure([go.Bar(x=labels, y=frame[c], name=c) for c in columns])
    fig.update_layout(barmode="group")
    count_axis(fig, float(frame[list(columns)].max().max()), "calls")
    fig.update_xaxes(type="category", tickangle=0 if len(frame) <= 6 else -30)
    layout(fig)
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
        store = ui.services().store
        db, stamp = store.cache_id, store.change_stamp()
        filters, interval = filter_bar(load_options(db, stamp))
        board = load_dashboard(db, stamp, filters, interval)
        headline(board.provider_snapshot)
        left, right = st.columns(2)
        with left:
            cost_latency_panel(board.cost_latency, board.interval, filters)
        with right:
            tokens_panel(board.tokens_by_model)
        left, right = st.columns(2)
        with left:
            approvals_panel(board.approvals, board.median_s_to_decision)
        with right:
            reviewer_panel(board.reviewer_outcomes, board.interval, filters)
        provider_panel(board.provider_snapshot)


main()
