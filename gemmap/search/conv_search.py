"""The four searches for convs (DESIGN §6) over :class:`gemmap.convspace.ConvMapSpace`.

``heuristic`` is Gemmini's ``tiled_conv_auto`` (:mod:`gemmap.conv_tiler`); ``random``
draws ``options.samples`` uniform valid mappings; ``exhaustive`` costs the whole pruned space.

``optimal`` — exact, with a proof, by the same decomposition as :mod:`gemmap.search.optimal`:

* **Bound per (tile, buffering).** The loop order only multiplies each tensor's one-pass volume
  (:func:`gemmap.convmodel.order_multipliers`) and the cost is monotone in every multiplier, so
  the cost of the tile terms (:func:`gemmap.convmodel.tile_terms`, computed once per tile and
  broadcast over the four bufferings) with the multipliers of
  :func:`gemmap.convmodel.bound_multipliers` bounds every order from below. Under Gemmini's
  per-call reloads without an L2 (and no memory-side cache, whose reload misses the bound leaves out)
  only the outputs depend on the order and the bound is exact
  (it is the cost of the class keeping every reduction loop inside, e.g. ``bpqkrsc``) unless the
  order's own tile sequence (:mod:`gemmap.convseq`, a floor under the core) lifts it.
* **Exact sub-problem per (tile, buffering):** every order class of the tile's mask, costed by
  :func:`gemmap.convmodel.evaluate_conv_batch`.
* **Order of work.** The candidate grid is swept in chunks (memory bounded): each chunk's bounds
  are computed, its cheapest few rows solved exactly (the incumbent), and only rows whose bound is
  below the incumbent are kept. Then the kept rows are solved cheapest bound first, in batches that
  double, until none is left below the incumbent.
* **Master (CP-SAT)**, as in :mod:`gemmap.search.optimal`: one Boolean per candidate — the
  incumbent and the open rows' bounds (the cheapest 1024: the rest have larger bounds and cannot
  change the choice) — exactly one chosen, minimising its value by rank. When it picks the solved
  incumbent, CP-SAT's OPTIMAL status is the proof.

The answer is re-scored by :func:`gemmap.convmodel.evaluate_conv` and must equal the value found.
``options.time_limit`` stops the sweep or the loop with the best mapping so far
(``proven_optimal=False``; at least one row is always solved). ``evaluated`` counts bounds
(one per valid tile, buffering and bound variant) and exactly costed mappings.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from gemmap.arch import Arch
from gemmap.conv import ConvMapping, ConvMappingBatch, invalid_reason
from gemmap.conv_tiler import tiled_conv_auto
from gemmap.convmodel import (
    Multipliers,
    bound_multipliers,
    costs,
    evaluate_conv,
    evaluate_conv_batch,
    tile_terms,
)
from gemmap.convspace import DB_FLAGS, ConvMapSpace, tile_masks
from gemmap.errors import GemmapError
from gemmap.search import SearchOptions, SearchResult, objective_value
from gemmap.search.optimal import certify
from gemmap.workload import Problem

#: rows solved exactly per chunk of the sweep, and the first batch of the loop after it
_FIRST = 8
#: open rows handed to the master (the cheapest bounds; see the module docstring)
_MASTER_ROWS = 1024
#: mappings costed per exact batch (bounds memory)
_EXACT_BATCH = 1 << 17


def _no_fusion(problem: Problem, full_rows: bool) -> None:
    if full_rows:
        raise GemmapError(f"{problem.name}: fusing a row-wise op into a conv is not modelled")


def conv_heuristic_search(
    arch: Arch, problem: Problem, options: SearchOptions, full_rows: bool = False
) -> SearchResult:
    """Gemmini's ``tiled_conv_auto`` tiling, costed."""
    _no_fusion(problem, full_rows)
    start = time.perf_counter()
    m = tiled_conv_auto(arch.tiler_view(), problem)
    reason = invalid_reason(arch, problem, m)
    if reason is not None:
        raise GemmapError(f"{problem.name}: tiled_conv_auto picks {m.summary(arch)}, which does not fit: {reason}")
    cost = evaluate_conv(arch, problem, m)
    return SearchResult(m, cost, "heuristic", options.objective, 1, time.perf_counter() - start, False)


