"""Mappings of a GEMM ``C[M,N] += A[M,K]·B[K,N]`` onto the Gemmini hierarchy (DESIGN §4).

The loop nest, outermost first::

    DRAM loops   over L2 tiles        (order ``dram_order``; bounds n2 = ceil(n1 / f))
    L2 loops     over local tiles     (order ``l2_order``; bounds f; only when the arch has an L2)
    local tile   (Tm, Tk, Tn) in the scratchpad (A, B) and the accumulator (C)
      array folds: WS keeps a K×N weight block in the PEs and streams the tile's Tm rows of A;
                   OS keeps an M×N output block in the PEs and streams the tile's Tk of K
      spatial:     WS K→rows, N→cols; OS M→rows, N→cols (Gemmini's wiring), min(DIM, tile) wide

Tiles may be imperfect: a dim of size D with local tile T has n1 = ceil(D/T) tiles, the last one
partial. L2 tiles are whole multiples ``f`` of the local tile (clipped at D), so the local tiles
are the same whatever the L2 tiling; with no L2 the factors are 1 and ``l2_order`` is unused.
A :class:`Mapping` is one point; :class:`MappingBatch` holds many as numpy arrays.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

import numpy as np

from gemmap.arch import Arch, ceil_div
from gemmap.workload import Problem

DIMS = ("M", "K", "N")
ORDERS: tuple[str, ...] = tuple("".join(p) for p in itertools.permutations(DIMS))
ORDER_INDEX = {o: i for i, o in enumerate(ORDERS)}
#: ORDER_DIMS[o, p] is the dim index (0=M, 1=K, 2=N) of the loop at position p (outermost 0)
ORDER_DIMS = np.array([[DIMS.index(c) for c in o] for o in ORDERS], dtype=np.int64)
DATAFLOWS = ("ws", "os")
#: which dims each tensor is indexed by (A[M,K], B[K,N], C[M,N])
RELEVANT = {"A": (True, True, False), "B": (False, True, True), "C": (True, False, True)}


@dataclasses.dataclass(frozen=True)
class Mapping:
    """One mapping of a GEMM: dataflow, local tile, L2 factors, loop orders, double buffering."""

    dataflow: str
    local: tuple[int, int, int]
    l2_factors: tuple[int, int, int] = (1, 1, 1)
    dram_order: str = "MNK"
    l2_order: str = "MNK"
    db_spad: bool = True
    db_acc: bool = True

    def spatial(self, arch: Arch) -> dict[str, int]:
        """Spatial unrolling: dim → PEs used (rows dim first, then cols dim)."""
        Tm, Tk, Tn = self.local
        if self.dataflow == "ws":
            return {"K": min(arch.dim_rows, Tk), "N": min(arch.dim_cols, Tn)}
        return {"M": min(arch.dim_rows, Tm), "N": min(arch.dim_cols, Tn)}

    def l2_tile(self, problem: Problem) -> tuple[int, int, int]:
        return tuple(min(f * t, d) for f, t, d in zip(self.l2_factors, self.local, problem.shape_key()))  # type: ignore[return-value]

    def to_dict(self, arch: Arch, problem: Problem) -> dict[str, object]:
        """The ``mapping`` record of the JSON output."""
        out: dict[str, object] = {
            "dataflow": self.dataflow,
            "local_tile": dict(zip(DIMS, self.local)),
            "spatial": self.spatial(arch),
            "dram_order": self.dram_order,
            "double_buffer": {"scratchpad": self.db_spad, "accumulator": self.db_acc},
        }
        if arch.l2 is not None:
            out["l2_tile"] = dict(zip(DIMS, self.l2_tile(problem)))
            out["l2_order"] = self.l2_order
        return out

    def summary(self, arch: Arch) -> str:
        """A short one-line description for tables, e.g. ``ws 128x768x64 MNK db``."""
        Tm, Tk, Tn = self.local
        db = (
            "db" if self.db_spad and self.db_acc else ("db-sp" if self.db_spad else ("db-acc" if self.db_acc else "sb"))
        )
        l2 = f" L2x{'x'.join(map(str, self.l2_factors))}/{self.l2_order}" if arch.l2 is not None else ""
        return f"{self.dataflow} {Tm}x{Tk}x{Tn} {self.dram_order}{l2} {db}"

    def loop_nest(self, arch: Arch, problem: Problem) -> str:
        """The mapping as a Timeloop-style loop nest, outermost first."""
        D = problem.shape_key()
        n1 = [ceil_div(d, t) for d, t in zip(D, self.local)]
        lines: list[str] = []
        indent = ""
        if arch.l2 is not None:
            f = [min(fi, n) for fi, n in zip(self.l2_factors, n1)]
            n2 = [ceil_div(n, fi) for n, fi in zip(n1, f)]
            levels = [("DRAM", self.dram_order, n2, "2"), ("L2", self.l2_order, f, "1")]
        else:
            levels = [("DRAM", self.dram_order, n1, "1")]
        for level, order, bounds, suffix in levels:
            lines.append(f"{indent}// {level}")
            for c in order:
                b = bounds[DIMS.index(c)]
                if b > 1:
                    lines.append(f"{indent}for {c.lower()}{suffix} in [0:{b})")
                    indent += "  "
        sp = self.spatial(arch)
        Tm, Tk, Tn = self.local
        lines.append(f"{indent}// scratchpad A[{Tm}x{Tk}] B[{Tk}x{Tn}]  accumulator C[{Tm}x{Tn}]")
        if self.dataflow == "ws":
            folds = [("k", ceil_div(Tk, sp["K"])), ("n", ceil_div(Tn, sp["N"]))]
            stream = ("m", Tm)
            spatial = [("k", sp["K"]), ("n", sp["N"])]
        else:
            folds = [("m", ceil_div(Tm, sp["M"])), ("n", ceil_div(Tn, sp["N"]))]
            stream = ("k", Tk)
            spatial = [("m", sp["M"]), ("n", sp["N"])]
        for name, b in folds:
            if b > 1:
                lines.append(f"{indent}for {name}0 in [0:{b})")
                indent += "  "
        lines.append(f"{indent}// {self.dataflow.upper()} fold: stream {stream[0]} over [0:{stream[1]})")
        for name, s in spatial:
            lines.append(f"{indent}spatial_for {name}s in [0:{s})")
            indent += "  "
        return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class MappingBatch:
    """Many mappings of one problem as arrays (for the vectorised model and the searches).

    ``dataflow`` is 0 for WS and 1 for OS; orders are indices into :data:`ORDERS`.
    """

    dataflow: np.ndarray  # (n,) int8
    local: np.ndarray  # (n, 3) int64
    l2_factors: np.ndarray  # (n, 3) int64
    dram_order: np.ndarray  # (n,) int64
    l2_order: np.ndarray  # (n,) int64
    db_spad: np.ndarray  # (n,) bool
    db_acc: np.ndarray  # (n,) bool

    def __len__(self) -> int:
        return int(self.dataflow.shape[0])

    @classmethod
    def from_mappings(cls, mappings: Sequence[Mapping]) -> MappingBatch:
        return cls(
            dataflow=np.array([DATAFLOWS.index(m.dataflow) for m in mappings], dtype=np.int8),
            local=np.array([m.local for m in mappings], dtype=np.int64).reshape(-1, 3),
            l2_factors=np.array([m.l2_factors for m in mappings], dtype=np.int64).reshape(-1, 3),
            dram_order=np.array([ORDER_INDEX[m.dram_order] for m in mappings], dtype=np.int64),
            l2_order=np.array([ORDER_INDEX[m.l2_order] for m in mappings], dtype=np.int64),
            db_spad=np.array([m.db_spad for m in mappings], dtype=bool),
            db_acc=np.array([m.db_acc for m in mappings], dtype=bool),
        )

    def __getitem__(self, i: int) -> Mapping:
        return Mapping(
            dataflow=DATAFLOWS[int(self.dataflow[i])],
            local=tuple(int(x) for x in self.local[i]),  # type: ignore[arg-type]
            l2_factors=tuple(int(x) for x in self.l2_factors[i]),  # type: ignore[arg-type]
            dram_order=ORDERS[int(self.dram_order[i])],
            l2_order=ORDERS[int(self.l2_order[i])],
            db_spad=bool(self.db_spad[i]),
            db_acc=bool(self.db_acc[i]),
        )

    def take(self, index: np.ndarray) -> MappingBatch:
        return MappingBatch(**{f.name: getattr(self, f.name)[index] for f in dataclasses.fields(self)})

    @staticmethod
    def concat(batches: Sequence[MappingBatch]) -> MappingBatch:
        return MappingBatch(
            **{f.name: np.concatenate([getattr(b, f.name) for b in batches]) for f in dataclasses.fields(MappingBatch)}
        )


# --- capacity --------------------------------------------------------------------------


def spad_rows_needed(arch: Arch, local: tuple[int, int, int]) -> int:
    """Scratchpad rows for one A tile and one B tile (rows of DIM elements, Gemmini's layout)."""
    Tm, Tk, Tn = local
    c = arch.dim_cols
    return Tm * ceil_div(Tk, c) + Tk * ceil_div(Tn, c)


def acc_rows_needed(arch: Arch, local: tuple[int, int, int]) -> int:
    """Accumulator rows for one C tile."""
    Tm, _, Tn = local
    return Tm * ceil_div(Tn, arch.dim_cols)


def l2_bytes_needed(arch: Arch, l2_tile: tuple[int, int, int]) -> int:
    """L2 bytes for one A, B and C tile (C held as partial sums, acc_bytes per element)."""
    Tm, Tk, Tn = l2_tile
    t = arch.datatypes
    return Tm * Tk * t.input_bytes + Tk * Tn * t.weight_bytes + Tm * Tn * t.acc_bytes


def invalid_reason(arch: Arch, problem: Problem, m: Mapping) -> str | None:
    """Why ``m`` is not a valid mapping of ``problem`` on ``arch``, or None if it is valid."""
    D = problem.shape_key()
    if m.dataflow not in arch.dataflows:
        return f"dataflow {m.dataflow} not supported by {arch.name} ({arch.pe_array.dataflow})"
    if m.dram_order not in ORDER_INDEX or m.l2_order not in ORDER_INDEX:
        return "loop orders must be permutations of MKN"
    for name, t, d in zip(DIMS, m.local, D):
        if not 1 <= t <= d:
            return f"local tile {name}={t} outside [1, {d}]"
    if arch.l2 is None and tuple(m.l2_factors) != (1, 1, 1):
        return f"{arch.name} has no L2, so the L2 factors must be 1"
    for name, f, t, d in zip(DIMS, m.l2_factors, m.local, D):
        if not 1 <= f <= ceil_div(d, t):
            return f"L2 factor {name}={f} outside [1, {ceil_div(d, t)}]"
    need = spad_rows_needed(arch, m.local) * (2 if m.db_spad else 1)
    if need > arch.spad_rows:
        return f"scratchpad needs {need} rows, has {arch.spad_rows}"
    need = acc_rows_needed(arch, m.local) * (2 if m.db_acc else 1)
    if need > arch.acc_rows:
        return f"accumulator needs {need} rows, has {arch.acc_rows}"
    if arch.l2 is not None:
        need = l2_bytes_needed(arch, m.l2_tile(problem))
        if need > arch.l2.bytes:
            return f"L2 needs {need} bytes, has {arch.l2.bytes}"
    return None


def valid_mask(arch: Arch, problem: Problem, b: MappingBatch) -> np.ndarray:
    """Vectorised :func:`invalid_reason` is None (dataflow, capacities, bounds)."""
    D = np.array(problem.shape_key(), dtype=np.int64)
    c = arch.dim_cols
    T = b.local
    n1 = -(-D // T)
    ok = np.all((T >= 1) & (T <= D), axis=1) & np.all((b.l2_factors >= 1) & (b.l2_factors <= n1), axis=1)
    ok &= np.isin(b.dataflow, [DATAFLOWS.index(d) for d in arch.dataflows])
    Tm, Tk, Tn = T[:, 0], T[:, 1], T[:, 2]
    spad = (Tm * (-(-Tk // c)) + Tk * (-(-Tn // c))) * np.where(b.db_spad, 2, 1)
    acc = Tm * (-(-Tn // c)) * np.where(b.db_acc, 2, 1)
    ok &= (spad <= arch.spad_rows) & (acc <= arch.acc_rows)
    if arch.l2 is None:
        ok &= np.all(b.l2_factors == 1, axis=1)
    else:
        t = arch.datatypes
        T2 = np.minimum(b.l2_factors * T, D)
        l2 = (
            T2[:, 0] * T2[:, 1] * t.input_bytes
            + T2[:, 1] * T2[:, 2] * t.weight_bytes
            + T2[:, 0] * T2[:, 2] * t.acc_bytes
        )
        ok &= l2 <= arch.l2.bytes
    return ok
