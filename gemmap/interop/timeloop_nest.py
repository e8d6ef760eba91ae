"""gemmap's mapping of a layer as a Timeloop loop nest: the inverse of :func:`gemmap.interop.convert.convert`.

The nest is written on DOSA's four Gemmini levels (``L3`` DRAM, ``L2`` scratchpad, ``L1``
accumulator, ``L0`` registers) in the way :mod:`gemmap.interop.gemmini_calls` reads a tile back:

* ``L3``: one loop per dim with more than one tile, bound ``ceil(D / T)``, in the mapping's DRAM
  (software) loop order;
* ``L2``: K (output channels, a matmul's N) across the array's columns, spatial;
* ``L1``: the rest of the accumulator tile -- C (input channels, a matmul's K) across the array's
  rows, spatial, and temporal loops over K, C, the kernel rows and columns and the batch;
* ``L0``: the output rows and columns (a matmul's M), streamed past the stationary weights.

Dims are Timeloop's: a matmul is P = M, C = K, K = N; a conv's P is its output COLUMNS and Q its
output ROWS, R its kernel columns and S its kernel rows (DOSA's reading, :data:`CONV_LETTERS`).
A spatial factor is the largest divisor of the tile not wider than the array, so the tile is exact.
"""

from __future__ import annotations

from gemmap.arch import Arch, ceil_div
from gemmap.conv import ConvMapping
from gemmap.errors import GemmapError
from gemmap.interop.convert import CONV_LETTERS, timeloop_layer
from gemmap.interop.timeloop import Level, Loop, LoopNest
from gemmap.mapping import Mapping
from gemmap.workload import Problem

#: gemmap's GEMM dims as Timeloop's (P = M, C = K, K = N)
MATMUL_LETTERS = {"M": "P", "K": "C", "N": "K"}
#: gemmap's conv dims (b, p rows, q cols, k, r kernel rows, s kernel cols, c) as Timeloop's
CONV_TIMELOOP = {ours: theirs for theirs, ours in CONV_LETTERS.items()}
#: what each of DOSA's Gemmini levels keeps (weights, inputs, outputs)
KEEPS = {"L3": "WIO", "L2": "WI", "L1": "O", "L0": "W"}


def spatial_split(tile: int, width: int) -> tuple[int, int]:
    """(spatial, temporal) with spatial · temporal = ``tile`` and spatial the largest divisor ≤ ``width``."""
    spatial = max(d for d in range(1, min(tile, width) + 1) if tile % d == 0)
    return spatial, tile // spatial


def _level(name: str, loops: list[Loop]) -> Level:
    """Level ``name`` with its non-trivial loops; without a temporal one it gets Timeloop's ``N1``
    placeholder, as Timeloop prints it (and as :func:`~gemmap.interop.timeloop.parse_yaml` reads it)."""
    kept = tuple(loop for loop in loops if loop.bound > 1)
    if not any(not loop.spatial for loop in kept):
        kept = (Loop("N", 1), *kept)
    return Level(name, frozenset(KEEPS[name]), kept)


def matmul_nest(arch: Arch, problem: Problem, mapping: Mapping) -> LoopNest:
    """The nest of a weight-stationary GEMM mapping (module docstring)."""
    _check_ws(problem, mapping.dataflow)
    local = dict(zip("MKN", mapping.local))
    tiles = {d: ceil_div(size, local[d]) for d, size in problem.dims.items()}
    k_cols, k_time = spatial_split(local["N"], arch.dim_cols)
    c_rows, c_time = spatial_split(local["K"], arch.dim_rows)
    dram = [Loop(MATMUL_LETTERS[d], tiles[d]) for d in mapping.dram_order]
    return LoopNest(
        (
            _level("L3", dram),
            _level("L2", [Loop("K", k_cols, spatial=True)]),
            _level("L1", [Loop("C", c_time), Loop("K", k_time), Loop("C", c_rows, spatial=True)]),
            _level("L0", [Loop("P", local["M"])]),
        )
    )


def conv_nest(arch: Arch, problem: Problem, mapping: ConvMapping) -> LoopNest:
    """The nest of a ``tiled_conv`` mapping (module docstring): LoopConv's per-tile loops, output
    channels, kernel rows and columns and input channels under the DRAM loops, the batch innermost of
    the accumulator level, output rows and columns in the registers' level."""
    _check_ws(problem, mapping.dataflow)
    assert problem.conv is not None
    tile = dict(zip("bpqkrsc", mapping.tile))
    counts = dict(zip("bpqkrsc", (ceil_div(d, t) for d, t in zip(problem.conv.dims, mapping.tile))))
    k_cols, k_time = spatial_split(tile["k"], arch.dim_cols)
    c_rows, c_time = spatial_split(tile["c"], arch.dim_rows)
    dram = [Loop(CONV_TIMELOOP[d], counts[d]) for d in mapping.order]
    accumulator = [
        Loop("K", k_time),
        Loop("S", tile["r"]),
        Loop("R", tile["s"]),
        Loop("C", c_time),
        Loop("N", tile["b"]),
    ]
    return LoopNest(
        (
            _level("L3", dram),
            _level("L2", [Loop("K", k_cols, spatial=True)]),
            _level("L1", [*accumulator, Loop("C", c_rows, spatial=True)]),
            _level("L0", [Loop("Q", tile["p"]), Loop("P", tile["q"])]),
        )
    )


def nest_of(arch: Arch, problem: Problem, mapping: Mapping | ConvMapping) -> LoopNest:
    """The Timeloop nest of gemmap's mapping of ``problem`` (a GEMM or a conv mapping)."""
    if isinstance(mapping, ConvMapping):
        return conv_nest(arch, problem, mapping)
    return matmul_nest(arch, problem, mapping)


def _check_ws(problem: Problem, dataflow: str) -> None:
    if dataflow != "ws":
        raise GemmapError(
            f"layer '{problem.name}': a {dataflow.upper()} mapping has no place in the weight-stationary Timeloop "
            "architecture gemmap writes (Gemmini's, as DOSA models it); map with --dataflow ws"
        )


def covered(problem: Problem, nest: LoopNest) -> dict[str, int]:
    """Each Timeloop dim's extent the nest covers (≥ the layer's size; larger where the last tile is
    partial, which Timeloop's exact factorization cannot state)."""
    return {d: max(size, nest.factor(d)) for d, size in timeloop_layer(problem).items()}


__all__ = ["KEEPS", "conv_nest", "covered", "matmul_nest", "nest_of", "spatial_split"]
