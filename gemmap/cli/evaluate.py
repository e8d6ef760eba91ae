"""``gemmap evaluate``: one given mapping (Timeloop compact string or mapping YAML), full breakdown."""

from __future__ import annotations

import argparse

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from gemmap import api, warm
from gemmap.arch import DEFAULT_ARCH
from gemmap.cli.common import arch_from_args, sram_kib
from gemmap.convmodel import allocate_cycles_of
from gemmap.errors import GemmapError
from gemmap.interop.convert import LAYER_KINDS
from gemmap.interop.gemmini_calls import MatmulCall
from gemmap.report import check_output_file, eng, table_width, write_json
from gemmap.workload import load_workload

EXAMPLES = """examples (mappings from DOSA's FireSim runs, ../shared/validation/gemmini-firesim-16x16.csv):
  gemmap evaluate --layer "matmul M=128 K=768 N=768" --arch arch/gemmini-firesim.yaml \\
      --mapping "L3[WIO] K12 - L2[WI] N1 K16X - L1[O] K4 C48 P4 C16X - L0[W] P32"
  gemmap evaluate workloads/resnet50.yaml --layer res2a_3x3 --json out/eval.json \\
      --mapping "L3[WIO] Q14 P2 - L2[WI] N1 K16X - L1[O] K4 S3 R3 C4 Q2 P2 C16X - L0[W] Q2 P14"
  gemmap evaluate --layer "conv C=64 K=64 P=56 Q=56 R=3 S=3 stride=1 padding=1" --mapping res2a.map.yaml

The mapping is converted the way DOSA's flow hands it to Gemmini: the accumulator-level (L1) tile
becomes the tiled_matmul / tiled_conv tile (matmul tiles floored to blocks of the arch's DIM), the
DRAM-level (L3) loop order the software loop order; weight-stationary, double buffered. Partial
sums spill when a reduction loop is not innermost. On an arch with an L2, the L2 is a cache over
those loops (its factors: what stays cached walking them innermost first).

Dims: the mapping uses Timeloop's letters as DOSA's data does -- a matmul is P = M, C = K, K = N;
a conv is N batch, K/C output/input channels, P output COLUMNS, Q output ROWS, R kernel columns,
S kernel rows. An inline --layer uses a workload file's names: matmul M K N; conv B C K P Q R S
stride padding dilation H W with P output ROWS and Q output COLUMNS (as in workloads/*.yaml).
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="cost one given mapping (Timeloop compact string or YAML), full breakdown",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument(
        "workload", nargs="?", metavar="WORKLOAD", help="workload YAML; without it --layer is an inline spec"
    )
    p.add_argument(
        "--layer",
        required=True,
        help="a layer of WORKLOAD by name, or an inline spec such as 'matmul M=128 K=768 N=768'",
    )
    p.add_argument("--mapping", required=True, metavar="STRING|FILE", help="Timeloop compact string, or mapping .yaml")
    p.add_argument("--arch", default=str(DEFAULT_ARCH), help="architecture YAML (default: arch/gemmini.yaml)")
    p.add_argument("--spad-kib", type=sram_kib, help="override the scratchpad size (KiB)")
    p.add_argument("--acc-kib", type=sram_kib, help="override the accumulator size (KiB)")
    p.add_argument("--json", metavar="FILE", help="write the breakdown and the mapping record as JSON")
    p.set_defaults(run=run, dataflow=None)


def run(args: argparse.Namespace) -> int:
    if args.json is not None:
        check_output_file(args.json, "--json")
    arch = arch_from_args(args)
    if args.workload is not None:
        layer = load_workload(args.workload).problem(args.layer)
    else:
        first = args.layer.split()[:1]
        if len(args.layer.split()) == 1 and first[0] not in LAYER_KINDS:
            raise GemmapError(
                f"--layer '{args.layer}' names a layer: give the WORKLOAD file too, or an inline spec such as "
                "'matmul M=128 K=768 N=768'"
            )
        layer = api.layer_from_spec(args.layer)
    ev = api.evaluate_mapping(arch, layer, args.mapping)
    Console(width=table_width()).print(render(ev))
    if args.json:
        write_json(args.json, ev.to_dict())
        print(f"wrote {args.json}")
    return 0


# --- the terminal report -----------------------------------------------------------------


def _call_text(ev: api.EvaluatedMapping) -> str:
    c = ev.call
    if isinstance(c, MatmulCall):
        return (
            f"tiled_matmul(I={c.I}, J={c.J}, K={c.K}, tile_I={c.tile_I}, tile_J={c.tile_J}, tile_K={c.tile_K}, "
            f"WS, perm={c.perm})   // tiles in blocks of DIM {ev.arch.dim_rows}; "
            f"software loops {' '.join(c.outer_order())}, outermost first"
        )
    return (
        f"tiled_conv(batch_size={c.batch_size}, in_dim={c.in_dim}, in_channels={c.in_channels}, "
        f"out_channels={c.out_channels}, out_dim={c.out_dim}, stride={c.stride}, dilation={c.kernel_dilation}, "
        f"padding={c.padding}, kernel_dim={c.kernel_dim}, batches={c.batches}, porows={c.porows}, "
        f"pocols={c.pocols}, pochs={c.pochs}, krows={c.krows}, kcols={c.kcols}, kchs={c.kchs}, perm={c.perm})"
    )


def _table(title: str, columns: tuple[str, ...]) -> Table:
    table = Table(title=title, title_justify="left")
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i == 0 else "right")
    return table


def _share(x: float, total: float) -> str:
    return f"{x / total:.1%}" if total else "-"


def render(ev: api.EvaluatedMapping) -> RenderableType:
    """The full breakdown of one evaluated mapping, for the terminal."""
    arch, p, c = ev.arch, ev.problem, ev.cost
    dims = " ".join(f"{k}={v}" for k, v in ev.to_dict()["layer"]["dims"].items())
    if p.conv is not None:
        dims += f" stride={p.conv.stride} padding={p.conv.padding} dilation={p.conv.dilation}"
    head = Text()
    head.append(f"{p.name}", style="bold")
    head.append(f" ({p.op} {dims}) on {arch.name}\n")
    head.append("Timeloop: ", style="dim")
    head.append(ev.nest.to_compact() + "\n")
    head.append("Gemmini:  ", style="dim")
    head.append(_call_text(ev) + "\n")
    head.append("gemmap:   ", style="dim")
    head.append(ev.mapping.summary(arch))
    if arch.l2 is not None and p.conv is None:
        head.append("\nL2:       ", style="dim")
        head.append("a cache under the software loops; its factors are what stays cached walking them innermost first")
    for note in ev.notes:
        head.append("\nnote: ", style="yellow")
        head.append(note)

    cycles = _table("cycles", ("", "cycles", "of total"))
    cycles.add_row("compute (systolic array)", eng(c.compute_cycles), _share(c.compute_cycles, c.cycles))
    cycles.add_row("exposed transfer", eng(c.exposed_transfer_cycles), _share(c.exposed_transfer_cycles, c.cycles))
    cycles.add_row("  of local DMA (double-buffered: mostly hidden)", eng(c.local_transfer_cycles), "")
    if c.sequence_cycles:
        cycles.add_row("  two loops over the real tile sequence (a floor)", eng(c.sequence_cycles), "")
    cycles.add_row(
        "DRAM bandwidth floor (bytes / bandwidth, + cache misses, L2 line fetches)",
        eng(c.dram_cycles),
        _share(c.dram_cycles, c.cycles),
    )
    cycles.add_section()
    cycles.add_row("total", eng(c.cycles), f"util {c.utilization:.1%}")
    seconds = c.cycles / (arch.frequency_mhz * 1e6)
    cycles.caption = (
        f"{c.macs:,} MACs; ideal {eng(c.ideal_cycles)} cycles; {seconds * 1e6:.1f} µs at {arch.frequency_mhz:g} MHz"
    )

    energy = _table("energy", ("component", "energy", "share"))
    for name, pj in c.energy_breakdown.items():
        energy.add_row(name, eng(pj * 1e-12, "J"), _share(pj, c.energy_pj))
    energy.add_section()
    energy.add_row("total", eng(c.energy_pj * 1e-12, "J"), f"EDP {eng(c.edp * 1e-12, 'J·cyc')}")

    dram = _table("DRAM traffic", ("tensor", "bytes", "compulsory", "ratio"))
    compulsory = ev.dram_compulsory_by_tensor
    names = {"A": "A inputs", "B": "B weights", "C": "C outputs (+ partial sums)"}
    for t, b in c.dram_bytes_by_tensor.items():
        need = compulsory.get(t, 0)
        dram.add_row(names.get(t, t), eng(b, "B"), eng(need, "B"), f"{b / need:.2f}x" if need else "-")
    dram.add_section()
    bound = c.dram_bytes_lower_bound
    dram.add_row("total", eng(c.dram_bytes, "B"), eng(c.compulsory_dram_bytes, "B"),
                 f"{c.dram_bytes / c.compulsory_dram_bytes:.2f}x" if c.compulsory_dram_bytes else "-")  # fmt: skip
    dram.caption = f"lower bound {eng(bound, 'B')} ({c.dram_bytes / bound:.2f}x of it)" if bound else None
    kept = warm.warm_bytes(arch, p)
    if kept:  # l2.warm_start: the bounds are for a cold start
        dram.caption = f"{dram.caption}; {eng(kept, 'B')} found in the warm L2 (l2.warm_start)"
    missed = warm.cache_miss_cycles(arch, p)
    if missed:  # dram.cache_kib: first fills that miss the memory-side cache
        dram.caption = (
            f"{dram.caption}; first fills missing the memory-side cache add {eng(missed)} cycles (dram.cache_kib)"
        )
    if c.strip_bytes:  # l2.gemm_strips: narrow operand rows whose strips overflow the L2's sets
        dram.caption = (
            f"{dram.caption}; rows narrower than a line whose strips overflow the L2's sets add {eng(c.strip_bytes, 'B')}"
            f" and {eng(c.strip_cycles)} LLC-miss cycles (l2.gemm_strips)"
        )
    allocated = allocate_cycles_of(arch, p, ev.mapping)
    if allocated:  # l2.allocate_through_memory: the L2's line fetches before partial output writes
        dram.caption = (
            f"{dram.caption}; the L2's output-line fetches add {eng(allocated)} cycles (l2.allocate_through_memory)"
        )

    nest = Text(ev.mapping.loop_nest(arch, p))
    return Group(head, Text(""), Text("loop nest", style="bold"), nest, Text(""), cycles, energy, dram)
