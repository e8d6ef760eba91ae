"""``gemmap export timeloop``: each layer's problem, the architecture and the chosen mapping as Timeloop YAML."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

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
from gemmap.interop.export import export_files, export_layers
from gemmap.report import atomic_write, check_writable_dir, eng, print_table
from gemmap.workload import load_workload

EXAMPLES = """examples:
  gemmap export timeloop workloads/bert.yaml --out out/tl-bert
  gemmap export timeloop workloads/resnet50.yaml --search heuristic --out out/tl-resnet
  gemmap export timeloop workloads/llama2-7b.yaml --phase decode --kv-len 2048 --out out/tl-llama-decode
  timeloop-model out/tl-bert/arch.yaml out/tl-bert/ffn1.problem.yaml out/tl-bert/ffn1.map.yaml
  gemmap evaluate workloads/bert.yaml --layer ffn1 --mapping out/tl-bert/ffn1.map.yaml

Writes DIR/arch.yaml (the arch as Timeloop's v0.4 tree: DRAM -> (L2) -> scratchpad -> columns of
accumulator slices -> rows of PEs), and per matmul/conv layer DIR/LAYER.problem.yaml (Timeloop's
CNN-layer problem; a matmul is P = M, C = K, K = N) and DIR/LAYER.map.yaml (the chosen mapping as
a Timeloop mapping list), plus DIR/summary.csv. Non-linear ops have no Timeloop einsum and are not
written. Mappings are searched weight-stationary (the Timeloop architecture is Gemmini's WS array).
Every written mapping is read back through gemmap's own Timeloop import and re-costed; a layer whose
cost changes (the import follows DOSA's flow: matmul tiles in whole DIM blocks, double-buffered,
an L2 as a cache) is marked 'differs' with a note saying why.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write Timeloop problem, architecture and mapping files",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    formats = p.add_subparsers(dest="format", required=True, metavar="{timeloop}")
    t = formats.add_parser("timeloop", help="Timeloop v0.4 YAML (problem, architecture, mapping) per layer",
                           epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    t.add_argument("workload", help="workload YAML (e.g. workloads/bert.yaml)")
    t.add_argument("--out", required=True, metavar="DIR", help="folder for the files (created if needed)")
    add_arch_args(t)
    add_search_args(t)
    add_workload_args(t)
    t.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    out = check_writable_dir(args.out)
    if args.dataflow == "os":
        raise GemmapError("--dataflow os: the Timeloop architecture gemmap writes is Gemmini's weight-stationary array")
    arch = arch_from_args(args)
    if "ws" not in arch.dataflows:
        raise GemmapError(f"{args.arch}: {arch.name} has no weight-stationary dataflow, which the export writes")
    workload = load_workload(args.workload, overrides=overrides_from_args(args))
    console = Console(stderr=True)
    with api.progress(console, total=len(workload.problems), what="mapping layers") as tick:
        result = api.map_workload(arch, workload, search_options(args, "ws"), on_layer=tick)
    layers = export_layers(arch, result.layers)
    files = export_files(arch, layers)
    for name, text in files.items():
        atomic_write(out / name, text)
    table = Table(title=f"{workload.name} on {arch.name}: Timeloop files in {out}", title_justify="left")
    for col in ("layer", "Timeloop mapping", "cycles", "energy", "DRAM", "round trip"):
        table.add_column(col, justify="left" if col in ("layer", "Timeloop mapping", "round trip") else "right")
    for layer in layers:
        c = layer.cost
        table.add_row(layer.problem.name, layer.nest.to_compact(), eng(c.cycles), eng(c.energy_pj * 1e-12, "J"),
                      eng(c.dram_bytes, "B"), "exact" if layer.exact else "differs")  # fmt: skip
    print_table(table)
    for layer in layers:
        for note in layer.notes:
            print(f"note: {layer.problem.name}: {note}")
    left = [x.name for x in result.layers if x.mapping is None]
    if left:
        print(f"not written (no Timeloop einsum): {', '.join(left)}")
    print(f"wrote {len(files)} files to {out}")
    return 0
