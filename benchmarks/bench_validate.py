"""Mechanism → error table (run by hand): ``python benchmarks/bench_validate.py [--workers 2] [--out FILE]``.

Predicts DOSA's FireSim runs (``/work/shared/validation``: the 16x16 file with the rows' mappings and
with Gemmini's own tiler, the 128x128 file with the rows' mappings) with ``arch/gemmini-firesim.yaml``
and with variants of it in which mechanisms of the model are switched off:

- *cumulative*: from a "before" baseline (every mechanism below off: the model before the memory-path,
  execute-pipeline and per-PE-dim work) the mechanisms are switched on one at a time, in the order of
  :data:`MECHANISMS`, up to the shipped arch;
- *leave-one-out*: each mechanism switched off alone in the full model.

For each variant and data set: rows predicted, MAPE, median APE, Spearman, share within ±10 % and mean
signed error (gemmap.validation.stats). Then the wall time of ``gemmap validate`` on each file.
Prints markdown (``--out`` also writes it to a file). Nothing is fitted: the variants only switch
mechanisms off.

Not switchable, on in every variant: the 4-row floor and the preload-carrying first request of a fold
(ExecuteController.scala L285-302), LoopConv's per-output-row requests, and the two-loops-in-flight
overlap ``max(ex, load, store, (ex + load + store + latency) / 2)`` (gemmap/model.py core_cycles).
DMA rows at full bus efficiency (the "before" DMA) are emulated with ``dma.beat_bytes = 1``, no request
walk and no memory latency: every byte then costs 1 / bus width, as before the beat/request row model.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")

from docsection import machine  # noqa: E402

from gemmap.arch import Arch, load_arch  # noqa: E402
from gemmap.validation.data import read_runs, validate_runs  # noqa: E402
from gemmap.validation.predict import RULES, Rules, predict  # noqa: E402
from gemmap.validation.stats import ErrorStats, error_stats  # noqa: E402

SHARED = Path("/work/shared/validation")
ARCH = ROOT / "arch" / "gemmini-firesim.yaml"
# (label, file, tiler)
DATASETS = (
    ("16x16", "gemmini-firesim-16x16.csv", False),
    ("16x16 --tiler", "gemmini-firesim-16x16.csv", True),
    ("128x128", "gemmini-firesim-128x128.csv", False),
)


@dataclasses.dataclass(frozen=True)
class Config:
    """What a variant predicts with: the arch, and how runs are set up (``predict(..., rules=...)``:
    DOSA's per-PE-dim arrays for the 128x128 file, a warm L2 for the mapped runs)."""

    arch: Arch
    rules: Rules = RULES


def _sub(arch: Arch, section: str, **fields: object) -> Arch:
    return dataclasses.replace(arch, **{section: dataclasses.replace(getattr(arch, section), **fields)})


def _arch(f: Callable[[Arch], Arch]) -> Callable[[Config], Config]:
    return lambda c: dataclasses.replace(c, arch=f(c.arch))


def _rule_off(name: str) -> Callable[[Config], Config]:
    """A transform that switches the run-setup rule ``name`` of :class:`Rules` off."""
    return lambda c: dataclasses.replace(c, rules=dataclasses.replace(c.rules, **{name: False}))


#: (name, description with its source, transform that switches the mechanism OFF), in the order the
#: cumulative table switches them on. The transforms touch disjoint fields, so they compose in any order,
#: but some mechanisms need others: the write-allocate through the memory needs the write-allocate (and
#: the L2), the dirty victims a memory-side cache (both off with the memory behind the L2 or its cache);
#: two of them also change the warm start's share, which reads the L2's geometry: "L2 sets" off
#: (``l2.ways = None``, a software-managed buffer) keeps a footprint that fits whole, and the memory
#: behind the L2 off (no L2) has no warm start at all. The warm start also decides what the memory-side
#: cache holds, so "warm L2 for the mapped runs" off makes the mapped runs miss that cache as well.
MECHANISMS: list[tuple[str, str, Callable[[Config], Config]]] = [
    (
        "per-call reloads",
        "every tile call moves its whole A and B tiles in (software.reload_operands; gemmini.h tiled_matmul_outer)",
        _arch(lambda a: _sub(a, "software", reload_operands=False)),
    ),
    (
        "DMA rows in beats/requests",
        "a mvin row costs whole 16 B beats and 64 B requests (dma.beat_bytes; DMA.scala L181-200, L277-290); "
        "off: every byte at 1 / bus width, no request walk",
        _arch(lambda a: _sub(a, "dma", beat_bytes=1, request_walk=False)),
    ),
    (
        "DMA request walk",
        "each request is the aligned 16/32/64 B size that moves the most bytes and fetches all its beats "
        "(dma.request_walk; DMA.scala L180-201, L420-470); off: only the beats and 64 B blocks touched",
        _arch(lambda a: _sub(a, "dma", request_walk=False)),
    ),
    (
        "memory round trip",
        "30-cycle round trip: in-flight window of 16 requests and per-tile load/store latency "
        "(dram.latency_cycles; XactTracker.scala L67-84, LoopMatmul.scala L1104-1107)",
        _arch(lambda a: _sub(a, "dram", latency_cycles=0.0)),
    ),
    (
        "mvout write gather",
        "StreamWriter gathers a chunk's beats then sends them, 2b − 1 cycles (dma.write_gather; DMA.scala L554-608)",
        _arch(lambda a: _sub(a, "dma", write_gather=False)),
    ),
    (
        "7.1 B/cycle memory behind 512 KiB L2",
        "FASED LLC model: one 64-B line per 9 cycles (dram.bytes_per_cycle; LastLevelCache.scala L188-411), "
        "inclusive L2 as a cache (l2; WithInclusiveCache)",
        # the whole memory at the bus's rate: hits and (if the memory-side cache is on) misses alike
        _arch(
            lambda a: _sub(
                dataclasses.replace(a, l2=None),
                "dram",
                bytes_per_cycle=16.0,
                miss_bytes_per_cycle=16.0,
                victim_bytes_per_cycle=None,
            )
        ),
    ),
    (
        "tiles pipelined",
        "fill/drain skew once per layer, not per tile (pe_array.pipelined_tiles; ExecuteController.scala L405-415)",
        _arch(lambda a: _sub(a, "pe_array", pipelined_tiles=False)),
    ),
    (
        "tag-queue throttle",
        "≤ tag_queue − 1 requests share the array latency 2·DIM (pe_array.tag_queue, latency_cycles; "
        "MeshWithDelays.scala L48-56, Mesh.scala L59-66)",
        _arch(lambda a: _sub(a, "pe_array", tag_queue=65536, latency_cycles=1)),
    ),
    (
        "host issue per tile",
        "host cycles per tile and per loop step as a floor (software.*_tile_issue_cycles 134 / 263, "
        "*_loop_issue_cycles 33 / 38; benchmarks/host_issue)",
        _arch(
            lambda a: _sub(
                a,
                "software",
                matmul_tile_issue_cycles=0.0,
                conv_tile_issue_cycles=0.0,
                matmul_loop_issue_cycles=0.0,
                conv_loop_issue_cycles=0.0,
            )
        ),  # fmt: skip
    ),
    (
        "one DMA command in flight at DIM >= 32",
        "the load/store controllers track max_in_flight // DIM + 1 commands: each command's round trip is "
        "exposed when that is 1 (dma.commands_in_flight; LoadController.scala L84, StoreController.scala L141)",
        _arch(lambda a: _sub(a, "dma", commands_in_flight=1000)),
    ),
    (
        "tiler search in the timed window",
        "tiled_conv_auto's tile search on the host, timed with --tiler runs (software.conv_tiler_*_check_cycles "
        "167 / 193; conv_tilings.c L151-172)",
        _arch(lambda a: _sub(a, "software", conv_tiler_shrink_check_cycles=0.0, conv_tiler_grow_check_cycles=0.0)),
    ),
    (
        "L2 sets of strided weight rows",
        "a weight tile of narrow rows reaches sets / gcd(K / line, sets) of the cache's sets; more rows than they "
        "hold reload from memory, a line per row (l2.ways; inclusive cache set index)",
        _arch(lambda a: a if a.l2 is None else _sub(a, "l2", ways=None)),
    ),
    (
        "input loader's 16-bit ring",
        "a conv tile whose input window lies wholly in the padding wraps LoopConv's 16-bit loader iterators: "
        "2^16 rows or columns moved, half from memory (dma.conv_loader_bits; LoopConv.scala L54-55, L266-267, "
        "L359-378; gemmap/conv_ring.py)",
        _arch(lambda a: _sub(a, "dma", conv_loader_bits=None)),
    ),
    (
        "accumulator zero-fill per output tile",
        "tiled_conv's dummy bias address makes LoopConvLdBias zero-fill each output tile's accumulator rows, "
        "one per cycle on the load path (software.conv_bias_zero_fill; gemmini.h L2283-2286, LoopConv.scala L108)",
        _arch(lambda a: _sub(a, "software", conv_bias_zero_fill=False)),
    ),
    (
        "write-allocate of partial output lines",
        "a mvout row narrower than a line is a partial put; the L2 fetches the line and later writes it back, "
        "once per line of an output larger than the L2, and again for every output-channel slice whose loops "
        "touch more than the L2 (l2.write_allocate; MSHR.scala L281-282, DMA.scala L420-491; gemmap/dma.py, "
        "convmodel.refetch_store_floor)",
        _arch(lambda a: a if a.l2 is None else _sub(a, "l2", write_allocate=False)),
    ),
    (
        "warm L2 for the mapped runs",
        "a mapped run follows the tiler run of its layer on the same buffers: each tensor's first fills hit what "
        "a random-victim L2 kept, (1 - (1 - 1/W)^(W x)) / x of a footprint of x <= 1 capacities (l2.warm_start, "
        "predict Rules.warm_mapped; conv_tilings.c L136-203, Directory.scala L112-121; gemmap/warm.py)",
        _rule_off("warm_mapped"),
    ),
    (
        "first load from memory",
        "the first tile's loads have no compute before them to overlap: the bytes a warm L2 does not hold take "
        "their time at the memory's 7.1 B/cycle (dram.first_load_from_memory; ReservationStation.scala L320-325, "
        "LoopMatmul.scala L447-449, LoopConv.scala L713-720)",
        _arch(lambda a: _sub(a, "dram", first_load_from_memory=False)),
    ),
    (
        "memory-side cache misses",
        "FASED's 4 MiB LLC model: the first fills it does not hold (a warm run: the random-victim share of the "
        "footprint; a cold run: none), and a conv's reloads it cannot keep between the walks of the loop re-walking "
        "them, come at 4.74 B/cycle instead of 7.1, a miss holding its one state machine for the 128-B block's "
        "refill (dram.cache_kib, miss_bytes_per_cycle; LastLevelCache.scala L79-116, L188-411)",
        _arch(
            lambda a: _sub(
                a, "dram", cache_kib=None, cache_ways=None, miss_bytes_per_cycle=None, victim_bytes_per_cycle=None
            )
        ),
    ),
    (
        "write-allocate through the memory",
        "the L2's line fetches before partial output writes, and the second write-back of a conv output line "
        "fetched again, are transactions of the memory's one state machine too, so they add to its time "
        "(l2.allocate_through_memory; MSHR.scala L281-282, LastLevelCache.scala L188-411; gemmap/warm.py)",
        _arch(lambda a: _sub(a, "l2", allocate_through_memory=False) if a.l2 is not None else a),
    ),
    (
        "dirty victims of the memory-side cache",
        "a miss whose random victim is dirty writes the 128-B block back first, 8 B/cycle; the share of dirty "
        "lines taken as the layer's output share of its compulsory bytes (dram.victim_bytes_per_cycle; "
        "LastLevelCache.scala L212-228, L303, L333-335, L365-395; gemmap/warm.py)",
        _arch(lambda a: _sub(a, "dram", victim_bytes_per_cycle=None)),
    ),
    (
        "tile sequence (convs)",
        "LoopConv's two loops over the real tiles in order: remainder tiles, first visits of an operand at the "
        "memory's rate; a floor under the summed core (software.tile_sequence; LoopConv.scala L713-720, "
        "L1249-1261, L1496; gemmap/convseq.py)",
        _arch(lambda a: _sub(a, "software", tile_sequence=False)),
    ),
    (
        "GEMM strips in the L2's sets",
        "a GEMM operand's tile rows narrower than a line at a line-multiple stride: the rows walked between two "
        "column tiles reach sets / gcd(stride / line, sets) of the L2's sets; what a random victim keeps of that "
        "cyclic strip, the rest a line from memory each, an LLC miss when its blocks overflow the LLC's reach "
        "(l2.gemm_strips; inclusive cache set index, Directory.scala L112-121; gemmap/strips.py)",
        _arch(lambda a: a if a.l2 is None else _sub(a, "l2", gemm_strips=False)),
    ),
    (
        "matmul rows in their own loop order",
        "DOSA's tiled_matmul_outer runs the mapping's order and never moves partial sums "
        "(software.keep_partial_sums, predict Rules.own_order; gemmini.h @959b23f7 L843-870); off: the reduction "
        "costed innermost",
        _rule_off("own_order"),
    ),
    (
        "tensors where DOSA's templates put them",
        "conv_tilings.c's arrays carry no alignment (RISC-V GCC: the 8-byte word), matmul_tilings.c's are "
        "row_align(1) = 16 bytes, so a row's offset in a 64-byte request is unknown below that: the DMA's request "
        "walk averaged over the offsets the base allows (software.tensor_align_bytes, predict Rules."
        "template_alignment; templates @959b23f7 L45-50 / L53-58, gcc/config/riscv/riscv.h DATA_ALIGNMENT)",
        _rule_off("template_alignment"),
    ),
    (
        "per-PE-dim arrays",
        "128x128-file rows on DIM 4..64 as DOSA's per_pe_dim ran them (predict Rules.per_pe_dim; "
        "gemmini_data_collection.py L155-212)",
        _rule_off("per_pe_dim"),
    ),
]


def without(config: Config, names: list[str]) -> Config:
    """``config`` with the named mechanisms switched off."""
    for name, _, off in MECHANISMS:
        if name in names:
            config = off(config)
    return config


def variants(full: Config) -> list[tuple[str, str, Config]]:
    """(section, label, config): the cumulative steps, then the leave-one-out variants."""
    names = [m[0] for m in MECHANISMS]
    out = [("cumulative", "before (all off)", without(full, names))]
    for i, name in enumerate(names):
        out.append(("cumulative", f"+ {name}", without(full, names[i + 1 :])))
    out += [("leave-one-out", f"− {name}", without(full, [name])) for name in names]
    return out


def _stats(job: tuple[Config, str, bool]) -> ErrorStats:
    config, file, tiler = job
    runs, _ = read_runs(SHARED / file)
    preds = validate_runs(runs, lambda r: predict(r, config.arch, tiler, rules=config.rules), tiler=tiler)
    return error_stats([r.target(tiler) for r in runs], [p.predicted for p in preds])


def _f(x: float | None, fmt: str) -> str:
    return "–" if x is None else fmt.format(x)


def _row(label: str, s: ErrorStats) -> str:
    return (
        f"| {label} | {s.predicted}/{s.rows} | {_f(s.mape, '{:.1f}')} | {_f(s.median_ape, '{:.1f}')} | "
        f"{_f(s.spearman, '{:.3f}')} | {_f(s.within_10pct, '{:.0%}')} | {_f(s.bias_pct, '{:+.1f}')} |"
    )


def time_validate() -> list[str]:
    lines = ["| command | wall s |", "|---|---:|"]
    with tempfile.TemporaryDirectory() as tmp:
        for label, file, tiler in DATASETS:
            cmd = ["gemmap", "validate", str(SHARED / file), "--out", f"{tmp}/{label.replace(' ', '')}"]
            cmd += ["--tiler"] if tiler else []
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            shown = " ".join(cmd).replace(tmp, "OUT").replace(str(SHARED), "/work/shared/validation")
            lines.append(f"| `{shown}` | {time.perf_counter() - t0:.1f} |")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    ap.add_argument("--out", help="also write the markdown to this file")
    ap.add_argument("--no-timing", action="store_true", help="skip timing gemmap validate")
    args = ap.parse_args()
    full = Config(load_arch(ARCH))
    vs = variants(full)
    jobs = [(c, file, tiler) for _, _, c in vs for _, file, tiler in DATASETS]
    t0 = time.perf_counter()
    if args.workers > 1:
        with ProcessPoolExecutor(args.workers) as pool:
            results = list(pool.map(_stats, jobs))
    else:
        results = [_stats(j) for j in jobs]
    seconds = time.perf_counter() - t0
    stats = {(label, d[0]): results[i * len(DATASETS) + k] for i, (_, label, _) in enumerate(vs)
             for k, d in enumerate(DATASETS)}  # fmt: skip

    out = [f"Machine: {machine()}. {len(jobs)} passes in {seconds:.0f} s ({args.workers} worker(s)).", ""]
    out += ["Mechanisms (switched on in this order in the cumulative tables):", ""]
    out += [f"{i}. **{name}**: {desc}" for i, (name, desc, _) in enumerate(MECHANISMS, 1)]
    for d in DATASETS:
        out += ["", f"Cumulative, {d[0]} ({d[1]}{', --tiler' if d[2] else ''}):", ""]
        out += ["| variant | predicted | MAPE % | median % | Spearman | within ±10% | bias % |"]
        out += ["|---|---:|---:|---:|---:|---:|---:|"]
        out += [_row(label, stats[(label, d[0])]) for sec, label, _ in vs if sec == "cumulative"]
    out += ["", "Leave-one-out (the full model with one mechanism off): MAPE % (Spearman)", ""]
    out += ["| variant | " + " | ".join(d[0] for d in DATASETS) + " |", "|---|" + "---:|" * len(DATASETS)]
    full_label = f"+ {MECHANISMS[-1][0]}"  # the last cumulative step is the full model
    for label, key in [("full model", full_label), *[(v[1], v[1]) for v in vs if v[0] == "leave-one-out"]]:
        cells = [stats[(key, d[0])] for d in DATASETS]
        out.append(f"| {label} | " + " | ".join(f"{_f(s.mape, '{:.1f}')} ({_f(s.spearman, '{:.3f}')})"
                                                 for s in cells) + " |")  # fmt: skip
    if not args.no_timing:
        out += ["", "Wall time of `gemmap validate` (one process):", "", *time_validate()]
    text = "\n".join(out)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
