"""``random``: Timeloop's random mapper — N mappings drawn uniformly from the valid pruned
mapspace (:meth:`gemmap.mapspace.MapSpace.sample`), costed by the batched model, best kept."""

from __future__ import annotations

import time

import numpy as np

from gemmap.arch import Arch
from gemmap.mapping import MappingBatch
from gemmap.mapspace import MapSpace
from gemmap.model import evaluate, evaluate_batch
from gemmap.search import SearchOptions, SearchResult
from gemmap.workload import Problem


def best_of_batch(arch: Arch, problem: Problem, batch: MappingBatch, objective: str) -> tuple[int, float]:
    """Index and objective value of the best mapping of ``batch`` (first of ties)."""
    values = evaluate_batch(arch, problem, batch).metric(objective)
    i = int(np.argmin(values))
    return i, float(values[i])


def random_search(
    arch: Arch, problem: Problem, options: SearchOptions, full_rows: bool = False, acc_overlap: bool = False
) -> SearchResult:
    """Best of ``options.samples`` uniform samples (seed ``options.seed``), re-scored by ``evaluate``."""
    start = time.perf_counter()
    space = MapSpace(arch, problem, full_rows, acc_overlap)
    space.require_small_grid("random sampling")
    space.require_nonempty()
    batch = space.sample(options.samples, options.seed)
    i, _ = best_of_batch(arch, problem, batch, options.objective)
    m = batch[i]
    return SearchResult(
        m, evaluate(arch, problem, m), "random", options.objective, len(batch), time.perf_counter() - start, False
    )
