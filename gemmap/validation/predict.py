"""The model's prediction of one measured run (``gemmap validate``).

A run is predicted the way it was executed (docs/validation.md): the row's mapping becomes the
``tiled_matmul`` / ``tiled_conv`` call DOSA's flow made (:mod:`gemmap.interop.gemmini_calls`), the
array size is the one DOSA ran it on (the arch's, or for files whose spatial factors exceed it,
DOSA's ``per_pe_dim`` rule), and that call is costed by gemmap's model. With ``tiler`` the row's
layer is instead mapped by Gemmini's own tiler (``tiled_matmul_auto`` / ``tiled_conv_auto``) as it
sees the memory sizes in the software's ``gemmini_params.h`` (``Arch.tiler_view``), and the timed
window also holds that tiler's search on the host (``tiled_conv_auto_inner`` picks its tiles after
the clock starts: conv_tilings.c @959b23f7 L151-172, gemmini.h L2745-2838), which runs before the
first tile and overlaps nothing (``RunSetup.host_cycles``). The matmul tiler's fill loop is a
few dozen steps of a few instructions and is not counted.
"""

from __future__ import annotations

import dataclasses

from gemmap.arch import Arch
from gemmap.conv import ConvMapping, ConvShape, conv_shape
from gemmap.conv_tiler import tiled_conv_auto_search
from gemmap.convmodel import evaluate_of, invalid_reason_of
from gemmap.errors import GemmapError
from gemmap.interop.convert import CONV_LETTERS, software_matmul, under_cache
from gemmap.interop.gemmini_calls import ConvCall, MatmulCall, conv_call, matmul_call, pe_dim_for
from gemmap.interop.timeloop import LoopNest, check_covers, parse_compact
from gemmap.mapping import Mapping
from gemmap.model import Cost
from gemmap.search.heuristic import heuristic_mapping
from gemmap.validation.data import MeasuredRun, Prediction, PredictionTerms
from gemmap.workload import Problem


@dataclasses.dataclass(frozen=True)
class RunSetup:
    """What a run executes: the hardware it ran on, the problem, the mapping, and the host cycles
    its timed window holds before the first tile (Gemmini's conv tiler's search; module docstring)."""

    arch: Arch
    problem: Problem
    mapping: Mapping | ConvMapping
    host_cycles: float = 0.0


def hardware_for(arch: Arch, pe_dim: int) -> Arch:
    """``arch`` with a ``pe_dim``×``pe_dim`` array (DOSA ran its 128×128-file rows on DIM 4..64)."""
    if pe_dim == arch.dim_rows == arch.dim_cols:
        return arch
    pe = dataclasses.replace(arch.pe_array, rows=pe_dim, cols=pe_dim)
    return dataclasses.replace(arch, pe_array=pe)


def _matmul_mapping(arch: Arch, call: MatmulCall, problem: Problem, block: int) -> Mapping:
    """tiled_matmul's tiles (in ``block``-element blocks) and loop order as a gemmap mapping, double
    buffered as LoopMatmul always is (two concurrent loops on halves of the SRAMs); an L2 is a cache
    over the same flat loop order (:func:`cache_factors`). DOSA's ``tiled_matmul_outer`` runs the
    call's own order and never moves partial sums (``software.keep_partial_sums``); on an arch whose
    software would spill them, the reduction is put innermost instead, where nothing spills."""
    local = tuple(min(t * block, d) for t, d in zip((call.tile_I, call.tile_K, call.tile_J), problem.shape_key()))
    order = call.outer_order()
    if not arch.software.keep_partial_sums:
        order = order.replace("K", "") + "K"
    return software_matmul(arch, problem, local, order)  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True)
class Rules:
    """How a measured run is set up. The defaults are the model; each switch restores an earlier
    rule, for the ablation in benchmarks/bench_validate.py.

    ``per_pe_dim``: the 128x128 file's rows ran on DOSA's per-PE-dim arrays (:func:`run_pe_dim`;
    False: the arch's array unless a spatial factor exceeds it, matmul tiles in 16-element blocks).
    ``warm_mapped``: a mapped run finds the L2 warm from the tiler run before it (:func:`warm_for`;
    False: every run starts cold). ``own_order``: a matmul row runs in its own loop order and moves no
    partial sums, as DOSA's ``tiled_matmul_outer`` does (:func:`dosa_software`; False: the arch's
    software, the reduction costed innermost). ``template_alignment``: the tensors sit at the
    alignment DOSA's data-collection templates give them (:func:`dosa_placement`; False: aligned to a
    DMA request)."""

    per_pe_dim: bool = True
    warm_mapped: bool = True
    own_order: bool = True
    template_alignment: bool = True


