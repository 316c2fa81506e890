"""Budgets per LLM call: reserve the most a call can cost before making it, settle after.

Three limits, each 0 for none: per run (COPILOT_BUDGET_RUN_USD), per user per UTC day
(COPILOT_BUDGET_USER_USD) and for everyone per UTC day (COPILOT_BUDGET_USD). A reservation
is checked against all three and inserted in ONE store transaction; the store serialises
write transactions across threads (a lock per file) and processes (DuckDB's file lock), so
no two callers can both see the same headroom. That is what keeps 10 concurrent runs from
spending past a limit, where a check at the start of each run let them overspend 18x.

Spend is counted from the reservations table: a settled reservation counts its actual cost,
an open one what it reserved, a released one nothing.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any

from copilot.config import Settings
from copilot.errors import BudgetExceeded
from copilot.llm.base import messages_tokens
from copilot.llm.pricing import PriceTable
from copilot.store import Store, Transaction, utcnow

WARN_AT = 0.8
_LIMIT_VARS = {
    "run": "COPILOT_BUDGET_RUN_USD",
    "user": "COPILOT_BUDGET_USER_USD",
    "total": "COPILOT_BUDGET_USD",
}
_SPENT = "COALESCE(actual_usd, reserved_usd)"
# Float sums of many small costs drift in the last bits; never refuse over that.
_EPSILON = 1e-9


@dataclass(frozen=True)
class Limits:
    """USD limits; 0 means no limit."""

    run_usd: float = 0.0
    user_usd: float = 0.0
    total_usd: float = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(settings.budget_run_usd, settings.budget_user_usd, settings.budget_usd)


@dataclass(frozen=True)
class Reservation:
    id: str
    run_id: str | None
    user: str
    reserved_usd: float


@dataclass(frozen=True)
class Refusal:
    """Why a call could not be reserved: the first limit it would cross."""

    limit: str  # "run" | "user" | "total"
    limit_usd: float
    spent_usd: float
    amount_usd: float

    @property
    def reason(self) -> str:
        scope = {"run": "this run", "user": "your daily", "total": "the team's daily"}[self.limit]
        return (
            f"the call may cost ${self.amount_usd:.6f}, and {scope} budget has "
            f"${max(self.limit_usd - self.spent_usd, 0):.6f} of ${self.limit_usd:.6f} left"
        )


@dataclass(frozen=True)
class Spend:
    user_usd: float
    total_usd: float


def reserve(
    store: Store, *, run_id: str | None, user: str, amount_usd: float, limits: Limits
) -> Reservation | None:
    """Reserve `amount_usd` against all three limits at once; None when one would be crossed."""
    outcome = try_reserve(store, run_id=run_id, user=user, amount_usd=amount_usd, limits=limits)
    return outcome if isinstance(outcome, Reservation) else None


def try_reserve(
    store: Store, *, run_id: str | None, user: str, amount_usd: float, limits: Limits
) -> Reservation | Refusal:
    """Like `reserve`, but a refusal says which limit; the refusal is audited."""
    if amount_usd < 0 or math.isnan(amount_usd):
        raise ValueError(f"amount_usd must be a cost >= 0, not {amount_usd}")
    with store.transaction() as tx:
        # Check and insert as one step across replicas: FOR UPDATE cannot lock rows that
        # another reservation is about to insert, a named lock can.
        tx.lock("budgets")
        refusal = _first_crossed(tx, run_id, user, amount_usd, limits)
        if refusal is not None:
            tx.audit(
                actor=user,
                action="budget.refused",
                reason=refusal.reason,
                run_id=run_id,
                detail={"limit": refusal.limit, "limit_usd": refusal.limit_usd,
                        "spent_usd": refusal.spent_usd, "amount_usd": amount_usd},
            )  # fmt: skip
            return refusal
        reservation = Reservation(uuid.uuid4().hex[:16], run_id, user, amount_usd)
        tx.insert(
            "reservations",
            {"id": reservation.id, "run_id": run_id, "user_name": user,
             "reserved_usd": amount_usd, "actual_usd": None, "status": "reserved",
             "created_at": utcnow()},
        )  # fmt: skip
    return reservation


@dataclass
class Held:
    """A reservation held while the call runs; set `actual_usd` once usage is known."""

    reservation: Reservation
    actual_usd: float | None = None


@contextmanager
def reserved(
    store: Store, *, run_id: str | None, user: str, amount_usd: float, limits: Limits
) -> Iterator[Held]:
    """Reserve around one LLM call: raises BudgetExceeded (saying which limit) when it cannot
    be reserved, releases the reservation if the call raises, settles it otherwise (at the
    reserved amount when the caller set no `actual_usd`).

        with budgets.reserved(store, run_id=..., user=..., amount_usd=..., limits=...) as held:
            response = provider.complete(request)
            held.actual_usd = prices.cost(response)
    """
    outcome = try_reserve(store, run_id=run_id, user=user, amount_usd=amount_usd, limits=limits)
    if isinstance(outcome, Refusal):
        raise BudgetExceeded(
            f"LLM call not made: {outcome.reason}. Raise the limit "
            f"({_LIMIT_VARS[outcome.limit]}), wait for tomorrow (UTC), or use LLM_PROVIDER=stub."
        )
    held = Held(outcome)
    try:
        yield held
    except BaseException:
        release(store, outcome)
        raise
    settle(store, outcome, held.actual_usd)


def settle(store: Store, reservation: Reservation, actual_usd: float | None) -> None:
    """Record what the call really cost. None (a model without a price) keeps the
    reserved amount, the most it could have cost."""
    actual = reservation.reserved_usd if actual_usd is None else actual_usd
    with store.transaction() as tx:
        tx.execute(
            "UPDATE reservations SET actual_usd = ?, status = 'settled', settled_at = ? "
            "WHERE id = ? AND status = 'reserved'",
            [actual, utcnow(), reservation.id],
        )


def release(store: Store, reservation: Reservation) -> None:
    """Give the reservation back: the call was not made or failed before any usage."""
    with store.transaction() as tx:
        tx.execute(
            "UPDATE reservations SET actual_usd = 0, status = 'released', settled_at = ? "
            "WHERE id = ? AND status = 'reserved'",
            [utcnow(), reservation.id],
        )


def spend_today(store: Store, user: str) -> Spend:
    """Today's (UTC) spend of `user` and of everyone, for the sidebar."""
    rows = store.query(
        f"SELECT COALESCE(SUM({_SPENT}) FILTER (WHERE user_name = ?), 0) AS user_usd, "
        f"COALESCE(SUM({_SPENT}), 0) AS total_usd FROM reservations "
        "WHERE status <> 'released' AND created_at >= ?",
        [user, _midnight()],
    )
    return Spend(float(rows[0]["user_usd"]), float(rows[0]["total_usd"]))


