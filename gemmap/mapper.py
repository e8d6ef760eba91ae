"""Whole-workload mapping: search every matmul and conv layer, once per distinct shape, and total up.

A :class:`LayerResult` is one row of ``gemmap map``: a matmul or conv with its chosen mapping, or
(once the scheduler adds them) a non-linear op. Searches are shared by :meth:`Problem.key`: the
GEMM shape for a matmul, the whole conv shape for a conv. Per-layer figures are for one instance; totals
multiply by ``repeat``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from gemmap.arch import Arch
from gemmap.conv import ConvMapping
from gemmap.mapping import Mapping
from gemmap.model import Cost
from gemmap.search import SearchOptions, SearchResult, check_workload, find_mapping
from gemmap.workload import Problem, Workload


@dataclasses.dataclass(frozen=True)
class LayerResult:
    """One layer of a whole-model result (one instance; ``repeat`` instances run)."""

    name: str
    op: str
    dims: dict[str, int]
    repeat: int
    macs: int
    cycles: int
    energy_pj: float
    dram_bytes: int
    dram_bytes_lower_bound: int
    utilization: float | None  # None for a non-linear op (no MACs)
    mapping: Mapping | ConvMapping | None = None
    search: SearchResult | None = None
    note: str = ""
    #: the matmul or conv this row maps (None for a non-linear op)
    problem: Problem | None = None
    #: cycles of array compute (matmul, conv) or of the unit / host CPU (non-linear op); the rest
    #: of ``cycles`` is exposed memory time
    busy_cycles: float = 0.0
    #: what bounds the time: compute, memory (exposed transfers), DRAM (bandwidth floor), CPU, unit
    bound: str = ""

    @property
    def edp(self) -> float:
        return self.energy_pj * self.cycles

    @classmethod
    def from_search(cls, problem: Problem, result: SearchResult, note: str = "") -> LayerResult:
        c: Cost = result.cost
        return cls(
            name=problem.name,
            op=problem.op,
            dims=problem.layer_dims,
            repeat=problem.repeat,
            macs=c.macs,
            cycles=c.cycles,
            energy_pj=c.energy_pj,
            dram_bytes=c.dram_bytes,
            dram_bytes_lower_bound=c.dram_bytes_lower_bound,
            utilization=c.utilization,
            mapping=result.mapping,
            search=result,
            note=note,
            problem=problem,
            busy_cycles=c.busy_cycles,
            bound=c.bound,
        )


@dataclasses.dataclass(frozen=True)
class Totals:
    cycles: int
    energy_pj: float

    @property
    def edp(self) -> float:
        return self.energy_pj * self.cycles

    @classmethod
    def of(cls, layers: tuple[LayerResult, ...] | list[LayerResult]) -> Totals:
        return cls(sum(x.cycles * x.repeat for x in layers), sum(x.energy_pj * x.repeat for x in layers))

    def to_dict(self) -> dict[str, float]:
        return {"cycles": self.cycles, "energy_pj": self.energy_pj, "edp": self.edp}


@dataclasses.dataclass(frozen=True)
class WorkloadResult:
    """The result of mapping (and scheduling) a whole workload on one arch."""

    arch: Arch
    workload_name: str
    objective: str
    fusion: str
    layers: tuple[LayerResult, ...]

    @property
    def total(self) -> Totals:
        return Totals.of(self.layers)


class SearchCache:
    """Search results keyed by (:meth:`Problem.key`, full-rows flag): BERT repeats shapes
    (q/k/v/out_proj), ResNet repeats convs."""

    def __init__(self, arch: Arch, options: SearchOptions) -> None:
        self.arch, self.options = arch, options
        self._results: dict[tuple[tuple[int, ...], bool, bool], SearchResult] = {}

    def get(self, problem: Problem, full_rows: bool = False, acc_overlap: bool = False) -> SearchResult:
        key = (problem.key(), full_rows, acc_overlap)
        if key not in self._results:
            self._results[key] = find_mapping(
                self.arch, problem, self.options, full_rows=full_rows, acc_overlap=acc_overlap
            )
        return self._results[key]


def map_layers(
    arch: Arch,
    workload: Workload,
    options: SearchOptions,
    *,
    on_layer: Callable[[str], None] | None = None,
    cache: SearchCache | None = None,
) -> tuple[LayerResult, ...]:
    """Best free (unfused) mapping of every matmul and conv layer of ``workload``."""
    check_workload(arch, workload, options)  # too large a layer is refused before any search
    cache = cache or SearchCache(arch, options)
    layers = []
    for problem in workload.problems:
        if on_layer:
            on_layer(problem.name)
        layers.append(LayerResult.from_search(problem, cache.get(problem)))
    return tuple(layers)
