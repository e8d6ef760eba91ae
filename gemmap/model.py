"""The analytical cost model (DESIGN §5): a pure function of (arch, problem, mapping).

**Traffic.** A tensor's tile at a level is refilled once per iteration of the loops above it,
except that the run of innermost loops that do not index the tensor keeps it resident
(Timeloop's temporal reuse). With imperfect tiles the product "bounds of relevant loops × tile
size" is exactly the tensor's size, so a level's fills are

    fills(X) = |X| · Π_{d ∉ X, d iterated above X's innermost relevant loop} tiles_d

where tiles_d counts the tiles of d at the deepest such loop (n2 at the DRAM level, n1 at the
L2 level). Loops of bound 1 are skipped. C visits beyond the compulsory M·N are partial-sum
spills: each is written out and read back at ``acc_bytes``; the final write is ``output_bytes``.

**Compute.** Per local tile, the array runs folds of (DIM × DIM) stationary blocks; partial
folds cost a full fold (unused PEs still clock), as in SCALE-Sim. With
``stationary_overlap=False`` (SCALE-Sim's PEs) a fold costs, per SCALE-Sim v3's demand
matrices, ``2R + C + m − 2`` (WS: preload R, stream m rows, fill/drain R + C − 2) or
``R + C + k − 2`` (OS: stream k, shift out R, skew C − 2). With Gemmini's double-buffered PEs
the preload/shift-out of one fold overlaps its neighbour's stream, so a tile costs
``(2R + C − 2) + F·max(m, R)`` (WS) or ``(R + C − 2) + F·max(k, R)`` (OS). Consecutive tiles also
stream back to back (``pe_array.pipelined_tiles``), so the skew ``2R + C − 2`` is paid once per
layer: compute = skew + Σ_tiles F·max(m, R).

**Traffic into the local level.** Gemmini's software moves a tile's whole A and B in for every
tile call (``software.reload_operands``): their fills are |X| times the tile count of their
unindexed dim, whatever the order; partial sums stay in the accumulator across consecutive k
tiles. The DMA's cycles per byte depend on the tile's row width (gemmap/dma.py).

**Time.** DMA transfers of double-buffered buffers overlap compute; those of single-buffered
buffers serialize with it; the first load and last store of a double-buffered pipeline are
exposed; DRAM bandwidth bounds the whole from below. The first tile's loads have no earlier compute
to hide behind, so the bytes of them that come from memory (all but what a warm L2 holds) take at
least their time at the memory's bandwidth (:func:`first_load_lift`).

**Energy.** accesses × per-access energy for MAC, PE registers, scratchpad, accumulator, L2 and
DRAM (+ leakage × cycles).

:func:`evaluate` gives one mapping with a full breakdown; :func:`evaluate_batch` gives arrays for
many mappings; the two are written independently and must agree exactly (tests check it).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from gemmap import dma, strips, tagqueue, warm
from gemmap.arch import Arch, ceil_div
from gemmap.mapping import DIMS, ORDER_DIMS, RELEVANT, Mapping, MappingBatch
from gemmap.workload import Problem

TENSORS = ("A", "B", "C")


@dataclasses.dataclass(frozen=True)
class Traffic:
    """Bytes of one tensor crossing into (``read``) and out of (``written``) one level boundary.

    ``level`` is the level being filled: ``local`` (scratchpad/accumulator) or ``l2``;
    ``visits`` is the number of tile elements brought in (fills), incl. partial-sum re-visits.
    """

    tensor: str
    level: str
    visits: int
    bytes_in: int
    bytes_out: int


@dataclasses.dataclass(frozen=True)
class Cost:
    """The cost of one mapping, with the breakdown behind it."""

    macs: int
    cycles: int
    compute_cycles: float
    local_transfer_cycles: float
    exposed_transfer_cycles: float
    dram_cycles: float
    energy_pj: float
    energy_breakdown: dict[str, float]
    dram_bytes: int
    dram_bytes_by_tensor: dict[str, int]
    compulsory_dram_bytes: int
    dram_bytes_lower_bound: int
    traffic: tuple[Traffic, ...]
    ideal_cycles: float
    #: the two-loop time of the real tile sequence, a floor under compute + exposed (convs; 0 without one)
    sequence_cycles: float = 0.0
    #: memory bytes and cycles the GEMM operands' strips add (gemmap/strips.py; in ``dram_bytes`` and
    #: ``dram_cycles``; 0 without a cache L2)
    strip_bytes: int = 0
    strip_cycles: float = 0.0

    @property
    def edp(self) -> float:
        return self.energy_pj * self.cycles

    @property
    def utilization(self) -> float:
        return self.ideal_cycles / self.cycles

    @property
    def busy_cycles(self) -> float:
        """The array's compute as part of the time (never more than ``cycles``); the rest is
        exposed memory time."""
        return float(min(self.compute_cycles, self.cycles))

    @property
    def bound(self) -> str:
        """What the layer's time is bound by: ``DRAM`` when the DRAM bandwidth floor sets the cycles,
        else ``memory`` when exposed transfers (DMA bandwidth, latency, requests in flight) exceed
        the array's compute, else ``compute``."""
        core = self.compute_cycles + self.exposed_transfer_cycles
        if self.dram_cycles >= core:
            return "DRAM"
        return "memory" if self.exposed_transfer_cycles > self.compute_cycles else "compute"

    def to_dict(self) -> dict[str, object]:
        return {
            "macs": self.macs,
            "cycles": self.cycles,
            "compute_cycles": self.compute_cycles,
            "energy_pj": self.energy_pj,
            "edp": self.edp,
            "utilization": self.utilization,
            "dram_bytes": self.dram_bytes,
            "dram_bytes_lower_bound": self.dram_bytes_lower_bound,
            "compulsory_dram_bytes": self.compulsory_dram_bytes,
            "dram_bytes_by_tensor": self.dram_bytes_by_tensor,
            "energy_breakdown_pj": self.energy_breakdown,
        }


