"""Search strategies behind one interface (DESIGN §6).

:func:`find_mapping` picks a mapping of one problem for an objective: ``heuristic`` (Gemmini's own
tiler), ``random`` (N uniform valid samples, best kept), ``exhaustive`` (the whole pruned
mapspace) or ``optimal`` (CP-SAT, proven). Every strategy returns a :class:`SearchResult` whose
cost is re-scored by :func:`gemmap.model.evaluate` (:func:`gemmap.convmodel.evaluate_conv` for a
conv, whose searches are :mod:`gemmap.search.conv_search`); none mutates shared state.
"""

from __future__ import annotations

import dataclasses
import math

from gemmap import specio
from gemmap.arch import Arch
from gemmap.conv import ConvMapping
from gemmap.errors import GemmapError, check_choice
from gemmap.mapping import Mapping, invalid_reason
from gemmap.mapspace import MAX_TILE_TRIPLES
from gemmap.model import Cost, evaluate
from gemmap.workload import Problem, Workload

OBJECTIVES = ("edp", "latency", "energy")
METHODS = ("heuristic", "random", "exhaustive", "optimal")


@dataclasses.dataclass(frozen=True)
class SearchOptions:
    """How to search. ``time_limit`` is seconds per layer (None: no limit)."""

    method: str = "optimal"
    objective: str = "edp"
    samples: int = 10_000
    seed: int = 0
    time_limit: float | None = None
    max_exhaustive: int = 20_000_000
    dataflow: str | None = None

    def __post_init__(self) -> None:
        check_choice(self.method, METHODS, "search method")
        check_choice(self.objective, OBJECTIVES, "objective")
        if self.dataflow is not None:
            check_choice(self.dataflow, ("ws", "os"), "dataflow")
        specio.check_value(self.seed, specio.SEED, "--seed")
        specio.check_samples(self.samples)
        if self.time_limit is not None:
            specio.check_value(self.time_limit, specio.SECONDS, "--time-limit (seconds)")


@dataclasses.dataclass(frozen=True)
class SearchResult:
    """The mapping a search chose (a :class:`ConvMapping` for a conv), its cost, and how the search got there."""

    mapping: Mapping | ConvMapping
    cost: Cost
    method: str
    objective: str
    evaluated: int
    seconds: float
    proven_optimal: bool

    def info(self) -> dict[str, object]:
        return {
            "method": self.method,
            "evaluated": self.evaluated,
            "seconds": round(self.seconds, 4),
            "proven_optimal": self.proven_optimal,
        }


#: the most MACs of one layer: below it the model's byte, fill and cycle counts stay exact in
#: 64-bit integers (bytes ≤ 4 × MACs) and float64; a larger layer is refused before any work
MAX_MACS = 2**50


def check_size(arch: Arch, problem: Problem, options: SearchOptions, full_rows: bool = False) -> None:
    """Raise :class:`GemmapError` (one line, naming the limit) when ``problem`` is too large for
    ``options``' search: more than :data:`MAX_MACS` MACs for any search, or, for a GEMM searched by
    anything but Gemmini's own tiler, more than :data:`MAX_TILE_TRIPLES` tile triples. Cheap: the
    candidate counts take O(√size) each."""
    dims = "x".join(str(v) for v in problem.layer_dims.values())
    if problem.macs > MAX_MACS:
        raise GemmapError(
            f"{problem.name} ({dims}) has {problem.macs:.3g} MACs, over gemmap's limit of 2**50 ≈ {MAX_MACS:.3g} "
            "per layer (its byte and cycle counts must stay exact in 64-bit arithmetic); use smaller sizes"
        )
    if options.method == "heuristic" or problem.conv is not None:
        return
    from gemmap.mapspace import MapSpace

    triples = math.prod(len(c) for c in MapSpace(arch, problem, full_rows).cands)
    if triples > MAX_TILE_TRIPLES:
        raise GemmapError(
            f"{problem.name} ({dims}): --search {options.method} would tabulate {triples:,} local tile triples, "
            f"over its limit of {MAX_TILE_TRIPLES:,} (≈1 GiB of tables); use --search heuristic or smaller sizes"
        )


def check_workload(arch: Arch, workload: Workload, options: SearchOptions) -> None:
    """:func:`check_size` of every layer of ``workload``: called before any layer is searched."""
    for problem in workload.problems:
        check_size(restrict_arch(arch, options), problem, options)


def objective_value(cost: Cost, objective: str) -> float:
    return {"latency": float(cost.cycles), "energy": cost.energy_pj, "edp": cost.edp}[objective]


def restrict_arch(arch: Arch, options: SearchOptions) -> Arch:
    """The arch seen by a search: limited to ``options.dataflow`` when one is asked for."""
    if options.dataflow is None:
        return arch
    if options.dataflow not in arch.dataflows:
        raise GemmapError(f"{arch.name} does not support dataflow {options.dataflow}")
    return arch.with_overrides(dataflow=options.dataflow)


def find_mapping(
    arch: Arch, problem: Problem, options: SearchOptions, *, full_rows: bool = False, acc_overlap: bool = False
) -> SearchResult:
    """Best mapping of ``problem`` by ``options``; ``full_rows`` demands whole output rows in the
    accumulator (the N tile covers all of N), as fusing a row-wise Softmax/LayerNorm needs, and
    ``acc_overlap`` a double-buffered accumulator (the fused op's passes then overlap the next block)."""
    import time

    arch = restrict_arch(arch, options)
    check_size(arch, problem, options, full_rows)
    if problem.conv is not None:
        from gemmap.search import conv_search

        search = {
            "heuristic": conv_search.conv_heuristic_search,
            "random": conv_search.conv_random_search,
            "exhaustive": conv_search.conv_exhaustive_search,
            "optimal": conv_search.conv_optimal_search,
        }[options.method]
        return search(arch, problem, options, full_rows)
    if options.method == "heuristic":
        from gemmap.search.heuristic import gemmini_matmul_auto

        start = time.perf_counter()
        mapping = gemmini_matmul_auto(arch, problem, options.dataflow, full_rows=full_rows)
        reason = invalid_reason(arch, problem, mapping)
        if reason is None and acc_overlap and not mapping.db_acc:
            reason = "its accumulator is not double-buffered"
        if reason is not None:
            raise GemmapError(
                f"{problem.name}: Gemmini's tiler picks {mapping.summary(arch)}, which does not fit: {reason}"
            )
        return SearchResult(
            mapping,
            evaluate(arch, problem, mapping),
            "heuristic",
            options.objective,
            1,
            time.perf_counter() - start,
            False,
        )
    if options.method == "random":
        from gemmap.search.random import random_search

        return random_search(arch, problem, options, full_rows=full_rows, acc_overlap=acc_overlap)
    if options.method == "exhaustive":
        from gemmap.search.exhaustive import exhaustive_search

        return exhaustive_search(arch, problem, options, full_rows=full_rows, acc_overlap=acc_overlap)
    from gemmap.search.optimal import optimal_search

    return optimal_search(arch, problem, options, full_rows=full_rows, acc_overlap=acc_overlap)
