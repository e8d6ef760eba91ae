"""Outputs of ``gemmap validate``: predictions.csv, breakdown.csv, summary.json, the scatter plot and the
worst-rows table."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.table import Table

from gemmap.figures import save
from gemmap.report import csv_text, eng
from gemmap.validation.data import MeasuredRun, Prediction
from gemmap.validation.stats import Summary

PREDICTIONS_FIELDS = ("row", "kind", "measured", "predicted", "status")
KIND_COLOURS = {"matmul": "tab:blue", "conv": "tab:orange"}


def number_text(x: float | None) -> str:
    """A cycle count for a CSV cell: whole numbers without '.0', empty for None."""
    if x is None:
        return ""
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def predictions_csv(runs: Sequence[MeasuredRun], predictions: Sequence[Prediction], tiler: bool) -> str:
    """``row,kind,measured,predicted,status``: one line per data row, in input order."""
    rows = [
        {
            "row": r.row,
            "kind": r.kind,
            "measured": number_text(r.target(tiler)),
            "predicted": number_text(p.predicted),
            "status": " ".join(p.status.split()),
        }
        for r, p in zip(runs, predictions, strict=True)
    ]
    return csv_text(rows, PREDICTIONS_FIELDS)


#: breakdown.csv's cycle columns, the fields of PredictionTerms they print
CYCLE_TERMS = ("compute", "transfer", "exposed", "sequence", "memory", "host")
BREAKDOWN_FIELDS = (
    "row",
    "kind",
    "array",
    "bound",
    "measured",
    "predicted",
    "error_pct",
    *CYCLE_TERMS,
    "dram_bytes",
    "mapping",
)


def breakdown_csv(runs: Sequence[MeasuredRun], predictions: Sequence[Prediction], tiler: bool) -> str:
    """Where each predicted row's cycles go (:class:`~gemmap.validation.data.PredictionTerms`), one line
    per data row in input order; a row without a prediction has its row, kind and measured cycles only."""
    rows = []
    for r, p in zip(runs, predictions, strict=True):
        measured = r.target(tiler)
        e = error_pct(measured, p.predicted)
        line: dict[str, object] = {"row": r.row, "kind": r.kind, "measured": number_text(measured),
                                   "array": p.array or "", "bound": p.bound or "",
                                   "predicted": number_text(p.predicted), "error_pct": "" if e is None else f"{e:.2f}"}  # fmt: skip
        t = p.terms
        if t is not None:
            line.update(
                {name: f"{getattr(t, name):.0f}" for name in CYCLE_TERMS}, dram_bytes=t.dram_bytes, mapping=t.mapping
            )
        rows.append(line)
    return csv_text(rows, BREAKDOWN_FIELDS)


def error_pct(measured: float | None, predicted: float | None) -> float | None:
    if measured is None or predicted is None:
        return None
    return 100.0 * (predicted - measured) / measured


def worst(runs: Sequence[MeasuredRun], predictions: Sequence[Prediction], tiler: bool, n: int = 10) -> list[int]:
    """Indices of the ``n`` rows with the largest absolute percentage error (ties: input order)."""
    errs = [(i, error_pct(r.target(tiler), p.predicted)) for i, (r, p) in enumerate(zip(runs, predictions))]
    scored = [(i, e) for i, e in errs if e is not None]
    scored.sort(key=lambda t: (-abs(t[1]), t[0]))
    return [i for i, _ in scored[:n]]


def summary_json(
    summary: Summary,
    runs: Sequence[MeasuredRun],
    predictions: Sequence[Prediction],
    options: dict[str, Any],
    tiler: bool,
) -> dict[str, Any]:
    statuses: dict[str, int] = {}
    for p in predictions:
        key = "ok" if p.status == "ok" else p.status.split(":")[0][:80]
        statuses[key] = statuses.get(key, 0) + 1
    return {
        "options": options,
        "measured_column": "target.gemmini_auto_cycle" if tiler else "target.gemmini_cycle",
        "rows": len(runs),
        "status_counts": statuses,
        **summary.to_dict(),
        "worst": [
            {
                "row": runs[i].row,
                "kind": runs[i].kind,
                "config": runs[i].config_key,
                "layer": runs[i].layer,
                "measured": runs[i].target(tiler),
                "predicted": predictions[i].predicted,
                "error_pct": error_pct(runs[i].target(tiler), predictions[i].predicted),
                "mapping": runs[i].mapping,
            }
            for i in worst(runs, predictions, tiler)
        ],
    }


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def worst_table(
    runs: Sequence[MeasuredRun], predictions: Sequence[Prediction], tiler: bool, n: int = 10, width: int = 100
) -> Table:
    """The ``n`` worst rows; the mapping string is cut to what is left of ``width`` columns."""
    idx = worst(runs, predictions, tiler, n)
    table = Table(title=f"Worst {len(idx)} rows by |error|", title_justify="left")
    last = "tiles R_S_P_Q_C_K_N" if tiler else "mapping"
    for col in ("row", "kind", "layer", "measured", "predicted", "error", last):
        table.add_column(col, justify="right" if col in ("row", "measured", "predicted", "error") else "left",
                         no_wrap=True)  # fmt: skip
    cells = []
    for i in idx:
        r, p = runs[i], predictions[i]
        e = error_pct(r.target(tiler), p.predicted)
        cells.append([str(r.row), r.kind, r.dims_text(), eng(r.target(tiler) or 0), eng(p.predicted or 0),
                      f"{e:+.0f}%", (r.auto_tiling or "") if tiler else r.mapping])  # fmt: skip
    if cells:
        fixed = sum(max(len(c[k]) for c in [*cells, ["row", "kind", "layer", "measured", "predicted", "error", ""]])
                    for k in range(6))  # fmt: skip
        room = max(width - fixed - 3 * 7 - 1, 12)  # 7 columns: '│ ' + ' ' around each, one closing border
        for c in cells:
            table.add_row(*c[:6], _shorten(c[6], room))
    return table


def scatter(
    runs: Sequence[MeasuredRun], predictions: Sequence[Prediction], tiler: bool, out_stem: str | Path, title: str
) -> list[Path]:
    """Log-log predicted vs measured, y = x and a ±10% band, coloured by kind; PNG and SVG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.2, 6.4))
    ax = fig.subplots()
    points = [(r.kind, r.target(tiler), p.predicted) for r, p in zip(runs, predictions)]
    points = [(k, m, p) for k, m, p in points if m is not None and p is not None]
    values = [v for _, m, p in points for v in (m, p)]
    lo, hi = (min(values) / 1.5, max(values) * 1.5) if values else (1.0, 10.0)
    line = [lo, hi]
    ax.fill_between(line, [lo * 0.9, hi * 0.9], [lo * 1.1, hi * 1.1], color="0.8", lw=0.6, ec="0.6", label="±10%")
    ax.plot(line, line, color="0.3", lw=1.0, label="predicted = measured")
    for kind in sorted({k for k, _, _ in points}):
        xs = [m for k, m, _ in points if k == kind]
        ys = [p for k, _, p in points if k == kind]
        ax.scatter(xs, ys, s=12, alpha=0.7, color=KIND_COLOURS.get(kind, "tab:gray"), edgecolors="none",
                   label=f"{kind} ({len(xs)})")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal")
    what = "Gemmini's own tiler" if tiler else "the row's mapping"
    ax.set_xlabel(f"measured cycles ({what}, FireSim)")
    ax.set_ylabel("predicted cycles (gemmap)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8, frameon=True)
    fig.tight_layout()
    return save(fig, out_stem, tight=True)