@dataclasses.dataclass(frozen=True)
class BatchCost:
    """Costs of a :class:`MappingBatch`, one entry per mapping."""

    cycles: np.ndarray
    energy_pj: np.ndarray
    dram_bytes: np.ndarray
    compute_cycles: np.ndarray

    @property
    def edp(self) -> np.ndarray:
        return self.energy_pj * self.cycles

    def metric(self, objective: str) -> np.ndarray:
        return {"latency": self.cycles, "energy": self.energy_pj, "edp": self.edp}[objective]


# --- bounds ------------------------------------------------------------------------------


def compulsory_dram_bytes(arch: Arch, problem: Problem) -> int:
    """Every operand read once and the result written once."""
    t = arch.datatypes
    M, K, N = problem.shape_key()
    return M * K * t.input_bytes + K * N * t.weight_bytes + M * N * t.output_bytes


def dram_lower_bound(arch: Arch, problem: Problem) -> int:
    """max(compulsory traffic, the Hong–Kung matmul bound 2·MNK/√S − 2S) with S on-chip bytes.

    The second term is the red-blue pebble bound for a matmul with S words of fast memory
    (Smith et al., "A tight I/O lower bound for matrix multiplication", 2019, Thm. 1 form with
    the lower-order terms dropped conservatively), counted at one byte per word.
    """
    M, K, N = problem.shape_key()
    S = arch.onchip_bytes
    hk = 2 * M * K * N / math.sqrt(S) - 2 * S
    return max(compulsory_dram_bytes(arch, problem), math.floor(max(hk, 0.0)))


def edge_cycles(arch: Arch, dataflow: str) -> int:
    """The array's fill/drain skew around a tile's folds: 2R + C − 2 (WS) or R + C − 2 (OS)."""
    R, C = arch.dim_rows, arch.dim_cols
    return 2 * R + C - 2 if dataflow == "ws" else R + C - 2


def pipelined(arch: Arch) -> bool:
    """Whether consecutive tiles stream back to back (the skew paid once per layer)."""
    return arch.pe_array.stationary_overlap and arch.pe_array.pipelined_tiles


def ticks_per_cycle(arch: Arch) -> int:
    """Compute time is counted in ticks (:func:`gemmap.tagqueue.ticks_per_cycle`: a whole number of
    them per fold under the tag-queue throttle), so the scalar and batched paths agree bit for bit."""
    return tagqueue.ticks_per_cycle(arch)


def stream_ticks(arch: Arch, rows, lines=1):
    """Ticks of one WS fold: ``lines`` lines of ``rows`` rows of A streamed through one weight block
    (LoopMatmul: one line of the tile's rows; LoopConv: one line per output row, its pixels), each
    line in requests of at most DIM rows, the first carrying the new weights' preload, through the
    mesh's tag queue (:func:`gemmap.tagqueue.stream_ticks`). Broadcasts (rows, lines ≥ 1)."""
    return tagqueue.stream_ticks(arch, rows, lines)


def fold_ticks(arch: Arch, dataflow: str, em: int, ek: int, en: int) -> int:
    """Ticks (:func:`ticks_per_cycle`) of one local tile of extents (em, ek, en), skew included."""
    R, C = arch.dim_rows, arch.dim_cols
    q1, edge = ticks_per_cycle(arch), edge_cycles(arch, dataflow)
    if dataflow == "ws":
        folds = ceil_div(ek, R) * ceil_div(en, C)
        if arch.pe_array.stationary_overlap:
            return edge * q1 + folds * int(stream_ticks(arch, em))
        return folds * (edge + em) * q1
    folds = ceil_div(em, R) * ceil_div(en, C)
    if arch.pe_array.stationary_overlap:
        return (edge + folds * max(ek, R)) * q1
    return folds * (edge + ek) * q1


# --- the scalar path ---------------------------------------------------------------------


def _loops(arch: Arch, m: Mapping, n1: list[int]) -> tuple[list[tuple[int, int, int]], list[list[int]]]:
    """The temporal loops above the local level as (dim, level, bound), outermost first, and
    per dim the total tile count reached at each level ([DRAM level, L2 level])."""
    if arch.l2 is None:
        loops = [(DIMS.index(c), 0, n1[DIMS.index(c)]) for c in m.dram_order]
        return loops, [[n, n] for n in n1]
    f = [min(fi, n) for fi, n in zip(m.l2_factors, n1)]
    n2 = [ceil_div(n, fi) for n, fi in zip(n1, f)]
    loops = [(DIMS.index(c), 0, n2[DIMS.index(c)]) for c in m.dram_order]
    loops += [(DIMS.index(c), 1, f[DIMS.index(c)]) for c in m.l2_order]
    return loops, [[a, b] for a, b in zip(n2, n1)]


def visits(
    loops: list[tuple[int, int, int]],
    counts: list[list[int]],
    relevant: tuple[bool, ...],
    D: tuple[int, ...],
    reload: bool = False,
) -> int:
    """Tile elements of a tensor brought in below ``loops`` (the fills formula above); with
    ``reload`` the tile is brought in at every iteration of every loop (Gemmini's per-call mvins)."""
    inner = -1
    for p, (d, _, bound) in enumerate(loops):
        if (relevant[d] or reload) and bound > 1:
            inner = p
    deepest = [-1, -1, -1]
    for d, level, bound in loops[: inner + 1]:
        if bound > 1:
            deepest[d] = max(deepest[d], level)
    total = 1
    for d in range(3):
        total *= D[d] if relevant[d] else (counts[d][deepest[d]] if deepest[d] >= 0 else 1)
    return total


