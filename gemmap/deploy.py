"""Models larger than memory: the weight-instantiation plan (``gemmap deploy``; docs/model.md, "Models
larger than memory").

The workload is mapped on one accelerator (:func:`api.map_workload`); its op sequence is cut into
the units of :mod:`gemmap.pipeline` (a matmul or conv of one block with the non-linear ops after
it). A unit's weights are the B operands of its matmuls and the kernels of its convs (the
attention's score and value matmuls have no weights: both operands are activations). What must
stay resident besides the weights counts against the memory:

* the attention's keys and values of every layer (the KV cache of a decoder, kept for the next
  token; for an encoder, more than it needs at once): per attention matmul family (``attn_qk``,
  ``attn_av``, with their causal row blocks ``.0``, ``.1``, … the largest), its B operand × repeat;
* the largest working set of activations: the biggest matmul's input and output, plus the block's
  input kept for the residual.

The rest is the memory for weights; :mod:`gemmap.grouping` finds the plan (serial, or the next group
loading while the current one computes) exactly and the seed paper's greedy plan. Every pass (one
inference, or one token in a decoder's decode phase) streams every group again when the weights do
not fit; when they do, nothing is reloaded and the latency is the compute alone (the "unlimited
memory" latency of the comparison).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from gemmap import grouping
from gemmap.arch import Arch
from gemmap.errors import GemmapError, did_you_mean, shown
from gemmap.mapper import LayerResult, WorkloadResult
from gemmap.pipeline import Unit, units_of
from gemmap.search import SearchOptions
from gemmap.workload import Workload

MIB = 1 << 20


@dataclasses.dataclass(frozen=True)
class Resident:
    """Bytes that stay in memory besides the weights."""

    kv_bytes: int
    activation_bytes: int

    @property
    def total(self) -> int:
        return self.kv_bytes + self.activation_bytes


@dataclasses.dataclass(frozen=True)
class Group:
    """One group of a plan: its units, weights, load time from storage and compute time."""

    units: tuple[Unit, ...]
    weight_bytes: int
    load_s: float
    compute_s: float


@dataclasses.dataclass(frozen=True)
class PlanResult:
    """A plan with its groups (None fields when the plan does not exist, e.g. greedy overlap)."""

    plan: grouping.Plan
    groups: tuple[Group, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.plan.mode,
            "latency_s": self.plan.latency_s,
            "expected_latency_s": self.plan.expected_latency_s,
            "groups": [
                {"layers": [u.name for u in g.units], "weight_bytes": g.weight_bytes, "load_s": g.load_s,
                 "compute_s": g.compute_s}
                for g in self.groups
            ],
        }  # fmt: skip


@dataclasses.dataclass(frozen=True)
class DeployResult:
    """The optimal plan (least latency over both modes), the greedy plans, each mode's optimum, and
    with exit probabilities the plan of least expected latency."""

    workload_name: str
    arch: Arch
    memory_bytes: int
    resident: Resident
    storage_bytes_per_s: float
    storage_latency_s: float
    units: tuple[Unit, ...]
    total_weight_bytes: int
    unlimited_latency_s: float
    #: with the exit probabilities: the compute up to where inference stops, on average
    unlimited_expected_s: float
    fits: bool
    best: PlanResult
    per_mode: dict[str, PlanResult]
    greedy: dict[str, PlanResult | None]
    early_exit: PlanResult | None

    @property
    def weight_memory(self) -> int:
        return self.memory_bytes - self.resident.total

    def to_json(self) -> dict[str, Any]:
        """The ``deploy --json`` record (``groups``, ``latency_s``, ``unlimited_latency_s``, ``greedy``, ...)."""
        greedy = min((g for g in self.greedy.values() if g), key=lambda g: g.plan.latency_s, default=None)
        return {
            "workload": {"name": self.workload_name},
            "arch": self.arch.summary(),
            "memory_bytes": self.memory_bytes,
            "resident_bytes": {"kv_cache": self.resident.kv_bytes, "activations": self.resident.activation_bytes},
            "weight_memory_bytes": self.weight_memory,
            "total_weight_bytes": self.total_weight_bytes,
            "storage": {"bytes_per_s": self.storage_bytes_per_s, "latency_s": self.storage_latency_s},
            "fits": self.fits,
            "mode": self.best.plan.mode,
            "groups": self.best.to_dict()["groups"],
            "latency_s": self.best.plan.latency_s,
            "unlimited_latency_s": self.unlimited_latency_s,
            "unlimited_expected_latency_s": self.unlimited_expected_s,
            "overhead": self.best.plan.latency_s / self.unlimited_latency_s - 1.0,
            "greedy": greedy.to_dict() if greedy else None,
            "modes": {
                m: {"optimal": p.to_dict(), "greedy": self.greedy[m].to_dict() if self.greedy[m] else None}  # type: ignore[union-attr]
                for m, p in self.per_mode.items()
            },
            "early_exit": self.early_exit.to_dict() if self.early_exit else None,
        }


# --- what a unit holds and what stays resident --------------------------------------------------


def _weights(x: LayerResult, weight_bytes: int) -> int:
    """Weight bytes of one instance of a row: a matmul's B (none for activation-activation bmm), a
    conv's kernel."""
    p = x.problem
    if p is None or p.op == "bmm":
        return 0
    return p.K * p.N * weight_bytes


