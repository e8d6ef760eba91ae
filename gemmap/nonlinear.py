"""Costs of the non-linear ops (Softmax, LayerNorm, GELU, residual add): pure functions of arch + op.

Where an op runs is the arch's choice (``arch.nonlinear``):

* **Normalization unit** (``norm_unit: true``, Gemmini built with ``has_normalizations``, the
  I-BERT configuration). Facts from the Gemmini source: the ``Normalizer`` sits on the
  accumulator read path and reduces ``unit_elems_per_cycle`` elements per cycle (its vector width
  is DIM = 16); ``LoopMatmul`` issues ``norm_passes`` = 3 passes per row over the accumulator for
  LayerNorm (SUM → MEAN, VARIANCE → INV_STDDEV, output) and for Softmax (MAX, SUM_EXP →
  INV_SUM_EXP, output); the last pass is the ``mvout`` that writes the result. Element-wise GELU
  goes through the 16-wide activation path on ``mvout`` (one pass; I-BERT's integer polynomial
  i-GELU; Softmax's exponent is I-BERT's i-exp, LayerNorm's square root I-BERT's integer
  Newton iteration — all run at the unit's rate, which is what matters here).
  One pass over ``rows`` rows of ``row_len`` elements takes ``rows · ⌈row_len / w⌉`` cycles.
* **Host CPU** otherwise: ``cpu_cycles_per_elem.<kind>`` accelerator cycles and
  ``cpu_pj_per_elem`` pJ per element (arch YAML; an assumption stated there).

A residual add (``add``) is run the way Gemmini runs it: as the matmul's bias ``D``, preloaded
into the accumulator before the reduction (``tiled_matmul``'s D operand), whether or not the
following LayerNorm is fused — so it costs one read of the residual into the accumulator and no
separate pass (:func:`bias_cost`).

**Unfused** (:func:`stream_cost`): the op reads the matmul's output back from DRAM
(``output_bytes`` per element) and writes its result (``output_bytes`` per element). On the unit
the data is moved into the accumulator and back out by the DMA, in row blocks double-buffered in
the accumulator, so the unit's passes overlap the transfers: cycles = first block in +
max(unit passes, transfers, DRAM bound) + last block out. On the CPU: cycles = max(CPU compute,
DRAM time); the CPU reads through the shared L2 when there is one.

**Fused** (:func:`fused_cost`): the row block is already in the accumulator; the statistics
passes (all but the last) are extra reads of the accumulator and extra unit time; the last
(output) pass *is* the matmul's ``mvout``, which the matmul's cost already times and charges
(its C write), so it only adds time where the unit is slower than the output DMA. The unit works
on row block i while the array computes block i+1 when the accumulator is double-buffered
(Gemmini's LOOP_WS FSM runs two loops on the two accumulator halves); otherwise in series.
Fusion needs the unit: the host CPU cannot read the accumulator, so on the CPU path the result
must go through memory, which is the unfused schedule (:func:`fusion_blocker`).

**Energy**: DRAM bytes × ``dram.pj_per_byte`` (+ the L2, written on the way in and read on the
way out, ``2 × bytes × l2_pj_per_byte`` when the arch has one, as in :mod:`gemmap.model`);
accumulator bytes (``acc_bytes`` per element, per write and per pass read) ×
``arch.acc_pj_per_byte()``; ``unit_pj_per_elem`` per element per pass on the unit; or
``cpu_pj_per_elem`` per element on the CPU. No figure here is tuned to a target result.
"""

from __future__ import annotations

import dataclasses
import math

from gemmap.arch import Arch, ceil_div
from gemmap.workload import NonlinearOp

ROW_WISE = ("softmax", "layernorm", "rmsnorm")
#: the op kinds Gemmini has hardware for, and which: the normalizer (``has_normalizations``) for
#: Softmax and LayerNorm, the mvout activation path (``has_nonlinear_activations``) for GELU
UNIT_OF = {"softmax": "norm", "layernorm": "norm", "gelu": "activation"}
#: why the kinds with no Gemmini hardware run on the host CPU (sources in docs/model.md)
NO_UNIT = {
    "rmsnorm": "Gemmini's normalizer has no RMS statistic: its variance pass subtracts the MEAN register, "
    "which only a MEAN pass sets (Normalizer.scala)",
    "swiglu": "Gemmini's activations are NONE, RELU, LAYERNORM, IGELU, SOFTMAX: no SiLU and no element-wise "
    "product (Activation.scala)",
    "rope": "Gemmini has no element-wise rotation (multiply by cos/sin tables) on any data path",
    "add": "a residual add is the matmul's bias D, not a separate op",
}


