"""Telemetry: the read queries behind the Telemetry page, the CLI and the sidecar.

Written once, used by all three, on either engine (copilot/dialect.py). Every aggregate is
computed inside the database (time_bucket, percentile_cont, FILTER), so a panel stays fast
at a million usage rows; Python only builds
the WHERE clause from `Filters` and names the columns. Timestamps are naive UTC, as in the
store. Approvals and reviews carry no provider or model of their own: they follow their run.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from copilot.approvals import STATUSES
from copilot.errors import InputError
from copilot.readcache import CACHE, Reader
from copilot.store import Store, utcnow

VERDICTS = ("pass", "warn", "fail")
MAX_LIMIT = 1000
"""Most rows `recent_calls` returns; the sidecar answers 422 above it."""
MAX_BUCKETS = 5000
"""Most buckets an explicit interval may produce over the filtered range."""
AUTO_POINTS = 360
"""An automatic interval is the smallest step giving at most this many buckets."""
AUTO_STEPS = ("1m", "5m", "15m", "1h", "6h", "1d", "7d")
LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Upper bounds (seconds) of the Prometheus latency histogram."""
_UNITS = {"s": ("second", 1), "m": ("minute", 60), "h": ("hour", 3600), "d": ("day", 86400)}
_MAX_TEXT = 200


@dataclass(frozen=True)
class Filters:
    """Which rows a query sees: a half-open UTC range [start, end) and exact dimensions.

    Aware datetimes are converted to naive UTC. A blank value or `*` means "no filter": `*` is
    what the Grafana dashboard sends when a variable is set to All.
    """

    start: datetime | None = None
    end: datetime | None = None
    provider: str | None = None
    model: str | None = None
    user: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", _naive_utc(self.start))
        object.__setattr__(self, "end", _naive_utc(self.end))
        for name in ("provider", "model", "user"):
            object.__setattr__(self, name, _clean_text(name, getattr(self, name)))
        if self.start and self.end and self.start >= self.end:
            raise InputError(
                f"from ({self.start:%Y-%m-%d %H:%M:%S}) must be before "
                f"to ({self.end:%Y-%m-%d %H:%M:%S}) UTC."
            )

    @classmethod
    def parse(
        cls,
        start: str | None = None,
        end: str | None = None,
        provider: str | None = None,
        model: str | None = None,
        user: str | None = None,
    ) -> Filters:
        """Filters from text, as the CLI and the sidecar receive them."""
        return cls(parse_time(start, "from"), parse_time(end, "to"), provider, model, user)

    def as_dict(self) -> dict[str, Any]:
        return {
            "from": _iso(self.start),
            "to": _iso(self.end),
            "provider": self.provider,
            "model": self.model,
            "user": self.user,
        }


def _naive_utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def _clean_text(name: str, value: str | None) -> str | None:
    if value is None or str(value).strip() in ("", "*"):
        return None
    if len(value) > _MAX_TEXT:
        raise InputError(
            f"{name} is longer than {_MAX_TEXT} characters; pick a value from the list."
        )
    return str(value).strip()


def _iso(value: datetime | None) -> str | None:
    return f"{value:%Y-%m-%dT%H:%M:%S}Z" if value else None


def parse_time(raw: str | None, name: str) -> datetime | None:
    """ISO 8601 (`2024-05-01`, `...T12:00:00.000Z`, offsets) or epoch milliseconds.

    Grafana's `${__from:date:iso}` gives ISO with `Z`; plain `${__from}` gives epoch ms. A `+`
    in an unencoded query string arrives as a space, so a trailing ` 02:00` is read as +02:00.
    """
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    if text.isdigit():
        number = int(text)
        seconds = number / 1000 if number >= 10**11 else number
        return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)
    text = re.sub(r"(T[\d:.]+) (\d\d:?\d\d)$", r"\1+\2", text)
    try:
        return _naive_utc(datetime.fromisoformat(text))
    except ValueError:
        raise InputError(
            f"{name}={raw!r} is not a time; use ISO 8601 such as 2024-05-01T12:00:00Z or "
            "2024-05-01, or epoch milliseconds."
        ) from None