def resident_bytes(result: WorkloadResult) -> Resident:
    """KV cache and activation working set of the mapped workload (module docstring)."""
    t = result.arch.datatypes
    kv: dict[str, int] = {}
    act, block_input = 0, 0
    for x in result.layers:
        p = x.problem
        if p is None:
            continue
        if p.op == "bmm":
            family = x.name.split(".")[0]
            kv[family] = max(kv.get(family, 0), p.K * p.N * x.repeat * t.input_bytes)
        else:
            block_input = block_input or p.M * p.K * t.input_bytes
            act = max(act, p.M * p.K * t.input_bytes + p.M * p.N * t.output_bytes)
    return Resident(sum(kv.values()), act + block_input)


def read_exit_probabilities(path: str, units: tuple[Unit, ...]) -> np.ndarray:
    """Exit probabilities per unit from a YAML/JSON mapping ``unit name → probability`` (the name as
    the plan prints it, e.g. ``down@7``): each in [0, 1], summing to ≤ 1."""
    from gemmap.specio import load_yaml

    data = load_yaml(path)
    path = shown(path)
    if not isinstance(data, dict):
        raise GemmapError(f"{path}: expected a mapping of layer name to exit probability")
    names = [u.name for u in units]
    p = np.zeros(len(units))
    for key, value in data.items():
        if key not in names:
            raise GemmapError(f"{path}: no layer '{shown(key)}' in the plan's units{did_you_mean(str(key), names)}")
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise GemmapError(
                f"{path}: exit probability of '{shown(key)}' must be a number in [0, 1], got {shown(value)}"
            )
        p[names.index(key)] = float(value)
    if p.sum() > 1 + 1e-9:
        raise GemmapError(f"{path}: exit probabilities sum to {p.sum():.6g} > 1")
    return p


# --- the plan ----------------------------------------------------------------------------------------


