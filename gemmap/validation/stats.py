"""Error statistics of predicted against measured cycles.

Over the pairs where both are present (``m`` measured, ``p`` predicted, ``n`` pairs):

- absolute percentage error ``APE = 100 · |p − m| / m``; ``mape`` its mean, ``median_ape`` and ``max_ape``;
- ``bias_pct``: mean signed percentage error ``100 · (p − m) / m`` (positive: the model predicts too many cycles);
- ``within_10pct``: the share of pairs with ``APE ≤ 10`` (0–1);
- ``mean_abs_log_error``: mean ``|ln(p / m)|`` (symmetric in over- and under-prediction; what calibration fits);
- ``spearman``: Spearman's rank correlation of p and m (None for fewer than 2 pairs or constant values).

``rows`` counts every row of the group, ``predicted`` the pairs used. With no pairs every error is None.
A :class:`Summary` holds them overall and per group of each grouping (kind, configuration, the array a
run executed on, what bounds its predicted time), which shows where a model misses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class ErrorStats:
    rows: int
    predicted: int
    mape: float | None
    median_ape: float | None
    max_ape: float | None
    spearman: float | None
    within_10pct: float | None
    bias_pct: float | None
    mean_abs_log_error: float | None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def pairs(measured: Sequence[float | None], predicted: Sequence[float | None]) -> tuple[np.ndarray, np.ndarray]:
    """The (measured, predicted) arrays of the rows where both are present."""
    if len(measured) != len(predicted):
        raise ValueError(f"{len(measured)} measured values but {len(predicted)} predictions")
    both = [(m, p) for m, p in zip(measured, predicted) if m is not None and p is not None]
    m = np.array([b[0] for b in both], dtype=np.float64)
    p = np.array([b[1] for b in both], dtype=np.float64)
    return m, p


def _spearman(m: np.ndarray, p: np.ndarray) -> float | None:
    if m.size < 2 or np.all(m == m[0]) or np.all(p == p[0]):
        return None
    from scipy.stats import spearmanr

    rho = float(spearmanr(m, p).statistic)
    return None if np.isnan(rho) else rho


def error_stats(measured: Sequence[float | None], predicted: Sequence[float | None]) -> ErrorStats:
    """The statistics of the module docstring over the rows where both values are present."""
    m, p = pairs(measured, predicted)
    if m.size == 0:
        return ErrorStats(len(measured), 0, None, None, None, None, None, None, None)
    signed = 100.0 * (p - m) / m
    ape = np.abs(signed)
    return ErrorStats(
        rows=len(measured),
        predicted=int(m.size),
        mape=float(ape.mean()),
        median_ape=float(np.median(ape)),
        max_ape=float(ape.max()),
        spearman=_spearman(m, p),
        within_10pct=float(np.mean(ape <= 10.0)),
        bias_pct=float(signed.mean()),
        mean_abs_log_error=float(np.abs(np.log(p / m)).mean()),
    )


def grouped_stats(
    groups: Sequence[str], measured: Sequence[float | None], predicted: Sequence[float | None]
) -> dict[str, ErrorStats]:
    """:func:`error_stats` per group label (in order of first appearance)."""
    out = {}
    for g in dict.fromkeys(groups):
        idx = [i for i, x in enumerate(groups) if x == g]
        out[g] = error_stats([measured[i] for i in idx], [predicted[i] for i in idx])
    return out


#: the groupings of a :class:`Summary`, in the order reports list them: what a row is, the hardware
#: configuration its columns state, the array it ran on, what bounds its predicted time
GROUPINGS = ("kind", "config", "array", "bound")

#: the label of a row a grouping cannot place (its run was not predicted)
UNPLACED = "not predicted"


@dataclasses.dataclass(frozen=True)
class Summary:
    """Error statistics overall and per group of each grouping (:data:`GROUPINGS`): ``groups[g]``
    maps each label of grouping ``g`` to the statistics of its rows."""

    overall: ErrorStats
    groups: dict[str, dict[str, ErrorStats]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "overall": self.overall.to_dict(),
            **{f"by_{g}": {k: v.to_dict() for k, v in by.items()} for g, by in self.groups.items()},
        }


def summarize(
    labels: dict[str, Sequence[str | None]],
    measured: Sequence[float | None],
    predicted: Sequence[float | None],
) -> Summary:
    """The :class:`Summary` of the rows, grouped by each labelling in ``labels`` (grouping name ->
    one label per row; None labels the row :data:`UNPLACED`)."""
    return Summary(
        overall=error_stats(measured, predicted),
        groups={
            g: grouped_stats([UNPLACED if x is None else x for x in rows], measured, predicted)
            for g, rows in labels.items()
        },
    )
