"""GEMM operand rows narrower than a line in a set-associative L2 (docs/model.md, "L2 sets (GEMMs)").

A GEMM operand is row-major: A (M×K) has rows of K elements, B (K×N) rows of N. A local tile of it
is ``T_r`` rows of ``T_c`` elements (row dim r, column dim c: A's M and K, B's K and N), and the DMA
moves it in one request chain per row (gemmap/dma.py). When a tile row is narrower than a line and
a whole number of them fit in one (``T_c · elem`` divides ``line``), and the rows lie a multiple of a
line apart (``D_c · elem``), every row of the tile is in its own line, and the rest of that line
belongs to the neighbouring column tiles. Whether those find it in the L2 depends on what the
software walks in between:

* **The strip.** Between two consecutive column tiles, the loops inside the innermost non-trivial
  column-dim loop run: the rows walked are ``T_r`` times the bounds of the row-dim loops among them
  (code 0: none, ``T_r``; 1: the L2-level loop, ``T_r · f_r``; 2: the DRAM-level loop too, all
  ``D_r`` rows). With ``B``'s column loop outside the reduction loop (``N`` before ``K``, as in
  DOSA's ``MNK`` GEMVs) the strip is all of K; with it inside (``MKN``) only the tile's own rows.
  When the innermost loop of the dim the operand does not index (B's M, A's N) is inside that column
  loop and reloads the tile (per-call reloads, ``software.reload_operands``, or a row loop of the
  operand inside it; a tile the software keeps resident is not reloaded), all but the first of its
  ``b`` iterations find the lines the iteration before used, after the rows walked inside that loop:
  a ``(b − 1) / b`` share of the loads sees that shorter strip (reloads from a loop outside the
  column loop are left at the column strip).
* **The sets it reaches.** The inclusive cache's set index is the address bits above the line
  offset (rocket-chip-inclusive-cache @850e121 ``Parameters.scala``), so rows ``stride`` bytes
  apart fall into ``sets / gcd(stride / line, sets)`` sets: 16-byte rows at a 4 KiB stride reach 16
  of the 1,024 sets of a 512 KiB 8-way L2, 128 lines.
* **What a random victim keeps.** The cache picks its victim at random among the ``W`` ways of a
  set, valid or not (``Directory.scala`` L112-121), so a cyclic stream of ``n`` lines a set keeps a
  line from one use to the next with the steady-state probability ``h = (1 − 1/W)^{(n − 1)(1 − h)}``:
  between two uses each of the other ``n − 1`` lines misses with probability ``1 − h`` and each miss
  evicts it with probability ``1/W`` (:func:`cyclic_hit_share`; the smallest root, in closed form
  with Lambert's W; 1 while ``(n − 1)·ln(W / (W − 1)) ≤ 1``, about ``n ≤ W``).

Every row the DMA loads (``D_r · n1_c`` per pass over the operand, times its reloads) then misses
the L2 with probability ``1 − h`` and costs a line from the memory behind it. Behind a memory-side
cache (``dram.cache_kib``, FASED's LLC model: blocks of ``dram.cache_block_bytes``, a random victim
when a set is full) the strip's blocks overflow that cache's reachable sets the same way (share
``h₃`` kept); a line it keeps costs ``line / dram.bytes_per_cycle`` (a hit), one it does not costs
the refill of its whole block as well, whose other lines the next row does not use: ``block ·``
:func:`gemmap.warm.miss_cycles_per_byte` more (the metadata access and the block's 16-beat refill,
≈ 18 cycles against a hit's 9: firesim-dosa @eeb9fdb7 ``LastLevelCache.scala`` L188-411).

The operand's memory bytes are then at least its missed lines (``lines · line``), and the memory's
time grows by the LLC misses' cycles (:func:`strip_terms`, on the model's memory floor). Both are
≥ 0, so the searches' lower bounds (which leave them out) stay bounds, and the optimal search keys the
codes in its order classes as categories (``search/optimal.py``: a longer column strip costs more, a
reload inside the column loop less). When a column loop is outside the innermost one (the DRAM-level
one outside the L2-level one), one of the inner loop's ``f_c`` iterations reaches its line neighbour
across a step of the outer loop, after the outer loop's strip: a ``1 / f_c`` share of the column loads
sees that strip. Simplifications: the other operands' lines in the same sets are not counted;
a tile row wider than a line, or a stride that is not a multiple of a line, is left to the byte
count; the steady state is the mean-field one (within 0.05 of a brute-force simulation of a set from
``n = W + 4`` up, 0.1 optimistic at ``n = W + 1``: ``tests/test_strips.py``); the run's first pass is charged like the
others (the warm start is not subtracted from the missed lines); convs are
:func:`gemmap.convmodel.weight_tiles_spill`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import lambertw

from gemmap import warm
from gemmap.arch import Arch
from gemmap.conv import conv_shape
from gemmap.mapping import ORDER_DIMS
from gemmap.workload import Problem

#: (row dim, column dim) of A (M×K) and B (K×N) in (M, K, N) indices: a tile row runs along the column dim
OPERAND_DIMS = ((0, 1), (1, 2))
#: the dim each operand does not index (A: N, B: M): its loop reloads the same tile
OTHER_DIM = (2, 0)


def cyclic_hit_share(lines_per_set, ways: int | None) -> np.ndarray:
    """The steady-state share of uses that hit when ``lines_per_set`` lines (any shape, ≥ 0) cycle
    through each set of a random-victim cache of ``ways`` ways (module docstring): the smallest root
    of ``h = q^{(n − 1)(1 − h)}``, ``q = 1 − 1/W``, i.e. ``h = −W₀(−b·e^{−b}) / b`` with
    ``b = (n − 1)·ln(1/q)`` (principal branch), 1 for ``b ≤ 1``. ``ways`` None: one set of
    ``lines_per_set`` ways' worth (fully associative, read as n lines over a cache of ``n`` ≥ lines):
    every line stays."""
    n = np.asarray(lines_per_set, dtype=np.float64)
    if ways is None or ways <= 1:
        return np.where(n <= 1.0, 1.0, 0.0) if ways == 1 else np.ones(n.shape)
    b = np.maximum(n - 1.0, 0.0) * math.log(ways / (ways - 1.0))
    big = b > 1.0
    bb = np.where(big, b, 2.0)  # the root below 1 exists only for b > 1
    root = -lambertw(-bb * np.exp(-bb), 0).real / bb
    return np.where(big, np.clip(root, 0.0, 1.0), 1.0)


def _rows_inside(loops: list[tuple[int, int, int]], p: int, r: int) -> int:
    """0, 1 or 2: no non-trivial loop of dim ``r`` after position ``p``, the L2-level one only, or the
    DRAM-level one (and so every L2-level one too)."""
    levels = {level for d, level, bound in loops[p + 1 :] if d == r and bound > 1}
    return 2 if 0 in levels else 1 if 1 in levels else 0


def strip_code(loops: list[tuple[int, int, int]], x: int) -> int:
    """The strip code (module docstring) of operand ``x`` (0: A, 1: B) under ``loops`` ((dim, level,
    bound) outermost first, level 0 DRAM and 1 L2, as :func:`gemmap.model.visits` takes them), packed
    as ``column + 3 · (reload_level + 3 · (reload + 3 · outer))``: ``column`` the rows walked between two
    column tiles (:func:`_rows_inside` the innermost non-trivial column-dim loop), ``reload_level`` where
    the innermost non-trivial loop of the dim the operand does not index sits when it is inside that
    column loop (0: not inside, 1: at the L2 level, 2: at the DRAM level), ``reload`` the rows walked
    between two of its iterations, ``outer`` 0 when no column loop is outside the innermost one, else 1 +
    the rows walked between two iterations of that outer one (:func:`decode`)."""
    r, c = OPERAND_DIMS[x]
    cols = [p for p, (d, _, bound) in enumerate(loops) if d == c and bound > 1]
    if not cols:
        return 0
    code = _rows_inside(loops, cols[-1], r)
    others = [p for p, (d, _, bound) in enumerate(loops) if d == OTHER_DIM[x] and bound > 1]
    if others and others[-1] > cols[-1]:
        level = 2 - loops[others[-1]][1]
        code += 3 * (level + 3 * _rows_inside(loops, others[-1], r))
    if len(cols) > 1:
        code += 27 * (1 + _rows_inside(loops, cols[-2], r))
    return code


def decode(code) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(column, reload_level, reload, outer) of packed strip codes (:func:`strip_code`). Broadcasts."""
    code = np.asarray(code, dtype=np.int64)
    return code % 3, code // 3 % 3, code // 9 % 3, code // 27


