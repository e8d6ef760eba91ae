"""``gemmap map``: best mapping per layer and whole-model latency/energy/EDP."""

from __future__ import annotations

import argparse

from rich.console import Console

from gemmap import api
from gemmap.cli.common import (
    add_arch_args,
    add_search_args,
    add_workload_args,
    arch_from_args,
    overrides_from_args,
    search_options,
)
from gemmap.errors import GemmapError
from gemmap.report import (
    MAP_DROPPABLE,
    atomic_write,
    check_output_file,
    loop_nests,
    map_csv,
    map_json,
    map_table,
    print_table,
    write_json,
)
from gemmap.workload import load_workload

EXAMPLES = """examples:
  gemmap map workloads/bert.yaml
  gemmap map workloads/bert.yaml --search heuristic --explain ffn1
  gemmap map workloads/bert.yaml --arch arch/gemmini-transformer.yaml --objective latency --json out/bert.json
  gemmap map workloads/resnet50.yaml --spad-kib 64 --acc-kib 128 --csv out/resnet.csv
  gemmap map workloads/llama2-7b.yaml --phase decode --kv-len 2048      # one token against a 2048-token cache
  gemmap map workloads/llama3-8b.yaml --phase prefill --seq-len 2048 --batch 4
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("map", help="best mapping per layer and whole-model totals", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("workload", help="workload YAML (e.g. workloads/bert.yaml)")
    add_arch_args(p)
    add_search_args(p)
    add_workload_args(p)
    p.add_argument("--fusion", default="none", help="fusion policy: none, all or auto (default: none)")
    p.add_argument("--json", metavar="FILE", help="write the result as JSON")
    p.add_argument("--csv", metavar="FILE", help="write one row per layer as CSV")
    p.add_argument(
        "--explain", metavar="LAYER", nargs="?", const="*", help="print the loop nest of LAYER (all layers if no name)"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    for value, flag in ((args.json, "--json"), (args.csv, "--csv")):
        if value is not None:
            check_output_file(value, flag)  # a typo fails now, not after the search
    arch = arch_from_args(args)
    options = search_options(args, args.dataflow)
    workload = load_workload(args.workload, overrides=overrides_from_args(args))
    if args.explain is not None and not args.explain.strip():
        raise GemmapError("--explain: give a layer name, or no value for every layer")
    if args.explain and args.explain != "*":
        workload.problem(args.explain)  # an unknown layer is an error before any work
    console = Console(stderr=True)
    with api.progress(console, total=len(workload.problems), what="mapping layers") as tick:
        result = api.map_workload(arch, workload, options, fusion=args.fusion, on_layer=tick)
    print_table(map_table(result), droppable=MAP_DROPPABLE)
    if args.explain:
        names = None if args.explain == "*" else [workload.problem(args.explain).name]
        print(loop_nests(result, names))
    if args.json:
        write_json(args.json, map_json(result))
    if args.csv:
        atomic_write(args.csv, map_csv(result))
    return 0