def _split_interval(text: str) -> tuple[int, str]:
    match = re.fullmatch(r"\s*(\d{1,5})\s*([smhd])\s*", text or "")
    if not match or int(match.group(1)) == 0:
        raise InputError(
            f"interval={text!r} is not a duration; use a number and a unit, e.g. 1m, 5m, 1h, 1d."
        )
    return int(match.group(1)), match.group(2)


def parse_interval(text: str) -> timedelta:
    """`30s`, `5m`, `1h`, `1d`: the bucket widths the page, the CLI and Grafana send."""
    number, unit = _split_interval(text)
    return timedelta(seconds=number * _UNITS[unit][1])


def _interval_sql(text: str) -> str:
    """`5m` as DuckDB INTERVAL text; whole days stay days so buckets align on midnight."""
    number, unit = _split_interval(text)
    return f"{number} {_UNITS[unit][0]}"


def choose_interval(span: timedelta) -> str:
    """The smallest standard step giving at most AUTO_POINTS buckets over `span`."""
    for step in AUTO_STEPS:
        if span / parse_interval(step) <= AUTO_POINTS:
            return step
    return AUTO_STEPS[-1]


def resolve_interval(store: Store, filters: Filters, interval: str | None = None) -> str:
    """The bucket width for a series: the one asked for (checked) or one fitting the range."""
    with Reader(store) as reader:
        return _resolve(reader, filters, interval)


def _resolve(reader: Reader, filters: Filters, interval: str | None) -> str:
    span = _span(reader, filters)
    if not interval or not interval.strip():
        return choose_interval(span)
    step = parse_interval(interval)
    if span / step > MAX_BUCKETS:
        raise InputError(
            f"interval={interval} over {span} makes more than {MAX_BUCKETS:,} buckets; "
            f"use {choose_interval(span)} or leave interval empty to choose automatically."
        )
    return interval.strip()


def _span(reader: Reader, filters: Filters) -> timedelta:
    """The filtered range; an open end is closed by the data (or now) so buckets fit it."""
    start, end = filters.start, filters.end
    if start is None:
        where, params = _usage_where(filters)
        first = reader.frame(f"SELECT min(created_at) AS first FROM llm_usage {where}", params)
        value = first["first"].iloc[0] if len(first) else None
        start = utcnow() if value is None or pd.isna(value) else value.to_pydatetime()
    end = end or max(utcnow(), start + timedelta(minutes=1))
    return max(end - start, timedelta(minutes=1))


@dataclass(frozen=True)
class Query:
    """SQL with its parameters: built once, run alone or with others on one connection."""

    sql: str
    params: list[Any] = field(default_factory=list)


def run(store: Store, query: Query) -> pd.DataFrame:
    return run_many(store, {"result": query})["result"]


def run_many(
    store: Store, queries: dict[str, Query], *, cached: bool = True
) -> dict[str, pd.DataFrame]:
    """Several queries, answered from the change-stamp cache or on one read-only connection.

    `cached=False` is for whole tables (the export): always read, never kept.
    """
    with Reader(store, CACHE if cached else None) as reader:
        return _run_on(reader, queries)


def read_bucketed(
    store: Store,
    filters: Filters,
    interval: str | None,
    build: Callable[[str], dict[str, Query]],
) -> tuple[str, dict[str, pd.DataFrame]]:
    """Choose the bucket width and run the queries built for it, on at most one connection
    (the range lookup used to cost an extra open of the DB)."""
    with Reader(store) as reader:
        step = _resolve(reader, filters, interval)
        return step, _run_on(reader, build(step))


def _run_on(reader: Reader, queries: dict[str, Query]) -> dict[str, pd.DataFrame]:
    return {name: reader.frame(q.sql, q.params) for name, q in queries.items()}


def _median(frame: pd.DataFrame) -> float | None:
    """The one-row decision median as a float, None when nothing was decided."""
    value = frame["median_s_to_decision"].iloc[0]
    return None if pd.isna(value) else float(value)


# -- WHERE clauses --------------------------------------------------------------------------

_USAGE_DIMS = {"provider": "provider", "model": "model", "user": "user_name"}