@dataclasses.dataclass(frozen=True)
class OpCost:
    """Cost of one instance of a non-linear op in one schedule.

    ``where``: ``norm-unit``, ``cpu``, ``bias`` (residual folded into the matmul) or ``fused``.
    ``norm_cycles`` is the part of ``cycles`` spent computing on the unit or CPU; the rest is
    exposed memory time. ``dram_bytes`` is traffic the op adds beyond its producing matmul.
    """

    name: str
    kind: str
    where: str
    cycles: int
    norm_cycles: float
    energy_pj: float
    energy_breakdown: dict[str, float]
    dram_bytes: int
    note: str = ""

    @property
    def memory_cycles(self) -> float:
        return self.cycles - self.norm_cycles


def passes(arch: Arch, kind: str) -> int:
    """Passes over each row on the unit: ``norm_passes`` for Softmax/LayerNorm, 1 element-wise."""
    return arch.nonlinear.norm_passes if kind in ROW_WISE else 1


def pass_cycles(arch: Arch, rows: int, row_len: int) -> int:
    """One unit pass over ``rows`` rows: the unit takes ``w`` elements of a row per cycle."""
    return rows * ceil_div(row_len, arch.nonlinear.unit_elems_per_cycle)


def row_acc_rows(arch: Arch, row_len: int) -> int:
    """Accumulator rows (DIM int32 elements each) one output row of ``row_len`` occupies."""
    return ceil_div(row_len, arch.dim_cols)


def transfer_cycles(arch: Arch, nbytes: float) -> float:
    """Moving ``nbytes`` between DRAM and the accumulator: the slower of the DMA path and DRAM."""
    return max(nbytes / arch.local_bytes_per_cycle, nbytes / arch.dram.bytes_per_cycle)


def memory_energy(arch: Arch, nbytes: float) -> dict[str, float]:
    """Energy of ``nbytes`` crossing DRAM (and the L2 on the way, written once and read once)."""
    return {"dram": nbytes * arch.dram.pj_per_byte, "l2": 2 * nbytes * arch.l2_pj_per_byte()}


def fusion_blocker(arch: Arch, op: NonlinearOp, n: int) -> str | None:
    """Why ``op`` cannot be fused with a matmul whose output rows have ``n`` elements, or None."""
    if op.kind in NO_UNIT:
        return f"{NO_UNIT[op.kind]}: it runs on the host CPU, through memory"
    if not has_unit(arch, op.kind):
        unit = (
            "normalization unit (nonlinear.norm_unit"
            if op.kind in ROW_WISE
            else "activation unit (nonlinear.activation_unit"
        )
        return f"no {unit}: false): the host CPU reads the matmul output through memory"
    if op.kind in ROW_WISE and op.row_len != n:
        return f"{op.name} rows have {op.row_len} elements but the matmul's rows have {n}"
    if op.kind in ROW_WISE and row_acc_rows(arch, op.row_len) > arch.acc_rows:
        return f"one row of {op.row_len} int32 elements does not fit the {arch.accumulator.kib} KiB accumulator"
    return None


def has_unit(arch: Arch, kind: str) -> bool:
    """Is there accelerator hardware for ``kind`` on this arch (:data:`UNIT_OF`)?"""
    unit = UNIT_OF.get(kind)
    return (unit == "norm" and arch.nonlinear.norm_unit) or (unit == "activation" and arch.nonlinear.activation_unit)


def on_unit(arch: Arch, op: NonlinearOp) -> bool:
    """Does the unfused op run on the accelerator (else the CPU)? A row must fit the accumulator."""
    return has_unit(arch, op.kind) and row_acc_rows(arch, op.row_len) <= arch.acc_rows


