"""``gemmap cdf``: distributions of latency/energy/EDP over random valid mappings."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rich.console import Console
from rich.table import Table

from gemmap import api
from gemmap.cli.common import (
    add_arch_args,
    add_workload_args,
    arch_from_args,
    overrides_from_args,
    parse_names,
    samples_int,
    seconds_float,
    seed_int,
    workers_int,
)
from gemmap.errors import GemmapError
from gemmap.report import atomic_write, check_writable_dir, csv_text, print_table
from gemmap.workload import load_workload

EXAMPLES = """examples:
  gemmap cdf workloads/bert.yaml --out out/cdf
  gemmap cdf workloads/bert.yaml --compare workloads/resnet50.yaml --out out/cdf-vs-cnn   # + the survey's 4 ResNet-50 layers
  gemmap cdf workloads/resnet50.yaml --layers conv1,res5_3x3 --out out/cdf-cnn
  gemmap cdf workloads/bert.yaml --layers ffn1,attn_qk --samples 20000 --seed 3 --out out/cdf-small
  gemmap cdf --replot out/cdf            # redraw cdf.png/cdf.svg from out/cdf/samples.npz
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cdf", help="CDF of latency/energy/EDP over random valid mappings", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("workload", nargs="?", help="workload YAML (e.g. workloads/bert.yaml)")
    add_arch_args(p)
    add_workload_args(p)
    p.add_argument(
        "--samples", type=samples_int, default=100_000, help="random valid mappings per layer (default: 100000)"
    )
    p.add_argument("--seed", type=seed_int, default=0, help="random seed (default: 0)")
    p.add_argument("--layers", help="comma-separated layer names (default: all)")
    p.add_argument(
        "--compare",
        metavar="WORKLOAD",
        help="overlay a second workload, e.g. workloads/resnet50.yaml (its survey layers: conv1, res5 3x3/512, "
        "1x1/512, 1x1/2048)",
    )
    p.add_argument(
        "--compare-layers", help="comma-separated layers of --compare (default: the survey's for resnet50, else all)"
    )
    p.add_argument("--time-limit", type=seconds_float, help="seconds per optimum search (default: none)")
    p.add_argument(
        "--workers",
        type=workers_int,
        default=os.cpu_count() or 1,
        help="processes, one layer shape each (default: all cores)",
    )
    p.add_argument("--out", metavar="DIR", help="output folder: cdf.csv, cdf.png, cdf.svg, samples.npz")
    p.add_argument("--replot", metavar="DIR", help="redraw the plots of an earlier run from DIR/samples.npz")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from gemmap import cdf

    if args.replot:
        if args.workload:
            raise GemmapError("--replot redraws an earlier run; give no WORKLOAD with it")
        samples = cdf.load_samples(Path(args.replot) / "samples.npz")
        title = cdf.load_title(Path(args.replot) / "samples.npz")
        for path in cdf.plot_cdf(samples, Path(args.replot) / "cdf", title):
            print(f"wrote {path}")
        return 0
    if not args.workload or not args.out:
        raise GemmapError("cdf needs a WORKLOAD and --out DIR (or --replot DIR)")
    arch = arch_from_args(args)
    workloads = [load_workload(args.workload, overrides=overrides_from_args(args))]
    if args.compare:
        workloads.append(load_workload(args.compare))
    if args.compare_layers and not args.compare:
        raise GemmapError("--compare-layers selects layers of --compare WORKLOAD; give --compare too")
    selected = [parse_names(args.layers, "--layers"), None]
    titles: list[dict[str, str]] = [{}, {}]
    if args.compare:
        survey = dict(cdf.SURVEY_LAYERS.get(workloads[1].name, ()))
        if args.compare_layers:
            selected[1] = parse_names(args.compare_layers, "--compare-layers")
            titles[1] = {n: t for n, t in survey.items() if n in selected[1]}
        elif survey and all(n in workloads[1].layer_names for n in survey):
            selected[1], titles[1] = list(survey), survey
    for w, names in zip(workloads, selected):
        for name in names or ():
            op = next((o for o in w.nonlinear if o.name == name), None)
            if op is not None:
                raise GemmapError(f"'{name}' is a {op.kind} op: non-linear ops have no mappings to sample, only matmuls "
                                  f"and convs do ({', '.join(w.layer_names)})")  # fmt: skip
            w.problem(name)  # a clear error for an unknown layer, before any work
    out = check_writable_dir(args.out)  # a typo fails now, not after the sampling
    console = Console(stderr=True)
    samples = []
    for w, names, title in zip(workloads, selected, titles):
        shapes = {w.problem(n).key() for n in names} if names else {p.key() for p in w.problems}
        with api.progress(console, total=len(shapes), what=f"sampling {w.name}") as tick:
            samples += cdf.sample_workload(arch, w, samples=args.samples, seed=args.seed, layers=names,
                                           time_limit=args.time_limit, workers=args.workers, on_layer=tick,
                                           titles=title)  # fmt: skip
    rows = cdf.percentile_rows(samples)
    title = f"{args.samples} random valid mappings per layer on {arch.name}"
    cdf.save_samples(out / "samples.npz", samples, title)
    atomic_write(out / "cdf.csv", csv_text(rows, cdf.CSV_FIELDS))
    paths = cdf.plot_cdf(samples, out / "cdf", title)
    table = Table(title=f"Normalized to the optimum ({title})")
    for col in ("workload", "layer", "metric", "min", "p10", "p50", "p90", "max", "max/min", "≤3x"):
        table.add_column(col, justify="left" if col in ("workload", "layer", "metric") else "right")
    for r in rows:
        table.add_row(
            str(r["workload"]),
            str(r["label"]),
            str(r["metric"]),
            *(f"{r[k]:.3g}" for k in ("min", "p10", "p50", "p90", "max", "spread")),
            f"{r['within_3x']:.0%}",
        )
    print_table(table)
    for path in (out / "cdf.csv", *paths, out / "samples.npz"):
        print(f"wrote {path}")
    return 0
