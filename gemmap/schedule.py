"""Fusion-aware scheduling of a workload's op graph (DESIGN §7).

A **fusion site** is a matmul followed by a row-wise op (Softmax, LayerNorm) or an element-wise
activation (GELU) in the op graph; residual adds on the same matmul fold in as its bias
(:func:`gemmap.nonlinear.bias_cost`). For BERT: ``attn_qk+softmax``, ``out_proj+ln1`` (res1 folds
in), ``ffn1+gelu``, ``ffn2+ln2`` (res2 folds in).

Each site is costed both ways with the same analytical model and the same search:

* **unfused** — the matmul takes its best free mapping (``find_mapping(full_rows=False)``),
  writes its output to DRAM, and the op streams it back and writes its result
  (:func:`gemmap.nonlinear.stream_cost`);
* **fused** — for row-wise ops the matmul's mapping is searched with ``full_rows=True`` (the N tile
  is all of N and the reduction completes in the accumulator); the intermediate never reaches
  DRAM (the matmul's C write is now the op's output) and the unit's passes over a row block
  overlap the next block's matmul (:func:`gemmap.nonlinear.fused_cost`) when the accumulator is
  double-buffered. The site is costed with the matmul's best whole-row mapping and, when that one
  is single-buffered, also with its best whole-row mapping whose accumulator is double-buffered
  (``acc_overlap``: the passes then hide behind the next block); the cheaper site for the
  objective is kept — each candidate proven optimal for the matmul, the site the better of the two,
  which the site's own optimum may still beat. Element-wise GELU needs
  no constraint: it is applied on mvout of the best free mapping. A site whose constrained
  search finds nothing that fits (``GemmapError``), or an arch without the unit, is infeasible.

Policies: ``none`` (all unfused), ``all`` (every feasible site fused), ``auto`` (the assignment
that minimizes the workload's total objective — for latency and energy, which add up, that is
each site's cheaper schedule; for EDP = ΣE·ΣT, which does not, the assignments are enumerated).
The verdict is whatever the model says; there is no rule.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
from collections.abc import Callable

from gemmap.arch import Arch
from gemmap.errors import GemmapError, check_choice
from gemmap.mapper import LayerResult, SearchCache, Totals, WorkloadResult
from gemmap.nonlinear import ROW_WISE, OpCost, RowBlocks, bias_cost, fused_cost, fusion_blocker, stream_cost
from gemmap.search import SearchOptions, SearchResult, check_workload
from gemmap.workload import NonlinearOp, Problem, Workload

POLICIES = ("none", "all", "auto")
#: up to this many sites, ``auto`` under EDP enumerates every assignment; beyond, it descends
_ENUMERATE_SITES = 14


@dataclasses.dataclass(frozen=True)
class Site:
    """A matmul and the non-linear op fused after it; ``biases`` are residual adds folded in."""

    producer: Problem
    op: NonlinearOp
    biases: tuple[NonlinearOp, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.producer.name}+{self.op.name}"

    @property
    def repeat(self) -> int:
        return self.producer.repeat

    @property
    def row_wise(self) -> bool:
        return self.op.kind in ROW_WISE


@dataclasses.dataclass(frozen=True)
class SiteSchedule:
    """One way (fused or unfused) of running one instance of a site, with its time breakdown.

    ``compute_cycles + memory_cycles + norm_cycles == cycles``: array compute of the matmul,
    exposed memory time (matmul transfers beyond compute, bias preload, the unfused op's
    transfers), and exposed normalization (unit or CPU) time. ``intermediate_write_bytes`` /
    ``intermediate_read_bytes`` are the matmul-output bytes that go to DRAM and come back.
    """

    fused: bool
    matmul: SearchResult
    ops: tuple[OpCost, ...]
    intermediate_write_bytes: int
    intermediate_read_bytes: int

    @property
    def cycles(self) -> int:
        return self.matmul.cost.cycles + sum(o.cycles for o in self.ops)

    @property
    def energy_pj(self) -> float:
        return self.matmul.cost.energy_pj + sum(o.energy_pj for o in self.ops)

    @property
    def dram_bytes(self) -> int:
        return self.matmul.cost.dram_bytes + sum(o.dram_bytes for o in self.ops)

    @property
    def edp(self) -> float:
        return self.energy_pj * self.cycles

    @property
    def compute_cycles(self) -> float:
        return self.matmul.cost.busy_cycles

    @property
    def norm_cycles(self) -> float:
        return sum(o.norm_cycles for o in self.ops)

    @property
    def memory_cycles(self) -> float:
        return self.cycles - self.compute_cycles - self.norm_cycles

    def metric(self, objective: str) -> float:
        return {"latency": float(self.cycles), "energy": self.energy_pj, "edp": self.edp}[objective]

    def to_dict(self, arch: Arch) -> dict[str, object]:
        return {
            "cycles": self.cycles,
            "energy_pj": self.energy_pj,
            "dram_bytes": self.dram_bytes,
            "edp": self.edp,
            "breakdown_cycles": {
                "compute": self.compute_cycles,
                "memory": self.memory_cycles,
                "normalization": self.norm_cycles,
            },
            "intermediate_dram_bytes": {"write": self.intermediate_write_bytes, "read": self.intermediate_read_bytes},
            "mapping": self.matmul.mapping.summary(arch),
            "search": self.matmul.info(),
            "ops": [
                {
                    "name": o.name,
                    "where": o.where,
                    "cycles": o.cycles,
                    "energy_pj": o.energy_pj,
                    "dram_bytes": o.dram_bytes,
                    "note": o.note,
                }
                for o in self.ops
            ],
        }


@dataclasses.dataclass(frozen=True)
class SiteResult:
    """A site costed both ways. ``fused`` is None when infeasible (``reason`` says why)."""

    site: Site
    unfused: SiteSchedule
    fused: SiteSchedule | None
    reason: str = ""

    def schedule(self, fused: bool) -> SiteSchedule:
        return self.fused if fused and self.fused is not None else self.unfused

    def ratio(self, objective: str = "latency") -> float | None:
        """fused / unfused for ``objective`` (None when fusion is infeasible)."""
        if self.fused is None:
            return None
        return self.fused.metric(objective) / self.unfused.metric(objective)


@dataclasses.dataclass(frozen=True)
class ScheduleResult:
    """The sites of a workload costed both ways, the rest of its layers, and the chosen policy.

    ``chosen`` holds, per site, whether ``policy`` fuses it; ``auto_choice`` is ``auto``'s answer
    (also when the policy is another one, so the three totals can be compared).
    """

    arch: Arch
    workload_name: str
    objective: str
    policy: str
    sites: tuple[SiteResult, ...]
    others: tuple[LayerResult, ...]
    order: tuple[str, ...]
    auto_choice: tuple[bool, ...]

    def choice(self, policy: str) -> tuple[bool, ...]:
        check_choice(policy, POLICIES, "fusion policy")
        if policy == "none":
            return tuple(False for _ in self.sites)
        if policy == "all":
            return tuple(s.fused is not None for s in self.sites)
        return self.auto_choice

    @property
    def chosen(self) -> tuple[bool, ...]:
        return self.choice(self.policy)

    def total(self, policy: str | None = None) -> Totals:
        return Totals.of(self.layers(policy or self.policy))

    def layers(self, policy: str) -> tuple[LayerResult, ...]:
        """All rows (matmuls and non-linear ops) under ``policy``, in the workload's order."""
        rows = {x.name: [x] for x in self.others}
        for s, fuse in zip(self.sites, self.choice(policy)):
            rows[s.site.producer.name] = site_rows(s, fuse)
        return tuple(x for name in self.order for x in rows.get(name, []))

    def as_workload_result(self) -> WorkloadResult:
        return WorkloadResult(self.arch, self.workload_name, self.objective, self.policy, self.layers(self.policy))

    def to_json(self) -> dict[str, object]:
        """The ``schedule --json`` record (DESIGN §8)."""
        sites = []
        for s, fuse in zip(self.sites, self.auto_choice):
            rec: dict[str, object] = {
                "site": s.site.name,
                "repeat": s.site.repeat,
                "unfused": s.unfused.to_dict(self.arch),
                "fused": s.fused.to_dict(self.arch) if s.fused else None,
                "chosen": "fused" if fuse else "unfused",
            }
            if s.fused is None:
                rec["fused_infeasible"] = s.reason
            else:
                rec["latency_change"] = s.ratio("latency") - 1.0  # type: ignore[operator]
            sites.append(rec)
        return {
            "arch": self.arch.summary(),
            "workload": {"name": self.workload_name},
            "objective": self.objective,
            "sites": sites,
            "total": {p: self.total(p).to_dict() for p in POLICIES},
        }


