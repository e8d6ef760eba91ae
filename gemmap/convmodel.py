"""The conv cost model: a conv mapping (:class:`gemmap.conv.ConvMapping`) costed on the real tensors.

**Traffic** (Timeloop-style fills over the one software loop level of ``tiled_conv``). A tensor's
tile is refilled whenever a loop at or above its innermost relevant non-trivial loop advances; the
loops above that do not index the tensor multiply its fills::

    visits(X) = Vol(X) · Π_{d ∉ X, d above X's innermost relevant loop of bound > 1} ceil(D_d / T_d)

with ``Vol`` the sum over all tiles of the tensor's relevant dims of what one load moves:

* weights ``W[k,c,r,s]``: ``K·C·R·S`` (tiles partition it);
* outputs ``O[b,k,p,q]``: ``N·K·P·Q``; visits beyond it are partial-sum spills (reduction loops
  c, r, s above an output loop), each written out and read back at ``acc_bytes`` as in
  :mod:`gemmap.model`; the final write is ``output_bytes``. Gemmini's order ``bpqkrsc`` never spills;
* inputs ``I[b,c,h,w]``: ``N·C·RowSum·ColSum``, ``RowSum = Σ_{p-tiles} Σ_{r-tiles} rows_loaded``
  (:func:`gemmap.conv.rows_loaded`: Gemmini's window ``p_e·σ + (r_e − 1)·δ`` rows from
  ``p0·σ + r0·δ − pad``, clipped to ``[0, H)`` — padding rows are zero-filled, not fetched;
  ``p_e`` rows when downsampling). Halo overlap between neighbouring tiles is fetched again
  (Gemmini reloads the whole window per tile).

**Operand reloads.** With ``arch.software.reload_operands`` (Gemmini's software), every
``sp_tiled_conv`` call mvins its whole input window and weight tile (gemmini.h:2415-2450), so
``visits(X) = Vol(X) · Π_{d ∉ X} ceil(D_d/T_d)`` whatever the order — except Gemmini's
``a_reuse``/``b_reuse`` (gemmini.h:2302-2318, 2337-2340, 2411-2412): a tensor cut into at most
2 tiles keeps them in the two scratchpad halves and is moved once (``Vol(X)``). Without it, the
Timeloop residency above applies.

Convs have no L2 tiling level (``tiled_conv`` has one software level), so on an arch with an L2
the L2 tile is the local tile, as :mod:`gemmap.model` with L2 factors 1: the local level is filled
as above (reloads included) and DRAM → L2 with Timeloop residency over the same loops.

**L2 sets.** When the L2 is a set-associative cache (``l2.ways``), a weight tile whose rows are
narrower than a line and a whole number of them per line (``k_t`` bytes at a DRAM stride of K
bytes, a multiple of the line) puts one line per row into the sets that stride reaches,
``sets / gcd(K / line, sets)`` of them; a tile with more rows (``r_t·s_t·c_t``) than those sets hold
(× ``ways``) cannot stay in the L2 between the tiles that reload it, so every reload comes from
memory, a whole line per row: ``R·S·C · n_k · line`` bytes per pass over the weights instead of the
residency above (inclusive-cache set index = the address bits above the line offset:
rocket-chip-inclusive-cache @850e121 Parameters.scala; 16-byte rows at a 1 KiB stride reach 64 of
1,024 sets). Inputs and outputs are not treated so.

**Output-line re-fetches.** A cache L2 that write-allocates (``l2.ways``, ``l2.write_allocate``) fetches
an output line before a mvout row narrower than it (:mod:`gemmap.dma`, Write-allocate: at least once per
line of an output larger than the L2, in the DMA's store rate). With the output-channel loop outside
other non-trivial loops, one of its iterations touches the data of every loop inside it (extents: the
whole dim for loops inside, one tile otherwise): an output line per pixel, the input window (a line per
pixel at least) and the weights (a line per row at least). When that exceeds the L2, the lines an
output-channel slice wrote are gone when the next slice writes the rest of them, so every slice fetches
and writes back each of its lines: ``N·P·Q·Σ_k ⌈k_e·out/line⌉`` lines at ``2·line / dram.bytes_per_cycle``
cycles, a floor under the store stream (:func:`refetch_store_floor`; the L2's random replacement keeps
some lines, so this is the step a cyclic walk over more than the capacity takes). The order classes of
:mod:`gemmap.convspace` key the loops inside the output-channel loop on such an arch.

**Compute** (LoopConvExecute, LoopConv.scala:792-815). Per tile, Gemmini preloads
``F = ceil(k_e/DIM)·r_e·ceil(s_e/ppr)·ceil(c_e/DIM)`` DIM×DIM weight blocks
(:func:`gemmap.conv.weight_blocks`; ppr = ``max_pixels_per_row``) and streams the tile's
``b_e·p_e·q_e`` output pixels through each, one output row at a time in compute requests of
``min(DIM, ocols − ocol)`` pixels: :func:`gemmap.model.stream_ticks` with ``b_e·p_e`` lines of
``q_e`` rows (the first request carries the preload; ExecuteController floors each at 4 rows,
ExecuteController.scala:285-301), plus the array's skew once per layer.

**Time and energy**: :func:`gemmap.model.combine` on :class:`gemmap.model.LocalTerms` (built in
:func:`_local_terms` only) and :class:`gemmap.model.Moved`, with DMA cycles per byte
(:mod:`gemmap.dma`) of LoopConv's rows: input rows of ``c_t`` channels at DRAM stride C
(LoopConvLdInput, one row per pixel), weight rows of ``k_t`` output channels at stride K
(LoopConvLdWeight), output rows of ``min(k_t, DIM)`` channels at stride K (LoopConvSt,
LoopConv.scala:901-902), partial sums out as outputs at ``acc_bytes`` and back as rows of ``k_t``;
the conv's stationary bytes ``n_b·n_p·n_q·K·C·R·S``, scratchpad
reads ``nb_k·N·P·Q·C·R·S + n_b·n_p·n_q·K·C·R·S`` (im2col rows read once per output-channel
block), accumulations ``KF·N·K·P·Q`` (``KF`` = weight blocks along the reduction).

**Bounds** on the real tensors: compulsory = the input pixels some output reads + weights +
outputs (conv1 of ResNet-50: 150,528 + 9,408 + 802,816 B ≈ 0.96 MB, not the im2col 2.66 MB);
lower bound = compulsory, and for 1×1 kernels (a matmul on the touched pixels) also the
Hong–Kung matmul bound of :func:`gemmap.model.dram_lower_bound`. (A conv-specific pebbling bound
for larger kernels is not implemented.)

A matmul (``problem.conv is None``) is the conv special case p = M, c = K, k = N; on it the
model's traffic, cycles and energy terms equal :func:`gemmap.model.evaluate` (tests check it).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math

import numpy as np

from gemmap import conv_ring, convseq, dma, model, strips, warm
from gemmap.arch import Arch, ceil_div
from gemmap.conv import (
    DIMS,
    ORDER_DIMS,
    ORDER_INDEX,
    ORDER_POS,
    RELEVANT,
    ConvMapping,
    ConvMappingBatch,
    ConvShape,
    cols_loaded,
    conv_shape,
    pixels_per_row,
    rows_loaded,
    weight_blocks,
    window_lines,
    window_sum_cols,
    window_sum_rows,
)
from gemmap.conv import invalid_reason as conv_invalid_reason
from gemmap.mapping import Mapping
from gemmap.mapping import invalid_reason as gemm_invalid_reason
from gemmap.model import BatchCost, Cost, LocalTerms, Moved, Traffic, pipelined
from gemmap.workload import Problem

TENSORS = ("A", "B", "C")  # input, weights, output (model.py's names)
_B, _P, _Q, _K, _R, _S, _C = range(7)


# --- bounds ------------------------------------------------------------------------------


def compulsory_by_tensor(arch: Arch, problem: Problem) -> dict[str, int]:
    """DRAM bytes each tensor moves at least once: A the input pixels some output reads, B the
    weights, C the outputs (a matmul, as the conv special case, gives M·K, K·N, M·N)."""
    return dict(zip("ABC", warm.compulsory_by_tensor(arch, problem)))


def compulsory_dram_bytes(arch: Arch, problem: Problem) -> int:
    """Touched input pixels, weights and outputs, each moved once (module docstring, Bounds)."""
    return sum(warm.compulsory_by_tensor(arch, problem))


def dram_lower_bound(arch: Arch, problem: Problem) -> int:
    """Compulsory traffic; for 1×1 kernels also the Hong–Kung matmul bound (module docstring)."""
    shape = conv_shape(problem, arch)
    comp = compulsory_dram_bytes(arch, problem)
    if shape.r == 1 and shape.s == 1:
        return max(comp, model.dram_lower_bound(arch, problem))
    return comp


# --- shared construction -----------------------------------------------------------------


def dma_rates(arch: Arch, shape: ConvShape, k_t, c_t, q_t, s_t) -> tuple[np.ndarray, ...]:
    """DMA cycles per useful byte (module docstring, Time and energy) of input, weight, output and
    partial-sum (out and back, and out alone) rows, for tiles of ``k_t`` output and ``c_t`` input
    channels, ``q_t`` output columns and ``s_t`` kernel columns (the rows each command moves: a
    tile row's input pixels, its ``c_t`` weight rows, its output pixels)."""
    t = arch.datatypes
    k_t, c_t = np.asarray(k_t, dtype=np.int64), np.asarray(c_t, dtype=np.int64)
    q_t, s_t = np.asarray(q_t, dtype=np.int64), np.asarray(s_t, dtype=np.int64)
    k_st = np.minimum(k_t, arch.dim_cols)
    icols = q_t if shape.downsample else q_t * shape.stride + (s_t - 1) * shape.dilation  # gemmini.h icols_
    a = dma.read_cycles_per_byte(
        arch, c_t * t.input_bytes, shape.c * t.input_bytes, rows=icols, element_bytes=t.input_bytes
    )
    b = dma.read_cycles_per_byte(
        arch, k_t * t.weight_bytes, shape.k * t.weight_bytes, rows=c_t, element_bytes=t.weight_bytes
    )
    out_bytes = shape.output_elems * t.output_bytes
    out = dma.write_cycles_per_byte(arch, k_st * t.output_bytes, shape.k * t.output_bytes, tensor_bytes=out_bytes)
    psum_out = dma.write_cycles_per_byte(arch, k_st * t.acc_bytes, shape.k * t.acc_bytes, tensor_bytes=0)
    psum = psum_out + dma.read_cycles_per_byte(
        arch, k_t * t.acc_bytes, shape.k * t.acc_bytes, rows=q_t, element_bytes=t.acc_bytes
    )
    return a, b, out, psum, psum_out


def _moved(arch: Arch, shape: ConvShape, vA, vB, vC) -> Moved:
    """Bytes across the local boundary from the visits of input, weights and outputs."""
    t = arch.datatypes
    out_elems = shape.output_elems
    return Moved(vA * t.input_bytes, vB * t.weight_bytes, out_elems * t.output_bytes, (vC - out_elems) * t.acc_bytes)


def _local_terms(
    compute: np.ndarray,
    prologue: np.ndarray,
    epilogue: np.ndarray,
    first_lift: np.ndarray,
    memory_extra: float,
    stationary: np.ndarray,
    spad_reads: np.ndarray,
    accumulations: np.ndarray,
    db_spad: np.ndarray,
    db_acc: np.ndarray,
    rates: tuple[np.ndarray, ...],
    issue: np.ndarray,
    latency: np.ndarray,
    extra_load: np.ndarray | float = 0.0,
    store_floor: np.ndarray | float = 0.0,
    sequence_floor: np.ndarray | float = 0.0,
) -> LocalTerms:
    """The one place a conv builds :class:`gemmap.model.LocalTerms` (by keyword)."""
    a_cpb, b_cpb, out_cpb, psum_cpb, psum_out_cpb = rates
    return LocalTerms(
        compute=compute,
        prologue=prologue,
        epilogue=epilogue,
        first_lift=first_lift,
        memory_extra=memory_extra,
        stationary=stationary,
        spad_reads=spad_reads,
        accumulations=accumulations,
        db_spad=db_spad,
        db_acc=db_acc,
        a_cpb=a_cpb,
        b_cpb=b_cpb,
        out_cpb=out_cpb,
        psum_cpb=psum_cpb,
        psum_out_cpb=psum_out_cpb,
        issue=issue,
        latency=latency,
        extra_load=extra_load,
        store_floor=store_floor,
        sequence_floor=sequence_floor,
    )


# --- the scalar path ---------------------------------------------------------------------


def _multiplier(
    loops: list[tuple[int, int]], relevant: tuple[bool, ...], reload: bool = False, small: bool = True
) -> int:
    """Π of the bounds of loops not indexing the tensor above its innermost relevant loop of bound > 1
    (``reload``: of all loops not indexing it, or 1 when its own tiles number ≤ 2)."""
    if reload:
        own = math.prod(bound for d, bound in loops if relevant[d])
        return 1 if small and own <= 2 else math.prod(bound for d, bound in loops if not relevant[d])
    inner = -1
    for pos, (d, bound) in enumerate(loops):
        if relevant[d] and bound > 1:
            inner = pos
    out = 1
    for d, bound in loops[: inner + 1]:
        if not relevant[d]:
            out *= bound
    return out


def weight_tiles_spill(arch: Arch, shape: ConvShape, k_t, r_t, s_t, c_t) -> np.ndarray:
    """Whether weight tiles of ``k_t`` output channels and ``r_t·s_t·c_t`` rows cannot stay in a
    set-associative L2 between reloads (module docstring, L2 sets). Broadcasts; False without one."""
    l2 = arch.l2_cache
    k_t = np.asarray(k_t, dtype=np.int64)
    if l2 is None or l2.sets is None:
        return np.zeros(k_t.shape, dtype=bool)
    line, w = l2.line_bytes, arch.datatypes.weight_bytes
    stride = shape.k * w
    if stride % line:
        return np.zeros(k_t.shape, dtype=bool)
    reach = strips.reach(l2.sets, line, stride)
    width = k_t * w
    rows = np.asarray(r_t, dtype=np.int64) * np.asarray(s_t, dtype=np.int64) * np.asarray(c_t, dtype=np.int64)
    return (width < line) & (line % np.maximum(width, 1) == 0) & (rows > reach * l2.ways)


def spilled_weight_bytes(arch: Arch, shape: ConvShape, k_t, r_t, s_t, c_t, n_k) -> np.ndarray:
    """Memory bytes of one reload of every weight tile when they spill (:func:`weight_tiles_spill`),
    a line per row: ``R·S·C · n_k · line``; 0 where the tiles stay in the L2. Broadcasts."""
    spill = weight_tiles_spill(arch, shape, k_t, r_t, s_t, c_t)
    line = 0 if arch.l2 is None else arch.l2.line_bytes
    return np.where(spill, shape.r * shape.s * shape.c * np.asarray(n_k, dtype=np.int64) * line, 0)


def zero_fill_cycles(arch: Arch, shape: ConvShape, nb_k):
    """Load-path cycles of LoopConvLdBias zero-filling every output tile's accumulator rows once (its
    first reduction tile; ``software.conv_bias_zero_fill``): ``N·P·Q·nb_k`` DIM-wide rows, one per
    cycle (``nb_k`` = Σ over output-channel tiles of ceil(k_e / DIM)). Broadcasts."""
    if not arch.software.conv_bias_zero_fill:
        return 0.0 * np.asarray(nb_k, dtype=np.float64)
    return np.asarray(shape.n * shape.p * shape.q * nb_k, dtype=np.float64)


def refetch_lines(
    arch: Arch, shape: ConvShape, T: np.ndarray, n: np.ndarray, order: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(lines, footprint) of the output-line re-fetches (module docstring, Output-line re-fetches) of
    tiles ``T`` (m, 7) with counts ``n`` (m, 7) under orders ``order`` (m,, indices into ORDERS): the
    lines every output-channel slice fetches and writes back, and the bytes one of its iterations
    touches; lines 0 where they do not happen."""
    T, n = np.atleast_2d(T), np.atleast_2d(n)
    t = arch.datatypes
    if not dma.write_allocates(arch) or shape.k * t.output_bytes < arch.l2.line_bytes:  # type: ignore[union-attr]
        return np.zeros(len(T)), np.zeros(len(T))
    l2 = arch.l2
    line = l2.line_bytes  # type: ignore[union-attr]
    D = np.array(shape.dims, dtype=np.int64)
    pos = ORDER_POS[np.asarray(order, dtype=np.int64)]  # each dim's position in the order, outermost 0
    inside = pos > pos[:, [_K]]
    E = np.where(inside, D, np.minimum(T, D))
    b, p, q, r, s, c = (E[:, j] for j in (_B, _P, _Q, _R, _S, _C))
    rows = np.minimum(p * shape.stride + (r - 1) * shape.dilation, shape.input_rows)
    cols = np.minimum(q * shape.stride + (s - 1) * shape.dilation, shape.input_cols)
    k_t = np.minimum(T[:, _K], shape.k)
    footprint = (
        b * p * q * line  # an output line per pixel
        + b * rows * cols * np.maximum(c * t.input_bytes, line)  # the input window, a line per pixel at least
        + r * s * c * np.maximum(k_t * t.weight_bytes, line)  # the weights, a line per row at least
    )
    last = shape.k - (n[:, _K] - 1) * k_t
    lines = (
        shape.n
        * shape.p
        * shape.q
        * ((n[:, _K] - 1) * -(-k_t * t.output_bytes // line) + -(-last * t.output_bytes // line))
    )
    partial = np.minimum(k_t, arch.dim_cols) * t.output_bytes < line
    applies = partial & (n[:, _K] > 1) & (footprint > l2.bytes)  # type: ignore[union-attr]
    return np.where(applies, lines, 0), footprint


def refetch_store_floor(arch: Arch, shape: ConvShape, T: np.ndarray, n: np.ndarray, order: np.ndarray) -> np.ndarray:
    """The fewest store cycles of output-line re-fetches (module docstring, Output-line re-fetches) of
    tiles ``T`` (m, 7) with counts ``n`` (m, 7) under orders ``order`` (m,, indices into ORDERS); 0
    where they do not happen: :func:`refetch_lines`, each fetched and written back at the hit rate."""
    return _store_floor(arch, refetch_lines(arch, shape, T, n, order)[0])


def _store_floor(arch: Arch, lines: np.ndarray) -> np.ndarray:
    """Store cycles of re-fetching ``lines`` output lines: a fetch and a write-back each at the hit rate."""
    if not lines.any():
        return np.zeros(len(lines))
    return lines * 2 * arch.l2.line_bytes / arch.dram.bytes_per_cycle  # type: ignore[union-attr]


def allocate_memory_cycles(
    arch: Arch, problem: Problem, shape: ConvShape, k_t: np.ndarray, lines: np.ndarray, footprint: np.ndarray
) -> np.ndarray:
    """Memory cycles of the L2's write-allocate traffic (:func:`gemmap.warm.allocate_memory_cycles`) of
    tiles of ``k_t`` output channels (m,) with the output-line re-fetches ``lines`` over ``footprint``
    (m,: :func:`refetch_lines`): the output's lines fetched once where its mvout rows (``min(k_t, DIM)``
    channels) are narrower than a line or where they are re-fetched (whose first slice fetches them
    too, the output larger than the L2 or not), and the re-fetched lines beyond those. Broadcasts over m."""
    k_t = np.asarray(k_t, dtype=np.int64)
    if arch.l2 is None or not arch.l2.allocate_through_memory or not dma.write_allocates(arch):
        return np.zeros(k_t.shape)
    t = arch.datatypes
    out_bytes = shape.output_elems * t.output_bytes
    distinct = -(-out_bytes // arch.l2.line_bytes)
    once = dma.allocate_fetch_lines(arch, np.minimum(k_t, arch.dim_cols) * t.output_bytes, out_bytes)
    first = np.where(lines > 0, float(distinct), once)
    again = np.where(lines > 0, np.maximum(lines - distinct, 0), 0)
    return warm.allocate_memory_cycles(arch, problem, first, again, footprint)


def _store_terms(
    arch: Arch, problem: Problem, shape: ConvShape, T: np.ndarray, n: np.ndarray, order: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(store floor, write-allocate memory cycles) of tiles ``T`` (m, 7) with counts ``n`` under
    orders ``order`` (m,), from one :func:`refetch_lines`."""
    lines, footprint = refetch_lines(arch, shape, T, n, order)
    return _store_floor(arch, lines), allocate_memory_cycles(arch, problem, shape, T[:, _K], lines, footprint)


def cache_reload_cycles(
    arch: Arch, shape: ConvShape, T: np.ndarray, n: np.ndarray, order: np.ndarray, reload_a, reload_b
) -> np.ndarray:
    """Memory cycles beyond the hit rate of input and weight reloads (``reload_a``, ``reload_b``: their
    bytes beyond the first pass, (m,)) that miss a memory-side cache (``dram.cache_kib``), for tiles
    ``T`` (m, 7) with counts ``n`` under orders ``order`` (m,). A tensor is re-walked by the innermost
    non-trivial loop that does not index it above its innermost non-trivial relevant loop; between two
    walks the data of every loop inside that one pass through the cache (each dim inside at its full
    extent, the others one tile: input window, weights and outputs), and a random-victim cache keeps
    the share :func:`gemmap.warm.kept_shares` of such a pass; the rest of each reload comes at the miss
    rate (gemmap/warm.py, "Memory-side cache"). 0 without a cache. Broadcasts over m.

    Simplifications (docs/model.md): every reload is charged at the innermost re-walking loop's
    footprint, though reloads driven by an outer one re-walk more (under-counted) and per-call reloads
    below the innermost relevant loop re-walk less (over-counted); partial-sum spills stay at the hit
    rate; the window counts padding rows and ignores the downsample mode, spilled weight rows count
    their bytes, not a line each, and the wrapped loader's reads are left out."""
    T, n = np.atleast_2d(T), np.atleast_2d(n)
    per_byte = warm.miss_cycles_per_byte(arch, shape)
    if per_byte == 0.0:
        return np.zeros(len(T))
    t = arch.datatypes
    D = np.array(shape.dims, dtype=np.int64)
    pos = ORDER_POS[np.asarray(order, dtype=np.int64)]  # each dim's position in the order, outermost 0
    live = n > 1
    total = np.zeros(len(T))
    for name, reload in (("A", reload_a), ("B", reload_b)):
        rel = _REL[name][None, :]
        inner = np.max(np.where(rel & live, pos, -1), axis=1)  # innermost non-trivial relevant loop
        walk = np.max(np.where(~rel & live & (pos < inner[:, None]), pos, -1), axis=1)  # the loop re-walking it
        E = np.where(pos > walk[:, None], D, np.minimum(T, D))
        b, p, q, k, r, s, c = (E[:, j] for j in (_B, _P, _Q, _K, _R, _S, _C))
        rows = np.minimum(p * shape.stride + (r - 1) * shape.dilation, shape.input_rows)
        cols = np.minimum(q * shape.stride + (s - 1) * shape.dilation, shape.input_cols)
        footprint = (
            b * c * rows * cols * t.input_bytes + k * c * r * s * t.weight_bytes + b * p * q * k * t.output_bytes
        )
        missed = 1.0 - warm.kept_shares(arch.dram.cache_bytes, arch.dram.cache_ways, footprint)
        total = total + np.where(walk >= 0, np.asarray(reload, dtype=np.float64) * missed, 0.0)
    return total * per_byte


@functools.lru_cache(maxsize=65536)
def _input_volume(shape: ConvShape, T: tuple[int, ...]) -> int:
    """Input elements moved by one pass over all input tiles: N·C·RowSum·ColSum (pure; cached)."""
    return shape.n * shape.c * window_sum_rows(shape, T[_P], T[_R]) * window_sum_cols(shape, T[_Q], T[_S])


def evaluate_conv(arch: Arch, problem: Problem, m: ConvMapping) -> Cost:
    """Cost of one conv mapping with its breakdown; ``m`` must be valid (conv.invalid_reason)."""
    shape = conv_shape(problem, arch)
    t = arch.datatypes
    Ra, Ca = arch.dim_rows, arch.dim_cols
    D, T = shape.dims, m.tile
    n = [ceil_div(d, x) for d, x in zip(D, T)]
    loops = [(DIMS.index(ch), n[DIMS.index(ch)]) for ch in m.order]
    out_elems = shape.output_elems
    reload, small = arch.software.reload_operands, arch.software.reuse_small_operands
    mult_a = _multiplier(loops, RELEVANT["A"], reload, small)
    vA = _input_volume(shape, T) * mult_a
    ring_cycles, ring_memory = (float(x[0]) * mult_a for x in conv_ring.ring_terms(arch, shape, np.array([T])))
    mult_b = _multiplier(loops, RELEVANT["B"], reload, small)
    vB = shape.weight_elems * mult_b
    vC = out_elems * _multiplier(loops, RELEVANT["C"])
    spill = vC - out_elems

    def boundary(level: str, va: int, vb: int, vb_bytes: int | None = None, ring: int = 0) -> list[Traffic]:
        return [
            Traffic("A", level, va, va * t.input_bytes + ring, 0),
            Traffic("B", level, vb, vb * t.weight_bytes if vb_bytes is None else vb_bytes, 0),
            Traffic("C", level, vC, spill * t.acc_bytes, out_elems * t.output_bytes + spill * t.acc_bytes),
        ]

    ring_bytes = int(ring_memory)  # a wrapped loader's reads past the tensor, from memory (conv_ring.py)
    traffic = boundary("local", vA, vB, ring=ring_bytes)
    dram_side = traffic
    mult_a2, mult_b2, per_reload = mult_a, mult_b, 0  # the memory side's multipliers (the local ones without an L2)
    if arch.l2 is not None:
        mult_a2, mult_b2 = _multiplier(loops, RELEVANT["A"]), _multiplier(loops, RELEVANT["B"])
        vA2 = _input_volume(shape, T) * mult_a2
        vB2 = shape.weight_elems * mult_b2
        vB2_bytes = None
        per_reload = int(spilled_weight_bytes(arch, shape, T[_K], T[_R], T[_S], T[_C], n[_K]))
        if per_reload:
            vB2 = vB
            vB2_bytes = per_reload * (vB // shape.weight_elems)
        dram_side = boundary("l2", vA2, vB2, vB2_bytes, ring_bytes)
        traffic = traffic + dram_side
    kept = dict(zip(TENSORS, warm.warm_by_tensor(arch, problem)))  # first fills the L2 serves (l2.warm_start)
    dram_by_tensor = {x.tensor: x.bytes_in + x.bytes_out - kept[x.tensor] for x in dram_side}
    moved = _moved(arch, shape, vA, vB, vC)
    spad_bytes, acc_bytes = int(moved.spad), int(moved.acc)
    dram_bytes = sum(dram_by_tensor.values())
    l2_total = spad_bytes + acc_bytes + dram_bytes if arch.l2 is not None else 0

    # compute in ticks (model.ticks_per_cycle), on every distinct tile (at most 2 extents per dim)
    q1, edge = model.ticks_per_cycle(arch), model.edge_cycles(arch, "ws")
    ticks = 0
    per_dim = [model.tile_extents(d, x) for d, x in zip(D, T)]
    for combo in itertools.product(*per_dim):
        count = math.prod(c for _, c in combo)
        if count == 0:
            continue
        b, p, q, k, r, s, c = (x for x, _ in combo)
        folds = weight_blocks(arch, shape, k, r, s, c)
        if arch.pe_array.stationary_overlap:
            ticks += count * (edge * q1 + folds * int(model.stream_ticks(arch, q, b * p)))
        else:
            ticks += count * folds * (edge + b * p * q) * q1
    n_tiles = math.prod(n)
    if pipelined(arch):  # the fill/drain skew once per layer (model.py, Compute)
        ticks -= (n_tiles - 1) * edge * q1
    compute = ticks / q1

    # traffic-independent terms
    n_bpq = n[_B] * n[_P] * n[_Q]
    nb_k = sum(ceil_div(x, Ca) * c for x, c in per_dim[_K])
    extra_load = ring_cycles + zero_fill_cycles(arch, shape, nb_k)
    kf = shape.r * sum(
        ceil_div(se, pixels_per_row(arch, shape, ce, se)) * ceil_div(ce, Ra) * cs * cc
        for se, cs in per_dim[_S]
        for ce, cc in per_dim[_C]
    )
    im2col = shape.n * shape.p * shape.q * shape.c * shape.r * shape.s
    stationary = n_bpq * shape.weight_elems * t.weight_bytes
    spad_reads = nb_k * im2col * t.input_bytes + stationary
    accumulations = kf * out_elems
    rates = dma_rates(arch, shape, *(np.array([T[j]]) for j in (_K, _C, _Q, _S)))
    a_cpb, b_cpb, out_cpb, psum_cpb, psum_out_cpb = (float(x[0]) for x in rates)
    first_in = T[_B] * T[_C] * rows_loaded(shape, 0, T[_P], 0, T[_R]) * cols_loaded(shape, 0, T[_Q], 0, T[_S])
    first_w = T[_K] * T[_C] * T[_R] * T[_S]
    first_load = first_in * t.input_bytes * a_cpb + first_w * t.weight_bytes * b_cpb
    prologue = first_load if m.db_spad else 0.0
    first_lift = model.first_load_lift(arch, problem, first_in * t.input_bytes + first_w * t.weight_bytes, first_load)
    last = [d - (k - 1) * x for d, k, x in zip(D, n, T)]
    epilogue = last[_B] * last[_P] * last[_Q] * last[_K] * t.output_bytes * out_cpb if m.db_acc else 0.0

    def arr(x: float | int | bool) -> np.ndarray:
        return np.array([x])

    order_1 = arr(ORDER_INDEX[m.order])
    store_floor, allocate = _store_terms(arch, problem, shape, np.array([T]), np.array([n]), order_1)
    memory_extra = warm.cache_miss_cycles(arch, problem) + allocate
    if warm.miss_cycles_per_byte(arch, shape):  # reloads that miss a memory-side cache (cache_reload_cycles)
        reload_a = _input_volume(shape, T) * (mult_a2 - 1) * t.input_bytes
        reload_b = per_reload * (mult_b - 1) if per_reload else shape.weight_elems * (mult_b2 - 1) * t.weight_bytes
        memory_extra = memory_extra + cache_reload_cycles(
            arch, shape, np.array([T]), np.array([n]), order_1, arr(reload_a), arr(reload_b)
        )

    sw = arch.software

    floor = convseq.sequence_floor(arch, problem, ConvMappingBatch.from_mappings([m]))
    lt = _local_terms(
        arr(compute), arr(prologue), arr(epilogue), arr(first_lift), memory_extra,
        arr(stationary), arr(spad_reads), arr(accumulations),
        arr(m.db_spad), arr(m.db_acc), rates, arr(model.host_issue_cycles(sw.conv_tile_issue_cycles, sw.conv_loop_issue_cycles, n)),
        arr(n_tiles * model.tile_latency(arch)), arr(extra_load), store_floor, floor,
    )  # fmt: skip
    moved_1 = Moved(arr(moved.a), arr(moved.b), arr(moved.out), arr(moved.psum))
    bc = model.combine(arch, problem, lt, moved_1, arr(dram_bytes), arr(l2_total))
    cycles = int(bc.cycles[0])

    t_load, t_store, t_spad, t_acc = model.phase_cycles(
        moved, a_cpb, b_cpb, out_cpb, psum_cpb, psum_out_cpb, extra_load, float(store_floor[0])
    )
    latency = n_tiles * model.tile_latency(arch)
    core = float(
        model.core_cycles(compute, t_load, t_store, t_spad, t_acc, m.db_spad, m.db_acc, float(lt.issue[0]), latency)
    )
    core = max(core + prologue + epilogue + float(first_lift), float(floor[0]))
    macs = shape.macs
    breakdown = model.energy_breakdown(
        arch, macs, stationary, spad_reads + spad_bytes, accumulations, acc_bytes, l2_total, dram_bytes, cycles
    )
    return Cost(
        macs=macs,
        cycles=cycles,
        compute_cycles=compute,
        local_transfer_cycles=t_load + t_store,
        exposed_transfer_cycles=core - compute,
        dram_cycles=float(np.max(model.memory_cycles(arch, dram_bytes, memory_extra))),
        energy_pj=float(bc.energy_pj[0]),
        energy_breakdown=breakdown,
        dram_bytes=dram_bytes,
        dram_bytes_by_tensor=dram_by_tensor,
        compulsory_dram_bytes=compulsory_dram_bytes(arch, problem),
        dram_bytes_lower_bound=dram_lower_bound(arch, problem),
        traffic=tuple(traffic),
        ideal_cycles=macs / (Ra * Ca),
        sequence_cycles=float(floor[0]),
    )


# --- the batched path --------------------------------------------------------------------

_REL = {x: np.array(RELEVANT[x], dtype=bool) for x in TENSORS}


def _multipliers(
    n: np.ndarray, order: np.ndarray, relevant: np.ndarray, reload: bool = False, small: bool = True
) -> np.ndarray:
    """Vectorised :func:`_multiplier`: n (m, 7) tile counts, order (m,) indices into ORDERS."""
    if reload:
        own = np.prod(np.where(relevant[None, :], n, 1), axis=1)
        return np.where(small & (own <= 2), 1, np.prod(np.where(relevant[None, :], 1, n), axis=1))
    od = ORDER_DIMS[order]  # (m, 7) dim at each position
    bounds = np.take_along_axis(n, od, axis=1)
    rel = relevant[od]
    live = rel & (bounds > 1)
    has = live.any(axis=1)
    inner = np.where(has, 6 - np.argmax(live[:, ::-1], axis=1), -1)
    above = np.arange(7)[None, :] <= inner[:, None]
    return np.prod(np.where(above & ~rel, bounds, 1), axis=1)


def _window_sums(out: int, kern: int, tiles: np.ndarray, ktiles: np.ndarray, shape: ConvShape, axis: int):
    """Σ over (output tile, kernel tile) pairs of the DRAM-fetched window extent, per mapping.

    Computed once per distinct (tile, kernel tile) pair with numpy over all tile starts
    (:func:`gemmap.conv.window_lines`).
    """
    code = np.asarray(tiles, dtype=np.int64) * (kern + 1) + np.asarray(ktiles, dtype=np.int64)
    pairs, inverse = np.unique(code, return_inverse=True)
    sums = np.empty(len(pairs), dtype=np.int64)
    for i, pair in enumerate(pairs.tolist()):
        ot, kt = divmod(pair, kern + 1)
        o0 = np.arange(0, out, ot)[:, None]
        k0 = np.arange(0, kern, kt)[None, :]
        oe, ke = np.minimum(ot, out - o0), np.minimum(kt, kern - k0)
        lines = window_lines(shape, axis == 0, o0, oe, k0, ke)
        sums[i] = int(np.broadcast_to(lines, (len(o0), k0.shape[1])).sum())
    return sums[inverse.reshape(-1)]


def _ppr(arch: Arch, shape: ConvShape, c_e: np.ndarray, s_e: np.ndarray) -> np.ndarray:
    """Vectorised :func:`gemmap.conv.pixels_per_row`."""
    if shape.dilation > 1 or shape.downsample or not arch.software.first_layer_optimizations:
        return np.ones_like(c_e)
    R = arch.dim_rows
    return np.where(c_e > R, 1, np.maximum(1, np.minimum(R // np.maximum(c_e, 1), s_e)))


@dataclasses.dataclass(frozen=True)
class TileTerms:
    """The part of the cost of conv tiles ``T`` (m, 7) that neither the loop order nor the
    buffering changes: tile counts, the input volume of one pass over all input tiles
    (``N·C·RowSum·ColSum``), array cycles, the exposed first load / last store (paid when the
    scratchpad / accumulator is double-buffered), on-chip access counts and DMA rates."""

    n: np.ndarray  # (m, 7) tile counts
    vol_a: np.ndarray
    compute: np.ndarray
    first_load: np.ndarray
    last_store: np.ndarray
    first_lift: np.ndarray  # the first load's cycles beyond its DMA time, from memory (model.first_load_lift)
    memory_extra: float  # memory cycles of first fills that miss a memory-side cache (warm.cache_miss_cycles)
    stationary: np.ndarray
    spad_reads: np.ndarray
    accumulations: np.ndarray
    rates: tuple[np.ndarray, ...]
    issue: np.ndarray  # host cycles to issue every tile
    latency: np.ndarray  # every tile's fixed phase latencies (model.tile_latency), summed
    b_spill_bytes: np.ndarray  # memory bytes per weight reload when a cache L2 cannot keep them, else 0
    ring_load: np.ndarray  # load cycles of the loader's wrapped rings per pass over the input tiles (conv_ring.py)
    ring_memory: np.ndarray  # their memory bytes per pass
    zero_fill: np.ndarray  # load cycles of the accumulator zero-fill, once per output tile (zero_fill_cycles)

    def column(self) -> TileTerms:
        """The per-tile arrays as (m, 1) columns, to broadcast against (1, b) buffering choices."""

        def col(x: np.ndarray) -> np.ndarray:
            return np.asarray(x).reshape(-1, 1)

        return TileTerms(
            self.n, col(self.vol_a), col(self.compute), col(self.first_load), col(self.last_store), col(self.first_lift),
            self.memory_extra,
            col(self.stationary), col(self.spad_reads), col(self.accumulations),
            tuple(col(r) for r in self.rates), col(self.issue), col(self.latency),  # type: ignore[arg-type]
            col(self.b_spill_bytes), col(self.ring_load), col(self.ring_memory), col(self.zero_fill),
        )  # fmt: skip

    def buffered(self, db_spad: np.ndarray, db_acc: np.ndarray) -> LocalTerms:
        """:class:`gemmap.model.LocalTerms` under the given buffering (arrays broadcast)."""
        return _local_terms(
            self.compute, np.where(db_spad, self.first_load, 0.0), np.where(db_acc, self.last_store, 0.0), self.first_lift,
            self.memory_extra,
            self.stationary, self.spad_reads, self.accumulations, db_spad, db_acc, self.rates, self.issue,
            self.latency, self.zero_fill,
        )  # fmt: skip


def tile_terms(arch: Arch, problem: Problem, T: np.ndarray) -> TileTerms:
    """:class:`TileTerms` of conv tiles ``T`` (m, 7) in :data:`gemmap.conv.DIMS` order."""
    shape = conv_shape(problem, arch)
    t = arch.datatypes
    Ra, Ca = arch.dim_rows, arch.dim_cols
    D = np.array(shape.dims, dtype=np.int64)
    n = -(-D // T)
    last = D - (n - 1) * T
    rows = _window_sums(shape.p, shape.r, T[:, _P], T[:, _R], shape, 0)
    cols = _window_sums(shape.q, shape.s, T[:, _Q], T[:, _S], shape, 1)

    # compute, separable: Σ_tiles F·max(em, R) = S_bpq · Σ_k ceil(k_e/C) · R_kernel · Σ_{c,s} ceil(s_e/ppr)·ceil(c_e/R)
    def ext(j: int) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(T[:, j], n[:, j] - 1), (last[:, j], np.ones_like(n[:, j]))]

    nb_k = sum(-(-x // Ca) * c for x, c in ext(_K))
    cs_sum = sum(
        -(-se // _ppr(arch, shape, ce, se)) * -(-ce // Ra) * ns * nc for se, ns in ext(_S) for ce, nc in ext(_C)
    )
    kf = shape.r * cs_sum
    folds = nb_k * kf
    n_bpq = n[:, _B] * n[:, _P] * n[:, _Q]
    n_all = n_bpq * n[:, _K] * n[:, _R] * n[:, _S] * n[:, _C]
    q1 = model.ticks_per_cycle(arch)
    if arch.pe_array.stationary_overlap:
        s_bpq = sum(
            cb * cp * cq * model.stream_ticks(arch, eq, eb * ep)
            for eb, cb in ext(_B)
            for ep, cp in ext(_P)
            for eq, cq in ext(_Q)
        )
        ticks = model.edge_cycles(arch, "ws") * q1 * (1 if pipelined(arch) else n_all) + s_bpq * folds
    else:
        ticks = folds * (model.edge_cycles(arch, "ws") * n_bpq + shape.n * shape.p * shape.q) * q1
    compute = ticks / q1

    im2col = shape.n * shape.p * shape.q * shape.c * shape.r * shape.s
    stationary = n_bpq * shape.weight_elems * t.weight_bytes
    rates = dma_rates(arch, shape, T[:, _K], T[:, _C], T[:, _Q], T[:, _S])
    a_cpb, b_cpb, out_cpb = rates[:3]
    first_rows = window_lines(shape, True, 0, T[:, _P], 0, T[:, _R])
    first_cols = window_lines(shape, False, 0, T[:, _Q], 0, T[:, _S])
    first_in = T[:, _B] * T[:, _C] * first_rows * first_cols * t.input_bytes
    first_w = T[:, _K] * T[:, _C] * T[:, _R] * T[:, _S] * t.weight_bytes
    first = first_in * a_cpb + first_w * b_cpb
    ring_load, ring_memory = conv_ring.ring_terms(arch, shape, T)
    return TileTerms(
        n=n,
        vol_a=shape.n * shape.c * rows * cols,
        compute=compute,
        first_load=first,
        first_lift=model.first_load_lift(arch, problem, first_in + first_w, first),
        memory_extra=warm.cache_miss_cycles(arch, problem),
        last_store=last[:, _B] * last[:, _P] * last[:, _Q] * last[:, _K] * t.output_bytes * out_cpb,
        stationary=stationary,
        spad_reads=nb_k * im2col * t.input_bytes + stationary,
        accumulations=kf * shape.output_elems,
        rates=rates,
        issue=model.host_issue_cycles(arch.software.conv_tile_issue_cycles, arch.software.conv_loop_issue_cycles, n),
        latency=n_all * model.tile_latency(arch),
        b_spill_bytes=spilled_weight_bytes(arch, shape, T[:, _K], T[:, _R], T[:, _S], T[:, _C], n[:, _K]),
        ring_load=ring_load,
        ring_memory=ring_memory,
        zero_fill=zero_fill_cycles(arch, shape, nb_k),
    )


@dataclasses.dataclass(frozen=True)
class Multipliers:
    """Per mapping, the factors the loop order puts on each tensor's one-pass volume: input ``a``,
    weights ``b`` and outputs ``c`` into the local level, and (with an L2) input and weights into
    the L2 (``a_l2``, ``b_l2``; Timeloop residency). Arrays broadcast against the tile terms."""

    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    a_l2: np.ndarray
    b_l2: np.ndarray


def order_multipliers(arch: Arch, n: np.ndarray, order: np.ndarray) -> Multipliers:
    """The :class:`Multipliers` of tiles with counts ``n`` (m, 7) under orders ``order`` (m,)."""
    reload, small = arch.software.reload_operands, arch.software.reuse_small_operands
    a = _multipliers(n, order, _REL["A"], reload, small)
    b = _multipliers(n, order, _REL["B"], reload, small)
    c = _multipliers(n, order, _REL["C"])
    if arch.l2 is None:
        return Multipliers(a, b, c, a, b)
    return Multipliers(a, b, c, _multipliers(n, order, _REL["A"]), _multipliers(n, order, _REL["B"]))


#: the dims of each group of a bound variant (the innermost non-trivial loop in that group) and the
#: tensors such a loop indexes: b/p/q index input and output, k weights and output, r/s/c input and weights
BOUND_GROUPS = (((_B, _P, _Q), ("A", "C")), ((_K,), ("B", "C")), ((_R, _S, _C), ("A", "B")))


def bound_multipliers(arch: Arch, n: np.ndarray) -> tuple[tuple[Multipliers, np.ndarray], ...]:
    """Lower bounds of the :class:`Multipliers` over every loop order of tiles with counts ``n``:
    one variant per group of :data:`BOUND_GROUPS` with the mask of tiles where that group holds a
    non-trivial loop. If the innermost non-trivial loop is in the group, the tensors it indexes have
    every other non-trivial loop above their innermost relevant one (their full product); the
    others get at least 1. Per-call reloads do not depend on the order. The minimum of the cost
    over the available variants bounds every order from below (the cost is monotone in each
    multiplier); with reloads and no L2 only the outputs depend on the order and the single variant
    with output multiplier 1 (every reduction loop inside, e.g. Gemmini's ``bpqkrsc``) is exact."""
    reload, small = arch.software.reload_operands, arch.software.reuse_small_operands
    m = len(n)
    one = np.ones(m, dtype=np.int64)
    zero = np.zeros(m, dtype=np.int64)
    full = {x: np.prod(np.where(_REL[x][None, :], 1, n), axis=1) for x in TENSORS}
    local = {x: _multipliers(n, zero, _REL[x], True, small) for x in ("A", "B")} if reload else None
    if local is not None and arch.l2 is None:
        return ((Multipliers(local["A"], local["B"], one, local["A"], local["B"]), np.ones(m, dtype=bool)),)
    trivial = (n <= 1).all(axis=1)
    out = []
    for dims, tensors in BOUND_GROUPS:
        pick = {x: full[x] if x in tensors else one for x in TENSORS}
        a, b = (local["A"], local["B"]) if local is not None else (pick["A"], pick["B"])
        avail = (n[:, list(dims)] > 1).any(axis=1) | trivial
        out.append((Multipliers(a, b, pick["C"], pick["A"], pick["B"]), avail))
    return tuple(out)


def costs(arch: Arch, problem: Problem, terms: TileTerms, lt: LocalTerms, mult: Multipliers) -> BatchCost:
    """Cycles and energy from tile terms, their buffered local terms and the order's multipliers
    (every array broadcasts: (m,) for a batch, (m, 1) tiles against (1, b) bufferings for a grid)."""
    shape = conv_shape(problem, arch)
    out_elems = shape.output_elems
    vA = terms.vol_a * mult.a
    vB = shape.weight_elems * mult.b
    vC = out_elems * mult.c
    moved = _moved(arch, shape, vA, vB, vC)
    if arch.l2 is None:
        dram_bytes, l2_total = moved.spad + moved.acc, 0
    else:
        m2 = _moved(arch, shape, terms.vol_a * mult.a_l2, shape.weight_elems * mult.b_l2, vC)
        dram_bytes = m2.spad + m2.acc
        if terms.b_spill_bytes.any():  # weight tiles the L2's sets cannot hold: a line per row per reload
            spilled = m2.a + terms.b_spill_bytes * mult.b + m2.acc
            dram_bytes = np.where(terms.b_spill_bytes > 0, spilled, dram_bytes)
        dram_bytes = dram_bytes - warm.warm_bytes(arch, problem)
        l2_total = moved.spad + moved.acc + dram_bytes
    if terms.ring_load.any():  # wrapped loader rings (conv_ring.py): load cycles, reads from memory
        lt = dataclasses.replace(lt, extra_load=terms.ring_load * mult.a + lt.extra_load)
        ring_memory = np.floor(terms.ring_memory * mult.a)
        dram_bytes = dram_bytes + ring_memory
        l2_total = l2_total + ring_memory if arch.l2 is not None else 0
    return model.combine(arch, problem, lt, moved, dram_bytes, l2_total)


def evaluate_conv_batch(arch: Arch, problem: Problem, batch: ConvMappingBatch) -> BatchCost:
    """Costs of many conv mappings (numpy); equal to :func:`evaluate_conv` mapping by mapping."""
    terms = tile_terms(arch, problem, batch.tile)
    lt = terms.buffered(batch.db_spad, batch.db_acc)
    shape = conv_shape(problem, arch)
    if dma.write_allocates(arch):  # order-dependent, so not in the tile terms (nor in the search's bounds: >= 0)
        floor, allocate = _store_terms(arch, problem, shape, batch.tile, terms.n, batch.order)
        lt = dataclasses.replace(lt, store_floor=floor, memory_extra=lt.memory_extra + allocate)
    if arch.software.tile_sequence:  # order-dependent, and a floor under the core (the bounds stay bounds)
        lt = dataclasses.replace(lt, sequence_floor=convseq.sequence_floor(arch, problem, batch))
    mult = order_multipliers(arch, terms.n, batch.order)
    if warm.miss_cycles_per_byte(arch, shape):  # order-dependent too, and >= 0
        t = arch.datatypes
        reload_a = terms.vol_a * (mult.a_l2 - 1) * t.input_bytes
        reload_b = np.where(
            terms.b_spill_bytes > 0,
            terms.b_spill_bytes * (mult.b - 1),
            shape.weight_elems * (mult.b_l2 - 1) * t.weight_bytes,
        )
        extra = cache_reload_cycles(arch, shape, batch.tile, terms.n, batch.order, reload_a, reload_b)
        lt = dataclasses.replace(lt, memory_extra=lt.memory_extra + extra)
    return costs(arch, problem, terms, lt, mult)


# --- either kind of mapping ----------------------------------------------------------------


def invalid_reason_of(arch: Arch, problem: Problem, m: Mapping | ConvMapping) -> str | None:
    """Why ``m`` (a GEMM :class:`~gemmap.mapping.Mapping` or a :class:`ConvMapping`) cannot run, or None."""
    if isinstance(m, ConvMapping):
        return conv_invalid_reason(arch, problem, m)
    return gemm_invalid_reason(arch, problem, m)


def allocate_cycles_of(arch: Arch, problem: Problem, m: Mapping | ConvMapping) -> float:
    """The memory cycles the L2's write-allocate traffic of ``m`` adds (``l2.allocate_through_memory``;
    :func:`allocate_memory_cycles`, :func:`gemmap.model.allocate_memory_cycles`), part of its DRAM floor."""
    if not isinstance(m, ConvMapping):
        return float(model.allocate_memory_cycles(arch, problem, np.array([m.local[2]]))[0])
    shape = conv_shape(problem, arch)
    n = np.array([[ceil_div(d, x) for d, x in zip(shape.dims, m.tile)]])
    _, allocate = _store_terms(arch, problem, shape, np.array([m.tile]), n, np.array([ORDER_INDEX[m.order]]))
    return float(allocate[0])


def evaluate_of(arch: Arch, problem: Problem, m: Mapping | ConvMapping) -> Cost:
    """:func:`gemmap.model.evaluate` or :func:`evaluate_conv`, by the kind of mapping."""
    return evaluate_conv(arch, problem, m) if isinstance(m, ConvMapping) else model.evaluate(arch, problem, m)
