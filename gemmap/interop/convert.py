"""A Timeloop loop nest converted to the mapping Gemmini runs, as DOSA's flow hands it over.

DOSA's flow (:mod:`gemmap.interop.gemmini_calls`, docs/validation.md) keeps two things of a
Timeloop mapping: the tile held by the accumulator level (:func:`~gemmap.interop.gemmini_calls.accumulator_tile`)
and the order of the DRAM-level (L3) loops (:func:`~gemmap.interop.gemmini_calls.perm_of`). So:

* **matmul** (Timeloop P = M, C = K, K = N): ``tiled_matmul`` with the accumulator tile floored to
  DIM blocks (DOSA's ``tile = 1 if T < 16 else T >> 4``; here by the arch's DIM, which is 16 on
  Gemmini), weight-stationary, double buffered as LoopMatmul always is, the software loop order the
  L3 order (dims without an L3 loop outermost). On an arch with an L2 the L2 is a cache under those
  flat software loops (Chipyard's inclusive L2): its factors are what stays cached walking the
  loops innermost first (:func:`cache_factors`).
* **conv**: ``tiled_conv`` with the 7 tile args of the accumulator tile and the L3 order, read as
  DOSA's tiled_conv reads Timeloop's letters (:data:`CONV_LETTERS`): **Timeloop P is the output
  columns and Q the output rows, R the kernel columns and S the kernel rows** (N batch, K output
  channels, C input channels). gemmap's layer specs and workload files name them as ConvShape
  does: P output rows, Q output columns, R kernel rows, S kernel columns. So a layer's P is covered
  by the mapping's Q loops (the two agree on the square layers of DOSA's data).

DOSA's fork never moves partial sums out of the accumulator, whatever the order; the conversion
here keeps the order as given, and the model spills partial sums when a reduction loop is not
innermost (a correct execution). Loops DOSA's flow drops (the scratchpad level's temporal loops,
L0 loops other than P and Q, earlier repeats of a dim at L1) become notes: the tile counts still
cover the layer, the dropped iterations run as DRAM-level tiles. What Gemmini cannot run (a spatial
loop other than C across rows at L1 and K across columns at L2, a spatial factor wider than the
array, a level outside L3..L0, a loop over a dim a matmul does not have) is refused in one line
naming the loop and the level.
"""

from __future__ import annotations

import dataclasses
import re

from gemmap.arch import Arch, ceil_div
from gemmap.conv import ConvMapping
from gemmap.errors import GemmapError, did_you_mean
from gemmap.interop.gemmini_calls import ConvCall, MatmulCall, accumulator_tile, perm_of
from gemmap.interop.timeloop import Loop, LoopNest
from gemmap.mapping import DIMS, Mapping, l2_bytes_needed
from gemmap.specio import build
from gemmap.workload import OP_FIELDS, ExplicitSpec, OpSpec, Problem, explicit_workload

#: DOSA's tiled_conv reads its permutation letters as these conv dims (gemmini.h @959b23f7: the
#: steps {batches, porows, pocols, pochs, krows, kcols, kchs} of dims {N, Q, P, K, S, R, C})
CONV_LETTERS = {"N": "b", "Q": "p", "P": "q", "K": "k", "S": "r", "R": "s", "C": "c"}
#: Gemmini's levels in DOSA's Timeloop architecture, outermost first
LEVELS = {"L3": "DRAM", "L2": "scratchpad", "L1": "accumulator", "L0": "registers"}
#: what each Timeloop dim is, for error lines
MATMUL_MEANING = {"P": "M", "C": "K", "K": "N"}
CONV_MEANING = {
    "N": "batch", "K": "output channels", "C": "input channels", "P": "output columns", "Q": "output rows",
    "R": "kernel columns", "S": "kernel rows",
}  # fmt: skip
#: the loops DOSA's accumulator_tile reads: (level, spatial) -> dims
_KEPT = {("L1", False): "NPQKSRC", ("L1", True): "C", ("L2", True): "K", ("L0", False): "PQ"}
#: the spatial loops Gemmini's WS array has: (level, dim) -> (array side, Arch attribute)
_SPATIAL = {("L1", "C"): ("rows", "dim_rows"), ("L2", "K"): ("columns", "dim_cols")}