def site_rows(s: SiteResult, fuse: bool) -> list[LayerResult]:
    """The matmul and its non-linear ops as ``gemmap map`` rows for one schedule of a site."""
    sched = s.schedule(fuse)
    p = s.site.producer
    note = f"fused with {s.site.op.name}" if fuse else ""
    rows = [LayerResult.from_search(p, sched.matmul, note=note)]
    ops = {o.name: o for o in s.site.biases + (s.site.op,)}
    rows += [op_row(ops[c.name], c) for c in sched.ops]
    return rows


def op_row(op: NonlinearOp, cost: OpCost) -> LayerResult:
    """A non-linear op as a ``gemmap map`` row (no MACs, no mapping)."""
    lower = cost.dram_bytes if cost.where in ("norm-unit", "cpu", "bias") else 0
    unit = "CPU" if cost.where == "cpu" else "unit"
    bound = unit if cost.norm_cycles >= cost.memory_cycles else "memory"
    return LayerResult(
        name=op.name, op=op.kind, dims={"rows": op.rows, "row_len": op.row_len}, repeat=op.repeat, macs=0,
        cycles=cost.cycles, energy_pj=cost.energy_pj, dram_bytes=cost.dram_bytes, dram_bytes_lower_bound=lower,
        utilization=None, mapping=None, search=None, note=cost.note, busy_cycles=cost.norm_cycles, bound=bound,
    )  # fmt: skip