def _boundary(arch: Arch, problem: Problem, level: str, loops, counts) -> list[Traffic]:
    """Traffic of A, B, C into the level below ``loops`` (A and B reloaded per tile call into the
    local level when ``arch.software.reload_operands``)."""
    t = arch.datatypes
    D = problem.shape_key()
    MN = D[0] * D[2]
    reload = level == "local" and arch.software.reload_operands
    out: list[Traffic] = []
    for name, elem in (("A", t.input_bytes), ("B", t.weight_bytes)):
        v = visits(loops, counts, RELEVANT[name], D, reload)
        out.append(Traffic(name, level, v, v * elem, 0))
    v = MN if arch.software.keep_partial_sums else visits(loops, counts, RELEVANT["C"], D)
    spill = v - MN
    out.append(Traffic("C", level, v, spill * t.acc_bytes, MN * t.output_bytes + spill * t.acc_bytes))
    return out


def tile_extents(d: int, t: int) -> list[tuple[int, int]]:
    """(extent, how many tiles) of a dim of size d cut into tiles of t; the last one partial."""
    n = ceil_div(d, t)
    return [(t, n - 1), (d - (n - 1) * t, 1)]


def energy_breakdown(
    arch: Arch, macs: int, stationary, spad_bytes, accumulations, acc_bytes, l2_bytes, dram_bytes, cycles
) -> dict[str, float]:
    """Energy by component (module docstring, Energy): MACs; PE registers (operands per MAC and the
    stationary fills); scratchpad bytes read and written; accumulator read-modify-writes and DMA
    bytes; every byte through the L2; DRAM bytes; leakage × cycles."""
    t, e = arch.datatypes, arch.energy
    return {
        "mac": macs * e.mac_pj,
        "reg": (macs * (t.input_bytes + t.weight_bytes + t.acc_bytes) + stationary) * e.reg_pj_per_byte,
        "spad": spad_bytes * arch.spad_pj_per_byte(),
        "acc": (2 * t.acc_bytes * accumulations + acc_bytes) * arch.acc_pj_per_byte(),
        "l2": l2_bytes * arch.l2_pj_per_byte(),
        "dram": dram_bytes * arch.dram.pj_per_byte,
        "leakage": cycles * e.leakage_pj_per_cycle,
    }


def evaluate(arch: Arch, problem: Problem, m: Mapping) -> Cost:
    """Cost of one mapping with its breakdown. The mapping must be valid (see mapping.invalid_reason)."""
    t = arch.datatypes
    R, C = arch.dim_rows, arch.dim_cols
    D = problem.shape_key()
    M, K, N = D
    macs = M * K * N
    n1 = [ceil_div(d, tile) for d, tile in zip(D, m.local)]
    loops, counts = _loops(arch, m, n1)
    local = _boundary(arch, problem, "local", loops, counts)
    traffic = list(local)
    if arch.l2 is not None:
        dram_loops = [lp for lp in loops if lp[1] == 0]
        traffic += _boundary(arch, problem, "l2", dram_loops, counts)
    dram_side = [tr for tr in traffic if tr.level == ("l2" if arch.l2 is not None else "local")]
    dram_by_tensor = {tr.tensor: tr.bytes_in + tr.bytes_out for tr in dram_side}
    kept = dict(zip(TENSORS, warm.warm_by_tensor(arch, problem)))  # first fills the L2 serves (l2.warm_start)
    dram_by_tensor = {x: v - kept[x] for x, v in dram_by_tensor.items()}
    # operand rows narrower than a line whose strips overflow a cache L2's sets (gemmap/strips.py)
    f_l2 = [min(fi, n) for fi, n in zip(m.l2_factors, n1)] if arch.l2 is not None else [1, 1, 1]
    codes = [np.array([strips.strip_code(loops, x)]) for x in range(2)]
    strip_bytes, strip_cycles = strip_extra(
        arch, problem, np.array([m.local]), np.array([f_l2]), codes,
        [np.array([tr.visits]) for tr in local[:2]], [np.array([tr.visits]) for tr in dram_side[:2]],
    )  # fmt: skip
    for x, extra in zip("AB", strip_bytes):
        dram_by_tensor[x] += int(extra[0])
    dram_bytes = sum(dram_by_tensor.values())

    # compute: sum over the (at most 2 per dim) distinct local-tile extents
    ticks = 0
    for em, cm in tile_extents(M, m.local[0]):
        for ek, ck in tile_extents(K, m.local[1]):
            for en, cn in tile_extents(N, m.local[2]):
                if cm and ck and cn:
                    ticks += cm * ck * cn * fold_ticks(arch, m.dataflow, em, ek, en)
    n_tiles = n1[0] * n1[1] * n1[2]
    if pipelined(arch):  # the fill/drain skew once, not per tile
        ticks -= (n_tiles - 1) * edge_cycles(arch, m.dataflow) * ticks_per_cycle(arch)
    compute = ticks / ticks_per_cycle(arch)
    sw = arch.software
    issue = float(host_issue_cycles(sw.matmul_tile_issue_cycles, sw.matmul_loop_issue_cycles, n1))

    # time: overlap double-buffered transfers, serialize the rest, DRAM bandwidth bound
    rate = dma_rates(arch, problem, np.array([m.local]))
    a_cpb, b_cpb, out_cpb, psum_cpb, psum_out_cpb = (float(x[0]) for x in rate)
    spad_bytes = local[0].bytes_in + local[1].bytes_in
    acc_bytes = local[2].bytes_in + local[2].bytes_out
    psum = local[2].bytes_in
    moved = Moved(local[0].bytes_in, local[1].bytes_in, acc_bytes - 2 * psum, psum)
    Tm, Tk, Tn = m.local
    first_bytes = Tm * Tk * t.input_bytes + Tk * Tn * t.weight_bytes
    first_load = Tm * Tk * t.input_bytes * a_cpb + Tk * Tn * t.weight_bytes * b_cpb
    prologue = first_load if m.db_spad else 0.0
    last_m, last_n = M - (n1[0] - 1) * Tm, N - (n1[2] - 1) * Tn
    epilogue = last_m * last_n * t.output_bytes * out_cpb if m.db_acc else 0.0
    t_load, t_store, t_spad, t_acc = phase_cycles(moved, a_cpb, b_cpb, out_cpb, psum_cpb, psum_out_cpb)
    latency = n_tiles * tile_latency(arch)
    core = float(core_cycles(compute, t_load, t_store, t_spad, t_acc, m.db_spad, m.db_acc, issue, latency))
    core = core + prologue + epilogue + float(first_load_lift(arch, problem, first_bytes, first_load))
    extra = memory_extra_cycles(arch, problem, np.array([Tn])) + strip_cycles
    dram_cycles = float(memory_cycles(arch, dram_bytes, extra[0]))
    cycles = math.ceil(max(core, dram_cycles))

    # energy by component
    nb = [sum(ceil_div(x, w) * c for x, c in tile_extents(d, tile)) for d, tile, w in zip(D, m.local, (R, R, C))]
    if m.dataflow == "ws":
        stationary = n1[0] * K * N * t.weight_bytes
        spad_reads = nb[2] * M * K * t.input_bytes + n1[0] * K * N * t.weight_bytes
        accumulations = nb[1] * M * N
    else:
        stationary = n1[1] * M * N * t.acc_bytes
        spad_reads = nb[2] * M * K * t.input_bytes + nb[0] * K * N * t.weight_bytes
        accumulations = n1[1] * M * N
    l2_bytes = (
        sum(tr.bytes_in + tr.bytes_out for tr in traffic) - sum(kept.values()) + sum(int(x[0]) for x in strip_bytes)
    )
    breakdown = energy_breakdown(
        arch, macs, stationary, spad_reads + spad_bytes, accumulations, acc_bytes, l2_bytes, dram_bytes, cycles
    )
    return Cost(
        macs=macs,
        cycles=cycles,
        compute_cycles=compute,
        local_transfer_cycles=t_load + t_store,
        exposed_transfer_cycles=core - compute,
        dram_cycles=dram_cycles,
        energy_pj=sum(breakdown.values()),
        energy_breakdown=breakdown,
        dram_bytes=dram_bytes,
        dram_bytes_by_tensor=dram_by_tensor,
        compulsory_dram_bytes=compulsory_dram_bytes(arch, problem),
        dram_bytes_lower_bound=dram_lower_bound(arch, problem),
        traffic=tuple(traffic),
        ideal_cycles=macs / (R * C),
        strip_bytes=sum(int(x[0]) for x in strip_bytes),
        strip_cycles=float(strip_cycles[0]),
    )