def _strip_level_table() -> np.ndarray:
    """STRIP_LEVEL[x, od, ol, md, ml]: :func:`strip_code` of operand x for DRAM order ``od``, L2 order
    ``ol`` and the masks of non-trivial loops ``md`` / ``ml`` (as ``model.FILL_LEVEL``)."""
    table = np.zeros((2, 6, 6, 8, 8), dtype=np.int8)
    for od, ol, md, ml in np.ndindex(6, 6, 8, 8):
        loops = [(int(d), 0, 2 if md >> int(d) & 1 else 1) for d in ORDER_DIMS[od]]
        loops += [(int(d), 1, 2 if ml >> int(d) & 1 else 1) for d in ORDER_DIMS[ol]]
        for x in range(2):
            table[x, od, ol, md, ml] = strip_code(loops, x)
    return table


#: see :func:`_strip_level_table`
STRIP_LEVEL = _strip_level_table()
STRIP_LEVEL.setflags(write=False)


def reach(sets: int, unit: int, stride: int) -> int:
    """The sets a strided walk reaches in a cache of ``sets`` sets of ``unit``-byte entries: rows a
    multiple of an entry apart reach ``sets / gcd(stride / unit, sets)``; others spread over all."""
    return sets if stride % unit else sets // math.gcd(stride // unit, sets)