def _conditions(filters: Filters, time_col: str, dims: dict[str, str]) -> tuple[list[str], list]:
    clauses: list[str] = []
    params: list[Any] = []
    if filters.start:
        clauses.append(f"{time_col} >= ?")
        params.append(filters.start)
    if filters.end:
        clauses.append(f"{time_col} < ?")
        params.append(filters.end)
    for name, column in dims.items():
        value = getattr(filters, name)
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    return clauses, params


def _where(clauses: list[str]) -> str:
    return f"WHERE {' AND '.join(clauses)}" if clauses else ""


def _usage_where(filters: Filters) -> tuple[str, list[Any]]:
    clauses, params = _conditions(filters, "created_at", _USAGE_DIMS)
    return _where(clauses), params


def time_where(filters: Filters, time_col: str = "created_at") -> tuple[str, list[Any]]:
    """Only the time range, for tables without provider/model/user (the export)."""
    clauses, params = _conditions(filters, time_col, {})
    return _where(clauses), params


def _run_scoped_where(filters: Filters) -> tuple[str, list[Any]]:
    """Approvals and reviews: time on their own row, provider/model/user on their run."""
    clauses, params = _conditions(filters, "created_at", {})
    no_time = Filters(provider=filters.provider, model=filters.model, user=filters.user)
    run_clauses, run_params = _conditions(no_time, "", _USAGE_DIMS)
    if run_clauses:
        clauses.append(f"run_id IN (SELECT run_id FROM runs WHERE {' AND '.join(run_clauses)})")
        params += run_params
    return _where(clauses), params


def _keys(names: tuple[str, ...]) -> tuple[str, list[Any]]:
    """A VALUES table of the expected keys, so absent statuses still show as zero rows."""
    rows = ", ".join(f"(?, {i})" for i in range(len(names)))
    return f"(VALUES {rows}) AS k(key, position)", list(names)


# -- Query builders (one per panel / endpoint) ----------------------------------------------


def cost_latency_query(filters: Filters, interval: str) -> Query:
    where, params = _usage_where(filters)
    return Query(
        "SELECT time_bucket(?::INTERVAL, created_at) AS bucket, count(*) AS calls,"
        " coalesce(sum(cost_usd), 0) AS cost_usd,"
        " avg(latency_ms) AS avg_latency_ms,"
        " percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95_latency_ms,"
        " sum(prompt_tokens)::BIGINT AS prompt_tokens,"
        " sum(completion_tokens)::BIGINT AS completion_tokens"
        f" FROM llm_usage {where} GROUP BY bucket ORDER BY bucket",
        [_interval_sql(interval), *params],
    )


def tokens_by_model_query(filters: Filters) -> Query:
    where, params = _usage_where(filters)
    return Query(
        "SELECT provider, model, sum(prompt_tokens)::BIGINT AS prompt_tokens,"
        " sum(completion_tokens)::BIGINT AS completion_tokens, count(*) AS calls"
        f" FROM llm_usage {where} GROUP BY provider, model"
        " ORDER BY sum(prompt_tokens) + sum(completion_tokens) DESC, provider, model",
        params,
    )


def usage_breakdown_query(filters: Filters, by: tuple[str, ...]) -> Query:
    """Calls, failures, fallbacks, latency percentiles, cost and tokens per group."""
    unknown = [d for d in by if d not in _USAGE_DIMS]
    if unknown or not by:
        raise InputError(f"Group by one or more of {', '.join(_USAGE_DIMS)}, not {unknown}.")
    cols = ", ".join(f'{_USAGE_DIMS[d]} AS "{d}"' for d in by)
    groups = ", ".join(_USAGE_DIMS[d] for d in by)
    # Quoted: `user` alone is PostgreSQL's current_user, not the column alias.
    order = ", ".join(f'"{d}"' for d in by)
    where, params = _usage_where(filters)
    return Query(
        f"SELECT {cols}, count(*) AS calls,"
        " count(*) FILTER (WHERE status <> 'ok') AS failures,"
        " count(*) FILTER (WHERE fallback) AS fallbacks,"
        " percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS p50_latency_ms,"
        " percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95_latency_ms,"
        " coalesce(sum(cost_usd), 0) AS cost_usd,"
        " count(*) FILTER (WHERE cost_usd IS NULL) AS unpriced_calls,"
        " sum(prompt_tokens)::BIGINT AS prompt_tokens,"
        " sum(completion_tokens)::BIGINT AS completion_tokens"
        f" FROM llm_usage {where} GROUP BY {groups} ORDER BY calls DESC, {order}",
        params,
    )