# --- the batched path --------------------------------------------------------------------


def _fill_level_table() -> np.ndarray:
    """FILL_LEVEL[t, od, ol, md, ml]: which tile count multiplies the fills of tensor t (A, B, C)
    into the local level — 0: none (×1), 1: the DRAM-level count of t's unindexed dim, 2: its
    L2-level count — for DRAM order ``od``, L2 order ``ol`` and the masks ``md``/``ml`` (bit j set
    when dim j's loop has bound > 1 at that level). It is :func:`visits` run on every loop shape;
    with ``ml = 0`` it also gives the fills of a single (DRAM) level."""
    table = np.zeros((3, 6, 6, 8, 8), dtype=np.int8)
    for od, ol, md, ml in np.ndindex(6, 6, 8, 8):
        loops = [(int(d), 0, 2 if md >> int(d) & 1 else 1) for d in ORDER_DIMS[od]]
        loops += [(int(d), 1, 2 if ml >> int(d) & 1 else 1) for d in ORDER_DIMS[ol]]
        for t, name in enumerate(TENSORS):
            # counts: 2 at the DRAM level, 3 at the L2 level, so visits() reveals the level
            v = visits(loops, [[2, 3]] * 3, RELEVANT[name], (1, 1, 1))
            table[t, od, ol, md, ml] = {1: 0, 2: 1, 3: 2}[v]
    return table


#: see :func:`_fill_level_table`
FILL_LEVEL = _fill_level_table()
#: FILL_LEVEL when A and B are reloaded by every tile call (``software.reload_operands``): their
#: fills into the local level are |X| times the local tile count of their unindexed dim, always
FILL_LEVEL_RELOAD = FILL_LEVEL.copy()
FILL_LEVEL_RELOAD[:2] = 2
FILL_LEVEL.setflags(write=False)
FILL_LEVEL_RELOAD.setflags(write=False)


def _without_spills(table: np.ndarray) -> np.ndarray:
    """``table`` with C's fills at M·N whatever the order (``software.keep_partial_sums``)."""
    out = table.copy()
    out[2] = 0
    out.setflags(write=False)
    return out


#: FILL_TABLES[(reload_operands, keep_partial_sums)]: the local level's fill codes
FILL_TABLES = {
    (reload, keep): _without_spills(t) if keep else t
    for reload, t in ((False, FILL_LEVEL), (True, FILL_LEVEL_RELOAD))
    for keep in (False, True)
}
#: the dim each tensor does not index (A: N, B: M, C: K)
UNINDEXED = tuple(RELEVANT[x].index(False) for x in TENSORS)


def local_fill_level(arch: Arch) -> np.ndarray:
    """The fill-code table of the local level for this arch's software (FILL_LEVEL_RELOAD; C's row
    0 with ``software.keep_partial_sums``)."""
    return FILL_TABLES[arch.software.reload_operands, arch.software.keep_partial_sums]


def dram_fill_level(arch: Arch) -> np.ndarray:
    """The fill-code table of the L2 level's fills from DRAM (FILL_LEVEL of one level, ``ml = 0``;
    C's row 0 with ``software.keep_partial_sums``)."""
    return FILL_TABLES[False, arch.software.keep_partial_sums]


