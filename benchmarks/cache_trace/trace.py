"""Line-level trace of Gemmini's DMA through the FireSim SoC's L2 and LLC (run by hand).

    python benchmarks/cache_trace/trace.py DATA.csv ROW [ROW ...] [--passes 2] [--seed 1] [--json OUT]

For each row of a validation file (``../shared/validation/``, docs/validation.md) it walks the
``tiled_conv`` / ``tiled_matmul`` call DOSA's flow made, tile by tile in the software's own loop order
(the ``perm`` string, not gemmap's reduction-innermost order), lists the 64-byte lines every DMA row
touches (weights, then the input window without its padding, then the output tile after its last
reduction tile; for a matmul B, A, then C after the last K tile), and runs them through ``cachesim.c``
(the L2 and FASED's LLC with their replacement policies; sources in that file). The pass is repeated
``--passes`` times on the same caches: the first is cold, the others stand in for a run that follows
one over the same buffers (the mapped run follows Gemmini's tiler's run of the same layer:
conv_tilings.c / matmul_tilings.c @959b23f7). It also counts the DMA's requests and 16-byte beats
(aligned 16/32/64-byte requests, DMA.scala @67ca2f9 L180-201, L420-470).

Addresses follow gemmini.h @959b23f7 (tiled_conv L2474-2481, tiled_matmul_outer L845-869) with the
tensors 4 KiB-aligned one after another. Not simulated: the CPU's own traffic, bias loads, DRAM timing
behind the LLC. The counts are evidence for the model (docs/validation.md, "The memory path line by
line"), not part of it. Needs a C compiler (``cc``); ``cachesim.c`` is built once into a temp folder.
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import hashlib
import itertools
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from gemmap.arch import load_arch  # noqa: E402
from gemmap.dma import packet_costs  # noqa: E402
from gemmap.interop.gemmini_calls import ConvCall, MatmulCall, conv_call, matmul_call  # noqa: E402
from gemmap.interop.timeloop import parse_compact  # noqa: E402
from gemmap.validation.data import read_runs  # noqa: E402
from gemmap.validation.predict import setup_cost, setup_run  # noqa: E402

BASE = 0x80100000
LINE = 64
COUNTERS = (
    "accesses", "l2_hit", "l2_read_miss", "l2_full_write_miss", "l2_partial_write_miss", "l2_writeback",
    "llc_read_hit", "llc_read_miss", "llc_write_hit", "llc_write_miss", "llc_dirty_evict", "l2_reads", "l2_writes",
)  # fmt: skip
#: tiled_conv's dim letters (gemmini.h idx_to_dim) -> index in (batch, porow, pocol, poch, krow, kcol, kch)
CONV_DIM = {"N": 0, "Q": 1, "P": 2, "K": 3, "S": 4, "R": 5, "C": 6}
MATMUL_DIM = {"P": 0, "C": 1, "K": 2}  # I, K, J


def _align(x: int, a: int = 4096) -> int:
    return (x + a - 1) // a * a


@functools.cache
def _requests(offset: int, width: int) -> tuple[int, int]:
    """(requests, 16-byte beats) of a DMA command row of ``width`` bytes starting ``offset`` bytes into a
    line: the request walk of :func:`gemmap.dma.packet_costs` (DMA.scala L180-201, L420-470)."""
    beats, reqs = packet_costs(16, LINE, offset % LINE, width)
    return reqs, beats


class Trace:
    """The lines (and write flags) of a run's DMA rows, in order, with its request and beat counts."""

    def __init__(self, command_bytes: int = LINE) -> None:
        self.command_bytes = command_bytes
        self.lines: list[np.ndarray] = []
        self.flags: list[np.ndarray] = []
        self.requests = 0
        self.beats = 0
        self.tiles = 0

    def rows(self, starts: np.ndarray, width: int, write: bool) -> None:
        """DMA rows of ``width`` bytes at byte addresses ``starts`` (row order), each cut into the command
        rows of at most ``command_bytes`` the loop unrollers issue (max_block_len DIM-wide blocks)."""
        starts = np.asarray(starts, dtype=np.int64).ravel()
        step = self.command_bytes
        for col in range(0, max(width, 0), step):
            self._command_rows(starts + col, min(step, width - col), write)

    def _command_rows(self, starts: np.ndarray, width: int, write: bool) -> None:
        if starts.size == 0 or width <= 0:
            return
        first, last = starts >> 6, (starts + width - 1) >> 6
        span = last - first + 1
        row = np.repeat(np.arange(starts.size), span)
        lines = first[row] + (np.arange(int(span.sum())) - np.repeat(np.cumsum(span) - span, span))
        flags = np.zeros(lines.size, dtype=np.uint8)
        if write:
            full = ((lines << 6) >= starts[row]) & (((lines << 6) + LINE) <= starts[row] + width)
            flags = (1 | (full.astype(np.uint8) << 1)).astype(np.uint8)
        self.lines.append(lines)
        self.flags.append(flags)
        offsets, counts = np.unique(starts & (LINE - 1), return_counts=True)
        for o, c in zip(offsets.tolist(), counts.tolist()):
            r, b = _requests(o, width)
            self.requests += r * c
            self.beats += b * c

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        empty = (np.zeros(0, np.int64), np.zeros(0, np.uint8))
        if not self.lines:
            return empty
        return np.concatenate(self.lines), np.concatenate(self.flags)