def _values(arch: Arch, problem: Problem, batch: ConvMappingBatch, objective: str) -> np.ndarray:
    return np.asarray(evaluate_conv_batch(arch, problem, batch).metric(objective), dtype=np.float64)


def _best(arch: Arch, problem: Problem, batch: ConvMappingBatch, objective: str) -> tuple[int, float]:
    """The best mapping of ``batch`` and its value. The tile-sequence floor (gemmap/convseq.py) only
    raises a mapping's cycles, and every objective grows with them, so the model without it bounds
    each value from below: the floor is costed cheapest bound first, only while a bound is below the
    best exact value found (the same answer as costing every mapping)."""
    if not arch.software.tile_sequence:
        values = _values(arch, problem, batch, objective)
        i = int(np.argmin(values))
        return i, float(values[i])
    flat = dataclasses.replace(arch, software=dataclasses.replace(arch.software, tile_sequence=False))
    bound = _values(flat, problem, batch, objective)
    order = np.argsort(bound, kind="stable")
    best_i, best_v, pos, step = -1, np.inf, 0, _FIRST
    while pos < len(order) and bound[order[pos]] < best_v:
        take = order[pos : pos + step]
        take = take[bound[take] < best_v]
        values = _values(arch, problem, batch.take(take), objective)
        j = int(np.argmin(values))
        if values[j] < best_v:
            best_i, best_v = int(take[j]), float(values[j])
        pos, step = pos + step, step * 2
    return best_i, best_v


def conv_random_search(arch: Arch, problem: Problem, options: SearchOptions, full_rows: bool = False) -> SearchResult:
    """Best of ``options.samples`` uniform samples of the conv mapspace."""
    _no_fusion(problem, full_rows)
    start = time.perf_counter()
    space = ConvMapSpace(arch, problem)
    batch = space.sample(options.samples, options.seed)
    i, _ = _best(arch, problem, batch, options.objective)
    m = batch[i]
    cost = evaluate_conv(arch, problem, m)
    return SearchResult(m, cost, "random", options.objective, len(batch), time.perf_counter() - start, False)


def conv_exhaustive_search(
    arch: Arch, problem: Problem, options: SearchOptions, full_rows: bool = False
) -> SearchResult:
    """Every mapping of the pruned conv mapspace (refused beyond ``options.max_exhaustive``)."""
    from gemmap.search.exhaustive import best_of_space

    _no_fusion(problem, full_rows)
    return best_of_space(ConvMapSpace(arch, problem), problem, options,
                         lambda b: _best(arch, problem, b, options.objective),
                         lambda m: evaluate_conv(arch, problem, m), "conv mapspace")  # fmt: skip


def bounds(space: ConvMapSpace, tiles: np.ndarray, objective: str) -> np.ndarray:
    """Lower bounds (m, 4) of the objective over every order of tiles (m, 7) under each buffering
    of :data:`gemmap.mapspace.DB_CHOICES` (module docstring; validity not applied)."""
    arch, problem = space.arch, space.problem
    terms = tile_terms(arch, problem, tiles)
    col = terms.column()
    lt = col.buffered(DB_FLAGS[None, :, 0], DB_FLAGS[None, :, 1])
    lb = np.full((len(tiles), 4), np.inf)
    for mult, avail in bound_multipliers(arch, terms.n):
        m = Multipliers(*(np.asarray(x).reshape(-1, 1) for x in (mult.a, mult.b, mult.c, mult.a_l2, mult.b_l2)))
        v = np.asarray(costs(arch, problem, col, lt, m).metric(objective), dtype=np.float64)
        lb = np.minimum(lb, np.where(avail[:, None], v, np.inf))
    return lb