def strip_extra(arch: Arch, problem: Problem, T, f, codes, local_fills, dram_fills):
    """((A's, B's memory bytes), memory cycles) the operands' strips add (:func:`gemmap.strips.strip_terms`) from
    the A and B fills into the local level and the L2 (in elements; the L2's only with an L2, which
    the mechanism needs), each operand's memory bytes net of a warm L2's share."""
    if not strips.active(arch):
        zero = np.zeros(len(np.atleast_2d(T)))
        return (zero, zero), zero
    t = arch.datatypes
    kept = warm.warm_by_tensor(arch, problem)
    mem = [np.asarray(dram_fills[x]) * e - kept[x] for x, e in enumerate((t.input_bytes, t.weight_bytes))]
    return strips.strip_terms(arch, problem, T, f, codes, local_fills[:2], mem)


def with_strips(arch: Arch, problem: Problem, tiling, lt: LocalTerms, dram_bytes, l2_total):
    """(local terms, memory bytes, L2 bytes) of a batch with the operands' strips added
    (:func:`strip_extra` of ``tiling`` = (T, f, codes, local fills, DRAM fills)): their lines on the
    memory and L2 bytes, their LLC misses on the memory's extra cycles."""
    (xa, xb), xc = strip_extra(arch, problem, *tiling)
    extra = (xa + xb).astype(np.int64)
    return dataclasses.replace(lt, memory_extra=lt.memory_extra + xc), dram_bytes + extra, l2_total + extra


def level_masks(counts: np.ndarray) -> np.ndarray:
    """Bit j set where ``counts[:, j] > 1`` (the loop of dim j is not trivial)."""
    return (counts[:, 0] > 1) + 2 * (counts[:, 1] > 1) + 4 * (counts[:, 2] > 1)


def dma_rates(arch: Arch, problem: Problem, T: np.ndarray) -> tuple[np.ndarray, ...]:
    """DMA cycles per useful byte (gemmap/dma.py) of local tiles ``T`` (n, 3): A in (Tm rows of Tk
    elements, DRAM stride K), B in (Tk rows of Tn, stride N), C out (Tm rows of Tn outputs, stride N)
    and a partial sum out and back in (Tm rows of Tn int32, stride N) — the last as the sum of both ways.
    C's rate includes a cache L2's write-allocate of the M·N output (dma.write_allocate_cycles_per_byte)."""
    t = arch.datatypes
    M, K, N = problem.shape_key()
    Tm, Tk, Tn = T[:, 0], T[:, 1], T[:, 2]
    a = dma.read_cycles_per_byte(arch, Tk * t.input_bytes, K * t.input_bytes, rows=Tm, element_bytes=t.input_bytes)
    b = dma.read_cycles_per_byte(arch, Tn * t.weight_bytes, N * t.weight_bytes, rows=Tk, element_bytes=t.weight_bytes)
    out = dma.write_cycles_per_byte(arch, Tn * t.output_bytes, N * t.output_bytes, tensor_bytes=M * N * t.output_bytes)
    psum_out = dma.write_cycles_per_byte(arch, Tn * t.acc_bytes, N * t.acc_bytes, tensor_bytes=0)
    psum = psum_out + dma.read_cycles_per_byte(
        arch, Tn * t.acc_bytes, N * t.acc_bytes, rows=Tm, element_bytes=t.acc_bytes
    )
    return a, b, out, psum, psum_out


def allocate_memory_cycles(arch: Arch, problem: Problem, Tn) -> np.ndarray:
    """Memory cycles of the L2's write-allocate fetches of the M·N output written in rows of ``Tn``
    outputs (:func:`gemmap.dma.allocate_fetch_lines`, :func:`gemmap.warm.allocate_memory_cycles`): each
    line once. C tiles are written once, after their last K tile, but neighbouring N tiles of rows
    narrower than a line share lines, which the L2 may lose between their writes; those re-fetches
    are not modelled for GEMMs (convs: :func:`gemmap.convmodel.refetch_lines`). Broadcasts."""
    t = arch.datatypes
    M, _, N = problem.shape_key()
    first = dma.allocate_fetch_lines(arch, np.asarray(Tn) * t.output_bytes, M * N * t.output_bytes)
    return warm.allocate_memory_cycles(arch, problem, first)


def memory_extra_cycles(arch: Arch, problem: Problem, Tn) -> np.ndarray:
    """The memory's cycles beyond its bytes at ``dram.bytes_per_cycle`` for local tiles ``Tn`` outputs
    wide (``LocalTerms.memory_extra``): the first fills that miss a memory-side cache
    (:func:`gemmap.warm.cache_miss_cycles`) and the L2's write-allocate fetches
    (:func:`allocate_memory_cycles`). Broadcasts."""
    return warm.cache_miss_cycles(arch, problem) + allocate_memory_cycles(arch, problem, Tn)


@dataclasses.dataclass(frozen=True)
class Moved:
    """Bytes moved across the local level's boundary, by kind: A in, B in, C's final outputs out, and
    partial sums (each spilled byte goes out and comes back: ``psum`` counts one way)."""

    a: np.ndarray
    b: np.ndarray
    out: np.ndarray
    psum: np.ndarray

    @property
    def spad(self):
        return self.a + self.b

    @property
    def acc(self):
        return self.out + 2 * self.psum