def conv_trace(call: ConvCall, tile: tuple[int, ...], command_bytes: int = LINE) -> Trace:
    """Every DMA row of ``tiled_conv`` (gemmini.h @959b23f7 L2356-2520) in its loop order."""
    N, D, C, K, P = call.batch_size, call.in_dim, call.in_channels, call.out_channels, call.out_dim
    st, pad, kd, dil = call.stride, call.padding, call.kernel_dim, call.kernel_dilation
    steps = tile
    I0 = BASE
    W0 = _align(I0 + N * D * D * C)
    O0 = _align(W0 + kd * kd * C * K)
    limits = (N, P, P, K, kd, kd, C)
    outer_first = [CONV_DIM[ch] for ch in reversed(call.perm)]
    tr = Trace(command_bytes)
    for vals in itertools.product(*(range(0, limits[d], steps[d]) for d in outer_first)):
        v = [0] * 7
        for d, x in zip(outer_first, vals):
            v[d] = x
        b, porow, pocol, poch, krow, kcol, kch = v
        b_, pr, pc, k_, kr, kc, c_ = (min(t, lim - x) for t, lim, x in zip(steps, limits, v))
        r_idx, c_idx, ch = np.arange(krow, krow + kr), np.arange(kcol, kcol + kc), np.arange(kch, kch + c_)
        tr.rows(W0 + ((r_idx[:, None, None] * kd + c_idx[None, :, None]) * C + ch[None, None, :]) * K + poch, k_, False)
        irow, icol = porow * st + krow * dil - pad, pocol * st + kcol * dil - pad
        irows, icols = pr * st + (kr - 1) * dil, pc * st + (kc - 1) * dil
        rows = np.arange(max(irow, 0), min(irow + irows, D))
        cols = np.arange(max(icol, 0), min(icol + icols, D))
        bb = np.arange(b, b + b_)
        tr.rows(I0 + ((bb[:, None, None] * D + rows[None, :, None]) * D + cols[None, None, :]) * C + kch, c_, False)
        if krow + kr >= kd and kcol + kc >= kd and kch + c_ >= C:  # the last reduction tile writes
            orows, ocols = np.arange(porow, porow + pr), np.arange(pocol, pocol + pc)
            tr.rows(
                O0 + ((bb[:, None, None] * P + orows[None, :, None]) * P + ocols[None, None, :]) * K + poch, k_, True
            )
        tr.tiles += 1
    return tr


def matmul_trace(call: MatmulCall, local: tuple[int, int, int], command_bytes: int = LINE) -> Trace:
    """Every DMA row of ``tiled_matmul_outer`` (gemmini.h @959b23f7 L718-880) in its loop order."""
    M, Kd, Nd = call.I, call.K, call.J
    TM, TK, TN = local
    A0 = BASE
    B0 = _align(A0 + M * Kd)
    C0 = _align(B0 + Kd * Nd)
    counts = (math.ceil(M / TM), math.ceil(Kd / TK), math.ceil(Nd / TN))
    outer_first = [MATMUL_DIM[ch] for ch in reversed(call.perm) if ch in MATMUL_DIM]
    tr = Trace(command_bytes)
    for vals in itertools.product(*(range(counts[d]) for d in outer_first)):
        v = [0, 0, 0]
        for d, x in zip(outer_first, vals):
            v[d] = x
        i0, k0, j0 = v
        m_, k_, n_ = min(TM, M - i0 * TM), min(TK, Kd - k0 * TK), min(TN, Nd - j0 * TN)
        ks, ms = np.arange(k0 * TK, k0 * TK + k_), np.arange(i0 * TM, i0 * TM + m_)
        tr.rows(B0 + ks * Nd + j0 * TN, n_, False)
        tr.rows(A0 + ms * Kd + k0 * TK, k_, False)
        if k0 == counts[1] - 1:
            tr.rows(C0 + ms * Nd + j0 * TN, n_, True)
        tr.tiles += 1
    return tr


