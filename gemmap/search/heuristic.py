"""Gemmini's own software tiler: the rule of ``tiled_matmul_auto`` in gemmini-rocc-tests'
``include/gemmini.h`` (read from the source, re-derived here; see the closing comments there).

Tiles are counted in DIM×DIM blocks: tile_I (M), tile_J (N), tile_K (K). The rule:

* WS is double-buffered (the LOOP_WS FSM runs two concurrent loops, each owning half the
  scratchpad and half the accumulator); OS is not.
* Start from the largest square-ish tile the accumulator allows: tile_I = tile_J =
  ⌊√(acc_rows_available / DIM)⌋ and tile_K = ⌊(partition_rows / DIM) / tile_I⌋, where
  partition_rows is half the scratchpad rows (a quarter when double-buffered); each is clipped
  to the padded problem size.
* When a Softmax or LayerNorm is fused (``act == SOFTMAX || LAYERNORM``), whole output rows must
  sit in the accumulator: tile_J = all of N, tile_I = tile_K = 1 (not checked against capacity
  here, as in Gemmini: the tile may not fit, and then the mapping is invalid).
* Then grow round-robin — J, then I, then K, one block each — while the A + B tiles fit the
  scratchpad and the C tile fits the accumulator, until none can grow.

The loop order is ``tiled_matmul_outer``'s: for i0, for j0, for k0 (K innermost, so C stays in
the accumulator across the reduction). Gemmini's tiler does not know an L2, so the L2 tile equals
the local tile; :func:`gemmini_matmul_auto` is what runs on a given SoC: the tiles sized for the
memory its header states (``Arch.tiler_view``), an L2 that is a cache kept what fits of the loop nest
(:func:`gemmap.interop.convert.under_cache`).
"""

from __future__ import annotations

import math

from gemmap.arch import Arch, ceil_div
from gemmap.mapping import Mapping
from gemmap.workload import Problem


def gemmini_tiles(arch: Arch, problem: Problem, dataflow: str, full_rows: bool = False) -> tuple[int, int, int]:
    """(tile_I, tile_J, tile_K) in DIM blocks, as ``tiled_matmul_auto`` chooses them."""
    dim = arch.dim_cols
    Ip, Kp, Jp = (ceil_div(x, dim) for x in problem.shape_key())
    db = dataflow == "ws"
    spad_rows, acc_rows = arch.spad_rows, arch.acc_rows
    max_spad_rows = spad_rows // 2 if db else spad_rows
    max_acc_rows = acc_rows // 2 if db else acc_rows
    if full_rows:
        ti, tj, tk = 1, Jp, 1
    else:
        partition_rows = spad_rows // 4 if db else spad_rows // 2
        max_ij = math.isqrt(max_acc_rows // dim)
        max_k = (partition_rows // dim) // max(max_ij, 1)
        ti, tj, tk = min(Ip, max_ij), min(Jp, max_ij), min(Kp, max_k)

    def fits(i: int, j: int, k: int) -> bool:
        return (i * k + k * j) * dim <= max_spad_rows and i * j * dim <= max_acc_rows

    while True:
        grew = False
        if not full_rows and tj + 1 <= Jp and fits(ti, tj + 1, tk):
            tj, grew = tj + 1, True
        if ti + 1 <= Ip and fits(ti + 1, tj, tk):
            ti, grew = ti + 1, True
        if tk + 1 <= Kp and (ti * (tk + 1) + (tk + 1) * tj) * dim <= max_spad_rows:
            tk, grew = tk + 1, True
        if not grew:
            return ti, tj, tk


def heuristic_mapping(arch: Arch, problem: Problem, dataflow: str | None = None, full_rows: bool = False) -> Mapping:
    """The mapping a Gemmini user gets today from ``tiled_matmul_auto`` (WS unless told otherwise)."""
    if dataflow is None:
        dataflow = "ws" if "ws" in arch.dataflows else arch.dataflows[0]
    ti, tj, tk = gemmini_tiles(arch, problem, dataflow, full_rows)
    dim = arch.dim_cols
    M, K, N = problem.shape_key()
    local = (min(ti * dim, M), min(tk * dim, K), min(tj * dim, N))
    db = dataflow == "ws"
    return Mapping(dataflow, local, (1, 1, 1), "MNK", "MNK", db_spad=db, db_acc=db)


def gemmini_matmul_auto(arch: Arch, problem: Problem, dataflow: str | None = None, full_rows: bool = False) -> Mapping:
    """What ``tiled_matmul_auto`` runs on ``arch``: :func:`heuristic_mapping` of the memory sizes its
    software's header states (``Arch.tiler_view``), and on an L2 that is a cache (``l2.ways``) the
    L2 factors of what the cache keeps over its loop nest (``cache_factors``; gemmap validate's
    ``--tiler`` runs)."""
    from gemmap.interop.convert import under_cache

    m = heuristic_mapping(arch.tiler_view(), problem, dataflow, full_rows)
    return m if arch.l2_cache is None else under_cache(arch, problem, m)