@dataclasses.dataclass(frozen=True)
class LocalTerms:
    """The parts of a mapping's cost fixed by its dataflow, local tile and buffering alone
    (not by the L2 tiling or the loop orders): array cycles, exposed first load / last store,
    the on-chip access counts that do not depend on traffic, and the DMA's cycles per byte."""

    compute: np.ndarray  # array cycles of all local tiles
    prologue: np.ndarray  # first A+B load when the scratchpad is double-buffered (cycles)
    epilogue: np.ndarray  # last C store when the accumulator is double-buffered (cycles)
    first_lift: np.ndarray  # the first load's cycles beyond its DMA time, from memory (first_load_lift)
    memory_extra: np.ndarray | float  # memory cycles beyond bytes / dram.bytes_per_cycle (memory_extra_cycles)
    stationary: np.ndarray  # bytes through the PEs' stationary registers
    spad_reads: np.ndarray  # scratchpad bytes read into the array
    accumulations: np.ndarray  # accumulator read-modify-writes (elements)
    db_spad: np.ndarray
    db_acc: np.ndarray
    a_cpb: np.ndarray  # DMA cycles per byte of A moved in
    b_cpb: np.ndarray  # of B moved in
    out_cpb: np.ndarray  # of C's outputs moved out
    psum_cpb: np.ndarray  # of a partial sum moved out and back in
    psum_out_cpb: np.ndarray  # of its way out
    issue: np.ndarray  # host cycles to issue every tile (host_issue_cycles)
    latency: np.ndarray  # every tile's fixed phase latencies (tile_latency), summed
    #: load-phase cycles beyond the per-byte rates (a conv loader's wrapped rings: gemmap/conv_ring.py)
    extra_load: np.ndarray | float = 0.0
    #: the fewest store-phase cycles (a cache L2's output-line re-fetches: convmodel.refetch_store_floor)
    store_floor: np.ndarray | float = 0.0
    #: the fewest core cycles: the two-loop time of the real tile sequence (convseq.sequence_floor)
    sequence_floor: np.ndarray | float = 0.0