LAYER_KINDS = ("matmul", "conv")
_REQUIRED = {"matmul": ("M", "K", "N"), "conv": ("C", "K", "P", "Q", "R", "S")}
_FIELD_ORDER = {
    "matmul": ("M", "K", "N"),
    "conv": ("B", "C", "K", "P", "Q", "R", "S", "stride", "padding", "dilation", "H", "W"),
}
#: a conv's Timeloop dim -> the name a layer spec / workload file gives it
_LAYER_NAME = {"N": "B", "K": "K", "C": "C", "P": "Q", "Q": "P", "R": "S", "S": "R"}
_FIELD_RE = re.compile(r"([A-Za-z_]\w*)=(-?\d+)")


# --- layers ------------------------------------------------------------------------------


def parse_layer_spec(text: str) -> Problem:
    """A layer from an inline spec: ``matmul M=128 K=768 N=768`` or ``conv C=64 K=64 P=56 Q=56 R=3
    S=3 stride=1 padding=1`` (optional B, dilation, H, W), with the names and meaning of a workload
    file's ops (P output rows, Q output columns, R kernel rows, S kernel columns)."""
    where = f"layer '{text.strip()}'"
    tokens = text.split()
    if not tokens:
        raise GemmapError("layer: empty spec (expected e.g. 'matmul M=128 K=768 N=768')")
    kind = tokens[0]
    if kind not in LAYER_KINDS:
        raise GemmapError(f"{where}: unknown kind '{kind}'{did_you_mean(kind, LAYER_KINDS)}; choose matmul or conv")
    takes = [f for f in _FIELD_ORDER[kind] if f in OP_FIELDS[kind]]
    fields: dict[str, int] = {}
    for token in tokens[1:]:
        m = _FIELD_RE.fullmatch(token)
        if m is None:
            raise GemmapError(f"{where}: bad field '{token}' (expected KEY=NUMBER, e.g. {takes[0]}=128)")
        key, value = m.group(1), int(m.group(2))
        if key not in takes:
            raise GemmapError(
                f"{where}: {kind} does not take '{key}'{did_you_mean(key, takes)}; it takes {', '.join(takes)}"
            )
        if key in fields:
            raise GemmapError(f"{where}: '{key}' given twice")
        fields[key] = value
    missing = [f for f in _REQUIRED[kind] if f not in fields]
    if missing:
        raise GemmapError(f"{where}: missing {', '.join(missing)} (a {kind} needs {', '.join(_REQUIRED[kind])})")
    op = build(OpSpec, {"name": kind, "op": kind, **fields}, where)
    try:
        return explicit_workload(ExplicitSpec(name=kind, ops=[op]), where).problems[0]
    except GemmapError as exc:  # the shape check names the op ('conv') after ``where``: say it once
        raise GemmapError(str(exc).replace(f"{where}: layer '{kind}': ", f"{where}: ", 1)) from None


def timeloop_layer(problem: Problem) -> dict[str, int]:
    """The problem's size along each Timeloop dim (a matmul is P = M, C = K, K = N, the rest 1)."""
    s = problem.conv
    if s is None:
        return {"C": problem.K, "K": problem.N, "N": 1, "P": problem.M, "Q": 1, "R": 1, "S": 1}
    return {"C": s.c, "K": s.k, "N": s.n, "P": s.q, "Q": s.p, "R": s.s, "S": s.r}


def _meaning(problem: Problem, dim: str) -> str:
    if problem.conv is None:
        return f"{dim}, the matmul's {MATMUL_MEANING[dim]}" if dim in MATMUL_MEANING else dim
    return f"{dim} ({CONV_MEANING[dim]}, the layer's {_LAYER_NAME[dim]})"


# --- checks ------------------------------------------------------------------------------


def _where(level: str, loop: Loop) -> str:
    return f"loop {loop.to_compact()} at {level} ({LEVELS.get(level, '?')})"