# --- the op graph -------------------------------------------------------------------------


def fusion_sites(workload: Workload) -> tuple[tuple[Site, ...], tuple[NonlinearOp, ...]]:
    """The fusion sites of ``workload`` and the non-linear ops that belong to none.

    A matmul's first Softmax/LayerNorm consumer (else its first GELU) forms a site with it; its
    residual adds fold in as bias (also on a matmul without a site: not returned here, see
    :func:`schedule_workload`). A consumer whose repeat differs from the matmul's, a second
    row-wise consumer, or an op after no matmul runs on its own (streamed, unfused).
    """
    sites: list[Site] = []
    loose: list[NonlinearOp] = []
    for p in workload.problems:
        cons = [o for o in workload.consumers(p.name) if o.repeat == p.repeat]
        main = next((o for o in cons if o.kind in ROW_WISE), None) or next((o for o in cons if o.kind == "gelu"), None)
        biases = tuple(o for o in cons if o.kind == "add")
        if main is not None:
            sites.append(Site(p, main, biases))
        loose += [o for o in workload.consumers(p.name) if o is not main and o not in biases]
    placed = {o.name for s in sites for o in (s.op, *s.biases)} | {o.name for o in loose}
    loose += [o for o in workload.nonlinear if o.name not in placed and o.after is None]
    return tuple(sites), tuple(loose)


# --- costing -----------------------------------------------------------------------------


def unfused_schedule(arch: Arch, site: Site, cache: SearchCache) -> SiteSchedule:
    """Best free mapping; the output goes to DRAM and the op streams it back."""
    free = cache.get(site.producer, full_rows=False)
    ops = tuple(bias_cost(arch, b, site.producer.name) for b in site.biases) + (stream_cost(arch, site.op),)
    inter = site.producer.M * site.producer.N * arch.datatypes.output_bytes
    return SiteSchedule(False, free, ops, inter, inter)


def fused_schedule(arch: Arch, site: Site, cache: SearchCache) -> tuple[SiteSchedule | None, str]:
    """The best schedule with the op fused, or (None, why not)."""
    p = site.producer
    blocker = fusion_blocker(arch, site.op, p.N)
    if blocker is None and site.op.elements != p.M * p.N:
        blocker = f"{site.op.name} has {site.op.elements} elements but {p.name} produces {p.M * p.N}"
    if blocker is not None:
        return None, blocker
    try:
        res = cache.get(p, full_rows=site.row_wise)
    except GemmapError as exc:
        return None, f"no whole-row mapping fits: {exc}"
    candidates = [_fused_with(arch, site, res)]
    if site.row_wise and not res.mapping.db_acc:
        # the matmul's best whole-row mapping leaves the op's passes exposed; the best one with a
        # double-buffered accumulator hides them behind the next row block: cost both, keep the better
        with contextlib.suppress(GemmapError):
            candidates.append(_fused_with(arch, site, cache.get(p, full_rows=True, acc_overlap=True)))
    return min(candidates, key=lambda c: c.metric(cache.options.objective)), ""


def _fused_with(arch: Arch, site: Site, res: SearchResult) -> SiteSchedule:
    """The fused schedule of ``site`` with its matmul mapped as ``res``."""
    p, m = site.producer, res.mapping
    if site.row_wise and m.local[2] != p.N:
        raise GemmapError(f"{p.name}: search returned N tile {m.local[2]} under full_rows (need {p.N})")
    rb = RowBlocks(p.M, m.local[0], res.cost.cycles, m.db_acc)
    ops = tuple(bias_cost(arch, b, p.name) for b in site.biases) + (fused_cost(arch, site.op, p.name, rb),)
    return SiteSchedule(True, res, ops, 0, 0)


