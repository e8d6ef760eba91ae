"""``optimal``: the best mapping for latency, energy or EDP, with a proof (DESIGN §6).

**Formulation** — a decomposition whose master problem is solved by OR-Tools CP-SAT and whose
sub-problems are solved exactly by the vectorised model:

* The mapping is split into a *local configuration* (dataflow, local tile, buffering; tabulated by
  :meth:`MapSpace.local_configs`) and a *tiling above it* (L2 factors and loop orders). For a
  local configuration the cost is ``model.combine(local_terms, bytes moved)`` and is monotone in
  every fill count (model.py).
* **Lower bound per local configuration.** Whatever the orders and L2 factors, the fills into the
  local level are at least those of a flat loop nest whose innermost non-trivial loop is some dim
  e: the tensor not indexed by e is filled once, the other two n1 times their unindexed dim (for
  the L2 nest, e is the innermost non-trivial L2 loop, its two tensors see exactly n1, the third
  at least 1). DRAM fills are at least compulsory (without an L2 they equal the local fills).
  ``LB = min over e of cost(those fills)`` — exact arithmetic of the model, vectorised.
* **Two stages, in chunks.** Only tile triples that fit (some buffering valid,
  :attr:`MapSpace.tile_ok`) are bounded, :data:`CHUNK_TRIPLES` at a time, so a layer's memory is a
  chunk's rows plus 16 bytes per fitting triple whatever its size (a GPT-3 FFN has 13 M candidate
  triples, 7.6 M of which fit). First a *floor* per triple (:func:`_floor_bounds`): per variant
  and dataflow, cycles of at least ``max(compute, DMA load, DMA store, issue, DRAM time)``, which
  :func:`model.core_cycles` exceeds whatever the buffering, with the exact energy — the model's
  own functions on the same numbers, so floor ≤ LB holds bit for bit. Then the
  :data:`SEED_TRIPLES` triples with the lowest floors are solved exactly; their best value U is
  an incumbent, and only triples whose floor is ≤ U get the exact LB (per row): any other has
  LB > U ≥ the optimum, so it is never solved and never open below — the search that follows
  is the one over every triple, step for step (ties included). On Gemmini's default arch a few
  dozen triples out of millions survive (17 of 2.4 M for a LLaMA-2-7B gate projection).
* **Sharing across SRAM capacities.** Capacity enters the bound pass only through which local
  configurations are valid and the per-byte SRAM energies; cycles and byte counts do not depend
  on it. So once a shape is searched at a second capacity, the cycles and bytes of the three
  bound variants over its *whole* candidate grid (valid or not) are computed once per (arch with
  SRAM sizes normalised, shape, full_rows) and kept in a process-level LRU of read-only arrays
  bounded by bytes (:class:`_BoundGrid`, :data:`GRID_CACHE_BYTES`; larger grids are never kept);
  a search then applies :func:`model.dynamic_energy` (the model's own energy sum, same float
  order, so bounds are bit-identical to ``combine``'s) and the validity mask. Local terms are
  computed per tile triple with dataflow and buffering as broadcast axes, not per row.
* **Exact sub-problem per tile triple.** Fills are |X| × {1, n2, n1} of X's unindexed dim, chosen
  by :data:`model.FILL_LEVEL` from the orders and the masks of non-trivial loops; per mask pair
  only the Pareto-minimal fill patterns over the pruned order pairs can be optimal. Within a
  category of fn (1, between, n1) a larger fn only lowers n2, so only the largest L2-feasible fn
  per (fm, fk) and category is costed. All (fm, fk) rows are costed.
* **Master (CP-SAT).** One Boolean per candidate — every tile triple not yet solved whose bound
  is below the incumbent, plus the incumbent — exactly one chosen, minimising its value (the
  bound for open triples, the exact optimum for solved ones; values enter as their rank, an
  order-preserving integer map, so nothing is rounded). When the chosen candidate is solved,
  its value is a global minimum (every other candidate is ≥ it by a valid bound) and CP-SAT's
  OPTIMAL status is the proof; otherwise the cheapest-bound open triples are solved (batches
  doubling) and the master is re-solved.

The returned mapping is re-scored by :func:`model.evaluate` (and must equal the value found).
``options.time_limit`` (seconds per layer) bounds the whole search, the bound pass included: it
stops between chunks (a chunk of each stage and the seed triples are always done, so a result
exists) and the loop with the best mapping so far, ``proven_optimal=False``. ``evaluated``
counts model evaluations: floors (3 per triple and dataflow), exact bounds (3 per valid row) and
costed (tile, factors, order-class) points.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import time

import numpy as np
from ortools.sat.python import cp_model

from gemmap.arch import Arch, Sram
from gemmap.mapping import ORDERS, Mapping
from gemmap.mapspace import DB_CHOICES, PAIR_COUNT, PAIRS, MapSpace
from gemmap.model import (
    FILL_LEVEL,
    FILL_TABLES,
    UNINDEXED,
    BatchCost,
    LocalTerms,
    Moved,
    boundary_bytes,
    combine,
    combine_cycles,
    dynamic_energy,
    evaluate,
    local_terms,
    memory_cycles,
    transfer_cycles,
    with_strips,
)
from gemmap.search import SearchOptions, SearchResult, objective_value
from gemmap.strips import STRIP_LEVEL
from gemmap.strips import narrow as strips_narrow
from gemmap.workload import Problem

#: codes a class is keyed by: fills of A, B, C into the local level and into the L2, strips of A and B
NCODES = 8


def _class_table(local_table: np.ndarray, dram_table: np.ndarray, strips: bool) -> tuple[np.ndarray, np.ndarray]:
    """CLASSES[fr, md, ml, i] = (8 codes: local fills of A, B, C, DRAM fills of A, B, C, strips of A
    and B; dram order; l2 order) of the Pareto-minimal code patterns among the pruned order pairs
    (every cost term grows with each fill code; equal strip codes cost the same); NCLASS their count. ``local_table`` codes the local
    level's fills (model.local_fill_level), ``dram_table`` the DRAM's (model.dram_fill_level),
    strips.STRIP_LEVEL the operands' strips."""
    classes = np.zeros((2, 8, 8, 36, NCODES + 2), dtype=np.int64)
    count = np.zeros((2, 8, 8), dtype=np.int64)
    for fr, md, ml in np.ndindex(2, 8, 8):
        seen: dict[tuple[int, ...], tuple[int, int]] = {}
        # a class is represented by its first pair: those that keep the reduction in the accumulator
        # first, so that on ties (partial sums kept, ``software.keep_partial_sums``) the search returns
        # an order whose results a software that keeps them would get right
        pairs = PAIRS[fr, md, ml, : PAIR_COUNT[fr, md, ml]]
        for od, ol in sorted(pairs.tolist(), key=lambda q: FILL_LEVEL[2, q[0], q[1], md, ml] != 0):
            code = tuple(int(local_table[x, od, ol, md, ml]) for x in range(3))
            code += tuple(int(dram_table[x, od, 0, md, 0]) for x in range(3))
            code += tuple(int(STRIP_LEVEL[x, od, ol, md, ml]) if strips else 0 for x in range(2))
            seen.setdefault(code, (int(od), int(ol)))
        # the fill codes grow every cost term; the strip codes are categories (a reload inside the
        # column loop lowers the misses), so a pattern dominates only one with the same strip codes
        keep = [
            c
            for c in seen
            if not any(o != c and o[6:] == c[6:] and all(a <= b for a, b in zip(o[:6], c[:6])) for o in seen)
        ]
        count[fr, md, ml] = len(keep)
        for i, c in enumerate(keep):
            classes[fr, md, ml, i] = (*c, *seen[c])
    return classes, count


