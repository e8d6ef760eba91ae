"""The mesh's tag queue: how fast a WS fold's compute requests go through Gemmini's array.

**The mechanism** (docs/model.md, "Mesh tag queue"). ExecuteController hands the mesh one request
per preload/compute pair; a request of ``r`` rows feeds ``r`` rows, one per cycle (the fold's first
request carries the new weights and feeds DIM rows; the others feed ``max(rows, 4)``:
ExecuteController.scala @67ca2f9 L285-302). MeshWithDelays takes a tag-queue entry per request and
frees it when the *next* request's last row leaves the array, ``latency`` cycles after it went in
(``matmul_id_of_output = matmul_id + 2``, MeshWithDelays.scala L48-56, L219-248); the queue holds
``tag_queue`` entries, so request ``k + W`` (``W = tag_queue − 1``) cannot start before request ``k``'s
rows have gone in and ``latency`` cycles have passed::

    s(k+1) = max(s(k) + r_k, s(k+1−W) + r_{k+1−W} + latency)

**Steady state.** A fold is one block of a periodic request sequence (a conv tile streams the same
block through every weight block; LoopConv and LoopMatmul issue the blocks back to back), so its
time is the sequence's growth per block. The recurrence is linear in the max-plus algebra over the
state ``x(k) = (s(k), y(k−1), …, y(k−W+1))`` with ``y(j) = s(j) + r_j + latency`` the time request
``j`` frees its successor's entry: one request is a W×W matrix, a block the product of its requests'
matrices, and the growth per block is that product's max-plus eigenvalue, its largest cycle mean
(Karp's formula). A cycle of the W-node product spans at most W blocks, so the growth is a whole
number of ``1 / lcm(1..W)`` cycles: the model counts compute in ticks of that size
(:func:`ticks_per_cycle`), and the scalar and batched paths agree exactly.

One request at a time, as an earlier version of the model charged, ``max(r, (r + latency) / W)``
over-counts: a long request (a fold's DIM-row first one) leaves the entries free long enough for the
short ones after it (tests pin both on hand-worked blocks and against a direct simulation).
"""

from __future__ import annotations

import math

import numpy as np

from gemmap.arch import Arch

#: the floor ExecuteController puts on a request that reuses the preloaded weights (rows it feeds; two
#: writes to one accumulator address must be 4 cycles apart)
MIN_ROWS = 4


def ticks_per_cycle(arch: Arch) -> int:
    """Compute is counted in ticks of ``1 / lcm(1..W)`` cycle when the queue can throttle (module
    docstring), else in whole cycles."""
    pe = arch.pe_array
    return math.lcm(*range(1, pe.window + 1)) if pe.throttles else 1


def _request(r: np.ndarray, lat: int, w: int) -> np.ndarray:
    """(n, W, W) max-plus matrices of one request of ``r`` rows (n,): x(k+1) = A ⊗ x(k)."""
    n = r.shape[0]
    a = np.full((n, w, w), -np.inf)
    rf = r.astype(np.float64)
    if w == 1:
        a[:, 0, 0] = rf + lat
        return a
    a[:, 0, 0] = rf  # s(k+1) ≥ s(k) + r_k
    a[:, 0, w - 1] = 0.0  # s(k+1) ≥ y(k+1−W)
    a[:, 1, 0] = rf + lat  # y(k) = s(k) + r_k + latency
    for i in range(2, w):
        a[:, i, i - 1] = 0.0  # the older y's shift down
    return a


