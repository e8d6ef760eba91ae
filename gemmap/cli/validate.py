"""``gemmap validate``: predict measured Gemmini runs and report the model's error."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from gemmap import api
from gemmap.arch import FIRESIM_ARCH, load_arch
from gemmap.errors import GemmapError
from gemmap.report import atomic_write, check_writable_dir, compact_table, print_table, write_json

if TYPE_CHECKING:
    from gemmap.validation.stats import ErrorStats, RepeatStats, Summary

EXAMPLES = """examples:
  gemmap validate ../shared/validation/gemmini-firesim-16x16.csv --out out/val16
  gemmap validate ../shared/validation/gemmini-firesim-16x16.csv --tiler --out out/val16-tiler
  gemmap validate ../shared/validation/gemmini-firesim-128x128.csv --arch my-arch.yaml --out out/val128

writes DIR/predictions.csv (row,kind,measured,predicted,status; one line per data row, input order),
DIR/breakdown.csv (the same rows with where each prediction's cycles go: compute, DMA transfers, their
exposed part, the memory's floor, host cycles, memory bytes, and the tiles and loop order gemmap ran),
DIR/summary.json (MAPE, median/max error, Spearman, share within ±10%, bias: overall, per kind, per
configuration, per array the run executed on, per what bounds its predicted time: compute, memory, DRAM) and DIR/scatter.png, DIR/scatter.svg; prints the 10 worst rows.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="predict measured runs (FireSim CSV) and report the error", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument(
        "data", metavar="DATA.csv", help="measured runs, e.g. ../shared/validation/gemmini-firesim-16x16.csv"
    )
    p.add_argument("--out", metavar="DIR", required=True, help="output folder")
    p.add_argument(
        "--tiler",
        action="store_true",
        help="predict Gemmini's own tiler instead of the row's mapping; compare with target.gemmini_auto_cycle",
    )
    p.add_argument(
        "--arch",
        default=str(FIRESIM_ARCH),
        help="architecture YAML (default: arch/gemmini-firesim.yaml, the SoC DOSA's FireSim runs used)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from gemmap.validation import report
    from gemmap.validation.data import AUTO_MEASURED, has_auto_measurements, read_runs, validate_runs
    from gemmap.validation.stats import summarize

    out = check_writable_dir(args.out)
    runs, problems = read_runs(args.data)
    if args.tiler and not has_auto_measurements(runs):
        raise GemmapError(f"{args.data}: --tiler needs measured cycles of Gemmini's tiler (column {AUTO_MEASURED})")
    arch = load_arch(args.arch)
    try:
        from gemmap.validation.predict import predict
    except ImportError:
        raise GemmapError("the predictor (gemmap.validation.predict) is not available in this version") from None

    def predictor(r):
        return predict(r, arch, args.tiler)

    console = Console(stderr=True)
    with api.progress(console, total=len(runs), what="predicting") as tick:
        predictions = validate_runs(runs, predictor, tiler=args.tiler, on_row=tick)
    measured = [r.target(args.tiler) for r in runs]
    predicted = [p.predicted for p in predictions]
    labels = {
        "kind": [r.kind for r in runs],
        "config": [r.config_key for r in runs],
        "array": [p.array for p in predictions],
        "bound": [p.bound for p in predictions],
    }
    summary = summarize(labels, measured, predicted, [r.run_key(args.tiler) for r in runs])
    options = {"data": str(args.data), "arch": str(args.arch), "tiler": bool(args.tiler), "out": str(args.out)}

    atomic_write(out / "predictions.csv", report.predictions_csv(runs, predictions, args.tiler))
    atomic_write(out / "breakdown.csv", report.breakdown_csv(runs, predictions, args.tiler))
    write_json(out / "summary.json", report.summary_json(summary, runs, predictions, options, args.tiler))
    s = summary.overall
    head = f"{Path(args.data).name}{' (Gemmini tiler)' if args.tiler else ''}: {s.predicted} of {s.rows} rows predicted"
    title = head if s.mape is None else f"{head}\nMAPE {s.mape:.1f}%, Spearman {_fmt(s.spearman)}"
    paths = report.scatter(runs, predictions, args.tiler, out / "scatter", title)

    table_console = Console(width=100)
    table_console.print(report.worst_table(runs, predictions, args.tiler))
    errors = compact_table("Error by set (absolute % of measured; bias: mean signed %)",
                           ("set", "predicted", "MAPE", "median", "max", "within ±10%", "bias", "Spearman"),
                           left=("set",))  # fmt: skip
    errors.columns[0].no_wrap = True
    for name, st in _error_sets(summary).items():
        if st.mape is None:
            errors.add_row(name, f"{st.predicted}/{st.rows}", *["-"] * 6)
        else:
            errors.add_row(name, f"{st.predicted}/{st.rows}", f"{st.mape:.1f}%", f"{st.median_ape:.1f}%",
                           f"{st.max_ape:.0f}%", f"{st.within_10pct:.0%}", f"{st.bias_pct:+.1f}%",
                           _fmt(st.spearman))  # fmt: skip
    print_table(errors)
    if summary.repeats is not None and summary.repeats.groups:
        print(_repeats_text(summary.repeats))
    for path in (out / "predictions.csv", out / "breakdown.csv", out / "summary.json", *paths):
        print(f"wrote {path}")
    return _report_unpredicted(runs, predictions)


def _error_sets(summary: Summary) -> dict[str, ErrorStats]:
    """The table's rows: overall, each kind, then the groups of every other grouping that splits the
    rows (a grouping with one label repeats 'overall'); arrays and bounds are named as such."""
    sets = {"overall": summary.overall, **summary.groups["kind"]}
    prefix = {"config": "", "array": "array ", "bound": "bound: "}
    for g, by in summary.groups.items():
        if g != "kind" and len(by) > 1:
            sets.update({f"{prefix.get(g, g + ' ')}{label}": st for label, st in by.items()})
    return sets


def _repeats_text(r: RepeatStats) -> str:
    """Two lines on the rows that measured the same run (:func:`gemmap.validation.stats.repeat_stats`)."""
    model = "" if r.model_mape is None else f"(the model: {r.model_mape:.1f}% on them); "
    return (
        f"repeats: {r.rows} rows measured {r.groups} runs twice or more: {r.spread_mape:.1f}% MAPE around each run's "
        f"best single value\n{model}a predictor giving each run one value cannot beat {r.floor_mape:.1f}% on this file"
    )


def _report_unpredicted(runs, predictions) -> int:
    """One stderr line per row that could not be predicted (the first 10), naming the row and why;
    status 2 when there is any (every other row is predicted and written all the same)."""
    bad = [(r.row, p.status) for r, p in zip(runs, predictions) if p.predicted is None]
    for row, why in bad[:10]:
        print(f"gemmap: error: row {row}: {why}", file=sys.stderr)
    if len(bad) > 10:
        print(f"gemmap: error: {len(bad) - 10} more rows not predicted (see the status column)", file=sys.stderr)
    return 2 if bad else 0


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"
