"""The space of mappings of one GEMM on one arch: size, enumeration, uniform sampling (DESIGN §4).

A point is a :class:`~gemmap.mapping.Mapping`: dataflow × local tile (Tm, Tk, Tn) × L2 factors
(fm, fk, fn) × DRAM and L2 loop orders × double buffering of the scratchpad and accumulator.
Spatial unrolling is not a choice: Gemmini wires it per dataflow (mapping.py).

**Tile candidates.** A dim of size D cut into n tiles needs tiles of at least ceil(D/n). For
each distinct count n the candidates are that smallest tile, which needs the least SRAM, and the
smallest multiple of the array width (DIM) at least as large that still gives n tiles: a
DIM-aligned tile fills whole folds and leaves the waste to the last tile, which can save a fold
(D = 40, DIM 16, two tiles: 20 + 20 is 4 folds, 32 + 8 is 3), and it is how Gemmini's own tiler
cuts (tiles of whole DIM blocks). About 2√D values (:func:`tile_candidates`). L2 factors per dim
are the ceil set over the local tile count n1 = ceil(D/T): ``{ceil(n1/n2)}`` (:func:`candidates`),
one per distinct DRAM-level count n2.

**Pruning.** A loop of bound 1 is order-free, so two orders of one level that agree on the
relative order of the loops with bound > 1 are the same mapping. The representative of such a
class is the first order in the alphabet M < N < K (Gemmini's i, j, k), so an all-trivial level
has order ``MNK``; without an L2 the L2 order is ``MNK`` and the factors are (1, 1, 1). A level
with b loops of bound > 1 has b! classes.

**Validity** is :func:`gemmap.mapping.valid_mask`: scratchpad and accumulator rows (doubled when
double-buffered), and the L2 bytes of one A, B, C L2 tile. **full_rows** (fusion with a row-wise
Softmax/LayerNorm) adds Tn = N and no partial-sum spill out of the accumulator: the fills of C
into the local level equal M·N (:data:`gemmap.model.FILL_LEVEL` of C is 0), which only restricts
the loop orders.

**Counting** works by sub-space: per (db_spad, db_acc) a boolean grid over the tile-candidate
indices; per tile triple the weight S = Σ over L2-feasible factors of the number of order-class
pairs, where for fixed (fm, fk) the feasible fn form a prefix of the sorted candidates (the L2
bytes grow with every tile), counted from prefix tables; × dataflows. Sampling draws a tile
triple with probability ∝ its exact count, then (dataflow, buffering) uniformly, then (factors,
orders) uniformly within the triple: (fm, fk) from the box of candidates, accepted with probability
(its exact weight) / (an upper bound), a rejected draw redrawn for the same triple, then fn and
the order pair decoded from one uniform integer — uniform over the valid pruned space.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol, Self, TypeVar

import numpy as np

from gemmap.arch import Arch, ceil_div
from gemmap.errors import GemmapError
from gemmap.mapping import ORDER_DIMS, ORDER_INDEX, ORDERS, Mapping, MappingBatch, invalid_reason
from gemmap.model import FILL_LEVEL
from gemmap.specio import check_samples
from gemmap.workload import Problem


class _Batch(Protocol):
    """A batch of mappings (:class:`MappingBatch`, :class:`gemmap.conv.ConvMappingBatch`)."""

    def __len__(self) -> int: ...

    def take(self, index: np.ndarray) -> Self: ...


B = TypeVar("B", bound=_Batch)

#: order rank in the alphabet M < N < K; the canonical order of a class is the lowest rank
_ALPHABET = {"M": 0, "N": 1, "K": 2}
_BY_RANK = sorted(range(len(ORDERS)), key=lambda i: [_ALPHABET[c] for c in ORDERS[i]])
DB_CHOICES = ((False, False), (False, True), (True, False), (True, True))
#: the most local tile triples (Tm, Tk, Tn candidates) a search over the GEMM mapspace tabulates:
#: its counts, its samples and the optimal search's bound pass hold up to ≈24 bytes per triple
#: (≈1 GiB here; a GPT-3 FFN has 13 M); a larger layer is refused before any work
MAX_TILE_TRIPLES = 40_000_000
#: tile triples expanded at once by :meth:`MapSpace.enumerate` (a few hundred thousand mappings)
TRIPLES_PER_CHUNK = 4096


def candidates(size: int) -> np.ndarray:
    """The distinct ceil(size/n), n = 1..size, ascending: the smallest tile for each tile count.

    About 2√size values, found in O(√size) time and memory (sizes can be huge): for n ≤ s = ⌊√size⌋
    every ceil(size/n) is listed; the larger n give values v ≤ ceil(size/s), and v occurs exactly
    when n = ceil(size/v) maps back to it. Both lists are sorted, so no sort is needed."""
    s = math.isqrt(size)
    big = -(-size // np.arange(s, 0, -1, dtype=np.int64))  # ascending, all ≥ ceil(size/s)
    v = np.arange(1, -(-size // s) + 1, dtype=np.int64)
    both = np.concatenate([v[-(-size // -(-size // v)) == v], big])  # sorted, with repeats
    return both[np.concatenate([[True], np.diff(both) > 0])]


def tile_candidates(size: int, dim: int) -> np.ndarray:
    """Local-tile candidates of a dim of ``size`` on an array ``dim`` wide, ascending: per tile count
    n, ceil(size/n) and the smallest multiple of ``dim`` above it that still gives n tiles."""
    smallest = candidates(size)
    aligned = -(-smallest // dim) * dim
    keep = (aligned <= size) & (-(-size // aligned) == -(-size // smallest))
    return np.unique(np.concatenate([smallest, aligned[keep]]))


def canonical_order(order: int, mask: int) -> int:
    """Index of the representative of ``order``'s class when the dims in bit-``mask`` have bound > 1."""
    key = [d for d in ORDER_DIMS[order] if mask >> int(d) & 1]
    for i in _BY_RANK:
        if [d for d in ORDER_DIMS[i] if mask >> int(d) & 1] == key:
            return i
    raise AssertionError("unreachable")


