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

import functools
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


@functools.lru_cache(maxsize=32)
def _table(dim: int, window: int, latency: int) -> np.ndarray:
    """Ticks per fold for every count up to 3W, flat: first ``dim × (3W + 1)`` entries
    ``[rows, lines]`` for rows < DIM, then ``(3W + 1) × dim`` entries ``[full, rem]`` per line for rows =
    full·DIM + rem (row or column 0: unused). Built one request at a time (a block of n + 1 lines is
    the block of n with one more short request; a line of f + 1 DIM-row requests the line of f with
    one more), so a table costs 3W products of (DIM, W, W) stacks (tests/test_tagqueue.py checks it
    against the whole product of each fold's requests). :func:`stream_ticks` extends it
    past 2W by whole periods of W (its docstring)."""
    span, q = 3 * window, math.lcm(*range(1, window + 1))
    a_dim = _request(np.array([dim]), latency, window)
    a_rem = _request(np.maximum(np.arange(dim), MIN_ROWS), latency, window)  # by remainder 0..DIM-1
    short = np.zeros((dim, span + 1), dtype=np.int64)
    block = np.repeat(a_dim, dim, axis=0)  # [DIM]: one line
    for n in range(1, span + 1):
        short[:, n] = _growth_ticks(block, q)
        block = _times(a_rem, block)  # one more line: [DIM, rem × n]
    wide = np.zeros((span + 1, dim), dtype=np.int64)
    power = a_dim  # [DIM × f]
    for f in range(1, span + 1):
        wide[f, 0] = _growth_ticks(power, q)[0]
        wide[f, 1:] = _growth_ticks(_times(a_rem[1:], np.repeat(power, dim - 1, axis=0)), q)
        power = _times(a_dim, power)
    table = np.concatenate([short.ravel(), wide.ravel()])
    table.flags.writeable = False
    return table


def _rows_fed(dim: int, rows: np.ndarray, lines: np.ndarray) -> np.ndarray:
    """Cycles a fold's requests take to feed their rows (its time when the queue never binds)."""
    full, rem = rows // dim, rows % dim
    short = np.maximum(rem, MIN_ROWS)
    return np.where(full >= 1, lines * (full * dim + np.where(rem > 0, short, 0)), dim + (lines - 1) * short)


def stream_ticks(arch: Arch, rows, lines=1):
    """Ticks (:func:`ticks_per_cycle`) of one WS fold: ``lines`` lines of ``rows`` rows of A through
    one weight block, each line in requests of at most DIM rows, the fold's first request DIM rows
    (module docstring). Broadcasts (rows, lines ≥ 1); a Python int for Python ints."""
    scalar = isinstance(rows, int) and isinstance(lines, int)
    r, n = np.broadcast_arrays(np.asarray(rows, dtype=np.int64), np.asarray(lines, dtype=np.int64))
    dim, pe = arch.dim_rows, arch.pe_array
    if not pe.throttles:
        t = _rows_fed(dim, r, n)
        return int(t) if scalar else t
    w = pe.window
    table = _table(dim, w, pe.array_latency)
    full, rem = r // dim, r % dim
    wide = full >= 1
    # the table's row: by lines for rows < DIM, by DIM-row requests per line otherwise. A count c past
    # 2W is taken as c' + k·W with c' in (W, 2W], adding k times the step T(c' + W) − T(c'): the
    # growth is linear in whole periods of W from W + 1 lines (or requests) on. The max-plus
    # cyclicity theorem makes a power of one request's matrix periodic, with a period dividing W (its
    # critical cycle is the W-request tag chain or the one-request feed); that the transient ends by
    # W + 1 is checked, not proven: against the direct product and a brute-force simulation for W up
    # to 16, latencies up to 2000 and counts up to 60·W (tests/test_tagqueue.py)
    count = np.where(wide, full, n)
    k = np.maximum(count - w - 1, 0) // w
    c = count - k * w
    idx = np.where(wide, dim * (3 * w + 1) + c * dim + rem, r * (3 * w + 1) + c)
    t = table[idx]
    if k.any():
        t = t + k * (table[idx + np.where(wide, w * dim, w)] - t)
    t = np.where(wide, t * n, t)
    return int(t) if scalar else t


__all__ = ["MIN_ROWS", "stream_ticks", "ticks_per_cycle"]