def summary_query(filters: Filters) -> Query:
    where, params = _usage_where(filters)
    return Query(
        "SELECT count(*) AS calls,"
        " count(*) FILTER (WHERE status <> 'ok') AS failures,"
        " count(*) FILTER (WHERE fallback) AS fallbacks,"
        " coalesce(sum(prompt_tokens), 0)::BIGINT AS prompt_tokens,"
        " coalesce(sum(completion_tokens), 0)::BIGINT AS completion_tokens,"
        " coalesce(sum(cost_usd), 0) AS cost_usd,"
        " count(*) FILTER (WHERE cost_usd IS NULL) AS unpriced_calls,"
        " avg(latency_ms) AS avg_latency_ms,"
        " percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS p50_latency_ms,"
        " percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95_latency_ms,"
        " min(created_at) AS first_call, max(created_at) AS last_call"
        f" FROM llm_usage {where}",
        params,
    )


def recent_calls_query(filters: Filters, limit: int) -> Query:
    if not 1 <= limit <= MAX_LIMIT:
        raise InputError(f"limit must be between 1 and {MAX_LIMIT}, not {limit}.")
    where, params = _usage_where(filters)
    return Query(
        "SELECT created_at, provider, model, purpose, user_name, status, error_class,"
        " latency_ms, prompt_tokens, completion_tokens, cost_usd, attempts, fallback,"
        f" run_id, call_id FROM llm_usage {where} ORDER BY created_at DESC, call_id LIMIT ?",
        [*params, limit],
    )


def latency_histogram_query(filters: Filters) -> Query:
    """Cumulative counts per fixed bound, one column per bound (`le_0`, `le_1`, ...)."""
    where, params = _usage_where(filters)
    bounds = ", ".join(
        f"count(*) FILTER (WHERE latency_ms <= ?) AS le_{i}" for i in range(len(LATENCY_BUCKETS_S))
    )
    return Query(
        f"SELECT provider, model, count(*) AS calls, sum(latency_ms) / 1000 AS sum_s, {bounds}"
        f" FROM llm_usage {where} GROUP BY provider, model ORDER BY provider, model",
        [*(b * 1000 for b in LATENCY_BUCKETS_S), *params],
    )


def approval_summary_query(filters: Filters) -> Query:
    keys, key_params = _keys(STATUSES)
    where, params = _run_scoped_where(filters)
    return Query(
        "SELECT k.key AS status, count(a.approval_id) AS approvals,"
        " percentile_cont(0.5) WITHIN GROUP (ORDER BY epoch(a.decided_at - a.created_at))"
        " AS median_s_to_decision"
        f" FROM {keys} LEFT JOIN (SELECT * FROM approvals {where}) a ON a.status = k.key"
        " GROUP BY k.key, k.position ORDER BY k.position",
        [*key_params, *params],
    )


def decision_median_query(filters: Filters) -> Query:
    """Median seconds from request to a person's decision; expiry is not a decision."""
    where, params = _run_scoped_where(filters)
    decided = "status IN ('approved', 'rejected') AND decided_at IS NOT NULL"
    where = f"{where} AND {decided}" if where else f"WHERE {decided}"
    return Query(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY epoch(decided_at - created_at))"
        " AS median_s_to_decision,"
        f" count(*) AS decisions FROM approvals {where}",
        params,
    )


def reviewer_outcomes_query(filters: Filters, interval: str) -> Query:
    where, params = _run_scoped_where(filters)
    return Query(
        "SELECT time_bucket(?::INTERVAL, created_at) AS bucket,"
        " count(*) FILTER (WHERE verdict = 'pass') AS pass,"
        " count(*) FILTER (WHERE verdict = 'warn') AS warn,"
        " count(*) FILTER (WHERE verdict = 'fail') AS fail,"
        " sum(injection_flags)::BIGINT AS injection_flags"
        f" FROM reviews {where} GROUP BY bucket ORDER BY bucket",
        [_interval_sql(interval), *params],
    )


