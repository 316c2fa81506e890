"""Evaluation: what governance catches and costs, from the bench reports (`make bench`,
`python -m copilot bench`) in reports/bench/: the latest run's metrics per configuration, and
the history of earlier runs. Reads files only; the store and the model are not touched.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from copilot import ui
from copilot.evaluation import report
from copilot.evaluation.metrics import METRICS

# Shares of tasks (0..1), drawn side by side per configuration.
RATES = (
    "attack_success_rate",
    "injections_named",
    "writes_paused",
    "right_runbook_rate",
    "admits_missing_rate",
    "unsupported_line_rate",
)
LABELS = {key: label for key, label, _ in METRICS}
COLOURS = {"governed": "#2e7d32", "baseline": "#c62828"}
# Where the reports are; COPILOT_BENCH_REPORTS points elsewhere (the page's tests do).
FOLDER = Path(os.environ.get("COPILOT_BENCH_REPORTS", str(report.REPORTS)))


@st.cache_data(ttl=30, show_spinner=False)
def load_history(folder: str) -> list[dict]:
    return report.history(Path(folder))


def metrics_frame(latest: dict) -> pd.DataFrame:
    rows = [
        {"metric": label, **{c: m.get(key) for c, m in latest["configs"].items()}, "meaning": why}
        for key, label, why in METRICS
    ]
    return pd.DataFrame(rows)


def grouped_bars(latest: dict, keys: tuple[str, ...], title: str) -> tuple[go.Figure, pd.DataFrame]:
    frame = pd.DataFrame(
        [
            {"config": c, "metric": LABELS[k], "value": m.get(k)}
            for c, m in latest["configs"].items()
            for k in keys
        ]
    )
    fig = go.Figure()
    for config, part in frame.groupby("config", sort=False):
        fig.add_bar(
            x=part["metric"],
            y=part["value"],
            name=str(config),
            marker_color=COLOURS.get(str(config)),
        )
    fig.update_layout(title=title, barmode="group", height=380, margin={"t": 50, "b": 10})
    return fig, frame


def history_frame(runs: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "run": r["created_at"],
                "suite": r.get("suite", ""),
                "provider": r.get("provider", ""),
                "config": c,
                **{k: m.get(k) for k, _, _ in METRICS},
            }
            for r in runs
            for c, m in r["configs"].items()
        ]
    )


def history_chart(frame: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    for config, part in frame.groupby("config", sort=False):
        for key, dash in (("attack_success_rate", "solid"), ("right_runbook_rate", "dot")):
            fig.add_scatter(
                x=part["run"],
                y=part[key],
                name=f"{config}: {LABELS[key]}",
                mode="lines+markers",
                line={"dash": dash, "color": COLOURS.get(str(config))},
            )
    # One tick per run: as a time axis, a single run got sub-millisecond tick labels.
    fig.update_layout(
        title="Earlier bench runs",
        height=380,
        yaxis={"range": [0, 1.05]},
        xaxis={"type": "category", "title": "run (UTC)"},
    )
    return fig


def main() -> None:
    st.title("Evaluation")
    st.caption(
        "The same suite of tasks through the governed copilot and through a baseline without "
        "policy gates, reviewer or guard, on the same provider. Run `make bench` or "
        "`python -m copilot bench` to add a run; the README explains each metric."
    )
    runs = load_history(str(FOLDER))
    if not runs:
        st.info(f"No bench report in `{FOLDER}` yet. Run `make bench` (about 5 minutes).")
        return
    latest = runs[-1]
    st.subheader(f"Latest run: {latest['created_at']}")
    st.caption(
        f"Suite `{latest['suite']}`, provider `{latest['provider']}`, "
        f"{latest['configs'][next(iter(latest['configs']))]['tasks']} tasks per configuration, "
        f"{latest['wall_s']} s."
    )
    table = metrics_frame(latest)
    st.dataframe(table, hide_index=True)
    ui.csv_download(table, "bench-metrics")
    left, right = st.columns(2)
    with left:
        ui.chart_with_csv(*grouped_bars(latest, RATES, "Shares of tasks"), "bench-rates")
    with right:
        keys = ("latency_p50_ms", "latency_p95_ms")
        ui.chart_with_csv(*grouped_bars(latest, keys, "Latency (ms)"), "bench-latency")
    st.subheader("History")
    frame = history_frame(runs)
    if len(runs) == 1:
        st.caption("One run so far: each `make bench` adds a point here.")
    ui.chart_with_csv(history_chart(frame), frame, "bench-history")


main()