def local_terms(
    arch: Arch, problem: Problem, ws: np.ndarray, T: np.ndarray, db_spad: np.ndarray, db_acc: np.ndarray
) -> LocalTerms:
    """:class:`LocalTerms` of local tiles ``T`` (n, 3) with dataflow ``ws`` (True: WS, False: OS).

    Array cycles are separable over dims: with per dim n1 tiles (n1 − 1 full, one of extent
    ``last``), nb = Σ ceil(extent / DIM) blocks and S = Σ max(extent, R), a WS tile sum is
    ``edge·n1m·n1k·n1n + Sm·nbk·nbn`` (OS: ``edge·Π n1 + nbm·nbn·Sk``), the sum over tiles of
    :func:`fold_ticks` (with Sm summing :func:`stream_ticks`, in ticks); without stationary overlap it
    is ``nb·nb·(edge·n1 + D)``.
    """
    t = arch.datatypes
    R, C = arch.dim_rows, arch.dim_cols
    D = np.array(problem.shape_key(), dtype=np.int64)
    M, K, N = (int(x) for x in D)
    n1 = -(-D // T)
    last = D - (n1 - 1) * T
    nb = [(n1[:, j] - 1) * -(-T[:, j] // w) + -(-last[:, j] // w) for j, w in enumerate((R, R, C))]
    n_all = n1[:, 0] * n1[:, 1] * n1[:, 2]
    q1 = ticks_per_cycle(arch)
    if arch.pe_array.stationary_overlap:
        sm = (n1[:, 0] - 1) * stream_ticks(arch, T[:, 0]) + stream_ticks(arch, last[:, 0])
        sk = (n1[:, 1] - 1) * np.maximum(T[:, 1], R) + np.maximum(last[:, 1], R)
        n_edges = 1 if pipelined(arch) else n_all
        ticks = np.where(
            ws, (2 * R + C - 2) * q1 * n_edges + sm * nb[1] * nb[2], ((R + C - 2) * n_edges + nb[0] * nb[2] * sk) * q1
        )
    else:
        ticks = q1 * np.where(
            ws, nb[1] * nb[2] * ((2 * R + C - 2) * n1[:, 0] + M), nb[0] * nb[2] * ((R + C - 2) * n1[:, 1] + K)
        )
    compute = ticks / q1
    a_cpb, b_cpb, out_cpb, psum_cpb, psum_out_cpb = dma_rates(arch, problem, T)
    Tm, Tk, Tn = T[:, 0], T[:, 1], T[:, 2]
    first_load = Tm * Tk * t.input_bytes * a_cpb + Tk * Tn * t.weight_bytes * b_cpb
    first_bytes = Tm * Tk * t.input_bytes + Tk * Tn * t.weight_bytes
    return LocalTerms(
        compute=compute,
        prologue=np.where(db_spad, first_load, 0.0),
        epilogue=np.where(db_acc, last[:, 0] * last[:, 2] * t.output_bytes * out_cpb, 0.0),
        first_lift=first_load_lift(arch, problem, first_bytes, first_load),
        memory_extra=memory_extra_cycles(arch, problem, Tn),
        stationary=np.where(ws, n1[:, 0] * K * N * t.weight_bytes, n1[:, 1] * M * N * t.acc_bytes),
        spad_reads=nb[2] * M * K * t.input_bytes + np.where(ws, n1[:, 0], nb[0]) * K * N * t.weight_bytes,
        accumulations=np.where(ws, nb[1], n1[:, 1]) * M * N,
        db_spad=db_spad,
        db_acc=db_acc,
        a_cpb=a_cpb,
        b_cpb=b_cpb,
        out_cpb=out_cpb,
        psum_cpb=psum_cpb,
        psum_out_cpb=psum_out_cpb,
        issue=host_issue_cycles(arch.software.matmul_tile_issue_cycles, arch.software.matmul_loop_issue_cycles, n1),
        latency=n_all * tile_latency(arch),
    )


def traffic_bytes(arch: Arch, problem: Problem, va: np.ndarray, vb: np.ndarray, vc: np.ndarray) -> Moved:
    """Bytes across one boundary from the fills of A, B and C (C's fills beyond M·N are spills)."""
    t = arch.datatypes
    M, _, N = problem.shape_key()
    return Moved(va * t.input_bytes, vb * t.weight_bytes, M * N * t.output_bytes, (vc - M * N) * t.acc_bytes)


def boundary_bytes(arch: Arch, problem: Problem, local_fills, dram_fills) -> tuple[Moved, np.ndarray, np.ndarray]:
    """(moved, memory bytes, L2 bytes) of :func:`combine` from the fills of A, B, C into the local level
    and into the L2 (the latter unused without an L2: memory then feeds the local level); a warm L2's
    kept bytes (``l2.warm_start``, :mod:`gemmap.warm`) never come from memory."""
    moved = traffic_bytes(arch, problem, *local_fills)
    if arch.l2 is None:
        return moved, moved.spad + moved.acc, 0
    m2 = traffic_bytes(arch, problem, *dram_fills)
    dram = m2.spad + m2.acc - warm.warm_bytes(arch, problem)
    return moved, dram, moved.spad + moved.acc + dram


def combine_cycles(arch: Arch, lt: LocalTerms, moved: Moved, dram_bytes) -> np.ndarray:
    """Cycles (module docstring, Time): double-buffered transfers overlap compute, the rest
    serialize, plus the exposed first load / last store; DRAM bandwidth bounds the whole. The
    arguments broadcast together (any shapes), so callers may pass factored grids."""
    t_load, t_store, t_spad, t_acc = phase_cycles(
        moved, lt.a_cpb, lt.b_cpb, lt.out_cpb, lt.psum_cpb, lt.psum_out_cpb, lt.extra_load, lt.store_floor
    )
    core = core_cycles(lt.compute, t_load, t_store, t_spad, t_acc, lt.db_spad, lt.db_acc, lt.issue, lt.latency)
    core = core + lt.prologue + lt.epilogue + lt.first_lift
    if np.ndim(lt.sequence_floor) or lt.sequence_floor:  # only convs set it (no array work otherwise)
        core = np.maximum(core, lt.sequence_floor)
    return np.ceil(np.maximum(core, memory_cycles(arch, dram_bytes, lt.memory_extra))).astype(np.int64)


def host_issue_cycles(tile_cycles: float, loop_cycles: float, n) -> np.ndarray:
    """Host cycles to issue the tiles of a software loop nest with tile counts ``n`` (..., d) per dim:
    ``tile_cycles`` per tile plus ``loop_cycles`` per step of each loop around the innermost one.
    Loop steps are taken at their fewest over loop orders (the loops with most tiles innermost:
    ``Σ_{l < d} Π_{j ≤ l} n_(j)`` over the counts in ascending order), so the term is the same for
    every order and a lower bound on the software's (docs/model.md, "Host issue"). Broadcasts."""
    n = np.sort(np.asarray(n, dtype=np.float64), axis=-1)
    steps = np.cumprod(n, axis=-1)
    return tile_cycles * steps[..., -1] + loop_cycles * steps[..., :-1].sum(axis=-1)


def tile_latency(arch: Arch) -> float:
    """The fixed latency of one tile's three phases: its loads' first data arrives a memory round trip
    after the first request, its results leave the array ``pe_array.array_latency`` after the last row went in,
    and its stores are acknowledged a round trip after they leave; a loop slot is free only then
    (LoopMatmul.scala L1104-1107, LoopConv.scala L1496)."""
    return 2 * arch.dram.latency_cycles + arch.pe_array.array_latency


def first_load_lift(arch: Arch, problem: Problem, first_bytes, first_load) -> np.ndarray:
    """Cycles the first tile's loads (``first_bytes`` A and B bytes, ``first_load`` DMA cycles) take
    beyond their DMA time because their bytes come from memory: a tile's execute waits for its loads
    (the reservation station's read-after-write dependencies, gemmini-dosa @67ca2f9
    ReservationStation.scala L320-325; LoopMatmul / LoopConv issue a loop's execute only once its
    loads are issued, LoopMatmul.scala L447-449, LoopConv.scala L713-720),
    and the first tile has no earlier compute to overlap them with, so the bytes that do not hit a
    warm L2 (:func:`gemmap.warm.cold_share`) take at least their memory time
    (:func:`gemmap.warm.memory_cycles_per_first_byte`: ``bytes / dram.bytes_per_cycle``, slower for
    the share that misses a memory-side cache); later
    tiles' memory traffic overlaps compute and is bounded by the whole layer's DRAM floor. 0 with
    ``dram.first_load_from_memory`` off. Broadcasts."""
    if not arch.dram.first_load_from_memory:
        return np.zeros(np.broadcast(np.asarray(first_bytes), np.asarray(first_load)).shape)
    memory = np.asarray(first_bytes, dtype=np.float64) * warm.cold_share(arch, problem)
    return np.maximum(memory * warm.memory_cycles_per_first_byte(arch, problem) - first_load, 0.0)


def memory_cycles(arch: Arch, dram_bytes, extra):
    """The memory's time for ``dram_bytes``: at ``dram.bytes_per_cycle``, plus ``extra`` cycles for the
    first fills that miss a memory-side cache (:func:`gemmap.warm.cache_miss_cycles`). Broadcasts."""
    return dram_bytes / arch.dram.bytes_per_cycle + extra


def transfer_cycles(moved: Moved, a_cpb, b_cpb, out_cpb, psum_cpb, psum_out_cpb):
    """(load, store) DMA cycles: A, B and partial sums in on the reader; outputs and partial sums out
    on the writer (separate StreamReader / StreamWriter, DMA.scala). Broadcasts."""
    load = moved.a * a_cpb + moved.b * b_cpb + moved.psum * (psum_cpb - psum_out_cpb)
    store = moved.out * out_cpb + moved.psum * psum_out_cpb
    return load, store


def phase_cycles(moved: Moved, a_cpb, b_cpb, out_cpb, psum_cpb, psum_out_cpb, extra_load=0.0, store_floor=0.0):
    """(load, store, scratchpad, accumulator) cycles of the tile pipeline: :func:`transfer_cycles`
    by DMA stream, and by SRAM side (A and B into the scratchpad; outputs and partial sums through
    the accumulator), with ``extra_load`` (``LocalTerms.extra_load``) on the load stream and the
    scratchpad side, and the store stream at least ``store_floor`` (``LocalTerms.store_floor``). Broadcasts."""
    t_load, t_store = transfer_cycles(moved, a_cpb, b_cpb, out_cpb, psum_cpb, psum_out_cpb)
    if np.ndim(store_floor) or store_floor:  # only a cache L2's re-fetches set it (no array work otherwise)
        t_store = np.maximum(t_store, store_floor)
    t_spad = moved.a * a_cpb + moved.b * b_cpb + extra_load
    t_acc = moved.out * out_cpb + moved.psum * psum_cpb
    return t_load + extra_load, t_store, t_spad, t_acc


def core_cycles(compute, t_load, t_store, t_spad, t_acc, db_spad, db_acc, issue, latency=0.0):
    """Cycles of the tile pipeline before the exposed first load / last store. Broadcasts.

    Double-buffered scratchpad and accumulator (Gemmini's LoopMatmul / LoopConv: two loops in flight,
    each on its own half of the SRAMs, each loading, executing, then storing its tile;
    LoopConv.scala L1496, LoopMatmul.scala L1104-1107): the reader, the array and the writer each
    work on one tile at a time, and a loop's three phases (with their fixed latencies, ``latency``)
    are sequential, so per tile ``max(execute, load, store, (load + execute + store + latency) / 2)``.
    Otherwise one loop at a time holds the buffer that is not doubled, so each tile's phase latencies
    are exposed too: double-buffered transfers overlap compute, the rest serialize with it, plus
    ``latency`` (never less than the double-buffered case, which hides at least half of it).
    Issuing the tiles from the host (``issue``) is a floor either way."""
    compute = np.asarray(compute, dtype=np.float64)
    both = np.maximum(np.maximum(compute, np.maximum(t_load, t_store)), (compute + t_load + t_store + latency) / 2)
    overlapped = np.where(db_spad, t_spad, 0.0) + np.where(db_acc, t_acc, 0.0)
    serial = np.where(db_spad, 0.0, t_spad) + np.where(db_acc, 0.0, t_acc)
    other = serial + np.maximum(compute, overlapped) + latency
    return np.maximum(np.where(db_spad & db_acc, both, other), issue)


def dynamic_energy(arch: Arch, problem: Problem, lt: LocalTerms, moved: Moved, dram_bytes, l2_total):
    """Energy (module docstring, Energy) without leakage: MACs, PE registers, scratchpad,
    accumulator, L2 and DRAM accesses. Only this part depends on the SRAM capacities (through
    their per-byte energies); :func:`combine` adds ``cycles × leakage`` to it. Broadcasts."""
    t, e = arch.datatypes, arch.energy
    macs = problem.macs
    return (
        macs * e.mac_pj
        + (macs * (t.input_bytes + t.weight_bytes + t.acc_bytes) + lt.stationary) * e.reg_pj_per_byte
        + (lt.spad_reads + moved.spad) * arch.spad_pj_per_byte()
        + (2 * t.acc_bytes * lt.accumulations + moved.acc) * arch.acc_pj_per_byte()
        + l2_total * arch.l2_pj_per_byte()
        + dram_bytes * arch.dram.pj_per_byte
    )


def combine(arch: Arch, problem: Problem, lt: LocalTerms, moved: Moved, dram_bytes, l2_total) -> BatchCost:
    """Cycles and energy from :class:`LocalTerms` and the bytes moved (module docstring, Time and
    Energy); ``l2_total`` is every byte through the L2 (0 without one). Monotone in every byte count.

    The energy sum is ``dynamic_energy + cycles × leakage`` — the same left-to-right order of
    floating-point additions as one flat sum, so callers that cache the parts get equal bits."""
    cycles = combine_cycles(arch, lt, moved, dram_bytes)
    energy = dynamic_energy(arch, problem, lt, moved, dram_bytes, l2_total)
    energy = energy + cycles * arch.energy.leakage_pj_per_cycle
    return BatchCost(cycles=cycles, energy_pj=energy, dram_bytes=dram_bytes, compute_cycles=lt.compute)


def evaluate_batch(arch: Arch, problem: Problem, b: MappingBatch) -> BatchCost:
    """Costs of many mappings at once (numpy); equal to :func:`evaluate` mapping by mapping."""
    D = np.array(problem.shape_key(), dtype=np.int64)
    sizes = (D[0] * D[1], D[1] * D[2], D[0] * D[2])
    T = b.local
    n1 = -(-D // T)
    zero = np.zeros(len(b), dtype=np.int64)
    if arch.l2 is None:
        n_dram, ol, ml = n1, zero, zero
    else:
        f = np.minimum(b.l2_factors, n1)
        n_dram, ol, ml = -(-n1 // f), b.l2_order, level_masks(f)
    md = level_masks(n_dram)

    def fills(table: np.ndarray, ol: np.ndarray, ml: np.ndarray) -> list[np.ndarray]:
        """Fills of A, B, C below the loops (``ml = 0``: below the DRAM level only)."""
        out = []
        for x, g in enumerate(UNINDEXED):
            code = table[x][b.dram_order, ol, md, ml]
            out.append(sizes[x] * np.where(code == 2, n1[:, g], np.where(code == 1, n_dram[:, g], 1)))
        return out

    dram_fills = fills(dram_fill_level(arch), zero, zero) if arch.l2 is not None else None
    local_fills = fills(local_fill_level(arch), ol, ml)
    moved, dram_bytes, l2_total = boundary_bytes(arch, problem, local_fills, dram_fills)
    lt = local_terms(arch, problem, b.dataflow == 0, T, b.db_spad, b.db_acc)
    if strips.active(arch):  # strips (gemmap/strips.py)
        codes = [strips.STRIP_LEVEL[x][b.dram_order, ol, md, ml] for x in range(2)]
        lt, dram_bytes, l2_total = with_strips(
            arch, problem, (T, f, codes, local_fills, dram_fills), lt, dram_bytes, l2_total
        )
    return combine(arch, problem, lt, moved, dram_bytes, l2_total)
