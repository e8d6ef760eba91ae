"""``exhaustive``: every mapping of the pruned valid mapspace, batched through the vectorised model.

Refuses spaces larger than ``options.max_exhaustive`` (counted first, without enumerating).
"""

from __future__ import annotations

import time

from gemmap.arch import Arch
from gemmap.errors import GemmapError
from gemmap.mapspace import MapSpace
from gemmap.model import evaluate
from gemmap.search import SearchOptions, SearchResult
from gemmap.search.random import best_of_batch
from gemmap.workload import Problem


def exhaustive_search(
    arch: Arch, problem: Problem, options: SearchOptions, full_rows: bool = False, acc_overlap: bool = False
) -> SearchResult:
    """The best mapping of the whole pruned space (proven: every mapping was evaluated)."""
    space = MapSpace(arch, problem, full_rows, acc_overlap)
    space.require_small_grid("the exhaustive search")
    return best_of_space(space, problem, options, lambda b: best_of_batch(arch, problem, b, options.objective),
                         lambda m: evaluate(arch, problem, m), "mapspace")  # fmt: skip


def best_of_space(space, problem: Problem, options: SearchOptions, best_in, rescore, what: str) -> SearchResult:
    """Walk every batch of ``space.enumerate()`` (GEMM or conv), keep the best by ``best_in(batch) ->
    (index, value)``, and re-score it with ``rescore``; refused, with one line, when the counted size
    exceeds ``options.max_exhaustive``."""
    start = time.perf_counter()
    space.require_nonempty()
    size = space.size().total
    if size > options.max_exhaustive:
        raise GemmapError(
            f"{problem.name}: the {what} has {size:,} mappings, more than the exhaustive limit of "
            f"{options.max_exhaustive:,}; use --search optimal (proven optimal) or --search random"
        )
    best, best_value, seen = None, float("inf"), 0
    for batch in space.enumerate():
        i, value = best_in(batch)
        seen += len(batch)
        if value < best_value:
            best, best_value = batch[i], value
    assert best is not None
    return SearchResult(best, rescore(best), "exhaustive", options.objective, seen, time.perf_counter() - start, True)