def dosa_software(arch: Arch) -> Arch:
    """``arch`` with DOSA's ``tiled_matmul_outer``: it runs the mapping's loop order, loads no bias on a
    tile with k0 ≠ 0 and accumulates into the rows the tile before left, and writes C only on the last
    K tile, so partial sums never move (``software.keep_partial_sums``; gemmini-rocc-tests @959b23f7
    ``include/gemmini.h`` L843-870). Its results are only right with K innermost, so the shipped arch
    does not say it: a mapper on it would pick orders whose results are wrong."""
    if arch.software.keep_partial_sums:
        return arch
    return dataclasses.replace(arch, software=dataclasses.replace(arch.software, keep_partial_sums=True))


RULES = Rules()

#: the base alignment of a binary's tensors. conv_tilings.c (gemmini-rocc-tests @959b23f7
#: gemmini-data-collection/templates L45-50) declares ``static elem_t input[1][40][40][2048]``,
#: ``weights_mat`` and ``output_mat`` with no alignment attribute, and RISC-V GCC raises an array below
#: word alignment to the word and no further (gcc/config/riscv/riscv.h ``DATA_ALIGNMENT`` →
#: ``RISCV_EXPAND_ALIGNMENT``: ``BITS_PER_WORD``, 8 bytes on RV64); riscv-tests' ``test.ld`` places
#: ``.bss`` with no further alignment, so where the arrays start within a 64-byte request is the
#: link's, unknown. matmul_tilings.c (L53-58) declares ``full_A`` … ``full_C`` ``row_align(1)``, i.e.
#: ``aligned(DIM · sizeof(elem_t))`` with the header's DIM 16 (include/gemmini_params.h L33): 16 bytes.
TEMPLATE_ALIGN_BYTES = {"conv": 8, "matmul": 16}


def dosa_placement(arch: Arch, kind: str) -> Arch:
    """``arch`` with the tensor alignment of DOSA's ``kind`` template (:data:`TEMPLATE_ALIGN_BYTES`;
    ``software.tensor_align_bytes``: the DMA's request walk averaged over the base offsets it allows)."""
    return dataclasses.replace(
        arch, software=dataclasses.replace(arch.software, tensor_align_bytes=TEMPLATE_ALIGN_BYTES[kind])
    )


def warm_for(arch: Arch, warm: bool) -> Arch:
    """``arch`` with its L2 warm (``l2.warm_start``) when the run follows a run of the same layer on
    the same buffers, as every mapped run follows Gemmini's tiler run (conv_tilings.c @959b23f7
    L136-203, matmul_tilings.c L103-150), and cold for the tiler run, which follows another layer's."""
    if arch.l2 is None or arch.l2.warm_start == warm:
        return arch
    return dataclasses.replace(arch, l2=dataclasses.replace(arch.l2, warm_start=warm))


def run_pe_dim(run: MeasuredRun, arch: Arch, nest: LoopNest, per_pe_dim: bool = True) -> int:
    """The array a run executed on. A row whose stated array (``arch.meshX``) is the arch's ran on it;
    otherwise DOSA's data collection sent it to the smallest power-of-two array at least as wide as
    both spatial factors, with that DIM as the software's PE_DIM (gemmini-rocc-tests @959b23f7
    gemmini_data_collection.py ``per_pe_dim`` L155-212; docs/validation.md).

    ``per_pe_dim=False`` is the earlier rule (:class:`Rules`): the arch's array unless a spatial
    factor exceeds it."""
    if not per_pe_dim:
        wide = max(nest.spatial("L1").get("C", 1), nest.spatial("L2").get("K", 1)) > arch.dim_rows
        return pe_dim_for(nest) if wide else arch.dim_rows
    try:
        stated = int(float(run.arch.get("meshX", "")))
    except ValueError:
        stated = arch.dim_rows
    return arch.dim_rows if stated == arch.dim_rows else pe_dim_for(nest)


