"""``gemmap pipeline``: the model's layers cut into contiguous stages over several accelerators."""

from __future__ import annotations

import argparse

from rich.console import Console

from gemmap import api, specio
from gemmap.arch import load_arch
from gemmap.chain import OBJECTIVES
from gemmap.cli.common import add_search_args, add_workload_args, bounded_float, overrides_from_args, search_options
from gemmap.pipeline import CUTS, pipeline
from gemmap.report import check_output_file, print_table, write_json
from gemmap.workload import load_workload

EXAMPLES = """examples:
  gemmap pipeline workloads/bert.yaml --arch arch/gemmini-32x32.yaml --arch arch/gemmini-transformer.yaml
  gemmap pipeline bert --arch gemmini-32x32 --arch gemmini-transformer --search heuristic --json out/p.json --plot out/p
  gemmap pipeline bert --arch gemmini-32x32 --arch gemmini-transformer --optimize latency --min-throughput 15
  gemmap pipeline bert --arch gemmini-32x32 --arch gemmini-transformer --dram-gb-per-s 8 --cuts blocks
  gemmap pipeline llama2-7b --phase prefill --seq-len 512 --arch gemmini-32x32 --arch gemmini-transformer --search heuristic

Each --arch is one accelerator instance on the SoC (give a file twice for two identical ones). Each maps
every layer with --search; the stages are contiguous runs of the op sequence (cuts before any matmul, or
at block boundaries with --cuts blocks), one per accelerator, possibly empty. The accelerators share one
DRAM channel (--dram-gb-per-s; default: the largest dram.bytes_per_cycle x frequency among them).
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pipeline", help="pipeline the model's layers over several accelerator instances",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("workload", help="workload YAML (e.g. workloads/bert.yaml)")
    p.add_argument("--arch", action="append", required=True, metavar="FILE",
                   help="an accelerator instance's architecture YAML (at least two)")  # fmt: skip
    add_search_args(p)
    add_workload_args(p)
    p.add_argument(
        "--fusion", default="none", help="fusion policy on every accelerator: none, all or auto (default: none)"
    )
    p.add_argument("--optimize", choices=OBJECTIVES, default="throughput",
                   help="what the partition maximises (throughput) or minimises per inference (latency, edp)")  # fmt: skip
    p.add_argument("--min-throughput", type=bounded_float(specio.THROUGHPUT), metavar="INF_PER_S",
                   help="with --optimize latency|edp: only partitions at least this fast (inferences/s)")  # fmt: skip
    p.add_argument("--cuts", choices=CUTS, default="ops", help="cut before any matmul (ops) or between blocks only")
    p.add_argument("--dram-gb-per-s", type=bounded_float(specio.CHANNEL_GB_S), metavar="GB_PER_S",
                   help="the shared DRAM channel's bandwidth in GB/s (10^9 bytes)")  # fmt: skip
    p.add_argument("--json", metavar="FILE", help="write the result as JSON")
    p.add_argument("--plot", metavar="FILE", help="write FILE.png and FILE.svg: the steady-state stage Gantt")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    for value, flag in ((args.json, "--json"), (args.plot, "--plot")):
        if value is not None:
            check_output_file(value, flag)  # a typo fails now, not after the searches
    options = search_options(args, None)
    archs = tuple(load_arch(a) for a in args.arch)
    workload = load_workload(args.workload, overrides=overrides_from_args(args))
    bandwidth = None if args.dram_gb_per_s is None else args.dram_gb_per_s * 1e9
    console = Console(stderr=True)
    with api.progress(console, total=len(archs) * len(workload.problems), what="mapping") as tick:
        result = pipeline(
            workload, archs, options, fusion=args.fusion, objective=args.optimize,
            min_throughput=args.min_throughput or 0.0, cuts=args.cuts, bandwidth=bandwidth, on_layer=tick,
        )  # fmt: skip
    from gemmap.pipeline_report import (
        STAGE_DROPPABLE,
        SUMMARY_DROPPABLE,
        plot_gantt,
        stage_table,
        summary_table,
    )

    print_table(stage_table(result), droppable=STAGE_DROPPABLE)
    print_table(summary_table(result), droppable=SUMMARY_DROPPABLE)
    if args.json:
        write_json(args.json, result.to_json())
    if args.plot:
        plot_gantt(result, args.plot)
    return 0