def review_totals_query(filters: Filters) -> Query:
    keys, key_params = _keys(VERDICTS)
    where, params = _run_scoped_where(filters)
    return Query(
        "SELECT k.key AS verdict, count(r.run_id) AS reviews,"
        " coalesce(sum(r.injection_flags), 0)::BIGINT AS injection_flags"
        f" FROM {keys} LEFT JOIN (SELECT * FROM reviews {where}) r ON r.verdict = k.key"
        " GROUP BY k.key, k.position ORDER BY k.position",
        [*key_params, *params],
    )


# -- Public reads -----------------------------------------------------------------------------


def cost_latency_series(
    store: Store, filters: Filters, interval: str | None = None
) -> pd.DataFrame:
    """bucket, calls, cost_usd, avg/p95 latency_ms, prompt/completion tokens per bucket."""
    _, frames = read_bucketed(
        store, filters, interval, lambda step: {"series": cost_latency_query(filters, step)}
    )
    return frames["series"]


def tokens_by_model(store: Store, filters: Filters) -> pd.DataFrame:
    return run(store, tokens_by_model_query(filters))


def provider_snapshot(store: Store, filters: Filters) -> pd.DataFrame:
    """Per provider and model: calls, failures, fallbacks, p50/p95 latency, cost, tokens."""
    return run(store, usage_breakdown_query(filters, ("provider", "model")))


def usage_breakdown(store: Store, filters: Filters, by: tuple[str, ...]) -> pd.DataFrame:
    return run(store, usage_breakdown_query(filters, by))


def approval_summary(store: Store, filters: Filters) -> pd.DataFrame:
    """One row per status (zeros included) with its count and median seconds to decide."""
    return run(store, approval_summary_query(filters))


def median_decision_seconds(store: Store, filters: Filters) -> float | None:
    return _median(run(store, decision_median_query(filters)))


def reviewer_outcomes(store: Store, filters: Filters, interval: str | None = None) -> pd.DataFrame:
    """bucket, pass, warn, fail, injection_flags: reviewer verdicts over time."""
    _, frames = read_bucketed(
        store, filters, interval, lambda step: {"series": reviewer_outcomes_query(filters, step)}
    )
    return frames["series"]


def review_totals(store: Store, filters: Filters) -> pd.DataFrame:
    return run(store, review_totals_query(filters))


def recent_calls(store: Store, filters: Filters, limit: int = 50) -> pd.DataFrame:
    return run(store, recent_calls_query(filters, limit))


def llm_summary(store: Store, filters: Filters) -> dict[str, Any]:
    """Totals over the filtered calls, as one flat record."""
    return to_records(run(store, summary_query(filters)))[0]


def filter_options(store: Store) -> dict[str, list[str]]:
    """Providers, models and users present in the usage data, for the filter pickers."""
    queries = {
        name: Query(
            f"SELECT DISTINCT {col} AS value FROM llm_usage WHERE {col} IS NOT NULL ORDER BY 1"
        )
        for name, col in (("providers", "provider"), ("models", "model"), ("users", "user_name"))
    }
    return {name: df["value"].astype(str).tolist() for name, df in run_many(store, queries).items()}


def llm_overview(store: Store, filters: Filters) -> dict[str, pd.DataFrame]:
    """summary (one row), providers and tokens_by_model, read on one connection."""
    return run_many(
        store,
        {
            "summary": summary_query(filters),
            "providers": usage_breakdown_query(filters, ("provider", "model")),
            "tokens_by_model": tokens_by_model_query(filters),
        },
    )


def governance_overview(
    store: Store, filters: Filters, interval: str | None = None
) -> tuple[str, dict[str, pd.DataFrame]]:
    """The bucket width, and approvals, the decision median (one row), reviewer decisions
    and reviewer outcomes over time, read on one connection."""
    return read_bucketed(
        store,
        filters,
        interval,
        lambda step: {
            "approvals": approval_summary_query(filters),
            "median": decision_median_query(filters),
            "reviewer_decisions": review_totals_query(filters),
            "reviewer_outcomes": reviewer_outcomes_query(filters, step),
        },
    )