#: CLASS_TABLES[(reload_operands, keep_partial_sums, strips)] = (CLASSES, NCLASS): Timeloop residency
#: or per-call reloads, partial sums spilled or kept (model.FILL_TABLES), and whether the operands'
#: strips can cost anything (``strips.narrow`` of the tile); without them the
#: strip codes are 0 and order pairs that differ only there are one class
CLASS_TABLES = {
    (*key, on): _class_table(table, FILL_TABLES[False, key[1]], on)
    for key, table in FILL_TABLES.items()
    for on in (False, True)
}


def _take(obj, idx: np.ndarray, n: int):
    """``obj`` (a :class:`LocalTerms` or :class:`Moved` of arrays, or one array) with every array
    whose first axis has the ``n`` entries of a table taken at ``idx``; scalars and broadcast
    constants are kept as they are."""
    if isinstance(obj, LocalTerms | Moved):
        return type(obj)(*(_take(getattr(obj, f.name), idx, n) for f in dataclasses.fields(obj)))
    if isinstance(obj, np.ndarray) and obj.ndim and obj.shape[0] == n:
        return obj[idx]
    return obj


def _value(cost: BatchCost, objective: str) -> np.ndarray:
    return np.asarray(cost.metric(objective), dtype=np.float64)


@dataclasses.dataclass(frozen=True)
class _BoundGrid:
    """The capacity-independent part of the bound pass over a list of tile triples.

    Rows are (tile triple, dataflow, buffering) in that order — row ``r`` of a triple is
    ``dataflow index · 4 + DB_CHOICES index`` — whether or not the tile fits: SRAM capacity only
    decides which rows are valid (:attr:`MapSpace.tile_ok`) and the per-byte SRAM energies, which
    :func:`model.dynamic_energy` applies to the byte counts. Arrays are factored for broadcasting
    to (ntri, ndf, 4): ``terms`` has per-(triple, dataflow) fields of shape (ntri, ndf, 1) and
    per-(triple, buffering) ones of (ntri, 1, 4); ``moved[e]`` are the (spad, acc, dram, l2 total)
    bytes of bound variant e (innermost non-trivial loop e), each (ntri, 1, 1) or a scalar, and
    ``cycles[e]`` their cycles (ntri, ndf, 4), as float64 (exact: each is the ceiling of a float64,
    and the model converts them to float64 anyway when it multiplies them with energies, so the
    products are the same). All read-only.
    """

    ntri: int
    terms: LocalTerms
    moved: tuple[tuple, ...]
    cycles: tuple[np.ndarray, ...]

    def take(self, idx: np.ndarray) -> _BoundGrid:
        """The grid of triples ``idx`` (positions in this grid)."""
        n = self.ntri
        moved = tuple(tuple(_take(x, idx, n) for x in b) for b in self.moved)
        return _BoundGrid(len(idx), _take(self.terms, idx, n), moved, tuple(c[idx] for c in self.cycles))

    @property
    def nbytes(self) -> int:
        arrays = {id(a): a for a in _arrays((self.terms, self.moved, self.cycles))}
        return sum(a.nbytes for a in arrays.values())


