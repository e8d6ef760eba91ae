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
* **Sharing across SRAM capacities.** Capacity enters the bound pass only through which local
  configurations are valid and the per-byte SRAM energies; cycles and byte counts do not depend
  on it. So the cycles and bytes of the three bound variants over the *whole* candidate grid
  (valid or not) are computed once per (arch with SRAM sizes normalised, shape, full_rows) and
  kept in a small process-level LRU of read-only arrays (:class:`_BoundGrid`); a search then
  applies :func:`model.dynamic_energy` (the model's own energy sum, same float order, so bounds
  are bit-identical to ``combine``'s) and the validity mask. Local terms are computed per tile
  triple and dataflow with buffering as a broadcast axis, not per row.
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
``options.time_limit`` (seconds per layer) stops the loop with the best mapping so far and
``proven_optimal=False``; the vectorised bound pass before it (≈0.1–0.8 s on BERT shapes the
first time, ≈0.02–0.1 s for a shape already seen at another capacity) and the first tile triple
are always completed, so a result exists. ``evaluated`` counts model evaluations: bounds and
costed (tile, factors, order-class) points.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import time

import numpy as np
from ortools.sat.python import cp_model

from gemmap.arch import Arch, Sram
from gemmap.mapping import ORDERS, Mapping
from gemmap.mapspace import DB_CHOICES, PAIR_COUNT, PAIRS, MapSpace
from gemmap.model import (
    FILL_LEVEL,
    FILL_LEVEL_RELOAD,
    UNINDEXED,
    BatchCost,
    LocalTerms,
    combine,
    combine_cycles,
    dynamic_energy,
    evaluate,
    local_terms,
    traffic_bytes,
)
from gemmap.search import SearchOptions, SearchResult, objective_value
from gemmap.workload import Problem


def _class_table(local_table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CLASSES[fr, md, ml, i] = (6 fill codes: local A, B, C then DRAM A, B, C; dram order; l2
    order) of the Pareto-minimal fill patterns among the pruned order pairs; NCLASS their count.
    ``local_table`` codes the local level's fills (model.local_fill_level), FILL_LEVEL the DRAM's."""
    classes = np.zeros((2, 8, 8, 36, 8), dtype=np.int64)
    count = np.zeros((2, 8, 8), dtype=np.int64)
    for fr, md, ml in np.ndindex(2, 8, 8):
        seen: dict[tuple[int, ...], tuple[int, int]] = {}
        for od, ol in PAIRS[fr, md, ml, : PAIR_COUNT[fr, md, ml]]:
            code = tuple(int(local_table[x, od, ol, md, ml]) for x in range(3))
            code += tuple(int(FILL_LEVEL[x, od, 0, md, 0]) for x in range(3))
            seen.setdefault(code, (int(od), int(ol)))
        keep = [c for c in seen if not any(o != c and all(a <= b for a, b in zip(o, c)) for o in seen)]
        count[fr, md, ml] = len(keep)
        for i, c in enumerate(keep):
            classes[fr, md, ml, i] = (*c, *seen[c])
    return classes, count


#: CLASS_TABLES[reload] = (CLASSES, NCLASS) for Timeloop residency (False) or per-call reloads (True)
CLASS_TABLES = {False: _class_table(FILL_LEVEL), True: _class_table(FILL_LEVEL_RELOAD)}


def _take(lt: LocalTerms, idx: np.ndarray) -> LocalTerms:
    return LocalTerms(**{f.name: getattr(lt, f.name)[idx] for f in dataclasses.fields(LocalTerms)})


def _value(cost: BatchCost, objective: str) -> np.ndarray:
    return np.asarray(cost.metric(objective), dtype=np.float64)


def _bytes(arch: Arch, problem: Problem, local_fills, dram_fills) -> tuple:
    """(moved, dram, l2 total) bytes of :func:`model.combine` from the fills into the local level
    and into the L2 (the latter unused without an L2: DRAM then feeds the local level)."""
    moved = traffic_bytes(arch, problem, *local_fills)
    if arch.l2 is None:
        return moved, moved.spad + moved.acc, 0
    m2 = traffic_bytes(arch, problem, *dram_fills)
    dram = m2.spad + m2.acc
    return moved, dram, moved.spad + moved.acc + dram


@dataclasses.dataclass(frozen=True)
class _BoundGrid:
    """The capacity-independent part of the bound pass over the full local-configuration grid.

    Rows are (tile triple, dataflow, buffering) in that order — the flat index is
    ``(triple · ndf + dataflow) · 4 + DB_CHOICES index`` — whether or not the tile fits: SRAM
    capacity only decides which rows are valid (:attr:`MapSpace.tile_ok`) and the per-byte SRAM
    energies, which :func:`model.dynamic_energy` applies to the cached byte counts. Arrays are
    factored for broadcasting to (ntri, ndf, 4): ``terms`` has per-(triple, dataflow) fields of
    shape (ntri, ndf, 1) and per-(triple, buffering) ones of (ntri, 1, 4); ``moved[e]`` are the
    (spad, acc, dram, l2 total) bytes of bound variant e (innermost non-trivial loop e), each
    (ntri, 1, 1) or a scalar, and ``cycles[e]`` their cycles (ntri, ndf, 4), as float64 (exact:
    integers below 2**53; the model converts them to float64 anyway when it multiplies them with
    energies, so the products are the same). All read-only.
    """

    cands: tuple[np.ndarray, np.ndarray, np.ndarray]
    terms: LocalTerms
    moved: tuple[tuple, ...]
    cycles: tuple[np.ndarray, ...]


def _grid_key(arch: Arch, problem: Problem, full_rows: bool) -> tuple[str, tuple[int, int, int], bool]:
    """What a :class:`_BoundGrid` depends on: the arch with its SRAM sizes (and name) normalised."""
    norm = dataclasses.replace(arch, name="", scratchpad=Sram(kib=1), accumulator=Sram(kib=1))
    return repr(norm), problem.shape_key(), full_rows


def _compute_bound_grid(arch: Arch, problem: Problem, full_rows: bool) -> _BoundGrid:
    """The :class:`_BoundGrid` of (arch, problem, full_rows), computed afresh."""
    space = MapSpace(arch, problem, full_rows)
    D = np.array(problem.shape_key(), dtype=np.int64)
    Tm, Tk, Tn = np.meshgrid(*space.cands, indexing="ij")
    T = np.stack([Tm.reshape(-1), Tk.reshape(-1), Tn.reshape(-1)], axis=1)
    dbc = np.array(DB_CHOICES)
    # one local_terms call per dataflow over the triples, buffering as a broadcast (4, 1) axis
    per_df = [local_terms(arch, problem, np.bool_(d == "ws"), T, dbc[:, :1], dbc[:, 1:]) for d in arch.dataflows]

    def by_df(name: str) -> np.ndarray:
        return np.stack([getattr(lt, name) for lt in per_df], axis=1)[:, :, None]

    def by_db(name: str) -> np.ndarray:  # independent of the dataflow
        return np.ascontiguousarray(getattr(per_df[0], name).T)[:, None, :]

    def by_tile(name: str) -> np.ndarray:  # independent of dataflow and buffering
        return getattr(per_df[0], name)[:, None, None]

    terms = LocalTerms(
        compute=by_df("compute"),
        prologue=by_db("prologue"),
        epilogue=by_db("epilogue"),
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
    reload = arch.software.reload_operands
    moved, cycles = [], []
    for e in range(3):
        # A and B reloaded per call: exactly n1 of their unindexed dim, whatever the order
        fills = [
            sizes[x] * (1 if g == e and not (reload and x < 2) else n1[:, g, None, None])
            for x, g in enumerate(UNINDEXED)
        ]
        b = _bytes(arch, problem, fills, list(sizes))
        moved.append(b)
        c = combine_cycles(arch, terms, b[0], b[1])
        assert int(c.max()) < 2**53  # so the float64 copy below is exact
        cycles.append(c.astype(np.float64))
    fields = [getattr(terms, f.name) for f in dataclasses.fields(LocalTerms)]
    arrays = [getattr(b[0], f.name) for b in moved for f in dataclasses.fields(b[0])] + [
        x for b in moved for x in b[1:]
    ]
    for a in (*fields, *arrays, *cycles):
        if isinstance(a, np.ndarray):
            a.setflags(write=False)
    return _BoundGrid(space.cands, terms, tuple(moved), tuple(cycles))


#: process-level LRU of bound grids by :func:`_grid_key` (immutable values; least recent dropped)
_GRIDS: collections.OrderedDict[tuple[str, tuple[int, int, int], bool], _BoundGrid] = collections.OrderedDict()
_MAX_GRIDS = 12


def _bound_grid(arch: Arch, problem: Problem, full_rows: bool) -> _BoundGrid:
    """The :class:`_BoundGrid` of (arch, problem, full_rows), shared across SRAM capacities
    through a small process-level LRU cache of read-only arrays (a race between threads at
    worst computes a grid twice; both copies are equal)."""
    key = _grid_key(arch, problem, full_rows)
    grid = _GRIDS.get(key)
    if grid is None:
        grid = _GRIDS[key] = _compute_bound_grid(arch, problem, full_rows)
        while len(_GRIDS) > _MAX_GRIDS:
            with contextlib.suppress(KeyError):
                _GRIDS.popitem(last=False)
    else:
        with contextlib.suppress(KeyError):
            _GRIDS.move_to_end(key)
    return grid


@dataclasses.dataclass(frozen=True)
class _Setup:
    """The valid local configurations of a space with their lower bounds.

    ``rows`` are flat indices into the :class:`_BoundGrid` (ascending, so grouped by triple
    ``tri`` and, within a triple, ordered by dataflow then buffering); ``lb`` their bounds."""

    space: MapSpace
    rows: np.ndarray
    tri: np.ndarray
    lb: np.ndarray


def _setup(space: MapSpace, objective: str) -> _Setup:
    """Bound every valid local configuration: ``LB = min over e of cost(fills of variant e)``
    with the cached capacity-independent cycles and byte counts, and this arch's SRAM energies
    applied by the model's own :func:`dynamic_energy` (so the values equal ``combine``'s bits)."""
    arch, problem = space.arch, space.problem
    grid = _bound_grid(arch, problem, space.full_rows)
    ndf = len(arch.dataflows)
    leakage = arch.energy.leakage_pj_per_cycle
    lb = None
    for (moved, dram, l2_total), cycles in zip(grid.moved, grid.cycles):
        if objective == "latency":
            v = cycles
        else:
            energy = dynamic_energy(arch, problem, grid.terms, moved, dram, l2_total)
            if leakage:  # else combine adds cycles × 0.0 = +0.0, which leaves every energy ≥ 0 as is
                energy = energy + cycles * leakage
            v = _value(BatchCost(cycles, energy, dram, grid.terms.compute), objective)
        lb = v if lb is None else np.minimum(lb, v)
    ok = space.tile_ok.reshape(4, -1).T  # (ntri, 4)
    rows = np.flatnonzero(np.broadcast_to(ok[:, None, :], (ok.shape[0], ndf, 4)))
    return _Setup(space, rows, rows // (ndf * 4), np.broadcast_to(lb, (ok.shape[0], ndf, 4)).reshape(-1)[rows])


def _solve_triple(st: _Setup, t: int, rows: np.ndarray, objective: str) -> tuple[float, int, np.ndarray, int]:
    """Exact best over the tilings above tile triple ``t`` for local configurations ``rows``
    (grid rows of that triple): (value, row, (factors, dram order, l2 order) as 5 ints, points costed)."""
    space = st.space
    arch, problem = space.arch, space.problem
    fr = int(space.full_rows)
    D = np.array(problem.shape_key(), dtype=np.int64)
    T = space._tiles(np.array([t]))[0]
    ndf = len(arch.dataflows)
    dbc = np.array(DB_CHOICES)[rows % 4]
    ws = np.array([d == "ws" for d in arch.dataflows])[rows // 4 % ndf]
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
    CLASSES, NCLASS = CLASS_TABLES[arch.software.reload_operands]
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
    values = _value(combine(arch, problem, _take(terms, rr), *_bytes(arch, problem, local, dram)), objective)
    i = int(np.argmin(values))
    choice = np.concatenate([f[p[pp[i]]], cls[pp[i], 6:8]])
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
    arch: Arch, problem: Problem, options: SearchOptions, full_rows: bool = False, acc_overlap: bool = False
) -> SearchResult:
    """Proven-optimal mapping by the decomposition in the module docstring."""
    start = time.perf_counter()
    deadline = start + options.time_limit if options.time_limit is not None else float("inf")
    space = MapSpace(arch, problem, full_rows, acc_overlap)
    space.require_nonempty()
    st = _setup(space, options.objective)
    evaluated = len(st.lb) * 3
    # triples by their best bound (st.rows ascending: each triple's rows are contiguous)
    first = np.flatnonzero(np.diff(st.tri, prepend=-1))
    uniq = st.tri[first]
    ends = np.append(first[1:], len(st.tri))
    tri_lb = np.minimum.reduceat(st.lb, first)
    # by_lb: the triples in (bound, index) order, only as far as it is read — the cheapest 8
    # (with ties) for the first batch, then every triple whose bound is below the incumbent
    # (the rest is never solved nor open); ntri stands for the length of the full order
    ntri = len(tri_lb)
    by_lb = _ordered_below(tri_lb, np.partition(tri_lb, min(8, ntri) - 1)[min(8, ntri) - 1], inclusive=True)
    best = (np.inf, -1, np.zeros(5, dtype=np.int64))
    pos, batch, proven = 0, 8, False
    while True:
        # solve the next batch of open triples (cheapest bound first)
        for j in by_lb[pos : pos + batch]:
            if tri_lb[j] >= best[0] or (best[1] >= 0 and time.perf_counter() > deadline):
                break
            group = slice(first[j], ends[j])
            rows = st.rows[group][st.lb[group] < best[0]]
            value, row, choice, n = _solve_triple(st, int(uniq[j]), rows, options.objective)
            evaluated += n
            if value < best[0]:
                best = (value, row, choice)
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
    value, row, choice = best
    ndf = len(arch.dataflows)
    db_spad, db_acc = DB_CHOICES[row % 4]
    m = Mapping(
        dataflow=arch.dataflows[row // 4 % ndf],
        local=tuple(int(v) for v in space._tiles(np.array([row // (ndf * 4)]))[0]),  # type: ignore[arg-type]
        l2_factors=tuple(int(v) for v in choice[:3]),  # type: ignore[arg-type]
        dram_order=ORDERS[int(choice[3])],
        l2_order=ORDERS[int(choice[4])],
        db_spad=db_spad,
        db_acc=db_acc,
    )
    cost = evaluate(arch, problem, m)
    assert np.isclose(objective_value(cost, options.objective), value, rtol=1e-9), (m, value)
    return SearchResult(m, cost, "optimal", options.objective, evaluated, time.perf_counter() - start, proven)