def active(arch: Arch) -> bool:
    """Whether strips can cost anything on ``arch``: a cache L2 (``l2.ways``) with ``l2.gemm_strips``."""
    return arch.l2_cache is not None and arch.l2_cache.gemm_strips


def applies(arch: Arch, problem: Problem, x: int) -> bool:
    """Whether operand ``x``'s rows can be narrower than a line at a line-multiple stride: :func:`active`,
    and ``D_c · elem`` a multiple of the L2's line."""
    if not active(arch):
        return False
    c = OPERAND_DIMS[x][1]
    return problem.shape_key()[c] * _elem(arch, x) % arch.l2.line_bytes == 0  # type: ignore[union-attr]


def _narrow(arch: Arch, x: int, width) -> np.ndarray:
    """Whether operand ``x``'s tile rows of ``width`` elements are narrower than a line and a whole
    number of them fit one. Broadcasts."""
    line, w = arch.l2.line_bytes, np.asarray(width) * _elem(arch, x)  # type: ignore[union-attr]
    return (w < line) & (line % np.maximum(w, 1) == 0)


def narrow(arch: Arch, problem: Problem, T) -> bool:
    """Whether a local tile ``T`` (3 ints) can have a strip cost on ``arch``: some operand
    :func:`applies` and its tile rows are narrow."""
    return any(applies(arch, problem, x) and bool(_narrow(arch, x, T[OPERAND_DIMS[x][1]])) for x in range(2))


def _elem(arch: Arch, x: int) -> int:
    return (arch.datatypes.input_bytes, arch.datatypes.weight_bytes)[x]


def _rows_walked(code: np.ndarray, T_r: np.ndarray, f_r: np.ndarray, D_r: int) -> np.ndarray:
    """Rows of a strip code (module docstring): 0 the tile's ``T_r``, 1 ``T_r · f_r``, 2 all ``D_r``."""
    rows = np.where(code == 1, T_r * f_r, T_r)
    return np.where(code == 2, D_r, np.minimum(rows, D_r))