def _solve(space: ConvMapSpace, flat: np.ndarray, db: np.ndarray, objective: str) -> tuple[float, ConvMapping, int]:
    """Exact best over every order class of the (tile, buffering) rows: (value, mapping, costed)."""
    arch, problem = space.arch, space.problem
    tiles = space.tiles(flat)
    D = np.array(space.shape.dims, dtype=np.int64)
    reps, k = space.classes(tile_masks(-(-D // tiles)))
    best_v, best_m, n = np.inf, None, 0
    row = np.repeat(np.arange(len(flat)), k)
    cls = np.arange(len(row)) - np.repeat(np.cumsum(k) - k, k)
    for lo in range(0, len(row), _EXACT_BATCH):
        r, c = row[lo : lo + _EXACT_BATCH], cls[lo : lo + _EXACT_BATCH]
        batch = ConvMappingBatch(
            tiles[r], reps[r, c], np.zeros(len(r), dtype=np.int8), DB_FLAGS[db[r], 0], DB_FLAGS[db[r], 1]
        )
        i, v = _best(arch, problem, batch, objective)
        n += len(r)
        if v < best_v:
            best_v, best_m = v, batch[i]
    assert best_m is not None
    return best_v, best_m, n


def conv_optimal_search(arch: Arch, problem: Problem, options: SearchOptions, full_rows: bool = False) -> SearchResult:
    """Proven-optimal conv mapping by the decomposition in the module docstring."""
    _no_fusion(problem, full_rows)
    start = time.perf_counter()
    deadline = start + options.time_limit if options.time_limit is not None else float("inf")
    space = ConvMapSpace(arch, problem)
    objective = options.objective
    best_v, best_m = np.inf, None
    evaluated = 0
    kept_flat, kept_db, kept_lb = [], [], []
    timed_out = False
    nvar = len(bound_multipliers(arch, np.ones((1, 7), dtype=np.int64)))
    for chunk in space.chunks():
        live = np.flatnonzero(chunk.ok.any(axis=1))
        if not len(live):
            continue
        lb = np.where(chunk.ok[live], bounds(space, chunk.tiles[live], objective), np.inf)
        evaluated += int(chunk.ok[live].sum()) * nvar
        ti, di = np.nonzero(lb < best_v)
        if not len(ti):
            continue
        vals = lb[ti, di]
        flat = chunk.flat[live][ti]
        first = np.argsort(vals, kind="stable")[:_FIRST]
        v, m, n = _solve(space, flat[first], di[first], objective)
        evaluated += n
        if v < best_v:
            best_v, best_m = v, m
        rest = np.ones(len(vals), dtype=bool)
        rest[first] = False
        rest &= vals < best_v
        kept_flat.append(flat[rest])
        kept_db.append(di[rest])
        kept_lb.append(vals[rest])
        if len(kept_lb) > 64:  # drop rows the incumbent has overtaken
            kept_flat, kept_db, kept_lb = _prune(kept_flat, kept_db, kept_lb, best_v)
        if time.perf_counter() > deadline:
            timed_out = True
            break
    if best_m is None:
        space.require_nonempty()
        raise AssertionError("unreachable: a non-empty space has a solved row")
    flat, db, lb = (np.concatenate(x) for x in _prune(kept_flat, kept_db, kept_lb, best_v))
    by_lb = np.argsort(lb, kind="stable")
    flat, db, lb = flat[by_lb], db[by_lb], lb[by_lb]
    pos, batch, proven = 0, _FIRST, False
    while not timed_out:
        left = deadline - time.perf_counter()
        open_ = np.flatnonzero(lb[pos:] < best_v)[:_MASTER_ROWS] + pos
        values = np.concatenate([[best_v], lb[open_]])
        solved = np.zeros(len(values), dtype=bool)
        solved[0] = True
        if left <= 0:
            break
        _, proven = certify(values, solved, left)
        if proven or not len(open_):
            proven = proven or not len(open_)
            break
        take = open_[0] + np.arange(batch)
        take = take[take < len(lb)]
        take = take[lb[take] < best_v]
        v, m, n = _solve(space, flat[take], db[take], objective)
        evaluated += n
        if v < best_v:
            best_v, best_m = v, m
        pos = int(take[-1]) + 1
        batch *= 2
    cost = evaluate_conv(arch, problem, best_m)
    assert np.isclose(objective_value(cost, objective), best_v, rtol=1e-9), (best_m, best_v)
    return SearchResult(best_m, cost, "optimal", objective, evaluated, time.perf_counter() - start, proven)


def _prune(flat: list[np.ndarray], db: list[np.ndarray], lb: list[np.ndarray], limit: float):
    """The kept rows whose bound is still below ``limit``, as one array each."""
    if not flat:
        return [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)], [np.zeros(0)]
    f, d, v = np.concatenate(flat), np.concatenate(db), np.concatenate(lb)
    keep = v < limit
    return [f[keep]], [d[keep]], [v[keep]]
