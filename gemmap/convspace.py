"""The space of conv mappings of one conv on one arch: size, enumeration, uniform sampling.

A point is a :class:`~gemmap.conv.ConvMapping`: the 7 tile args of ``tiled_conv`` × buffering of
the scratchpad and accumulator × the outer loop order. Dataflow is WS only (Gemmini's convs have
no OS path; :mod:`gemmap.conv`).

**Tile candidates** per dim, as :func:`gemmap.mapspace.tile_candidates`: for each distinct tile
count n the smallest tile ``ceil(D/n)``, and for the channel dims k and c (the ones the array
folds in DIM blocks) also the smallest multiple of DIM giving n tiles; plus the tile Gemmini's own
``tiled_conv_auto`` picks (:mod:`gemmap.conv_tiler`), so the optimum is never worse than Gemmini's
tiler. A 7-dim grid of them.

**Order classes.** The order enters the cost only through the multipliers of
:func:`gemmap.convmodel.order_multipliers`: a tensor's multiplier is the product of the bounds of
the non-trivial loops that do not index it and sit above its innermost non-trivial relevant
loop. Two orders with the same *signature* — per tensor, the set of those loops — cost the same
for every tile with the same non-trivial dims (``mask``, bit j set when dim j has more than one
tile), so a class is a (mask, signature) pair and its representative the first order of
:data:`gemmap.conv.ORDERS` (permutations in ``bpqkrsc`` order) with that signature; Gemmini's
``bpqkrsc`` is ORDERS[0], so it always represents its own class. Under
``software.reload_operands`` without an L2 the input and weights are moved by every call whatever
the order, so only the outputs' signature counts (which non-trivial reductions r, s, c sit above
the innermost non-trivial output loop: partial-sum spills): 2^ρ classes for ρ non-trivial
reductions, 1 without a non-trivial output loop. Otherwise (Timeloop residency, or an L2 level)
all three tensors' signatures count. On an arch whose cache L2 re-fetches output lines
(:func:`gemmap.convmodel.refetch_store_floor`) the signature also holds the non-trivial loops inside
the output-channel loop (``ConvMapSpace.class_key``). Loops of bound 1 are order-free by construction.

**Counting, enumerating, sampling.** The valid pruned space is ordered: tile (flat index into the
candidate grid, C order), then buffering (:data:`DB_CHOICES` order, the valid ones), then class.
A tile's weight is (valid bufferings) × (classes of its mask), computed per chunk of the grid, so
memory stays bounded whatever the grid's size; the size is the sum of weights. A uniform sample
draws global offsets uniformly in ``[0, size)`` and decodes each (chunk, tile, buffering, class)
from the weights: exactly uniform over the valid pruned space.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator

import numpy as np

from gemmap import warm
from gemmap.arch import Arch
from gemmap.conv import (
    DIMS,
    ORDER_DIMS,
    ORDER_POS,
    ORDERS,
    RELEVANT,
    ConvMapping,
    ConvMappingBatch,
    ConvShape,
    conv_shape,
    invalid_reason,
    valid_mask,
)
from gemmap.conv_tiler import tiled_conv_auto_args
from gemmap.dma import write_allocates
from gemmap.errors import GemmapError
from gemmap.mapspace import DB_CHOICES, candidates, rebatch, tile_candidates
from gemmap.specio import check_samples
from gemmap.workload import Problem

#: DB_CHOICES as a (4, 2) bool array: (db_spad, db_acc) per choice
DB_FLAGS = np.array(DB_CHOICES, dtype=bool)
#: tiles per chunk of the candidate grid (bounds the memory of every pass over the space)
CHUNK = 1 << 17


def order_dependent(arch: Arch) -> bool:
    """Whether the order changes the input's and weights' fills too (no per-call reloads, or an L2)."""
    return not arch.software.reload_operands or arch.l2 is not None


def signatures(mask: int, all_tensors: bool, inner_k: bool = False, rewalk: bool = False) -> np.ndarray:
    """The cost signature of every order of :data:`ORDERS` for non-trivial dims ``mask``: per
    tensor, bit d set when dim d is non-trivial, does not index it and sits above its innermost
    non-trivial relevant loop (outputs in bits 0-6, input 7-13, weights 14-20); with ``inner_k``
    (a cache L2 whose output-line re-fetches depend on the loops inside the output-channel loop:
    :func:`gemmap.convmodel.refetch_store_floor`) also bit 21 + d for each non-trivial dim d inside a
    non-trivial k loop; with ``rewalk`` (a memory-side cache, whose misses of a reload depend on what
    the loops inside the loop re-walking the tensor touch: :func:`gemmap.convmodel.cache_reload_cycles`)
    also, for the input and the weights, bit 28 + d (input) or 35 + d (weights) for each non-trivial dim d
    inside that loop."""
    live_dim = np.array([(mask >> d) & 1 for d in range(7)], dtype=bool)
    nt = live_dim[ORDER_DIMS]  # (orders, 7): the loop at each position is non-trivial
    sig = np.zeros(len(ORDERS), dtype=np.int64)
    k = DIMS.index("k")
    if inner_k and live_dim[k]:
        after_k = np.arange(7)[None, :] > ORDER_POS[:, [k]]
        sig |= np.bitwise_or.reduce(np.where(after_k & nt, np.left_shift(1, ORDER_DIMS + 21), 0), axis=1)
    for shift, name in ((0, "C"), (7, "A"), (14, "B")):
        if shift and not (all_tensors or rewalk):
            continue
        rel = np.array(RELEVANT[name], dtype=bool)[ORDER_DIMS]
        live = rel & nt
        inner = np.where(live.any(axis=1), 6 - np.argmax(live[:, ::-1], axis=1), -1)
        above = np.arange(7)[None, :] <= inner[:, None]
        if not shift or all_tensors:  # per-call reloads without an L2: the input's and weights' fills are order-free
            bits = np.where(above & ~rel & nt, np.left_shift(1, ORDER_DIMS + shift), 0)
            sig |= np.bitwise_or.reduce(bits, axis=1)
        if rewalk and shift:
            walk = np.max(np.where(above & ~rel & nt, np.arange(7)[None, :], -1), axis=1)
            inside = (np.arange(7)[None, :] > walk[:, None]) & nt & (walk[:, None] >= 0)
            sig |= np.bitwise_or.reduce(np.where(inside, np.left_shift(1, ORDER_DIMS + 28 + (shift - 7)), 0), axis=1)
    return sig


@functools.cache
def class_table(
    all_tensors: bool, inner_k: bool = False, rewalk: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(REPS (128, w), NCLASS (128,), CANON (128, orders)): per mask the representatives of its
    order classes (ascending order indices), how many there are, and each order's representative."""
    reps, canon = [], np.zeros((128, len(ORDERS)), dtype=np.int64)
    for mask in range(128):
        sig = signatures(mask, all_tensors, inner_k, rewalk)
        _, first, inverse = np.unique(sig, return_index=True, return_inverse=True)
        canon[mask] = first[inverse.reshape(-1)]
        reps.append(np.sort(first))
    ncls = np.array([len(r) for r in reps], dtype=np.int64)
    table = np.zeros((128, int(ncls.max())), dtype=np.int64)
    for mask, r in enumerate(reps):
        table[mask, : len(r)] = r
    for a in (table, ncls, canon):
        a.setflags(write=False)
    return table, ncls, canon