def setup_run(run: MeasuredRun, arch: Arch, tiler: bool = False, *, rules: Rules = RULES) -> RunSetup:
    """The (hardware, problem, mapping) of one run; a one-line GemmapError when it cannot be expressed."""
    nest = parse_compact(run.mapping)
    check_covers(nest, {d: run.layer[d] for d in ("C", "K", "N", "P", "Q", "R", "S")})
    dim = run_pe_dim(run, arch, nest, rules.per_pe_dim)
    hw = warm_for(hardware_for(arch, dim), rules.warm_mapped and not tiler)
    if rules.template_alignment:
        hw = dosa_placement(hw, run.kind)
    if run.kind != "matmul":
        return _conv_setup(run, hw, conv_call(nest, run.layer), tiler)
    if run.layer["N"] != 1:
        raise GemmapError(f"batched matmul (N = {run.layer['N']}) is not a tiled_matmul")
    call = matmul_call(nest, run.layer)
    problem = Problem(f"row{run.row}", call.I, call.K, call.J)
    if tiler:
        # an L2 (a cache or not) over the tiler's nest, as over the rows' own (software_matmul)
        return RunSetup(hw, problem, under_cache(hw, problem, heuristic_mapping(hw.tiler_view(), problem, "ws")))
    hw = dosa_software(hw) if rules.own_order else hw
    return RunSetup(hw, problem, _matmul_mapping(hw, call, problem, dim if rules.per_pe_dim else 16))


def _conv_setup(run: MeasuredRun, hw: Arch, call: ConvCall, tiler: bool) -> RunSetup:
    """The conv DOSA's flow ran (square, ``padding = R // 2``) and its ``tiled_conv`` tiles and order.

    DOSA's software writes outputs only after the last reduction tile and never moves partial sums
    (gemmini.h @959b23f7 tiled_conv), whatever the order, so the reduction loops (r, s, c) are
    costed innermost; with per-call reloads the order changes nothing else the model counts."""
    shape = ConvShape(
        n=call.batch_size, k=call.out_channels, c=call.in_channels, p=call.out_dim, q=call.out_dim,
        r=call.kernel_dim, s=call.kernel_dim, stride=call.stride, padding=call.padding,
        dilation=call.kernel_dilation, h=call.in_dim, w=call.in_dim,
    )  # fmt: skip
    shape.check(f"row {run.row}")
    M, K, N = shape.gemm()
    problem = Problem(f"row{run.row}", M, K, N, op="conv", conv=shape)
    if tiler:
        view = hw.tiler_view()
        found = tiled_conv_auto_search(view, conv_shape(problem, view))
        return RunSetup(hw, problem, ConvMapping(tile=found.args), found.host_cycles(hw.software))
    order = "".join(CONV_LETTERS[d] for d in reversed(call.perm))
    order = "".join(d for d in order if d not in "rsc") + "".join(d for d in order if d in "rsc")
    tile = (call.batches, call.porows, call.pocols, call.pochs, call.krows, call.kcols, call.kchs)
    tile = tuple(min(t, d) for t, d in zip(tile, shape.dims))
    return RunSetup(hw, problem, ConvMapping(tile=tile, order=order))  # type: ignore[arg-type]


def setup_cost(s: RunSetup) -> Cost:
    """The model's cost of a run's setup (raises GemmapError when the mapping cannot run)."""
    reason = invalid_reason_of(s.arch, s.problem, s.mapping)
    if reason is not None:
        what = "tiled_conv tiles" if isinstance(s.mapping, ConvMapping) else "mapping"
        raise GemmapError(f"{what} {s.mapping.summary(s.arch)} cannot run: {reason}")
    return evaluate_of(s.arch, s.problem, s.mapping)


def predict_cost(run: MeasuredRun, arch: Arch, tiler: bool = False, *, rules: Rules = RULES) -> Cost:
    """The full cost breakdown of one run's call (raises GemmapError when it cannot be predicted);
    the host cycles timed with it before its first tile are ``setup_run(...).host_cycles``."""
    return setup_cost(setup_run(run, arch, tiler, rules=rules))


def predict(run: MeasuredRun, arch: Arch, tiler: bool = False, *, rules: Rules = RULES) -> Prediction:
    """Predicted cycles of one run (with ``tiler``, the search included), the array it ran on and
    what bounds it, or None with the one-line reason it cannot be predicted."""
    try:
        s = setup_run(run, arch, tiler, rules=rules)
        cost = setup_cost(s)
        array = f"{s.arch.dim_rows}x{s.arch.dim_cols}"
        terms = PredictionTerms(
            compute=cost.compute_cycles, transfer=cost.local_transfer_cycles, exposed=cost.exposed_transfer_cycles,
            sequence=cost.sequence_cycles, memory=cost.dram_cycles, host=s.host_cycles, dram_bytes=cost.dram_bytes,
            mapping=s.mapping.summary(s.arch),
        )  # fmt: skip
        return Prediction(float(cost.cycles) + s.host_cycles, "ok", array=array, bound=cost.bound, terms=terms)
    except GemmapError as exc:
        return Prediction(None, str(exc))


__all__ = [
    "RULES",
    "Rules",
    "dosa_placement",
    "dosa_software",
    "RunSetup",
    "hardware_for",
    "predict",
    "predict_cost",
    "setup_run",
    "warm_for",
]
