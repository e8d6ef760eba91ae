"""Convolutions as Gemmini runs them: the conv shape and the mappings ``tiled_conv`` can execute.

A conv ``O[b,k,p,q] += I[b,c,p·σ+r·δ−pad, q·σ+s·δ−pad]·W[k,c,r,s]`` (σ stride, δ dilation) is
not lowered to its im2col GEMM: Gemmini's ``tiled_conv`` (ucb-bar/gemmini-rocc-tests
``include/gemmini.h`` @180c468, L2168-2452) tiles the 7 dims and hands each tile to the
``LoopConv`` FSM (ucb-bar/gemmini ``src/main/scala/gemmini/LoopConv.scala`` @8c3f992), which
moves an input *window* (with halo) into the scratchpad and forms im2col rows on chip. Facts used
here, all from those two files:

* **Dataflow.** WS only: ``tiled_conv`` exits with "Gemmini convs do not currently support OS"
  (gemmini.h:2216-2219) and configures ``WEIGHT_STATIONARY`` (gemmini.h:2290); LoopConv has only
  ``gemmini_loop_conv_ws`` (gemmini.h:360-377).
* **Outer loop order** (software, gemmini.h:2320-2336), outermost first:
  ``b, porow, pocol, poch, krow, kcol, kch`` — here ``bpqkrsc``. Fixed in Gemmini; kept as a
  field (:attr:`ConvMapping.order`) so a search can explore others. Gemmini's order keeps the
  reduction (krow, kcol, kch) innermost, so outputs never leave the accumulator: the output
  pointer is NULL until the last reduction tile (gemmini.h:2346-2350) and the bias is loaded only
  on the first (gemmini.h:2352-2357).
* **Tiles.** The 7 args ``batches, porows, pocols, pochs, krows, kcols, kchs``
  (:data:`DIMS` order); partial edge tiles are ``min(tile, dim − start)`` (gemmini.h:2359-2365).
* **Input window.** A tile whose first output row is ``p0`` and first kernel row ``r0`` reads
  input rows from ``p0·σ + r0·δ − pad`` for ``irows = p_t·σ + (r_t − 1)·δ`` rows
  (gemmini.h:2378-2384 ``irows_ = orows_·stride + dilated_krows_ − 1``; LoopConv.scala:1115-1118)
  — σ − 1 rows more than the exact window ``(p_t − 1)·σ + (r_t − 1)·δ + 1`` when σ > 1. Rows
  outside ``[0, H)`` are padding: LoopConvLdInput mvins them from a NULL address as zeros
  (LoopConv.scala:279 ``is_zeros``), so they take scratchpad rows but no DRAM traffic. The same
  for columns. **Downsample** (σ = 2, 1×1 kernel, pad 0, H and W even; gemmini.h:2236-2237)
  moves every other row and column only (``irows >> downsample``, gemmini.h:1820-1822;
  LoopConv.scala:289-296): a window of ``p_t`` rows.
* **Capacity** (``tiled_conv_total_spad_rows``, gemmini.h:1791-1831), rows of DIM elements:
  scratchpad ``ceil(c_t/DIM)·b_t·irows·icols`` (input, padding included, ``>> downsample``)
  ``+ ceil(k_t/DIM)·s_t·r_t·c_t`` (weights); accumulator ``ceil(k_t/DIM)·b_t·p_t·q_t``.
* **Double buffering.** LoopConv runs ``concurrent_loops = 2`` tiles at once
  (LoopConv.scala:1194), each in its own half of the scratchpad (LoopConv.scala:1526-1527) and
  of the accumulator (LoopConv.scala:1469); ``tiled_conv`` asserts ``spad_rows ≤ BANK_NUM·BANK_ROWS/2``
  and ``acc_rows ≤ ACC_ROWS/2`` (gemmini.h:2254-2261). So Gemmini's conv mappings are
  ``db_spad = db_acc = True``; ``False`` models a LoopConv with one loop in flight (whole
  memory, no overlap).
* **Per-tile compute** (LoopConvExecute, LoopConv.scala:792-815; gemmini.h:1612-1700): for each
  ``och`` block of DIM, ``krow``, ``kcol`` group of ``max_pixels_per_row`` and ``kch`` block of
  DIM, one DIM×DIM weight block is preloaded, then for each ``b, orow`` and ``ocol`` chunk of DIM
  one compute of ``I ≤ DIM`` rows. ``max_pixels_per_row`` (gemmini.h:1406-1411, with
  ``HAS_FIRST_LAYER_OPTIMIZATIONS`` defined by default in gemmini_params.h:82) packs
  ``DIM // kchs`` kernel columns into one block when ``kchs ≤ DIM`` (no kernel dilation, not
  downsampling), capped at ``kcols``.

A matmul is the conv special case ``b = q = r = s = 1``, ``p = M``, ``c = K``, ``k = N``
(:meth:`ConvShape.from_matmul`, :meth:`ConvMapping.from_gemm`).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from gemmap.arch import Arch, DataTypes, ceil_div
from gemmap.errors import GemmapError

if TYPE_CHECKING:
    from gemmap.mapping import Mapping
    from gemmap.workload import Problem

#: the 7 dims in tiled_conv's argument order (batches, porows, pocols, pochs, krows, kcols, kchs)
DIMS = ("b", "p", "q", "k", "r", "s", "c")
#: tiled_conv's argument name of each dim
ARG_NAMES = ("batches", "porows", "pocols", "pochs", "krows", "kcols", "kchs")
#: Gemmini's fixed outer loop order (gemmini.h:2320-2336), outermost first
GEMMINI_ORDER = "bpqkrsc"
ORDERS: tuple[str, ...] = tuple("".join(p) for p in itertools.permutations(DIMS))
ORDER_INDEX = {o: i for i, o in enumerate(ORDERS)}
#: ORDER_DIMS[o, j] is the dim index of the loop at position j (outermost 0) of order o
ORDER_DIMS = np.array([[DIMS.index(ch) for ch in o] for o in ORDERS], dtype=np.int64)
#: ORDER_POS[o, d]: the position of dim d in order o (outermost 0), ORDER_DIMS inverted
ORDER_POS = np.argsort(ORDER_DIMS, axis=1)
#: which dims each tensor is indexed by: A input I[b,c,p,q,(r,s)], B weights W[k,c,r,s], C output O[b,k,p,q]
RELEVANT = {
    "A": (True, True, True, False, True, True, True),
    "B": (False, False, False, True, True, True, True),
    "C": (True, True, True, True, False, False, False),
}


@dataclasses.dataclass(frozen=True)
class ConvShape:
    """A 2-D convolution: batch ``n``, ``c`` → ``k`` channels, ``p × q`` outputs, ``r × s`` kernel.

    The input is ``h × w`` when given, else the smallest input giving ``p × q`` outputs::

        input_rows = (p − 1)·stride + (r − 1)·dilation + 1 − 2·padding   (clipped ≥ 1)

    A given ``h`` must produce ``p`` (PyTorch's ``p = (h + 2·pad − (r−1)·dil − 1) // stride + 1``).
    """

    n: int
    k: int
    c: int
    p: int
    q: int
    r: int
    s: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    h: int | None = None
    w: int | None = None
    #: whether the software may use Gemmini's downsample mode on this layer (arch.software.conv_downsample)
    downsample_mode: bool = True

    @property
    def input_rows(self) -> int:
        return self.h if self.h is not None else max(1, self.window_rows(self.p, self.r) - 2 * self.padding)

    @property
    def input_cols(self) -> int:
        return self.w if self.w is not None else max(1, self.window_cols(self.q, self.s) - 2 * self.padding)

    def window_rows(self, p_t: int, r_t: int) -> int:
        """Exact input rows (padding included) ``p_t`` output rows need under ``r_t`` kernel rows:
        ``(p_t − 1)·stride + (r_t − 1)·dilation + 1``."""
        return (p_t - 1) * self.stride + (r_t - 1) * self.dilation + 1

    def window_cols(self, q_t: int, s_t: int) -> int:
        return (q_t - 1) * self.stride + (s_t - 1) * self.dilation + 1

    @property
    def downsample(self) -> bool:
        """Gemmini's ``downsample`` mode (gemmini.h:2236-2237): stride 2, 1×1, no padding, even H, W."""
        return (
            self.downsample_mode
            and self.stride == 2
            and self.r == 1
            and self.s == 1
            and self.padding == 0
            and self.input_rows % 2 == 0
            and self.input_cols % 2 == 0
        )

    @property
    def dims(self) -> tuple[int, int, int, int, int, int, int]:
        """Sizes in :data:`DIMS` order (b, p, q, k, r, s, c)."""
        return (self.n, self.p, self.q, self.k, self.r, self.s, self.c)

    @property
    def macs(self) -> int:
        return self.n * self.k * self.c * self.p * self.q * self.r * self.s

    @property
    def input_elems(self) -> int:
        """Elements of the real input tensor ``n·c·h·w``."""
        return self.n * self.c * self.input_rows * self.input_cols

    def touched_rows(self) -> int:
        """Input rows some output reads: ``|{p·σ + r·δ − pad} ∩ [0, H)|``."""
        return len(
            {p * self.stride + r * self.dilation - self.padding for p in range(self.p) for r in range(self.r)}
            & set(range(self.input_rows))
        )

    def touched_cols(self) -> int:
        return len(
            {q * self.stride + s * self.dilation - self.padding for q in range(self.q) for s in range(self.s)}
            & set(range(self.input_cols))
        )

    @property
    def touched_input_elems(self) -> int:
        """Input elements some output reads (all of them unless the stride skips pixels)."""
        return self.n * self.c * self.touched_rows() * self.touched_cols()

    @property
    def weight_elems(self) -> int:
        return self.k * self.c * self.r * self.s

    @property
    def output_elems(self) -> int:
        return self.n * self.k * self.p * self.q

    def gemm(self) -> tuple[int, int, int]:
        """The im2col GEMM view (M, K, N) = (n·p·q, c·r·s, k)."""
        return (self.n * self.p * self.q, self.c * self.r * self.s, self.k)

    @staticmethod
    def from_matmul(M: int, K: int, N: int) -> ConvShape:
        """A matmul ``C[M,N] += A[M,K]·B[K,N]`` as a conv: one output row of M pixels (q = M), c = K,
        k = N, the rest 1 — so LoopConv streams A's rows in DIM-row requests, as LoopMatmul does."""
        return ConvShape(n=1, k=N, c=K, p=1, q=M, r=1, s=1)

    def check(self, layer: str) -> None:
        """Raise a one-line GemmapError naming ``layer`` and the field if the shape is impossible."""
        for name in ("n", "k", "c", "p", "q", "r", "s"):
            if getattr(self, name) < 1:
                raise GemmapError(f"layer '{layer}': {name} must be ≥ 1, got {getattr(self, name)}")
        if self.stride < 1:
            raise GemmapError(f"layer '{layer}': stride must be ≥ 1, got {self.stride}")
        if self.dilation < 1:
            raise GemmapError(f"layer '{layer}': dilation must be ≥ 1, got {self.dilation}")
        if self.padding < 0:
            raise GemmapError(f"layer '{layer}': padding must be ≥ 0, got {self.padding}")
        for axis, size, kern, out, field in (
            ("rows", self.h, self.r, self.p, "H"),
            ("cols", self.w, self.s, self.q, "W"),
        ):
            extent = (kern - 1) * self.dilation + 1
            if size is not None:
                if size < 1:
                    raise GemmapError(f"layer '{layer}': {field} must be ≥ 1, got {size}")
                padded = size + 2 * self.padding
                if extent > padded:
                    name = "R" if axis == "rows" else "S"
                    raise GemmapError(
                        f"layer '{layer}': {name}: kernel extent {extent} exceeds the padded input {padded} {axis}"
                    )
                expect = (padded - extent) // self.stride + 1
                if expect != out:
                    name = "P" if axis == "rows" else "Q"
                    raise GemmapError(
                        f"layer '{layer}': {name}={out} but a {size}-{axis[:-1]} input with kernel {kern}, "
                        f"stride {self.stride}, padding {self.padding}, dilation {self.dilation} gives {expect}"
                    )
        if self.h is None and self.window_rows(self.p, self.r) - 2 * self.padding < 1:
            raise GemmapError(f"layer '{layer}': R={self.r}: kernel larger than its padded input (padding too big)")
        if self.w is None and self.window_cols(self.q, self.s) - 2 * self.padding < 1:
            raise GemmapError(f"layer '{layer}': S={self.s}: kernel larger than its padded input (padding too big)")


@functools.lru_cache(maxsize=4096)
def compulsory_bytes(shape: ConvShape, t: DataTypes) -> tuple[int, int, int]:
    """Bytes of the input pixels some output reads, the weights and the outputs of ``shape``, each
    moved once."""
    return (
        shape.touched_input_elems * t.input_bytes,
        shape.weight_elems * t.weight_bytes,
        shape.output_elems * t.output_bytes,
    )


def conv_shape(problem: Problem, arch: Arch | None = None) -> ConvShape:
    """The conv view of any problem: its own :class:`ConvShape`, or a matmul as the conv special case;
    with ``arch``, as that arch's software runs it (no downsample mode unless it has one)."""
    shape = problem.conv if problem.conv is not None else ConvShape.from_matmul(problem.M, problem.K, problem.N)
    if arch is not None and not arch.software.conv_downsample and shape.downsample_mode:
        shape = dataclasses.replace(shape, downsample_mode=False)
    return shape


# --- per-dim footprints ------------------------------------------------------------------


def _axis(shape: ConvShape, rows: bool) -> tuple[int, int, int]:
    """(output extent, kernel extent, input extent) along the rows (p, r, H) or the columns (q, s, W)."""
    return (shape.p, shape.r, shape.input_rows) if rows else (shape.q, shape.s, shape.input_cols)


def window_lines(shape: ConvShape, rows: bool, o0, o_e, k0, k_e) -> np.ndarray:
    """Input lines (rows or columns) the windows of tiles starting at output line ``o0`` and kernel line
    ``k0``, ``o_e`` and ``k_e`` long, bring from DRAM (module docstring, Input window). Broadcasts.

    Gemmini's window starts at ``o0·σ + k0·δ − pad`` and spans ``o_e·σ + (k_e − 1)·δ`` lines;
    lines outside the image are zero padding (not fetched). Downsample: ``o_e`` lines.
    """
    if shape.downsample:
        return np.asarray(o_e)
    start = np.asarray(o0) * shape.stride + np.asarray(k0) * shape.dilation - shape.padding
    end = start + np.asarray(o_e) * shape.stride + (np.asarray(k_e) - 1) * shape.dilation
    return np.maximum(np.minimum(end, _axis(shape, rows)[2]) - np.maximum(start, 0), 0)


def _lines_loaded(shape: ConvShape, rows: bool, o0: int, o_e: int, k0: int, k_e: int) -> int:
    """:func:`window_lines` of one tile."""
    return int(window_lines(shape, rows, o0, o_e, k0, k_e))


def _window_sum(shape: ConvShape, rows: bool, o_t: int, k_t: int) -> int:
    """Σ over all (output-tile, kernel-tile) pairs along one axis of :func:`_lines_loaded` (last tiles partial)."""
    out, kern, _ = _axis(shape, rows)
    return sum(
        _lines_loaded(shape, rows, o0, min(o_t, out - o0), k0, min(k_t, kern - k0))
        for o0 in range(0, out, o_t)
        for k0 in range(0, kern, k_t)
    )


def rows_loaded(shape: ConvShape, p0: int, p_e: int, r0: int, r_e: int) -> int:
    """Input rows one tile's mvin brings from DRAM (:func:`_lines_loaded` along the rows)."""
    return _lines_loaded(shape, True, p0, p_e, r0, r_e)


def cols_loaded(shape: ConvShape, q0: int, q_e: int, s0: int, s_e: int) -> int:
    """Input columns one tile's mvin brings from DRAM (:func:`_lines_loaded` along the columns)."""
    return _lines_loaded(shape, False, q0, q_e, s0, s_e)


def window_sum_rows(shape: ConvShape, p_t: int, r_t: int) -> int:
    """Σ over all (p-tile, r-tile) pairs of :func:`rows_loaded` (tiles of p_t, r_t; last partial)."""
    return _window_sum(shape, True, p_t, r_t)


def window_sum_cols(shape: ConvShape, q_t: int, s_t: int) -> int:
    """Σ over all (q-tile, s-tile) pairs of :func:`cols_loaded`."""
    return _window_sum(shape, False, q_t, s_t)


@dataclasses.dataclass(frozen=True)
class AxisRing:
    """Along one axis, over all (output tile, kernel tile) pairs: how many have a window wholly in the
    padding (``wrapped``: LoopConv's loader wraps its 16-bit iterator there, gemmap/conv_ring.py), the
    image lines (``fetched``) and padded lines (``spans``) of the others, and how many wrapped pairs
    start their window ``lpad`` lines before the image with ``lpad`` not a multiple of the loader's
    step along the axis (``endless``: its ring never comes back to its start)."""

    wrapped: int
    fetched: int
    spans: int
    endless: int


@functools.lru_cache(maxsize=65536)
def axis_ring(shape: ConvShape, rows: bool, o_t: int, k_t: int, step: int = 1) -> AxisRing:
    """:class:`AxisRing` of tiles of ``o_t`` output lines and ``k_t`` kernel lines (last ones partial)
    along the rows (p, r, H) or the columns (q, s, W), the loader stepping ``step`` lines at a time
    (1 down the rows, DIM pixels along them). A pair wraps when its window
    ``[o0·σ + k0·δ − pad, … + o_e·σ + (k_e − 1)·δ)`` lies wholly outside ``[0, size)``: its unpadded
    extent ``span − lpad − rpad`` (gemmini.h @959b23f7 L2446-2458) is negative."""
    out, kern, size = _axis(shape, rows)
    o0 = np.arange(0, out, o_t)[:, None]
    k0 = np.arange(0, kern, k_t)[None, :]
    span = np.minimum(o_t, out - o0) * shape.stride + (np.minimum(k_t, kern - k0) - 1) * shape.dilation
    start = o0 * shape.stride + k0 * shape.dilation - shape.padding
    lead = np.maximum(-start, 0)
    unpadded = span - lead - np.maximum(start + span - size, 0)
    wraps = unpadded < 0
    span = np.broadcast_to(span, wraps.shape)
    return AxisRing(
        int(wraps.sum()),
        int(np.where(wraps, 0, unpadded).sum()),
        int(span[~wraps].sum()),
        int((wraps & (lead % step != 0)).sum()),
    )


def can_wrap(shape: ConvShape, rows: bool) -> bool:
    """Whether any tiling puts a window wholly in the padding along the axis: a tile's window is the
    union of its single-line (output line, kernel line) windows, so it lies outside the image only
    if they all do, and some tiling wraps only if some single-line pair does."""
    return not shape.downsample and axis_ring(shape, rows, 1, 1).wrapped > 0


def pair_flags(shape: ConvShape, rows: bool, o_t, k_t, step: int, what: str) -> np.ndarray:
    """Per (o_t, k_t) pair (arrays), whether ``axis_ring(shape, rows, o, k, step)`` has any ``what``
    (``"wrapped"`` or ``"endless"``) pair; each distinct pair computed once."""
    o_t, k_t = np.broadcast_arrays(np.asarray(o_t, dtype=np.int64), np.asarray(k_t, dtype=np.int64))
    _, kern, _ = _axis(shape, rows)
    keys, inverse = np.unique(o_t.ravel() * (kern + 1) + k_t.ravel(), return_inverse=True)
    flags = np.array(
        [getattr(axis_ring(shape, rows, *divmod(int(key), kern + 1), step), what) > 0 for key in keys], dtype=bool
    )
    return flags[inverse.reshape(-1)].reshape(o_t.shape)


def loader_never_ends(arch: Arch, shape: ConvShape, q_t, s_t) -> np.ndarray:
    """Per tiling (``q_t``, ``s_t`` broadcast), whether some tile's input window lies wholly before the
    image along the columns at an ``lpad`` that is not a multiple of DIM: LoopConv's loader then walks
    its wrapped 16-bit column iterator in DIM-pixel steps from ``−lpad`` through 0, 2^15 − DIM, the
    wrap to −2^15 and on, never landing on ``−lpad`` again (LoopConv.scala L359-378), so the tile's
    loads never finish. False when the loader does not wrap (``dma.conv_loader_bits`` None)."""
    q_t, s_t = np.broadcast_arrays(np.asarray(q_t, dtype=np.int64), np.asarray(s_t, dtype=np.int64))
    if arch.dma.conv_loader_bits is None or not q_t.size or not can_wrap(shape, False):
        return np.zeros(q_t.shape, dtype=bool)
    return pair_flags(shape, False, q_t, s_t, arch.dim_rows, "endless")


def pixels_per_row(arch: Arch, shape: ConvShape, c_e: int, s_e: int) -> int:
    """``max_pixels_per_row`` of a tile with ``c_e`` input channels and ``s_e`` kernel columns
    (gemmini.h:1406-1411): ``min(DIM // c_e, s_e)`` when ``c_e ≤ DIM``, no kernel dilation and
    no downsample; else 1."""
    if c_e > arch.dim_rows or shape.dilation > 1 or shape.downsample or not arch.software.first_layer_optimizations:
        return 1
    return max(1, min(arch.dim_rows // c_e, s_e))


def weight_blocks(arch: Arch, shape: ConvShape, k_e: int, r_e: int, s_e: int, c_e: int) -> int:
    """DIM×DIM weight blocks LoopConvExecute preloads for one tile (LoopConv.scala:792-806):
    ``ceil(k_e/DIM) · r_e · ceil(s_e / pixels_per_row) · ceil(c_e/DIM)``."""
    ppr = pixels_per_row(arch, shape, c_e, s_e)
    return ceil_div(k_e, arch.dim_cols) * r_e * ceil_div(s_e, ppr) * ceil_div(c_e, arch.dim_rows)


# --- the mapping -------------------------------------------------------------------------


def _db_label(db_spad: bool, db_acc: bool) -> str:
    if db_spad and db_acc:
        return "db"
    return "db-sp" if db_spad else ("db-acc" if db_acc else "sb")


@dataclasses.dataclass(frozen=True)
class ConvMapping:
    """What ``tiled_conv`` can execute: the 7 tile args, the outer loop order, buffering.

    ``tile`` is in :data:`DIMS` order (batches, porows, pocols, pochs, krows, kcols, kchs);
    ``order`` is a permutation of ``"bpqkrsc"``, outermost first (Gemmini: ``bpqkrsc``).
    """

    tile: tuple[int, int, int, int, int, int, int]
    order: str = GEMMINI_ORDER
    dataflow: str = "ws"
    db_spad: bool = True
    db_acc: bool = True

    def tiles(self, shape: ConvShape) -> tuple[int, ...]:
        """Tile count per dim ``ceil(D / T)`` in :data:`DIMS` order."""
        return tuple(ceil_div(d, t) for d, t in zip(shape.dims, self.tile))

    def to_dict(self, arch: Arch, problem: Problem) -> dict[str, object]:
        """The ``mapping`` record of the JSON output: tiled_conv's tile args by name."""
        shape = conv_shape(problem, arch)
        return {
            "kind": "conv",
            "dataflow": self.dataflow,
            "tiled_conv_args": dict(zip(ARG_NAMES, self.tile)),
            "tile_counts": dict(zip(ARG_NAMES, self.tiles(shape))),
            "loop_order": self.order,
            "double_buffer": {"scratchpad": self.db_spad, "accumulator": self.db_acc},
            "spad_rows": spad_rows_needed(arch, shape, self.tile),
            "acc_rows": acc_rows_needed(arch, self.tile),
        }

    def summary(self, arch: Arch) -> str:
        """One line, e.g. ``ws conv b1 p7 q7 k112 r3 s3 c119 bpqkrsc db``."""
        t = " ".join(f"{d}{v}" for d, v in zip(DIMS, self.tile))
        return f"{self.dataflow} conv {t} {self.order} {_db_label(self.db_spad, self.db_acc)}"

    def loop_nest(self, arch: Arch, problem: Problem) -> str:
        """The tiled_conv call as a loop nest, outermost first, with LoopConv's per-tile loops."""
        shape = conv_shape(problem, arch)
        n = dict(zip(DIMS, self.tiles(shape)))
        t = dict(zip(DIMS, self.tile))
        lines = [
            "// tiled_conv(" + ", ".join(f"{a}={v}" for a, v in zip(ARG_NAMES, self.tile)) + ")",
            "// DRAM (software loops, gemmini.h tiled_conv)",
        ]
        indent = ""
        for ch in self.order:
            if n[ch] > 1:
                lines.append(f"{indent}for {ch}0 in [0:{n[ch]})   // step {t[ch]}")
                indent += "  "
        irows = t["p"] * shape.stride + (t["r"] - 1) * shape.dilation
        icols = t["q"] * shape.stride + (t["s"] - 1) * shape.dilation
        if shape.downsample:
            irows, icols = irows >> 1, icols >> 1
        lines.append(
            f"{indent}// scratchpad I[{t['b']}x{t['c']}x{irows}x{icols}] W[{t['k']}x{t['c']}x{t['r']}x{t['s']}]"
            f"  accumulator O[{t['b']}x{t['k']}x{t['p']}x{t['q']}]"
        )
        D = arch.dim_rows
        ppr = pixels_per_row(arch, shape, t["c"], t["s"])
        for name, bound in (
            ("och", ceil_div(t["k"], arch.dim_cols)),
            ("krow", t["r"]),
            ("kcol", ceil_div(t["s"], ppr)),
            ("kch", ceil_div(t["c"], D)),
        ):
            if bound > 1:
                lines.append(f"{indent}for {name} in [0:{bound})")
                indent += "  "
        lines.append(
            f"{indent}// WS: preload a {D}x{arch.dim_cols} weight block (K = {ppr} pixel(s) x kch), stream "
            f"b x orow x ocol = {t['b']}x{t['p']}x{t['q']} rows in computes of <= {D}"
        )
        return "\n".join(lines)

    @staticmethod
    def from_gemm(m: Mapping) -> ConvMapping:
        """A GEMM mapping as the conv special case: M → q (one output row), K → c, N → k; the order's
        trivial dims outside."""
        Tm, Tk, Tn = m.local
        letters = {"M": "q", "K": "c", "N": "k"}
        return ConvMapping(
            tile=(1, 1, Tm, Tn, 1, 1, Tk),
            order="bprs" + "".join(letters[x] for x in m.dram_order),
            dataflow=m.dataflow,
            db_spad=m.db_spad,
            db_acc=m.db_acc,
        )


@dataclasses.dataclass(frozen=True)
class ConvMappingBatch:
    """Many conv mappings of one problem as arrays; ``order`` indexes :data:`ORDERS`, ``dataflow`` 0 = WS."""

    tile: np.ndarray  # (n, 7) int64
    order: np.ndarray  # (n,) int64
    dataflow: np.ndarray  # (n,) int8
    db_spad: np.ndarray  # (n,) bool
    db_acc: np.ndarray  # (n,) bool

    def __len__(self) -> int:
        return int(self.order.shape[0])

    @classmethod
    def from_mappings(cls, mappings: Sequence[ConvMapping]) -> ConvMappingBatch:
        return cls(
            tile=np.array([m.tile for m in mappings], dtype=np.int64).reshape(-1, 7),
            order=np.array([ORDER_INDEX[m.order] for m in mappings], dtype=np.int64),
            dataflow=np.array([("ws", "os").index(m.dataflow) for m in mappings], dtype=np.int8),
            db_spad=np.array([m.db_spad for m in mappings], dtype=bool),
            db_acc=np.array([m.db_acc for m in mappings], dtype=bool),
        )

    @staticmethod
    def concat(batches: Sequence[ConvMappingBatch]) -> ConvMappingBatch:
        """The batches one after another, as one batch."""
        return ConvMappingBatch(
            *(np.concatenate([getattr(b, f.name) for b in batches]) for f in dataclasses.fields(ConvMappingBatch))
        )

    def take(self, idx: np.ndarray) -> ConvMappingBatch:
        """The mappings at indices ``idx``, as a batch."""
        return ConvMappingBatch(
            self.tile[idx], self.order[idx], self.dataflow[idx], self.db_spad[idx], self.db_acc[idx]
        )

    def __getitem__(self, i: int) -> ConvMapping:
        return ConvMapping(
            tile=tuple(int(x) for x in self.tile[i]),  # type: ignore[arg-type]
            order=ORDERS[int(self.order[i])],
            dataflow=("ws", "os")[int(self.dataflow[i])],
            db_spad=bool(self.db_spad[i]),
            db_acc=bool(self.db_acc[i]),
        )


# --- capacity ----------------------------------------------------------------------------


def spad_rows_needed(arch: Arch, shape: ConvShape, tile: Sequence[int]) -> int:
    """Scratchpad rows of one tile (``tiled_conv_total_spad_rows(false, …)``, gemmini.h:1791-1831)::

    irows = p_t·σ + (r_t − 1)·δ,  icols = q_t·σ + (s_t − 1)·δ      (>> 1 when downsampling)
    rows  = ceil(c_t/DIM)·b_t·irows·icols + ceil(k_t/DIM)·s_t·r_t·c_t
    """
    b, p, q, k, r, s, c = tile
    D = arch.dim_cols
    irows = p * shape.stride + (r - 1) * shape.dilation
    icols = q * shape.stride + (s - 1) * shape.dilation
    ds = 1 if shape.downsample else 0
    return ceil_div(c, D) * b * (irows >> ds) * (icols >> ds) + ceil_div(k, D) * s * r * c


def acc_rows_needed(arch: Arch, tile: Sequence[int]) -> int:
    """Accumulator rows of one tile: ``ceil(k_t/DIM)·b_t·p_t·q_t`` (gemmini.h:1828)."""
    b, p, q, k = tile[0], tile[1], tile[2], tile[3]
    return ceil_div(k, arch.dim_cols) * b * p * q


def invalid_reason(arch: Arch, problem: Problem, m: ConvMapping) -> str | None:
    """Why ``tiled_conv`` cannot run ``m`` on ``arch``, or None if it can (capacities doubled when
    double-buffered, module docstring)."""
    shape = conv_shape(problem, arch)
    if m.dataflow != "ws":
        return "Gemmini convs run weight-stationary only (tiled_conv has no OS path)"
    if "ws" not in arch.dataflows:
        return f"{arch.name} has no WS dataflow, which Gemmini convs need"
    if m.order not in ORDER_INDEX:
        return f"loop order '{m.order}' is not a permutation of {GEMMINI_ORDER}"
    if len(m.tile) != 7:
        return "a conv tile has 7 entries (batches, porows, pocols, pochs, krows, kcols, kchs)"
    for name, t, d in zip(ARG_NAMES, m.tile, shape.dims):
        if not 1 <= t <= d:
            return f"tile {name}={t} outside [1, {d}]"
    if shape.r != shape.s:
        return f"tiled_conv takes one kernel_dim (square kernels), this conv is {shape.r}x{shape.s}"
    if shape.padding >= shape.r and shape.padding > 0:
        return f"tiled_conv needs kernel_dim > padding ({shape.r} <= {shape.padding})"
    if loader_never_ends(arch, shape, m.tile[2], m.tile[5]):
        return (
            f"pocols={m.tile[2]} with kcols={m.tile[5]} puts a tile's input window wholly in the left "
            f"padding ({shape.padding} columns): LoopConv's input loader wraps its 16-bit column "
            "iterator and never finishes"
        )
    need = spad_rows_needed(arch, shape, m.tile) * (2 if m.db_spad else 1)
    if need > arch.spad_rows:
        return f"scratchpad needs {need} rows, has {arch.spad_rows}"
    need = acc_rows_needed(arch, m.tile) * (2 if m.db_acc else 1)
    if need > arch.acc_rows:
        return f"accumulator needs {need} rows, has {arch.acc_rows}"
    return None


def valid_mask(arch: Arch, problem: Problem, b: ConvMappingBatch) -> np.ndarray:
    """Vectorised :func:`invalid_reason` is None."""
    shape = conv_shape(problem, arch)
    D = np.array(shape.dims, dtype=np.int64)
    T = b.tile
    ok = np.all((T >= 1) & (T <= D), axis=1) & (b.dataflow == 0) & ("ws" in arch.dataflows)
    ok &= shape.r == shape.s and not (shape.padding >= shape.r and shape.padding > 0)
    W = arch.dim_cols
    tb, tp, tq, tk, tr, ts, tc = (T[:, j] for j in range(7))
    ds = 1 if shape.downsample else 0
    irows = (tp * shape.stride + (tr - 1) * shape.dilation) >> ds
    icols = (tq * shape.stride + (ts - 1) * shape.dilation) >> ds
    spad = -(-tc // W) * tb * irows * icols + -(-tk // W) * ts * tr * tc
    acc = -(-tk // W) * tb * tp * tq
    ok &= spad * np.where(b.db_spad, 2, 1) <= arch.spad_rows
    ok &= acc * np.where(b.db_acc, 2, 1) <= arch.acc_rows
    return ok & ~loader_never_ends(arch, shape, tq, ts)


def random_mappings(
    arch: Arch, problem: Problem, n: int, rng: np.random.Generator, gemmini_order: bool = False
) -> ConvMappingBatch:
    """Up to ``n`` valid mappings drawn at random (tiles uniform per dim, log-biased toward small;
    any order unless ``gemmini_order``; buffering random). For tests and sampling, not uniform
    over the valid space."""
    shape = conv_shape(problem, arch)
    D = np.array(shape.dims, dtype=np.int64)
    k = 4 * n + 64
    u = rng.random((k, 7))
    T = np.clip(np.floor(np.exp(u * np.log(D + 1))).astype(np.int64), 1, D)
    order = np.full(k, ORDER_INDEX[GEMMINI_ORDER]) if gemmini_order else rng.integers(0, len(ORDERS), k)
    b = ConvMappingBatch(
        tile=T,
        order=order.astype(np.int64),
        dataflow=np.zeros(k, dtype=np.int8),
        db_spad=rng.random(k) < 0.5,
        db_acc=rng.random(k) < 0.5,
    )
    keep = np.flatnonzero(valid_mask(arch, problem, b))[:n]
    return ConvMappingBatch(b.tile[keep], b.order[keep], b.dataflow[keep], b.db_spad[keep], b.db_acc[keep])