def _times(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Max-plus product a ⊗ b of (n, W, W) stacks."""
    return (a[:, :, :, None] + b[:, None, :, :]).max(axis=2)


def _power(a: np.ndarray, e: np.ndarray) -> np.ndarray:
    """a ⊗ … ⊗ a (``e`` (n,) times, the identity for 0) by repeated squaring."""
    n, w, _ = a.shape
    out = np.full((n, w, w), -np.inf)
    out[:, np.arange(w), np.arange(w)] = 0.0
    e = e.astype(np.int64).copy()
    while np.any(e > 0):
        odd = (e & 1).astype(bool)
        if odd.any():
            out[odd] = _times(a[odd], out[odd])
        e >>= 1
        if np.any(e > 0):
            a = _times(a, a)
    return out


def _growth_ticks(m: np.ndarray, q: int) -> np.ndarray:
    """Karp's largest cycle mean of each (W, W) max-plus matrix in ``m`` (n, W, W), in ticks of ``1/q``
    cycle (exact: ``q`` is a multiple of every cycle length)."""
    n, w, _ = m.shape
    d = [np.zeros((n, w))]  # D_0: walks of no arc from a source joined to every node
    for _ in range(w):
        d.append((m + d[-1][:, None, :]).max(axis=2))
    best = np.full((n, w), np.inf)
    for k in range(w):
        diff = (d[w] - d[k]) * (q // (w - k))
        best = np.minimum(best, np.where(np.isfinite(d[k]), diff, np.inf))
    best = np.where(np.isfinite(d[w]), best, -np.inf)
    return best.max(axis=1)


def _fold_growth(arch: Arch, rows: np.ndarray, lines: np.ndarray) -> np.ndarray:
    """Ticks per fold for unique (rows, lines) pairs, through the max-plus product."""
    dim, lat, w, q = arch.dim_rows, arch.pe_array.array_latency, arch.pe_array.window, ticks_per_cycle(arch)
    full, rem = rows // dim, rows % dim
    short = np.maximum(rem, MIN_ROWS)
    a_dim = _request(np.full(rows.shape, dim), lat, w)
    a_rem = _request(short, lat, w)
    # rows < DIM: the block is [DIM, rem × (lines − 1)]; rows ≥ DIM: each line is [DIM × full, rem]
    wide = full >= 1
    block = _times(_power(a_rem, np.where(wide, 0, lines - 1)), a_dim)
    line = _power(a_dim, full)
    line = np.where((wide & (rem > 0))[:, None, None], _times(a_rem, line), line)
    per = _growth_ticks(np.where(wide[:, None, None], line, block), q)
    return np.where(wide, per * lines, per)


def _rows_fed(dim: int, rows: np.ndarray, lines: np.ndarray) -> np.ndarray:
    """Cycles a fold's requests take to feed their rows (its time when the queue never binds)."""
    full, rem = rows // dim, rows % dim
    short = np.maximum(rem, MIN_ROWS)
    return np.where(full >= 1, lines * (full * dim + np.where(rem > 0, short, 0)), dim + (lines - 1) * short)


def _never_held(arch: Arch, rows: np.ndarray, lines: np.ndarray) -> np.ndarray:
    """Folds the queue can never hold back: every W − 1 consecutive requests feed at least the latency,
    so each wait ``r_j + latency`` is covered by feeding requests j … j + W − 1 (the fold costs its
    rows). A fold is one odd request per period among equal ones: the DIM-row first request among the
    lines' short ones (rows < DIM), or a line's short remainder among its DIM-row requests."""
    dim, w, lat = arch.dim_rows, arch.pe_array.window, arch.pe_array.array_latency
    full, rem = rows // dim, rows % dim
    short = np.maximum(rem, MIN_ROWS)
    span = w - 1
    # rows < DIM: period `lines`, the fewest DIM requests in a span is ⌊span / lines⌋
    few = span * short + (span // lines) * (dim - short)
    # rows ≥ DIM: period full + 1 (with a remainder), the most remainders in a span is ⌈span / period⌉
    period = full + (rem > 0)
    many = span * dim - np.where(rem > 0, -(-span // np.maximum(period, 1)) * (dim - short), 0)
    return np.where(full >= 1, many, few) >= lat


def stream_ticks(arch: Arch, rows, lines=1):
    """Ticks (:func:`ticks_per_cycle`) of one WS fold: ``lines`` lines of ``rows`` rows of A through
    one weight block, each line in requests of at most DIM rows, the fold's first request DIM rows
    (module docstring). Broadcasts (rows, lines ≥ 1); a Python int for Python ints."""
    scalar = isinstance(rows, int) and isinstance(lines, int)
    r, n = np.broadcast_arrays(np.asarray(rows, dtype=np.int64), np.asarray(lines, dtype=np.int64))
    t = _rows_fed(arch.dim_rows, r, n) * ticks_per_cycle(arch)
    if arch.pe_array.throttles:
        held = ~_never_held(arch, r, n)
        if held.any():
            pairs, inverse = np.unique(np.stack([r[held], n[held]]), axis=1, return_inverse=True)
            t = np.array(t, copy=True)
            t[held] = _fold_growth(arch, pairs[0], pairs[1]).astype(np.int64)[inverse.ravel()]
    return int(t) if scalar else t


__all__ = ["MIN_ROWS", "stream_ticks", "ticks_per_cycle"]
