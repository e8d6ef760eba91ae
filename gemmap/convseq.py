"""A conv's tiles in ``tiled_conv``'s order, two loops in flight (docs/model.md, "Tile sequence").

The core of :mod:`gemmap.convmodel` costs a layer's tiles by their sums: per tile
``max(execute, load, store, (load + execute + store + latency) / 2)`` on the average tile, with the
layer's memory traffic spread evenly under its memory floor. Real tiles differ, and the order in
which they come decides what overlaps what: a reduction remainder (``kchs`` 240 then 16 on 256
channels) alternates a long tile with a short one whose execute cannot hide the next long tile's
loads, and the first visit of an operand tile waits for memory while later visits hit the L2.
:func:`sequence_floor` walks the tiles in the mapping's loop order through the two-loop recurrence
of :mod:`gemmap.tileseq`; the model takes the larger of it and the summed core.

Per tile (extents of a dim's last tile are its remainder):

* **execute** ``F · stream / q`` — its weight blocks (:func:`gemmap.conv.weight_blocks`), each
  streaming its output rows (:func:`gemmap.model.stream_ticks`), plus the array's skew per tile
  unless tiles pipeline (then once, on the first);
* **load** — its input window (clipped to the image on a first or last output / kernel tile, taken
  whole on the tiles between) and weights at the DMA's rates of the mapping's tile
  (:func:`gemmap.convmodel.dma_rates`), or, if longer, the memory time of the bytes it visits
  first: the input window when it is the first output-channel tile (no earlier tile read the same
  input), the weights when it is the first batch / output-row / output-column tile, at
  :func:`gemmap.warm.memory_cycles_per_first_byte` on the share a warm L2 did not keep
  (:func:`gemmap.warm.cold_share`; with ``dram.first_load_from_memory``, as the first load); plus the accumulator's zero-fill on the first reduction tile
  (its rows of :func:`gemmap.convmodel.zero_fill_cycles`);
* **store** — its outputs at the DMA's rate on the last reduction tile, else nothing;
* the fixed latency :func:`gemmap.model.tile_latency`.

The order is the representative of the mapping's order class (:mod:`gemmap.convspace`), so orders
the search treats as one cost the same; only mappings with both SRAMs double-buffered (two loops
in flight) have the floor. A nest of m tiled dims has 3^m tile contexts, so mappings tiled in more
than :data:`MAX_TILED_DIMS` dims (tens of thousands of tiny tiles, where the per-tile host issue and
latency terms of the summed core dominate) have none: on the measured runs that leaves the 128x128
file at 14.57 % against 14.56 % with every mapping walked, and keeps ``gemmap cdf`` of a conv at
1.6× its time without the floor instead of 6× (docs/benchmarks.md, "Tile sequence").
"""

from __future__ import annotations

import numpy as np

from gemmap import model, tileseq, warm
from gemmap.arch import Arch
from gemmap.conv import ORDER_DIMS, ConvMappingBatch, ConvShape, conv_shape, window_lines
from gemmap.convspace import ConvMapSpace, tile_masks
from gemmap.workload import Problem

_B, _P, _Q, _K, _R, _S, _C = range(7)


def _lines(shape: ConvShape, rows: bool, o0, o_e, k0, k_e, whole) -> np.ndarray:
    """Input lines of a tile's window along one axis (:func:`gemmap.conv.window_lines`); ``whole``
    where the tile is neither first nor last along the output or kernel axis (window not clipped)."""
    if shape.downsample:
        return np.asarray(o_e, dtype=np.int64)
    size = shape.input_rows if rows else shape.input_cols
    span = o_e * shape.stride + (k_e - 1) * shape.dilation
    return np.where(whole, np.minimum(span, size), window_lines(shape, rows, o0, o_e, k0, k_e))


