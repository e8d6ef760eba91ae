"""``gemmap calibrate``: fit named physical arch parameters to measured runs; report held-out error."""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

from rich.console import Console

from gemmap import api, specio
from gemmap.arch import FIRESIM_ARCH, load_arch
from gemmap.cli.common import flag_number, positive_int, seed_int
from gemmap.errors import GemmapError
from gemmap.report import atomic_write, check_output_file, compact_table, print_table
from gemmap.specio import read_text, shipped

EXAMPLES = """examples:
  gemmap calibrate my-runs.csv --out arch/my-gemmini.yaml
  gemmap calibrate my-runs.csv --workers 2 --out arch/my-gemmini.yaml --resume
  gemmap calibrate my-runs.csv --params dram.latency_cycles,dram.bytes_per_cycle --folds 10 --out fitted.yaml
  gemmap calibrate my-runs.csv --arch arch/gemmini-transformer.yaml --out fitted.yaml

DATA.csv has the columns of ../shared/validation (mapping.mapping, prob.*, arch.*, target.gemmini_cycle).
The shipped arch defaults come from cited sources and are not fitted to the shared validation data;
this is for your own measurements. The output is the --arch YAML with the fitted fields replaced.
Every parameter point predicted is kept in ARCH.yaml.points.jsonl until the fit is written: an
interrupted run continues with --resume (the same command), or starts again with --overwrite.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    from gemmap.validation.calibrate import CALIBRATABLE

    p = sub.add_parser("calibrate", help="fit named physical arch parameters to measured runs", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("data", metavar="DATA.csv", help="measured runs (columns as in ../shared/validation)")
    p.add_argument("--out", metavar="ARCH.yaml", required=True, help="where to write the fitted arch YAML")
    p.add_argument(
        "--arch",
        default=str(FIRESIM_ARCH),
        help="base architecture YAML (default: arch/gemmini-firesim.yaml, the SoC DOSA's FireSim runs used)",
    )
    p.add_argument("--folds", type=positive_int, default=5, help="folds of the held-out error (default: 5)")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the folds and start points (default: 0)")
    p.add_argument(
        "--params",
        help=f"comma-separated fields to fit (default: all the arch has of {', '.join(CALIBRATABLE)})",
    )
    p.add_argument("--workers", metavar="N", default="1",
                   help="local processes predicting each parameter point's rows (default: 1, in-process)")  # fmt: skip
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help="continue an interrupted calibration from the points it kept (ARCH.yaml.points.jsonl)")  # fmt: skip
    again.add_argument("--overwrite", action="store_true",
                       help="start again, discarding the points an interrupted calibration kept")  # fmt: skip
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from gemmap.cache import source_fingerprint
    from gemmap.validation.calibrate import CALIBRATABLE, calibrate, fitted_yaml, resolve_params, usable_runs
    from gemmap.validation.data import read_runs
    from gemmap.validation.journal import PointJournal, journal_key, journal_path

    out = check_output_file(args.out, "--out")
    workers = flag_number(specio.parse_int, args.workers, specio.WORKERS, "--workers")
    arch = load_arch(args.arch)
    names = resolve_params(arch, [n.strip() for n in args.params.split(",")] if args.params is not None else None)
    runs, problems = read_runs(args.data)
    base_text = read_text(shipped(args.arch, "arch"))
    try:
        from gemmap.validation.predict import predict
    except ImportError:
        raise GemmapError("the predictor (gemmap.validation.predict) is not available in this version") from None
    predictor = functools.partial(predict, tiler=False)  # picklable, for --workers

    key = journal_key([Path(args.data).read_bytes(), base_text, ",".join(names), source_fingerprint()])
    journal = PointJournal.open(journal_path(out), key, len(usable_runs(runs)), resume=args.resume,
                                overwrite=args.overwrite)  # fmt: skip
    console = Console(stderr=True)
    absent = [n for n in CALIBRATABLE if n not in names]
    if args.params is None and absent:
        console.print(f"note: the arch has no {', '.join(absent)}; not fitted", markup=False, highlight=False)
    if problems:
        console.print(f"note: {args.data}: {len(problems)} unusable rows left out ({problems[0]})", markup=False)
    if journal.points:
        console.print(f"resuming: {len(journal.points)} parameter points already predicted ({journal.path})",
                      markup=False, highlight=False)  # fmt: skip
    budget = (args.folds + 1) * 3 * 200
    with api.progress(console, total=budget, what="fitting") as tick:
        cal = calibrate(runs, arch, predictor, names, folds=args.folds, seed=args.seed, on_eval=tick,
                        workers=workers, journal=journal)  # fmt: skip
    atomic_write(out, fitted_yaml(base_text, arch, cal, Path(args.data).name))
    journal.remove()

    params = compact_table(f"Fitted on {cal.used} of {cal.rows} rows of {Path(args.data).name}",
                           ("parameter", "default", "fitted", "bounds", "per fold"), left=("parameter",))  # fmt: skip
    for k, p in enumerate(cal.params):
        folds = " ".join(f"{v[k]:.3g}" for v in cal.fold_values)
        params.add_row(p.name, f"{p.default:g}", f"{p.fitted:.4g}", f"{p.low:g}–{p.high:g}", folds)
    print_table(params)
    errors = compact_table("Error (mean absolute %, median, Spearman)",
                           ("", "MAPE", "median", "within ±10%", "Spearman", "mean |ln ratio|"), left=("",))  # fmt: skip
    errors.columns[0].no_wrap = True
    for label, st in (("defaults", cal.default_error), ("fitted, in-sample", cal.fit_error),
                      (f"fitted, held out ({cal.folds}-fold)", cal.heldout_error)):  # fmt: skip
        errors.add_row(label, _f(st.mape, "{:.1f}%"), _f(st.median_ape, "{:.1f}%"), _f(st.within_10pct, "{:.0%}"),
                       _f(st.spearman, "{:.3f}"), _f(st.mean_abs_log_error, "{:.3f}"))  # fmt: skip
    print_table(errors)
    print(f"wrote {out}")
    return 0


def _f(x: float | None, fmt: str) -> str:
    return "-" if x is None else fmt.format(x)