def check_expressible(arch: Arch, problem: Problem, nest: LoopNest) -> None:
    """A one-line GemmapError naming the first loop (and level) Gemmini cannot run, else None."""
    for level in nest.levels:
        if level.name not in LEVELS:
            known = ", ".join(f"{k} {v}" for k, v in LEVELS.items())
            raise GemmapError(f"mapping: level {level.name} has no place on Gemmini (levels are {known})")
    for name, what in LEVELS.items():
        if name not in nest.names:
            raise GemmapError(f"mapping: level {name} ({what}) is missing (levels are {', '.join(LEVELS)})")
    matmul = problem.conv is None
    for level in nest.levels:
        for loop in level.loops:
            if loop.bound == 1:
                continue
            if matmul and loop.dim not in MATMUL_MEANING:
                raise GemmapError(
                    f"mapping: {_where(level.name, loop)}: a matmul has no {loop.dim} "
                    "(Timeloop's matmul is P = M, C = K, K = N)"
                )
            if not loop.spatial:
                continue
            side = _SPATIAL.get((level.name, loop.dim))
            if side is None:
                raise GemmapError(
                    f"mapping: spatial {_where(level.name, loop)} cannot run on Gemmini's weight-stationary array "
                    "(it unrolls C across rows at L1 and K across columns at L2)"
                )
    for (name, dim), (side, attr) in _SPATIAL.items():
        width = nest.spatial(name).get(dim, 1)
        if width > getattr(arch, attr):
            raise GemmapError(
                f"mapping: spatial {dim}{width}X at {name} needs {width} array {side}; {arch.name} has {getattr(arch, attr)}"
            )


def check_covers(problem: Problem, nest: LoopNest) -> None:
    """Every dim's factors multiply to at least the layer's size; else one line naming the dim and
    the loops (by level) that fall short."""
    for dim, size in timeloop_layer(problem).items():
        product = nest.factor(dim)
        if product >= size:
            continue
        loops = [f"{lvl.name} {lp.to_compact()}" for lvl in nest.levels for lp in lvl.loops if lp.dim == dim]
        have = " · ".join(loops) if loops else f"no {dim} loop at any level"
        raise GemmapError(
            f"mapping: dim {_meaning(problem, dim)}: factors multiply to {product} ({have}), less than its size {size}"
        )


def dropped_loops(nest: LoopNest) -> tuple[str, ...]:
    """Notes for the non-trivial loops DOSA's flow does not pass to Gemmini (module docstring)."""
    notes: list[str] = []
    for level in nest.levels:
        seen: set[tuple[str, bool]] = set()
        for loop in reversed(level.loops):  # the last occurrence of a dim counts
            key = (loop.dim, loop.spatial)
            kept = level.name == "L3" or loop.dim in _KEPT.get((level.name, loop.spatial), "")
            if loop.bound > 1 and level.name != "L3" and (not kept or key in seen):
                why = "an earlier repeat of its dim" if kept else "not part of the accumulator tile"
                notes.append(
                    f"{_where(level.name, loop)} dropped ({why}, as DOSA's flow does); "
                    "its iterations run as DRAM-level tiles"
                )
            seen.add(key)
    return tuple(notes)


# --- conversion --------------------------------------------------------------------------


def cache_factors(arch: Arch, problem: Problem, local: tuple[int, int, int], order: str) -> tuple[int, int, int]:
    """L2 factors of a flat software loop nest when the L2 is a cache (Chipyard's inclusive L2):
    walking the loops innermost first, a loop's whole range stays in the cache while the data it
    touches (one L2 tile of A, B and C) fits, the first loop that does not fit keeps the largest
    factor that does, and the loops outside it refetch. ``(1, 1, 1)`` without an L2."""
    if arch.l2 is None:
        return (1, 1, 1)
    D = problem.shape_key()
    n1 = [ceil_div(d, t) for d, t in zip(D, local)]
    f = [1, 1, 1]
    for c in reversed(order):
        d = DIMS.index(c)
        for fd in range(n1[d], 0, -1):
            f[d] = fd
            if l2_bytes_needed(arch, tuple(min(x * t, y) for x, t, y in zip(f, local, D))) <= arch.l2.bytes:  # type: ignore[arg-type]
                break
        if f[d] < n1[d]:
            break
    return (f[0], f[1], f[2])


