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
``(2R + C − 2) + F·max(m, R)`` (WS) or ``(R + C − 2) + F·max(k, R)`` (OS).

**Time.** DMA transfers of double-buffered buffers overlap compute; those of single-buffered
buffers serialize with it; the first load and last store of a double-buffered pipeline are
exposed; DRAM bandwidth bounds the whole from below.

**Energy.** accesses × per-access energy for MAC, PE registers, scratchpad, accumulator, L2 and
DRAM (+ leakage × cycles).

:func:`evaluate` gives one mapping with a full breakdown; :func:`evaluate_batch` gives arrays for
many mappings; the two are written independently and must agree exactly (tests check it).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

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
    compute_cycles: int
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

    @property
    def edp(self) -> float:
        return self.energy_pj * self.cycles

    @property
    def utilization(self) -> float:
        return self.ideal_cycles / self.cycles

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


def fold_cycles(arch: Arch, dataflow: str, em: int, ek: int, en: int) -> int:
    """Array cycles of one local tile of extents (em, ek, en) — see the module docstring."""
    R, C = arch.dim_rows, arch.dim_cols
    if dataflow == "ws":
        folds, stream, edge = ceil_div(ek, R) * ceil_div(en, C), em, 2 * R + C - 2
    else:
        folds, stream, edge = ceil_div(em, R) * ceil_div(en, C), ek, R + C - 2
    if arch.pe_array.stationary_overlap:
        return edge + folds * max(stream, R)
    return folds * (edge + stream)


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
    loops: list[tuple[int, int, int]], counts: list[list[int]], relevant: tuple[bool, ...], D: tuple[int, ...]
) -> int:
    """Tile elements of a tensor brought in below ``loops`` (the fills formula above)."""
    inner = -1
    for p, (d, _, bound) in enumerate(loops):
        if relevant[d] and bound > 1:
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
    """Traffic of A, B, C into the level below ``loops``."""
    t = arch.datatypes
    D = problem.shape_key()
    MN = D[0] * D[2]
    out: list[Traffic] = []
    for name, elem in (("A", t.input_bytes), ("B", t.weight_bytes)):
        v = visits(loops, counts, RELEVANT[name], D)
        out.append(Traffic(name, level, v, v * elem, 0))
    v = visits(loops, counts, RELEVANT["C"], D)
    spill = v - MN
    out.append(Traffic("C", level, v, spill * t.acc_bytes, MN * t.output_bytes + spill * t.acc_bytes))
    return out


def _extents(d: int, t: int) -> list[tuple[int, int]]:
    """(extent, how many tiles) of a dim of size d cut into tiles of t; the last one partial."""
    n = ceil_div(d, t)
    return [(t, n - 1), (d - (n - 1) * t, 1)]


