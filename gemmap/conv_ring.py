"""LoopConv's input loader on a tile whose window lies wholly in the padding: the 16-bit ring.

``tiled_conv`` hands each tile's window to LoopConv as its padded extent and its paddings
(gemmini.h @959b23f7 L2446-2458: ``lpad = −icol`` when the window starts before the image,
``rpad = icol + icols_ − in_dim`` when it ends after it), with no check that the window touches the
image. When a kernel tile is split off (``krows < R`` or ``kcols < S``), an edge output tile's window
can lie wholly before the image (``start + span < 0``) or wholly after it (``start > size``); its
unpadded extent ``span − lpad − rpad`` is then negative. LoopConv keeps that extent in a 16-bit
unsigned field (gemmini-dosa @67ca2f9 LoopConv.scala L54-55, L1109, widths L1166), so −1 becomes
65,535, and the input loader's row / column iterators are 16-bit signed registers (L266-267) that
step until they come back to their start (L359-378, ``sFloorAdd``, Util.scala L47-54): the
iterator along the wrapped axis walks all ``2^16`` values. Those from 0 to 2^15 − 1 lie "inside"
the huge unpadded extent and are moved from memory (addresses past the tensor), the negative half
are zero-filled (``is_zeros``, L273, L280: the ZeroWriter, one DIM-wide block per row per cycle).

Per pass over all input tiles, along one axis, the (output tile, kernel tile) pairs either wrap
(``w`` of them) or load their window normally (``U`` = Σ image lines fetched, ``P`` = Σ padded
lines, padding included). A tile wrapped along the rows walks ``2^16`` rows of its padded columns,
``2^15`` of them real at its image columns; likewise along the columns; both at once, ``2^32``::

    real  = N · (2^15 · (w_r · U_c + w_c · U_r) + 2^30 · w_r · w_c)
    total = N · (2^16 · (w_r · P_c + w_c · P_r) + 2^32 · w_r · w_c)

input pixels of each channel tile. The real ones cost the DMA's rate for the tile's input rows
(commands of DIM pixels) or memory's, whichever is slower, moving whole lines from memory (a pixel
row of ``c_e`` channels at a stride of C bytes: C bytes when C is under a line, else the lines its
``c_e`` bytes span); the zero ones one cycle per DIM channels. The loader issues them one after the
other, so they add to the tile's load phase (``LocalTerms.extra_load``).

The 12 rows of DOSA's 128x128 file measured at 50-180x their compute bound are exactly its rows
with a wrapped tile (docs/validation.md). ``dma.conv_loader_bits`` (16) is the iterator width;
None models a loader that never wraps.
"""

from __future__ import annotations

import numpy as np

from gemmap import dma
from gemmap.arch import Arch
from gemmap.conv import ConvShape, axis_ring, can_wrap, pair_flags
from gemmap.model import tile_extents

_P, _Q, _R, _S, _C = 1, 2, 4, 5, 6  # gemmap.conv.DIMS positions


def ring_pixels(shape: ConvShape, p_t: int, r_t: int, q_t: int, s_t: int, bits: int) -> tuple[int, int]:
    """(real, total) input pixels per channel tile the loader's wrapped rings move in one pass over
    all input tiles (module docstring); (0, 0) when no tile wraps."""
    r, c = axis_ring(shape, True, p_t, r_t), axis_ring(shape, False, q_t, s_t)
    if r.wrapped == 0 and c.wrapped == 0:
        return 0, 0
    ring, half = 1 << bits, 1 << (bits - 1)
    real = half * (r.wrapped * c.fetched + c.wrapped * r.fetched) + half * half * r.wrapped * c.wrapped
    total = ring * (r.wrapped * c.spans + c.wrapped * r.spans) + ring * ring * r.wrapped * c.wrapped
    return shape.n * real, shape.n * total


def ring_terms(arch: Arch, shape: ConvShape, T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(load cycles, memory bytes) of the wrapped rings in one pass over all input tiles, for conv
    tiles ``T`` (m, 7) in :data:`gemmap.conv.DIMS` order; zeros where no tile wraps or
    ``dma.conv_loader_bits`` is None."""
    T = np.asarray(T, dtype=np.int64).reshape(-1, 7)
    cycles = np.zeros(len(T))
    memory = np.zeros(len(T))
    bits = arch.dma.conv_loader_bits
    rows, cols = can_wrap(shape, True), can_wrap(shape, False)
    if bits is None or not len(T) or not (rows or cols):
        return cycles, memory
    hit = np.zeros(len(T), dtype=bool)
    if rows:
        hit |= pair_flags(shape, True, T[:, _P], T[:, _R], 1, "wrapped")
    if cols:
        hit |= pair_flags(shape, False, T[:, _Q], T[:, _S], 1, "wrapped")
    hit = np.flatnonzero(hit)
    if not len(hit):
        return cycles, memory
    keys, inverse = np.unique(T[hit][:, [_P, _R, _Q, _S, _C]], axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    elem = arch.datatypes.input_bytes
    stride = shape.c * elem
    line = arch.l2.line_bytes if arch.l2 is not None else arch.dma.request_bytes
    for i, (p_t, r_t, q_t, s_t, c_t) in enumerate(keys.tolist()):
        real, total = ring_pixels(shape, p_t, r_t, q_t, s_t, bits)
        key_cycles = key_memory = 0.0
        for c_e, count in tile_extents(shape.c, c_t):
            width = c_e * elem
            per_row = stride if stride < line else line * -(-width // line)
            dma_cpb = float(dma.read_cycles_per_byte(arch, width, stride, rows=arch.dim_rows, element_bytes=elem))
            real_cycles = max(real * width * dma_cpb, real * per_row / arch.dram.bytes_per_cycle)
            zero_cycles = (total - real) * -(-c_e // arch.dim_rows)
            key_cycles += count * (real_cycles + zero_cycles)
            key_memory += count * real * per_row
        cycles[hit[inverse == i]] = key_cycles
        memory[hit[inverse == i]] = key_memory
    return cycles, memory


def ring_note(arch: Arch, shape: ConvShape, tile) -> str | None:
    """One line on a conv tile's wrapped loader rings, for a user reading a breakdown; None without any."""
    bits = arch.dma.conv_loader_bits
    if bits is None or shape.downsample:
        return None
    rows, cols = axis_ring(shape, True, tile[_P], tile[_R]), axis_ring(shape, False, tile[_Q], tile[_S])
    if rows.wrapped == 0 and cols.wrapped == 0:
        return None
    cycles, memory = (float(x[0]) for x in ring_terms(arch, shape, np.array([tile])))
    return (
        f"{rows.wrapped} row and {cols.wrapped} column (output tile, kernel tile) pairs put an input window wholly "
        f"in the padding: LoopConv's {bits}-bit input loader walks its whole ring there, {cycles:,.0f} load cycles "
        f"and {memory / 1e6:,.1f} MB from memory per pass over the input tiles (gemmap/conv_ring.py)"
    )


__all__ = ["ring_note", "ring_pixels", "ring_terms"]