def under_cache(arch: Arch, problem: Problem, m: Mapping) -> Mapping:
    """``m`` (a flat software nest in its DRAM order) with an L2 that is a cache over that nest: the L2
    factors of :func:`cache_factors`, the L2 order the same."""
    f = cache_factors(arch, problem, m.local, m.dram_order)
    return dataclasses.replace(m, l2_factors=f, l2_order=m.dram_order)


def software_matmul(arch: Arch, problem: Problem, local: tuple[int, int, int], order: str) -> Mapping:
    """``tiled_matmul``'s tile and loop order (outermost first) as a gemmap mapping: WS, double buffered
    as LoopMatmul always is, an L2 a cache over the same flat order (:func:`under_cache`)."""
    return under_cache(arch, problem, Mapping("ws", local, (1, 1, 1), order, order, db_spad=True, db_acc=True))


@dataclasses.dataclass(frozen=True)
class Converted:
    """A Timeloop nest as Gemmini runs it: the gemmap mapping, the Gemmini call, and notes on what
    the conversion dropped or rounded."""

    mapping: Mapping | ConvMapping
    call: MatmulCall | ConvCall
    notes: tuple[str, ...]


def convert(arch: Arch, problem: Problem, nest: LoopNest) -> Converted:
    """The mapping and call DOSA's flow would run for ``nest`` on ``arch`` (module docstring);
    a one-line GemmapError if Gemmini cannot run it or it does not cover the layer."""
    check_expressible(arch, problem, nest)
    check_covers(problem, nest)
    layer = timeloop_layer(problem)
    tile = {d: min(t, layer[d]) for d, t in accumulator_tile(nest).items()}
    perm = perm_of(nest)
    notes = dropped_loops(nest)
    if problem.conv is None:
        return _convert_matmul(arch, problem, tile, perm, notes)
    return _convert_conv(problem, tile, perm, notes)


def _convert_matmul(arch: Arch, problem: Problem, tile: dict[str, int], perm: str, notes: tuple[str, ...]) -> Converted:
    dim = arch.dim_rows
    blocks = {d: max(1, tile[d] // dim) for d in "PCK"}
    call = MatmulCall(
        I=problem.M, J=problem.N, K=problem.K, tile_I=blocks["P"], tile_J=blocks["K"], tile_K=blocks["C"], perm=perm
    )
    local = (min(blocks["P"] * dim, problem.M), min(blocks["C"] * dim, problem.K), min(blocks["K"] * dim, problem.N))
    for d, t in zip("PCK", local):
        if t != tile[d]:
            name = MATMUL_MEANING[d]
            notes += (
                f"tile {name} = {tile[d]} runs as {t} ({blocks[d]} block(s) of DIM {dim}, floored as DOSA's flow does)",
            )
    return Converted(software_matmul(arch, problem, local, call.outer_order()), call, notes)  # type: ignore[arg-type]


def _convert_conv(problem: Problem, tile: dict[str, int], perm: str, notes: tuple[str, ...]) -> Converted:
    s = problem.conv
    assert s is not None
    if s.input_rows != s.input_cols or s.p != s.q or s.r != s.s:
        raise GemmapError(
            f"layer '{problem.name}': tiled_conv runs square convs (one in_dim, out_dim, kernel_dim); this one has "
            f"{s.input_rows}x{s.input_cols} input, {s.p}x{s.q} output, {s.r}x{s.s} kernel"
        )
    order = "".join(CONV_LETTERS[d] for d in reversed(perm))
    args = tuple(tile[d] for d in "NQPKSRC")
    call = ConvCall(
        batch_size=s.n, in_dim=s.input_rows, in_channels=s.c, out_channels=s.k, out_dim=s.p, stride=s.stride,
        kernel_dilation=s.dilation, padding=s.padding, kernel_dim=s.r, batches=args[0], porows=args[1],
        pocols=args[2], pochs=args[3], krows=args[4], kcols=args[5], kchs=args[6], perm=perm,
    )  # fmt: skip
    return Converted(ConvMapping(tile=args, order=order), call, notes)  # type: ignore[arg-type]


__all__ = [
    "CONV_LETTERS", "Converted", "LAYER_KINDS", "cache_factors", "check_covers", "check_expressible",
    "convert", "dropped_loops", "parse_layer_spec", "software_matmul", "timeloop_layer",
]  # fmt: skip