def evaluate(arch: Arch, problem: Problem, m: Mapping) -> Cost:
    """Cost of one mapping with its breakdown. The mapping must be valid (see mapping.invalid_reason)."""
    t, e = arch.datatypes, arch.energy
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
    dram_bytes = sum(dram_by_tensor.values())

    # compute: sum over the (at most 2 per dim) distinct local-tile extents
    compute = 0
    for em, cm in _extents(M, m.local[0]):
        for ek, ck in _extents(K, m.local[1]):
            for en, cn in _extents(N, m.local[2]):
                if cm and ck and cn:
                    compute += cm * ck * cn * fold_cycles(arch, m.dataflow, em, ek, en)

    # time: overlap double-buffered transfers, serialize the rest, DRAM bandwidth bound
    bw = arch.local_bytes_per_cycle
    spad_bytes = local[0].bytes_in + local[1].bytes_in
    acc_bytes = local[2].bytes_in + local[2].bytes_out
    t_spad, t_acc = spad_bytes / bw, acc_bytes / bw
    overlapped = (t_spad if m.db_spad else 0.0) + (t_acc if m.db_acc else 0.0)
    serial = (0.0 if m.db_spad else t_spad) + (0.0 if m.db_acc else t_acc)
    Tm, Tk, Tn = m.local
    prologue = (Tm * Tk * t.input_bytes + Tk * Tn * t.weight_bytes) / bw if m.db_spad else 0.0
    last_m, last_n = M - (n1[0] - 1) * Tm, N - (n1[2] - 1) * Tn
    epilogue = last_m * last_n * t.output_bytes / bw if m.db_acc else 0.0
    core = serial + max(float(compute), overlapped) + prologue + epilogue
    dram_cycles = dram_bytes / arch.dram.bytes_per_cycle
    cycles = math.ceil(max(core, dram_cycles))

    # energy by component
    nb = [sum(ceil_div(x, w) * c for x, c in _extents(d, tile)) for d, tile, w in zip(D, m.local, (R, R, C))]
    if m.dataflow == "ws":
        stationary = n1[0] * K * N * t.weight_bytes
        spad_reads = nb[2] * M * K * t.input_bytes + n1[0] * K * N * t.weight_bytes
        accumulations = nb[1] * M * N
    else:
        stationary = n1[1] * M * N * t.acc_bytes
        spad_reads = nb[2] * M * K * t.input_bytes + nb[0] * K * N * t.weight_bytes
        accumulations = n1[1] * M * N
    breakdown = {
        "mac": macs * e.mac_pj,
        "reg": (macs * (t.input_bytes + t.weight_bytes + t.acc_bytes) + stationary) * e.reg_pj_per_byte,
        "spad": (spad_reads + spad_bytes) * arch.spad_pj_per_byte(),
        "acc": (2 * t.acc_bytes * accumulations + acc_bytes) * arch.acc_pj_per_byte(),
        "l2": sum(tr.bytes_in + tr.bytes_out for tr in traffic) * arch.l2_pj_per_byte(),
        "dram": dram_bytes * arch.dram.pj_per_byte,
        "leakage": cycles * e.leakage_pj_per_cycle,
    }
    return Cost(
        macs=macs,
        cycles=cycles,
        compute_cycles=compute,
        local_transfer_cycles=t_spad + t_acc,
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
    )


# --- the batched path --------------------------------------------------------------------


def _visits_batch(
    dims: list[np.ndarray],
    levels: list[int],
    bounds: list[np.ndarray],
    counts: list[np.ndarray],
    relevant: tuple[bool, ...],
    D: np.ndarray,
) -> np.ndarray:
    """Vectorised :func:`visits`: ``dims``/``bounds`` per loop position, ``counts`` per level (n, 3)."""
    rel = np.array(relevant)
    n = dims[0].shape[0]
    inner = np.full(n, -1)
    for p, (d, b) in enumerate(zip(dims, bounds)):
        inner = np.where(rel[d] & (b > 1), p, inner)
    deepest = np.full((n, 3), -1)
    for p, (d, lvl, b) in enumerate(zip(dims, levels, bounds)):
        hit = (p <= inner) & (b > 1)
        for j in range(3):
            if not relevant[j]:
                col = deepest[:, j]
                deepest[:, j] = np.where(hit & (d == j), np.maximum(col, lvl), col)
    total = np.ones(n, dtype=np.int64)
    for j in range(3):
        if relevant[j]:
            total *= D[j]
        else:
            per_level = np.where(deepest[:, j] == 1, counts[1][:, j], counts[0][:, j])
            total *= np.where(deepest[:, j] >= 0, per_level, 1)
    return total


