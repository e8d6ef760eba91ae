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

**Repeats** (:func:`repeat_stats`): rows that measured a run the predictor cannot tell apart (the same
key) should measure the same; how far they lie apart bounds every such predictor from below. Per group
of two or more measured rows the single value ``c`` closest to them (least mean APE; the optimum of that
weighted L1 problem is one of the measured values) leaves ``spread_mape``, the mean APE of the grouped
rows around their ``c``; ``model_mape`` is the model's on the same rows; ``floor_mape`` spreads the
grouped rows' APE over every measured row of the file: the least MAPE a predictor that gives a group
one value can reach there, even if it predicts every other row exactly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Sequence
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


@dataclasses.dataclass(frozen=True)
class RepeatStats:
    """How far rows that measured the same run lie apart (module docstring, Repeats)."""

    groups: int  # groups of two or more measured rows with one key
    rows: int  # the measured rows in them
    spread_mape: float | None  # mean APE of those rows around their group's best single value
    model_mape: float | None  # the model's MAPE on those rows (the predicted ones)
    floor_mape: float | None  # their APE around the best values, over every measured row of the file

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _best_value(m: np.ndarray) -> float:
    """The value closest to all of ``m`` in mean absolute percentage error (one of them)."""
    ape = np.abs(m[None, :] - m[:, None]) / m[None, :]
    return float(m[np.argmin(ape.sum(axis=1))])


def repeat_stats(
    keys: Sequence[Hashable | None], measured: Sequence[float | None], predicted: Sequence[float | None]
) -> RepeatStats:
    """:class:`RepeatStats` of the rows with equal ``keys`` (None: a row of no group)."""
    if not len(keys) == len(measured) == len(predicted):
        raise ValueError(f"{len(keys)} keys, {len(measured)} measured values, {len(predicted)} predictions")
    members: dict[Hashable, list[int]] = {}
    for i, (k, m) in enumerate(zip(keys, measured)):
        if k is not None and m is not None:
            members.setdefault(k, []).append(i)
    groups = [g for g in members.values() if len(g) > 1]
    if not groups:
        return RepeatStats(0, 0, None, None, None)
    ape, model = [], []
    for g in groups:
        m = np.array([measured[i] for i in g], dtype=np.float64)
        ape.extend(100.0 * np.abs(_best_value(m) - m) / m)
        pm, pp = pairs([measured[i] for i in g], [predicted[i] for i in g])
        model.extend(100.0 * np.abs(pp - pm) / pm)
    measured_rows = sum(m is not None for m in measured)
    return RepeatStats(
        groups=len(groups),
        rows=len(ape),
        spread_mape=float(np.mean(ape)),
        model_mape=float(np.mean(model)) if model else None,
        floor_mape=float(np.sum(ape)) / measured_rows,
    )


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
    repeats: RepeatStats | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "overall": self.overall.to_dict(),
            **{f"by_{g}": {k: v.to_dict() for k, v in by.items()} for g, by in self.groups.items()},
        }
        if self.repeats is not None:
            out["repeats"] = self.repeats.to_dict()
        return out


def summarize(
    labels: dict[str, Sequence[str | None]],
    measured: Sequence[float | None],
    predicted: Sequence[float | None],
    repeat_keys: Sequence[Hashable | None] | None = None,
) -> Summary:
    """The :class:`Summary` of the rows, grouped by each labelling in ``labels`` (grouping name ->
    one label per row; None labels the row :data:`UNPLACED`), with the :func:`repeat_stats` of
    ``repeat_keys`` when given."""
    return Summary(
        overall=error_stats(measured, predicted),
        groups={
            g: grouped_stats([UNPLACED if x is None else x for x in rows], measured, predicted)
            for g, rows in labels.items()
        },
        repeats=None if repeat_keys is None else repeat_stats(repeat_keys, measured, predicted),
    )