def _tile_fn(arch: Arch, problem: Problem, T: np.ndarray, n: np.ndarray) -> tileseq.TileFn:
    """Per-tile (load, execute, store) of conv tiles ``T`` with counts ``n`` (module docstring)."""
    from gemmap.convmodel import _ppr, dma_rates  # here: gemmap.convmodel imports this module

    shape = conv_shape(problem, arch)
    t = arch.datatypes
    Ra, Ca = arch.dim_rows, arch.dim_cols
    D = np.array(shape.dims, dtype=np.int64)
    rem = D - (n - 1) * T
    rates = dma_rates(arch, shape, T[:, _K], T[:, _C], T[:, _Q], T[:, _S])[:3]
    a_cpb, b_cpb, out_cpb = (np.broadcast_to(np.asarray(x, dtype=np.float64), (len(T),)) for x in rates)
    first_cost = 0.0  # first visits from memory: the first load's rule, per tile (model.first_load_lift)
    if arch.dram.first_load_from_memory:
        first_cost = warm.cold_share(arch, problem) * warm.memory_cycles_per_first_byte(arch, problem)
    q1 = model.ticks_per_cycle(arch)
    skew = model.edge_cycles(arch, "ws")
    once = model.pipelined(arch)
    zero_fill = arch.software.conv_bias_zero_fill  # convmodel.zero_fill_cycles, per tile

    def fn(first: np.ndarray, last: np.ndarray, which: np.ndarray):
        e = np.where(last, rem[which], T[which])
        st = np.where(first, 0, (n[which] - 1) * T[which])
        b, p, q, k, r, s, c = (e[:, j] for j in range(7))
        ppr = _ppr(arch, shape, c, s)
        folds = -(-k // Ca) * r * -(-s // ppr) * -(-c // Ra)
        execute = folds * model.stream_ticks(arch, q, b * p) / q1
        if not once:
            execute = execute + skew
        mid_rows = ~(first[:, _P] | last[:, _P]) | ~(first[:, _R] | last[:, _R])
        mid_cols = ~(first[:, _Q] | last[:, _Q]) | ~(first[:, _S] | last[:, _S])
        rows = _lines(shape, True, st[:, _P], p, st[:, _R], r, mid_rows)
        cols = _lines(shape, False, st[:, _Q], q, st[:, _S], s, mid_cols)
        input_bytes = b * c * rows * cols * t.input_bytes
        weight_bytes = k * c * r * s * t.weight_bytes
        fresh = np.where(first[:, _K], input_bytes, 0) + np.where(first[:, [_B, _P, _Q]].all(axis=1), weight_bytes, 0)
        load = np.maximum(input_bytes * a_cpb[which] + weight_bytes * b_cpb[which], fresh * first_cost)
        if zero_fill:  # LoopConvLdBias: a DIM-wide zero row a cycle on the first reduction tile
            load = load + np.where(first[:, [_R, _S, _C]].all(axis=1), b * p * q * -(-k // Ca), 0)
        last_reduction = last[:, [_R, _S, _C]].all(axis=1)
        store = np.where(last_reduction, b * p * q * k * t.output_bytes * out_cpb[which], 0.0)
        return load, execute, store

    return fn


#: mappings tiled in more dims than this have no floor (3^m tile contexts; module docstring)
MAX_TILED_DIMS = 5


def sequence_floor(arch: Arch, problem: Problem, batch: ConvMappingBatch) -> np.ndarray:
    """The two-loop time of each mapping's tile sequence (module docstring); 0 where a buffer is
    single (one loop at a time, whose serial phases the summed core charges), where the mapping is
    tiled in more than :data:`MAX_TILED_DIMS` dims, or with ``software.tile_sequence`` off."""
    out = np.zeros(len(batch.tile))
    if not arch.software.tile_sequence:
        return out
    both = np.flatnonzero(batch.db_spad & batch.db_acc)
    if not len(both):
        return out
    shape = conv_shape(problem, arch)
    T = batch.tile[both]
    n = -(-np.array(shape.dims, dtype=np.int64) // T)
    mask = tile_masks(n)
    canon = ConvMapSpace(arch, problem).canonical(batch.order[both], mask)
    dims = ORDER_DIMS[canon]  # (g, 7) dims of each order, outermost first
    latency = model.tile_latency(arch)
    skew = model.edge_cycles(arch, "ws") if model.pipelined(arch) else 0.0
    for mk in np.unique(mask):
        if int(mk).bit_count() > MAX_TILED_DIMS:
            continue
        sel = np.flatnonzero(mask == mk)
        live = n[sel[:, None], dims[sel]] > 1  # (g, 7), the same count per row
        perm = dims[sel][live].reshape(len(sel), -1)
        fn = _tile_fn(arch, problem, T[sel], n[sel])
        out[both[sel]] = tileseq.nest_cycles(*tileseq.loops_of(n[sel], perm), fn, latency) + skew
    return out