def order_classes(mask: int) -> tuple[int, ...]:
    """Representatives of the order classes of a level whose non-trivial dims are ``mask``."""
    return tuple(sorted({canonical_order(o, mask) for o in range(len(ORDERS))}))


def _pair_table() -> tuple[np.ndarray, np.ndarray]:
    """PAIRS[fr, md, ml, i] = (dram order, l2 order) of the i-th pruned order pair for DRAM mask
    ``md`` and L2 mask ``ml`` (fr = 1: only pairs that keep C's reduction in the accumulator);
    COUNT[fr, md, ml] how many there are."""
    pairs = np.zeros((2, 8, 8, 36, 2), dtype=np.int64)
    count = np.zeros((2, 8, 8), dtype=np.int64)
    for md, ml in itertools.product(range(8), range(8)):
        allp = [(od, ol) for od in order_classes(md) for ol in order_classes(ml)]
        for fr in (0, 1):
            keep = [p for p in allp if not fr or FILL_LEVEL[2, p[0], p[1], md, ml] == 0]
            count[fr, md, ml] = len(keep)
            pairs[fr, md, ml, : len(keep)] = np.array(keep, dtype=np.int64).reshape(-1, 2)
    return pairs, count


PAIRS, PAIR_COUNT = _pair_table()
PAIRS.setflags(write=False)
PAIR_COUNT.setflags(write=False)


def _readonly(*arrays: np.ndarray) -> None:
    for a in arrays:
        a.setflags(write=False)


@dataclasses.dataclass(frozen=True)
class SpaceSize:
    """The size of a mapspace and the sub-spaces it is the product/sum of.

    ``total = dataflows × Σ_{valid (tile, buffering)} Σ_{L2-feasible factors} order_pairs``;
    ``tiles`` counts valid (local tile, db_spad, db_acc) per dataflow; ``tilings`` counts valid
    (local tile, buffering, L2 factors) per dataflow (= ``tiles`` without an L2).
    """

    total: int
    dataflows: int
    tile_candidates: tuple[int, int, int]
    tiles: int
    tilings: int