def level(spent_usd: float, limit_usd: float) -> str:
    """ "none" (no limit), "ok", "warn" (80 % used) or "over" (100 %), for the sidebar."""
    if limit_usd <= 0:
        return "none"
    share = spent_usd / limit_usd
    return "over" if share >= 1 else "warn" if share >= WARN_AT else "ok"


def estimate_max_cost(
    prices: PriceTable,
    *,
    provider: str,
    model: str,
    prompt_tokens: int,
    max_output_tokens: int,
) -> float | None:
    """The most a call can cost: its prompt plus the maximum output, at the model's price.

    None when the model has no price (see prices.json); the stub costs nothing."""
    if provider == "stub":
        return 0.0
    price = prices.lookup(model)
    if price is None:
        return None
    return (prompt_tokens * price["input"] + max_output_tokens * price["output"]) / 1_000_000


def prompt_tokens(messages: list[dict[str, str]]) -> int:
    """Tokens of a prompt, counted the way usage rows count them when a provider reports none."""
    return messages_tokens(messages)


def _first_crossed(
    tx: Transaction, run_id: str | None, user: str, amount: float, limits: Limits
) -> Refusal | None:
    checks: list[tuple[str, float, str, list[Any]]] = [
        ("run", limits.run_usd if run_id else 0.0, "run_id = ?", [run_id]),
        ("user", limits.user_usd, "user_name = ? AND created_at >= ?", [user, _midnight()]),
        ("total", limits.total_usd, "created_at >= ?", [_midnight()]),
    ]
    for name, limit, where, params in checks:
        if limit <= 0:
            continue
        spent = float(
            tx.value(
                f"SELECT COALESCE(SUM({_SPENT}), 0) FROM reservations "
                f"WHERE status <> 'released' AND {where}",
                params,
            )
            or 0.0
        )
        if spent + amount > limit + _EPSILON:
            return Refusal(name, limit, spent, amount)
    return None


def _midnight() -> datetime:
    return datetime.combine(utcnow().date(), time())
