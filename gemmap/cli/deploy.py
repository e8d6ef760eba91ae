"""``gemmap deploy``: the weight-instantiation plan of a model whose weights do not fit the memory."""

from __future__ import annotations

import argparse

from rich.console import Console

from gemmap import api, specio
from gemmap.cli.common import (
    add_arch_args,
    add_search_args,
    add_workload_args,
    arch_from_args,
    bounded_float,
    overrides_from_args,
    search_options,
)
from gemmap.deploy import MIB, deploy
from gemmap.pipeline import CUTS
from gemmap.report import check_output_file, print_table, write_json
from gemmap.specio import load_yaml
from gemmap.workload import load_workload

EXAMPLES = """examples:
  gemmap deploy llama2-7b --phase decode --kv-len 2048 --arch gemmini-transformer --dram-mib 2048 \\
      --storage-mb-per-s 250 --storage-latency-us 91 --search heuristic
  gemmap deploy llama2-7b --phase prefill --seq-len 512 --arch gemmini-transformer --dram-mib 2048 \\
      --storage-mb-per-s 250 --storage-latency-us 91 --search heuristic --json out/deploy.json
  gemmap deploy bert-large --dram-mib 96 --storage-mb-per-s 250 --exit-probabilities exits.yaml

The weights are loaded group by group from storage (sequential read at --storage-mb-per-s, 10^6 B/s,
after --storage-latency-us per group); the KV cache and activations stay resident and count against
--dram-mib. Both plans are searched: serial (load, compute, load, ...) and overlap (the next group loads
while the current one computes; two groups resident at once). --exit-probabilities is a YAML/JSON mapping
of unit name (as the table prints it, e.g. down@7) to the probability inference stops after it.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("deploy", help="weight-instantiation plan of a model larger than memory",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("workload", help="workload YAML (e.g. workloads/llama2-7b.yaml)")
    add_arch_args(p)
    add_search_args(p)
    add_workload_args(p)
    p.add_argument("--fusion", default="none", help="fusion policy: none, all or auto (default: none)")
    p.add_argument(
        "--dram-mib",
        type=bounded_float(specio.DEVICE_MIB),
        required=True,
        metavar="MIB",
        help="the device's memory (MiB)",
    )
    p.add_argument("--storage-mb-per-s", type=bounded_float(specio.STORAGE_MB_S), required=True, metavar="MB_PER_S",
                   help="sequential read bandwidth of the storage (MB/s, 10^6 bytes)")  # fmt: skip
    p.add_argument("--storage-latency-us", type=bounded_float(specio.LATENCY_US), default=0.0, metavar="US",
                   help="access latency per group load (µs; default 0)")  # fmt: skip
    p.add_argument("--exit-probabilities", metavar="FILE", help="early exit: unit name -> probability (YAML/JSON)")
    p.add_argument(
        "--cuts", choices=CUTS, default="ops", help="group boundaries before any matmul (ops) or between blocks"
    )
    p.add_argument("--json", metavar="FILE", help="write the result as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.json is not None:
        check_output_file(args.json, "--json")
    if args.exit_probabilities is not None:
        load_yaml(args.exit_probabilities)  # a missing or malformed file fails now, not after the mapping
    arch = arch_from_args(args)
    options = search_options(args, args.dataflow)
    workload = load_workload(args.workload, overrides=overrides_from_args(args))
    console = Console(stderr=True)
    with api.progress(console, total=len(workload.problems), what="mapping layers") as tick:
        result = api.map_workload(arch, workload, options, fusion=args.fusion, on_layer=tick)
    plan = deploy(
        workload, arch, options, memory_bytes=int(args.dram_mib * MIB), storage_bytes_per_s=args.storage_mb_per_s * 1e6,
        storage_latency_s=args.storage_latency_us * 1e-6, exit_probabilities=args.exit_probabilities,
        cuts=args.cuts, result=result,
    )  # fmt: skip
    from gemmap.deploy_report import group_table, plan_table

    print_table(group_table(plan))
    print_table(plan_table(plan))
    if args.json:
        write_json(args.json, plan.to_json())
    return 0