@dataclasses.dataclass(frozen=True)
class _Counts:
    """Per tile triple (flat index into the candidate grid): valid buffering choices, L2 factor
    combinations, and S = Σ over them of order pairs."""

    lc: np.ndarray  # (nt,) valid (db_spad, db_acc) choices
    ok: np.ndarray  # (4, nm, nk, nn) validity per DB_CHOICES
    factors: np.ndarray  # (nt,) L2-feasible factor combinations
    weight: np.ndarray  # (nt,) S


def rebatch(parts: Iterable[B], size: int, concat: Callable[[list[B]], B]) -> Iterator[B]:
    """The mappings of ``parts`` (batches of any length, in order) again, in batches of exactly ``size``
    but the last: what both spaces' ``enumerate`` yields."""
    pending: list[B] = []
    held = 0
    for part in parts:
        pending.append(part)
        held += len(part)
        while held >= size:
            joined = concat(pending)
            yield joined.take(np.arange(size))
            rest = joined.take(np.arange(size, len(joined)))
            pending, held = [rest], len(rest)
    if held:
        yield concat(pending)


@dataclasses.dataclass(frozen=True)
class MapSpace:
    """The pruned valid mapspace of ``problem`` on ``arch`` (immutable; derived tables are cached
    per instance and read-only). ``full_rows``: Tn = N and C reduced in the accumulator."""

    arch: Arch
    problem: Problem
    full_rows: bool = False
    #: only mappings whose accumulator is double-buffered (a fused row-wise op's passes over one row
    #: block then overlap the next block's matmul: gemmap/schedule.py)
    acc_overlap: bool = False

    # --- sub-spaces ------------------------------------------------------------------------
    @functools.cached_property
    def cands(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Local-tile candidates per dim (N only N itself under full_rows)."""
        M, K, N = self.problem.shape_key()
        rows, cols = self.arch.dim_rows, self.arch.dim_cols
        cn = np.array([N], dtype=np.int64) if self.full_rows else tile_candidates(N, cols)
        out = (tile_candidates(M, rows), tile_candidates(K, rows), cn)
        _readonly(*out)
        return out

    @functools.cached_property
    def _grid(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Tm, Tk, Tn broadcast over the candidate grid (nm, nk, nn)."""
        cm, ck, cn = self.cands
        return cm[:, None, None], ck[None, :, None], cn[None, None, :]

    @functools.cached_property
    def factor_sets(self) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
        """Per dim, the L2 factor candidates of each local-tile candidate: (padded (nt, w), lengths)."""
        out = []
        for size, cand in zip(self.problem.shape_key(), self.cands):
            if self.arch.l2 is None:
                sets = [np.ones(1, dtype=np.int64) for _ in cand]
            else:
                sets = [candidates(ceil_div(size, int(t))) for t in cand]
            lens = np.array([len(s) for s in sets], dtype=np.int64)
            pad = np.zeros((len(sets), int(lens.max())), dtype=np.int64)
            for i, s in enumerate(sets):
                pad[i, : len(s)] = s
            _readonly(pad, lens)
            out.append((pad, lens))
        return tuple(out)

    @functools.cached_property
    def tile_ok(self) -> np.ndarray:
        """(4, nm, nk, nn): the local tile fits its SRAMs with buffering DB_CHOICES[i], and the L2
        (if any) holds at least the local tile itself (so some L2 factors are feasible)."""
        arch, t = self.arch, self.arch.datatypes
        Tm, Tk, Tn = self._grid
        c = arch.dim_cols
        spad = Tm * -(-Tk // c) + Tk * -(-Tn // c)
        acc = Tm * -(-Tn // c)
        ok = np.stack(
            [
                (spad * (1 + s) <= arch.spad_rows) & (acc * (1 + a) <= arch.acc_rows) & (a or not self.acc_overlap)
                for s, a in DB_CHOICES
            ]
        )
        if arch.l2 is not None:
            ok &= (Tm * Tk * t.input_bytes + Tk * Tn * t.weight_bytes + Tm * Tn * t.acc_bytes <= arch.l2.bytes)[None]
        _readonly(ok)
        return ok

    @functools.cached_property
    def counts(self) -> _Counts:
        arch = self.arch
        ok = self.tile_ok
        lc = ok.sum(axis=0).reshape(-1).astype(np.int64)
        if arch.l2 is None:
            D = np.array(self.problem.shape_key())
            n1 = [-(-D[j] // t) for j, t in enumerate(self._grid)]
            md = (n1[0] > 1) + 2 * (n1[1] > 1) + 4 * (n1[2] > 1)
            weight = np.broadcast_to(PAIR_COUNT[int(self.full_rows), md, 0], ok.shape[1:]).reshape(-1).copy()
            factors = np.ones_like(weight)
        else:
            factors, weight = self._l2_counts(lc.reshape(ok.shape[1:]) > 0)
        _readonly(lc, factors, weight)
        return _Counts(lc=lc, ok=ok, factors=factors, weight=weight)

    def l2_rows(self, im: int, ik: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """For local tiles (cm[im], ck[ik], any Tn): every (fm, fk) pair as flat arrays of fm, fk,
        their mask bits (bit 0: DRAM loop > 1, bit 1: L2 loop > 1) and the largest L2 N-tile X
        that still fits (−1: none)."""
        arch, (M, K, _) = self.arch, self.problem.shape_key()
        t = arch.datatypes
        (fmp, fml), (fkp, fkl) = self.factor_sets[0], self.factor_sets[1]
        tm, tk = int(self.cands[0][im]), int(self.cands[1][ik])
        fm, fk = np.meshgrid(fmp[im, : fml[im]], fkp[ik, : fkl[ik]], indexing="ij")
        fm, fk = fm.reshape(-1), fk.reshape(-1)
        t2m, t2k = np.minimum(fm * tm, M), np.minimum(fk * tk, K)
        room = arch.l2.bytes - t2m * t2k * t.input_bytes  # type: ignore[union-attr]
        X = np.where(room >= 0, room // (t2k * t.weight_bytes + t2m * t.acc_bytes), -1)
        return fm, fk, _bits(fm, fmp[im, fml[im] - 1]), _bits(fk, fkp[ik, fkl[ik] - 1]), X

    @functools.cached_property
    def _n_prefix(self) -> np.ndarray:
        """PRE[c, y] = how many L2 factors of N-tile candidate c are ≤ y (y up to the largest n1)."""
        pad, lens = self.factor_sets[2]
        ymax = int(pad.max())
        y = np.arange(ymax + 1)
        pre = np.stack([np.searchsorted(pad[c, : lens[c]], y, side="right") for c in range(len(lens))])
        _readonly(pre)
        return pre

    @functools.cached_property
    def _n_last(self) -> np.ndarray:
        """n1 of every N-tile candidate (its largest L2 factor)."""
        pad, lens = self.factor_sets[2]
        out = pad[np.arange(len(lens)), lens - 1]
        _readonly(out)
        return out

    def fn_categories(self, bm: np.ndarray, bk: np.ndarray, X: np.ndarray, c: np.ndarray) -> list[tuple]:
        """Feasible fn of N-tile candidate ``c`` under L2 N-tile bound ``X`` (arrays broadcast
        together), split in the categories fn = 1, 1 < fn < n1, fn = n1 > 1, each as (count,
        order pairs per factor, DRAM mask, L2 mask) for rows with M/K mask bits ``bm``/``bk``."""
        fr, N, n1 = int(self.full_rows), self.problem.N, self._n_last[c]
        y = np.where(X >= N, n1, np.clip(X // self.cands[2][c], 0, n1))
        k = self._n_prefix[c, y]
        multi = n1 > 1
        first = np.minimum(k, 1)
        last = (multi & (y >= n1)).astype(np.int64)
        out = []
        for cnt, bits in ((first, multi.astype(np.int64)), (k - first - last, 3), (last, 2)):
            md = (bm & 1) + 2 * (bk & 1) + 4 * (bits & 1)
            ml = (bm >> 1) + 2 * (bk >> 1) + 4 * (bits >> 1)
            out.append(tuple(np.broadcast_arrays(cnt, PAIR_COUNT[fr, md, ml], md, ml)))
        return out

    def _l2_counts(self, any_ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per tile triple: feasible L2 factor combinations and Σ of their order pairs.

        For one (Tm, Tk) the rows are the (fm, fk) pairs; per row and N-tile column the
        feasible fn are a prefix; a category's order-pair count depends on the row only (and,
        for fn = 1, on whether n1 > 1), so column sums are matrix-vector products.
        """
        fr = int(self.full_rows)
        nm, nk, nn = any_ok.shape
        factors = np.zeros((nm, nk, nn), dtype=np.int64)
        weight = np.zeros((nm, nk, nn), dtype=np.int64)
        cols = np.arange(nn)[None, :]
        n1, N = self._n_last[None, :], self.problem.N
        multi = n1 > 1
        for im, ik in itertools.product(range(nm), range(nk)):
            if not any_ok[im, ik].any():
                continue
            _, _, bm, bk, X = self.l2_rows(im, ik)
            Xc = X[:, None]
            y = np.where(Xc >= N, n1, np.clip(Xc // self.cands[2][None, :], 0, n1))
            k = self._n_prefix[cols, y]
            first = (y >= 1).astype(np.int64)
            last = (multi & (y >= n1)).astype(np.int64)
            mdk, mlk = (bm & 1) + 2 * (bk & 1), (bm >> 1) + 2 * (bk >> 1)
            w_mid, w_last = PAIR_COUNT[fr, mdk + 4, mlk + 4], PAIR_COUNT[fr, mdk, mlk + 4]
            w_first = np.where(multi, PAIR_COUNT[fr, mdk + 4, mlk][:, None], PAIR_COUNT[fr, mdk, mlk][:, None])
            factors[im, ik] = k.sum(axis=0)
            weight[im, ik] = w_mid @ (k - first - last) + w_last @ last + (w_first * first).sum(axis=0)
        return factors.reshape(-1), weight.reshape(-1)

    # --- (a) size ----------------------------------------------------------------------------
    def size(self) -> SpaceSize:
        """The exact number of valid pruned mappings, counted by sub-space (no enumeration)."""
        c = self.counts
        ndf = len(self.arch.dataflows)
        return SpaceSize(
            total=ndf * int(np.dot(c.lc, c.weight)),
            dataflows=ndf,
            tile_candidates=tuple(len(x) for x in self.cands),  # type: ignore[arg-type]
            tiles=int(c.lc.sum()),
            tilings=int(np.dot(c.lc, c.factors)),
        )

    # --- (d) why empty -----------------------------------------------------------------------
    def why_empty(self) -> str | None:
        """Why no valid mapping exists (None if one does): the smallest mapping and what it overflows."""
        if self.tile_ok.any():
            return None
        arch, (M, K, N) = self.arch, self.problem.shape_key()
        tn = N if self.full_rows else 1
        m = Mapping(arch.dataflows[0], (1, 1, tn), db_spad=False, db_acc=False)
        what = f"a 1x1x{tn} tile" + (f" (whole {N}-wide output rows, as fusion needs)" if self.full_rows else "")
        reason = invalid_reason(arch, self.problem, m) or "no loop order keeps the reduction in the accumulator"
        c = arch.dim_cols
        if reason.startswith("accumulator"):
            reason = (
                f"accumulator of {arch.accumulator.kib} KiB ({arch.acc_rows} rows of {c} int32) cannot hold "
                f"one {tn}-wide row block ({ceil_div(tn, c)} rows) even with Tm=1"
            )
        elif reason.startswith("scratchpad"):
            reason = f"scratchpad of {arch.scratchpad.kib} KiB ({arch.spad_rows} rows of {c}) is too small: {reason}"
        return (
            f"{self.problem.name} ({M}x{K}x{N}) has no valid mapping on {arch.name}: even {what} does not fit: {reason}"
        )

    def require_small_grid(self, what: str) -> None:
        """Refuse, before any array is allocated, a space whose local-tile grid (candidates of M × K ×
        N) exceeds :data:`MAX_TILE_TRIPLES` for ``what`` (the exhaustive walk, the random sampler; the
        map, schedule and sweep commands refuse such a layer earlier, :func:`gemmap.search.check_size`)."""
        cells = 1
        for c in self.cands:
            cells *= len(c)
        if cells > MAX_TILE_TRIPLES:
            raise GemmapError(
                f"{self.problem.name}: {what} would tabulate {cells:,} local tile triples, over its limit of "
                f"{MAX_TILE_TRIPLES:,} (≈1 GiB of tables); use --search heuristic or smaller sizes"
            )

    def require_nonempty(self) -> None:
        """Raise :class:`GemmapError` with :meth:`why_empty` when the space is empty."""
        reason = self.why_empty()
        if reason is not None:
            raise GemmapError(reason)

    # --- local configurations (for the searches) -----------------------------------------
    def local_configs(self) -> tuple[MappingBatch, np.ndarray]:
        """Every valid (dataflow, local tile, buffering) as a batch with L2 factors 1 and the
        canonical all-trivial orders, and the flat tile-triple index of each row."""
        ok = self.tile_ok.reshape(4, -1)
        db, tri = np.nonzero(ok)
        ndf = len(self.arch.dataflows)
        db, tri = np.tile(db, ndf), np.tile(tri, ndf)
        df = np.repeat([0 if d == "ws" else 1 for d in self.arch.dataflows], len(db) // ndf).astype(np.int8)
        n = len(tri)
        dbc = np.array(DB_CHOICES)
        mnk = np.full(n, ORDER_INDEX["MNK"], dtype=np.int64)
        batch = MappingBatch(
            df, self._tiles(tri), np.ones((n, 3), dtype=np.int64), mnk, mnk.copy(), dbc[db, 0], dbc[db, 1]
        )
        return batch, tri

    def _tiles(self, tri: np.ndarray) -> np.ndarray:
        idx = np.unravel_index(tri, tuple(len(x) for x in self.cands))
        return np.stack([self.cands[j][idx[j]] for j in range(3)], axis=1)

    # --- (b) enumerate ---------------------------------------------------------------------
    def enumerate(self, batch_size: int = 1 << 18) -> Iterator[MappingBatch]:
        """Every valid pruned mapping exactly once, in chunks of at most ``batch_size``."""
        lcs, tri = self.local_configs()
        order = np.argsort(tri, kind="stable")
        lcs, tri = lcs.take(order), tri[order]

        def joined() -> Iterator[MappingBatch]:
            for chunk in self._tilings(np.unique(tri)):
                # join each (tile, factors, orders) row with every local config of its tile triple
                lo, hi = np.searchsorted(tri, chunk[0], "left"), np.searchsorted(tri, chunk[0], "right")
                reps = hi - lo
                row = np.repeat(np.arange(len(reps)), reps)
                pick = np.repeat(lo, reps) + np.arange(len(row)) - np.repeat(np.cumsum(reps) - reps, reps)
                f, od, ol = chunk[1][row], chunk[2][row], chunk[3][row]
                yield dataclasses.replace(lcs.take(pick), l2_factors=f, dram_order=od, l2_order=ol)

        yield from rebatch(joined(), batch_size, MappingBatch.concat)

    def _tilings(self, triples: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """(triple, factors (r, 3), dram order, l2 order) of every feasible (factors, order pair)
        of the given tile triples, in chunks."""
        fr = int(self.full_rows)
        shape = tuple(len(x) for x in self.cands)
        if self.arch.l2 is None:
            for start in range(0, len(triples), TRIPLES_PER_CHUNK):  # bounded memory per chunk
                part = triples[start : start + TRIPLES_PER_CHUNK]
                md = self._flat_masks(part)
                k = PAIR_COUNT[fr, md, 0]
                row = np.repeat(np.arange(len(part)), k)
                i = np.arange(len(row)) - np.repeat(np.cumsum(k) - k, k)
                p = PAIRS[fr, md[row], 0, i]
                yield part[row], np.ones((len(row), 3), dtype=np.int64), p[:, 0], p[:, 1]
            return
        im_all, ik_all, in_all = np.unravel_index(triples, shape)
        for im, ik in sorted(set(zip(im_all.tolist(), ik_all.tolist()))):
            ns = in_all[(im_all == im) & (ik_all == ik)]
            fm, fk, bm, bk, X = self.l2_rows(im, ik)
            cats = self.fn_categories(bm[:, None], bk[:, None], X[:, None], np.arange(len(self.cands[2]))[None, :])
            fn_pad, fn_len = self.factor_sets[2]
            for c in ns:
                out_f, out_p = [], []
                for cat, (cnt, pc, md, ml) in enumerate(cats):
                    for r in np.flatnonzero(cnt[:, c]):
                        if cat == 0:
                            fns = np.ones(1, dtype=np.int64)
                        elif cat == 2:
                            fns = fn_pad[c, fn_len[c] - 1 : fn_len[c]]
                        else:
                            fns = fn_pad[c, 1 : 1 + cnt[r, c]]
                        pairs = PAIRS[fr, md[r, c], ml[r, c], : pc[r, c]]
                        ff = np.repeat(fns, len(pairs))
                        out_f.append(np.stack([np.full_like(ff, fm[r]), np.full_like(ff, fk[r]), ff], axis=1))
                        out_p.append(np.tile(pairs, (len(fns), 1)))
                if out_f:
                    f = np.concatenate(out_f)
                    p = np.concatenate(out_p)
                    tri = np.full(len(f), np.ravel_multi_index((im, ik, c), shape), dtype=np.int64)
                    yield tri, f, p[:, 0], p[:, 1]

    # --- (c) sample ------------------------------------------------------------------------
    def sample(self, n: int, seed: int = 0) -> MappingBatch:
        """``n`` valid pruned mappings drawn uniformly (with replacement); same seed, same draws."""
        check_samples(n)
        self.require_small_grid("random sampling")
        self.require_nonempty()
        rng = np.random.default_rng(seed)
        c = self.counts
        ndf = len(self.arch.dataflows)
        w = c.lc * c.weight
        tri_ids = np.flatnonzero(w)
        cum = np.cumsum(w[tri_ids])
        parts: list[MappingBatch] = []
        need = n
        while need > 0:
            m = max(need, 1024) if self.arch.l2 is None else need
            tri = tri_ids[np.searchsorted(cum, rng.integers(0, int(cum[-1]), m), side="right")]
            f, od, ol, keep = self._draw_tilings(tri, rng)
            # a rejected draw is redrawn for the same tile triple, so triples keep their weights
            while not keep.all():
                redo = np.flatnonzero(~keep)
                f2, od2, ol2, keep2 = self._draw_tilings(tri[redo], rng)
                f[redo], od[redo], ol[redo], keep[redo] = f2, od2, ol2, keep2
            tri, f, od, ol = tri[:need], f[:need], od[:need], ol[:need]
            k = len(tri)
            # (dataflow, buffering) uniformly among the valid ones of the tile
            okt = c.ok.reshape(4, -1)[:, tri]
            pick = (rng.random(k) * c.lc[tri]).astype(np.int64)
            db = np.argmax(np.cumsum(okt, axis=0) > pick[None, :], axis=0)
            dfs = np.array([0 if d == "ws" else 1 for d in self.arch.dataflows], dtype=np.int8)
            df = dfs[rng.integers(0, ndf, k)]
            dbc = np.array(DB_CHOICES)
            parts.append(MappingBatch(df, self._tiles(tri), f, od, ol, dbc[db, 0], dbc[db, 1]))
            need -= k
        return MappingBatch.concat(parts)

    def _draw_tilings(self, tri: np.ndarray, rng: np.random.Generator):
        """Uniform (factors, order pair) of each tile triple's feasible set; ``keep`` marks the
        draws accepted by the rejection step (always all without an L2)."""
        fr = int(self.full_rows)
        m = len(tri)
        shape = tuple(len(x) for x in self.cands)
        if self.arch.l2 is None:
            md = self._flat_masks(tri)
            p = PAIRS[fr, md, 0, (rng.random(m) * PAIR_COUNT[fr, md, 0]).astype(np.int64)]
            return np.ones((m, 3), dtype=np.int64), p[:, 0], p[:, 1], np.ones(m, dtype=bool)
        im, ik, c = np.unravel_index(tri, shape)
        (fmp, fml), (fkp, fkl), (fnp, fnl) = self.factor_sets
        a = (rng.random(m) * fml[im]).astype(np.int64)
        b = (rng.random(m) * fkl[ik]).astype(np.int64)
        fm, fk = fmp[im, a], fkp[ik, b]
        (M, K, _), t = self.problem.shape_key(), self.arch.datatypes
        bm = _bits(fm, fmp[im, fml[im] - 1])
        bk = _bits(fk, fkp[ik, fkl[ik] - 1])
        t2m, t2k = np.minimum(fm * self.cands[0][im], M), np.minimum(fk * self.cands[1][ik], K)
        room = self.arch.l2.bytes - t2m * t2k * t.input_bytes  # type: ignore[union-attr]
        X = np.where(room >= 0, room // (t2k * t.weight_bytes + t2m * t.acc_bytes), -1)
        cats = self.fn_categories(bm, bk, X, c)
        rows = np.arange(m)
        cnt = np.stack([x[0] for x in cats])  # (3, m)
        pc = np.stack([x[1] for x in cats])
        wt = cnt * pc
        total = wt.sum(axis=0)
        cap = fnl[c] * int(PAIR_COUNT[fr].max())
        v = (rng.random(m) * cap).astype(np.int64)
        keep = v < total
        v = np.minimum(v, np.maximum(total - 1, 0))
        cw = np.cumsum(wt, axis=0)
        cat = np.argmax(cw > v[None, :], axis=0)
        off = v - (cw[cat, rows] - wt[cat, rows])
        pcs = np.maximum(pc[cat, rows], 1)
        elem, pair = off // pcs, off % pcs
        fn = np.where(
            cat == 0, 1, np.where(cat == 2, fnp[c, fnl[c] - 1], fnp[c, np.minimum(1 + elem, fnp.shape[1] - 1)])
        )
        md = np.stack([x[2] for x in cats])[cat, rows]
        ml = np.stack([x[3] for x in cats])[cat, rows]
        p = PAIRS[fr, md, ml, pair]
        return np.stack([fm, fk, fn], axis=1), p[:, 0], p[:, 1], keep

    def _flat_masks(self, tri: np.ndarray) -> np.ndarray:
        """DRAM-level masks (local tile counts > 1) of tile triples, for an arch without an L2."""
        D = np.array(self.problem.shape_key())
        n1 = -(-D // self._tiles(tri))
        return (n1[:, 0] > 1) + 2 * (n1[:, 1] > 1) + 4 * (n1[:, 2] > 1)


def _bits(f: np.ndarray, n1: np.ndarray) -> np.ndarray:
    """Mask bits of an L2 factor f of a dim with n1 local tiles: bit 0 when the DRAM loop
    ceil(n1/f) > 1 (f < n1), bit 1 when the L2 loop f > 1."""
    return (f < n1).astype(np.int64) + 2 * (f > 1)