def tile_masks(n: np.ndarray) -> np.ndarray:
    """Bit j set where tile count ``n[:, j] > 1``."""
    return ((n > 1).astype(np.int64) << np.arange(7)).sum(axis=1)


@dataclasses.dataclass(frozen=True)
class ConvSpaceSize:
    """``total`` valid pruned mappings; ``tiles`` valid (tile, buffering) pairs; the grid's candidates per dim."""

    total: int
    tile_candidates: tuple[int, ...]
    tiles: int


@dataclasses.dataclass(frozen=True)
class _Chunk:
    """One chunk of the candidate grid: flat indices, tiles, valid bufferings (m, 4), masks, weights."""

    flat: np.ndarray
    tiles: np.ndarray
    ok: np.ndarray
    mask: np.ndarray
    weight: np.ndarray


@dataclasses.dataclass(frozen=True)
class ConvMapSpace:
    """The pruned valid mapspace of conv ``problem`` on ``arch`` (immutable; derived tables cached)."""

    arch: Arch
    problem: Problem

    @functools.cached_property
    def shape(self) -> ConvShape:
        return conv_shape(self.problem, self.arch)

    @functools.cached_property
    def all_tensors(self) -> bool:
        return order_dependent(self.arch)

    @functools.cached_property
    def class_key(self) -> tuple[bool, bool, bool]:
        """The :func:`class_table` arguments of this space: all tensors' signatures, the loops
        inside the output-channel loop where a cache L2 re-fetches output lines, and the loops inside
        the loop re-walking the input and the weights where a memory-side cache can miss their reloads."""
        rewalk = (
            warm.miss_cycles_per_byte(self.arch, self.shape) > 0.0
        )  # with or without an L2 (per-call reloads walk too)
        return self.all_tensors, write_allocates(self.arch), rewalk

    @functools.cached_property
    def cands(self) -> tuple[np.ndarray, ...]:
        """Tile candidates per dim in :data:`DIMS` order (DIM-aligned ones too for k and c), and the
        tile Gemmini's own ``tiled_conv_auto`` picks, so its mapping is in the space and the optimum
        is never worse than it."""
        auto = tiled_conv_auto_args(self.arch, self.shape)
        out = []
        for name, size, a in zip(DIMS, self.shape.dims, auto):
            if name in "kc":
                c = tile_candidates(size, self.arch.dim_cols if name == "k" else self.arch.dim_rows)
            else:
                c = candidates(size)
            out.append(np.union1d(c, np.array([a], dtype=np.int64)) if 1 <= a <= size else c)
        for a in out:
            a.setflags(write=False)
        return tuple(out)

    @functools.cached_property
    def grid(self) -> tuple[int, ...]:
        return tuple(len(c) for c in self.cands)

    @property
    def ntiles(self) -> int:
        return int(np.prod(self.grid))

    def tiles(self, flat: np.ndarray) -> np.ndarray:
        """Tiles (m, 7) of flat grid indices."""
        idx = np.unravel_index(np.asarray(flat, dtype=np.int64), self.grid)
        return np.stack([c[i] for c, i in zip(self.cands, idx)], axis=1)

    def classes(self, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(representatives (m, w), counts (m,)) of the order classes of each mask."""
        table, ncls, _ = class_table(*self.class_key)
        return table[mask], ncls[mask]

    def canonical(self, order: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The representative of each order's class under its mask."""
        return class_table(*self.class_key)[2][mask, order]

    def _chunk(self, start: int, stop: int) -> _Chunk:
        flat = np.arange(start, stop, dtype=np.int64)
        T = self.tiles(flat)
        ok = np.stack([self._valid(T, s, a) for s, a in DB_CHOICES], axis=1)
        D = np.array(self.shape.dims, dtype=np.int64)
        mask = tile_masks(-(-D // T))
        weight = ok.sum(axis=1) * class_table(*self.class_key)[1][mask]
        return _Chunk(flat, T, ok, mask, weight)

    def _valid(self, T: np.ndarray, db_spad: bool, db_acc: bool) -> np.ndarray:
        m = len(T)
        b = ConvMappingBatch(
            T, np.zeros(m, dtype=np.int64), np.zeros(m, dtype=np.int8), np.full(m, db_spad), np.full(m, db_acc)
        )
        return valid_mask(self.arch, self.problem, b)

    def chunks(self) -> Iterator[_Chunk]:
        """The candidate grid in chunks of :data:`CHUNK` tiles, in flat order."""
        for start in range(0, self.ntiles, CHUNK):
            yield self._chunk(start, min(start + CHUNK, self.ntiles))

    @functools.cached_property
    def _chunk_weights(self) -> np.ndarray:
        """Σ of tile weights per chunk (read-only)."""
        out = np.array([int(c.weight.sum()) for c in self.chunks()], dtype=np.int64)
        out.setflags(write=False)
        return out

    # --- (a) size ----------------------------------------------------------------------------
    def size(self) -> ConvSpaceSize:
        """The exact number of valid pruned mappings, counted per tile (no enumeration)."""
        tiles = sum(int(c.ok.sum()) for c in self.chunks())
        return ConvSpaceSize(int(self._chunk_weights.sum()), self.grid, tiles)

    def why_empty(self) -> str | None:
        """None if the space has a mapping, else one line on why not."""
        if int(self._chunk_weights.sum()) > 0:
            return None
        s = self.shape
        m = ConvMapping(tile=(1,) * 7, db_spad=False, db_acc=False)  # type: ignore[arg-type]
        reason = invalid_reason(self.arch, self.problem, m) or "no tile fits"
        return (
            f"{self.problem.name} (conv {s.c}->{s.k}, {s.p}x{s.q}, {s.r}x{s.s} kernel) has no valid mapping on "
            f"{self.arch.name}: {reason}"
        )

    def require_nonempty(self) -> None:
        reason = self.why_empty()
        if reason is not None:
            raise GemmapError(reason)

    # --- (b) enumerate -----------------------------------------------------------------------
    def expand(self, chunk: _Chunk, pick: np.ndarray | None = None) -> ConvMappingBatch:
        """Every (buffering, class) of the tiles ``pick`` (indices into the chunk; all by default)
        as a batch, in space order."""
        idx = np.arange(len(chunk.flat)) if pick is None else pick
        ti, di = np.nonzero(chunk.ok[idx])
        ti = idx[ti]
        reps, k = self.classes(chunk.mask[ti])
        row = np.repeat(np.arange(len(ti)), k)
        cls = np.arange(len(row)) - np.repeat(np.cumsum(k) - k, k)
        tr, dr = ti[row], di[row]
        return ConvMappingBatch(
            chunk.tiles[tr], reps[row, cls], np.zeros(len(row), dtype=np.int8), DB_FLAGS[dr, 0], DB_FLAGS[dr, 1]
        )

    def enumerate(self, batch_size: int = 1 << 18) -> Iterator[ConvMappingBatch]:
        """Every valid pruned mapping exactly once, in space order, in batches of at most ``batch_size``."""
        parts = (  # a chunk's tiles can expand to far more than a batch: a slice of them at a time
            self.expand(chunk, pick)
            for chunk in self.chunks()
            if chunk.weight.any()
            for pick in _slices(chunk.weight, batch_size)
        )
        yield from rebatch(parts, batch_size, ConvMappingBatch.concat)

    # --- (c) sample --------------------------------------------------------------------------
    def sample(self, n: int, seed: int = 0) -> ConvMappingBatch:
        """``n`` valid pruned mappings drawn uniformly (with replacement); same seed, same draws."""
        check_samples(n)
        self.require_nonempty()
        rng = np.random.default_rng(seed)
        cw = np.cumsum(self._chunk_weights)
        u = rng.integers(0, int(cw[-1]), n)
        order = np.argsort(u, kind="stable")
        us = u[order]
        which = np.searchsorted(cw, us, side="right")
        tile = np.empty((n, 7), dtype=np.int64)
        ordr = np.empty(n, dtype=np.int64)
        dbi = np.empty(n, dtype=np.int64)
        for c in np.unique(which):
            sel = np.flatnonzero(which == c)
            start = c * CHUNK
            chunk = self._chunk(start, min(start + CHUNK, self.ntiles))
            local = us[sel] - (cw[c] - self._chunk_weights[c])
            tw = np.cumsum(chunk.weight)
            ti = np.searchsorted(tw, local, side="right")
            rem = local - (tw[ti] - chunk.weight[ti])
            reps, k = self.classes(chunk.mask[ti])
            rank, cls = rem // k, rem % k
            db = np.argmax(np.cumsum(chunk.ok[ti], axis=1) > rank[:, None], axis=1)
            tile[sel], ordr[sel], dbi[sel] = chunk.tiles[ti], reps[np.arange(len(ti)), cls], db
        out = np.empty(n, dtype=np.int64)
        out[order] = np.arange(n)
        return ConvMappingBatch(
            tile[out], ordr[out], np.zeros(n, dtype=np.int8), DB_FLAGS[dbi[out], 0], DB_FLAGS[dbi[out], 1]
        )


def _slices(weight: np.ndarray, size: int) -> Iterator[np.ndarray]:
    """Consecutive runs of the tiles with mappings (``weight`` > 0) whose mappings add up to at most
    ``size`` (at least one tile each), so that expanding a run holds about one batch."""
    live = np.flatnonzero(weight)
    ends = np.cumsum(weight[live])
    start = 0
    while start < len(live):
        base = ends[start - 1] if start else 0
        stop = max(int(np.searchsorted(ends, base + size, side="right")), start + 1)
        yield live[start:stop]
        start = stop