def best_assignment(sites: tuple[SiteResult, ...], base: Totals, objective: str) -> tuple[bool, ...]:
    """The fused/unfused assignment of ``sites`` that minimizes the workload's total ``objective``
    (``base`` = everything outside the sites). Latency and energy add up over sites, so each site
    takes its cheaper schedule; EDP does not, so assignments are enumerated (coordinate descent
    from the best of none/all/per-site beyond ``_ENUMERATE_SITES`` sites)."""
    per_site = tuple(s.fused is not None and s.fused.metric(objective) < s.unfused.metric(objective) for s in sites)
    if objective != "edp":
        return per_site

    def value(choice: tuple[bool, ...]) -> float:
        c = base.cycles + sum(s.schedule(f).cycles * s.site.repeat for s, f in zip(sites, choice))
        e = base.energy_pj + sum(s.schedule(f).energy_pj * s.site.repeat for s, f in zip(sites, choice))
        return c * e

    free = [i for i, s in enumerate(sites) if s.fused is not None]
    none = tuple(False for _ in sites)
    every = tuple(s.fused is not None for s in sites)
    if len(free) <= _ENUMERATE_SITES:
        best = none
        for bits in itertools.product((False, True), repeat=len(free)):
            c = list(none)
            for i, b in zip(free, bits):
                c[i] = b
            if value(tuple(c)) < value(best):
                best = tuple(c)
        return best
    best = min((none, every, per_site), key=value)
    improved = True
    while improved:
        improved = False
        for i in free:
            c = list(best)
            c[i] = not c[i]
            if value(tuple(c)) < value(best):
                best, improved = tuple(c), True
    return best


def schedule_workload(
    arch: Arch,
    workload: Workload,
    options: SearchOptions,
    policy: str = "auto",
    on_layer: Callable[[str], None] | None = None,
    cache: SearchCache | None = None,
) -> ScheduleResult:
    """Cost every fusion site of ``workload`` unfused and (unless ``policy`` is ``none``) fused.

    ``on_layer(name)`` is called before each matmul is searched; ``cache`` shares searches of
    equal shapes (it must be built for the same ``arch`` and ``options``).
    """
    check_choice(policy, POLICIES, "fusion policy")
    check_workload(arch, workload, options)  # too large a layer is refused before any search
    cache = cache or SearchCache(arch, options)
    sites, loose = fusion_sites(workload)
    by_producer = {s.producer.name: s for s in sites}
    results: list[SiteResult] = []
    others: list[LayerResult] = []
    for p in workload.problems:
        if on_layer:
            on_layer(p.name)
        site = by_producer.get(p.name)
        if site is None:
            others.append(LayerResult.from_search(p, cache.get(p)))
            others += [
                op_row(b, bias_cost(arch, b, p.name))
                for b in workload.consumers(p.name)
                if b.kind == "add" and b.repeat == p.repeat
            ]
            continue
        unfused = unfused_schedule(arch, site, cache)
        if policy == "none":
            results.append(SiteResult(site, unfused, None, "not evaluated (fusion policy none)"))
            continue
        fused, reason = fused_schedule(arch, site, cache)
        results.append(SiteResult(site, unfused, fused, reason))
    others += [op_row(o, stream_cost(arch, o)) for o in loose]
    order = _order(workload, tuple(results), others)
    base = Totals.of(others)
    auto = best_assignment(tuple(results), base, options.objective)
    return ScheduleResult(arch, workload.name, options.objective, policy, tuple(results), tuple(others), order, auto)


def _order(workload: Workload, sites: tuple[SiteResult, ...], others: list[LayerResult]) -> tuple[str, ...]:
    """Row keys in the workload's order: its stated sequence where it has one; else each matmul (a
    site's rows go under its producer's name) followed by its other consumers, ops after no matmul
    last."""
    other_names = {x.name for x in others}
    order: list[str] = list(workload.sequence)
    for p in workload.problems:
        order.append(p.name)
        order += [o.name for o in workload.consumers(p.name) if o.name in other_names]
    order += [o.name for o in workload.nonlinear if o.after is None and o.name in other_names]
    seen: set[str] = set()
    return tuple(x for x in order if not (x in seen or seen.add(x)))  # type: ignore[func-returns-value]