def _arrays(obj) -> list[np.ndarray]:
    """Every numpy array in ``obj`` (nested tuples and dataclasses)."""
    if isinstance(obj, np.ndarray):
        return [obj]
    if dataclasses.is_dataclass(obj):
        return [a for f in dataclasses.fields(obj) for a in _arrays(getattr(obj, f.name))]
    if isinstance(obj, tuple):
        return [a for x in obj for a in _arrays(x)]
    return []


def _grid_key(arch: Arch, problem: Problem, full_rows: bool) -> tuple[str, tuple[int, int, int], bool]:
    """What a :class:`_BoundGrid` depends on: the arch with its SRAM sizes (and name) normalised."""
    norm = dataclasses.replace(arch, name="", scratchpad=Sram(kib=1), accumulator=Sram(kib=1))
    return repr(norm), problem.shape_key(), full_rows


def _local_grid(arch: Arch, problem: Problem, T: np.ndarray) -> tuple[LocalTerms, tuple[tuple, ...]]:
    """The terms and the bytes of the three bound variants of :class:`_BoundGrid` for local tiles
    ``T`` (ntri, 3): everything but the cycles."""
    D = np.array(problem.shape_key(), dtype=np.int64)
    dbc = np.array(DB_CHOICES)
    # one local_terms call over the triples, dataflow (ndf, 1) and buffering (4, 1) as broadcast
    # axes (no term depends on both)
    ws = np.array([d == "ws" for d in arch.dataflows])[:, None]
    lt = local_terms(arch, problem, ws, T, dbc[:, :1], dbc[:, 1:])

    def by_df(name: str) -> np.ndarray:
        return np.ascontiguousarray(np.broadcast_to(getattr(lt, name), (len(ws), len(T))).T)[:, :, None]

    def by_db(name: str) -> np.ndarray:  # independent of the dataflow
        return np.ascontiguousarray(getattr(lt, name).T)[:, None, :]

    def by_tile(name: str) -> np.ndarray:  # independent of dataflow and buffering
        return np.broadcast_to(getattr(lt, name), (len(T),))[:, None, None]

    terms = LocalTerms(
        compute=by_df("compute"),
        prologue=by_db("prologue"),
        epilogue=by_db("epilogue"),
        first_lift=by_tile("first_lift"),
        memory_extra=by_tile("memory_extra"),
        stationary=by_df("stationary"),
        spad_reads=by_df("spad_reads"),
        accumulations=by_df("accumulations"),
        db_spad=dbc[None, None, :, 0],
        db_acc=dbc[None, None, :, 1],
        a_cpb=by_tile("a_cpb"),
        b_cpb=by_tile("b_cpb"),
        out_cpb=by_tile("out_cpb"),
        psum_cpb=by_tile("psum_cpb"),
        psum_out_cpb=by_tile("psum_out_cpb"),
        issue=by_tile("issue"),
        latency=by_tile("latency"),
    )
    n1 = -(-D // T)
    sizes = (D[0] * D[1], D[1] * D[2], D[0] * D[2])
    reload, keep = arch.software.reload_operands, arch.software.keep_partial_sums
    moved = []
    for e in range(3):
        # A and B reloaded per call: exactly n1 of their unindexed dim, whatever the order; C kept
        # in the accumulator: exactly M·N
        fills = [
            sizes[x] * (1 if (g == e and not (reload and x < 2)) or (x == 2 and keep) else n1[:, g, None, None])
            for x, g in enumerate(UNINDEXED)
        ]
        moved.append(boundary_bytes(arch, problem, fills, list(sizes)))
    return terms, tuple(moved)


def _compute_bound_grid(arch: Arch, problem: Problem, T: np.ndarray) -> _BoundGrid:
    """The :class:`_BoundGrid` of local tiles ``T`` (ntri, 3), computed afresh."""
    terms, moved = _local_grid(arch, problem, T)
    cycles = tuple(combine_cycles(arch, terms, b[0], b[1]).astype(np.float64) for b in moved)
    grid = _BoundGrid(len(T), terms, moved, cycles)
    for a in _arrays((grid.terms, grid.moved, grid.cycles)):
        a.setflags(write=False)
    return grid


#: tile triples per chunk of the bound pass (each has ndf × 4 rows): small enough that a chunk's
#: arrays stay in the CPU's caches and a layer's peak memory stays bounded whatever its size,
#: large enough to vectorise
CHUNK_TRIPLES = 1 << 13
#: bytes of bound grids kept across searches (process-level LRU, least recent dropped): a shape
#: whose whole candidate grid is larger than this is bounded chunk by chunk and not kept
GRID_CACHE_BYTES = 768 << 20
#: an upper bound of :attr:`_BoundGrid.nbytes` per tile triple and dataflow (8-byte values: 3
#: variants × 4 bufferings of cycles, 4 per-dataflow terms) plus per triple (2 × 4 per-buffering
#: terms, 9 per-tile terms, 3 variants × up to 6 byte counts)
_BYTES_PER_TRIPLE_DF, _BYTES_PER_TRIPLE = 8 * (3 * 4 + 4), 8 * (2 * 4 + 9 + 3 * 6)

_GRIDS: collections.OrderedDict[tuple[str, tuple[int, int, int], bool], _BoundGrid] = collections.OrderedDict()
#: the SRAMs (scratchpad, accumulator) a grid key was first searched at, for the
#: last _MAX_SEEN keys: a grid is built to be shared only once a second capacity asks for it
_SEEN: collections.OrderedDict[tuple[str, tuple[int, int, int], bool], tuple[Sram, Sram]] = collections.OrderedDict()
_MAX_SEEN = 4096


def _shared_grid(space: MapSpace) -> _BoundGrid | None:
    """The :class:`_BoundGrid` of the whole candidate grid of ``space`` (every triple, fitting or
    not), shared across SRAM capacities through the process-level LRU. None — the bound pass then
    computes only the fitting triples, chunk by chunk, which is faster for one search — the first
    time a shape is searched, when only one capacity has asked for it, and when the grid would
    take more than :data:`GRID_CACHE_BYTES`. A race between threads at worst computes a grid
    twice; both copies are equal."""
    arch, problem = space.arch, space.problem
    key = _grid_key(arch, problem, space.full_rows)
    grid = _GRIDS.get(key)
    if grid is not None:
        with contextlib.suppress(KeyError):
            _GRIDS.move_to_end(key)
        return grid
    capacity = (arch.scratchpad, arch.accumulator)
    if _SEEN.setdefault(key, capacity) == capacity:
        while len(_SEEN) > _MAX_SEEN:
            with contextlib.suppress(KeyError):
                _SEEN.popitem(last=False)
        return None
    ntri = int(np.prod([len(c) for c in space.cands]))
    if ntri * (_BYTES_PER_TRIPLE + len(arch.dataflows) * _BYTES_PER_TRIPLE_DF) > GRID_CACHE_BYTES:
        return None
    grid = _GRIDS[key] = _compute_bound_grid(arch, problem, space._tiles(np.arange(ntri)))
    while sum(g.nbytes for g in list(_GRIDS.values())) > GRID_CACHE_BYTES and len(_GRIDS) > 1:
        with contextlib.suppress(KeyError):
            _GRIDS.popitem(last=False)
    return grid


def _values(space: MapSpace, objective: str, terms: LocalTerms, moved: tuple, cycles: np.ndarray) -> np.ndarray:
    """The objective of bound variant ``moved`` (spad/acc bytes, DRAM bytes, L2 total) with
    ``cycles``: this arch's SRAM energies applied by the model's own :func:`dynamic_energy` (so
    the values equal ``combine``'s bits, whichever way the terms came)."""
    arch, problem = space.arch, space.problem
    if objective == "latency":
        return cycles
    energy = dynamic_energy(arch, problem, terms, *moved)
    if arch.energy.leakage_pj_per_cycle:  # else combine adds cycles × 0.0 = +0.0, leaving every energy ≥ 0 as is
        energy = energy + cycles * arch.energy.leakage_pj_per_cycle
    return _value(BatchCost(cycles, energy, moved[1], terms.compute), objective)


def _row_bounds(space: MapSpace, objective: str, tri: np.ndarray, grid: _BoundGrid | None) -> np.ndarray:
    """``LB = min over e of cost(fills of variant e)`` of every row (len(tri), ndf · 4) of tile
    triples ``tri`` (+inf where the row does not fit), from the shared ``grid`` or computed for
    these triples."""
    g = grid.take(tri) if grid is not None else _compute_bound_grid(space.arch, space.problem, space._tiles(tri))
    lb = functools.reduce(np.minimum, (_values(space, objective, g.terms, b, c) for b, c in zip(g.moved, g.cycles)))
    ok = space.tile_ok.reshape(4, -1)[:, tri].T  # (n, 4)
    ndf = len(space.arch.dataflows)
    return np.where(ok[:, None, :], np.broadcast_to(lb, (len(tri), ndf, 4)), np.inf).reshape(len(tri), ndf * 4)


def _floor_bounds(space: MapSpace, objective: str, tri: np.ndarray, grid: _BoundGrid | None) -> np.ndarray:
    """A lower bound of the LB of every row of each tile triple ``tri`` (module docstring, Two
    stages), from the local terms and bytes alone: per variant and dataflow, cycles are at least
    ``max(compute, DMA load, DMA store, issue, DRAM time)`` whatever the buffering
    (:func:`model.core_cycles` is at least each; the exposed first load and last store are ≥ 0)."""
    arch = space.arch
    if grid is not None and len(tri) == grid.ntri:  # the whole shared grid: no copies
        terms, moved = grid.terms, grid.moved
    elif grid is not None:
        terms = _take(grid.terms, tri, grid.ntri)
        moved = tuple(tuple(_take(x, tri, grid.ntri) for x in b) for b in grid.moved)
    else:
        terms, moved = _local_grid(arch, space.problem, space._tiles(tri))

    def cycles(b: tuple) -> np.ndarray:
        load, store = transfer_cycles(b[0], terms.a_cpb, terms.b_cpb, terms.out_cpb, terms.psum_cpb, terms.psum_out_cpb)
        core = np.maximum(np.maximum(terms.compute, np.maximum(load, store)), terms.issue)
        return np.ceil(np.maximum(core, memory_cycles(arch, b[1], terms.memory_extra)))

    lb = functools.reduce(np.minimum, (_values(space, objective, terms, b, cycles(b)) for b in moved))
    return lb.reshape(len(tri), -1).min(axis=1)


#: tile triples with the lowest floor solved first, for the incumbent that prunes the exact bounds
SEED_TRIPLES = 16
#: (value, tile triple, row, (factors, dram order, l2 order)) of a solved triple; -1: none yet
_Best = tuple[float, int, int, np.ndarray]
_NONE: _Best = (np.inf, -1, -1, np.zeros(5, dtype=np.int64))


@dataclasses.dataclass(frozen=True)
class _Setup:
    """The bound pass: the tile triples that can hold the optimum (``tri``, flat indices into the
    candidate grid, ascending) with their lower bounds ``lb`` (the least over their rows);
    ``incumbent`` the best of the seed triples; ``evaluated`` the model evaluations so far;
    ``complete`` is False when the time limit stopped the pass early (the triples not bounded
    are then not ruled out, so no proof); ``grid`` the shared bound grid the rows' bounds come
    from (None: computed per chunk)."""

    grid: _BoundGrid | None
    tri: np.ndarray
    lb: np.ndarray
    incumbent: _Best
    evaluated: int
    complete: bool


def _in_chunks(f, items: np.ndarray, chunk: int, deadline: float) -> tuple[list, int]:
    """``f`` of consecutive slices of ``items`` of ``chunk`` entries until ``deadline`` (the first
    is always done): the results and how many items they cover."""
    out: list = []
    done = 0
    while done < len(items) and (done == 0 or time.perf_counter() <= deadline):
        out.append(f(items[done : done + chunk]))
        done += min(chunk, len(items) - done)
    return out, done


def _setup(space: MapSpace, objective: str, deadline: float, chunk: int, share: bool) -> _Setup:
    """The bound pass in two stages, ``chunk`` triples at a time, until ``deadline`` (a chunk of
    each stage is always done). Memory: a chunk's rows, plus 16 bytes per fitting triple."""
    grid = _shared_grid(space) if share else None
    ndf = len(space.arch.dataflows)
    fit = np.flatnonzero(space.tile_ok.any(axis=0))
    if grid is not None:  # a shared grid is small enough to take its floors at once
        parts, done = [_floor_bounds(space, objective, np.arange(grid.ntri), grid)[fit]], len(fit)
    else:
        parts, done = _in_chunks(lambda t: _floor_bounds(space, objective, t, grid), fit, chunk, deadline)
    complete, evaluated = done == len(fit), 3 * ndf * done
    fit, floor = fit[:done], np.concatenate(parts)
    # the incumbent: the seed triples (lowest floors) solved exactly
    k = min(SEED_TRIPLES, len(floor))
    seed = _ordered_below(floor, np.partition(floor, k - 1)[k - 1], inclusive=True)[:k]
    incumbent = _NONE
    for t, lb in zip(fit[seed], _row_bounds(space, objective, fit[seed], grid)):
        value, row, choice, n = _solve_triple(space, int(t), np.flatnonzero(np.isfinite(lb)), objective)
        evaluated += n
        if value < incumbent[0]:
            incumbent = (value, int(t), row, choice)
    # the exact bounds of the triples whose floor does not exceed it (the others cannot win)
    keep = fit[floor <= incumbent[0]]
    parts, done = _in_chunks(lambda t: _row_bounds(space, objective, t, grid), keep, chunk, deadline)
    rows = np.concatenate(parts)
    evaluated += 3 * int(np.isfinite(rows).sum())
    return _Setup(grid, keep[:done], rows.min(axis=1), incumbent, evaluated, complete and done == len(keep))


def _solve_triple(space: MapSpace, t: int, rows: np.ndarray, objective: str) -> tuple[float, int, np.ndarray, int]:
    """Exact best over the tilings above tile triple ``t`` for local configurations ``rows``
    (rows of that triple, dataflow index · 4 + buffering index): (value, row, (factors, dram
    order, l2 order) as 5 ints, points costed)."""
    arch, problem = space.arch, space.problem
    fr = int(space.full_rows)
    D = np.array(problem.shape_key(), dtype=np.int64)
    T = space._tiles(np.array([t]))[0]
    dbc = np.array(DB_CHOICES)[rows % 4]
    ws = np.array([d == "ws" for d in arch.dataflows])[rows // 4]
    terms = local_terms(arch, problem, ws, np.broadcast_to(T, (len(rows), 3)), dbc[:, 0], dbc[:, 1])
    n1 = -(-D // T)
    if arch.l2 is None:
        f = np.ones((1, 3), dtype=np.int64)
        md = np.array([int((n1[0] > 1) + 2 * (n1[1] > 1) + 4 * (n1[2] > 1))])
        ml = np.zeros(1, dtype=np.int64)
    else:
        im, ik, c = np.unravel_index(t, tuple(len(x) for x in space.cands))
        fm, fk, bm, bk, X = space.l2_rows(int(im), int(ik))
        cats = space.fn_categories(bm, bk, X, np.full(len(X), c))
        fn_pad, fn_len = space.factor_sets[2]
        fs, mds, mls = [], [], []
        for cat, (cnt, _, mdc, mlc) in enumerate(cats):
            r = np.flatnonzero(cnt > 0)
            if cat == 0:
                fn = np.ones(len(r), dtype=np.int64)
            elif cat == 1:  # the largest feasible middle factor (index = its count)
                fn = fn_pad[c, cnt[r]]
            else:
                fn = np.full(len(r), fn_pad[c, fn_len[c] - 1])
            fs.append(np.stack([fm[r], fk[r], fn], axis=1))
            mds.append(mdc[r])
            mls.append(mlc[r])
        f, md, ml = np.concatenate(fs), np.concatenate(mds), np.concatenate(mls)
    n2 = -(-n1[None, :] // f)
    # a tile whose operand rows are not narrow has no strip cost: its classes need no strip codes
    narrow = strips_narrow(arch, problem, T)
    CLASSES, NCLASS = CLASS_TABLES[arch.software.reload_operands, arch.software.keep_partial_sums, narrow]
    k = NCLASS[fr, md, ml]
    p = np.repeat(np.arange(len(f)), k)
    cls = CLASSES[fr, md[p], ml[p], np.arange(len(p)) - np.repeat(np.cumsum(k) - k, k)]
    # every (point, class) against every local configuration of the triple
    P, R = len(p), len(rows)
    pp, rr = np.repeat(np.arange(P), R), np.tile(np.arange(R), P)
    sizes = (D[0] * D[1], D[1] * D[2], D[0] * D[2])
    n2p = n2[p][pp]
    local, dram = [], []
    for x, g in enumerate(UNINDEXED):
        code = cls[pp, x]
        local.append(sizes[x] * np.where(code == 2, n1[g], np.where(code == 1, n2p[:, g], 1)))
        dram.append(sizes[x] * np.where(cls[pp, 3 + x] == 1, n2p[:, g], 1))
    moved, dram_bytes, l2_total = boundary_bytes(arch, problem, local, dram)
    lt = _take(terms, rr, len(rows))
    if narrow:  # strips (gemmap/strips.py), as model.evaluate_batch
        tiling = (np.broadcast_to(T, (len(pp), 3)), np.minimum(f[p][pp], n1), (cls[pp, 6], cls[pp, 7]), local, dram)
        lt, dram_bytes, l2_total = with_strips(arch, problem, tiling, lt, dram_bytes, l2_total)
    values = _value(combine(arch, problem, lt, moved, dram_bytes, l2_total), objective)
    i = int(np.argmin(values))
    choice = np.concatenate([f[p[pp[i]]], cls[pp[i], NCODES : NCODES + 2]])
    return float(values[i]), int(rows[rr[i]]), choice, len(values)


def _ordered_below(values: np.ndarray, limit: float, inclusive: bool) -> np.ndarray:
    """Indices of ``values`` below ``limit`` (or equal, if ``inclusive``) in (value, index) order:
    exactly the prefix of ``np.argsort(values, kind="stable")`` that holds them."""
    idx = np.flatnonzero(values <= limit if inclusive else values < limit)
    return idx[np.argsort(values[idx], kind="stable")]


def certify(values: np.ndarray, solved: np.ndarray, time_left: float) -> tuple[int, bool]:
    """CP-SAT: exactly one candidate, minimising its value (by rank). Returns (index, proven)."""
    ranks = np.unique(values, return_inverse=True)[1].reshape(-1)
    model = cp_model.CpModel()
    x = [model.NewBoolVar(f"x{i}") for i in range(len(values))]
    model.AddExactlyOne(x)
    model.Minimize(sum(int(r) * xi for r, xi in zip(ranks, x)))
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(time_left, 0.01)
    solver.parameters.num_workers = 1
    status = solver.Solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return int(np.argmin(values)), False
    i = next(i for i, xi in enumerate(x) if solver.Value(xi))
    return i, status == cp_model.OPTIMAL and bool(solved[i])


def optimal_search(
    arch: Arch,
    problem: Problem,
    options: SearchOptions,
    full_rows: bool = False,
    acc_overlap: bool = False,
    *,
    chunk: int = CHUNK_TRIPLES,
    share: bool = True,
) -> SearchResult:
    """Proven-optimal mapping by the decomposition in the module docstring. ``chunk`` (tile triples
    per step of the bound pass) and ``share`` (use the shared bound grid of small shapes) change
    the memory and time taken, never the result."""
    start = time.perf_counter()
    deadline = start + options.time_limit if options.time_limit is not None else float("inf")
    space = MapSpace(arch, problem, full_rows, acc_overlap)
    space.require_nonempty()
    st = _setup(space, options.objective, deadline, chunk, share)
    evaluated = st.evaluated
    tri_lb = st.lb
    # by_lb: the triples in (bound, index) order, only as far as it is read — the cheapest 8
    # (with ties) for the first batch, then every triple whose bound is below the incumbent
    # (the rest is never solved nor open); ntri stands for the length of the full order
    ntri = len(tri_lb)
    by_lb = _ordered_below(tri_lb, np.partition(tri_lb, min(8, ntri) - 1)[min(8, ntri) - 1], inclusive=True)
    best = _NONE
    pos, batch, proven = 0, 8, False
    while True:
        # solve the next batch of open triples (cheapest bound first), their rows' bounds a chunk at a time
        todo, stop = by_lb[pos : pos + batch], False
        for c in range(0, len(todo), chunk):
            js = todo[c : c + chunk]
            for j, lb in zip(js, _row_bounds(space, options.objective, st.tri[js], st.grid)):
                stop = tri_lb[j] >= best[0] or (best[1] >= 0 and time.perf_counter() > deadline)
                if stop:
                    break
                t = int(st.tri[j])
                value, row, choice, n = _solve_triple(space, t, np.flatnonzero(lb < best[0]), options.objective)
                evaluated += n
                if value < best[0]:
                    best = (value, t, row, choice)
            if stop:
                break
        if pos == 0:  # after the first batch: the prefix of the order below the incumbent
            by_lb = _ordered_below(tri_lb, best[0], inclusive=False)
        pos += batch
        batch *= 2
        open_ = by_lb[pos:]
        open_ = open_[tri_lb[open_] < best[0]]
        values = np.concatenate([[best[0]], tri_lb[open_]])
        solved = np.zeros(len(values), dtype=bool)
        solved[0] = np.isfinite(best[0])
        left = deadline - time.perf_counter()
        if left <= 0:
            break
        i, proven = certify(values, solved, left)
        if proven or pos >= ntri:
            proven = proven or (len(open_) == 0 and solved[0])
            break
    proven = proven and st.complete  # triples left unbounded by the time limit are not ruled out
    if st.incumbent[0] < best[0]:  # the time limit stopped the loop before it reached the seed's value
        best = st.incumbent
    value, tri, row, choice = best
    db_spad, db_acc = DB_CHOICES[row % 4]
    m = Mapping(
        dataflow=arch.dataflows[row // 4],
        local=tuple(int(v) for v in space._tiles(np.array([tri]))[0]),  # type: ignore[arg-type]
        l2_factors=tuple(int(v) for v in choice[:3]),  # type: ignore[arg-type]
        dram_order=ORDERS[int(choice[3])],
        l2_order=ORDERS[int(choice[4])],
        db_spad=db_spad,
        db_acc=db_acc,
    )
    cost = evaluate(arch, problem, m)
    assert np.isclose(objective_value(cost, options.objective), value, rtol=1e-9), (m, value)
    return SearchResult(m, cost, "optimal", options.objective, evaluated, time.perf_counter() - start, proven)