def deploy(
    workload: Workload,
    arch: Arch,
    options: SearchOptions,
    *,
    memory_bytes: int,
    storage_bytes_per_s: float,
    storage_latency_s: float = 0.0,
    exit_probabilities: str | None = None,
    fusion: str = "none",
    cuts: str = "ops",
    result: WorkloadResult | None = None,
) -> DeployResult:
    """The weight-instantiation plan of ``workload`` on ``arch`` with ``memory_bytes`` of DRAM and a
    storage of ``storage_bytes_per_s`` (module docstring). ``exit_probabilities`` names a YAML/JSON file
    of per-unit exit probabilities; ``result`` reuses a mapping already made."""
    for value, what in ((memory_bytes, "memory"), (storage_bytes_per_s, "storage bandwidth")):
        if not (value > 0 and math.isfinite(value)):
            raise GemmapError(f"the {what} must be positive, got {value}")
    if not (storage_latency_s >= 0 and math.isfinite(storage_latency_s)):
        raise GemmapError(f"the storage latency must be ≥ 0, got {storage_latency_s}")
    if result is None:
        from gemmap.api import map_workload

        result = map_workload(arch, workload, options, fusion=fusion)
    units = units_of(result.layers, cuts)
    rows = {x.name: x for x in result.layers}
    wb = arch.datatypes.weight_bytes
    weights = np.array([sum(_weights(rows[n], wb) * c for n, c in u.rows) for u in units], dtype=np.float64)
    hz = arch.frequency_mhz * 1e6
    compute = np.array([sum(rows[n].cycles * c for n, c in u.rows) for u in units], dtype=np.float64) / hz
    resident = resident_bytes(result)
    free = memory_bytes - resident.total
    if free <= 0:
        raise GemmapError(
            f"the KV cache ({resident.kv_bytes / MIB:.1f} MiB) and activations ({resident.activation_bytes / MIB:.1f} "
            f"MiB) alone exceed the {memory_bytes / MIB:.0f} MiB of memory"
        )
    worst = int(np.argmax(weights))
    if weights[worst] > free:
        raise GemmapError(
            f"layer {units[worst].name}'s weights ({weights[worst] / MIB:.1f} MiB) exceed the {free / MIB:.1f} MiB left "
            f"for weights ({memory_bytes / MIB:.0f} MiB minus {resident.total / MIB:.1f} MiB of KV cache and activations)"
        )
    exit_p = np.zeros(len(units)) if exit_probabilities is None else read_exit_probabilities(exit_probabilities, units)
    ch = grouping.Chain(weights, compute, float(free), storage_bytes_per_s, storage_latency_s, np.zeros(len(units)))
    fits = weights.sum() <= free
    unlimited = float(compute.sum())
    reach = np.concatenate([[1.0], 1.0 - np.cumsum(exit_p)])[:-1]  # P(inference reaches unit u)
    unlimited_expected = float((compute * reach).sum())

    def described(plan: grouping.Plan) -> PlanResult:
        groups = tuple(
            Group(units[s:e], int(weights[s:e].sum()), float(ch.load_s(weights[s:e].sum())), float(compute[s:e].sum()))
            for s, e in plan.groups()
        )
        return PlanResult(plan, groups)

    if fits:  # loaded once and kept: no reload per pass
        whole = grouping.Plan("serial", (0, len(units)), unlimited, unlimited_expected)
        per_mode = {"serial": described(whole)}
        greedy = {"serial": described(whole)}
    else:
        per_mode, greedy = {}, {}
        for mode in grouping.MODES:
            try:
                per_mode[mode] = described(grouping.optimal(ch, mode))
            except GemmapError:
                continue  # e.g. two consecutive units do not fit together: no overlap plan
            g = grouping.greedy(ch, mode)
            greedy[mode] = described(g) if g else None
    best = min(per_mode.values(), key=lambda p: p.plan.latency_s)
    early = None
    if exit_probabilities is not None and not fits:
        ex = dataclasses.replace(ch, exit_p=exit_p)
        plans = [grouping.optimal(ex, m, expected=True) for m in per_mode]
        early = described(min(plans, key=lambda p: p.expected_latency_s))
        # the other plans' expected latency under the same exits
        per_mode = {m: described(grouping.evaluate(ex, m, p.plan.bounds)) for m, p in per_mode.items()}
        greedy = {m: described(grouping.evaluate(ex, m, g.plan.bounds)) if g else None for m, g in greedy.items()}
        best = min(per_mode.values(), key=lambda p: p.plan.latency_s)
    return DeployResult(
        workload_name=workload.name, arch=arch, memory_bytes=memory_bytes, resident=resident,
        storage_bytes_per_s=storage_bytes_per_s, storage_latency_s=storage_latency_s, units=units,
        total_weight_bytes=int(weights.sum()), unlimited_latency_s=unlimited,
        unlimited_expected_s=unlimited_expected, fits=bool(fits), best=best,
        per_mode=per_mode, greedy=greedy, early_exit=early,
    )  # fmt: skip