def _fold_cycles_batch(arch: Arch, ws: np.ndarray, em, ek, en) -> np.ndarray:
    R, C = arch.dim_rows, arch.dim_cols
    folds = np.where(ws, -(-ek // R) * -(-en // C), -(-em // R) * -(-en // C))
    stream = np.where(ws, em, ek)
    edge = np.where(ws, 2 * R + C - 2, R + C - 2)
    if arch.pe_array.stationary_overlap:
        return edge + folds * np.maximum(stream, R)
    return folds * (edge + stream)


def evaluate_batch(arch: Arch, problem: Problem, b: MappingBatch) -> BatchCost:
    """Costs of many mappings at once (numpy); equal to :func:`evaluate` mapping by mapping."""
    t, e = arch.datatypes, arch.energy
    R, C = arch.dim_rows, arch.dim_cols
    D = np.array(problem.shape_key(), dtype=np.int64)
    M, K, N = (int(x) for x in D)
    macs = M * K * N
    T = b.local
    n1 = -(-D // T)
    ws = b.dataflow == 0

    dram_dims = ORDER_DIMS[b.dram_order].T  # (3, n): dim at each DRAM position
    if arch.l2 is None:
        n_dram = f = n1
        dims = list(dram_dims)
        levels = [0, 0, 0]
    else:
        f = np.minimum(b.l2_factors, n1)
        n_dram = -(-n1 // f)
        dims = list(dram_dims) + list(ORDER_DIMS[b.l2_order].T)
        levels = [0, 0, 0, 1, 1, 1]
    per_level = [n_dram, n1]  # tiles of each dim counted down to each level
    loop_bounds = [n_dram, f]  # the bound of each dim's loop at each level
    rows = np.arange(len(b))
    bounds = [loop_bounds[lvl][rows, d] for d, lvl in zip(dims, levels)]

    def boundary(npos: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        v = [_visits_batch(dims[:npos], levels[:npos], bounds[:npos], per_level, RELEVANT[x], D) for x in TENSORS]
        spill = v[2] - M * N
        spad_in = v[0] * t.input_bytes + v[1] * t.weight_bytes
        c_bytes = 2 * spill * t.acc_bytes + M * N * t.output_bytes
        return spad_in, c_bytes, spad_in + c_bytes

    spad_bytes, acc_bytes, local_total = boundary(len(dims))
    if arch.l2 is None:
        dram_bytes, l2_total = local_total, 0
    else:
        dram_bytes = boundary(3)[2]
        l2_total = local_total + dram_bytes

    last = D - (n1 - 1) * T
    compute = np.zeros(len(b), dtype=np.int64)
    for sm in (0, 1):
        for sk in (0, 1):
            for sn in (0, 1):
                ext = [np.where(s, last[:, j], T[:, j]) for j, s in enumerate((sm, sk, sn))]
                cnt = [np.where(s, 1, n1[:, j] - 1) for j, s in enumerate((sm, sk, sn))]
                compute += cnt[0] * cnt[1] * cnt[2] * _fold_cycles_batch(arch, ws, *ext)

    bw = arch.local_bytes_per_cycle
    t_spad, t_acc = spad_bytes / bw, acc_bytes / bw
    overlapped = np.where(b.db_spad, t_spad, 0.0) + np.where(b.db_acc, t_acc, 0.0)
    serial = np.where(b.db_spad, 0.0, t_spad) + np.where(b.db_acc, 0.0, t_acc)
    Tm, Tk, Tn = T[:, 0], T[:, 1], T[:, 2]
    prologue = np.where(b.db_spad, (Tm * Tk * t.input_bytes + Tk * Tn * t.weight_bytes) / bw, 0.0)
    epilogue = np.where(b.db_acc, last[:, 0] * last[:, 2] * t.output_bytes / bw, 0.0)
    core = serial + np.maximum(compute.astype(np.float64), overlapped) + prologue + epilogue
    cycles = np.ceil(np.maximum(core, dram_bytes / arch.dram.bytes_per_cycle)).astype(np.int64)

    nb = [(n1[:, j] - 1) * -(-T[:, j] // w) + -(-last[:, j] // w) for j, w in enumerate((R, R, C))]
    stationary = np.where(ws, n1[:, 0] * K * N * t.weight_bytes, n1[:, 1] * M * N * t.acc_bytes)
    spad_reads = nb[2] * M * K * t.input_bytes + np.where(ws, n1[:, 0], nb[0]) * K * N * t.weight_bytes
    accumulations = np.where(ws, nb[1], n1[:, 1]) * M * N
    energy = (
        macs * e.mac_pj
        + (macs * (t.input_bytes + t.weight_bytes + t.acc_bytes) + stationary) * e.reg_pj_per_byte
        + (spad_reads + spad_bytes) * arch.spad_pj_per_byte()
        + (2 * t.acc_bytes * accumulations + acc_bytes) * arch.acc_pj_per_byte()
        + l2_total * arch.l2_pj_per_byte()
        + dram_bytes * arch.dram.pj_per_byte
        + cycles * e.leakage_pj_per_cycle
    )
    return BatchCost(cycles=cycles, energy_pj=energy, dram_bytes=dram_bytes, compute_cycles=compute)