@dataclass(frozen=True)
class Dashboard:
    """Every panel of the Telemetry page, read on one connection."""

    interval: str
    cost_latency: pd.DataFrame
    tokens_by_model: pd.DataFrame
    approvals: pd.DataFrame
    median_s_to_decision: float | None
    reviewer_outcomes: pd.DataFrame
    provider_snapshot: pd.DataFrame


def dashboard(store: Store, filters: Filters, interval: str | None = None) -> Dashboard:
    step, frames = read_bucketed(
        store,
        filters,
        interval,
        lambda step: {
            "cost_latency": cost_latency_query(filters, step),
            "tokens_by_model": tokens_by_model_query(filters),
            "approvals": approval_summary_query(filters),
            "median": decision_median_query(filters),
            "reviewer_outcomes": reviewer_outcomes_query(filters, step),
            "provider_snapshot": usage_breakdown_query(filters, ("provider", "model")),
        },
    )
    median = _median(frames.pop("median"))
    return Dashboard(interval=step, median_s_to_decision=median, **frames)


@dataclass(frozen=True)
class MetricsSnapshot:
    """All-time totals the Prometheus collector exposes, read on one connection."""

    usage: pd.DataFrame
    latency: pd.DataFrame
    approvals: pd.DataFrame
    reviews: pd.DataFrame


def metrics_snapshot(store: Store) -> MetricsSnapshot:
    everything = Filters()
    frames = run_many(
        store,
        {
            "usage": usage_breakdown_query(everything, ("provider", "model")),
            "latency": latency_histogram_query(everything),
            "approvals": approval_summary_query(everything),
            "reviews": review_totals_query(everything),
        },
    )
    return MetricsSnapshot(**frames)


def to_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready flat records: timestamps as ISO 8601 UTC with Z, NaN/NULL as None.

    Microseconds are kept when present: audit hashes cover them, so an export stays verifiable.
    Panel-sized frames are converted value by value: pandas' vectorised path costs ~10 ms per
    frame even for three rows, which was most of a cached sidecar request.
    """
    if len(frame) > FAST_RECORDS_MAX_ROWS:
        return _records_vectorised(frame)
    names = [str(c) for c in frame.columns]
    rows = frame.to_numpy(dtype=object).tolist()
    return [dict(zip(names, map(_json_value, row), strict=True)) for row in rows]


FAST_RECORDS_MAX_ROWS = 5_000


def _json_value(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, datetime):  # pd.Timestamp is a datetime
        return _iso_micro(value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _iso_micro(value: datetime) -> str:
    text = f"{value:%Y-%m-%dT%H:%M:%S.%f}".removesuffix(".000000")
    return f"{text}Z"


def _records_vectorised(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = frame.copy()
    for col in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[col]):
            text = out[col].dt.strftime("%Y-%m-%dT%H:%M:%S.%f").str.removesuffix(".000000")
            out[col] = text + "Z"
    records: list[dict[str, Any]] = json.loads(out.to_json(orient="records", double_precision=15))
    return records


# -- Retention: the one write here ------------------------------------------------------------


def prune_usage(store: Store, provider: str, before: datetime | None, actor: str) -> int:
    """Delete one provider's usage rows (optionally only older ones), audited; returns count."""
    filters = Filters(end=before, provider=provider)
    if filters.provider is None:
        raise InputError("prune needs --provider, e.g. --provider stub; it never deletes all.")
    where, params = _usage_where(filters)
    with store.transaction() as tx:
        count = int(tx.value(f"SELECT count(*) FROM llm_usage {where}", params) or 0)
        tx.execute(f"DELETE FROM llm_usage {where}", params)
        tx.audit(
            actor=actor,
            action="telemetry.pruned",
            reason=f"deleted {count} llm_usage rows of provider {filters.provider}",
            detail={"provider": filters.provider, "before": _iso(filters.end), "rows": count},
        )
    return count