def stream_cost(arch: Arch, op: NonlinearOp) -> OpCost:
    """Unfused: read the op's operands from DRAM, run the op, write the result (one instance)."""
    t, nl = arch.datatypes, arch.nonlinear
    elems = op.elements
    moved = (op.operands + 1) * elems * t.output_bytes  # the operands read back + the result written
    mem = memory_energy(arch, moved)
    if on_unit(arch, op):
        p = passes(arch, op.kind)
        busy = p * pass_cycles(arch, op.rows, op.row_len)
        per_row = row_acc_rows(arch, op.row_len)
        block_rows = min(op.rows, (arch.acc_rows // 2) // per_row)  # rows of one accumulator half
        if block_rows >= 1:  # double-buffered: transfers overlap the passes; first in, last out exposed
            edge = 2 * transfer_cycles(arch, block_rows * op.row_len * t.output_bytes)
            cycles = edge + max(busy, transfer_cycles(arch, moved))
            how = f"{p} pass(es) on the unit, {ceil_div(op.rows, block_rows)} row blocks double-buffered"
        else:  # a row fits the whole accumulator only: load, normalize, store in series
            cycles = busy + transfer_cycles(arch, moved)
            how = f"{p} pass(es) on the unit, single-buffered (a row needs more than half the accumulator)"
        breakdown = {
            **mem,
            "acc": (1 + p) * elems * t.acc_bytes * arch.acc_pj_per_byte(),  # mvin write + p pass reads
            "norm_unit": p * elems * nl.unit_pj_per_elem,
        }
        where = "norm-unit"
    else:
        busy = elems * nl.cpu_cycles_per_elem.of(op.kind)
        cycles = max(busy, moved / arch.dram.bytes_per_cycle)
        breakdown = {**mem, "cpu": elems * nl.cpu_pj_per_elem}
        where = "cpu"
        how = "host CPU" + ("" if has_unit(arch, op.kind) else " (no Gemmini unit)")
    cyc = math.ceil(cycles)
    return OpCost(op.name, op.kind, where, cyc, min(float(busy), cyc), sum(breakdown.values()), breakdown, moved, how)


def bias_cost(arch: Arch, op: NonlinearOp, producer: str) -> OpCost:
    """A residual add folded into ``producer`` as Gemmini's bias D: the residual (``output_bytes``
    per element) is read from DRAM into the accumulator once, before the reduction. Counted in
    series with the matmul (conservative, and identical in the fused and unfused schedules)."""
    t = arch.datatypes
    nbytes = op.elements * t.output_bytes
    breakdown = {**memory_energy(arch, nbytes), "acc": op.elements * t.acc_bytes * arch.acc_pj_per_byte()}
    cyc = math.ceil(transfer_cycles(arch, nbytes))
    return OpCost(
        op.name, op.kind, "bias", cyc, 0.0, sum(breakdown.values()), breakdown, nbytes, f"bias D of {producer}"
    )


@dataclasses.dataclass(frozen=True)
class RowBlocks:
    """How the fused matmul produces its output: ``blocks`` row blocks of ``rows`` rows (the last
    ``last_rows``), ``matmul_cycles`` in all, with or without a double-buffered accumulator."""

    M: int
    rows: int
    matmul_cycles: int
    double_buffered: bool

    @property
    def blocks(self) -> int:
        return ceil_div(self.M, self.rows)

    @property
    def last_rows(self) -> int:
        return self.M - (self.blocks - 1) * self.rows


def fused_cost(arch: Arch, op: NonlinearOp, producer: str, rb: RowBlocks) -> OpCost:
    """Fused: the op's extra time and energy on top of the matmul that leaves rows in the accumulator.

    Per row block of r rows the unit adds ``(P − 1)`` statistics passes plus, for the output pass,
    ``max(0, pass − mvout)`` where mvout = r·N·output_bytes / DMA bandwidth is already in the
    matmul's time. With a double-buffered accumulator block i's passes overlap block i+1's matmul
    (per-block matmul time = matmul cycles / blocks), so a block exposes only what exceeds the
    matmul, and the last block's passes are exposed whole; single-buffered, every block is exposed.
    Element-wise ops need no row blocks: the activation rides on every tile's mvout.
    """
    t, nl = arch.datatypes, arch.nonlinear
    p, n = passes(arch, op.kind), op.row_len
    bw = arch.local_bytes_per_cycle

    def extra(rows: int) -> float:
        out_pass = max(0.0, pass_cycles(arch, rows, n) - rows * n * t.output_bytes / bw)
        return (p - 1) * pass_cycles(arch, rows, n) + out_pass

    if op.kind in ROW_WISE:
        full, last = extra(rb.rows), extra(rb.last_rows)
        busy = full * (rb.blocks - 1) + last
        if rb.double_buffered:
            per_block = rb.matmul_cycles / rb.blocks
            exposed = (rb.blocks - 1) * max(0.0, full - per_block) + last
            how = f"fused: {rb.blocks} row blocks of {rb.rows}, passes overlap the next block's matmul"
        else:
            exposed = busy
            how = f"fused: {rb.blocks} row blocks of {rb.rows}, passes in series (single-buffered accumulator)"
    else:
        busy = exposed = extra(op.rows)
        how = "fused: applied on mvout"
    breakdown = {
        "acc": (p - 1) * op.elements * t.acc_bytes * arch.acc_pj_per_byte(),  # statistics passes
        "norm_unit": p * op.elements * nl.unit_pj_per_elem,
    }
    cyc = math.ceil(exposed)
    return OpCost(
        op.name,
        op.kind,
        "fused",
        cyc,
        float(cyc),
        sum(breakdown.values()),
        breakdown,
        0,
        f"{how} (fused into {producer})",
    )
