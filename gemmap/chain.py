"""Partitioning a chain of units into contiguous pipeline stages, one per accelerator (pure numpy).

The inputs are per-unit cost tables, one row per accelerator (:class:`Tables`): the time each
accelerator takes for each unit alone, the DRAM bytes it moves, its energy; a hand-off fence per
stage that receives activations; and the DRAM bandwidth the accelerators share. A
:class:`Partition` gives each stage position an accelerator (``order``, a permutation) and a
contiguous range of units (``bounds``, possibly empty: an accelerator may be left idle).

**Steady state** (docs/model.md, "Pipelines"). Every stage works on a different inference at once.
Stage i is busy ``T_i`` (its units' time at its own full DRAM bandwidth, plus the fence when it
receives a hand-off) and moves ``D_i`` DRAM bytes per inference. The channel delivers at most
``B`` bytes/s to all of them together, so the period is

    P = max(max_i T_i, Σ_i D_i / B)

(the bandwidth bound of the roofline model, Williams, Waterman & Patterson, CACM 52(4), 2009,
applied to the channel the stages share; it assumes work-conserving arbitration that lets a
stage's traffic flow whenever the channel has room). Throughput is 1/P. For the latency, each
stage moving bytes gets the share ``B·D_i/ΣD`` of the channel (every stage moves its bytes once per
period), so its DRAM time is ``ΣD/B`` and its time in the pipeline ``max(T_i, ΣD/B)`` (≤ P); the
latency of one inference is the sum of those. When the channel binds (ΣD/B > max T_i), every stage
that moves bytes is stretched to the period.

**Exact optimum.** For a fixed order, ``g(τ) = min ΣD`` over partitions whose stages all take at
most τ is a dynamic program over (stage, end unit); g falls as τ grows and P(τ) = max(τ, g(τ)/B),
so the optimum is at the crossover of the two, found by binary search over the finite set of
stage times (:func:`max_throughput`). Latency and EDP under a throughput floor are minimised by
enumerating every partition (:func:`enumerate_partitions`), which is exact and cheap up to a few
million partitions. :func:`bisection` is PipeBERT's binary search on the cut points with stage
latency feedback, for comparison.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Iterator

import numpy as np

from gemmap.errors import GemmapError

#: the most partitions :func:`enumerate_partitions` walks through
MAX_ENUMERATED = 3_000_000


@dataclasses.dataclass(frozen=True)
class Tables:
    """Per-unit costs on each of k accelerators (arrays of shape (k, n)); ``fence_s[a]`` is what a
    stage on accelerator a pays per inference to receive a hand-off; ``bandwidth`` is the shared
    DRAM channel's bytes/s."""

    time_s: np.ndarray
    dram_bytes: np.ndarray
    energy_pj: np.ndarray
    fence_s: np.ndarray
    bandwidth: float

    @property
    def k(self) -> int:
        return int(self.time_s.shape[0])

    @property
    def n(self) -> int:
        return int(self.time_s.shape[1])

    def prefix(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Cumulative sums with a leading 0 column: range (s, e) of a = p[a, e] − p[a, s]."""

        def cum(x: np.ndarray) -> np.ndarray:
            return np.concatenate([np.zeros((self.k, 1)), np.cumsum(x, axis=1)], axis=1)

        return cum(self.time_s), cum(self.dram_bytes), cum(self.energy_pj)


@dataclasses.dataclass(frozen=True)
class Partition:
    """Stage j runs units ``bounds[j]`` to ``bounds[j+1]`` (exclusive) on accelerator ``order[j]``."""

    order: tuple[int, ...]
    bounds: tuple[int, ...]

    def ranges(self) -> list[tuple[int, int, int]]:
        """(accelerator, first unit, end unit) per stage position."""
        return [(a, self.bounds[j], self.bounds[j + 1]) for j, a in enumerate(self.order)]


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """A partition's steady state (module docstring): per stage busy time, bytes, energy, its time in
    the pipeline; the period, latency and energy of one inference."""

    partition: Partition
    busy_s: tuple[float, ...]
    dram_bytes: tuple[float, ...]
    energy_pj: tuple[float, ...]
    stage_s: tuple[float, ...]
    period_s: float
    latency_s: float
    #: the period's DRAM time: every stage's bytes through the shared channel (ΣD / B)
    shared_s: float

    @property
    def throughput(self) -> float:
        return 1.0 / self.period_s

    @property
    def energy_total_pj(self) -> float:
        return float(sum(self.energy_pj))

    @property
    def edp(self) -> float:
        """Energy (J) × latency (s) of one inference."""
        return self.energy_total_pj * 1e-12 * self.latency_s

    @property
    def edp_period(self) -> float:
        """Energy (J) × period (s): the energy-delay product of a stream of inferences, one result per period."""
        return self.energy_total_pj * 1e-12 * self.period_s

    @property
    def dram_bound(self) -> bool:
        """Does the shared channel set the period (rather than the slowest stage)?"""
        return self.shared_s > max(self.busy_s)


def stage_time(tables: Tables, a: int, s: int, e: int, pt: np.ndarray | None = None) -> float:
    """Busy time of units [s, e) on accelerator a: their times, plus the fence when it receives a hand-off."""
    if e <= s:
        return 0.0
    pt = tables.prefix()[0] if pt is None else pt
    return float(pt[a, e] - pt[a, s]) + (float(tables.fence_s[a]) if s > 0 else 0.0)


def evaluate(tables: Tables, part: Partition) -> Evaluation:
    """The steady state of one partition (module docstring)."""
    pt, pd, pe = tables.prefix()
    busy, dram, energy = [], [], []
    for a, s, e in part.ranges():
        busy.append(stage_time(tables, a, s, e, pt))
        dram.append(float(pd[a, e] - pd[a, s]))
        energy.append(float(pe[a, e] - pe[a, s]))
    shared = sum(dram) / tables.bandwidth
    period = max(max(busy), shared)
    stage = tuple(max(t, shared) if d > 0 else t for t, d in zip(busy, dram))
    return Evaluation(part, tuple(busy), tuple(dram), tuple(energy), stage, period, sum(stage), shared)


def _check(tables: Tables) -> None:
    if tables.k < 1 or tables.n < 1:
        raise GemmapError("a pipeline needs at least one accelerator and one unit of work")
    if not tables.bandwidth > 0:
        raise GemmapError(f"the shared DRAM bandwidth must be positive, got {tables.bandwidth}")


# --- max throughput: dynamic program + binary search on the bottleneck ---------------------------


def _range_tables(tables: Tables) -> tuple[np.ndarray, np.ndarray]:
    """T[a, s, e] and D[a, s, e] for every range (inf where e < s; 0 for empty ranges)."""
    pt, pd, _ = tables.prefix()
    n = tables.n
    T = pt[:, None, :] - pt[:, :, None]
    D = pd[:, None, :] - pd[:, :, None]
    s_idx = np.arange(n + 1)[:, None]
    e_idx = np.arange(n + 1)[None, :]
    T = T + np.where((s_idx > 0) & (e_idx > s_idx), tables.fence_s[:, None, None], 0.0)
    bad = e_idx < s_idx
    T = np.where(bad, np.inf, np.where(e_idx == s_idx, 0.0, T))
    D = np.where(bad, np.inf, np.where(e_idx == s_idx, 0.0, D))
    return T, D


def _min_traffic(T: np.ndarray, D: np.ndarray, order: tuple[int, ...], tau: float) -> tuple[float, tuple[int, ...]]:
    """g(τ): the least total DRAM bytes over partitions in ``order`` whose stages all take ≤ τ, and
    its bounds (inf and () when none)."""
    n = T.shape[1] - 1
    best = np.full(n + 1, np.inf)
    best[0] = 0.0
    back = []
    for a in order:
        cost = np.where(T[a] <= tau, D[a], np.inf)  # (s, e)
        total = best[:, None] + cost
        arg = np.argmin(total, axis=0)
        best = total[arg, np.arange(n + 1)]
        back.append(arg)
    if not np.isfinite(best[n]):
        return math.inf, ()
    bounds = [n]
    for arg in reversed(back):
        bounds.append(int(arg[bounds[-1]]))
    return float(best[n]), tuple(reversed(bounds))


def max_throughput(tables: Tables, orders: list[tuple[int, ...]] | None = None) -> Evaluation:
    """The partition of least period over every order of the accelerators (or ``orders``): exact.

    Per order, candidate bottlenecks τ are the distinct stage times; with g(τ) from
    :func:`_min_traffic`, P(τ) = max(τ, g(τ)/B) is minimised where τ first reaches g(τ)/B (g falls,
    τ rises), so a binary search over the sorted candidates and a look at the one before suffice.
    """
    _check(tables)
    T, D = _range_tables(tables)
    best: Evaluation | None = None
    for order in orders or list(itertools.permutations(range(tables.k))):
        cands = np.unique(T[list(order)][np.isfinite(T[list(order)])])
        lo, hi = 0, len(cands) - 1  # the last candidate (every unit on one stage) is always feasible
        while lo < hi:
            mid = (lo + hi) // 2
            g, _ = _min_traffic(T, D, order, float(cands[mid]))
            if cands[mid] >= g / tables.bandwidth:
                hi = mid
            else:
                lo = mid + 1
        for i in {lo, max(lo - 1, 0)}:
            g, bounds = _min_traffic(T, D, order, float(cands[i]))
            if bounds:
                ev = evaluate(tables, Partition(order, bounds))
                if best is None or _better_period(ev, best):
                    best = ev
    assert best is not None
    return best


def _better_period(a: Evaluation, b: Evaluation) -> bool:
    """Less period; on a tie (to rounding), less latency."""
    if a.period_s < b.period_s * (1 - 1e-12):
        return True
    return a.period_s <= b.period_s * (1 + 1e-12) and a.latency_s < b.latency_s


# --- every partition: brute force, and latency / EDP under a throughput floor --------------------


def count_partitions(k: int, n: int) -> int:
    """Orders × cut placements (stages may be empty): k! · C(n + k − 1, k − 1)."""
    return math.factorial(k) * math.comb(n + k - 1, k - 1)


def all_partitions(k: int, n: int) -> Iterator[Partition]:
    """Every order and every placement of k − 1 cuts among n units (the brute force)."""
    for order in itertools.permutations(range(k)):
        for cuts in itertools.combinations_with_replacement(range(n + 1), k - 1):
            yield Partition(order, (0, *cuts, n))


OBJECTIVES = ("throughput", "latency", "edp")


def enumerate_partitions(tables: Tables, objective: str, min_throughput: float = 0.0) -> Evaluation:
    """The partition minimising ``objective`` (latency or EDP of one inference; or the period, ties
    broken by latency) among those with throughput ≥ ``min_throughput``, by walking through all of
    them (numpy over the cut placements of each order). A GemmapError when none qualifies."""
    _check(tables)
    k, n = tables.k, tables.n
    if count_partitions(k, n) > MAX_ENUMERATED:
        raise GemmapError(
            f"{count_partitions(k, n):,} partitions of {n} units over {k} accelerators are too many to walk "
            f"through for objective {objective}; cut at block boundaries only (--cuts blocks) or use fewer accelerators"
        )
    pt, pd, pe = tables.prefix()
    cuts = np.array(list(itertools.combinations_with_replacement(range(n + 1), k - 1)), dtype=np.int64)
    cuts = cuts.reshape(len(cuts), k - 1)
    bounds = np.concatenate([np.zeros((len(cuts), 1), np.int64), cuts, np.full((len(cuts), 1), n)], axis=1)
    best: tuple[float, float, Partition] | None = None
    for order in itertools.permutations(range(k)):
        s, e = bounds[:, :-1], bounds[:, 1:]
        a = np.array(order)[None, :]
        busy = pt[a, e] - pt[a, s] + np.where((s > 0) & (e > s), tables.fence_s[a], 0.0)
        dram = pd[a, e] - pd[a, s]
        energy = (pe[a, e] - pe[a, s]).sum(axis=1)
        shared = dram.sum(axis=1) / tables.bandwidth
        period = np.maximum(busy.max(axis=1), shared)
        latency = np.where(dram > 0, np.maximum(busy, shared[:, None]), busy).sum(axis=1)
        value = {"throughput": period, "latency": latency, "edp": energy * 1e-12 * latency}[objective]
        ok = period * min_throughput <= 1 + 1e-12
        if not ok.any():
            continue
        value = np.where(ok, value, np.inf)
        # least value, then least latency
        i = int(np.lexsort((latency, value))[0])
        cand = (float(value[i]), float(latency[i]), Partition(order, tuple(int(x) for x in bounds[i])))
        if best is None or (cand[0], cand[1]) < (best[0], best[1]):
            best = cand
    if best is None:
        raise GemmapError(f"no partition reaches the throughput floor of {min_throughput:g} inferences/s")
    return evaluate(tables, best[2])


# --- PipeBERT's binary search ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SearchTrace:
    """The best partition a heuristic found and how many distinct partitions it evaluated."""

    best: Evaluation
    evaluations: int


def bisection(tables: Tables, orders: list[tuple[int, ...]] | None = None) -> SearchTrace:
    """PipeBERT's binary search (Chang et al., J. Signal Process. Syst. 2023, §4): the cut between the
    first stage and the rest starts in the middle and moves toward the slower side, measured, until
    the interval closes; with more than two stages the rest is split the same way, recursively. Every
    full partition whose stage times are measured counts as one evaluation; each order is searched."""
    _check(tables)
    seen: dict[Partition, Evaluation] = {}

    def measure(part: Partition) -> Evaluation:
        if part not in seen:
            seen[part] = evaluate(tables, part)
        return seen[part]

    def split(order: tuple[int, ...], bounds: tuple[int, ...]) -> Evaluation:
        """Best measured partition in ``order`` whose first bounds are ``bounds``."""
        j = len(bounds) - 1  # the stage whose end is being searched
        if j == len(order) - 1:
            return measure(Partition(order, (*bounds, tables.n)))
        lo, hi = bounds[-1], tables.n
        best: Evaluation | None = None
        while True:
            mid = (lo + hi) // 2
            for cut in (mid, hi) if hi - lo <= 1 else (mid,):
                ev = split(order, (*bounds, cut))
                best = ev if best is None or _better_period(ev, best) else best
            if hi - lo <= 1:
                return best
            if ev.busy_s[j] > max(ev.busy_s[j + 1 :]):  # the first stage is the slower side: cut earlier
                hi = mid
            else:
                lo = mid

    best: Evaluation | None = None
    for order in orders or list(itertools.permutations(range(tables.k))):
        ev = split(order, (0,))
        if best is None or _better_period(ev, best):
            best = ev
    assert best is not None
    return SearchTrace(best, len(seen))


# --- the same accelerators, data-parallel -----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DataParallel:
    """Each accelerator runs whole inferences at ``rates[a]`` per second (the batch split in
    proportion), the channel shared: maximise Σ rates subject to rate_a ≤ 1 / T_a and
    Σ rate_a · D_a ≤ B (a fractional knapsack: fill the accelerators in order of fewest bytes per
    inference, which is optimal)."""

    rates: tuple[float, ...]
    energy_pj: tuple[float, ...]

    @property
    def throughput(self) -> float:
        return float(sum(self.rates))

    @property
    def energy_per_inference_pj(self) -> float:
        return sum(r * e for r, e in zip(self.rates, self.energy_pj)) / self.throughput


def data_parallel(tables: Tables) -> DataParallel:
    """:class:`DataParallel` of ``tables`` (every unit of the model on each accelerator)."""
    _check(tables)
    time = tables.time_s.sum(axis=1)
    dram = tables.dram_bytes.sum(axis=1)
    rates = [0.0] * tables.k
    left = tables.bandwidth
    for a in sorted(range(tables.k), key=lambda a: dram[a]):
        full = 1.0 / time[a]  # as fast as it runs alone, if the channel has room left for it
        rate = full if dram[a] * full <= left else left / dram[a]
        rates[a] = rate
        left -= rate * dram[a]
    return DataParallel(tuple(rates), tuple(float(x) for x in tables.energy_pj.sum(axis=1)))