def _operand_terms(
    arch: Arch, problem: Problem, x: int, T: np.ndarray, f: np.ndarray, code, fills, memory_bytes, rows_narrow
) -> tuple[np.ndarray, np.ndarray]:
    """(extra memory bytes, extra memory cycles) of operand ``x`` (:func:`strip_terms`), whose tile rows
    are narrow where ``rows_narrow``."""
    l2, d = arch.l2_cache, arch.dram
    assert l2 is not None and l2.sets is not None
    D = problem.shape_key()
    r, c = OPERAND_DIMS[x]
    o = OTHER_DIM[x]
    line, elem = l2.line_bytes, _elem(arch, x)
    column, level, reload, outer = decode(code)
    # the share of loads that reload the tile of the iteration before (the inner other-dim loop)
    f_o = f[:, o]
    n1_o = -(-D[o] // T[:, o])
    bound = np.where(level == 1, f_o, -(-n1_o // f_o))
    # the loop reloads the tile only if the software reloads per call, or some row loop of the operand
    # is inside it (Timeloop residency keeps the tile across a loop below all of its own loops)
    reloads = (level > 0) & (arch.software.reload_operands | (reload > 0))
    share = np.where(reloads, (bound - 1) / np.maximum(bound, 1), 0.0)
    stride = D[c] * elem
    sets, ways = reach(l2.sets, line, stride), l2.ways
    cached = d.cache_kib is not None and d.miss_bytes_per_cycle is not None
    block = d.cache_block_bytes
    if d.cache_ways is None:  # any block anywhere: one set of all of them
        csets, cways = 1, max(d.cache_bytes // block, 2)
    else:
        csets, cways = reach(max(d.cache_bytes // (d.cache_ways * block), 1), block, stride), d.cache_ways
    rows = np.asarray(fills, dtype=np.float64) / (D[r] * D[c]) * D[r] * -(-D[c] // T[:, c])
    lines = np.zeros(len(T))
    refills = np.zeros(len(T))
    # a column tile whose line neighbour is reached by a step of the outer column loop (1 of the inner
    # loop's f_c iterations: the inner column loop is the L2-level one when an outer one exists) follows
    # the outer loop's strip
    wrap = np.where(outer > 0, 1.0 / np.maximum(f[:, c], 1), 0.0)
    for part, strip in ((1.0 - share) * (1.0 - wrap), column), ((1.0 - share) * wrap, outer - 1), (share, reload):
        walked = _rows_walked(strip, T[:, r], f[:, r], D[r])
        missed = rows * part * (1.0 - cyclic_hit_share(walked / sets, ways))
        lines = lines + missed
        if cached:
            refills = refills + missed * (1.0 - cyclic_hit_share(walked * min(1.0, stride / block) / csets, cways))
    cycles = refills * block * warm.miss_cycles_per_byte(arch, conv_shape(problem, arch)) if cached else refills
    over = np.ceil(np.maximum(lines * line - np.asarray(memory_bytes, dtype=np.float64), 0.0))
    return np.where(rows_narrow, over, 0.0), np.where(rows_narrow, cycles, 0.0)


def strip_terms(
    arch: Arch, problem: Problem, T: np.ndarray, f: np.ndarray, codes, local_fills, dram_bytes
) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    """((A's, B's extra memory bytes), extra memory cycles) of the operands' strips (module docstring)
    for local tiles ``T`` (n, 3), L2 factors ``f`` (n, 3; ones without an L2 level), packed strip
    ``codes`` (A's, B's: arrays of n, :func:`strip_code`), the operands' local fills ``local_fills``
    (A's, B's, in elements) and their memory bytes ``dram_bytes`` (A's, B's, after a warm L2's share).
    Both 0 where the mechanism does not apply; the bytes are what the missed lines exceed the
    operand's memory bytes by."""
    T = np.atleast_2d(np.asarray(T, dtype=np.int64))
    f = np.minimum(np.asarray(f, dtype=np.int64).reshape(-1, 3), -(-np.array(problem.shape_key()) // T))
    zero = np.zeros(len(T))
    extra_bytes, extra_cycles = [zero, zero], zero
    for x in range(2):
        rows_narrow = _narrow(arch, x, T[:, OPERAND_DIMS[x][1]]) if applies(arch, problem, x) else None
        if rows_narrow is not None and rows_narrow.any():  # else nothing to cost (most tiles)
            args = (codes[x], local_fills[x], dram_bytes[x], rows_narrow)
            extra_bytes[x], cycles = _operand_terms(arch, problem, x, T, f, *args)
            extra_cycles = extra_cycles + cycles
    return (extra_bytes[0], extra_bytes[1]), extra_cycles
