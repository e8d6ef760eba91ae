"""Pipelines over several Gemmini instances (``gemmap pipeline``; docs/model.md, "Pipelines").

The model's op sequence is cut into contiguous stages, one per accelerator instance. Each
accelerator maps every layer of the model once with the existing search (:func:`api.map_workload`,
searches shared per shape by its :class:`~gemmap.mapper.SearchCache`); a stage's cost is then the
sum of its layers' costs on its accelerator, at that accelerator's clock.

**Units.** The workload's rows (matmuls, convs and the non-linear ops after them, in order) repeat
``blocks`` times, ``blocks`` being the greatest common divisor of their repeats (BERT-base: 12
encoder layers; a list of distinct convs: 1). A unit is one matmul or conv of one block (all its
instances in that block, e.g. the 12 heads of ``attn_qk``) with the non-linear ops that follow it:
a cut falls only before a matmul, so a fused or bias-folded op stays with its producer. ``cuts``
``blocks`` allows cuts at block boundaries only.

**Hand-off.** gemmap keeps no activation on chip between layers: every layer reads its inputs from
DRAM and writes its output there (through the L2 where there is one), on one accelerator as in a
pipeline, so the tensors a cut hands over are already in the layers' traffic and energy; what a
cut adds is the consumer's wait for the producer's last write to land before its first read, one
DRAM round trip (``dram.latency_cycles`` of the consumer) per inference. The bytes a cut hands over
(the output of the unit before it, and the block's input when it falls inside a block, for the
residual) are reported.

**Shared DRAM.** The accelerators share one channel of ``B`` bytes/s (default: the largest
``dram.bytes_per_cycle × frequency`` among them, what the channel delivers to one instance alone;
an instance stated faster than a smaller ``B`` is mapped at ``B``, :func:`capped`); the steady state, the sharing rule and the exact optimum are in :mod:`gemmap.chain`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from functools import reduce
from typing import Any

import numpy as np

from gemmap import chain
from gemmap.arch import Arch
from gemmap.errors import GemmapError, check_choice
from gemmap.mapper import LayerResult, WorkloadResult
from gemmap.search import SearchOptions
from gemmap.workload import Workload

CUTS = ("ops", "blocks")


@dataclasses.dataclass(frozen=True)
class Unit:
    """One matmul or conv of one block with the non-linear ops after it (``rows``, each with how many
    instances it runs in the unit); ``block`` numbers the block from 0 (None: the head or tail of the
    model, outside the repeated blocks, e.g. an LM head)."""

    block: int | None
    rows: tuple[tuple[str, int], ...]
    #: the row the unit is named after: its matmul or conv (its first row when it has none)
    lead: str

    @property
    def name(self) -> str:
        return self.lead if self.block is None else f"{self.lead}@{self.block}"


@dataclasses.dataclass(frozen=True)
class UnitCost:
    """One unit on one accelerator: cycles, energy, DRAM bytes, MACs; ``handoff_bytes`` is what a cut
    right after the unit hands over."""

    cycles: int
    energy_pj: float
    dram_bytes: int
    macs: int
    handoff_bytes: int


@dataclasses.dataclass(frozen=True)
class Stage:
    """A stage of the chosen partition, in the units of its accelerator and in seconds; ``instance``
    names the accelerator (its arch name, with ``#2``, ``#3`` on repeats of one arch)."""

    arch: Arch
    instance: str
    units: tuple[Unit, ...]
    cycles: int
    busy_s: float
    stage_s: float
    energy_pj: float
    dram_bytes: float
    macs: int
    handoff_in_bytes: int

    @property
    def layers(self) -> str:
        """The stage's span, e.g. ``q_proj@0 … ffn2@5`` (first and last unit)."""
        if not self.units:
            return "(idle)"
        if len(self.units) == 1:
            return self.units[0].name
        return f"{self.units[0].name}…{self.units[-1].name}"

    @property
    def utilization(self) -> float:
        """Array utilization while busy: ideal cycles (MACs / PEs) over the stage's cycles."""
        return self.macs / (self.arch.dim_rows * self.arch.dim_cols) / self.cycles if self.cycles else 0.0


@dataclasses.dataclass(frozen=True)
class Alone:
    """One accelerator running the whole model."""

    arch: Arch
    instance: str
    result: WorkloadResult
    evaluation: chain.Evaluation


@dataclasses.dataclass(frozen=True)
class PipelineResult:
    """The chosen partition, PipeBERT's binary search, each accelerator alone, and data-parallel."""

    workload_name: str
    archs: tuple[Arch, ...]
    objective: str
    min_throughput: float
    cuts: str
    units: tuple[Unit, ...]
    bandwidth: float
    best: chain.Evaluation
    #: the exact partition of highest throughput (``best`` itself under objective throughput)
    fastest: chain.Evaluation
    stages: tuple[Stage, ...]
    bisection: chain.SearchTrace
    partitions: int
    alone: tuple[Alone, ...]
    data_parallel: chain.DataParallel

    @property
    def throughput(self) -> float:
        return self.best.throughput

    def to_json(self) -> dict[str, Any]:
        """The ``pipeline --json`` record: ``throughput``, ``alone``, ``stages`` (``arch``, ``layers``,
        ``cycles``, ...), PipeBERT's search, data-parallel. Units: inferences/s, s, pJ, J·s, bytes."""
        b, bs = self.best, self.bisection.best
        return {
            "workload": {"name": self.workload_name},
            "objective": self.objective,
            "min_throughput": self.min_throughput,
            "cuts": self.cuts,
            "dram_bytes_per_s": self.bandwidth,
            "throughput": b.throughput,
            "period_s": b.period_s,
            "latency_s": b.latency_s,
            "energy_pj": b.energy_total_pj,
            "edp_j_s": b.edp,
            "edp_period_j_s": b.edp_period,
            "dram_bound": b.dram_bound,
            "stages": [
                {
                    "arch": s.instance,
                    "layers": [u.name for u in s.units],
                    "cycles": s.cycles,
                    "busy_s": s.busy_s,
                    "stage_s": s.stage_s,
                    "busy_share": s.busy_s / b.period_s,
                    "utilization": s.utilization,
                    "energy_pj": s.energy_pj,
                    "dram_bytes": s.dram_bytes,
                    "dram_share": s.dram_bytes / sum(b.dram_bytes) if sum(b.dram_bytes) else 0.0,
                    "handoff_in_bytes": s.handoff_in_bytes,
                }
                for s in self.stages
            ],
            "alone": {a.instance: a.evaluation.throughput for a in self.alone},
            "alone_detail": {
                a.instance: {
                    "throughput": a.evaluation.throughput,
                    "latency_s": a.evaluation.latency_s,
                    "energy_pj": a.evaluation.energy_total_pj,
                    "edp_j_s": a.evaluation.edp,
                    "edp_period_j_s": a.evaluation.edp_period,
                    "cycles": a.result.total.cycles,
                }
                for a in self.alone
            },
            "data_parallel": {
                "throughput": self.data_parallel.throughput,
                "rates": {a.instance: r for a, r in zip(self.alone, self.data_parallel.rates)},
                "energy_pj": self.data_parallel.energy_per_inference_pj,
                "edp_period_j_s": self.data_parallel.energy_per_inference_pj * 1e-12 / self.data_parallel.throughput,
            },
            "binary_search": {
                "throughput": bs.throughput,
                "gap": 1.0 - bs.throughput / self.fastest.throughput,  # throughput lost against the exact fastest
                "exact_throughput": self.fastest.throughput,
                "evaluations": self.bisection.evaluations,
                "partitions": self.partitions,
                "stages": [{"arch": self.alone[a].instance, "units": [s, e]} for a, s, e in bs.partition.ranges()],
            },
        }


# --- units and their costs -------------------------------------------------------------------------


def block_count(rows: tuple[LayerResult, ...]) -> int:
    """How many identical blocks the rows repeat in: the gcd of the repeats above 1, when the rows
    that do not share it (an LM head, a final norm) form a head or a tail around the others; else the
    gcd of every repeat."""
    repeated = [x.repeat for x in rows if x.repeat > 1]
    blocks = reduce(math.gcd, repeated) if repeated else 1
    odd = [i for i, x in enumerate(rows) if x.repeat % blocks]
    inside = [i for i, x in enumerate(rows) if not x.repeat % blocks]
    if odd and inside and any(inside[0] < i < inside[-1] for i in odd):
        return reduce(math.gcd, (x.repeat for x in rows))
    return blocks


def _groups(rows: list[tuple[LayerResult, int]], cuts: str) -> list[tuple[str, tuple[tuple[str, int], ...]]]:
    """Rows (with instances per block) cut into units: a unit per matmul/conv with the non-linear rows
    after it, those before the first one joining it (a pre-norm); one unit with ``cuts="blocks"``."""
    groups: list[list[tuple[str, int]]] = []
    pending: list[tuple[str, int]] = []
    for x, count in rows:
        if cuts == "ops" and x.macs:
            groups.append([*pending, (x.name, count)])
            pending = []
        elif groups:
            groups[-1].append((x.name, count))
        else:
            pending.append((x.name, count))
    if pending:
        groups.append(pending)
    macs = {x.name for x, _ in rows if x.macs}
    return [(next((n for n, _ in g if n in macs), g[0][0]), tuple(g)) for g in groups]


#: the most units a pipeline or a deployment plan partitions: the exact partitions tabulate every
#: range of units, (units+1)^2 float64 entries per table and accelerator (1,500 units: 18 MB each,
#: and a deploy plan ~20 s); GPT-3's 96 blocks cut before every matmul are ~1,300 units
MAX_UNITS = 1_500


def units_of(rows: tuple[LayerResult, ...], cuts: str = "ops") -> tuple[Unit, ...]:
    """The workload's units in order (module docstring): the head (rows before the blocks that run
    once), per block a unit per matmul/conv with its non-linear rows, the tail; with
    ``cuts="blocks"`` one unit per block (and one for the head, one for the tail)."""
    check_choice(cuts, CUTS, "cut granularity")
    blocks = block_count(rows)
    inside = [i for i, x in enumerate(rows) if not x.repeat % blocks]
    head = [(x, x.repeat) for x in rows[: inside[0]]]
    body = [(x, x.repeat // blocks) for x in rows[inside[0] : inside[-1] + 1]]
    tail = [(x, x.repeat) for x in rows[inside[-1] + 1 :]]
    first = _groups(head, cuts) if head else []
    per_block = _groups(body, cuts)
    last = _groups(tail, cuts) if tail else []
    count = len(first) + blocks * len(per_block) + len(last)
    if count > MAX_UNITS:
        raise GemmapError(
            f"{count:,} pipeline units ({blocks} blocks of {len(per_block)}), over the limit of {MAX_UNITS:,} "
            f"(the partition tables hold (units+1)^2 entries per accelerator); use --cuts blocks or fewer layers"
        )
    units = [Unit(None, g, lead) for lead, g in first]
    units += [Unit(b, g, lead) for b in range(blocks) for lead, g in per_block]
    units += [Unit(None, g, lead) for lead, g in last]
    return tuple(units)


def unit_costs(result: WorkloadResult, units: tuple[Unit, ...]) -> list[UnitCost]:
    """Each unit's cost on ``result``'s accelerator (rows looked up by name)."""
    rows = {x.name: x for x in result.layers}
    t = result.arch.datatypes
    blocks = block_count(result.layers)
    first = next(x for x in result.layers if x.problem is not None)
    block_input = first.problem.M * first.problem.K * t.input_bytes if first.problem else 0
    out = []
    for i, u in enumerate(units):
        missing = [name for name, _ in u.rows if name not in rows]
        if missing:
            raise GemmapError(f"{result.arch.name}: the mapped workload has no row {missing[0]}")
        last = rows[u.rows[-1][0]]
        last_out = last.problem.M * last.problem.N if last.problem else last.dims["rows"] * last.dims["row_len"]
        at_block_end = i + 1 == len(units) or units[i + 1].block != u.block
        handoff = last_out * t.output_bytes + (0 if at_block_end or blocks == 1 else block_input)
        out.append(
            UnitCost(
                cycles=sum(rows[n].cycles * c for n, c in u.rows),
                energy_pj=sum(rows[n].energy_pj * c for n, c in u.rows),
                dram_bytes=sum(rows[n].dram_bytes * c for n, c in u.rows),
                macs=sum(rows[n].macs * c for n, c in u.rows),
                handoff_bytes=handoff,
            )
        )
    return out


def tables_of(archs: tuple[Arch, ...], costs: list[list[UnitCost]], bandwidth: float) -> chain.Tables:
    """The numeric tables :mod:`gemmap.chain` partitions (seconds, bytes, pJ)."""
    hz = np.array([a.frequency_mhz * 1e6 for a in archs])
    cyc = np.array([[c.cycles for c in row] for row in costs], dtype=np.float64)
    return chain.Tables(
        time_s=cyc / hz[:, None],
        dram_bytes=np.array([[c.dram_bytes for c in row] for row in costs], dtype=np.float64),
        energy_pj=np.array([[c.energy_pj for c in row] for row in costs], dtype=np.float64),
        fence_s=np.array([a.dram.latency_cycles for a in archs]) / hz,
        bandwidth=bandwidth,
    )


def capped(arch: Arch, bandwidth: float) -> Arch:
    """``arch`` with its DRAM bandwidth no higher than the shared channel's ``bandwidth`` (bytes/s):
    alone, an instance draws at most what the channel delivers, layer by layer."""
    per_cycle = bandwidth / (arch.frequency_mhz * 1e6)
    if arch.dram.bytes_per_cycle <= per_cycle:
        return arch
    return dataclasses.replace(arch, dram=dataclasses.replace(arch.dram, bytes_per_cycle=per_cycle))


def default_bandwidth(archs: tuple[Arch, ...]) -> float:
    """The shared channel's bytes/s: the most any one instance is stated to draw alone."""
    return max(a.dram.bytes_per_cycle * a.frequency_mhz * 1e6 for a in archs)


# --- the whole run ---------------------------------------------------------------------------------


def pipeline(
    workload: Workload,
    archs: tuple[Arch, ...],
    options: SearchOptions,
    *,
    fusion: str = "none",
    objective: str = "throughput",
    min_throughput: float = 0.0,
    cuts: str = "ops",
    bandwidth: float | None = None,
    on_layer: Callable[[str], None] | None = None,
) -> PipelineResult:
    """Map ``workload`` on each of ``archs`` and find the best pipeline partition (module docstring).

        ``objective``: ``throughput`` (the exact optimum of :func:`chain.max_throughput`, ties broken by
        latency), or ``latency`` / ``edp`` of one inference among partitions whose throughput is at least
        ``min_throughput`` (inferences/s). ``on_layer("arch: layer")`` is called before each layer is mapped
    on each accelerator (``len(archs) × len(workload.problems)`` calls).
    """
    from gemmap.api import map_workload

    if len(archs) < 2:
        raise GemmapError(f"a pipeline needs at least two accelerators (--arch given {len(archs)} time(s))")
    check_choice(objective, chain.OBJECTIVES, "pipeline objective")
    check_choice(cuts, CUTS, "cut granularity")
    if min_throughput < 0 or not math.isfinite(min_throughput):
        raise GemmapError(f"--min-throughput must be a number ≥ 0 of inferences/s, got {min_throughput}")
    if bandwidth is not None and not (bandwidth > 0 and math.isfinite(bandwidth)):
        raise GemmapError(f"the shared DRAM bandwidth must be positive, got {bandwidth}")
    bw = default_bandwidth(archs) if bandwidth is None else bandwidth
    archs = tuple(capped(a, bw) for a in archs)
    mapped: dict[Arch, WorkloadResult] = {}  # identical instances are mapped once
    for arch in archs:
        tick = None if on_layer is None else _labelled(on_layer, arch.name)
        if arch not in mapped:
            mapped[arch] = map_workload(arch, workload, options, fusion=fusion, on_layer=tick)
        elif tick is not None:
            for p in workload.problems:
                tick(p.name)
    results = [mapped[a] for a in archs]
    units = units_of(results[0].layers, cuts)
    costs = [unit_costs(r, units) for r in results]
    tables = tables_of(archs, costs, bw)
    partitions = chain.count_partitions(len(archs), len(units))
    fastest = chain.max_throughput(tables)
    if partitions <= chain.MAX_ENUMERATED:  # among the partitions of that period, the least latency
        fastest = chain.enumerate_partitions(tables, "throughput", fastest.throughput * (1 - 1e-9))
    if fastest.throughput < min_throughput:
        raise GemmapError(f"no partition reaches the throughput floor of {min_throughput:g} inferences/s")
    best = fastest if objective == "throughput" else chain.enumerate_partitions(tables, objective, min_throughput)
    names = instance_names(archs)
    alone = tuple(Alone(a, n, r, _alone(tables, i)) for i, (a, n, r) in enumerate(zip(archs, names, results)))
    return PipelineResult(
        workload_name=workload.name, archs=archs, objective=objective, min_throughput=min_throughput, cuts=cuts,
        units=units, bandwidth=bw, best=best, fastest=fastest, stages=_stages(archs, names, units, costs, best),
        bisection=chain.bisection(tables), partitions=partitions, alone=alone,
        data_parallel=chain.data_parallel(tables),
    )  # fmt: skip


def instance_names(archs: tuple[Arch, ...]) -> tuple[str, ...]:
    """Each instance's name: its arch's, with ``#2``, ``#3``, … on the repeats of one name."""
    seen: dict[str, int] = {}
    out = []
    for a in archs:
        seen[a.name] = seen.get(a.name, 0) + 1
        out.append(a.name if seen[a.name] == 1 else f"{a.name}#{seen[a.name]}")
    return tuple(out)


def _labelled(on_layer: Callable[[str], None], prefix: str) -> Callable[[str], None]:
    return lambda name: on_layer(f"{prefix}: {name}")


def _alone(tables: chain.Tables, a: int) -> chain.Evaluation:
    """Accelerator ``a`` running every unit (the others idle)."""
    k, n = tables.k, tables.n
    order = (a, *(i for i in range(k) if i != a))
    return chain.evaluate(tables, chain.Partition(order, (0, *([n] * k))))


def _stages(
    archs: tuple[Arch, ...],
    names: tuple[str, ...],
    units: tuple[Unit, ...],
    costs: list[list[UnitCost]],
    ev: chain.Evaluation,
) -> tuple[Stage, ...]:
    out = []
    for j, (a, s, e) in enumerate(ev.partition.ranges()):
        row = costs[a][s:e]
        handoff = costs[a][s - 1].handoff_bytes if s > 0 and e > s else 0
        out.append(
            Stage(
                arch=archs[a], instance=names[a], units=units[s:e], cycles=sum(c.cycles for c in row), busy_s=ev.busy_s[j],
                stage_s=ev.stage_s[j], energy_pj=ev.energy_pj[j], dram_bytes=ev.dram_bytes[j],
                macs=sum(c.macs for c in row), handoff_in_bytes=handoff,
            )
        )  # fmt: skip
    return tuple(out)