@functools.cache
def _simulator() -> ctypes.CDLL:
    src = HERE / "cachesim.c"
    tag = hashlib.sha256(src.read_bytes()).hexdigest()[:12]
    lib = Path(tempfile.gettempdir()) / f"gemmap-cachesim-{tag}.so"
    if not lib.exists():  # build beside it, then rename: concurrent builders never load a half-written file
        tmp = lib.with_name(f"{lib.name}.{os.getpid()}.tmp")
        subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", str(tmp), str(src)], check=True)
        os.replace(tmp, lib)
    so = ctypes.CDLL(str(lib))
    so.run.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p]
    so.reset.argtypes = [ctypes.c_uint64]
    return so


def simulate(lines: np.ndarray, flags: np.ndarray, passes: int = 2, seed: int = 1) -> list[dict[str, int]]:
    """The counters of each pass of the same trace over the same caches (the first one cold)."""
    so = _simulator()
    lines, flags = np.ascontiguousarray(lines, np.int64), np.ascontiguousarray(flags, np.uint8)
    so.reset(seed)
    out = []
    for _ in range(passes):
        k = np.zeros(16, np.int64)
        so.run(lines.ctypes.data, flags.ctypes.data, lines.size, k.ctypes.data)
        out.append(dict(zip(COUNTERS, k.tolist())))
    return out


def row_counts(path: str, row: int, arch_path: str, passes: int, seed: int) -> dict[str, object]:
    """A row's model figures and its simulated counters per pass."""
    arch = load_arch(arch_path)
    run = read_runs(path)[0][row]
    setup = setup_run(run, arch)
    cost = setup_cost(setup)
    nest = parse_compact(run.mapping)
    command = max(LINE, setup.arch.dim_cols)  # int8 rows: max_block_len blocks of DIM bytes, at least 64 B
    if run.kind == "matmul":
        call: ConvCall | MatmulCall = matmul_call(nest, run.layer)
        tr = matmul_trace(call, setup.mapping.local, command)  # type: ignore[union-attr]
    else:
        call = conv_call(nest, run.layer)
        tr = conv_trace(call, setup.mapping.tile, command)  # type: ignore[union-attr]
    lines, flags = tr.arrays()
    return {
        "row": row, "kind": run.kind, "dim": setup.arch.dim_rows, "perm": call.perm, "tiles": tr.tiles,
        "measured": run.measured, "predicted": cost.cycles, "compute": cost.compute_cycles,
        "model_dram_bytes": cost.dram_bytes, "requests": tr.requests, "beats": tr.beats,
        "lines": int(lines.size), "distinct_lines": int(np.unique(lines).size),
        "passes": simulate(lines, flags, passes, seed),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", help="validation CSV (../shared/validation/*.csv)")
    ap.add_argument("rows", nargs="+", type=int, help="0-based data rows")
    ap.add_argument("--arch", default=str(HERE.parent.parent / "arch" / "gemmini-firesim.yaml"))
    ap.add_argument("--passes", type=int, default=2, help="passes over the same caches (first cold; default 2)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the replacement LFSR stand-in")
    ap.add_argument("--json", help="also write the counts as JSON")
    args = ap.parse_args(argv)
    out = []
    for row in args.rows:
        r = row_counts(args.data, row, args.arch, args.passes, args.seed)
        out.append(r)
        last = r["passes"][-1]  # type: ignore[index]
        print(
            f"row {row} {r['kind']} DIM {r['dim']} perm {r['perm']} tiles {r['tiles']}: measured {r['measured']:.0f}, "
            f"model {r['predicted']} (compute {r['compute']:.0f}); requests {r['requests']}, beats {r['beats']}, "
            f"lines {r['lines']} ({r['distinct_lines']} distinct); last pass: L2 hits {last['l2_hit']}, read misses "
            f"{last['l2_read_miss']}, partial-write misses {last['l2_partial_write_miss']}, write-backs "
            f"{last['l2_writeback']}, LLC misses {last['llc_read_miss'] + last['llc_write_miss']}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
